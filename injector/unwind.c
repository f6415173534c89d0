/*
 * Native stack of the stopped main thread with libunwind-ptrace.
 *
 * Registers and memory come from the _UPT accessors (ptrace).  Unwind
 * tables do not: _UPT_find_proc_info opens the files named in
 * /proc/PID/maps in *our* mount namespace, which is the wrong file (or
 * none) for a container or a deleted library.  Our own module index
 * knows where each file's .eh_frame_hdr is mapped in the target, so
 * find_proc_info hands libunwind that table, read from target memory.
 */
#include "injector/injector_int.h"

#include <libunwind-ptrace.h>
#include <stdio.h>
#include <string.h>

/*
 * Binary search of a remote .eh_frame_hdr table.  Exported by
 * libunwind-x86_64 (it is what _UPT_find_proc_info calls) but not
 * declared in its public headers.
 */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as,
					      unw_word_t ip,
					      unw_dyn_info_t *di,
					      unw_proc_info_t *pi,
					      int need_unwind_info,
					      void *arg);

/*
 * A file without .eh_frame_hdr (a static non-PIE executable) gets the
 * search table built locally by elfsym.c.  libunwind reads the table
 * through access_mem, so it is given an address no user-space mapping
 * can have (non-canonical on x86-64, with 4- or 5-level paging), and
 * access_mem serves those reads from our copy.
 */
#define LOCAL_TABLE_BASE 0x4000000000000000ULL

struct unw_ctx {
	struct inj_target *t;
	void *upt;		/* _UPT_create() handle */
	const int32_t *table;	/* local table being searched, or NULL */
	size_t table_bytes;
};

static int
acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
		   int need_unwind_info, void *arg)
{
	struct unw_ctx *c = arg;
	struct inj_module *mod = inj__module_at(c->t, ip);
	unw_dyn_info_t di;

	const struct elf_file *f;
	int ret;

	if (!mod || !mod->elf)
		return -UNW_ENOINFO;
	f = mod->elf;
	memset(&di, 0, sizeof(di));
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = mod->bias + f->lo_vaddr;
	di.end_ip = mod->bias + f->hi_vaddr;
	if (ip < di.start_ip || ip >= di.end_ip)
		return -UNW_ENOINFO;
	/* entries are two int32 (initial location, FDE), in words */
	if (f->eh_fde_count) {
		di.u.rti.segbase = mod->bias + f->eh_hdr_vaddr;
		di.u.rti.table_data = mod->bias + f->eh_table_vaddr;
		di.u.rti.table_len = f->eh_fde_count * 8 / sizeof(unw_word_t);
		return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi,
							  need_unwind_info,
							  arg);
	}
	if (!f->eh_local_n)
		return -UNW_ENOINFO;
	di.u.rti.segbase = mod->bias + f->eh_frame_vaddr;
	di.u.rti.table_data = LOCAL_TABLE_BASE;
	di.u.rti.table_len = f->eh_local_n * 8 / sizeof(unw_word_t);
	c->table = f->eh_local;
	c->table_bytes = f->eh_local_n * 8;
	ret = _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi,
						 need_unwind_info, arg);
	c->table = NULL;
	return ret;
}

static void
acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	_UPT_put_unwind_info(as, pi, ((struct unw_ctx *)arg)->upt);
}

static int
acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	/* no dynamic (JIT-registered) unwind info is looked up */
	(void)as;
	(void)addr;
	(void)arg;
	return -UNW_ENOINFO;
}

static int
acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
	       int write, void *arg)
{
	struct unw_ctx *c = arg;

	if (c->table && addr >= LOCAL_TABLE_BASE &&
	    addr - LOCAL_TABLE_BASE < c->table_bytes) {
		size_t off = addr - LOCAL_TABLE_BASE;
		size_t n = c->table_bytes - off;

		if (write)
			return -UNW_EINVAL;
		*val = 0;
		memcpy(val, (const char *)c->table + off,
		       n < sizeof(*val) ? n : sizeof(*val));
		return 0;
	}
	return _UPT_access_mem(as, addr, val, write, c->upt);
}

