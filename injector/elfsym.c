/*
 * One ELF file of a target, loaded with libelf: its PT_LOAD segments,
 * .dynsym and .symtab (copied into owned memory so the file can be closed
 * at once: a target maps ~50 files), a by-address index, the build-id,
 * the location of .text and of the .eh_frame_hdr search table, and the
 * symbols of a separate debug file when one is installed.
 *
 * Addresses here are link-time virtual addresses (st_value, p_vaddr);
 * the runtime address is bias + vaddr, see elf__bias().
 */
#include "injector/injector_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

/* Mapping granularity: mmap offsets and addresses are 4 KiB aligned. */
#define PAGE_MASK_4K	0xfffULL

/* DWARF pointer encodings used by .eh_frame_hdr */
#define DW_EH_PE_udata4	0x03
#define DW_EH_PE_udata8	0x04
#define DW_EH_PE_sdata4	0x0b
#define DW_EH_PE_sdata8	0x0c
#define DW_EH_PE_datarel 0x30

/* Names of kept symbols, packed; offsets fit in elf_sym.name. */
struct strpool {
	char *buf;
	size_t len, cap;
};

/* Append the first n bytes of s and a NUL. */
static int
pool_add(struct strpool *p, const char *s, size_t n, uint32_t *off)
{
	if (p->len + n + 1 > UINT32_MAX)
		return -1;
	p->buf = xgrow(p->buf, &p->cap, p->len + n + 1, 1);
	memcpy(p->buf + p->len, s, n);
	p->buf[p->len + n] = '\0';
	*off = (uint32_t)p->len;
	p->len += n + 1;
	return 0;
}

/* Name of a symbol of f (owned by f).  Never NULL. */
const char *
elf__sym_name(const struct elf_file *f, const struct elf_sym *s)
{
	const char *pool = s->from_symtab ? f->tabstr : f->dynstr;

	return pool ? pool + s->name : "";
}

/*
 * Copy the defined functions/objects of one symbol table.  Undefined
 * entries (imports), section/file symbols, TLS offsets and absolute
 * values are dropped: they never name a mapped address.
 */
static void
load_table(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, Elf_Data *versym,
	   bool symtab, struct elf_sym **out, size_t *nout, char **str,
	   size_t *str_len)
{
	struct strpool pool = { 0 };
	struct elf_sym *syms;
	size_t count, nver = 0, n = 0;
	Elf_Data *d;

	d = elf_getdata(scn, NULL);
	if (!d || !d->d_size)
		return;
	count = d->d_size / gelf_fsize(e, ELF_T_SYM, 1, EV_CURRENT);
	if (versym)
		nver = versym->d_size / sizeof(GElf_Versym);
	syms = xcalloc(count, sizeof(*syms));
	for (size_t i = 1; i < count; i++) {
		GElf_Sym s;
		GElf_Versym ver;
		const char *name, *at;
		int type, bind;
		uint32_t off;

		if (!gelf_getsym(d, (int)i, &s))
			break;
		type = GELF_ST_TYPE(s.st_info);
		bind = GELF_ST_BIND(s.st_info);
		if (s.st_shndx == SHN_UNDEF || s.st_shndx == SHN_ABS ||
		    s.st_shndx == SHN_COMMON || !s.st_name)
			continue;
		if (type != STT_FUNC && type != STT_OBJECT &&
		    type != STT_GNU_IFUNC &&
		    !(type == STT_NOTYPE && (s.st_size || bind != STB_LOCAL)))
			continue;
		name = elf_strptr(e, sh->sh_link, s.st_name);
		if (!name || !*name)
			continue;
		/* .symtab spells versions into names: "foo@@V2" is the
		 * default version of foo, "foo@V1" an older one */
		at = symtab ? strchr(name, '@') : NULL;
		if (pool_add(&pool, name, at ? (size_t)(at - name) :
			     strlen(name), &off) < 0)
			continue;
		syms[n].value = s.st_value;
		syms[n].size = s.st_size;
		syms[n].name = off;
		syms[n].type = (uint8_t)type;
		syms[n].bind = (uint8_t)bind;
		syms[n].from_symtab = symtab;
		if (at)
			syms[n].hidden = at[1] != '@';
		else if (i < nver && gelf_getversym(versym, (int)i, &ver))
			syms[n].hidden = (ver & 0x8000) != 0;
		n++;
	}
	if (!n) {
		free(syms);
		free(pool.buf);
		return;
	}
	*out = xrealloc(syms, n * sizeof(*syms));
	*nout = n;
	*str = xrealloc(pool.buf, pool.len);
	*str_len = pool.len;
}

