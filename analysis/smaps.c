/*
 * Parser for /proc/PID/smaps and /proc/PID/smaps_rollup.
 *
 * The whole file sits in one buffer (s->buf) that is reused from one parse
 * to the next.  Mapping names, VmFlags and unknown field names are pointers
 * into that buffer; the mapping and extra-field arrays grow by doubling and
 * are reused too, so a warm sampler allocates nothing per sample.
 *
 * Format, as printed by fs/proc/task_mmu.c:
 *
 *   start-end perms offset major:minor inode   [name]
 *   Size:                  8 kB
 *   ...                                   (one "Name:  value [kB]" a line)
 *   THPeligible:           0              (some fields have no unit)
 *   VmFlags: rd mr mw me
 *
 * Classification (enum ana_map_class):
 *   - no name                           ANON, or ARENA (see classify_arenas)
 *   - "[heap]"                          HEAP
 *   - "[stack]"                         STACK (main thread only; thread
 *                                       stacks are anonymous, hence ANON)
 *   - "[anon:...]", "[anon_shmem:...]",
 *     "[stack:TID]" (old kernels)       ANON
 *   - "[anon: glibc: malloc arena]"     ARENA (glibc >= 2.39 names its
 *                                       arenas with glibc.mem.decorate_maps)
 *   - any other "[...]"                 SPECIAL ([vvar], [vdso], [vsyscall],
 *                                       [uprobes], [vvar_vclock], ...)
 *   - anything else                     FILE: every mapping with a path,
 *                                       including " (deleted)" files,
 *                                       memfd ("/memfd:x (deleted)"), SysV
 *                                       shm, anon_inode:... and /dev/zero.
 *     A named mapping is something the program mapped on purpose, not
 *     memory malloc handed out, so it never counts as heap growth.
 *
 * Tolerance: numeric fields the parser does not know go to s->extra,
 * non-numeric ones are skipped; a missing field reads 0 with its present
 * bit clear (and a missing Size counts as end - start in the totals);
 * numbers beyond 64 bits saturate, as do all sums.  An unterminated last
 * line is kept only when it is complete: a field with its "kB" unit, a
 * whole header; a cut VmFlags loses its partial flag.  " (deleted)" is
 * taken off the name into m->deleted, so a mapping whose file was unlinked
 * keeps its identity in diffs.  The kernel's "\012" for a newline in a
 * name stays as printed.
 */
#include "analysis/analysis.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xalloc.h"

/* glibc HEAP_MAX_SIZE on 64-bit: 2 * DEFAULT_MMAP_THRESHOLD_MAX (32 MiB). */
#define ARENA_HEAP_MAX	(64ull << 20)

#define FIELD_VMFLAGS	(-2)
#define FIELD_UNKNOWN	(-1)

static const char *const field_names[ANA_F_NKNOWN] = {
	[ANA_F_SIZE] = "Size",
	[ANA_F_KERNELPAGESIZE] = "KernelPageSize",
	[ANA_F_MMUPAGESIZE] = "MMUPageSize",
	[ANA_F_RSS] = "Rss",
	[ANA_F_PSS] = "Pss",
	[ANA_F_PSS_DIRTY] = "Pss_Dirty",
	[ANA_F_SHARED_CLEAN] = "Shared_Clean",
	[ANA_F_SHARED_DIRTY] = "Shared_Dirty",
	[ANA_F_PRIVATE_CLEAN] = "Private_Clean",
	[ANA_F_PRIVATE_DIRTY] = "Private_Dirty",
	[ANA_F_REFERENCED] = "Referenced",
	[ANA_F_ANONYMOUS] = "Anonymous",
	[ANA_F_SWAP] = "Swap",
	[ANA_F_SWAPPSS] = "SwapPss",
	[ANA_F_LOCKED] = "Locked",
};

static const char *const class_names[ANA_MAP_NCLASS] = {
	[ANA_MAP_HEAP] = "heap",
	[ANA_MAP_ARENA] = "arena",
	[ANA_MAP_ANON] = "anon",
	[ANA_MAP_FILE] = "file",
	[ANA_MAP_STACK] = "stack",
	[ANA_MAP_SPECIAL] = "special",
};

/* Short lowercase class name ("heap", "arena", ...); "?" if unknown.
 * Static storage. */
const char *
ana_map_class_name(enum ana_map_class c)
{
	if ((unsigned)c >= ANA_MAP_NCLASS)
		return "?";
	return class_names[c];
}

