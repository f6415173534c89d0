/*
 * analysis/heapdump.c: streaming analysis of Ruby heap dumps
 * (ObjectSpace.dump_all: one JSON object per line).
 *
 * Scanner.  There is no JSON DOM: each line is walked key by key at the
 * top level only.  The few keys needed are read in place (strings stay
 * escaped, as spans of the input, and are unescaped only for output);
 * every other value is skipped: strings by looking for the closing quote
 * 16 bytes at a time, a backslash escaping the byte after it (so \" and
 * \\" are told apart); arrays and objects by bracket depth, skipping the
 * strings inside them.
 * Ruby writes "flags" last, right after "memsize", so the scan of a line
 * stops there (after checking that the line still ends in '}').  A line
 * that is not a JSON object, is cut short, or has no "type" is counted
 * as malformed and skipped; unknown keys are skipped.
 *
 * Parallelism and memory.  A mapped dump is split into one chunk per
 * thread at line boundaries.  Every thread fills its own tables, without
 * locks, and the tables are merged when all are done.  Class names are
 * resolved only then: an object's "class" is the address of a CLASS line
 * that may come later in the file, or in another chunk, so threads key by
 * class address and keep a map from address to name of the CLASS/MODULE
 * lines (bounded by the number of classes).  Pages already scanned are
 * dropped (MADV_DONTNEED), so resident memory does not grow with the
 * dump.  Tables grow with classes, allocation sites, generations and
 * sizes; not with objects (sizes kept per site are capped).
 *
 * Identity: which objects of two dumps are "the same".  Addresses are
 * not identity: a freed slot is reused by a new object, and GC.compact
 * moves objects.  Allocation tracing records for each object its file,
 * line, method and the GC count at its birth ("generation"), which never
 * change during its life.  So:
 *  - born after OLD = generation above OLD's highest generation.  Objects
 *    born after OLD was dumped but before the next GC share that
 *    generation and cannot be told from older ones: they are not counted
 *    (same_gen; run GC.start right after taking OLD).
 *  - still alive in LATER (3 dumps): LATER's objects with a generation in
 *    (OLD's highest, NEW's highest] are matched with NEW's as multisets on
 *    (file, line, method, generation, type, class): min(NEW, LATER) per
 *    key.  Matching first includes the size (bytesize/length/size and
 *    memsize), then drops it (an object may grow); bytes are LATER's.
 *  - GC.compact on Ruby 3.1 loses the allocation info of every object it
 *    moves (objspace's compaction callback tests the wrong pointer), so
 *    in LATER a moved object has no file/line/generation.  Per bucket
 *    (type, class, size, memsize) the objects without allocation info
 *    that appeared between NEW and LATER, less the old traced objects that
 *    left the bucket (they may have lost their info the same way), are
 *    matched with NEW's candidates of that bucket that were not found,
 *    shared out in proportion when several sites compete.  They are
 *    reported apart (by_shape).
 *  - without allocation info in NEW there are no sites: counts per
 *    type/class are compared instead.
 */
#include "analysis/analysis.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/log.h"

#define HD_MAX_THREADS	8
#define HD_WINDOW	((size_t)1 << 20)	/* scanned before a page drop */
#define HD_MIN_CHUNK	((size_t)1 << 20)	/* per thread, at least */
#define HD_READ_BLOCK	((size_t)1 << 20)	/* streaming read size */
#define HD_SHAPES_PER_SITE 32	/* sizes kept per site, then "any" */
#define HD_SHAPE_ANY	UINT64_MAX
#define HD_NONE		UINT32_MAX

/* ---- hashing ---------------------------------------------------------- */

static inline uint64_t
hd_mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 31);
}

static uint64_t
hd_hash(const char *s, size_t n)
{
	uint64_t h = 0x6a09e667f3bcc909ULL + n, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = hd_mix(h, w);
	}
	if (n) {
		w = 0;
		memcpy(&w, s, n);
		h = hd_mix(h, w);
	}
	return hd_mix(h, 0x510e527fade682d1ULL);
}

/* ---- interned strings --------------------------------------------------
 * Strings back to back in one buffer (each NUL-terminated), an entry per
 * string and an open-addressing index.  Id 0 is "".
 */

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

static void
strs_release(struct hd_strs *t)
{
	free(t->buf);
	free(t->s);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static int
strs_rehash(struct hd_strs *t, size_t nslots)
{
	uint32_t *slot = calloc(nslots, sizeof(*slot));

	if (!slot)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		size_t j = t->s[i].hash & (nslots - 1);

		while (slot[j])
			j = (j + 1) & (nslots - 1);
		slot[j] = (uint32_t)i + 1;
	}
	free(t->slot);
	t->slot = slot;
	t->mask = nslots - 1;
	return 0;
}

static uint32_t strs_intern(struct hd_strs *t, const char *p, size_t n);

static int
strs_init(struct hd_strs *t)
{
	memset(t, 0, sizeof(*t));
	if (strs_rehash(t, 64) < 0)
		return -1;
	if (strs_intern(t, "", 0) != 0) {
		strs_release(t);
		return -1;
	}
	return 0;
}

static bool
grow(void **p, size_t *cap, size_t need, size_t sz)
{
	size_t c = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return true;
	while (c < need) {
		if (c > SIZE_MAX / 2 / sz)
			return false;
		c *= 2;
	}
	q = realloc(*p, c * sz);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

static uint32_t
strs_find_h(const struct hd_strs *t, const char *p, size_t n, uint64_t h,
	    size_t *slot_out)
{
	size_t j = h & t->mask;

	for (; t->slot[j]; j = (j + 1) & t->mask) {
		const struct hd_str *e = &t->s[t->slot[j] - 1];

		if (e->hash == h && e->len == n &&
		    !memcmp(t->buf + e->off, p, n))
			return t->slot[j] - 1;
	}
	if (slot_out)
		*slot_out = j;
	return HD_NONE;
}

/* Id of p[0..n), added when new; HD_NONE when out of memory. */
static uint32_t
strs_intern(struct hd_strs *t, const char *p, size_t n)
{
	uint64_t h = hd_hash(p, n);
	size_t j;
	uint32_t id = strs_find_h(t, p, n, h, &j);

	if (id != HD_NONE)
		return id;
	if (t->n >= HD_NONE - 1 || n > SIZE_MAX / 2)
		return HD_NONE;
	if ((t->n + 1) * 2 > t->mask + 1) {
		if (strs_rehash(t, (t->mask + 1) * 2) < 0)
			return HD_NONE;
		strs_find_h(t, p, n, h, &j);
	}
	if (!grow((void **)&t->buf, &t->cap, t->len + n + 1, 1) ||
	    !grow((void **)&t->s, &t->scap, t->n + 1, sizeof(*t->s)))
		return HD_NONE;
	memcpy(t->buf + t->len, p, n);
	t->buf[t->len + n] = '\0';
	id = (uint32_t)t->n++;
	t->s[id].hash = h;
	t->s[id].off = t->len;
	t->s[id].len = n;
	t->len += n + 1;
	t->slot[j] = id + 1;
	return id;
}

static const char *
strs_at(const struct hd_strs *t, uint32_t id, size_t *len)
{
	*len = t->s[id].len;
	return t->buf + t->s[id].off;
}

/* ---- counter tables ----------------------------------------------------
 * Fixed-size keys of nk 64-bit words and nv value words, stored flat in
 * insertion order, with an open-addressing index.
 */

struct hd_tab {
	unsigned nk, stride;
	uint64_t *ent;
	size_t n, cap;
	uint32_t *slot;		/* 0 empty, else entry + 1 */
	size_t mask;
};

#define TAB_KEY(t, i)	((t)->ent + (size_t)(i) * (t)->stride)
#define TAB_VAL(t, i)	(TAB_KEY(t, i) + (t)->nk)

static uint64_t
key_hash(const uint64_t *k, unsigned nk)
{
	uint64_t h = 0x243f6a8885a308d3ULL;

	for (unsigned i = 0; i < nk; i++)
		h = hd_mix(h, k[i]);
	return h ^ (h >> 29);
}

static int
tab_rehash(struct hd_tab *t, size_t nslots)
{
	uint32_t *slot = calloc(nslots, sizeof(*slot));

	if (!slot)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		size_t j = key_hash(TAB_KEY(t, i), t->nk) & (nslots - 1);

		while (slot[j])
			j = (j + 1) & (nslots - 1);
		slot[j] = (uint32_t)i + 1;
	}
	free(t->slot);
	t->slot = slot;
	t->mask = nslots - 1;
	return 0;
}

static int
tab_init(struct hd_tab *t, unsigned nk, unsigned nv)
{
	memset(t, 0, sizeof(*t));
	t->nk = nk;
	t->stride = nk + nv;
	return tab_rehash(t, 64);
}