/*
 * Rank of a symbol among those sharing an address: the name printed for
 * it.  .symtab first (DESIGN §9), functions, non-local, then the public
 * spelling: glibc defines getpid as a weak alias of the global __getpid,
 * and malloc beside __libc_malloc, so a leading underscore costs more
 * than weak binding.  Default versions before old ones.
 */
static int
sym_rank(const struct elf_file *f, const struct elf_sym *s)
{
	int r = 0;

	if (!s->from_symtab)
		r += 64;
	if (s->type != STT_FUNC && s->type != STT_GNU_IFUNC)
		r += 32;
	if (s->bind == STB_LOCAL)
		r += 16;
	if (elf__sym_name(f, s)[0] == '_')
		r += 8;
	if (s->bind == STB_WEAK)
		r += 4;
	if (s->hidden)
		r += 2;
	return r;
}

static int
by_addr_cmp(const void *a, const void *b, void *arg)
{
	const struct elf_file *sort_file = arg;
	const struct elf_sym *x = *(const struct elf_sym *const *)a;
	const struct elf_sym *y = *(const struct elf_sym *const *)b;
	const char *nx, *ny;
	size_t lx, ly;
	int rx, ry;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	rx = sym_rank(sort_file, x);
	ry = sym_rank(sort_file, y);
	if (rx != ry)
		return rx - ry;
	nx = elf__sym_name(sort_file, x);
	ny = elf__sym_name(sort_file, y);
	lx = strlen(nx);
	ly = strlen(ny);
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(nx, ny);
}

static void
add_sized(const struct elf_sym *syms, size_t n, struct elf_sym **out,
	  size_t *k)
{
	for (size_t i = 0; i < n; i++)
		if (syms[i].size && syms[i].type != STT_NOTYPE)
			out[(*k)++] = (struct elf_sym *)&syms[i];
}

/* Sorted index of both tables for address lookups, one name per address. */
static void
build_by_addr(struct elf_file *f)
{
	size_t k = 0, w = 0;

	free(f->by_addr);
	f->by_addr = NULL;
	f->nby_addr = 0;
	if (!f->ndyn && !f->ntab)
		return;
	f->by_addr = xmalloc((f->ndyn + f->ntab) * sizeof(*f->by_addr));
	add_sized(f->tab, f->ntab, f->by_addr, &k);
	add_sized(f->dyn, f->ndyn, f->by_addr, &k);
	qsort_r(f->by_addr, k, sizeof(*f->by_addr), by_addr_cmp, f);
	/* aliases: keep the best-ranked symbol of each address */
	for (size_t i = 0; i < k; i++)
		if (!w || f->by_addr[w - 1]->value != f->by_addr[i]->value)
			f->by_addr[w++] = f->by_addr[i];
	f->nby_addr = w;
}

static void
read_build_id(Elf_Data *d, char out[41])
{
	GElf_Nhdr nh;
	size_t off = 0, name_off, desc_off, next;

	while ((next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		const uint8_t *desc = (const uint8_t *)d->d_buf + desc_off;

		off = next;
		if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
		    memcmp((const char *)d->d_buf + name_off, "GNU", 4))
			continue;
		for (size_t i = 0; i < nh.n_descsz && i < 20; i++)
			snprintf(out + 2 * i, 3, "%02x", desc[i]);
		return;
	}
}

