/*
 * Unwinding the raw records of malloc.c: the target's memory through
 * /proc/PID/mem (its code and unwind tables only), its modules from
 * /proc/PID/maps, DWARF call frame information evaluated once per
 * address and cached (the fast path), and libunwind with custom
 * accessors over the record's copy of the stack for the rest.
 */
#include "probes/malloc_int.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libunwind.h>


#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/malloc_bpf.h"

/* ---- .eh_frame_hdr ----------------------------------------------------- */

/* Size of a DWARF pointer encoding's value (DW_EH_PE_*), or -1. */
static int
enc_size(uint8_t enc)
{
	switch (enc & 0x0f) {
	case 0x00:		/* absptr */
	case 0x04:		/* udata8 */
	case 0x0c:		/* sdata8 */
		return 8;
	case 0x02:
	case 0x0a:
		return 2;
	case 0x03:
	case 0x0b:
		return 4;
	default:
		return -1;
	}
}

static uint64_t
rd_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* See probes.h: the search table of an .eh_frame_hdr. */
int
probe__eh_frame_hdr(const uint8_t *b, size_t len, uint64_t at,
		    uint64_t *table, uint64_t *count)
{
	int ptr_sz, cnt_sz;
	uint64_t n;

	if (len < 4 || b[0] != 1)
		return -LP_EPARSE;
	/* the table must be sorted pairs of datarel sdata4 */
	if (b[3] != 0x3b || b[1] == 0xff || b[2] == 0xff)
		return -LP_EPARSE;
	ptr_sz = enc_size(b[1]);
	cnt_sz = enc_size(b[2]);
	if (ptr_sz < 0 || cnt_sz < 0 || (b[2] & 0x70) != 0 ||
	    4 + (size_t)ptr_sz + (size_t)cnt_sz > len)
		return -LP_EPARSE;
	n = rd_le(b + 4 + ptr_sz, cnt_sz);
	if ((b[2] & 0x08) && cnt_sz < 8 && (n >> (cnt_sz * 8 - 1)))
		return -LP_EPARSE;	/* negative count */
	if (!n || n > (1u << 26))
		return -LP_EPARSE;
	*table = at + 4 + (uint64_t)ptr_sz + (uint64_t)cnt_sz;
	*count = n;
	return 0;
}

/* ---- target memory: /proc/PID/mem through a small page cache ---------- */

static int
tmem_read(struct tmem *m, uint64_t addr, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		uint64_t page = addr & ~(PAGE_4K - 1), off = addr - page;
		size_t n = PAGE_4K - off < len ? PAGE_4K - off : len;
		struct tpage *tp = &m->p[mix64(page) % TMEM_PAGES];

		if (tp->tag != page + 1) {
			if (pread(m->fd, tp->d, PAGE_4K, (off_t)page) !=
			    (ssize_t)PAGE_4K) {
				tp->tag = 0;
				return -1;
			}
			tp->tag = page + 1;
		}
		memcpy(out, tp->d + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/* ---- /proc/PID/maps and the target's modules --------------------------- */

void
probe__mlines_free(struct mline *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].path);
	free(l);
}

int
probe__read_maps(pid_t pid, struct mline **out, size_t *nout, struct lp_err *err)
{
	char path[64], *buf = NULL, *p, *eol;
	struct lp_err e = { 0 };
	struct mline *l = NULL;
	size_t cap = 0, n = 0, bcap = 0;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	len = lp_read_file(path, &buf, &bcap, &e);
	if (len < 0) {
		free(buf);
		return lp_err_set(err, e.sys_errno == ENOENT ||
				  e.sys_errno == ESRCH ? LP_ENOPROC : e.code,
				  "%s", e.msg);
	}
	for (p = buf; p < buf + len; p = eol + 1) {
		unsigned long long s, en, off, ino;
		unsigned maj, min;
		char perms[5];
		int pos = 0;

		eol = memchr(p, '\n', (size_t)(buf + len - p));
		if (!eol)
			eol = buf + len;
		*eol = '\0';
		if (sscanf(p, "%llx-%llx %4s %llx %x:%x %llu %n", &s, &en,
			   perms, &off, &maj, &min, &ino, &pos) < 7)
			continue;
		l = xgrow(l, &cap, n + 1, sizeof(*l));
		l[n].start = s;
		l[n].end = en;
		l[n].off = off;
		l[n].ino = ino;
		memcpy(l[n].perms, perms, sizeof(perms));
		l[n].path = pos && p[pos] == '/' ? xstrdup(p + pos) : NULL;
		n++;
	}
	free(buf);
	*out = l;
	*nout = n;
	return 0;
}