static void
tab_release(struct hd_tab *t)
{
	free(t->ent);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static inline bool
key_eq(const uint64_t *a, const uint64_t *b, unsigned nk)
{
	for (unsigned i = 0; i < nk; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static uint64_t *
tab_lookup(const struct hd_tab *t, const uint64_t *k, size_t *slot_out)
{
	size_t j = key_hash(k, t->nk) & t->mask;

	for (; t->slot[j]; j = (j + 1) & t->mask) {
		uint64_t *e = TAB_KEY(t, t->slot[j] - 1);

		if (key_eq(e, k, t->nk))
			return e + t->nk;
	}
	if (slot_out)
		*slot_out = j;
	return NULL;
}

static uint64_t *
tab_find(const struct hd_tab *t, const uint64_t *k)
{
	return tab_lookup(t, k, NULL);
}

/* Values of key k, added as zeroes when new; NULL when out of memory. */
static uint64_t *
tab_add(struct hd_tab *t, const uint64_t *k)
{
	size_t j;
	uint64_t *v = tab_lookup(t, k, &j), *e;

	if (v)
		return v;
	if (t->n >= HD_NONE - 1)
		return NULL;
	if ((t->n + 1) * 2 > t->mask + 1) {
		if (tab_rehash(t, (t->mask + 1) * 2) < 0)
			return NULL;
		tab_lookup(t, k, &j);
	}
	if (!grow((void **)&t->ent, &t->cap, t->n + 1,
		  t->stride * sizeof(uint64_t)))
		return NULL;
	e = TAB_KEY(t, t->n);
	memcpy(e, k, t->nk * sizeof(uint64_t));
	memset(e + t->nk, 0, (t->stride - t->nk) * sizeof(uint64_t));
	t->slot[j] = (uint32_t)++t->n;
	return e + t->nk;
}

/* ---- the line scanner ------------------------------------------------- */

enum {
	HD_ADDR = 1 << 0, HD_TYPE = 1 << 1, HD_CLASS = 1 << 2,
	HD_FILE = 1 << 3, HD_LINE = 1 << 4, HD_METHOD = 1 << 5,
	HD_GEN = 1 << 6, HD_MEMSIZE = 1 << 7, HD_NAME = 1 << 8,
	HD_REAL = 1 << 9, HD_ROOT = 1 << 10, HD_REFS = 1 << 11,
	HD_SHAPE = 1 << 12,
};

/* Why a line was skipped. */
enum {
	BAD_NONE, BAD_NOT_OBJECT, BAD_TRUNCATED, BAD_SYNTAX, BAD_NO_TYPE,
};

static const char *const bad_text[] = {
	[BAD_NONE] = "",
	[BAD_NOT_OBJECT] = "not a JSON object",
	[BAD_TRUNCATED] = "line cut short",
	[BAD_SYNTAX] = "malformed JSON",
	[BAD_NO_TYPE] = "no \"type\" key",
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
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
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

/* p at '[' or '{': return just after the matching bracket, or NULL. */
static const char *
skip_nested(const char *p, const char *e)
{
	size_t depth = 0;

	while (p < e) {
		p = scan_nest(p, e);
		if (p >= e)
			break;
		switch (*p) {
		case '"':
			p = str_close(p + 1, e);
			if (!p)
				return NULL;
			break;
		case '[':
		case '{':
			depth++;
			break;
		default:	/* ']' or '}' */
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	return NULL;
}

static const char *
skip_value(const char *p, const char *e)
{
	if (p >= e)
		return NULL;
	if (*p == '"') {
		p = str_close(p + 1, e);
		return p ? p + 1 : NULL;
	}
	if (*p == '[' || *p == '{')
		return skip_nested(p, e);
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ')
		p++;
	return p;
}

/* A string value: its span; returns the end or NULL (not a string). */
static inline const char *
take_str(const char *p, const char *e, const char **s, size_t *len)
{
	const char *q;

	if (*p != '"')
		return NULL;
	q = str_close(p + 1, e);
	if (!q)
		return NULL;
	*s = p + 1;
	*len = (size_t)(q - p - 1);
	return q + 1;
}

/* An integer value; NULL when it is not one (fraction, too big, ...). */
static inline const char *
take_int(const char *p, const char *e, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0;
	const char *s;

	if (*p == '-') {
		neg = true;
		p++;
	}
	for (s = p; p < e && (unsigned)(*p - '0') < 10; p++) {
		if (v > ((uint64_t)INT64_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (p == s || (p < e && (*p == '.' || *p == 'e' || *p == 'E')))
		return NULL;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return p;
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

enum {
	K_OTHER, K_TYPE, K_FILE, K_LINE, K_NAME, K_ROOT, K_SIZE, K_CLASS,
	K_FLAGS, K_METHOD, K_LENGTH, K_ADDRESS, K_MEMSIZE, K_BYTESIZE,
	K_GENERATION, K_REFERENCES, K_REAL_CLASS_NAME,
};

/*
 * k is just after a key's opening quote.  Ruby writes its keys without
 * escapes, so the keys we want are recognised with their closing quote
 * (no scan); any other key is scanned.  Sets *end to the closing quote.
 */
static inline int
key_id(const char *k, const char *e, const char **end)
{
	/* constant sizes: the compiler inlines these memcmp calls */
#define KEY(lit, id) \
	if ((size_t)(e - k) >= sizeof(lit) - 1 && \
	    !memcmp(k, lit, sizeof(lit) - 1)) { \
		*end = k + sizeof(lit) - 2; \
		return id; \
	}
	switch (k < e ? *k : 0) {
	case 'a':
		KEY("address\"", K_ADDRESS);
		break;
	case 'b':
		KEY("bytesize\"", K_BYTESIZE);
		break;
	case 'c':
		KEY("class\"", K_CLASS);
		break;
	case 'f':
		KEY("file\"", K_FILE);
		KEY("flags\"", K_FLAGS);
		break;
	case 'g':
		KEY("generation\"", K_GENERATION);
		break;
	case 'l':
		KEY("line\"", K_LINE);
		KEY("length\"", K_LENGTH);
		break;
	case 'm':
		KEY("memsize\"", K_MEMSIZE);
		KEY("method\"", K_METHOD);
		break;
	case 'n':
		KEY("name\"", K_NAME);
		break;
	case 'r':
		KEY("references\"", K_REFERENCES);
		KEY("root\"", K_ROOT);
		KEY("real_class_name\"", K_REAL_CLASS_NAME);
		break;
	case 's':
		KEY("size\"", K_SIZE);
		break;
	case 't':
		KEY("type\"", K_TYPE);
		break;
	default:
		break;
	}
#undef KEY
	*end = str_close(k, e);
	return K_OTHER;
}

static inline void
set_shape(struct hd_rec *r, int64_t v, uint64_t kind)
{
	if (!(r->have & HD_SHAPE) && v >= 0) {
		r->shape = kind << 56 | ((uint64_t)v & ((1ULL << 56) - 1));
		r->have |= HD_SHAPE;
	}
}

/*
 * Read one line [p, e) (no newline).  want_refs keeps the span of
 * "references".  Returns 0 or a BAD_* reason.
 */
static int
hd_parse(const char *p, const char *e, struct hd_rec *r, bool want_refs)
{
	r->have = 0;
	p = skip_ws(p, e);
	if (p >= e || *p != '{')
		return BAD_NOT_OBJECT;
	for (p++;;) {
		const char *ke, *v, *q = NULL;
		int64_t iv;
		int key;

		p = skip_ws(p, e);
		if (p >= e)
			return BAD_TRUNCATED;
		if (*p == '}')
			break;
		if (*p != '"')
			return BAD_SYNTAX;
		key = key_id(p + 1, e, &ke);
		if (!ke)
			return BAD_TRUNCATED;
		p = ke + 1;
		if (p < e && *p != ':')
			p = skip_ws(p, e);
		if (p >= e)
			return BAD_TRUNCATED;
		if (*p != ':')
			return BAD_SYNTAX;
		v = p = skip_ws(p + 1, e);
		if (p >= e)
			return BAD_TRUNCATED;
		switch (key) {
		case K_TYPE:
			if ((q = take_str(v, e, &r->type, &r->type_len)))
				r->have |= HD_TYPE;
			break;
		case K_FILE:
			if ((q = take_str(v, e, &r->file, &r->file_len)))
				r->have |= HD_FILE;
			break;
		case K_LINE:
			if ((q = take_int(v, e, &r->line)))
				r->have |= HD_LINE;
			break;
		case K_NAME:
			if ((q = take_str(v, e, &r->name, &r->name_len)))
				r->have |= HD_NAME;
			break;
		case K_ROOT:
			if ((q = take_str(v, e, &r->root, &r->root_len)))
				r->have |= HD_ROOT;
			break;
		case K_SIZE:
			if ((q = take_int(v, e, &iv)))
				set_shape(r, iv, 3);
			break;
		case K_CLASS:
			if ((q = take_addr(v, e, &r->cls)))
				r->have |= HD_CLASS;
			break;
		case K_FLAGS:
			if (!(r->have & HD_MEMSIZE))
				break;
			/* Ruby's last key: stop, but insist that the line
			 * was not cut short */
			while (e > p && (e[-1] == ' ' || e[-1] == '\t' ||
					 e[-1] == '\r'))
				e--;
			return e[-1] == '}' ? BAD_NONE : BAD_TRUNCATED;
		case K_METHOD:
			if ((q = take_str(v, e, &r->method, &r->method_len)))
				r->have |= HD_METHOD;
			break;
		case K_LENGTH:
			if ((q = take_int(v, e, &iv)))
				set_shape(r, iv, 2);
			break;
		case K_ADDRESS:
			if ((q = take_addr(v, e, &r->addr)))
				r->have |= HD_ADDR;
			break;
		case K_MEMSIZE:
			if ((q = take_int(v, e, &iv)) && iv >= 0) {
				r->memsize = (uint64_t)iv;
				r->have |= HD_MEMSIZE;
			}
			break;
		case K_BYTESIZE:
			if ((q = take_int(v, e, &iv)))
				set_shape(r, iv, 1);
			break;
		case K_GENERATION:
			if ((q = take_int(v, e, &r->gen)))
				r->have |= HD_GEN;
			break;
		case K_REFERENCES:
			if (want_refs && *v == '[' && (q = skip_nested(v, e))) {
				r->refs = v;
				r->refs_len = (size_t)(q - v);
				r->have |= HD_REFS;
			}
			break;
		case K_REAL_CLASS_NAME:
			if ((q = take_str(v, e, &r->real, &r->real_len)))
				r->have |= HD_REAL;
			break;
		default:
			break;
		}
		p = q ? q : skip_value(v, e);
		if (!p)
			return BAD_TRUNCATED;
		p = skip_ws(p, e);
		if (p >= e)
			return BAD_TRUNCATED;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}')
			break;
		return BAD_SYNTAX;
	}
	return skip_ws(p + 1, e) == e ? BAD_NONE : BAD_SYNTAX;
}

static inline bool
span_is(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n == l && !memcmp(s, lit, l);
}

/* ---- JSON strings for output ------------------------------------------ */

static size_t
put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | c >> 6);
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | c >> 12);
		o[1] = (char)(0x80 | (c >> 6 & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | c >> 18);
	o[1] = (char)(0x80 | (c >> 12 & 0x3f));
	o[2] = (char)(0x80 | (c >> 6 & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static int
hex4(const char *s, const char *e, uint32_t *out)
{
	uint32_t v = 0;

	if (e - s < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hexval(s[i]);

		if (h < 0)
			return -1;
		v = v << 4 | (uint32_t)h;
	}
	*out = v;
	return 0;
}

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t
utf8_len(const unsigned char *s, const unsigned char *e)
{
	size_t n;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)(e - s) < n)
		return 0;
	c = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Unescape a JSON string body into valid UTF-8 (malloc'd, NUL-terminated):
 * invalid bytes, lone surrogates and NUL become U+FFFD.  NULL when out of
 * memory.
 */
static char *
json_unescape(const char *s, size_t n)
{
	const char *e = s + n;
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = o = malloc(3 * n + 1);
	if (!out)
		return NULL;
	while (s < e) {
		uint32_t c, lo;
		size_t l;

		if (*s != '\\') {
			l = utf8_len((const unsigned char *)s,
				     (const unsigned char *)e);
			if (l && *s) {
				memcpy(o, s, l);
				o += l;
				s += l;
			} else {
				o += put_utf8(o, 0xfffd);
				s++;
			}
			continue;
		}
		if (++s >= e) {
			o += put_utf8(o, 0xfffd);
			break;
		}
		switch (*s) {
		case 'b': *o++ = '\b'; s++; break;
		case 'f': *o++ = '\f'; s++; break;
		case 'n': *o++ = '\n'; s++; break;
		case 'r': *o++ = '\r'; s++; break;
		case 't': *o++ = '\t'; s++; break;
		case 'u':
			if (hex4(s + 1, e, &c) < 0) {
				o += put_utf8(o, 0xfffd);
				s++;
				break;
			}
			s += 5;
			if (c >= 0xd800 && c <= 0xdbff && e - s >= 6 &&
			    s[0] == '\\' && s[1] == 'u' &&
			    hex4(s + 2, e, &lo) == 0 &&
			    lo >= 0xdc00 && lo <= 0xdfff) {
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
				s += 6;
			} else if ((c >= 0xd800 && c <= 0xdfff) || c == 0) {
				c = 0xfffd;
			}
			o += put_utf8(o, c);
			break;
		default:	/* \" \\ \/ and anything else: the character */
			l = utf8_len((const unsigned char *)s,
				     (const unsigned char *)e);
			if (l && *s) {
				memcpy(o, s, l);
				o += l;
				s += l;
			} else {
				o += put_utf8(o, 0xfffd);
				s++;
			}
			break;
		}
	}
	*o = '\0';
	return out;
}

/* ---- one thread's tables ---------------------------------------------- */

enum { CN_NAME = 1, CN_REAL = 2, CN_ANON = 3 };

/* tcs values */
enum { TV_N, TV_BYTES, TV_UN, TV_UBYTES, TV_OLD, TV_NV };

struct hd_acc {
	int64_t after;		/* sites for generations above it */
	bool shapes;		/* tcs keyed by size too */
	struct hd_strs str;
	struct hd_tab cls;	/* [class addr] -> [name sid | kind << 32] */
	struct hd_tab tcs;	/* [type, class addr, shape, memsize] ->
				 * TV_* */
	struct hd_tab site;	/* [file, line, method, gen, type, class
				 * addr, shape, memsize] -> [n, bytes] */
	struct hd_tab coarse;	/* [file, line, method, gen, type, class
				 * addr] -> [sizes kept] */
	struct ana_hd_stats st;	/* first_bad relative to the chunk */
	int first_bad_why;
	uint32_t last_type_sid;	/* one-entry cache (a copy: streamed
				 * lines do not outlive the call) */
	size_t last_type_len;
	char last_type[32];
	bool oom;
};

static void
acc_free(struct hd_acc *a)
{
	if (!a)
		return;
	strs_release(&a->str);
	tab_release(&a->cls);
	tab_release(&a->tcs);
	tab_release(&a->site);
	tab_release(&a->coarse);
	free(a);
}

static struct hd_acc *
acc_new(int64_t after)
{
	struct hd_acc *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->after = after;
	a->shapes = after != ANA_HD_NO_SITES;
	a->st.max_gen = -1;
	a->last_type_sid = HD_NONE;
	if (strs_init(&a->str) < 0 || tab_init(&a->cls, 1, 1) < 0 ||
	    tab_init(&a->tcs, 4, TV_NV) < 0 || tab_init(&a->site, 8, 2) < 0 ||
	    tab_init(&a->coarse, 6, 1) < 0) {
		acc_free(a);
		return NULL;
	}
	return a;
}

static void
acc_bad(struct hd_acc *a, int why)
{
	a->st.bad++;
	if (!a->st.first_bad) {
		a->st.first_bad = a->st.lines;
		a->first_bad_why = why;
	}
}

static void
acc_class(struct hd_acc *a, const struct hd_rec *r)
{
	uint64_t kind = CN_ANON, *v;
	uint32_t sid = 0;

	if (r->have & HD_NAME) {
		sid = strs_intern(&a->str, r->name, r->name_len);
		kind = CN_NAME;
	} else if (r->have & HD_REAL) {
		sid = strs_intern(&a->str, r->real, r->real_len);
		kind = CN_REAL;
	}
	v = tab_add(&a->cls, &r->addr);
	if (sid == HD_NONE || !v) {
		a->oom = true;
		return;
	}
	v[0] = sid | kind << 32;
}

static void
acc_site(struct hd_acc *a, const struct hd_rec *r, uint64_t *k4,
	 uint64_t ms)
{
	uint64_t k[8], *v, *cv;
	uint32_t f = 0, m = 0;

	if (r->have & HD_FILE)
		f = strs_intern(&a->str, r->file, r->file_len);
	if (r->have & HD_METHOD)
		m = strs_intern(&a->str, r->method, r->method_len);
	if (f == HD_NONE || m == HD_NONE) {
		a->oom = true;
		return;
	}
	k[0] = f;
	k[1] = (r->have & HD_LINE) ? (uint64_t)r->line : (uint64_t)-1;
	k[2] = m;
	k[3] = (uint64_t)r->gen;
	k[4] = k4[0];
	k[5] = k4[1];
	k[6] = k4[2];
	k[7] = k4[3];
	v = tab_find(&a->site, k);
	if (!v) {
		/* a new size for this site: keep at most so many */
		cv = tab_add(&a->coarse, k);
		if (!cv) {
			a->oom = true;
			return;
		}
		if (cv[0] >= HD_SHAPES_PER_SITE) {
			k[6] = k[7] = HD_SHAPE_ANY;
			v = tab_find(&a->site, k);
		} else {
			cv[0]++;
		}
		if (!v && !(v = tab_add(&a->site, k))) {
			a->oom = true;
			return;
		}
	}
	v[0]++;
	v[1] += ms;
}

static void
acc_line(struct hd_acc *a, const char *p, const char *e)
{
	struct hd_rec r;
	uint64_t k[4], *v, ms;
	uint32_t tsid;
	int bad;

	a->st.lines++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (skip_ws(p, e) == e)
		return;		/* blank */
	bad = hd_parse(p, e, &r, false);
	if (!bad && !(r.have & HD_TYPE))
		bad = BAD_NO_TYPE;
	if (bad) {
		acc_bad(a, bad);
		return;
	}
	if (span_is(r.type, r.type_len, "ROOT")) {
		a->st.roots++;
		return;
	}
	a->st.objects++;
	ms = (r.have & HD_MEMSIZE) ? r.memsize : 0;
	a->st.memsize += ms;
	if (r.have & HD_GEN) {
		a->st.traced++;
		if (r.gen > a->st.max_gen)
			a->st.max_gen = r.gen;
		if (r.gen == a->after)
			a->st.same_gen++;
	}
	if ((r.have & HD_ADDR) && (span_is(r.type, r.type_len, "CLASS") ||
				   span_is(r.type, r.type_len, "MODULE")))
		acc_class(a, &r);

	if (a->last_type_sid != HD_NONE && r.type_len == a->last_type_len &&
	    !memcmp(r.type, a->last_type, r.type_len)) {
		tsid = a->last_type_sid;
	} else {
		tsid = strs_intern(&a->str, r.type, r.type_len);
		if (tsid == HD_NONE) {
			a->oom = true;
			return;
		}
		a->last_type_sid = HD_NONE;
		if (r.type_len <= sizeof(a->last_type)) {
			memcpy(a->last_type, r.type, r.type_len);
			a->last_type_len = r.type_len;
			a->last_type_sid = tsid;
		}
	}
	k[0] = tsid;
	k[1] = (r.have & HD_CLASS) ? r.cls : 0;
	k[2] = a->shapes && (r.have & HD_SHAPE) ? r.shape : 0;
	k[3] = a->shapes ? ms : 0;
	v = tab_add(&a->tcs, k);
	if (!v) {
		a->oom = true;
		return;
	}
	v[TV_N]++;
	v[TV_BYTES] += ms;
	if (!(r.have & HD_GEN)) {
		v[TV_UN]++;
		v[TV_UBYTES] += ms;
	} else if (r.gen <= a->after) {
		v[TV_OLD]++;
	} else {
		acc_site(a, &r, k, ms);
	}
}

/* Scan whole lines of [p, e). */
static void
acc_scan(struct hd_acc *a, const char *p, const char *e)
{
	while (p < e && !a->oom) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		const char *le = nl ? nl : e;

		acc_line(a, p, le);
		p = le + 1;
	}
}

static void
acc_scan_job(void *acc, const char *p, const char *e)
{
	acc_scan(acc, p, e);
}

/* ---- splitting and threads -------------------------------------------- */

static unsigned
pick_threads(unsigned want, size_t len)
{
	long ncpu;
	size_t most = len / HD_MIN_CHUNK;

	if (!want) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		want = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (want > HD_MAX_THREADS)
		want = HD_MAX_THREADS;
	if (most < want)
		want = most ? (unsigned)most : 1;
	return want;
}

/* cut[0..n]: chunk i is [cut[i], cut[i+1]), each ending after a '\n'. */
static void
split_lines(const char *buf, size_t len, unsigned n, size_t *cut)
{
	cut[0] = 0;
	for (unsigned i = 1; i < n; i++) {
		size_t at = len / n * i;
		const char *nl;

		if (at < cut[i - 1])
			at = cut[i - 1];
		nl = at < len ? memchr(buf + at, '\n', len - at) : NULL;
		cut[i] = nl ? (size_t)(nl - buf) + 1 : len;
	}
	cut[n] = len;
}

/*
 * Drop the mapped pages of [from, to) from our page tables (the page cache
 * keeps them).  from is taken HD_REMAP_MARGIN lower (but not below base,
 * the start of the mapping): the kernel's fault-around maps whole 64 KiB
 * blocks, so touching the first page of a window maps again pages of the
 * window before, which were dropped already.
 */
#define HD_REMAP_MARGIN	((uintptr_t)128 << 10)
static void
drop_pages(const char *base, const char *from, const char *to)
{
	static size_t pg;
	uintptr_t a, b;

	if (!pg)
		pg = (size_t)sysconf(_SC_PAGESIZE);
	a = (uintptr_t)from & ~(uintptr_t)(pg - 1);
	a = a - (uintptr_t)base > HD_REMAP_MARGIN ? a - HD_REMAP_MARGIN
						   : (uintptr_t)base;
	b = (uintptr_t)to & ~(uintptr_t)(pg - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

struct scan_job {
	void (*fn)(void *acc, const char *p, const char *e);
	void *acc;
	const char *p, *e;
	const char *base;	/* the mapping: page aligned */
	bool drop;		/* the input is our own read-only mapping */
};

/* Scan a chunk in windows, dropping each window's pages behind it. */
static void *
scan_job_run(void *arg)
{
	struct scan_job *j = arg;
	const char *p = j->p;

	while (p < j->e) {
		const char *w = j->e, *nl;

		if ((size_t)(j->e - p) > HD_WINDOW) {
			nl = memchr(p + HD_WINDOW, '\n',
				    (size_t)(j->e - p - HD_WINDOW));
			w = nl ? nl + 1 : j->e;
		}
		j->fn(j->acc, p, w);
		if (j->drop)
			drop_pages(j->base, p, w);
		p = w;
	}
	return NULL;
}

/* Run jobs[0..n) on n threads (the caller runs the first). */
static void
run_jobs(struct scan_job *jobs, unsigned n)
{
	pthread_t tid[HD_MAX_THREADS];
	bool started[HD_MAX_THREADS] = { false };

	for (unsigned i = 1; i < n; i++)
		started[i] = pthread_create(&tid[i], NULL, scan_job_run,
					    &jobs[i]) == 0;
	scan_job_run(&jobs[0]);
	for (unsigned i = 1; i < n; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			scan_job_run(&jobs[i]);	/* no thread: run here */
	}
}

/* ---- digests ---------------------------------------------------------- */

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
};

struct ana_hd_digest *
ana_hd_digest_new(int64_t sites_after_gen)
{
	struct ana_hd_digest *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->after = sites_after_gen;
	d->st.max_gen = -1;
	d->st.first_bad_why = "";
	if (strs_init(&d->str) < 0 || tab_init(&d->tcs, 4, TV_NV) < 0 ||
	    tab_init(&d->site, 8, 2) < 0) {
		ana_hd_digest_free(d);
		return NULL;
	}
	d->sid_anon = strs_intern(&d->str, "(anonymous)", 11);
	d->sid_unknown = strs_intern(&d->str, "(unknown)", 9);
	if (d->sid_anon == HD_NONE || d->sid_unknown == HD_NONE) {
		ana_hd_digest_free(d);
		return NULL;
	}
	return d;
}

void
ana_hd_digest_free(struct ana_hd_digest *d)
{
	if (!d)
		return;
	strs_release(&d->str);
	tab_release(&d->tcs);
	tab_release(&d->site);
	acc_free(d->feed);
	free(d->carry);
	free(d);
}

const struct ana_hd_stats *
ana_hd_digest_stats(const struct ana_hd_digest *d)
{
	return &d->st;
}

/* sid of acc string `sid` in the digest (memoised in tr[]). */
static uint32_t
tr_sid(struct hd_strs *to, const struct hd_strs *from, uint32_t *tr,
       uint32_t sid)
{
	size_t len;
	const char *s;

	if (tr[sid] == HD_NONE) {
		s = strs_at(from, sid, &len);
		tr[sid] = strs_intern(to, s, len);
	}
	return tr[sid];
}

/*
 * Merge the threads' tables into the digest, in chunk order, resolving
 * class addresses to names with the class lines of all chunks.
 */
static int
digest_merge(struct ana_hd_digest *d, struct hd_acc **acc, unsigned n,
	     struct lp_err *err)
{
	struct hd_tab cmap;
	uint32_t *tr = NULL;
	uint64_t base = 0;
	int rc = 0;

	if (tab_init(&cmap, 1, 1) < 0)
		return lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	for (unsigned i = 0; i < n && !rc; i++) {
		struct hd_acc *a = acc[i];

		if (a->oom) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			break;
		}
		for (size_t j = 0; j < a->cls.n; j++) {
			uint64_t *k = TAB_KEY(&a->cls, j), *v, val;
			uint32_t sid = d->sid_anon;
			size_t len;
			const char *s;

			val = TAB_VAL(&a->cls, j)[0];
			if (val >> 32 != CN_ANON) {
				s = strs_at(&a->str, (uint32_t)val, &len);
				sid = strs_intern(&d->str, s, len);
			}
			v = tab_add(&cmap, k);
			if (!v || sid == HD_NONE) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				break;
			}
			v[0] = (uint64_t)sid + 1;
		}
	}
	for (unsigned i = 0; i < n && !rc; i++) {
		struct hd_acc *a = acc[i];

		free(tr);
		tr = malloc(a->str.n * sizeof(*tr));
		if (!tr) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			break;
		}
		memset(tr, 0xff, a->str.n * sizeof(*tr));
		tr[0] = 0;
		for (size_t j = 0; j < a->tcs.n && !rc; j++) {
			uint64_t *k = TAB_KEY(&a->tcs, j);
			uint64_t *av = TAB_VAL(&a->tcs, j), nk[4], *v, *c;

			nk[0] = tr_sid(&d->str, &a->str, tr, (uint32_t)k[0]);
			c = k[1] ? tab_find(&cmap, &k[1]) : NULL;
			nk[1] = !k[1] ? 0 : c ? c[0] - 1 : d->sid_unknown;
			nk[2] = k[2];
			nk[3] = k[3];
			v = nk[0] == HD_NONE ? NULL : tab_add(&d->tcs, nk);
			if (!v) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				break;
			}
			for (int t = 0; t < TV_NV; t++)
				v[t] += av[t];
		}
		for (size_t j = 0; j < a->site.n && !rc; j++) {
			uint64_t *k = TAB_KEY(&a->site, j);
			uint64_t *av = TAB_VAL(&a->site, j), nk[8], *v, *c;

			nk[0] = tr_sid(&d->str, &a->str, tr, (uint32_t)k[0]);
			nk[1] = k[1];
			nk[2] = tr_sid(&d->str, &a->str, tr, (uint32_t)k[2]);
			nk[3] = k[3];
			nk[4] = tr_sid(&d->str, &a->str, tr, (uint32_t)k[4]);
			c = k[5] ? tab_find(&cmap, &k[5]) : NULL;
			nk[5] = !k[5] ? 0 : c ? c[0] - 1 : d->sid_unknown;
			nk[6] = k[6];
			nk[7] = k[7];
			v = (nk[0] == HD_NONE || nk[2] == HD_NONE ||
			     nk[4] == HD_NONE) ? NULL : tab_add(&d->site, nk);
			if (!v) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				break;
			}
			v[0] += av[0];
			v[1] += av[1];
		}
		if (a->st.first_bad && !d->st.first_bad) {
			d->st.first_bad = base + a->st.first_bad;
			d->st.first_bad_why = bad_text[a->first_bad_why];
		}
		base += a->st.lines;
		d->st.lines += a->st.lines;
		d->st.objects += a->st.objects;
		d->st.roots += a->st.roots;
		d->st.traced += a->st.traced;
		d->st.memsize += a->st.memsize;
		d->st.same_gen += a->st.same_gen;
		d->st.bad += a->st.bad;
		if (a->st.max_gen > d->st.max_gen)
			d->st.max_gen = a->st.max_gen;
	}
	free(tr);
	tab_release(&cmap);
	lp_debug("heap dump: %zu site entries, %zu type/class/size entries, "
		 "%zu strings (%zu bytes)", d->site.n, d->tcs.n, d->str.n,
		 d->str.len);
	return rc;
}

static int
digest_scan(struct ana_hd_digest *d, const char *buf, size_t len,
	    unsigned nthreads, bool drop, struct lp_err *err)
{
	struct hd_acc *acc[HD_MAX_THREADS] = { NULL };
	struct scan_job jobs[HD_MAX_THREADS];
	size_t cut[HD_MAX_THREADS + 1];
	unsigned n;
	int rc = 0;

	if (d->ended || d->feed)
		return lp_err_set(err, LP_EINVAL,
				  "heap dump: digest already fed");
	n = pick_threads(nthreads, len);
	split_lines(buf, len, n, cut);
	for (unsigned i = 0; i < n; i++) {
		acc[i] = acc_new(d->after);
		if (!acc[i]) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			goto out;
		}
		jobs[i].fn = acc_scan_job;
		jobs[i].acc = acc[i];
		jobs[i].p = buf + cut[i];
		jobs[i].e = buf + cut[i + 1];
		jobs[i].base = buf;
		jobs[i].drop = drop;
	}
	run_jobs(jobs, n);
	d->st.bytes += len;
	rc = digest_merge(d, acc, n, err);
	d->ended = true;
out:
	for (unsigned i = 0; i < n; i++)
		acc_free(acc[i]);
	return rc;
}

int
ana_hd_digest_buf(struct ana_hd_digest *d, const char *buf, size_t len,
		  unsigned nthreads, struct lp_err *err)
{
	return digest_scan(d, buf, len, nthreads, false, err);
}

int
ana_hd_digest_feed(struct ana_hd_digest *d, const char *buf, size_t len,
		   struct lp_err *err)
{
	const char *p = buf, *e = buf + len, *nl;
	struct hd_acc *a;

	if (d->ended)
		return lp_err_set(err, LP_EINVAL,
				  "heap dump: digest fed after its end");
	if (!d->feed && !(d->feed = acc_new(d->after)))
		return lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	a = d->feed;
	d->st.bytes += len;
	if (d->carry_len) {
		nl = memchr(p, '\n', len);
		if (!nl) {
			if (!grow((void **)&d->carry, &d->carry_cap,
				  d->carry_len + len, 1))
				return lp_err_set(err, LP_ENOMEM,
						  "heap dump: out of memory "
						  "(line of %zu bytes)",
						  d->carry_len + len);
			memcpy(d->carry + d->carry_len, p, len);
			d->carry_len += len;
			return 0;
		}
		if (!grow((void **)&d->carry, &d->carry_cap,
			  d->carry_len + (size_t)(nl - p), 1))
			return lp_err_set(err, LP_ENOMEM,
					  "heap dump: out of memory");
		memcpy(d->carry + d->carry_len, p, (size_t)(nl - p));
		acc_line(a, d->carry, d->carry + d->carry_len + (nl - p));
		d->carry_len = 0;
		p = nl + 1;
	}
	/* whole lines now; keep the tail for the next piece */
	nl = p < e ? memrchr(p, '\n', (size_t)(e - p)) : NULL;
	if (nl) {
		acc_scan(a, p, nl + 1);
		p = nl + 1;
	}
	if (p < e) {
		if (!grow((void **)&d->carry, &d->carry_cap,
			  (size_t)(e - p), 1))
			return lp_err_set(err, LP_ENOMEM,
					  "heap dump: out of memory");
		memcpy(d->carry, p, (size_t)(e - p));
		d->carry_len = (size_t)(e - p);
	}
	if (a->oom)
		return lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	return 0;
}

int
ana_hd_digest_end(struct ana_hd_digest *d, struct lp_err *err)
{
	int rc;

	if (d->ended)
		return 0;
	if (!d->feed && !(d->feed = acc_new(d->after)))
		return lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	if (d->carry_len)
		acc_line(d->feed, d->carry, d->carry + d->carry_len);
	d->carry_len = 0;
	rc = digest_merge(d, &d->feed, 1, err);
	acc_free(d->feed);
	d->feed = NULL;
	d->ended = true;
	return rc;
}

/* A dump file, mapped when it can be. */
struct hd_input {
	int fd;
	const char *p;
	size_t len;
	bool mapped;
};

/* Open path; map it when it is a regular file.  err names the path. */
static int
input_open(const char *path, struct hd_input *in, struct lp_err *err)
{
	struct stat st;

	memset(in, 0, sizeof(*in));
	in->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in->fd < 0)
		return lp_err_sys(err, LP_EIO, "open '%s'", path);
	if (fstat(in->fd, &st) < 0) {
		lp_err_sys(err, LP_EIO, "stat '%s'", path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		lp_err_set(err, LP_EIO, "read '%s': is a directory", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return 0;	/* streamed (or empty) */
	if ((uint64_t)st.st_size > SIZE_MAX) {
		lp_err_set(err, LP_EIO, "read '%s': file too large", path);
		goto fail;
	}
	in->len = (size_t)st.st_size;
	in->p = mmap(NULL, in->len, PROT_READ, MAP_PRIVATE, in->fd, 0);
	if (in->p == MAP_FAILED) {
		in->p = NULL;
		in->len = 0;
		return 0;	/* stream it instead */
	}
	in->mapped = true;
	madvise((void *)in->p, in->len, MADV_SEQUENTIAL);
	return 0;
fail:
	close(in->fd);
	in->fd = -1;
	return -LP_EIO;
}

static void
input_close(struct hd_input *in)
{
	if (in->mapped)
		munmap((void *)in->p, in->len);
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	in->mapped = false;
}

int
ana_hd_digest_file(struct ana_hd_digest *d, const char *path,
		   unsigned nthreads, struct lp_err *err)
{
	struct hd_input in;
	char *block = NULL;
	int rc;

	rc = input_open(path, &in, err);
	if (rc < 0)
		return rc;
	if (in.mapped) {
		rc = digest_scan(d, in.p, in.len, nthreads, true, err);
		goto out;
	}
	block = malloc(HD_READ_BLOCK);
	if (!block) {
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
		goto out;
	}
	for (;;) {
		ssize_t got = read(in.fd, block, HD_READ_BLOCK);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = lp_err_sys(err, LP_EIO, "read '%s'", path);
			goto out;
		}
		if (got == 0)
			break;
		rc = ana_hd_digest_feed(d, block, (size_t)got, err);
		if (rc < 0)
			goto out;
	}
	rc = ana_hd_digest_end(d, err);
out:
	free(block);
	input_close(&in);
	return rc;
}

/* ---- the diff --------------------------------------------------------- */

const char *
ana_hd_by_name(enum ana_hd_by by)
{
	switch (by) {
	case ANA_HD_BY_CLASS:
		return "class";
	case ANA_HD_BY_TYPE:
		return "type";
	default:
		return "site";
	}
}

int
ana_hd_by_parse(const char *s, enum ana_hd_by *out)
{
	if (!strcmp(s, "site"))
		*out = ANA_HD_BY_SITE;
	else if (!strcmp(s, "class"))
		*out = ANA_HD_BY_CLASS;
	else if (!strcmp(s, "type"))
		*out = ANA_HD_BY_TYPE;
	else
		return -LP_EINVAL;
	return 0;
}

/* Strings of the diff, and each digest's sids translated into them. */
struct dctx {
	struct hd_strs str;
	uint32_t *tr[3];
	struct ana_hd_digest *const *d;
	size_t n;
	bool oom;
};

static uint64_t
dsid(struct dctx *c, size_t i, uint64_t sid)
{
	uint32_t s = tr_sid(&c->str, &c->d[i]->str, c->tr[i], (uint32_t)sid);

	if (s == HD_NONE)
		c->oom = true;
	return s;
}

static inline uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* a * b / c without overflow (c > 0) */
static inline uint64_t
muldiv(uint64_t a, uint64_t b, uint64_t c)
{
	return (uint64_t)((unsigned __int128)a * b / c);
}

/* Site-level values (table S) */
enum { SV_N, SV_BYTES, SV_SHAPE, SV_NV };

/* J values: fine keys of NEW and LATER matched */
enum { JV_CN, JV_BN, JV_CL, JV_BL, JV_M, JV_MB, JV_REC, JV_RECB, JV_NV };

/* C values: coarse keys (no size) */
enum { CV_RN, CV_RL, CV_RBL, CV_LEFT, CV_NV };

/* B values: buckets (type, class, size, memsize) */
enum { BV_UN, BV_ON, BV_UL, BV_UBL, BV_OL, BV_M, BV_REC, BV_NV };

static bool
in_window(uint64_t gen, int64_t after, int64_t upto)
{
	return (int64_t)gen > after && (int64_t)gen <= upto;
}

/* Add a site (file, line, method, type, class) to S. */
static int
s_add(struct hd_tab *s, const uint64_t *jk, uint64_t n, uint64_t bytes,
      uint64_t shape)
{
	uint64_t k[5] = { jk[0], jk[1], jk[2], jk[4], jk[5] }, *v;

	if (!n)
		return 0;
	v = tab_add(s, k);
	if (!v)
		return -1;
	v[SV_N] += n;
	v[SV_BYTES] += bytes;
	v[SV_SHAPE] += shape;
	return 0;
}

/* Retained objects per site: J (fine keys), stages 1-3 (see the top). */
static int
sites_three(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *S)
{
	struct ana_hd_digest *const *d = c->d;
	struct hd_tab J, C, B;
	int rc = -1;

	if (tab_init(&J, 8, JV_NV) < 0)
		return -1;
	if (tab_init(&C, 6, CV_NV) < 0) {
		tab_release(&J);
		return -1;
	}
	if (tab_init(&B, 4, BV_NV) < 0) {
		tab_release(&J);
		tab_release(&C);
		return -1;
	}
	for (size_t w = 1; w <= 2; w++) {
		const struct hd_tab *t = &d[w]->site;

		for (size_t i = 0; i < t->n; i++) {
			const uint64_t *k = TAB_KEY(t, i), *sv = TAB_VAL(t, i);
			uint64_t nk[8], *v;

			if (!in_window(k[3], out->after_gen, out->upto_gen))
				continue;
			nk[0] = dsid(c, w, k[0]);
			nk[1] = k[1];
			nk[2] = dsid(c, w, k[2]);
			nk[3] = k[3];
			nk[4] = dsid(c, w, k[4]);
			nk[5] = dsid(c, w, k[5]);
			nk[6] = k[6];
			nk[7] = k[7];
			if (c->oom || !(v = tab_add(&J, nk)))
				goto out;
			v[w == 1 ? JV_CN : JV_CL] += sv[0];
			v[w == 1 ? JV_BN : JV_BL] += sv[1];
		}
	}
	/* stage 1: same size; stage 2 residuals per coarse key */
	for (size_t i = 0; i < J.n; i++) {
		uint64_t *k = TAB_KEY(&J, i), *v = TAB_VAL(&J, i), *cv;

		v[JV_M] = min_u64(v[JV_CN], v[JV_CL]);
		v[JV_MB] = v[JV_CL] ? muldiv(v[JV_BL], v[JV_M], v[JV_CL]) : 0;
		out->candidates += v[JV_CN];
		if (!(cv = tab_add(&C, k)))
			goto out;
		cv[CV_RN] += v[JV_CN] - v[JV_M];
		cv[CV_RL] += v[JV_CL] - v[JV_M];
		cv[CV_RBL] += v[JV_BL] - v[JV_MB];
	}
	for (size_t i = 0; i < C.n; i++) {
		uint64_t *v = TAB_VAL(&C, i);

		v[CV_LEFT] = min_u64(v[CV_RN], v[CV_RL]);
	}
	for (size_t i = 0; i < J.n; i++) {
		uint64_t *k = TAB_KEY(&J, i), *v = TAB_VAL(&J, i);
		uint64_t *cv = tab_find(&C, k), take;

		take = min_u64(v[JV_CN] - v[JV_M], cv[CV_LEFT]);
		if (!take)
			continue;
		cv[CV_LEFT] -= take;
		v[JV_M] += take;
		v[JV_MB] += muldiv(cv[CV_RBL], take, cv[CV_RL]);
	}
	/* stage 3: buckets of objects that lost their allocation info */
	for (size_t w = 1; w <= 2; w++) {
		const struct hd_tab *t = &d[w]->tcs;

		for (size_t i = 0; i < t->n; i++) {
			const uint64_t *k = TAB_KEY(t, i), *tv = TAB_VAL(t, i);
			uint64_t nk[4], *v;

			if (!tv[TV_UN] && !tv[TV_OLD])
				continue;
			nk[0] = dsid(c, w, k[0]);
			nk[1] = dsid(c, w, k[1]);
			nk[2] = k[2];
			nk[3] = k[3];
			if (c->oom || !(v = tab_add(&B, nk)))
				goto out;
			if (w == 1) {
				v[BV_UN] += tv[TV_UN];
				v[BV_ON] += tv[TV_OLD];
			} else {
				v[BV_UL] += tv[TV_UN];
				v[BV_UBL] += tv[TV_UBYTES];
				v[BV_OL] += tv[TV_OLD];
			}
		}
	}
	for (size_t i = 0; i < J.n; i++) {
		uint64_t *k = TAB_KEY(&J, i), *v = TAB_VAL(&J, i);
		uint64_t bk[4] = { k[4], k[5], k[6], k[7] }, *bv;

		if (v[JV_CN] == v[JV_M] || k[6] == HD_SHAPE_ANY)
			continue;
		bv = tab_find(&B, bk);
		if (bv)
			bv[BV_M] += v[JV_CN] - v[JV_M];
	}
	for (size_t i = 0; i < B.n; i++) {
		uint64_t *v = TAB_VAL(&B, i), lost, gone;

		lost = v[BV_UL] > v[BV_UN] ? v[BV_UL] - v[BV_UN] : 0;
		gone = v[BV_ON] > v[BV_OL] ? v[BV_ON] - v[BV_OL] : 0;
		lost = lost > gone ? lost - gone : 0;
		v[BV_REC] = min_u64(lost, v[BV_M]);
	}
	for (size_t i = 0; i < J.n; i++) {
		uint64_t *k = TAB_KEY(&J, i), *v = TAB_VAL(&J, i);
		uint64_t bk[4] = { k[4], k[5], k[6], k[7] }, *bv, u, take;

		if (v[JV_CN] == v[JV_M] || k[6] == HD_SHAPE_ANY)
			continue;
		bv = tab_find(&B, bk);
		if (!bv || !bv[BV_M])
			continue;
		/* proportional share; the last claimant gets the rest */
		u = v[JV_CN] - v[JV_M];
		take = muldiv(bv[BV_REC], u, bv[BV_M]);
		bv[BV_REC] -= take;
		bv[BV_M] -= u;
		v[JV_REC] = take;
		v[JV_RECB] = bv[BV_UL] ? muldiv(bv[BV_UBL], take, bv[BV_UL])
				       : 0;
	}
	for (size_t i = 0; i < J.n; i++) {
		uint64_t *k = TAB_KEY(&J, i), *v = TAB_VAL(&J, i);

		if (s_add(S, k, v[JV_M] + v[JV_REC], v[JV_MB] + v[JV_RECB],
			  v[JV_REC]) < 0)
			goto out;
	}
	rc = 0;
out:
	tab_release(&J);
	tab_release(&C);
	tab_release(&B);
	return rc;
}

static int
sites_two(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *S)
{
	const struct hd_tab *t = &c->d[1]->site;

	for (size_t i = 0; i < t->n; i++) {
		const uint64_t *k = TAB_KEY(t, i), *sv = TAB_VAL(t, i);
		uint64_t nk[8];

		if ((int64_t)k[3] <= out->after_gen)
			continue;
		nk[0] = dsid(c, 1, k[0]);
		nk[1] = k[1];
		nk[2] = dsid(c, 1, k[2]);
		nk[3] = k[3];
		nk[4] = dsid(c, 1, k[4]);
		nk[5] = dsid(c, 1, k[5]);
		if (c->oom || s_add(S, nk, sv[0], sv[1], 0) < 0)
			return -1;
	}
	return 0;
}

/* Group values (table G) */
enum { GV_N, GV_BYTES, GV_SHAPE, GV_SITES, GV_C0, GV_C1, GV_C2, GV_B0,
       GV_B1, GV_B2, GV_NV };

static char *
dstr(struct dctx *c, uint64_t sid)
{
	size_t len;
	const char *s = strs_at(&c->str, (uint32_t)sid, &len);
	char *u = json_unescape(s, len);

	if (!u)
		c->oom = true;
	return u;
}

static int
cmp_rows(const void *pa, const void *pb)
{
	const struct ana_hd_row *a = pa, *b = pb;
	int r;

	if (a->bytes != b->bytes)
		return a->bytes < b->bytes ? 1 : -1;
	if (a->count != b->count)
		return a->count < b->count ? 1 : -1;
#define CMPS(x) do { \
		if (a->x != b->x) { \
			if (!a->x || !b->x) \
				return a->x ? 1 : -1; \
			if ((r = strcmp(a->x, b->x))) \
				return r; \
		} \
	} while (0)
	CMPS(file);
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	CMPS(method);
	CMPS(type);
	CMPS(cls);
#undef CMPS
	return 0;
}

void
ana_hd_diff_release(struct ana_hd_diff *diff)
{
	if (!diff)
		return;
	for (size_t i = 0; i < diff->nrows; i++) {
		free(diff->rows[i].file);
		free(diff->rows[i].method);
		free(diff->rows[i].type);
		free(diff->rows[i].cls);
	}
	free(diff->rows);
	memset(diff, 0, sizeof(*diff));
}

/* Turn the group table into sorted rows. */
static int
make_rows(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *G)
{
	size_t n = 0;

	out->rows = calloc(G->n ? G->n : 1, sizeof(*out->rows));
	if (!out->rows)
		return -1;
	for (size_t i = 0; i < G->n; i++) {
		uint64_t *k = TAB_KEY(G, i), *v = TAB_VAL(G, i);
		struct ana_hd_row *r = &out->rows[n];

		if (out->method == ANA_HD_SITES && !v[GV_N])
			continue;
		n++;
		out->nrows = n;
		r->line = -1;
		if (k[0] != HD_NONE)
			r->file = dstr(c, k[0]);
		if (k[1] != (uint64_t)-2)
			r->line = (int64_t)k[1];
		if (k[2] != HD_NONE)
			r->method = dstr(c, k[2]);
		if (k[3] != HD_NONE)
			r->type = dstr(c, k[3]);
		if (k[4] != HD_NONE)
			r->cls = dstr(c, k[4]);
		if (c->oom)
			return -1;
		r->count = v[GV_N];
		r->bytes = v[GV_BYTES];
		r->by_shape = v[GV_SHAPE];
		r->sites = v[GV_SITES];
		for (int j = 0; j < 3; j++) {
			r->n_count[j] = v[GV_C0 + j];
			r->n_bytes[j] = v[GV_B0 + j];
		}
		out->total_count += r->count;
		out->total_bytes += r->bytes;
		out->by_shape += r->by_shape;
	}
	qsort(out->rows, out->nrows, sizeof(*out->rows), cmp_rows);
	return 0;
}

/*
 * Group key [file, line, method, type, class] (diff sids); parts left
 * out by the grouping are HD_NONE (line: -2).
 */
static void
group_key(enum ana_hd_by by, bool sites, uint64_t file, uint64_t line,
	  uint64_t method, uint64_t type, uint64_t cls, uint64_t *g)
{
	g[0] = g[2] = g[3] = g[4] = HD_NONE;
	g[1] = (uint64_t)-2;
	switch (by) {
	case ANA_HD_BY_SITE:
		if (sites) {
			g[0] = file;
			g[1] = line;
			g[2] = method;
		}
		g[3] = type;
		g[4] = cls;
		break;
	case ANA_HD_BY_CLASS:
		g[4] = cls;
		break;
	case ANA_HD_BY_TYPE:
		g[3] = type;
		break;
	}
}

static int
diff_sites(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *G)
{
	struct hd_tab S;
	int rc;

	if (tab_init(&S, 5, SV_NV) < 0)
		return -1;
	rc = c->n == 3 ? sites_three(c, out, &S) : sites_two(c, out, &S);
	for (size_t i = 0; !rc && i < S.n; i++) {
		uint64_t *k = TAB_KEY(&S, i), *v = TAB_VAL(&S, i), g[5], *gv;

		group_key(out->by, true, k[0], k[1], k[2], k[3], k[4], g);
		if (!(gv = tab_add(G, g))) {
			rc = -1;
			break;
		}
		gv[GV_N] += v[SV_N];
		gv[GV_BYTES] += v[SV_BYTES];
		gv[GV_SHAPE] += v[SV_SHAPE];
		gv[GV_SITES]++;
	}
	tab_release(&S);
	return rc;
}

static int
diff_classes(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *G)
{
	for (size_t w = 0; w < c->n; w++) {
		const struct hd_tab *t = &c->d[w]->tcs;

		for (size_t i = 0; i < t->n; i++) {
			const uint64_t *k = TAB_KEY(t, i), *tv = TAB_VAL(t, i);
			uint64_t g[5], *gv, ty = dsid(c, w, k[0]),
				 cl = dsid(c, w, k[1]);

			group_key(out->by, false, 0, 0, 0, ty, cl, g);
			if (c->oom || !(gv = tab_add(G, g)))
				return -1;
			gv[GV_C0 + w] += tv[TV_N];
			gv[GV_B0 + w] += tv[TV_BYTES];
		}
	}
	for (size_t i = 0; i < G->n; i++) {
		uint64_t *v = TAB_VAL(G, i);
		int64_t dc, db;

		if (c->n == 1) {
			v[GV_N] = v[GV_C0];
			v[GV_BYTES] = v[GV_B0];
			continue;
		}
		dc = (int64_t)(v[GV_C1] - v[GV_C0]);
		db = (int64_t)(v[GV_B1] - v[GV_B0]);
		if (c->n == 3) {
			int64_t dc2 = (int64_t)(v[GV_C2] - v[GV_C0]);
			int64_t db2 = (int64_t)(v[GV_B2] - v[GV_B0]);

			dc = dc2 < dc ? dc2 : dc;
			db = db2 < db ? db2 : db;
		}
		v[GV_N] = dc > 0 ? (uint64_t)dc : 0;
		v[GV_BYTES] = db > 0 ? (uint64_t)db : 0;
	}
	(void)out;
	return 0;
}

int
ana_hd_diff_compute(struct ana_hd_digest *const *d, size_t n,
		    enum ana_hd_by by, struct ana_hd_diff *out,
		    struct lp_err *err)
{
	struct dctx c;
	struct hd_tab G;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (n < 1 || n > 3)
		return lp_err_set(err, LP_EINVAL,
				  "heap diff: %zu dumps given; 1 to 3 needed",
				  n);
	for (size_t i = 0; i < n; i++)
		if (!d[i]->ended)
			return lp_err_set(err, LP_EINVAL,
					  "heap diff: dump %zu not ended", i);
	out->by = by;
	out->ndumps = n;
	out->after_gen = d[0]->st.max_gen;
	out->upto_gen = n == 3 ? d[1]->st.max_gen : INT64_MAX;
	out->method = n >= 2 && d[1]->st.traced ? ANA_HD_SITES
						: ANA_HD_CLASSES;
	if (out->method == ANA_HD_SITES) {
		for (size_t i = 1; i < n; i++)
			if (d[i]->after > out->after_gen)
				return lp_err_set(err, LP_EINVAL,
					"heap diff: dump %zu was read for "
					"generations above %lld, not %lld", i,
					(long long)d[i]->after,
					(long long)out->after_gen);
		if (d[1]->after == out->after_gen)
			out->same_gen = d[1]->st.same_gen;
	}
	if (n >= 2) {
		const struct ana_hd_stats *a = &d[n - 2]->st;
		const struct ana_hd_stats *b = &d[n - 1]->st;
		uint64_t ua = a->objects - a->traced;
		uint64_t ub = b->objects - b->traced;

		/* only meaningful when the older one had tracing on */
		if (a->traced && ub > ua)
			out->lost_info = ub - ua;
	}
	if (strs_init(&c.str) < 0)
		return lp_err_set(err, LP_ENOMEM, "heap diff: out of memory");
	c.d = d;
	c.n = n;
	for (size_t i = 0; i < n; i++) {
		c.tr[i] = malloc(d[i]->str.n * sizeof(uint32_t));
		if (!c.tr[i])
			goto out_str;
		memset(c.tr[i], 0xff, d[i]->str.n * sizeof(uint32_t));
	}
	if (tab_init(&G, 5, GV_NV) < 0)
		goto out_str;
	if (out->method == ANA_HD_SITES)
		rc = diff_sites(&c, out, &G);
	else
		rc = diff_classes(&c, out, &G);
	if (!rc)
		rc = make_rows(&c, out, &G);
	tab_release(&G);
out_str:
	for (size_t i = 0; i < n; i++)
		free(c.tr[i]);
	strs_release(&c.str);
	if (rc) {
		ana_hd_diff_release(out);
		return lp_err_set(err, LP_ENOMEM, "heap diff: out of memory");
	}
	return 0;
}

/* ---- --why: a reference chain from a root ----------------------------- */

enum { WF_ROOT = 1, WF_TARGET = 2 };

struct why_acc {
	const char *buf;	/* the whole dump */
	const char *file;	/* site wanted (unescaped) */
	size_t file_len;
	int64_t line, after, upto;
	uint64_t *addr, *off, *es;	/* per node: address, line offset,
					 * first edge */
	uint8_t *flag;
	size_t n, cap;
	uint64_t *edge;		/* referenced addresses */
	size_t ne, ecap;
	struct hd_tab cls;	/* [addr] -> [offset of the name << 16 |
				 * kind] */
	uint64_t candidates, objects;
	bool oom;
};

/* Does the escaped file span name `want` (whole, or a /-suffix)? */
static bool
file_matches(const char *raw, size_t n, const char *want, size_t wl)
{
	char *u = NULL;
	const char *s = raw;
	bool ok;

	if (memchr(raw, '\\', n)) {
		u = json_unescape(raw, n);
		if (!u)
			return false;
		s = u;
		n = strlen(u);
	}
	ok = n == wl ? !memcmp(s, want, wl)
		     : n > wl && s[n - wl - 1] == '/' &&
		       !memcmp(s + n - wl, want, wl);
	free(u);
	return ok;
}

/* Room for one more node in every per-node array. */
static bool
why_grow(struct why_acc *w)
{
	size_t c = w->cap ? w->cap * 2 : 4096;
	void *p;

	if (w->n < w->cap)
		return true;
	if (!(p = realloc(w->addr, c * sizeof(*w->addr))))
		return false;
	w->addr = p;
	if (!(p = realloc(w->off, c * sizeof(*w->off))))
		return false;
	w->off = p;
	if (!(p = realloc(w->es, (c + 1) * sizeof(*w->es))))
		return false;
	w->es = p;
	if (!(p = realloc(w->flag, c)))
		return false;
	w->flag = p;
	w->cap = c;
	return true;
}

static void
why_line(struct why_acc *w, const char *p, const char *e)
{
	struct hd_rec r;
	uint8_t flag = 0;
	const char *q, *re;

	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (skip_ws(p, e) == e || hd_parse(p, e, &r, true) ||
	    !(r.have & HD_TYPE))
		return;
	if (span_is(r.type, r.type_len, "ROOT")) {
		flag = WF_ROOT;
		r.addr = 0;
	} else {
		w->objects++;
		if (!(r.have & HD_ADDR))
			return;	/* nobody can refer to it */
		if ((r.have & (HD_GEN | HD_FILE | HD_LINE)) ==
		    (HD_GEN | HD_FILE | HD_LINE) && r.line == w->line &&
		    r.gen > w->after && r.gen <= w->upto &&
		    file_matches(r.file, r.file_len, w->file, w->file_len)) {
			flag = WF_TARGET;
			w->candidates++;
		}
		if (span_is(r.type, r.type_len, "CLASS") ||
		    span_is(r.type, r.type_len, "MODULE")) {
			uint64_t *v = tab_add(&w->cls, &r.addr);

			if (!v) {
				w->oom = true;
				return;
			}
			if (r.have & HD_NAME)
				v[0] = (uint64_t)(r.name - w->buf) << 16 |
				       CN_NAME;
			else if (r.have & HD_REAL)
				v[0] = (uint64_t)(r.real - w->buf) << 16 |
				       CN_REAL;
			else
				v[0] = CN_ANON;
		}
	}
	if (!why_grow(w)) {
		w->oom = true;
		return;
	}
	w->addr[w->n] = r.addr;
	w->off[w->n] = (uint64_t)(p - w->buf);
	w->es[w->n] = w->ne;
	w->flag[w->n] = flag;
	w->n++;
	if (!(r.have & HD_REFS))
		return;
	for (q = r.refs, re = r.refs + r.refs_len; q < re;) {
		uint64_t a;
		const char *s = memchr(q, '"', (size_t)(re - q)), *t;

		if (!s)
			break;
		t = take_addr(s, re, &a);
		if (!t) {
			t = str_close(s + 1, re);
			q = t ? t + 1 : re;
			continue;
		}
		q = t;
		if (!grow((void **)&w->edge, &w->ecap, w->ne + 1,
			  sizeof(*w->edge))) {
			w->oom = true;
			return;
		}
		w->edge[w->ne++] = a;
	}
}

static void
why_scan(void *arg, const char *p, const char *e)
{
	struct why_acc *w = arg;

	while (p < e && !w->oom) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		const char *le = nl ? nl : e;

		why_line(w, p, le);
		p = le + 1;
	}
}

static void
why_acc_release(struct why_acc *w)
{
	free(w->addr);
	free(w->off);
	free(w->es);
	free(w->flag);
	free(w->edge);
	tab_release(&w->cls);
}

void
ana_hd_chain_release(struct ana_hd_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->links[i].type);
		free(c->links[i].root);
		free(c->links[i].cls);
		free(c->links[i].file);
		free(c->links[i].method);
	}
	free(c->links);
	memset(c, 0, sizeof(*c));
}

int
ana_hd_site_parse(const char *s, char **file, int64_t *line)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long long v;

	if (!colon || colon == s || !colon[1])
		return -LP_EINVAL;
	errno = 0;
	v = strtoll(colon + 1, &end, 10);
	if (errno || *end || v < 0)
		return -LP_EINVAL;
	*file = strndup(s, (size_t)(colon - s));
	if (!*file)
		return -LP_ENOMEM;
	*line = v;
	return 0;
}

