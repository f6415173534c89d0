/*
 * One ELF file of a target, loaded with libelf part by part, on first
 * need: opening it reads only the program headers (PT_LOAD segments for
 * the load bias, the .eh_frame_hdr search table for the unwinder); the
 * DT_GNU_HASH bloom filter, .dynsym, .symtab (or a separate debug
 * file's) and the by-address index each load when a lookup needs them.
 * Tables are copied into owned memory so the file is closed at once: a
 * target maps ~50 files.
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

/* Bounds on what a hostile file may make us allocate or read. */
#define MAX_PHDRS	4096
#define MAX_DYNAMIC	(64 * 1024)	/* bytes of PT_DYNAMIC */
#define MAX_BLOOM_WORDS	(1u << 20)

/* Name of a symbol of f (owned by f).  Never NULL. */
const char *
elf__sym_name(const struct elf_file *f, const struct elf_sym *s)
{
	const char *pool = s->from_symtab ? f->tabstr : f->dynstr;

	return pool ? pool + s->name : "";
}

/*
 * Copy the defined functions/objects of one symbol table, and its whole
 * string table (one copy, not one per name).  Undefined entries
 * (imports), section/file symbols, TLS offsets, absolute values and
 * symbols of sections not loaded (alloc[shndx] false: glibc's
 * .gnu.warning.* at value 0) are dropped: they never name a mapped
 * address.  .symtab spells versions
 * into names ("foo@@V2" is the default version of foo, "foo@V1" an
 * older one): the copy is cut at the '@', once every name was read,
 * since the linker shares string tails between symbols.
 */
static void
load_table(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, Elf_Data *versym,
	   const bool *alloc, size_t nalloc, bool symtab,
	   struct elf_sym **out, size_t *nout, char **str, size_t *str_len)
{
	struct elf_sym *syms = NULL;
	uint32_t *cuts = NULL;
	size_t count, nver = 0, n = 0, ncut = 0, slen;
	Elf_Data *d, *sd;
	Elf_Scn *strscn;
	char *strings = NULL;