/* Fill in the unwind table of a module from its headers in memory. */
static void
umod_probe(struct tmem *mem, struct umod *u)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	uint64_t bias = 0, eh_vaddr = 0;
	bool have_bias = false;
	uint8_t hb[32];

	if (tmem_read(mem, u->lo, &eh, sizeof(eh)) < 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum ||
	    eh.e_phnum > 64 ||
	    tmem_read(mem, u->lo + eh.e_phoff, ph,
		      eh.e_phnum * sizeof(Elf64_Phdr)) < 0)
		return;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0 &&
		    !have_bias) {
			bias = u->lo - (ph[i].p_vaddr & ~(PAGE_4K - 1));
			have_bias = true;
		} else if (ph[i].p_type == PT_GNU_EH_FRAME) {
			eh_vaddr = ph[i].p_vaddr;
		}
	}
	if (!have_bias || !eh_vaddr)
		return;
	u->hdr = bias + eh_vaddr;
	if (tmem_read(mem, u->hdr, hb, sizeof(hb)) < 0 ||
	    probe__eh_frame_hdr(hb, sizeof(hb), u->hdr, &u->table,
				&u->count) < 0)
		u->count = 0;
}

/*
 * Modules from /proc/PID/maps: a file mapped from offset 0 starts one,
 * later mappings of the same file extend it.
 */
static int
umods_load(struct umods *um, struct tmem *mem, pid_t pid, struct lp_err *err)
{
	struct mline *l = NULL;
	size_t n = 0;
	const struct mline *cur = NULL;
	int rc;

	rc = probe__read_maps(pid, &l, &n, err);
	if (rc < 0)
		return rc;
	um->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!l[i].path)
			continue;
		if (cur && l[i].off && cur->ino == l[i].ino &&
		    !strcmp(cur->path, l[i].path)) {
			um->m[um->n - 1].hi = l[i].end;
			continue;
		}
		cur = NULL;
		if (l[i].off)
			continue;
		cur = &l[i];
		um->m = xgrow(um->m, &um->cap, um->n + 1, sizeof(*um->m));
		memset(&um->m[um->n], 0, sizeof(um->m[0]));
		um->m[um->n].lo = l[i].start;
		um->m[um->n].hi = l[i].end;
		um->n++;
	}
	for (size_t i = 0; i < um->n; i++)
		umod_probe(mem, &um->m[i]);
	um->loaded_ns = lp_mono_ns();
	probe__mlines_free(l, n);
	return 0;
}

static const struct umod *
umods_find(struct umods *um, uint64_t ip)
{
	size_t lo = 0, hi = um->n;

	/* consecutive frames are mostly in the same module */
	if (um->last < um->n && ip >= um->m[um->last].lo &&
	    ip < um->m[um->last].hi)
		return &um->m[um->last];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (um->m[mid].hi <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < um->n && ip >= um->m[lo].lo && ip < um->m[lo].hi) {
		um->last = lo;
		return &um->m[lo];
	}
	return NULL;
}

/* ---- DWARF call frame information: the fast unwinder ------------------- */

/*
 * libunwind as packaged by Debian caches register states behind a lock
 * taken with sigprocmask(): two system calls per frame, about 15 us per
 * stack.  Survivors can arrive by the hundred thousand, so the common
 * case is done here: the rule for an address (CFA from rsp or rbp, the
 * return address and rbp saved at fixed offsets) is computed once from
 * the target's .eh_frame and cached.  Anything outside that subset
 * (DWARF expressions, signal frames) goes to libunwind.
 */

#define DW_RSP		7
#define DW_RBP		6
#define CFI_STACK	8	/* remember_state depth */

