#ifndef LP_COMMON_XALLOC_H
#define LP_COMMON_XALLOC_H

#include <stddef.h>

/*
 * Allocation wrappers that abort on exhaustion.  Used only for small,
 * bounded allocations where a clean error path would add nothing; code
 * that allocates on behalf of untrusted sizes checks and reports LP_ENOMEM.
 */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
/* Grow *p (holding *cap elements of size sz) to hold at least need. */
void *xgrow(void *p, size_t *cap, size_t need, size_t sz);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