	d = elf_getdata(scn, NULL);
	strscn = elf_getscn(e, sh->sh_link);
	sd = strscn ? elf_getdata(strscn, NULL) : NULL;
	if (!d || !d->d_buf || !d->d_size || !sd || !sd->d_buf ||
	    !sd->d_size || sd->d_size >= UINT32_MAX)
		return;
	slen = sd->d_size;
	count = d->d_size / gelf_fsize(e, ELF_T_SYM, 1, EV_CURRENT);
	if (versym && versym->d_buf)
		nver = versym->d_size / sizeof(GElf_Versym);
	strings = xmalloc(slen + 1);
	memcpy(strings, sd->d_buf, slen);
	strings[slen] = '\0';
	syms = xcalloc(count, sizeof(*syms));
	if (symtab)
		cuts = xcalloc(count, sizeof(*cuts));
	for (size_t i = 1; i < count; i++) {
		GElf_Sym s;
		GElf_Versym ver;
		const char *name, *at;
		int type, bind;

		if (!gelf_getsym(d, (int)i, &s))
			break;
		type = GELF_ST_TYPE(s.st_info);
		bind = GELF_ST_BIND(s.st_info);
		if (s.st_shndx == SHN_UNDEF || s.st_shndx == SHN_ABS ||
		    s.st_shndx == SHN_COMMON || !s.st_name ||
		    s.st_name >= slen)
			continue;
		if (s.st_shndx < nalloc && !alloc[s.st_shndx])
			continue;
		if (type != STT_FUNC && type != STT_OBJECT &&
		    type != STT_GNU_IFUNC &&
		    !(type == STT_NOTYPE && (s.st_size || bind != STB_LOCAL)))
			continue;
		name = strings + s.st_name;
		at = symtab ? strchr(name, '@') : NULL;
		if (!*name || at == name)
			continue;
		syms[n].value = s.st_value;
		syms[n].size = s.st_size;
		syms[n].name = s.st_name;
		syms[n].type = (uint8_t)type;
		syms[n].bind = (uint8_t)bind;
		syms[n].from_symtab = symtab;
		if (at) {
			syms[n].hidden = at[1] != '@';
			cuts[ncut++] = (uint32_t)(at - strings);
		} else if (i < nver && gelf_getversym(versym, (int)i, &ver)) {
			syms[n].hidden = (ver & 0x8000) != 0;
		}
		n++;
	}
	for (size_t i = 0; i < ncut; i++)
		strings[cuts[i]] = '\0';
	free(cuts);
	if (!n) {
		free(syms);
		free(strings);
		return;
	}
	*out = xrealloc(syms, n * sizeof(*syms));
	*nout = n;
	*str = strings;
	*str_len = slen;
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

/* One sized symbol in the by-address sort: idx counts .symtab entries
 * first, then .dynsym ones. */
struct addr_ent {
	uint64_t value;
	uint32_t idx;
	uint32_t rank;		/* sym_rank() */
};

static struct elf_sym *
ent_sym(const struct elf_file *f, const struct addr_ent *e)
{
	return e->idx < f->ntab ? &f->tab[e->idx] : &f->dyn[e->idx - f->ntab];
}

/* Whether x names an address better than y (same value): lower rank,
 * then the shorter name, then the first in strcmp order, then the larger
 * size, so the choice never depends on table order. */
static bool
ent_better(const struct elf_file *f, const struct addr_ent *x,
	   const struct addr_ent *y)
{
	const struct elf_sym *sx = ent_sym(f, x), *sy = ent_sym(f, y);
	const char *nx, *ny;
	size_t lx, ly;
	int c;

	if (x->rank != y->rank)
		return x->rank < y->rank;
	nx = elf__sym_name(f, sx);
	ny = elf__sym_name(f, sy);
	lx = strlen(nx);
	ly = strlen(ny);
	if (lx != ly)
		return lx < ly;
	c = strcmp(nx, ny);
	if (c)
		return c < 0;
	return sx->size > sy->size;
}

#define RADIX_BITS	11
#define RADIX_SIZE	(1u << RADIX_BITS)

/*
 * Sort by value: LSD radix sort on 11-bit digits, only over the bits
 * that differ between keys (a library's values span a few MiB: 2
 * passes).  A libc with its debug file has ~11000 sized symbols, and
 * its index is built while the caller may hold a thread stopped.
 */
static void
sort_by_value(struct addr_ent *a, size_t n)
{
	struct addr_ent *tmp, *src = a, *dst;
	uint64_t all_or = 0, all_and = ~0ULL, diff;
	size_t *count;

	if (n < 2)
		return;
	for (size_t i = 0; i < n; i++) {
		all_or |= a[i].value;
		all_and &= a[i].value;
	}
	diff = all_or ^ all_and;
	if (!diff)
		return;
	tmp = xmalloc(n * sizeof(*tmp));
	count = xmalloc(RADIX_SIZE * sizeof(*count));
	dst = tmp;
	for (unsigned shift = 0; shift < 64; shift += RADIX_BITS) {
		size_t pos = 0;

		if (!((diff >> shift) & (RADIX_SIZE - 1)))
			continue;
		memset(count, 0, RADIX_SIZE * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(src[i].value >> shift) & (RADIX_SIZE - 1)]++;
		for (size_t d = 0; d < RADIX_SIZE; d++) {
			size_t c = count[d];

			count[d] = pos;
			pos += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i].value >> shift) &
				  (RADIX_SIZE - 1)]++] = src[i];
		dst = src;
		src = src == a ? tmp : a;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	free(count);
	free(tmp);
}

static void
add_sized(const struct elf_file *f, const struct elf_sym *syms, size_t n,
	  uint32_t base, struct addr_ent *out, size_t *k)
{
	for (size_t i = 0; i < n; i++) {
		if (!syms[i].size || syms[i].type == STT_NOTYPE)
			continue;
		out[*k].value = syms[i].value;
		out[*k].idx = base + (uint32_t)i;
		out[(*k)++].rank = (uint32_t)sym_rank(f, &syms[i]);
	}
}

/* Sorted index of both tables for address lookups, one name per address
 * (the best-ranked symbol of each). */