/* Fill one link from the line of node i. */
static int
why_link(struct why_acc *acc, unsigned nacc, const char *buf, size_t len,
	 uint64_t off, struct ana_hd_link *l)
{
	const char *p = buf + off, *e = memchr(p, '\n', len - off);
	struct hd_rec r;

	if (!e)
		e = buf + len;
	memset(l, 0, sizeof(*l));
	l->line = l->gen = -1;
	if (hd_parse(p, e, &r, false))
		return -1;	/* it parsed during the scan */
	l->type = json_unescape(r.type, r.type_len);
	if (!l->type)
		return -1;
	if (span_is(r.type, r.type_len, "ROOT")) {
		l->root = (r.have & HD_ROOT) ?
			  json_unescape(r.root, r.root_len) : strdup("");
		return l->root ? 0 : -1;
	}
	l->address = r.addr;
	if (r.have & HD_CLASS) {
		for (unsigned i = 0; i < nacc && !l->cls; i++) {
			uint64_t *v = tab_find(&acc[i].cls, &r.cls);
			const char *cp, *ce;

			if (!v)
				continue;
			if ((v[0] & 0xffff) == CN_ANON) {
				l->cls = strdup("(anonymous)");
				break;
			}
			/* the name's span: re-read its string */
			cp = buf + (v[0] >> 16);
			ce = str_close(cp, buf + len);
			l->cls = json_unescape(cp, ce ? (size_t)(ce - cp) : 0);
		}
		if (!l->cls)
			l->cls = strdup("(unknown)");
		if (!l->cls)
			return -1;
	}
	if (r.have & HD_FILE) {
		l->file = json_unescape(r.file, r.file_len);
		if (!l->file)
			return -1;
	}
	if (r.have & HD_METHOD) {
		l->method = json_unescape(r.method, r.method_len);
		if (!l->method)
			return -1;
	}
	if (r.have & HD_LINE)
		l->line = r.line;
	if (r.have & HD_GEN)
		l->gen = r.gen;
	return 0;
}