struct cfi_state {
	uint64_t cfa_reg;
	int64_t cfa_off;
	int64_t ra_off, rbp_off;
	uint8_t ra_rule, rbp_rule;	/* 0 same/unsaved, 1 at CFA+off,
					 * 2 undefined */
};

struct cfi_rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
rd_uleb(struct cfi_rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (r->p < r->end) {
		uint8_t b = *r->p++;

		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static int64_t
rd_sleb(struct cfi_rd *r)
{
	int64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;

	while (r->p < r->end) {
		b = *r->p++;
		if (shift < 64)
			v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
		shift += 7;
		if (!(b & 0x80)) {
			if (shift < 64 && (b & 0x40))
				v |= (int64_t)(~(uint64_t)0 << shift);
			return v;
		}
	}
	r->bad = true;
	return 0;
}

static uint64_t
rd_fixed(struct cfi_rd *r, int n)
{
	uint64_t v;

	if (r->end - r->p < n) {
		r->bad = true;
		r->p = r->end;
		return 0;
	}
	v = rd_le(r->p, n);
	r->p += n;
	return v;
}

static void
rd_skip(struct cfi_rd *r, uint64_t n)
{
	if ((uint64_t)(r->end - r->p) < n) {
		r->bad = true;
		r->p = r->end;
	} else {
		r->p += n;
	}
}

/*
 * Offsets from CFI operands (target memory: any value).  A uleb past
 * INT64_MAX, or a product with the data alignment past int64_t, becomes
 * INT64_MAX: never a valid offset (a row's offsets must fit int32), and
 * no signed overflow.
 */
static int64_t
cfi_u(uint64_t u)
{
	return u > INT64_MAX ? INT64_MAX : (int64_t)u;
}

static int64_t
cfi_scaled(int64_t v, int64_t align)
{
	int64_t out;

	if (v == INT64_MAX || __builtin_mul_overflow(v, align, &out))
		return INT64_MAX;
	return out;
}

/* Apply a register rule; false for rules the fast path does not take. */
static bool
set_rule(struct cfi_state *s, uint64_t reg, uint8_t rule, int64_t off)
{
	if (reg == 16) {
		s->ra_rule = rule;
		s->ra_off = off;
	} else if (reg == DW_RBP) {
		s->rbp_rule = rule;
		s->rbp_off = off;
	} else if (reg == DW_RSP && rule == 1) {
		return false;	/* rsp saved in memory: not a plain CFA */
	}
	return true;
}

/*
 * Interpret instructions until the location passes pc (fde true) or to
 * the end (the CIE's initial instructions).  Returns 1 when pc's row is
 * reached, 0 at the end of the bytes, -1 for what the fast path does not
 * handle, -2 on malformed bytes.
 */
static int
cfi_run(struct cfi_rd *r, struct cfi_state *s, const struct cfi_state *init,
	struct cfi_state *stack, int *depth, uint64_t code_align,
	int64_t data_align, uint64_t *loc, uint64_t pc, bool fde)
{
	while (r->p < r->end && !r->bad) {
		uint8_t op = *r->p++, lo = op & 0x3f;
		uint64_t reg, adv = 0;
		int64_t off;

		switch (op >> 6) {
		case 1:		/* advance_loc */
			adv = lo;
			break;
		case 2:		/* offset */
			off = cfi_scaled(cfi_u(rd_uleb(r)), data_align);
			if (!set_rule(s, lo, 1, off))
				return -1;
			continue;
		case 3:		/* restore */
			if (lo == 16 || lo == DW_RBP)
				set_rule(s, lo, lo == 16 ? init->ra_rule :
					 init->rbp_rule, lo == 16 ?
					 init->ra_off : init->rbp_off);
			continue;
		default:
			break;
		}
		switch (op) {
		case 0x40 ... 0x7f:
			break;
		case 0x00:	/* nop */
			continue;
		case 0x02:	/* advance_loc1 */
			adv = rd_fixed(r, 1);
			break;
		case 0x03:	/* advance_loc2 */
			adv = rd_fixed(r, 2);
			break;
		case 0x04:	/* advance_loc4 */
			adv = rd_fixed(r, 4);
			break;
		case 0x05:	/* offset_extended */
			reg = rd_uleb(r);
			off = cfi_scaled(cfi_u(rd_uleb(r)), data_align);
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		case 0x06:	/* restore_extended */
			reg = rd_uleb(r);
			if (reg == 16 || reg == DW_RBP)
				set_rule(s, reg, reg == 16 ? init->ra_rule :
					 init->rbp_rule, reg == 16 ?
					 init->ra_off : init->rbp_off);
			continue;
		case 0x07:	/* undefined */
			reg = rd_uleb(r);
			if (!set_rule(s, reg, 2, 0))
				return -1;
			continue;
		case 0x08:	/* same_value */
			reg = rd_uleb(r);
			set_rule(s, reg, 0, 0);
			continue;
		case 0x09:	/* register */
			reg = rd_uleb(r);
			rd_uleb(r);
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x0a:	/* remember_state */
			if (*depth == CFI_STACK)
				return -1;
			stack[(*depth)++] = *s;
			continue;
		case 0x0b:	/* restore_state */
			if (!*depth)
				return -2;
			*s = stack[--(*depth)];
			continue;
		case 0x0c:	/* def_cfa */
			s->cfa_reg = rd_uleb(r);
			s->cfa_off = cfi_u(rd_uleb(r));
			continue;
		case 0x0d:	/* def_cfa_register */
			s->cfa_reg = rd_uleb(r);
			continue;
		case 0x0e:	/* def_cfa_offset */
			s->cfa_off = cfi_u(rd_uleb(r));
			continue;
		case 0x0f:	/* def_cfa_expression */
			return -1;
		case 0x10:	/* expression */
		case 0x16:	/* val_expression */
			reg = rd_uleb(r);
			rd_skip(r, rd_uleb(r));
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x11:	/* offset_extended_sf */
			reg = rd_uleb(r);
			off = cfi_scaled(rd_sleb(r), data_align);
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		case 0x12:	/* def_cfa_sf */
			s->cfa_reg = rd_uleb(r);
			s->cfa_off = cfi_scaled(rd_sleb(r), data_align);
			continue;
		case 0x13:	/* def_cfa_offset_sf */
			s->cfa_off = cfi_scaled(rd_sleb(r), data_align);
			continue;
		case 0x14:	/* val_offset */
		case 0x15:	/* val_offset_sf */
			reg = rd_uleb(r);
			if (op == 0x14)
				rd_uleb(r);
			else
				rd_sleb(r);
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x2e:	/* GNU_args_size */
			rd_uleb(r);
			continue;
		case 0x2f:	/* GNU_negative_offset_extended */
			reg = rd_uleb(r);
			off = cfi_scaled(cfi_u(rd_uleb(r)), data_align);
			off = off == INT64_MAX || off == INT64_MIN ? INT64_MAX :
			      -off;
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		default:	/* set_loc and vendor extensions */
			return -1;
		}
		if (!fde)
			continue;
		if (*loc + adv * code_align > pc)
			return 1;
		*loc += adv * code_align;
	}
	return r->bad ? -2 : 0;
}

/* See probes.h: the row covering pc, from CIE and FDE instructions. */
int
probe__cfi_eval(const uint8_t *cie_ins, size_t cie_len,
		const uint8_t *fde_ins, size_t fde_len, uint64_t code_align,
		int64_t data_align, uint64_t ra_reg, uint64_t pc_begin,
		uint64_t pc, struct probe__cfa_row *out)
{
	struct cfi_state s = { .cfa_reg = DW_RSP }, init, stack[CFI_STACK];
	struct cfi_rd r = { cie_ins, cie_ins + cie_len, false };
	uint64_t loc = pc_begin;
	int depth = 0, rc;

	memset(out, 0, sizeof(*out));
	out->state = PROBE_ROW_HARD;
	if (ra_reg != 16 || !code_align)
		return 0;
	rc = cfi_run(&r, &s, &s, stack, &depth, code_align, data_align, &loc,
		     pc, false);
	if (rc == -2)
		return -LP_EPARSE;
	if (rc < 0)
		return 0;
	init = s;
	depth = 0;
	r.p = fde_ins;
	r.end = fde_ins + fde_len;
	r.bad = false;
	rc = cfi_run(&r, &s, &init, stack, &depth, code_align, data_align,
		     &loc, pc, true);
	if (rc == -2)
		return -LP_EPARSE;
	if (rc < 0)
		return 0;
	if (s.ra_rule == 2) {
		out->state = PROBE_ROW_OUTER;
		return 0;
	}
	if ((s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.ra_rule != 1 ||
	    s.cfa_off < INT32_MIN || s.cfa_off > INT32_MAX ||
	    s.ra_off < INT32_MIN || s.ra_off > INT32_MAX ||
	    s.rbp_off < INT32_MIN || s.rbp_off > INT32_MAX)
		return 0;
	out->cfa_reg = (uint8_t)s.cfa_reg;
	out->cfa_off = (int32_t)s.cfa_off;
	out->ra_off = (int32_t)s.ra_off;
	out->rbp_off = (int32_t)s.rbp_off;
	out->rbp_saved = s.rbp_rule == 1;
	out->state = PROBE_ROW_OK;
	return 0;
}

/* Decode a DW_EH_PE_* pointer at r (field address `at`); false when the
 * encoding is not one .eh_frame uses on x86-64. */
static bool
rd_encoded(struct cfi_rd *r, uint8_t enc, uint64_t at, uint64_t *out)
{
	int n = enc_size(enc);
	uint64_t v;

	if (n < 0 || (enc & 0x70) > 0x10)
		return false;
	v = rd_fixed(r, n);
	if ((enc & 0x08) && n < 8 && (v >> (n * 8 - 1)))
		v |= ~0ull << (n * 8);	/* sign-extend sdata2/4 */
	if ((enc & 0x70) == 0x10)
		v += at;
	*out = v;
	return !r->bad;
}

#define CFI_MAX_BYTES	65536

/* Read a CIE or FDE at addr: *len gets the bytes after the length word. */
static uint8_t *
read_entry(struct tmem *mem, uint64_t addr, uint64_t *body, size_t *len)
{
	uint32_t l32;
	uint8_t *buf;

	if (tmem_read(mem, addr, &l32, 4) < 0 || l32 == 0 ||
	    l32 == 0xffffffffu || l32 > CFI_MAX_BYTES)
		return NULL;
	buf = xmalloc(l32);
	if (tmem_read(mem, addr + 4, buf, l32) < 0) {
		free(buf);
		return NULL;
	}
	*body = addr + 4;
	*len = l32;
	return buf;
}

/* The row for pc in module md, from its .eh_frame through the table. */
static void
cfi_compute(struct tmem *mem, const struct umod *md, uint64_t pc,
	    struct probe__cfa_row *row)
{
	uint64_t lo = 0, hi = md->count, fde_addr, fde_body, cie_body;
	uint64_t pc_begin, pc_range, code_align, ra_reg, cie_ptr;
	int64_t data_align;
	uint8_t *fde = NULL, *cie = NULL, fde_enc = 0;
	size_t fde_len, cie_len;
	struct cfi_rd r;
	int32_t ent[2];
	const char *aug;

	memset(row, 0, sizeof(*row));
	row->state = PROBE_ROW_NOINFO;
	/* last entry whose initial location <= pc */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (tmem_read(mem, md->table + mid * 8, ent, 8) < 0)
			return;
		if (md->hdr + (uint64_t)(int64_t)ent[0] <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || tmem_read(mem, md->table + (lo - 1) * 8, ent, 8) < 0)
		return;
	fde_addr = md->hdr + (uint64_t)(int64_t)ent[1];
	row->state = PROBE_ROW_HARD;
	fde = read_entry(mem, fde_addr, &fde_body, &fde_len);
	if (!fde || fde_len < 4)
		goto out;
	cie_ptr = rd_le(fde, 4);
	if (!cie_ptr || cie_ptr > fde_body)
		goto out;
	cie = read_entry(mem, fde_body - cie_ptr, &cie_body, &cie_len);
	if (!cie || cie_len < 4 || rd_le(cie, 4) != 0)
		goto out;
	/* CIE: version, augmentation, alignment factors, RA register */
	r.p = cie + 4;
	r.end = cie + cie_len;
	r.bad = false;
	ra_reg = rd_fixed(&r, 1);	/* the version, 1 or 3 */
	if (ra_reg != 1 && ra_reg != 3)
		goto out;
	aug = (const char *)r.p;
	if (!memchr(aug, '\0', (size_t)(r.end - r.p)))
		goto out;
	r.p += strlen(aug) + 1;
	code_align = rd_uleb(&r);
	data_align = rd_sleb(&r);
	ra_reg = cie[4] == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
	if (aug[0] == 'z') {
		uint64_t alen = rd_uleb(&r);
		const uint8_t *aend = r.p + alen;

		if (alen > (uint64_t)(r.end - r.p))
			goto out;
		for (const char *a = aug + 1; *a && !r.bad; a++) {
			if (*a == 'R') {
				fde_enc = (uint8_t)rd_fixed(&r, 1);
			} else if (*a == 'P') {
				uint8_t penc = (uint8_t)rd_fixed(&r, 1);
				int n = enc_size(penc);

				if (n < 0)
					goto out;
				rd_skip(&r, (uint64_t)n);
			} else if (*a == 'L') {
				rd_fixed(&r, 1);
			} else {
				goto out;	/* 'S' (signal frame), others */
			}
		}
		r.p = aend;
	} else if (aug[0]) {
		goto out;
	}
	if (r.bad)
		goto out;
	/* FDE: the range, augmentation data, then the instructions */
	{
		struct cfi_rd f = { fde + 4, fde + fde_len, false };
		const uint8_t *cie_ins = r.p;
		size_t cie_ins_len = (size_t)(r.end - r.p);

		if (!rd_encoded(&f, fde_enc, fde_body + 4, &pc_begin) ||
		    !rd_encoded(&f, fde_enc & 0x0f, 0, &pc_range))
			goto out;
		if (pc < pc_begin || pc - pc_begin >= pc_range) {
			row->state = PROBE_ROW_NOINFO;
			goto out;
		}
		if (aug[0] == 'z')
			rd_skip(&f, rd_uleb(&f));
		if (f.bad || probe__cfi_eval(cie_ins, cie_ins_len, f.p,
					     (size_t)(f.end - f.p), code_align,
					     data_align, ra_reg, pc_begin, pc,
					     row) < 0)
			row->state = PROBE_ROW_HARD;
	}
out:
	free(fde);
	free(cie);
}

/* ---- unwinding a record (libunwind, custom accessors) ------------------ */

/* Exported by libunwind-x86_64 (_UPT_find_proc_info uses it), not
 * declared in its headers. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as,
					      unw_word_t ip,
					      unw_dyn_info_t *di,
					      unw_proc_info_t *pi,
					      int need_unwind_info,
					      void *arg);

static const struct umod *
uw_module(struct unwinder *u, uint64_t ip)
{
	const struct umod *md = umods_find(&u->mods, ip);

	/* a library loaded since the last look: at most 5 looks a second */
	if (!md && lp_mono_ns() - u->mods.loaded_ns > 200000000ull &&
	    umods_load(&u->mods, &u->mem, u->pid, NULL) == 0) {
		unw_flush_cache(u->as, 0, 0);
		md = umods_find(&u->mods, ip);
	}
	return md;
}

static int
acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
		   int need_unwind_info, void *arg)
{
	struct unwinder *u = arg;
	const struct umod *md = uw_module(u, ip);
	unw_dyn_info_t di;

	if (!md || !md->count)
		return -UNW_ENOINFO;
	memset(&di, 0, sizeof(di));
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = md->lo;
	di.end_ip = md->hi;
	di.u.rti.segbase = md->hdr;
	di.u.rti.table_data = md->table;
	/* entries are two int32 (initial location, FDE), in words */
	di.u.rti.table_len = md->count * 8 / sizeof(unw_word_t);
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi,
						  need_unwind_info, arg);
}