static void
build_by_addr(struct elf_file *f)
{
	struct addr_ent *ents;
	size_t k = 0, w = 0;

	free(f->by_addr);
	f->by_addr = NULL;
	f->nby_addr = 0;
	if ((!f->ndyn && !f->ntab) || f->ndyn + f->ntab > UINT32_MAX)
		return;
	ents = xmalloc((f->ndyn + f->ntab) * sizeof(*ents));
	add_sized(f, f->tab, f->ntab, 0, ents, &k);
	add_sized(f, f->dyn, f->ndyn, (uint32_t)f->ntab, ents, &k);
	sort_by_value(ents, k);
	/* aliases: keep the best-ranked symbol of each address */
	for (size_t i = 0; i < k; i++) {
		if (w && ents[w - 1].value == ents[i].value) {
			if (ent_better(f, &ents[i], &ents[w - 1]))
				ents[w - 1] = ents[i];
			continue;
		}
		ents[w++] = ents[i];
	}
	f->by_addr = xmalloc((w ? w : 1) * sizeof(*f->by_addr));
	for (size_t i = 0; i < w; i++)
		f->by_addr[i] = ent_sym(f, &ents[i]);
	f->nby_addr = w;
	free(ents);
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

/* ---- the file: headers, identity, sections ------------------------------ */

/* libelf wants its version set once before any other call. */
static bool
libelf_ready(void)
{
	static int ready;	/* 0 unknown, 1 ok, -1 failed */

	if (!ready)
		ready = elf_version(EV_CURRENT) == EV_NONE ? -1 : 1;
	return ready > 0;
}

/* .eh_frame of a file without a usable .eh_frame_hdr: the search table
 * is built here (libelf, for the section headers).  Rare: static
 * non-PIE executables. */
static void
eh_frame_from_sections(struct elf_file *f, int fd)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	Elf *e;

	if (!libelf_ready())
		return;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e)
		return;
	if (elf_getshdrstrndx(e, &shstrndx) < 0)
		goto out;
	while ((scn = elf_nextscn(e, scn))) {
		const char *name;
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".eh_frame"))
			continue;
		d = elf_rawdata(scn, NULL);
		if (d && d->d_buf)
			build_fde_table(f, d->d_buf, d->d_size, sh.sh_addr);
		break;
	}
out:
	elf_end(e);
}

/*
 * ELF header and program headers, read with pread (no libelf: this runs
 * for every mapped file when a target is indexed).  Keeps the PT_LOADs,
 * their span, PT_DYNAMIC's place and the .eh_frame_hdr table; want_eh
 * false skips the unwind tables (debug files have none).
 */
static int
read_headers(struct elf_file *f, int fd, uint64_t fsize, bool want_eh,
	     struct lp_err *err)
{
	unsigned char buf[4096];
	GElf_Phdr *ph = NULL;
	bool have_lo = false;
	Elf64_Ehdr eh;
	size_t phnum;
	uint64_t phbytes;
	ssize_t n;
	int rc = 0;