/*
 * .eh_frame_hdr: version 1, then the encodings of eh_frame_ptr,
 * fde_count and the table, then eh_frame_ptr, fde_count, and the sorted
 * (initial location, FDE address) table.  Only the layout every linker
 * writes (udata4 count, datarel sdata4 table) is used by the unwinder.
 */
static void
read_eh_frame_hdr(struct elf_file *f, int fd, const GElf_Phdr *ph)
{
	uint8_t h[16];
	size_t ptr_size;
	uint32_t count;

	if (ph->p_filesz < 12 ||
	    pread(fd, h, sizeof(h), (off_t)ph->p_offset) < 12)
		return;
	if (h[0] != 1 || h[2] != DW_EH_PE_udata4 ||
	    h[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return;
	switch (h[1] & 0x0f) {
	case DW_EH_PE_udata4:
	case DW_EH_PE_sdata4:
		ptr_size = 4;
		break;
	case DW_EH_PE_udata8:
	case DW_EH_PE_sdata8:
		ptr_size = 8;
		break;
	default:
		return;
	}
	memcpy(&count, h + 4 + ptr_size, sizeof(count));
	if (4 + ptr_size + 4 + (uint64_t)count * 8 > ph->p_filesz)
		return;
	f->eh_hdr_vaddr = ph->p_vaddr;
	f->eh_table_vaddr = ph->p_vaddr + 4 + ptr_size + 4;
	f->eh_fde_count = count;
}

/* ---- .eh_frame without .eh_frame_hdr ---------------------------------- */

#define DW_EH_PE_absptr	0x00
#define DW_EH_PE_udata2	0x02
#define DW_EH_PE_sdata2	0x0a
#define DW_EH_PE_pcrel	0x10
#define DW_EH_PE_omit	0xff

static uint64_t
rd_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i > 0; i--)
		v = v << 8 | p[i - 1];
	return v;
}

static int
skip_leb(const uint8_t *d, size_t end, size_t *pos)
{
	while (*pos < end)
		if (!(d[(*pos)++] & 0x80))
			return 0;
	return -1;
}

/* Size of a pointer in this encoding, or 0 when not fixed-size. */
static size_t
enc_size(int enc)
{
	switch (enc & 0x0f) {
	case DW_EH_PE_absptr:
	case DW_EH_PE_udata8:
	case DW_EH_PE_sdata8:
		return 8;
	case DW_EH_PE_udata4:
	case DW_EH_PE_sdata4:
		return 4;
	case DW_EH_PE_udata2:
	case DW_EH_PE_sdata2:
		return 2;
	default:
		return 0;
	}
}

/* Read an absolute or pc-relative pointer at link-time address vaddr. */
static int
read_encoded(const uint8_t *p, size_t avail, int enc, uint64_t vaddr,
	     uint64_t *out)
{
	size_t n = enc_size(enc);
	uint64_t v;

	if (enc == DW_EH_PE_omit || !n || n > avail ||
	    (enc & 0x70) > DW_EH_PE_pcrel || (enc & 0x80))
		return -1;
	v = rd_le(p, n);
	if ((enc & 0x08) && n < 8 && (v >> (n * 8 - 1)))	/* signed */
		v |= ~0ULL << (n * 8);
	if ((enc & 0x70) == DW_EH_PE_pcrel)
		v += vaddr;
	*out = v;
	return 0;
}