/*
 * drop: buf is our own read-only mapping, whose pages may be dropped once
 * scanned (the few lines of the chain are read again from the page cache).
 */
static int
why_run(const char *buf, size_t len, const char *file, int64_t line,
	int64_t after_gen, int64_t upto_gen, unsigned nthreads, bool drop,
	struct ana_hd_chain *out, struct lp_err *err)
{
	struct why_acc acc[HD_MAX_THREADS];
	struct scan_job jobs[HD_MAX_THREADS];
	size_t cut[HD_MAX_THREADS + 1], n = 0, ne = 0, nslots, head, tail;
	uint32_t *slot = NULL, *parent = NULL, *queue = NULL, found = HD_NONE;
	struct why_acc *w;
	unsigned nt;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	memset(acc, 0, sizeof(acc));
	nt = pick_threads(nthreads, len);
	split_lines(buf, len, nt, cut);
	for (unsigned i = 0; i < nt; i++) {
		acc[i].buf = buf;
		acc[i].file = file;
		acc[i].file_len = strlen(file);
		acc[i].line = line;
		acc[i].after = after_gen;
		acc[i].upto = upto_gen;
		if (tab_init(&acc[i].cls, 1, 1) < 0) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			goto out;
		}
		jobs[i].fn = why_scan;
		jobs[i].acc = &acc[i];
		jobs[i].p = buf + cut[i];
		jobs[i].e = buf + cut[i + 1];
		jobs[i].base = buf;
		jobs[i].drop = drop;
	}
	run_jobs(jobs, nt);
	/* one graph: append the other chunks to the first */
	w = &acc[0];
	for (unsigned i = 0; i < nt; i++) {
		if (acc[i].oom) {
			rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of "
					"memory for the reference graph");
			goto out;
		}
		out->candidates += acc[i].candidates;
		out->objects += acc[i].objects;
		n += acc[i].n;
		ne += acc[i].ne;
	}
	if (!n || !out->candidates)
		goto out;
	if (n >= HD_NONE) {
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: too many objects");
		goto out;
	}
	{
		uint64_t *addr = realloc(w->addr, n * sizeof(*addr));
		uint64_t *off = addr ? realloc(w->off, n * sizeof(*off)) : NULL;
		uint64_t *es = off ? realloc(w->es, (n + 1) * sizeof(*es))
				   : NULL;
		uint8_t *flag = es ? realloc(w->flag, n) : NULL;
		uint64_t *edge = flag ? realloc(w->edge, (ne ? ne : 1) *
						sizeof(*edge)) : NULL;

		if (addr)
			w->addr = addr;
		if (off)
			w->off = off;
		if (es)
			w->es = es;
		if (flag)
			w->flag = flag;
		if (!edge) {
			rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of "
					"memory for the reference graph");
			goto out;
		}
		w->edge = edge;
		for (unsigned i = 1; i < nt; i++) {
			struct why_acc *o = &acc[i];

			memcpy(w->addr + w->n, o->addr, o->n * sizeof(*addr));
			memcpy(w->off + w->n, o->off, o->n * sizeof(*off));
			memcpy(w->flag + w->n, o->flag, o->n);
			for (size_t j = 0; j < o->n; j++)
				w->es[w->n + j] = o->es[j] + w->ne;
			memcpy(w->edge + w->ne, o->edge, o->ne * sizeof(*edge));
			w->n += o->n;
			w->ne += o->ne;
		}
		w->es[w->n] = w->ne;
	}
	/* address -> node */
	for (nslots = 64; nslots < 2 * n; nslots *= 2)
		;
	slot = calloc(nslots, sizeof(*slot));
	parent = malloc(n * sizeof(*parent));
	queue = malloc(n * sizeof(*queue));
	if (!slot || !parent || !queue) {
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of memory "
				"for the reference graph");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (w->flag[i] & WF_ROOT)
			continue;
		j = hd_mix(0, w->addr[i]) & (nslots - 1);
		while (slot[j] && w->addr[slot[j] - 1] != w->addr[i])
			j = (j + 1) & (nslots - 1);
		if (!slot[j])
			slot[j] = (uint32_t)i + 1;
	}
	/* breadth first from every root: the chain found is a shortest */
	memset(parent, 0xff, n * sizeof(*parent));
	head = tail = 0;
	for (size_t i = 0; i < n; i++)
		if (w->flag[i] & WF_ROOT) {
			parent[i] = (uint32_t)i;
			queue[tail++] = (uint32_t)i;
		}
	while (head < tail && found == HD_NONE) {
		uint32_t u = queue[head++];

		for (uint64_t e = w->es[u]; e < w->es[u + 1]; e++) {
			size_t j = hd_mix(0, w->edge[e]) & (nslots - 1);
			uint32_t v;

			while (slot[j] && w->addr[slot[j] - 1] != w->edge[e])
				j = (j + 1) & (nslots - 1);
			if (!slot[j])
				continue;
			v = slot[j] - 1;
			if (parent[v] != HD_NONE)
				continue;
			parent[v] = u;
			if (w->flag[v] & WF_TARGET) {
				found = v;
				break;
			}
			queue[tail++] = v;
		}
	}
	if (found == HD_NONE)
		goto out;
	{
		size_t depth = 1;

		for (uint32_t v = found; parent[v] != v; v = parent[v])
			depth++;
		out->links = calloc(depth, sizeof(*out->links));
		if (!out->links) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			goto out;
		}
		out->n = depth;
		for (uint32_t v = found, k = (uint32_t)depth;; v = parent[v]) {
			if (why_link(acc, nt, buf, len, w->off[v],
				     &out->links[--k]) < 0) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				goto out;
			}
			if (parent[v] == v)
				break;
		}
	}