	n = pread(fd, buf, sizeof(buf), 0);
	if (n < SELFMAG || memcmp(buf, ELFMAG, SELFMAG))
		return lp_err_set(err, LP_EPARSE, "elf: '%s' is not an ELF "
				  "file", f->path);
	if (n >= (ssize_t)sizeof(eh))
		memcpy(&eh, buf, sizeof(eh));
	if (n < (ssize_t)sizeof(eh) || buf[EI_CLASS] != ELFCLASS64 ||
	    buf[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return lp_err_set(err, LP_EPARSE, "elf: '%s' is not an x86-64 "
				  "ELF64 file", f->path);
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return lp_err_set(err, LP_EPARSE, "elf: '%s' is not an "
				  "executable or shared object", f->path);
	f->e_type = eh.e_type;
	phnum = eh.e_phnum;
	if (phnum == PN_XNUM) {		/* the count is in section 0 */
		Elf64_Shdr sh0;

		if (eh.e_shoff > fsize || fsize - eh.e_shoff < sizeof(sh0) ||
		    pread(fd, &sh0, sizeof(sh0), (off_t)eh.e_shoff) !=
		    (ssize_t)sizeof(sh0))
			return lp_err_set(err, LP_EPARSE, "elf: '%s': bad "
					  "section header 0", f->path);
		phnum = sh0.sh_info;
	}
	phbytes = (uint64_t)phnum * sizeof(*ph);
	if (eh.e_phentsize != sizeof(*ph) || !phnum || phnum > MAX_PHDRS ||
	    eh.e_phoff > fsize || phbytes > fsize - eh.e_phoff)
		return lp_err_set(err, LP_EPARSE, "elf: '%s': program headers "
				  "missing or past the end of the file",
				  f->path);
	ph = xmalloc(phbytes);
	if (eh.e_phoff + phbytes <= (uint64_t)n)
		memcpy(ph, buf + eh.e_phoff, phbytes);
	else if (pread(fd, ph, phbytes, (off_t)eh.e_phoff) != (ssize_t)phbytes)
		rc = lp_err_sys(err, LP_EIO, "elf: read '%s'", f->path);
	if (rc < 0)
		goto out;
	f->segs = xcalloc(phnum, sizeof(*f->segs));
	for (size_t i = 0; i < phnum; i++) {
		struct elf_load_seg *s;

		if (ph[i].p_type == PT_GNU_EH_FRAME && want_eh) {
			read_eh_frame_hdr(f, fd, &ph[i]);
			continue;
		}
		if (ph[i].p_type == PT_DYNAMIC) {
			f->dyn_offset = ph[i].p_offset;
			f->dyn_filesz = ph[i].p_filesz;
			continue;
		}
		if (ph[i].p_type != PT_LOAD)
			continue;
		s = &f->segs[f->nsegs++];
		s->vaddr = ph[i].p_vaddr;
		s->memsz = ph[i].p_memsz;
		s->offset = ph[i].p_offset;
		s->filesz = ph[i].p_filesz;
		s->flags = ph[i].p_flags;
		if (!have_lo || s->vaddr < f->lo_vaddr)
			f->lo_vaddr = s->vaddr;
		if (s->vaddr + s->memsz > f->hi_vaddr)
			f->hi_vaddr = s->vaddr + s->memsz;
		have_lo = true;
	}
	if (!f->nsegs) {
		rc = lp_err_set(err, LP_EPARSE, "elf: '%s' has no loadable "
				"segment", f->path);
		goto out;
	}
	if (want_eh && !f->eh_fde_count)
		eh_frame_from_sections(f, fd);
out:
	free(ph);
	return rc;
}

/*
 * Open f's file again for a part loaded later.  It must be the same file
 * (device and inode), else -LP_EIO: a path under /proc/PID/root may name
 * another file by now (an upgrade).  Returns the descriptor.
 */
static int
reopen(const struct elf_file *f, struct lp_err *err)
{
	struct stat st;
	int fd;

	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				  "elf: open '%s'", f->path);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != f->dev ||
	    (uint64_t)st.st_ino != f->ino) {
		close(fd);
		return lp_err_set(err, LP_EIO, "elf: '%s' was replaced since "
				  "it was indexed", f->path);
	}
	return fd;
}

static void
read_debuglink(struct elf_file *f, Elf_Scn *scn)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	const char *name;
	size_t len, crc_off;

	if (!d || !d->d_buf || d->d_size < 8)
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
 * One walk of the section headers loads the parts of `want` among
 * ELF_L_META, ELF_L_DYN and ELF_L_TAB (META comes with the others).
 */
