#ifndef LP_ANALYSIS_INT_H
#define LP_ANALYSIS_INT_H

/*
 * What the files of analysis/ share and do not export.  Heap dumps are
 * read by heapdump.c (scanner, interned strings, counter tables, digests,
 * the threads that scan a mapped dump), diffed by heapdiff.c and searched
 * for reference chains by heapwhy.c.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "analysis/analysis.h"

/* ---- heapdump.c --------------------------------------------------------- */

#define HD_MAX_THREADS	8
#define HD_WINDOW	((size_t)1 << 20)	/* scanned before a page drop */
#define HD_MIN_CHUNK	((size_t)1 << 20)	/* per thread, at least */
#define HD_READ_BLOCK	((size_t)1 << 20)	/* streaming read size */
#define HD_SHAPES_PER_SITE 32	/* sizes kept per site, then "any" */
#define HD_SHAPE_ANY	UINT64_MAX
#define HD_NONE		UINT32_MAX

static inline uint64_t
hd_mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 31);
}

struct hd_str {
	uint64_t hash;
	size_t off, len;
};

struct hd_strs {
	char *buf;
	size_t len, cap;
	struct hd_str *s;
	size_t n, scap;
	uint32_t *slot;		/* 0 empty, else id + 1 */
	size_t mask;
};

struct hd_tab {
	unsigned nk, stride;
	uint64_t *ent;
	size_t n, cap;
	uint32_t *slot;		/* 0 empty, else entry + 1 */
	size_t mask;
};

#define TAB_KEY(t, i)	((t)->ent + (size_t)(i) * (t)->stride)
#define TAB_VAL(t, i)	(TAB_KEY(t, i) + (t)->nk)

enum {
	HD_ADDR = 1 << 0, HD_TYPE = 1 << 1, HD_CLASS = 1 << 2,
	HD_FILE = 1 << 3, HD_LINE = 1 << 4, HD_METHOD = 1 << 5,
	HD_GEN = 1 << 6, HD_MEMSIZE = 1 << 7, HD_NAME = 1 << 8,
	HD_REAL = 1 << 9, HD_ROOT = 1 << 10, HD_REFS = 1 << 11,
	HD_SHAPE = 1 << 12,
};


/* What one line says; strings are escaped spans of the input. */
struct hd_rec {
	unsigned have;
	uint64_t addr, cls, memsize, shape;
	int64_t line, gen;
	const char *type, *file, *method, *name, *real, *root, *refs;
	size_t type_len, file_len, method_len, name_len, real_len, root_len,
	       refs_len;
};