/* The FDE pointer encoding ('R' augmentation) of the CIE at off. */
static int
cie_fde_encoding(const uint8_t *d, size_t size, size_t off)
{
	size_t pos, end, hdr = 4;
	uint64_t len;
	const char *aug;
	int version;

	if (off + 4 > size)
		return -1;
	len = rd_le(d + off, 4);
	if (len == 0xffffffff) {
		if (off + 12 > size)
			return -1;
		len = rd_le(d + off + 4, 8);
		hdr = 12;
	}
	if (len < 5 || len > size - off - hdr)
		return -1;
	pos = off + hdr;
	end = pos + len;
	if (rd_le(d + pos, 4) != 0)
		return -1;	/* not a CIE */
	pos += 4;
	version = d[pos++];
	aug = (const char *)d + pos;
	while (pos < end && d[pos])
		pos++;
	if (pos++ >= end || (version != 1 && version != 3 && version != 4))
		return -1;
	if (strstr(aug, "eh"))
		pos += 8;
	if (version == 4)
		pos += 2;	/* address size, segment size */
	if (skip_leb(d, end, &pos) < 0 || skip_leb(d, end, &pos) < 0)
		return -1;	/* code and data alignment */
	if (version == 1)
		pos++;
	else if (skip_leb(d, end, &pos) < 0)
		return -1;	/* return address register */
	if (aug[0] != 'z')
		return DW_EH_PE_absptr;
	if (skip_leb(d, end, &pos) < 0)
		return -1;
	for (const char *a = aug + 1; *a && pos < end; a++) {
		switch (*a) {
		case 'R':
			return d[pos];
		case 'P': {
			int penc = d[pos++];
			size_t n = enc_size(penc);

			if (!n)
				return -1;
			pos += n;
			break;
		}
		case 'L':
			pos++;
			break;
		case 'S':
		case 'B':
			break;
		default:
			return -1;
		}
	}
	return DW_EH_PE_absptr;
}

struct fde_ent {
	uint64_t pc, fde;
};

static int
fde_cmp(const void *a, const void *b)
{
	const struct fde_ent *x = a, *y = b;

	return x->pc < y->pc ? -1 : x->pc > y->pc;
}

/*
 * Walk .eh_frame (link-time address vaddr) and build the table that
 * .eh_frame_hdr would hold: (initial location, FDE address) sorted by
 * location, as int32 offsets from vaddr.
 */
static void
build_fde_table(struct elf_file *f, const uint8_t *d, size_t size,
		uint64_t vaddr)
{
	struct fde_ent *ents = NULL;
	size_t n = 0, cap = 0, off = 0;
	size_t last_cie = SIZE_MAX;
	int last_enc = -1;

	while (off + 4 <= size) {
		uint64_t len = rd_le(d + off, 4), pc;
		size_t hdr = 4, body, end;
		uint32_t id;

		if (!len)
			break;		/* terminator */
		if (len == 0xffffffff) {
			if (off + 12 > size)
				break;
			len = rd_le(d + off + 4, 8);
			hdr = 12;
		}
		if (len < 4 || len > size - off - hdr)
			break;
		body = off + hdr;
		end = body + len;
		id = (uint32_t)rd_le(d + body, 4);
		if (id && id <= body) {		/* an FDE */
			size_t cie = body - id;

			if (cie != last_cie) {
				last_cie = cie;
				last_enc = cie_fde_encoding(d, size, cie);
			}
			if (last_enc >= 0 &&
			    read_encoded(d + body + 4, end - body - 4, last_enc,
					 vaddr + body + 4, &pc) == 0 && pc) {
				ents = xgrow(ents, &cap, n + 1, sizeof(*ents));
				ents[n].pc = pc;
				ents[n++].fde = vaddr + off;
			}
		}
		off = end;
	}
	if (!n)
		goto out;
	qsort(ents, n, sizeof(*ents), fde_cmp);
	f->eh_local = xmalloc(n * 2 * sizeof(*f->eh_local));
	for (size_t i = 0; i < n; i++) {
		int64_t pc = (int64_t)(ents[i].pc - vaddr);
		int64_t fde = (int64_t)(ents[i].fde - vaddr);

		if (pc < INT32_MIN || pc > INT32_MAX)
			continue;
		f->eh_local[2 * f->eh_local_n] = (int32_t)pc;
		f->eh_local[2 * f->eh_local_n + 1] = (int32_t)fde;
		f->eh_local_n++;
	}
	f->eh_frame_vaddr = vaddr;
out:
	free(ents);
}