/* The kernel's spelling of a known field ("Private_Dirty"); "?" if
 * unknown.  Static storage. */
const char *
ana_field_name(enum ana_field_id f)
{
	if ((unsigned)f >= ANA_F_NKNOWN)
		return "?";
	return field_names[f];
}

/* Empty snapshot; owns nothing until the first parse. */
void
ana_smaps_init(struct ana_smaps *s)
{
	memset(s, 0, sizeof(*s));
}

/* Free the buffer and arrays; s may be NULL and is left empty. */
void
ana_smaps_release(struct ana_smaps *s)
{
	if (!s)
		return;
	free(s->buf);
	free(s->maps);
	free(s->extra);
	ana_smaps_init(s);
}

/* Grow s->buf to hold need bytes plus the sentinel; s keeps owning it.
 * Aborts on exhaustion like lp_read_file(), which grows the same buffer. */
char *
ana_smaps_reserve(struct ana_smaps *s, size_t need)
{
	/* One spare byte for the sentinel ana_smaps_parse_buf() writes. */
	s->buf = xgrow(s->buf, &s->cap, need + 1, 1);
	return s->buf;
}

/* ---- small scanners ------------------------------------------------- */

static inline int
hexval(unsigned char c)
{
	unsigned d = (unsigned)c - '0';
	unsigned l = ((unsigned)c | 0x20) - 'a';

	if (d < 10)
		return (int)d;
	if (l < 6)
		return (int)l + 10;
	return -1;
}

static inline bool
is_name_char(unsigned char c)
{
	return (((unsigned)c | 0x20) - 'a') < 26 || ((unsigned)c - '0') < 10 ||
	       c == '_';
}

/*
 * Hex number of 1..maxdig digits at *pp.  Returns false (with *pp on the
 * offending byte) when there is no digit or too many.
 */
static inline bool
scan_hex(const char **pp, uint64_t *out, int maxdig)
{
	const char *p = *pp;
	uint64_t v = 0;
	int d, n = 0;

	while ((d = hexval((unsigned char)*p)) >= 0) {
		if (++n > maxdig) {
			*pp = p;
			return false;
		}
		v = v << 4 | (uint64_t)d;
		p++;
	}
	*pp = p;
	*out = v;
	return n > 0;
}

/* Decimal number at *pp, saturating at UINT64_MAX; false if no digit. */
static inline bool
scan_dec(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	unsigned d;

	if ((unsigned)(unsigned char)*p - '0' >= 10)
		return false;
	while ((d = (unsigned)(unsigned char)*p - '0') < 10) {
		if (v >= UINT64_MAX / 10 &&
		    (v > UINT64_MAX / 10 || d > UINT64_MAX % 10))
			v = UINT64_MAX;
		else
			v = v * 10 + d;
		p++;
	}
	*pp = p;
	*out = v;
	return true;
}

static inline uint64_t
sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return UINT64_MAX;
	return r;
}

static inline uint64_t
kb_to_bytes(uint64_t kb)
{
	if (kb > UINT64_MAX / 1024)
		return UINT64_MAX;
	return kb * 1024;
}

/* Map a field name to enum ana_field_id, FIELD_VMFLAGS or FIELD_UNKNOWN. */
static inline int
field_lookup(const char *n, size_t len)
{
#define IS(lit) (memcmp(n, lit, sizeof(lit) - 1) == 0)
	switch (len) {
	case 3:
		if (IS("Rss"))
			return ANA_F_RSS;
		if (IS("Pss"))
			return ANA_F_PSS;
		break;
	case 4:
		if (IS("Size"))
			return ANA_F_SIZE;
		if (IS("Swap"))
			return ANA_F_SWAP;
		break;
	case 6:
		if (IS("Locked"))
			return ANA_F_LOCKED;
		break;
	case 7:
		if (IS("VmFlags"))
			return FIELD_VMFLAGS;
		if (IS("SwapPss"))
			return ANA_F_SWAPPSS;
		break;
	case 9:
		if (IS("Pss_Dirty"))
			return ANA_F_PSS_DIRTY;
		if (IS("Anonymous"))
			return ANA_F_ANONYMOUS;
		break;
	case 10:
		if (IS("Referenced"))
			return ANA_F_REFERENCED;
		break;
	case 11:
		if (IS("MMUPageSize"))
			return ANA_F_MMUPAGESIZE;
		break;
	case 12:
		if (IS("Shared_Clean"))
			return ANA_F_SHARED_CLEAN;
		if (IS("Shared_Dirty"))
			return ANA_F_SHARED_DIRTY;
		break;
	case 13:
		if (IS("Private_Clean"))
			return ANA_F_PRIVATE_CLEAN;
		if (IS("Private_Dirty"))
			return ANA_F_PRIVATE_DIRTY;
		break;
	case 14:
		if (IS("KernelPageSize"))
			return ANA_F_KERNELPAGESIZE;
		break;
	}
	return FIELD_UNKNOWN;
#undef IS
}