out:
	if (rc)
		ana_hd_chain_release(out);
	free(slot);
	free(parent);
	free(queue);
	for (unsigned i = 0; i < nt; i++)
		why_acc_release(&acc[i]);
	return rc;
}

int
ana_hd_why_buf(const char *buf, size_t len, const char *file, int64_t line,
	       int64_t after_gen, int64_t upto_gen, unsigned nthreads,
	       struct ana_hd_chain *out, struct lp_err *err)
{
	return why_run(buf, len, file, line, after_gen, upto_gen, nthreads,
		       false, out, err);
}

int
ana_hd_why_file(const char *path, const char *file, int64_t line,
		int64_t after_gen, int64_t upto_gen, unsigned nthreads,
		struct ana_hd_chain *out, struct lp_err *err)
{
	struct hd_input in;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = input_open(path, &in, err);
	if (rc < 0)
		return rc;
	if (!in.mapped && in.fd >= 0) {
		struct stat st;

		if (fstat(in.fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size == 0) {
			input_close(&in);
			return 0;	/* empty: no chain */
		}
		input_close(&in);
		return lp_err_set(err, LP_EIO, "read '%s': the reference "
				  "graph needs a regular file (not a pipe)",
				  path);
	}
	rc = why_run(in.p, in.len, file, line, after_gen, upto_gen, nthreads,
		     true, out, err);
	input_close(&in);
	return rc;
}