static int
load_phdrs(struct elf_file *f, Elf *e, int fd, struct lp_err *err)
{
	size_t n;
	bool have_lo = false;

	if (elf_getphdrnum(e, &n) < 0)
		return lp_err_set(err, LP_EPARSE, "elf: '%s': %s", f->path,
				  elf_errmsg(-1));
	f->segs = xcalloc(n, sizeof(*f->segs));
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		struct elf_load_seg *s;

		if (!gelf_getphdr(e, (int)i, &ph))
			continue;
		if (ph.p_type == PT_GNU_EH_FRAME) {
			read_eh_frame_hdr(f, fd, &ph);
			continue;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		s = &f->segs[f->nsegs++];
		s->vaddr = ph.p_vaddr;
		s->memsz = ph.p_memsz;
		s->offset = ph.p_offset;
		s->filesz = ph.p_filesz;
		s->flags = ph.p_flags;
		if (!have_lo || ph.p_vaddr < f->lo_vaddr)
			f->lo_vaddr = ph.p_vaddr;
		if (ph.p_vaddr + ph.p_memsz > f->hi_vaddr)
			f->hi_vaddr = ph.p_vaddr + ph.p_memsz;
		have_lo = true;
	}
	if (!f->nsegs)
		return lp_err_set(err, LP_EPARSE,
				  "elf: '%s' has no loadable segment", f->path);
	return 0;
}

static void
read_debuglink(struct elf_file *f, Elf_Scn *scn)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	const char *name;
	size_t len, crc_off;

	if (!d || d->d_size < 8)
		return;
	name = d->d_buf;
	len = strnlen(name, d->d_size);
	crc_off = (len + 4) & ~(size_t)3;
	if (!len || len == d->d_size || crc_off + 4 > d->d_size ||
	    strchr(name, '/'))
		return;
	f->debuglink = xstrndup(name, len);
	memcpy(&f->debuglink_crc, (const char *)d->d_buf + crc_off, 4);
}

static int
load_sections(struct elf_file *f, Elf *e)
{
	Elf_Scn *scn = NULL, *dynsym = NULL, *symtab = NULL, *eh = NULL;
	GElf_Shdr dyn_sh, tab_sh, eh_sh = { 0 };
	Elf_Data *versym = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(e, &shstrndx) < 0)
		return 0;	/* no section headers: PT_* only */
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		switch (sh.sh_type) {
		case SHT_DYNSYM:
			dynsym = scn;
			dyn_sh = sh;
			break;
		case SHT_SYMTAB:
			symtab = scn;
			tab_sh = sh;
			break;
		case SHT_GNU_versym:
			versym = elf_getdata(scn, NULL);
			break;
		case SHT_NOTE:
			if (!f->build_id[0]) {
				Elf_Data *d = elf_getdata(scn, NULL);

				if (d)
					read_build_id(d, f->build_id);
			}
			break;
		default:
			break;
		}
		if (!name)
			continue;
		if (!strcmp(name, ".text")) {
			f->text_vaddr = sh.sh_addr;
			f->text_size = sh.sh_size;
			f->text_offset = sh.sh_offset;
		} else if (!strcmp(name, ".gnu_debuglink") &&
			   sh.sh_type == SHT_PROGBITS) {
			read_debuglink(f, scn);
		} else if (!strcmp(name, ".eh_frame") &&
			   sh.sh_type != SHT_NOBITS) {
			eh = scn;
			eh_sh = sh;
		}
	}
	if (eh && !f->eh_fde_count) {
		Elf_Data *d = elf_rawdata(eh, NULL);

		if (d && d->d_buf)
			build_fde_table(f, d->d_buf, d->d_size,
					eh_sh.sh_addr);
	}
	if (dynsym)
		load_table(e, dynsym, &dyn_sh, versym, false, &f->dyn,
			   &f->ndyn, &f->dynstr, &f->dynstr_len);
	if (symtab)
		load_table(e, symtab, &tab_sh, NULL, true, &f->tab, &f->ntab,
			   &f->tabstr, &f->tabstr_len);
	return 0;
}