static inline bool
name_is(const struct ana_mapping *m, const char *lit, size_t len)
{
	return m->name_len == len && memcmp(m->name, lit, len) == 0;
}

static inline bool
name_has_prefix(const struct ana_mapping *m, const char *lit, size_t len)
{
	return m->name_len >= len && memcmp(m->name, lit, len) == 0;
}

#define NAME_IS(m, lit) name_is(m, lit, sizeof(lit) - 1)
#define NAME_PREFIX(m, lit) name_has_prefix(m, lit, sizeof(lit) - 1)

/* ---- parsing -------------------------------------------------------- */

/*
 * Parse a mapping header line [p, eol) into m.  On failure returns false
 * and points *bad at the first byte that does not fit; *bad == eol means
 * the line simply stopped early (a cut-off last line).  last marks an
 * unterminated line: one that ends in the padding before the name column
 * may have lost its name, so it counts as stopped early.
 */
static bool
parse_header(const char *p, const char *eol, bool last,
	     struct ana_mapping *m, const char **bad)
{
	static const char perm_ok[4][2] = {
		{ 'r', '-' }, { 'w', '-' }, { 'x', '-' }, { 'p', 's' }
	};
	const char *p0 = p;
	uint64_t maj, min;
	int i;

	if (!scan_hex(&p, &m->start, 16) || *p != '-')
		goto bad;
	p++;
	if (!scan_hex(&p, &m->end, 16) || *p != ' ')
		goto bad;
	p++;
	for (i = 0; i < 4; i++) {
		if (p[i] != perm_ok[i][0] && p[i] != perm_ok[i][1]) {
			p += i;
			goto bad;
		}
	}
	memcpy(m->perms, p, 4);
	m->perms[4] = '\0';
	p += 4;
	if (*p != ' ')
		goto bad;
	p++;
	if (!scan_hex(&p, &m->offset, 16) || *p != ' ')
		goto bad;
	p++;
	if (!scan_hex(&p, &maj, 8) || *p != ':')
		goto bad;
	p++;
	if (!scan_hex(&p, &min, 8) || *p != ' ')
		goto bad;
	p++;
	if (!scan_dec(&p, &m->inode))
		goto bad;
	m->dev_major = (uint32_t)maj;
	m->dev_minor = (uint32_t)min;
	if (p < eol && *p != ' ')
		goto bad;
	if (m->end < m->start) {
		p = p0;		/* not a cut line: a wrong one */
		goto bad;
	}
	/* The kernel pads with spaces up to the name column; an anonymous
	 * mapping has just one space after the inode. */
	if (last && p + 1 < eol && p[1] == ' ') {
		while (p < eol && *p == ' ')
			p++;
		if (p == eol)
			goto bad;
	}
	while (p < eol && *p == ' ')
		p++;
	m->name = p;
	m->name_len = (uint32_t)(eol - p);
	m->deleted = false;
	if (m->name_len >= 10 &&
	    memcmp(eol - 10, " (deleted)", 10) == 0) {
		m->deleted = true;
		m->name_len -= 10;
	}
	return true;
bad:
	*bad = p;
	return false;
}

