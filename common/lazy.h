#ifndef LP_COMMON_LAZY_H
#define LP_COMMON_LAZY_H

/*
 * Libraries loaded with dlopen() by the commands that need them, not
 * linked: every start of leakprobe would otherwise pay for loading and
 * relocating them (libbpf for malloc tracing, libunwind for stacks).
 * A module declares `static struct lp_lazy lib = { { "libfoo.so.1" } }`,
 * checks lp_lazy_load() at its entry points (to report a missing library
 * as an error), and defines each function it uses with LP_LAZY_FN: a stub
 * of the library's own name and prototype that forwards to the real one.
 */

#include <stdbool.h>
#include <stddef.h>

#define LP_LAZY_MAX 3

struct lp_lazy {
	/* loaded in this order, the earlier ones RTLD_GLOBAL (a later one
	 * may need their symbols and not name them in DT_NEEDED) */
	const char *sonames[LP_LAZY_MAX];
	void *h[LP_LAZY_MAX];
	int state;		/* 0 not tried, 1 loaded, -1 failed */
	char why[256];		/* dlerror() of the failure */
};

/* Load the libraries once.  0, or -1 with l->why set. */
int lp_lazy_load(struct lp_lazy *l);
/*
 * The address of `name` in the loaded libraries (loading them first).
 * Never NULL: reaching a stub without a successful lp_lazy_load() check
 * is a bug, reported on stderr before abort().
 */
void *lp_lazy_sym(struct lp_lazy *l, const char *name);

/*
 * The function `name` of l, cached in *slot (atomically: stubs may be
 * called from several threads).  As lp_lazy_sym().
 */
void *lp_lazy_get(struct lp_lazy *l, void **slot, const char *name);

/*
 * A forwarding stub with the library function's own name and prototype:
 * LP_LAZY_FN(lib, int, foo, (int a, char *b), (a, b)).  Inside its body
 * the definition itself declares `name`, so __typeof__ gives its type.
 */
#define LP_LAZY_FN(lib, ret, name, params, args)			\
	ret name params							\
	{								\
		static void *p_;					\
		return ((__typeof__(&name))lp_lazy_get(&(lib), &p_,	\
							#name)) args;	\
	}
#define LP_LAZY_VOID(lib, name, params, args)				\
	void name params						\
	{								\
		static void *p_;					\
		((__typeof__(&name))lp_lazy_get(&(lib), &p_, #name)) args; \
	}

#endif