/* Build-id from PT_NOTE when the file has no section headers. */
static void
build_id_from_phdrs(struct elf_file *f, Elf *e)
{
	size_t n;

	if (elf_getphdrnum(e, &n) < 0)
		return;
	for (size_t i = 0; i < n && !f->build_id[0]; i++) {
		GElf_Phdr ph;
		Elf_Data *d;

		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		d = elf_getdata_rawchunk(e, (int64_t)ph.p_offset, ph.p_filesz,
					 ELF_T_NHDR);
		if (d)
			read_build_id(d, f->build_id);
	}
}

/*
 * Open and index an ELF64 x86-64 executable or shared object.  Other
 * files (fonts, locale archives, devices) are rejected after one read of
 * the magic.  The returned file owns all its memory and no descriptor;
 * free it with elf__free().  NULL with err filled (LP_EPARSE, LP_EPERM,
 * LP_EIO) on failure.
 */
struct elf_file *
elf__open(const char *path, struct lp_err *err)
{
	unsigned char magic[SELFMAG];
	struct elf_file *f = NULL;
	GElf_Ehdr eh;
	struct stat st;
	Elf *e = NULL;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		lp_err_sys(err, lp_errno_code(errno, LP_EIO), "elf: open '%s'",
			   path);
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		lp_err_set(err, LP_EPARSE, "elf: '%s' is not a regular file",
			   path);
		goto out;
	}
	if (pread(fd, magic, SELFMAG, 0) != SELFMAG ||
	    memcmp(magic, ELFMAG, SELFMAG)) {
		lp_err_set(err, LP_EPARSE, "elf: '%s' is not an ELF file",
			   path);
		goto out;
	}
	if (elf_version(EV_CURRENT) == EV_NONE) {
		lp_err_set(err, LP_EPARSE, "elf: libelf: %s", elf_errmsg(-1));
		goto out;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || !gelf_getehdr(e, &eh)) {
		lp_err_set(err, LP_EPARSE, "elf: '%s': %s", path,
			   elf_errmsg(-1));
		goto out;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) {
		lp_err_set(err, LP_EPARSE, "elf: '%s' is not an x86-64 ELF64 "
			   "file", path);
		goto out;
	}
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
		lp_err_set(err, LP_EPARSE, "elf: '%s' is not an executable or "
			   "shared object", path);
		goto out;
	}
	f = xcalloc(1, sizeof(*f));
	f->path = xstrdup(path);
	f->e_type = eh.e_type;
	if (load_phdrs(f, e, fd, err) < 0 || load_sections(f, e) < 0) {
		elf__free(f);
		f = NULL;
		goto out;
	}
	if (!f->build_id[0])
		build_id_from_phdrs(f, e);
	build_by_addr(f);
out:
	if (e)
		elf_end(e);
	close(fd);
	return f;
}

/* Free f and everything it owns.  NULL is a no-op. */
void
elf__free(struct elf_file *f)
{
	if (!f)
		return;
	free(f->path);
	free(f->segs);
	free(f->dyn);
	free(f->tab);
	free(f->dynstr);
	free(f->tabstr);
	free(f->by_addr);
	free(f->debuglink);
	free(f->eh_local);
	free(f);
}

/*
 * Defined symbol `name` in one table; *out points into f.  Among
 * duplicates (versions, local copies), prefers a default-version global.
 */
int
elf__lookup_table(const struct elf_file *f, const char *name, bool symtab,
		  const struct elf_sym **out)
{
	const struct elf_sym *syms = symtab ? f->tab : f->dyn;
	size_t n = symtab ? f->ntab : f->ndyn;
	const struct elf_sym *best = NULL;
	int best_rank = 99;

	for (size_t i = 0; i < n; i++) {
		int rank;

		if (strcmp(elf__sym_name(f, &syms[i]), name))
			continue;
		rank = (syms[i].hidden ? 2 : 0) +
		       (syms[i].bind == STB_LOCAL ? 1 : 0);
		if (rank < best_rank) {
			best = &syms[i];
			best_rank = rank;
			if (!rank)
				break;
		}
	}
	if (!best)
		return -LP_ENOSYM;
	*out = best;
	return 0;
}