/* Grow an array by doubling; false on exhaustion (nothing is lost). */
static bool
grow(void **p, size_t *cap, size_t need, size_t sz)
{
	size_t c = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return true;
	while (c < need)
		c *= 2;
	q = realloc(*p, c * sz);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

/* Quote at most 60 bytes of a line for an error message, unprintables as
 * '?', into out (>= 64 bytes). */
static void
excerpt(const char *p, const char *eol, char *out)
{
	size_t i, n = (size_t)(eol - p);

	if (n > 60)
		n = 60;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	out[n] = '\0';
}

/* Record a numeric field of m: known ones in kb[], the rest in extra. */
static inline int
store_field(struct ana_smaps *s, struct ana_mapping *m, int id,
	    const char *name, size_t nlen, uint64_t val)
{
	struct ana_extra_field *x;

	if (id >= 0) {
		m->kb[id] = val;
		m->present |= 1u << id;
		return 0;
	}
	if (s->nextra == s->extra_cap &&
	    !grow((void **)&s->extra, &s->extra_cap, s->nextra + 1,
		  sizeof(*s->extra)))
		return -LP_ENOMEM;
	x = &s->extra[s->nextra++];
	x->name = name;
	x->name_len = (uint32_t)nlen;
	x->value = val;
	m->extra_count++;
	return 0;
}

/*
 * One field line: name [p, colon), value after the colon.  last marks an
 * unterminated final line, which may have been cut anywhere.  *idp gets
 * the field's id (FIELD_UNKNOWN for extras).
 */
static int
parse_field(struct ana_smaps *s, struct ana_mapping *m, const char *p,
	    const char *colon, const char *eol, bool last, int *idp)
{
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1;
	uint64_t val;
	bool unit;
	int id;

	*idp = id = field_lookup(p, nlen);
	while (*v == ' ' || *v == '\t')
		v++;
	if (id == FIELD_VMFLAGS) {
		const char *e = eol;

		/* Each flag is printed with a trailing space; a cut line
		 * ends inside a flag, which we drop. */
		if (last)
			while (e > v && e[-1] != ' ')
				e--;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		m->vmflags = v;
		m->vmflags_len = (uint32_t)(e - v);
		return 0;
	}
	if (!scan_dec(&v, &val))
		return 0;	/* not numeric: nothing we could store */
	while (*v == ' ' || *v == '\t')
		v++;
	unit = v[0] == 'k' && v[1] == 'B';
	/* Without its unit, a cut last line may have lost digits too. */
	if (last && !unit)
		return 0;
	return store_field(s, m, id, p, nlen, val);
}

/*
 * Fast path.  The kernel prints every field line as a fixed 16-byte
 * literal ("Rss:            "), the value right-aligned in 8 columns and
 * " kB\n", always in the same order.  So the n-th field line of a mapping
 * is remembered by its first 16 bytes, and the n-th line of the next
 * mapping that starts with the same 16 bytes skips the name scan, the
 * lookup and the search for the end of line.  Anything unusual falls back
 * to the general path, which gives the same result.
 */
#define LAYOUT_MAX	64

struct layout {
	uint64_t k0, k1;	/* first 16 bytes of the line */
	int16_t id;		/* ana_field_id or FIELD_UNKNOWN */
	uint8_t nlen;		/* name length */
	bool valid;
};

static inline void
layout_learn(struct layout *l, const char *p, const char *colon,
	     const char *end, int id)
{
	const char *q;

	l->valid = false;
	if (id == FIELD_VMFLAGS || end - p < 16 || colon - p >= 16)
		return;
	for (q = colon + 1; q < p + 16; q++)
		if (*q != ' ')
			return;
	memcpy(&l->k0, p, 8);
	memcpy(&l->k1, p + 8, 8);
	l->id = (int16_t)id;
	l->nlen = (uint8_t)(colon - p);
	l->valid = true;
}

/* Returns the end of line when the fast path handled the line, or NULL. */
static inline const char *
layout_try(struct ana_smaps *s, struct ana_mapping *m,
	   const struct layout *l, const char *p, const char *end, int *rc)
{
	const char *v = p + 16, *eol;
	uint64_t a, b, val;

	if (!l->valid || end - p < 16)
		return NULL;
	memcpy(&a, p, 8);
	memcpy(&b, p + 8, 8);
	if (a != l->k0 || b != l->k1)
		return NULL;
	while (*v == ' ')
		v++;
	if (!scan_dec(&v, &val))
		return NULL;
	if (v[0] == ' ' && v[1] == 'k' && v[2] == 'B' && v[3] == '\n')
		eol = v + 3;
	else if (v[0] == '\n')
		eol = v;
	else
		return NULL;
	*rc = store_field(s, m, l->id, p, l->nlen, val);
	return eol;
}

static int
parse_lines(struct ana_smaps *s, struct lp_err *err)
{
	const char *p = s->buf, *end = s->buf + s->len;
	struct layout layout[LAYOUT_MAX];
	struct ana_mapping *m = NULL;
	size_t lineno = 0, nlayout = 0, fi = 0;
	char quote[64];
	int rc = 0, id;

	while (p < end) {
		const char *eol, *q = p, *bad;
		bool last = false;

		lineno++;
		if (m && fi < nlayout) {
			eol = layout_try(s, m, &layout[fi], p, end, &rc);
			if (rc < 0)
				goto nomem;
			if (eol) {
				fi++;
				p = eol + 1;
				continue;
			}
		}
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol) {
			eol = end;
			last = true;
		}
		while (is_name_char((unsigned char)*q))
			q++;
		if (q > p && *q == ':' && q < eol) {
			if (!m) {
				excerpt(p, q, quote);
				return lp_err_set(err, LP_EPARSE,
					"parse smaps: line %zu: field '%s' before any mapping header (is this a /proc/PID/smaps file?)",
					lineno, quote);
			}
			rc = parse_field(s, m, p, q, eol, last, &id);
			if (rc < 0)
				goto nomem;
			if (fi == nlayout && nlayout < LAYOUT_MAX)
				layout_learn(&layout[nlayout++], p, q, end, id);
			fi++;
		} else if (p == eol) {
			/* blank line: nothing the kernel prints, harmless */
		} else {
			if (s->nmaps == s->maps_cap &&
			    !grow((void **)&s->maps, &s->maps_cap,
				  s->nmaps + 1, sizeof(*s->maps)))
				goto nomem;
			m = &s->maps[s->nmaps];
			memset(m, 0, sizeof(*m));
			if (!parse_header(p, eol, last, m, &bad)) {
				/* A last line cut short is not an error. */
				if (last && bad == eol)
					break;
				excerpt(p, eol, quote);
				return lp_err_set(err, LP_EPARSE,
					"parse smaps: line %zu: malformed mapping header '%s' (is this a /proc/PID/smaps file?)",
					lineno, quote);
			}
			m->extra_first = (uint32_t)s->nextra;
			s->nmaps++;
			fi = 0;
			if (NAME_IS(m, "[rollup]"))
				s->rollup = true;
		}
		p = eol + 1;
	}
	return 0;
nomem:
	return lp_err_set(err, LP_ENOMEM,
			  "parse smaps: out of memory at line %zu", lineno);
}