static int
load_sections(struct elf_file *f, unsigned want, struct lp_err *err)
{
	Elf_Scn *scn = NULL, *dynsym = NULL, *symtab = NULL;
	GElf_Shdr dyn_sh, tab_sh;
	Elf_Data *versym = NULL;
	bool meta = !(f->loaded & ELF_L_META);
	bool *alloc = NULL;	/* SHF_ALLOC of each section */
	size_t shstrndx, nalloc = 0;
	Elf *e;
	int fd, rc = 0;

	fd = reopen(f, err);
	if (fd < 0)
		return fd;
	if (!libelf_ready()) {
		rc = lp_err_set(err, LP_EPARSE, "elf: libelf: %s",
				elf_errmsg(-1));
		goto out_fd;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e) {
		rc = lp_err_set(err, LP_EPARSE, "elf: '%s': %s", f->path,
				elf_errmsg(-1));
		goto out_fd;
	}
	if (elf_getshdrstrndx(e, &shstrndx) < 0 ||
	    elf_getshdrnum(e, &nalloc) < 0)
		goto out_meta;	/* no section headers: PT_* only */
	alloc = xcalloc(nalloc ? nalloc : 1, sizeof(*alloc));
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;
		size_t ndx;

		if (!gelf_getshdr(scn, &sh))
			continue;
		ndx = elf_ndxscn(scn);
		if (ndx < nalloc)
			alloc[ndx] = (sh.sh_flags & SHF_ALLOC) != 0;
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
			if (want & ELF_L_DYN)
				versym = elf_getdata(scn, NULL);
			break;
		case SHT_NOTE:
			if (meta && !f->build_id[0]) {
				Elf_Data *d = elf_getdata(scn, NULL);

				if (d)
					read_build_id(d, f->build_id);
			}
			break;
		default:
			break;
		}
		if (!meta)
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name)
			continue;
		if (!strcmp(name, ".text")) {
			f->text_vaddr = sh.sh_addr;
			f->text_size = sh.sh_size;
			f->text_offset = sh.sh_offset;
		} else if (!strcmp(name, ".gnu_debuglink") &&
			   sh.sh_type == SHT_PROGBITS && !f->debuglink) {
			read_debuglink(f, scn);
		}
	}
	if (dynsym && (want & ELF_L_DYN))
		load_table(e, dynsym, &dyn_sh, versym, alloc, nalloc, false,
			   &f->dyn, &f->ndyn, &f->dynstr, &f->dynstr_len);
	if (symtab && (want & ELF_L_TAB))
		load_table(e, symtab, &tab_sh, NULL, alloc, nalloc, true,
			   &f->tab, &f->ntab, &f->tabstr, &f->tabstr_len);
	free(alloc);
out_meta:
	if (meta && !f->build_id[0])
		build_id_from_phdrs(f, e);
	elf_end(e);
out_fd:
	close(fd);
	return rc;
}

/*
 * GNU hash of a name, as ld.so computes it for DT_GNU_HASH.
 */
static uint32_t
gnu_hash(const char *name)
{
	uint32_t h = 5381;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = h * 33 + *p;
	return h;
}

/* File offset of link-time address vaddr (inside a PT_LOAD's file
 * part, len bytes), or -1. */
static int64_t
vaddr_offset(const struct elf_file *f, uint64_t vaddr, uint64_t len)
{
	for (size_t i = 0; i < f->nsegs; i++) {
		const struct elf_load_seg *s = &f->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr <= s->filesz &&
		    len <= s->filesz - (vaddr - s->vaddr))
			return (int64_t)(s->offset + (vaddr - s->vaddr));
	}
	return -1;
}

/*
 * The bloom filter of DT_GNU_HASH: nbuckets, symoffset, bloom_size,
 * bloom_shift, then bloom_size 64-bit words.  Every symbol the table
 * holds (all the defined dynamic ones) sets two bits of one word, so a
 * name missing either bit is not defined here.  Anything unexpected
 * leaves no filter: no filter never rejects.
 */
static void
load_bloom(struct elf_file *f)
{
	GElf_Dyn *dyn = NULL;
	uint32_t hdr[4];
	uint64_t gnu_hash_vaddr = 0, bytes;
	size_t n;
	int64_t off;
	int fd;

	if (f->dyn_filesz < sizeof(*dyn) || f->dyn_filesz > MAX_DYNAMIC)
		return;
	fd = reopen(f, NULL);
	if (fd < 0)
		return;
	n = f->dyn_filesz / sizeof(*dyn);
	if (!n)
		goto out;
	dyn = xmalloc(n * sizeof(*dyn));
	if (pread(fd, dyn, n * sizeof(*dyn), (off_t)f->dyn_offset) !=
	    (ssize_t)(n * sizeof(*dyn)))
		goto out;
	for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++)
		if (dyn[i].d_tag == DT_GNU_HASH)
			gnu_hash_vaddr = dyn[i].d_un.d_ptr;
	if (!gnu_hash_vaddr)
		goto out;
	off = vaddr_offset(f, gnu_hash_vaddr, sizeof(hdr));
	if (off < 0 || pread(fd, hdr, sizeof(hdr), off) != sizeof(hdr))
		goto out;
	/* ld.so masks the word index with bloom_size - 1, and shifts the
	 * 32-bit hash by bloom_shift: 32 or more is no filter */
	if (!hdr[0] || !hdr[2] || hdr[2] > MAX_BLOOM_WORDS ||
	    (hdr[2] & (hdr[2] - 1)) || hdr[3] >= 32)
		goto out;
	bytes = (uint64_t)hdr[2] * sizeof(uint64_t);
	off = vaddr_offset(f, gnu_hash_vaddr + sizeof(hdr), bytes);
	if (off < 0)
		goto out;
	f->bloom = xmalloc(bytes);
	if (pread(fd, f->bloom, bytes, off) != (ssize_t)bytes) {
		free(f->bloom);
		f->bloom = NULL;
		goto out;
	}
	f->bloom_words = hdr[2];
	f->bloom_shift = hdr[3];