/* libunwind frees what dwarf_search_unwind_table allocated itself. */
static void
acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	(void)as;
	(void)pi;
	(void)arg;
}

static int
acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	(void)as;
	(void)addr;
	(void)arg;
	return -UNW_ENOINFO;
}

static int
acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
	       int write, void *arg)
{
	struct unwinder *u = arg;
	const struct lpm_alloc_ev *ev = u->ev;

	(void)as;
	if (write)
		return -UNW_EINVAL;
	if (addr >= ev->sp && addr - ev->sp + sizeof(*val) <= ev->stack_len) {
		memcpy(val, ev->stack + (addr - ev->sp), sizeof(*val));
		return 0;
	}
	/* beyond the copy, the stack is gone: only module memory is read */
	if (!umods_find(&u->mods, addr) ||
	    tmem_read(&u->mem, addr, val, sizeof(*val)) < 0)
		return -UNW_EINVAL;
	return 0;
}

static int
acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
	       int write, void *arg)
{
	const struct lpm_alloc_ev *ev = ((struct unwinder *)arg)->ev;

	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	switch (reg) {
	case UNW_X86_64_RIP:
		/* a return address: look up the call instruction's row */
		*val = ev->ip - 1;
		break;
	case UNW_X86_64_RSP:
		*val = ev->sp;
		break;
	case UNW_X86_64_RBP:
		*val = ev->bp;
		break;
	case UNW_X86_64_RBX:
		*val = ev->bx;
		break;
	case UNW_X86_64_R12:
		*val = ev->r12;
		break;
	case UNW_X86_64_R13:
		*val = ev->r13;
		break;
	case UNW_X86_64_R14:
		*val = ev->r14;
		break;
	case UNW_X86_64_R15:
		*val = ev->r15;
		break;
	default:
		/* caller-saved: dead at a return, never needed by CFI */
		*val = 0;
		break;
	}
	return 0;
}