static int
acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
	       int write, void *arg)
{
	return _UPT_access_reg(as, reg, val, write,
			       ((struct unw_ctx *)arg)->upt);
}

static int
acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
		 int write, void *arg)
{
	return _UPT_access_fpreg(as, reg, val, write,
				 ((struct unw_ctx *)arg)->upt);
}

static int
acc_resume(unw_addr_space_t as, unw_cursor_t *cur, void *arg)
{
	return _UPT_resume(as, cur, ((struct unw_ctx *)arg)->upt);
}

/* Names from our ELF tables, not from files libunwind would open. */
static int
acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
		  size_t len, unw_word_t *off, void *arg)
{
	struct unw_ctx *c = arg;
	struct inj_module *mod = inj__module_at(c->t, addr);
	const struct elf_sym *s;
	const char *name;

	(void)as;
	if (!mod || !mod->elf ||
	    !(s = elf__find_addr(mod->elf, addr - mod->bias)))
		return -UNW_ENOINFO;
	name = elf__sym_name(mod->elf, s);
	if (len)
		snprintf(buf, len, "%s", name);
	*off = addr - mod->bias - s->value;
	return strlen(name) < len ? 0 : -UNW_ENOMEM;
}

/*
 * Unwind the main thread, which the caller holds stopped (inj_attach).
 * ips[0] is the stopped instruction pointer; later entries are return
 * addresses, so symbolize them as ip - 1 to name the calling function.
 * Returns the number of frames (>= 1) or a negative LP_E* code.  An
 * unwind that breaks off midway returns the frames found so far.
 */
int
inj_unwind(struct inj_target *t, uint64_t *ips, int max, struct lp_err *err)
{
	unw_accessors_t acc = {
		.find_proc_info = acc_find_proc_info,
		.put_unwind_info = acc_put_unwind_info,
		.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
		.access_mem = acc_access_mem,
		.access_reg = acc_access_reg,
		.access_fpreg = acc_access_fpreg,
		.resume = acc_resume,
		.get_proc_name = acc_get_proc_name,
	};
	struct unw_ctx ctx = { .t = t };
	unw_word_t prev_ip = 0, prev_sp = 0;
	unw_addr_space_t as;
	unw_cursor_t cur;
	int n = 0, ret;

	if (!t->attached)
		return lp_err_set(err, LP_EINVAL, "unwind: process %d is not "
				  "stopped (attach first)", (int)t->pid);
	if (!ips || max <= 0)
		return lp_err_set(err, LP_EINVAL, "unwind: no room for frames");
	if (inj_unwind_load(err) < 0)
		return -LP_ENOTOOL;
	as = unw_create_addr_space(&acc, 0);
	if (!as)
		return lp_err_set(err, LP_ENOMEM, "unwind: cannot create a "
				  "libunwind address space");
	ctx.upt = _UPT_create(t->pid);
	if (!ctx.upt) {
		n = lp_err_set(err, LP_ENOMEM, "unwind: _UPT_create(%d) failed",
			       (int)t->pid);
		goto out_as;
	}
	ret = unw_init_remote(&cur, as, &ctx);
	if (ret < 0) {
		n = lp_err_set(err, LP_EFAULT, "unwind: unw_init_remote(%d): "
			       "%s", (int)t->pid, unw_strerror(ret));
		goto out_upt;
	}
	while (n < max) {
		unw_word_t ip, sp;

		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 ||
		    unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 || !ip)
			break;
		/* a frame that unwinds to itself would loop forever */
		if (n && ip == prev_ip && sp == prev_sp)
			break;
		ips[n++] = ip;
		prev_ip = ip;
		prev_sp = sp;
		if (unw_step(&cur) <= 0)
			break;
	}
	if (!n)
		n = lp_err_set(err, LP_EFAULT, "unwind: cannot read the "
			       "registers of process %d", (int)t->pid);
out_upt:
	_UPT_destroy(ctx.upt);
out_as:
	unw_destroy_addr_space(as);
	return n;
}