out:
	free(dyn);
	close(fd);
}

/* False only when f's bloom filter proves name is not in its .dynsym. */
bool
elf__may_define(struct elf_file *f, const char *name)
{
	uint32_t h;
	uint64_t word, mask;

	elf__load(f, ELF_L_BLOOM, NULL);
	if (!f->bloom_words)
		return true;
	h = gnu_hash(name);
	word = f->bloom[(h / 64) & (f->bloom_words - 1)];
	mask = (1ULL << (h % 64)) | (1ULL << ((h >> f->bloom_shift) % 64));
	return (word & mask) == mask;
}

/* Open flags of open_file(). */
#define OPEN_NO_EH	1	/* skip the unwind tables (debug files) */

static struct elf_file *
open_file(const char *path, uint64_t ino, const char *debug_root,
	  int flags, struct lp_err *err)
{
	struct elf_file *f = NULL;
	struct stat st;
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
	if (ino && (uint64_t)st.st_ino != ino) {
		lp_err_set(err, LP_EINVAL, "elf: '%s' is not the mapped file "
			   "(inode %" PRIu64 ", not %" PRIu64 ")", path,
			   (uint64_t)st.st_ino, ino);
		goto out;
	}
	f = xcalloc(1, sizeof(*f));
	f->path = xstrdup(path);
	f->dev = (uint64_t)st.st_dev;
	f->ino = (uint64_t)st.st_ino;
	if (debug_root)
		f->debug_root = xstrdup(debug_root);
	if (read_headers(f, fd, (uint64_t)st.st_size, !(flags & OPEN_NO_EH),
			 err) < 0) {
		elf__free(f);
		f = NULL;
	}
out:
	close(fd);
	return f;
}

/*
 * Open an ELF64 x86-64 executable or shared object, reading its program
 * headers only.  Other files (fonts, locale archives, devices) are
 * rejected after one read of the magic.  The returned file owns all its
 * memory and no descriptor: later parts reopen the path, and are refused
 * if it names another file by then.  Free it with elf__free().  NULL with
 * err filled (LP_EPARSE, LP_EPERM, LP_EIO, LP_EINVAL) on failure.
 */
struct elf_file *
elf__open_lazy(const char *path, uint64_t ino, const char *debug_root,
	       struct lp_err *err)
{
	return open_file(path, ino, debug_root, 0, err);
}

/* Open and load .dynsym, .symtab and the by-address index at once. */
struct elf_file *
elf__open(const char *path, struct lp_err *err)
{
	struct elf_file *f = open_file(path, 0, NULL, 0, err);

	if (f && elf__load(f, ELF_L_ADDR, err) < 0) {
		elf__free(f);
		f = NULL;
	}
	return f;
}

static void load_debug(struct elf_file *f, const char *root);

/*
 * Load the parts of `what` (ELF_L_*) not tried yet, with what they
 * need: the by-address index needs both tables, a table the section
 * walk that also reads the build-id and debuglink, and .symtab the
 * debug file when f has a debug_root.  A part tried is never retried,
 * even when it failed (its tables stay empty).  0 or the first error.
 */