static int
acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
		 int write, void *arg)
{
	(void)as;
	(void)reg;
	(void)val;
	(void)write;
	(void)arg;
	return -UNW_EBADREG;
}

static int
acc_resume(unw_addr_space_t as, unw_cursor_t *cur, void *arg)
{
	(void)as;
	(void)cur;
	(void)arg;
	return -UNW_EINVAL;
}

static int
acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
		  size_t len, unw_word_t *off, void *arg)
{
	(void)as;
	(void)addr;
	(void)buf;
	(void)len;
	(void)off;
	(void)arg;
	return -UNW_ENOINFO;
}

int
probe__uw_init(struct unwinder *u, pid_t pid, struct lp_err *err)
{
	static unw_accessors_t acc = {
		.find_proc_info = acc_find_proc_info,
		.put_unwind_info = acc_put_unwind_info,
		.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
		.access_mem = acc_access_mem,
		.access_reg = acc_access_reg,
		.access_fpreg = acc_access_fpreg,
		.resume = acc_resume,
		.get_proc_name = acc_get_proc_name,
	};
	char path[64];

	u->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	u->mem.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (u->mem.fd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EPERM),
				  "malloc: cannot open '%s'", path);
	u->mem.p = xcalloc(TMEM_PAGES, sizeof(*u->mem.p));
	u->rows = xcalloc(ROWS, sizeof(*u->rows));
	u->check = getenv("LEAKPROBE_UNWIND_CHECK") != NULL;
	if (umods_load(&u->mods, &u->mem, pid, err) < 0)
		return -LP_ENOPROC;
	u->as = unw_create_addr_space(&acc, 0);
	if (!u->as)
		return lp_err_set(err, LP_ENOMEM, "malloc: cannot create a "
				  "libunwind address space");
	/* the per-ip register-state cache makes a step a table lookup */
	unw_set_caching_policy(u->as, UNW_CACHE_PER_THREAD);
	unw_set_cache_size(u->as, 1u << 14, 0);
	return 0;
}

