#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int
err_vset(struct lp_err *err, int code, int e, const char *fmt, va_list ap)
{
	size_t n;

	if (code < 0)
		code = -code;
	if (!err || err->code)
		return -code;
	err->code = code;
	err->sys_errno = e;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (e) {
		n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
			 strerror(e));
	}
	return -code;
}

int
lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = err_vset(err, code, 0, fmt, ap);
	va_end(ap);
	return rc;
}

int
lp_err_sys(struct lp_err *err, int code, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = err_vset(err, code, e, fmt, ap);
	va_end(ap);
	errno = e;
	return rc;
}

int
lp_errno_code(int e, int fallback)
{
	switch (e) {
	case ESRCH:
		return LP_ENOPROC;
	case EPERM:
	case EACCES:
		return LP_EPERM;
	case EFAULT:
	case EIO:
		return LP_EFAULT;
	case ENOMEM:
		return LP_ENOMEM;
	case EINTR:
		return LP_EINTR;
	default:
		return fallback;
	}
}

void
lp_err_clear(struct lp_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *
lp_strerror(int code)
{
	static const char *const names[LP_ENCODES] = {
		[LP_OK] = "success",
		[LP_EINVAL] = "invalid argument",
		[LP_ENOPROC] = "no such process",
		[LP_EPERM] = "permission denied",
		[LP_EFAULT] = "bad remote address",
		[LP_EPARSE] = "parse error",
		[LP_EIO] = "i/o error",
		[LP_ENOMEM] = "out of memory",
		[LP_ETIMEDOUT] = "timed out",
		[LP_ENOTRUBY] = "not a ruby process",
		[LP_EZOMBIE] = "zombie process",
		[LP_ETRACED] = "already traced",
		[LP_EBUSY] = "already probed",
		[LP_ESELF] = "refusing to probe ourselves",
		[LP_ENOSYM] = "symbol not found",
		[LP_EINJECT] = "injection failed",
		[LP_ESNIPPET] = "snippet raised",
		[LP_EINTR] = "interrupted",
		[LP_EEXITED] = "target exited",
		[LP_ENOTOOL] = "tool missing",
		[LP_EBPF] = "bpf unusable",
		[LP_EUNSAFE] = "unsafe target state",
	};

	if (code < 0)
		code = -code;
	if (code >= LP_ENCODES || !names[code])
		return "unknown error";
	return names[code];
}