int
elf__load(struct elf_file *f, unsigned what, struct lp_err *err)
{
	unsigned secs;
	int rc = 0;

	if (what & ELF_L_ADDR)
		what |= ELF_L_DYN | ELF_L_TAB;
	if (what & (ELF_L_DYN | ELF_L_TAB))
		what |= ELF_L_META;
	what &= ~f->loaded;
	if (!what)
		return 0;
	secs = what & (ELF_L_META | ELF_L_DYN | ELF_L_TAB);
	if (secs) {
		rc = load_sections(f, secs, err);
		f->loaded |= secs;
	}
	if ((what & ELF_L_TAB) && f->debug_root)
		load_debug(f, f->debug_root);
	if (what & ELF_L_BLOOM) {
		load_bloom(f);
		f->loaded |= ELF_L_BLOOM;
	}
	if (what & ELF_L_ADDR) {
		build_by_addr(f);
		f->loaded |= ELF_L_ADDR;
	}
	return rc;
}

/* Free f and everything it owns.  NULL is a no-op. */
void
elf__free(struct elf_file *f)
{
	if (!f)
		return;
	free(f->path);
	free(f->debug_root);
	free(f->segs);
	free(f->dyn);
	free(f->tab);
	free(f->dynstr);
	free(f->tabstr);
	free(f->bloom);
	free(f->by_addr);
	free(f->debuglink);
	free(f->eh_local);
	free(f);
}

/*
 * Defined symbol `name` in one table; *out points into f.  Among
 * duplicates (versions, local copies), prefers a default-version global.
 * A .dynsym lookup the bloom filter rejects loads nothing more.
 */
int
elf__lookup_table(struct elf_file *f, const char *name, bool symtab,
		  const struct elf_sym **out)
{
	const struct elf_sym *syms, *best = NULL;
	int best_rank = 99;
	size_t n;

	if (!symtab && !elf__may_define(f, name))
		return -LP_ENOSYM;
	elf__load(f, symtab ? ELF_L_TAB : ELF_L_DYN, NULL);
	syms = symtab ? f->tab : f->dyn;
	n = symtab ? f->ntab : f->ndyn;
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
elf__lookup(struct elf_file *f, const char *name, const struct elf_sym **out)
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
 * nearest symbol below).  Points into f.  Loads both tables (and a
 * debug file) and the index on first use.
 */
const struct elf_sym *
elf__find_addr(struct elf_file *f, uint64_t vaddr)
{
	size_t lo, hi;

	elf__load(f, ELF_L_ADDR, NULL);
	lo = 0;
	hi = f->nby_addr;
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
 * file part) into buf; the file is opened for the occasion, and must
 * still be the one indexed.
 */
int
elf__read(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len,
	  struct lp_err *err)
{
	int64_t off = vaddr_offset(f, vaddr, len);
	ssize_t n;
	int fd;

	if (off < 0)
		return lp_err_set(err, LP_EFAULT, "elf: '%s': no file bytes "
				  "at 0x%" PRIx64 "+%zu", f->path, vaddr, len);
	fd = reopen(f, err);
	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, (off_t)off);
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

/* Try one candidate debug file; merge its .symtab when it matches.
 * Only its program headers, notes and .symtab are read. */
static bool
try_debug_file(struct elf_file *f, const char *cand, bool by_link)
{
	struct elf_file *d;
	uint32_t crc;
	bool ok;

	if (access(cand, R_OK) < 0 || !strcmp(cand, f->path))
		return false;
	d = open_file(cand, 0, NULL, OPEN_NO_EH, NULL);
	if (!d)
		return false;
	elf__load(d, ELF_L_TAB, NULL);
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
		if (f->loaded & ELF_L_ADDR)
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
 * (or, without one, the debuglink CRC).  f's build-id and debuglink are
 * loaded (ELF_L_META).
 */
static void
load_debug(struct elf_file *f, const char *root)
{
	const char *inner, *slash;
	size_t rlen;
	int dlen;

	if (f->has_debug)
		return;
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

/* Load f's own .symtab, then look for a debug file under root (NULL:
 * ""); see load_debug(). */
void
elf__load_debug(struct elf_file *f, const char *root)
{
	if (!f)
		return;
	elf__load(f, ELF_L_TAB, NULL);
	load_debug(f, root ? root : "");
}