void
probe__uw_release(struct unwinder *u)
{
	if (u->as)
		unw_destroy_addr_space(u->as);
	if (u->mem.fd >= 0)
		close(u->mem.fd);
	free(u->mem.p);
	free(u->rows);
	free(u->mods.m);
	memset(u, 0, sizeof(*u));
	u->mem.fd = -1;
}

/* The cached row for pc (a return address - 1). */
static const struct probe__cfa_row *
uw_row(struct unwinder *u, const struct umod *md, uint64_t pc)
{
	struct row_slot *sl = &u->rows[mix64(pc) & (ROWS - 1)];

	if (sl->pc != pc) {
		cfi_compute(&u->mem, md, pc, &sl->row);
		sl->pc = pc;
	}
	return &sl->row;
}

static bool
snap_word(const struct lpm_alloc_ev *ev, uint64_t addr, uint64_t *val)
{
	if (addr < ev->sp || addr - ev->sp + 8 > ev->stack_len)
		return false;
	memcpy(val, ev->stack + (addr - ev->sp), 8);
	return true;
}

/*
 * Unwind with cached rows.  Returns the frame count, or -1 when a frame
 * needs libunwind (a rule outside the fast subset).
 */
static int
fast_unwind(struct unwinder *u, const struct lpm_alloc_ev *ev,
	    uint64_t *frames, int max, bool *truncated)
{
	uint64_t ip = ev->ip, sp = ev->sp, bp = ev->bp;
	int n = 0;

	frames[n++] = ip;
	*truncated = true;
	while (n < max) {
		const struct umod *md = uw_module(u, ip);
		const struct probe__cfa_row *row;
		uint64_t cfa, ra;

		if (!md || !md->count)
			return n;
		row = uw_row(u, md, ip - 1);
		if (row->state == PROBE_ROW_HARD)
			return -1;
		if (row->state == PROBE_ROW_OUTER) {
			*truncated = false;
			return n;
		}
		if (row->state != PROBE_ROW_OK)
			return n;
		cfa = (row->cfa_reg == DW_RSP ? sp : bp) +
		      (uint64_t)(int64_t)row->cfa_off;
		if (cfa <= sp || !snap_word(ev, cfa + (uint64_t)(int64_t)
					    row->ra_off, &ra) ||
		    (row->rbp_saved &&
		     !snap_word(ev, cfa + (uint64_t)(int64_t)row->rbp_off,
				&bp)))
			return n;
		if (!ra || !umods_find(&u->mods, ra))
			return n;
		sp = cfa;
		ip = ra;
		frames[n++] = ip;
	}
	return n;
}

