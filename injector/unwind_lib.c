/*
 * libunwind, loaded with dlopen() when a stack is first unwound (a job
 * that did not start, malloc tracing), not linked: the other commands
 * never pay for loading and relocating it.  Each function we use is a
 * stub of the same name that forwards to the library (common/lazy.h).
 * libunwind-ptrace names none of the libunwind-x86_64 functions it calls
 * in DT_NEEDED, so that one is loaded first, RTLD_GLOBAL.
 */
#include "injector/injector_int.h"

#include <libunwind-ptrace.h>

#include "common/lazy.h"

#ifndef LP_UNWIND_SONAME
#define LP_UNWIND_SONAME "libunwind-x86_64.so.8"
#endif
#ifndef LP_UNWIND_PTRACE_SONAME
#define LP_UNWIND_PTRACE_SONAME "libunwind-ptrace.so.0"
#endif

static struct lp_lazy unwind_lib = {
	{ LP_UNWIND_SONAME, LP_UNWIND_PTRACE_SONAME, NULL }, { NULL }, 0, ""
};

int
inj_unwind_load(struct lp_err *err)
{
	if (lp_lazy_load(&unwind_lib) < 0)
		return lp_err_set(err, LP_ENOTOOL, "cannot load libunwind: %s "
				  "(install libunwind8)", unwind_lib.why);
	return 0;
}

/* the names behind libunwind's unw_* macros (UNW_OBJ) */
LP_LAZY_FN(unwind_lib, unw_addr_space_t, _Ux86_64_create_addr_space,
	   (unw_accessors_t *a, int byteorder), (a, byteorder))
LP_LAZY_VOID(unwind_lib, _Ux86_64_destroy_addr_space,
	     (unw_addr_space_t as), (as))
LP_LAZY_VOID(unwind_lib, _Ux86_64_flush_cache,
	     (unw_addr_space_t as, unw_word_t lo, unw_word_t hi),
	     (as, lo, hi))
LP_LAZY_FN(unwind_lib, int, _Ux86_64_set_caching_policy,
	   (unw_addr_space_t as, unw_caching_policy_t p), (as, p))
LP_LAZY_FN(unwind_lib, int, _Ux86_64_set_cache_size,
	   (unw_addr_space_t as, size_t size, int flags), (as, size, flags))
LP_LAZY_FN(unwind_lib, int, _Ux86_64_init_remote,
	   (unw_cursor_t *c, unw_addr_space_t as, void *arg), (c, as, arg))
LP_LAZY_FN(unwind_lib, int, _Ux86_64_step, (unw_cursor_t *c), (c))
LP_LAZY_FN(unwind_lib, int, _Ux86_64_get_reg,
	   (unw_cursor_t *c, int reg, unw_word_t *val), (c, reg, val))
LP_LAZY_FN(unwind_lib, const char *, _Ux86_64_strerror, (int e), (e))
/* exported by libunwind-x86_64, not in its headers (see unwind.c) */
LP_LAZY_FN(unwind_lib, int, _Ux86_64_dwarf_search_unwind_table,
	   (unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
	    unw_proc_info_t *pi, int need, void *arg),
	   (as, ip, di, pi, need, arg))
LP_LAZY_FN(unwind_lib, void *, _UPT_create, (pid_t pid), (pid))
LP_LAZY_VOID(unwind_lib, _UPT_destroy, (void *upt), (upt))
LP_LAZY_VOID(unwind_lib, _UPT_put_unwind_info,
	     (unw_addr_space_t as, unw_proc_info_t *pi, void *arg),
	     (as, pi, arg))
LP_LAZY_FN(unwind_lib, int, _UPT_access_mem,
	   (unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
	    void *arg), (as, addr, val, write, arg))
LP_LAZY_FN(unwind_lib, int, _UPT_access_reg,
	   (unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
	    int write, void *arg), (as, reg, val, write, arg))
LP_LAZY_FN(unwind_lib, int, _UPT_access_fpreg,
	   (unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
	    int write, void *arg), (as, reg, val, write, arg))
LP_LAZY_FN(unwind_lib, int, _UPT_resume,
	   (unw_addr_space_t as, unw_cursor_t *c, void *arg), (as, c, arg))