/* ---- classification and totals -------------------------------------- */

static enum ana_map_class
class_by_name(const struct ana_mapping *m)
{
	if (!m->name_len)
		return ANA_MAP_ANON;
	if (m->name[0] != '[')
		return ANA_MAP_FILE;
	if (NAME_IS(m, "[heap]"))
		return ANA_MAP_HEAP;
	if (NAME_IS(m, "[stack]"))
		return ANA_MAP_STACK;
	if (NAME_IS(m, "[anon: glibc: malloc arena]"))
		return ANA_MAP_ARENA;
	if (NAME_PREFIX(m, "[anon:") || NAME_PREFIX(m, "[anon_shmem:") ||
	    NAME_PREFIX(m, "[stack:"))
		return ANA_MAP_ANON;
	return ANA_MAP_SPECIAL;
}

static inline bool
perms_are(const struct ana_mapping *m, const char *p)
{
	return memcmp(m->perms, p, 4) == 0;
}

static inline bool
plain_anon(const struct ana_mapping *m)
{
	return m->cls == ANA_MAP_ANON && m->name_len == 0;
}

/*
 * glibc's non-main arenas: new_heap() reserves HEAP_MAX_SIZE (64 MiB)
 * aligned to 64 MiB as PROT_NONE and makes the used part read-write with
 * mprotect as the heap grows:
 *
 *   H = k * 64 MiB                                  H + 64 MiB
 *   | rw-p (used part of the heap) | ---p (reserved tail)    |
 *
 * A rw-p anonymous mapping is an arena when its start is 64 MiB aligned
 * and it is no larger than 64 MiB, or when it is immediately followed by
 * an anonymous ---p mapping ending on a 64 MiB boundary whose reservation
 * starts before the rw-p part ends.  The second rule still finds an arena
 * whose rw-p part merged with an adjacent anonymous mapping below it (a
 * thread stack, say), at the price of counting that neighbour as arena.
 * The ---p tail is ARENA as well (Size only, it has no Rss), as long as it
 * stays inside the 64 MiB reservation; a tail that merged with a guard
 * page above it stays ANON.  glibc >= 2.39 with glibc.mem.decorate_maps
 * names the rw-p part "[anon: glibc: malloc arena]" (ARENA by name) but
 * not the tail, which is found the same way.
 */
