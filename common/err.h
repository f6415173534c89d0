#ifndef LP_COMMON_ERR_H
#define LP_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Error codes returned (negated) by every module function.  The cli maps
 * them to exit statuses (cli/exit.h); modules never exit or print.
 */
enum {
	LP_OK = 0,
	LP_EINVAL = 1,		/* bad argument from the caller/user */
	LP_ENOPROC,		/* no such process / it went away */
	LP_EPERM,		/* permission denied (ptrace, /proc) */
	LP_EFAULT,		/* remote memory access failed */
	LP_EPARSE,		/* malformed input */
	LP_EIO,			/* local I/O error (output file, disk full) */
	LP_ENOMEM,		/* out of memory */
	LP_ETIMEDOUT,		/* timeout */
	LP_ENOTRUBY,		/* target is not a Ruby (MRI) process */
	LP_EZOMBIE,		/* target is a zombie */
	LP_ETRACED,		/* target already traced by someone else */
	LP_EBUSY,		/* target already probed by another leakprobe */
	LP_ESELF,		/* target is leakprobe itself */
	LP_ENOSYM,		/* symbol not found */
	LP_EINJECT,		/* injection failed */
	LP_ESNIPPET,		/* the snippet raised */
	LP_EINTR,		/* interrupted by SIGINT/SIGTERM/SIGHUP */
	LP_EEXITED,		/* target exited under us */
	LP_ENOTOOL,		/* an external tool (gnuplot, ...) is missing */
	LP_EBPF,		/* BPF unusable */
	LP_EUNSAFE,		/* the target is in a state we must not touch */
	LP_ENCODES
};

struct lp_err {
	int code;		/* LP_E* (positive), 0 when no error */
	int sys_errno;		/* errno saved at the failing call, or 0 */
	char msg[512];
};

/*
 * Record an error.  The first error wins: when err already holds one, it is
 * left alone.  Both return -code so callers can write
 * `return lp_err_set(err, LP_EINVAL, "...")`.  err may be NULL.
 */
int lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)"; errno is read on entry. */
int lp_err_sys(struct lp_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Map an errno value to an LP_E* code (ESRCH->ENOPROC, EPERM->EPERM...). */
int lp_errno_code(int e, int fallback);
void lp_err_clear(struct lp_err *err);
const char *lp_strerror(int code);

#endif