/* .dynsym, then .symtab (including a merged debug file). */
int
elf__lookup(const struct elf_file *f, const char *name,
	    const struct elf_sym **out)
{
	if (elf__lookup_table(f, name, false, out) == 0)
		return 0;
	return elf__lookup_table(f, name, true, out);
}

/* How far back to look for an enclosing symbol that starts before the
 * nearest one (nested objects, overlapping aliases of different sizes). */
#define FIND_ADDR_BACKTRACK 8

/*
 * The symbol whose [st_value, st_value + st_size) holds link-time address
 * vaddr, by binary search of by_addr; NULL when none does (never the
 * nearest symbol below).  Points into f.
 */
const struct elf_sym *
elf__find_addr(const struct elf_file *f, uint64_t vaddr)
{
	size_t lo = 0, hi = f->nby_addr;

	/* first entry with value > vaddr */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->by_addr[mid]->value <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, k = 0; i > 0 && k < FIND_ADDR_BACKTRACK; i--, k++) {
		const struct elf_sym *s = f->by_addr[i - 1];

		if (vaddr - s->value < s->size)
			return s;
	}
	return NULL;
}

/*
 * Load bias of a mapping at map_start of file offset map_off, given the
 * file's PT_LOADs: 0, or -LP_EINVAL when no PT_LOAD holds the offset.
 */
int
elf__bias_segs(const struct elf_load_seg *segs, size_t nsegs,
	       uint64_t map_start, uint64_t map_off, uint64_t *bias)
{
	/*
	 * The loader maps each PT_LOAD from the page holding p_offset to
	 * the page holding p_vaddr, so a mapping's offset is p_offset
	 * rounded down, and vaddr - offset is the same for every byte of
	 * the segment.  A page may hold the end of one segment and the
	 * start of the next (p_offset != p_vaddr, e.g. a RW segment after
	 * text): a segment that *starts* at this page wins over one that
	 * merely contains it, since the loader starts a mapping there.
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nsegs; i++) {
			const struct elf_load_seg *s = &segs[i];
			uint64_t lo = s->offset & ~PAGE_MASK_4K;
			uint64_t hi = s->offset + s->filesz;
			bool hit;

			if (!s->filesz)
				continue;
			hit = pass == 0 ? map_off == lo
					: map_off >= lo && map_off < hi;
			if (hit) {
				*bias = map_start - map_off -
					(s->vaddr - s->offset);
				return 0;
			}
		}
	}
	return -LP_EINVAL;
}

/* elf__bias_segs() on f's segments; see injector_int.h. */
int
elf__bias(const struct elf_file *f, uint64_t map_start, uint64_t map_off,
	  uint64_t *bias)
{
	return elf__bias_segs(f->segs, f->nsegs, map_start, map_off, bias);
}

/*
 * Read len file bytes at link-time address vaddr (inside one PT_LOAD's
 * file part) into buf; the file is opened for the occasion.
 */
int
elf__read(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len,
	  struct lp_err *err)
{
	const struct elf_load_seg *seg = NULL;
	ssize_t n;
	int fd;

	for (size_t i = 0; i < f->nsegs; i++) {
		const struct elf_load_seg *s = &f->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr <= s->filesz &&
		    len <= s->filesz - (vaddr - s->vaddr)) {
			seg = s;
			break;
		}
	}
	if (!seg)
		return lp_err_set(err, LP_EFAULT, "elf: '%s': no file bytes "
				  "at 0x%" PRIx64 "+%zu", f->path, vaddr, len);
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				  "elf: open '%s'", f->path);
	n = pread(fd, buf, len, (off_t)(seg->offset + (vaddr - seg->vaddr)));
	if (n < 0 || (size_t)n != len) {
		if (n >= 0)
			errno = EIO;
		lp_err_sys(err, LP_EIO, "elf: read '%s'", f->path);
		close(fd);
		return -LP_EIO;
	}
	close(fd);
	return 0;
}