static inline const char *
skip_ws(const char *p, const char *e)
{
	/* one test for the usual byte, which is no blank at all */
	while (p < e && (unsigned char)*p <= ' ' &&
	       (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/*
 * The scans below look at 16 bytes at a time (SSE2, part of x86-64) and
 * never read past e: the input may end at the end of a mapping.
 */

/* First '"' or '\\' in [p, e), or e. */
static inline const char *
scan_quote(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');

	for (; e - p >= 16; p += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmpeq_epi8(v, q),
				     _mm_cmpeq_epi8(v, b)));

		if (m)
			return p + __builtin_ctz(m);
	}
#endif
	while (p < e && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* First of " [ ] { } in [p, e), or e. */
static inline const char *
scan_nest(const char *p, const char *e)
{
#ifdef __SSE2__
	/* '[' | 0x20 == '{' and ']' | 0x20 == '}' */
	const __m128i q = _mm_set1_epi8('"'), o = _mm_set1_epi8('{'),
		      c = _mm_set1_epi8('}'), lc = _mm_set1_epi8(0x20);

	for (; e - p >= 16; p += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i f = _mm_or_si128(v, lc);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
			_mm_cmpeq_epi8(v, q), _mm_or_si128(
				_mm_cmpeq_epi8(f, o), _mm_cmpeq_epi8(f, c))));

		if (m)
			return p + __builtin_ctz(m);
	}
#endif
	while (p < e && *p != '"' && (*p | 0x20) != '{' && (*p | 0x20) != '}')
		p++;
	return p;
}

/*
 * p is just after an opening quote: return the closing quote, or NULL
 * when the line ends first.  A backslash escapes the byte after it, so
 * \" does not close the string and \\" does.
 */
static inline const char *
str_close(const char *p, const char *e)
{
	for (;;) {
		p = scan_quote(p, e);
		if (p >= e)
			return NULL;
		if (*p == '"')
			return p;
		p += 2;		/* a backslash and the byte it escapes */
		if (p > e)
			return NULL;
	}
}


/* Hex digit values plus one; 0 for other bytes. */
static const unsigned char hex_digit1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
	['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11,
	['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static inline int
hexval(char c)
{
	return (int)hex_digit1[(unsigned char)c] - 1;
}

/* An address string "0x7f..."; NULL when it is not one. */
static inline const char *
take_addr(const char *p, const char *e, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0, h;

	if (e - p < 4 || p[0] != '"' || p[1] != '0' || (p[2] | 0x20) != 'x')
		return NULL;
	for (p += 3; p < e && (h = hexval(*p)) >= 0; p++, n++)
		v = v << 4 | (uint64_t)h;
	if (p >= e || *p != '"' || n == 0 || n > 16)
		return NULL;
	*out = v;
	return p + 1;
}

static inline bool
span_is(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n == l && !memcmp(s, lit, l);
}

enum { CN_NAME = 1, CN_REAL = 2, CN_ANON = 3 };

/* tcs values */
enum { TV_N, TV_BYTES, TV_UN, TV_UBYTES, TV_OLD, TV_NV };

struct scan_job {
	void (*fn)(void *acc, const char *p, const char *e);
	void *acc;
	const char *p, *e;
	const char *base;	/* the mapping: page aligned */
	bool drop;		/* the input is our own read-only mapping */
};

/* ---- heapgrown.c: grown objects ----------------------------------------- */

enum { HG_OFF, HG_KEEP, HG_MID, HG_LAST };

/*
 * OLD's objects, one segment per scanning thread: address -> (memsize,
 * tag).  Entries come in runs of ascending addresses within an aligned
 * 16 KiB block (Ruby writes a dump heap page by heap page, each in
 * address order), so an entry keeps the low 32 bits: 9 bytes an object.
 * At the end of the scan the runs are sorted by address; when they
 * overlap, the entries are sorted.
 */
struct hg_run {
	uint64_t min, max;	/* addresses */
	size_t start, n;	/* entries */
};

struct hg_seg {
	uint32_t *lo;		/* low 32 bits of the address */
	uint32_t *ms;		/* memsize; UINT32_MAX: see big */
	uint8_t *tag;		/* type, class and generation, hashed */
	size_t n, cap;
	struct hg_run *run;
	size_t nrun, crun;
	struct hd_tab big;	/* [address] -> memsize >= UINT32_MAX */
};

/* A grown object; strings are sids of the acc, then of the digest. */
struct hg_obj {
	uint64_t addr, ms[3], growth;
	uint64_t type, cls, file, method;	/* cls: a class address
						 * in the acc */
	int64_t line, gen;	/* -1 when unknown */
	bool traced;		/* has file/line/method */
};

/* One thread's part. */
struct hg_acc {
	int role;
	struct hg_seg seg;		/* KEEP */
	const struct ana_hd_digest *old;	/* MID, LAST */
	const struct ana_hd_digest *mid;	/* LAST of three */
	uint8_t *const *alive;		/* MID: per OLD segment, shared */
	struct hd_tab changed;		/* MID: [seg << 40 | index] ->
					 * memsize in NEW */
	size_t cur[HD_MAX_THREADS][2];	/* lookup hints per segment: run,
					 * entry */
	unsigned last_seg;		/* the segment of the last hit */
	size_t want;			/* LAST: top rows kept (0: all) */
	struct hg_obj *top;		/* LAST: heap, smallest growth
					 * first */
	size_t ntop, ctop;
	uint64_t count, bytes;		/* LAST: every grown object */
};

int ana__hg_acc_init(struct hg_acc *g, const struct ana_hd_digest *d);
void ana__hg_acc_release(struct hg_acc *g);
int ana__hg_line(struct hg_acc *g, struct hd_strs *str,
		 const struct hd_rec *r, uint64_t type_hash, uint32_t tsid,
		 uint64_t ms);
int ana__hg_merge_acc(struct ana_hd_digest *d, struct hg_acc *g,
		      const struct hd_strs *str, uint32_t *tr,
		      const struct hd_tab *cmap, unsigned idx);
int ana__hg_merge_end(struct ana_hd_digest *d);
void ana__hg_release(struct ana_hd_digest *d);
int ana__hg_diff(const struct ana_hd_digest *d, size_t n,
		 struct ana_hd_diff *out);

struct ana_hd_digest {
	int64_t after;
	bool ended;
	struct hd_strs str;
	struct hd_tab tcs;	/* [type, class, shape, memsize] (sids) */
	struct hd_tab site;	/* [file, line, method, gen, type, class,
				 * shape, memsize] (sids) */
	struct ana_hd_stats st;
	uint32_t sid_anon, sid_unknown;
	struct hd_acc *feed;	/* streaming */
	char *carry;		/* partial line between feeds */
	size_t carry_len, carry_cap;
	/* sites_after_gen ANA_HD_NO_SITES (OLD): the sorted addresses of
	 * the objects of the newest generation */
	uint64_t *top;
	size_t ntop;
	/* NEW, LATER: OLD's top (borrowed), when OLD's newest generation
	 * is this digest's `after` */
	const uint64_t *old;
	size_t nold;
	/* grown objects (heapgrown.c) */
	int hg_role;
	struct hg_seg hg_seg[HD_MAX_THREADS];	/* KEEP: OLD's objects */
	unsigned hg_nseg;
	const struct ana_hd_digest *hg_old, *hg_mid;	/* MID, LAST */
	uint8_t *hg_alive[HD_MAX_THREADS];	/* MID: per OLD segment */
	struct hd_tab hg_changed;	/* MID: [seg << 40 | index] ->
					 * memsize */
	size_t hg_want;			/* LAST */
	struct hg_obj *hg_obj;		/* LAST: largest growth first */
	size_t hg_nobj, hg_cobj;
	uint64_t hg_count, hg_bytes;
};

/* A dump file, mapped when it can be. */
struct hd_input {
	int fd;
	const char *p;
	size_t len;
	bool mapped;
};

int ana__hd_parse(const char *p, const char *e, struct hd_rec *r,
		  bool want_refs);
int ana__hd_input_open(const char *path, struct hd_input *in,
		       struct lp_err *err);
void ana__hd_input_close(struct hd_input *in);
char *ana__hd_json_unescape(const char *s, size_t n);
unsigned ana__hd_pick_threads(unsigned want, size_t len);
void ana__hd_run_jobs(struct scan_job *jobs, unsigned n);
void ana__hd_split_lines(const char *buf, size_t len, unsigned n, size_t *cut);
bool ana__hd_grow(void **p, size_t *cap, size_t need, size_t sz);
uint64_t *ana__hd_tab_add(struct hd_tab *t, const uint64_t *k);
uint64_t *ana__hd_tab_find(const struct hd_tab *t, const uint64_t *k);
int ana__hd_tab_init(struct hd_tab *t, unsigned nk, unsigned nv);
void ana__hd_tab_release(struct hd_tab *t);
const char *ana__hd_strs_at(const struct hd_strs *t, uint32_t id, size_t *len);
int ana__hd_strs_init(struct hd_strs *t);
void ana__hd_strs_release(struct hd_strs *t);
uint32_t ana__hd_strs_intern(struct hd_strs *t, const char *p, size_t n);
uint32_t ana__hd_tr_sid(struct hd_strs *to, const struct hd_strs *from,
			uint32_t *tr, uint32_t sid);

#endif
