#ifndef LP_COMMON_LOG_H
#define LP_COMMON_LOG_H

/*
 * Debug tracing for -v.  Modules never print results or errors; they may
 * emit debug lines through lp_debug(), which the cli enables with -v.
 */
extern int lp_verbose;

void lp_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
