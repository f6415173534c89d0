/*
 * libmicrohttpd, loaded with dlopen() by watch --listen, not linked: it
 * brings gnutls, p11-kit, nettle, gmp and five more, and every other
 * command would pay for loading and relocating them at start.  Each
 * function metrics.c calls is a stub of the same name that forwards to
 * the library (common/lazy.h).  MHD_start_daemon is variadic: its stub
 * hands its arguments on as a va_list to MHD_start_daemon_va, the
 * library's own variadic-free entry (the one MHD_start_daemon calls).
 */
#include "cli/metrics.h"

#include <stdarg.h>
#include <microhttpd.h>

#include "common/lazy.h"

#ifndef LP_MHD_SONAME
#define LP_MHD_SONAME "libmicrohttpd.so.12"
#endif

static struct lp_lazy mhd_lib = { { LP_MHD_SONAME, NULL, NULL }, { NULL },
				  0, "" };

int
cli_httpd_load(struct lp_err *err)
{
	if (lp_lazy_load(&mhd_lib) < 0)
		return lp_err_set(err, LP_ENOTOOL, "cannot load libmicrohttpd "
				  "for --listen: %s (install libmicrohttpd12)",
				  mhd_lib.why);
	return 0;
}

LP_LAZY_FN(mhd_lib, struct MHD_Daemon *, MHD_start_daemon_va,
	   (unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
	    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls,
	    va_list ap), (flags, port, apc, apc_cls, dh, dh_cls, ap))

struct MHD_Daemon *
MHD_start_daemon(unsigned int flags, uint16_t port,
		 MHD_AcceptPolicyCallback apc, void *apc_cls,
		 MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	struct MHD_Daemon *d;
	va_list ap;

	va_start(ap, dh_cls);
	d = MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
	va_end(ap);
	return d;
}

LP_LAZY_VOID(mhd_lib, MHD_stop_daemon, (struct MHD_Daemon *d), (d))
LP_LAZY_FN(mhd_lib, const char *, MHD_lookup_connection_value,
	   (struct MHD_Connection *c, enum MHD_ValueKind kind,
	    const char *key), (c, kind, key))
LP_LAZY_FN(mhd_lib, enum MHD_Result, MHD_queue_response,
	   (struct MHD_Connection *c, unsigned int status,
	    struct MHD_Response *r), (c, status, r))
LP_LAZY_FN(mhd_lib, struct MHD_Response *, MHD_create_response_from_buffer,
	   (size_t size, void *buf, enum MHD_ResponseMemoryMode mode),
	   (size, buf, mode))
LP_LAZY_VOID(mhd_lib, MHD_destroy_response, (struct MHD_Response *r), (r))
LP_LAZY_FN(mhd_lib, enum MHD_Result, MHD_add_response_header,
	   (struct MHD_Response *r, const char *header, const char *content),
	   (r, header, content))