/* CRC-32 (IEEE, as zlib's crc32 and .gnu_debuglink use) of a file. */
static int
file_crc32(const char *path, uint32_t *out)
{
	static const uint32_t poly = 0xedb88320u;
	uint32_t table[256], crc = 0xffffffffu;
	unsigned char buf[65536];
	ssize_t n;
	int fd;

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ poly : c >> 1;
		table[i] = c;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	close(fd);
	if (n < 0)
		return -1;
	*out = ~crc;
	return 0;
}

/* Try one candidate debug file; merge its .symtab when it matches. */
static bool
try_debug_file(struct elf_file *f, const char *cand, bool by_link)
{
	struct elf_file *d;
	uint32_t crc;
	bool ok;

	if (access(cand, R_OK) < 0 || !strcmp(cand, f->path))
		return false;
	d = elf__open(cand, NULL);
	if (!d)
		return false;
	if (f->build_id[0] && d->build_id[0])
		ok = !strcmp(f->build_id, d->build_id);
	else if (by_link)
		ok = file_crc32(cand, &crc) == 0 && crc == f->debuglink_crc;
	else
		ok = true;	/* found under its build-id */
	if (ok && d->ntab) {
		free(f->tab);
		free(f->tabstr);
		f->tab = d->tab;
		f->ntab = d->ntab;
		f->tabstr = d->tabstr;
		f->tabstr_len = d->tabstr_len;
		d->tab = NULL;
		d->tabstr = NULL;
		d->ntab = 0;
		f->has_debug = true;
		build_by_addr(f);
	}
	elf__free(d);
	return ok && f->has_debug;
}

static bool try_debugf(struct elf_file *f, bool by_link, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));

/* try_debug_file() on a formatted path; a path too long is no match. */
static bool
try_debugf(struct elf_file *f, bool by_link, const char *fmt, ...)
{
	char cand[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cand, sizeof(cand), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cand))
		return false;
	return try_debug_file(f, cand, by_link);
}

/*
 * Debug files are looked up as gdb does, under root (the target's
 * /proc/PID/root, or "" for our own namespace): first
 * /usr/lib/debug/.build-id/xx/rest.debug, then the .gnu_debuglink name
 * beside the file, in its .debug/ directory, and under /usr/lib/debug/
 * followed by the file's directory.  A match needs the same build-id
 * (or, without one, the debuglink CRC).
 */
void
elf__load_debug(struct elf_file *f, const char *root)
{
	const char *inner, *slash;
	size_t rlen;
	int dlen;

	if (!f || f->has_debug)
		return;
	if (!root)
		root = "";
	rlen = strlen(root);
	if (strlen(f->build_id) > 2 &&
	    try_debugf(f, false, "%s/usr/lib/debug/.build-id/%.2s/%s.debug",
		       root, f->build_id, f->build_id + 2))
		return;
	if (!f->debuglink)
		return;
	/* the file's directory as the target sees it */
	inner = f->path;
	if (rlen && !strncmp(inner, root, rlen) && inner[rlen] == '/')
		inner += rlen;
	else if (rlen)
		return;	/* reached through map_files: no directory */
	slash = strrchr(inner, '/');
	if (!slash)
		return;
	dlen = (int)(slash - inner);
	if (try_debugf(f, true, "%s%.*s/%s", root, dlen, inner, f->debuglink) ||
	    try_debugf(f, true, "%s%.*s/.debug/%s", root, dlen, inner,
		       f->debuglink))
		return;
	try_debugf(f, true, "%s/usr/lib/debug%.*s/%s", root, dlen, inner,
		   f->debuglink);
}