static void
classify_arenas(struct ana_mapping *maps, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct ana_mapping *m = &maps[i];
		struct ana_mapping *t = i + 1 < n ? &maps[i + 1] : NULL;
		uint64_t heap = UINT64_MAX;
		bool named, tail;

		if (!perms_are(m, "rw-p"))
			continue;
		named = m->cls == ANA_MAP_ARENA;
		if (!named && !plain_anon(m))
			continue;
		tail = t && plain_anon(t) && perms_are(t, "---p") &&
		       t->start == m->end;
		if (m->start % ARENA_HEAP_MAX == 0 &&
		    m->end - m->start <= ARENA_HEAP_MAX)
			heap = m->start;
		else if (tail && t->end % ARENA_HEAP_MAX == 0 &&
			 t->end - ARENA_HEAP_MAX < m->end)
			heap = t->end - ARENA_HEAP_MAX;
		if (heap == UINT64_MAX)
			continue;
		m->cls = ANA_MAP_ARENA;
		if (tail && t->end - heap <= ARENA_HEAP_MAX) {
			t->cls = ANA_MAP_ARENA;
			i++;
		}
	}
}

static void
compute_totals(struct ana_smaps *s)
{
	struct ana_totals *t = &s->totals;
	size_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < s->nmaps; i++) {
		const struct ana_mapping *m = &s->maps[i];
		struct ana_class_totals *c = &t->cls[m->cls];
		uint64_t size, rss, pss, pd, swap, uss;

		if (s->rollup && !NAME_IS(m, "[rollup]"))
			continue;
		rss = kb_to_bytes(m->kb[ANA_F_RSS]);
		pss = kb_to_bytes(m->kb[ANA_F_PSS]);
		pd = kb_to_bytes(m->kb[ANA_F_PRIVATE_DIRTY]);
		swap = kb_to_bytes(m->kb[ANA_F_SWAP]);
		uss = sat_add(kb_to_bytes(m->kb[ANA_F_PRIVATE_CLEAN]), pd);
		t->rss = sat_add(t->rss, rss);
		t->pss = sat_add(t->pss, pss);
		t->uss = sat_add(t->uss, uss);
		t->swap = sat_add(t->swap, swap);
		/* smaps_rollup has no Size and no per-class split. */
		if (s->rollup)
			continue;
		/* Size equals end - start; use that when it is missing. */
		if (m->present & (1u << ANA_F_SIZE))
			size = kb_to_bytes(m->kb[ANA_F_SIZE]);
		else
			size = m->end - m->start;
		t->size = sat_add(t->size, size);
		c->size = sat_add(c->size, size);
		c->rss = sat_add(c->rss, rss);
		c->pss = sat_add(c->pss, pss);
		c->private_dirty = sat_add(c->private_dirty, pd);
		c->swap = sat_add(c->swap, swap);
	}
}

/*
 * Parse s->buf[0..len).  Everything from the previous parse is dropped,
 * the arrays are reused.  Names, VmFlags and extra-field names point into
 * s->buf and stay valid until the next parse or release.  A smaps_rollup
 * file gives one mapping, "[rollup]", whose fields (Pss_Anon, ...) are
 * reachable through ana_mapping_field(); its totals have no size and no
 * per-class split.  Returns 0, -LP_EPARSE (line named in err), -LP_EINVAL
 * (no spare byte after len) or -LP_ENOMEM; on error s holds no mappings.
 */
int
ana_smaps_parse_buf(struct ana_smaps *s, size_t len, struct lp_err *err)
{
	size_t i;
	int rc;

	s->nmaps = 0;
	s->nextra = 0;
	s->rollup = false;
	memset(&s->totals, 0, sizeof(s->totals));
	if (!s->buf)
		ana_smaps_reserve(s, 0);
	if (len >= s->cap)
		return lp_err_set(err, LP_EINVAL,
			"parse smaps: %zu bytes of text in a %zu-byte buffer (no spare byte)",
			len, s->cap);
	s->len = len;
	/* Sentinel: every scanner stops at '\n' or '\0' without a bound. */
	s->buf[len] = '\0';
	rc = parse_lines(s, err);
	if (rc < 0) {
		s->nmaps = 0;
		s->nextra = 0;
		s->rollup = false;
		return rc;
	}
	for (i = 0; i < s->nmaps; i++)
		s->maps[i].cls = class_by_name(&s->maps[i]);
	if (!s->rollup)
		classify_arenas(s->maps, s->nmaps);
	compute_totals(s);
	return 0;
}