/* The same with libunwind. */
static int
slow_unwind(struct unwinder *u, const struct lpm_alloc_ev *ev,
	    uint64_t *frames, int max, bool *truncated)
{
	unw_cursor_t cur;
	unw_word_t prev_sp = ev->sp;
	int n = 0;

	u->ev = ev;
	frames[n++] = ev->ip;
	*truncated = true;
	if (!uw_module(u, ev->ip) || unw_init_remote(&cur, u->as, u) < 0)
		return n;
	while (n < max) {
		unw_word_t ip, sp;
		int r = unw_step(&cur);

		if (r == 0) {
			*truncated = false;
			break;
		}
		if (r < 0 || unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 ||
		    unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 || !ip ||
		    sp <= prev_sp || !umods_find(&u->mods, ip))
			break;
		frames[n++] = ip;
		prev_sp = sp;
	}
	return n;
}

/*
 * probe__unwind_fn for real records: frames[0] is the return address
 * into the allocator's caller, then one return address per frame.  An
 * unwind that ends at the outermost frame is complete; one that ends
 * because the copy was too short, or the code has no unwind info, is
 * truncated.  With LEAKPROBE_UNWIND_CHECK set, every stack is unwound
 * both ways and differences are counted (see probe_malloc_stop).
 */
int
probe__uw_unwind(void *arg, const struct lpm_alloc_ev *ev, uint64_t *frames, int max,
	  bool *truncated)
{
	struct unwinder *u = arg;
	int n = fast_unwind(u, ev, frames, max, truncated);

	if (n < 0) {
		u->slow++;
		return slow_unwind(u, ev, frames, max, truncated);
	}
	u->fast++;
	if (u->check) {
		uint64_t other[MAX_FRAMES];
		bool t2;
		int m = slow_unwind(u, ev, other, max, &t2), k = 0;

		while (k < n && k < m && frames[k] == other[k])
			k++;
		u->checked++;
		if (k != n || k != m) {
			u->differ++;
			if (u->differ <= 5)
				lp_debug("malloc: unwind check: fast path %d "
					 "frames, libunwind %d, first "
					 "difference at frame %d (%#" PRIx64
					 ")", n, m, k, k < n ? frames[k] : 0);
		}
	}
	return n;
}