/* Copy text (which must not point into s->buf) into s and parse it. */
int
ana_smaps_parse(struct ana_smaps *s, const char *text, size_t len,
		struct lp_err *err)
{
	char *b = ana_smaps_reserve(s, len);

	memmove(b, text, len);
	return ana_smaps_parse_buf(s, len, err);
}

/* Field of m by its smaps name, in the units printed (kB for sizes),
 * clamped to INT64_MAX; -1 when m has no such numeric field. */
int64_t
ana_mapping_field(const struct ana_smaps *s, const struct ana_mapping *m,
		  const char *name)
{
	size_t len = strlen(name);
	uint64_t v;
	uint32_t i;
	int id;

	id = field_lookup(name, len);
	if (id >= 0) {
		if (!(m->present & (1u << id)))
			return -1;
		v = m->kb[id];
		return v > INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	if (id == FIELD_VMFLAGS)
		return -1;
	for (i = 0; i < m->extra_count; i++) {
		const struct ana_extra_field *x;

		if ((size_t)m->extra_first + i >= s->nextra)
			break;
		x = &s->extra[m->extra_first + i];
		if (x->name_len == len && memcmp(x->name, name, len) == 0) {
			v = x->value;
			return v > INT64_MAX ? INT64_MAX : (int64_t)v;
		}
	}
	return -1;
}

/* ---- diff ------------------------------------------------------------ */

static uint64_t
map_size(const struct ana_mapping *m)
{
	if (m->present & (1u << ANA_F_SIZE))
		return kb_to_bytes(m->kb[ANA_F_SIZE]);
	return m->end - m->start;
}

static int64_t
as_i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static bool
same_name(const struct ana_mapping *a, const struct ana_mapping *b)
{
	return a->name_len == b->name_len &&
	       memcmp(a->name, b->name, a->name_len) == 0;
}

static uint64_t
abs64(int64_t v)
{
	return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int
cmp_change(const void *pa, const void *pb)
{
	const struct ana_map_change *a = pa, *b = pb;
	const struct ana_mapping *ma = a->new ? a->new : a->old;
	const struct ana_mapping *mb = b->new ? b->new : b->old;
	uint64_t ra = abs64(a->d_rss), rb = abs64(b->d_rss);
	uint64_t sa = abs64(a->d_size), sb = abs64(b->d_size);

	if (ra != rb)
		return ra > rb ? -1 : 1;
	if (sa != sb)
		return sa > sb ? -1 : 1;
	if (ma->start != mb->start)
		return ma->start < mb->start ? -1 : 1;
	return (int)a->kind - (int)b->kind;
}

/* A known field of m in bytes as int64; 0 for no mapping. */
static int64_t
field_bytes(const struct ana_mapping *m, enum ana_field_id f)
{
	if (!m)
		return 0;
	if (f == ANA_F_SIZE)
		return as_i64(map_size(m));
	return as_i64(kb_to_bytes(m->kb[f]));
}

/* Append a change when it passes the min_bytes filter. */
static void
add_change(struct ana_map_change **out, size_t *n, size_t *cap,
	   const struct ana_mapping *o, const struct ana_mapping *nw,
	   uint64_t min_bytes)
{
	struct ana_map_change c;

	memset(&c, 0, sizeof(c));
	c.old = o;
	c.new = nw;
	c.d_size = field_bytes(nw, ANA_F_SIZE) - field_bytes(o, ANA_F_SIZE);
	c.d_rss = field_bytes(nw, ANA_F_RSS) - field_bytes(o, ANA_F_RSS);
	c.d_private_dirty = field_bytes(nw, ANA_F_PRIVATE_DIRTY) -
			    field_bytes(o, ANA_F_PRIVATE_DIRTY);
	c.d_swap = field_bytes(nw, ANA_F_SWAP) - field_bytes(o, ANA_F_SWAP);
	if (!o)
		c.kind = ANA_APPEARED;
	else if (!nw)
		c.kind = ANA_VANISHED;
	else if (c.d_size == 0 && c.d_rss == 0)
		return;		/* unchanged (in the figures we rank by) */
	else if (c.d_size != 0)
		c.kind = c.d_size > 0 ? ANA_GREW : ANA_SHRANK;
	else
		c.kind = c.d_rss > 0 ? ANA_GREW : ANA_SHRANK;
	if (abs64(c.d_size) < min_bytes && abs64(c.d_rss) < min_bytes)
		return;
	*out = xgrow(*out, cap, *n + 1, sizeof(**out));
	(*out)[(*n)++] = c;
}

/*
 * Matching runs in two merge passes over the address-ordered lists: first
 * on start address (a heap or arena that grows in place keeps its start),
 * then, among what is left, on end address (the main stack grows down; an
 * arena's ---p tail shrinks from below as the heap grows into it).  Both
 * passes require the same name, so a range remapped under another name is
 * a vanish plus an appear.  The min_bytes filter applies to every kind,
 * appearances included: their delta is their whole Size/Rss.
 */
size_t
ana_smaps_diff(const struct ana_smaps *old, const struct ana_smaps *new,
	       uint64_t min_bytes, struct ana_map_change **out)
{
	size_t no = old->nmaps, nn = new->nmaps;
	size_t i, j, n = 0, cap = 0;
	int32_t *match_o;	/* old index -> new index, or -1 */
	bool *used_n;

	*out = NULL;
	match_o = xmalloc((no ? no : 1) * sizeof(*match_o));
	used_n = xcalloc(nn ? nn : 1, sizeof(*used_n));
	for (i = 0; i < no; i++)
		match_o[i] = -1;

	for (i = 0, j = 0; i < no && j < nn;) {
		const struct ana_mapping *a = &old->maps[i], *b = &new->maps[j];

		if (a->start < b->start) {
			i++;
		} else if (a->start > b->start) {
			j++;
		} else {
			if (same_name(a, b)) {
				match_o[i] = (int32_t)j;
				used_n[j] = true;
			}
			i++;
			j++;
		}
	}
	for (i = 0, j = 0; i < no && j < nn;) {
		const struct ana_mapping *a = &old->maps[i], *b = &new->maps[j];

		if (match_o[i] >= 0) {
			i++;
		} else if (used_n[j]) {
			j++;
		} else if (a->end < b->end) {
			i++;
		} else if (a->end > b->end) {
			j++;
		} else {
			if (same_name(a, b)) {
				match_o[i] = (int32_t)j;
				used_n[j] = true;
			}
			i++;
			j++;
		}
	}

	for (i = 0; i < no; i++)
		add_change(out, &n, &cap, &old->maps[i],
			   match_o[i] >= 0 ? &new->maps[match_o[i]] : NULL,
			   min_bytes);
	for (j = 0; j < nn; j++)
		if (!used_n[j])
			add_change(out, &n, &cap, NULL, &new->maps[j],
				   min_bytes);
	free(match_o);
	free(used_n);
	if (n > 1)
		qsort(*out, n, sizeof(**out), cmp_change);
	return n;
}

static const char *const change_names[] = {
	[ANA_APPEARED] = "appeared",
	[ANA_VANISHED] = "vanished",
	[ANA_GREW] = "grew",
	[ANA_SHRANK] = "shrank",
};

/* Mapping name for a terminal: the kernel escapes only '\n' (as "\012"),
 * so other control bytes are escaped here the same way. */
static void
print_name(FILE *fp, const struct ana_mapping *m)
{
	uint32_t i;

	if (!m->name_len) {
		fprintf(fp, "<%s>", ana_map_class_name(m->cls));
		return;
	}
	for (i = 0; i < m->name_len; i++) {
		unsigned char c = (unsigned char)m->name[i];

		if (c < 0x20 || c == 0x7f)
			fprintf(fp, "\\%03o", c);
		else
			fputc(c, fp);
	}
	if (m->deleted)
		fputs(" (deleted)", fp);
}

void
ana_smaps_diff_print(FILE *fp, const struct ana_map_change *c, size_t n)
{
	struct ana_map_change *sorted;
	char rss[32], size[32];
	size_t i;

	if (!n)
		return;
	sorted = xmalloc(n * sizeof(*sorted));
	memcpy(sorted, c, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_change);
	for (i = 0; i < n; i++) {
		const struct ana_map_change *x = &sorted[i];
		const struct ana_mapping *m = x->new ? x->new : x->old;
		unsigned k = (unsigned)x->kind;

		lp_human_bytes((double)x->d_rss, 1, rss, sizeof(rss));
		lp_human_bytes((double)x->d_size, 1, size, sizeof(size));
		fprintf(fp, "  %-8s %11s rss %11s size  ",
			k < 4 ? change_names[k] : "?", rss, size);
		print_name(fp, m);
		fprintf(fp, "  %" PRIx64 "-%" PRIx64 " %s\n", m->start, m->end,
			m->perms);
	}
	free(sorted);
}
