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
 *  - born after OLD = generation above OLD's highest generation, or equal
 *    to it at an address OLD does not have.  Objects born after OLD was
 *    dumped but before the next GC share OLD's newest generation; within
 *    one generation no GC ran, so no slot was freed and reused: OLD's
 *    digest keeps the addresses of that generation (8 bytes each) and an
 *    object of NEW or LATER of that generation elsewhere is new
 *    (same_gen_new; the rest, same_gen, are OLD's own).  GC.compact
 *    between the dumps on a Ruby that keeps the allocation info of moved
 *    objects would make a moved one of that generation look new.
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

#include "analysis/analysis_int.h"
#include "common/log.h"


/* ---- hashing ---------------------------------------------------------- */


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


void
ana__hd_strs_release(struct hd_strs *t)
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


int
ana__hd_strs_init(struct hd_strs *t)
{
	memset(t, 0, sizeof(*t));
	if (strs_rehash(t, 64) < 0)
		return -1;
	if (ana__hd_strs_intern(t, "", 0) != 0) {
		ana__hd_strs_release(t);
		return -1;
	}
	return 0;
}

bool
ana__hd_grow(void **p, size_t *cap, size_t need, size_t sz)
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
uint32_t
ana__hd_strs_intern(struct hd_strs *t, const char *p, size_t n)
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
	if (!ana__hd_grow((void **)&t->buf, &t->cap, t->len + n + 1, 1) ||
	    !ana__hd_grow((void **)&t->s, &t->scap, t->n + 1, sizeof(*t->s)))
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

const char *
ana__hd_strs_at(const struct hd_strs *t, uint32_t id, size_t *len)
{
	*len = t->s[id].len;
	return t->buf + t->s[id].off;
}

/* ---- counter tables ----------------------------------------------------
 * Fixed-size keys of nk 64-bit words and nv value words, stored flat in
 * insertion order, with an open-addressing index.
 */


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

int
ana__hd_tab_init(struct hd_tab *t, unsigned nk, unsigned nv)
{
	memset(t, 0, sizeof(*t));
	t->nk = nk;
	t->stride = nk + nv;
	return tab_rehash(t, 64);
}

void
ana__hd_tab_release(struct hd_tab *t)
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

uint64_t *
ana__hd_tab_find(const struct hd_tab *t, const uint64_t *k)
{
	return tab_lookup(t, k, NULL);
}

/* Values of key k, added as zeroes when new; NULL when out of memory. */
uint64_t *
ana__hd_tab_add(struct hd_tab *t, const uint64_t *k)
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
	if (!ana__hd_grow((void **)&t->ent, &t->cap, t->n + 1,
		  t->stride * sizeof(uint64_t)))
		return NULL;
	e = TAB_KEY(t, t->n);
	memcpy(e, k, t->nk * sizeof(uint64_t));
	memset(e + t->nk, 0, (t->stride - t->nk) * sizeof(uint64_t));
	t->slot[j] = (uint32_t)++t->n;
	return e + t->nk;
}

/* ---- the line scanner ------------------------------------------------- */

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


#ifdef __SSE2__
/* Bit i of the result: the parity of bits 0..i of m (for a mask of
 * quotes: byte i is inside a string). */
static inline unsigned
prefix_xor16(unsigned m)
{
	m ^= m << 1;
	m ^= m << 2;
	m ^= m << 4;
	m ^= m << 8;
	return m & 0xffff;
}
#endif

/*
 * p at '[' or '{': return just after the matching bracket, or NULL.
 * 16 bytes at a time while there is no backslash: which bytes are inside
 * strings follows from the quotes before them (prefix parity), so the
 * brackets outside strings are found without stopping at every string
 * (a "references" array is mostly quotes).  From a block with a
 * backslash on, and in the tail, byte by byte.
 */
static const char *
skip_nested(const char *p, const char *e)
{
	size_t depth = 0;
#ifdef __SSE2__
	const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'),
		      o = _mm_set1_epi8('{'), c = _mm_set1_epi8('}'),
		      lc = _mm_set1_epi8(0x20);
	unsigned in_str = 0;	/* 0xffff inside a string */

	for (; e - p >= 16; p += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i f = _mm_or_si128(v, lc);
		unsigned mq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, q));
		unsigned mo, mc, m;

		if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, b)))
			break;
		/* '[' | 0x20 == '{' and ']' | 0x20 == '}' */
		mo = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(f, o));
		mc = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(f, c));
		m = (mo | mc) & ~(prefix_xor16(mq) ^ in_str);
		for (; m; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctz(m);

			if (mo >> i & 1)
				depth++;
			else if (--depth == 0)
				return p + i + 1;
		}
		if (__builtin_popcount(mq) & 1)
			in_str ^= 0xffff;
	}
	if (in_str) {		/* finish the string, byte by byte */
		p = str_close(p, e);
		if (!p)
			return NULL;
		p++;
	}
#endif
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
int
ana__hd_parse(const char *p, const char *e, struct hd_rec *r, bool want_refs)
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
char *
ana__hd_json_unescape(const char *s, size_t n)
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
	uint64_t last_type_hash;	/* of last_type (grown objects) */
	uint32_t last_file, last_method;	/* sids: one-entry caches */
	struct hg_acc hg;	/* grown objects (heapgrown.c) */
	/* OLD: addresses of the objects of the newest generation seen */
	bool collect;
	int64_t top_gen;
	uint64_t *top;
	size_t ntop, ctop;
	/* NEW, LATER: OLD's, sorted (borrowed from its digest) */
	const uint64_t *old;
	size_t nold;
	bool oom;
};

static void
acc_free(struct hd_acc *a)
{
	if (!a)
		return;
	ana__hd_strs_release(&a->str);
	ana__hd_tab_release(&a->cls);
	ana__hd_tab_release(&a->tcs);
	ana__hd_tab_release(&a->site);
	ana__hd_tab_release(&a->coarse);
	ana__hg_acc_release(&a->hg);
	free(a->top);
	free(a);
}

static struct hd_acc *
acc_new(const struct ana_hd_digest *d)
{
	struct hd_acc *a = calloc(1, sizeof(*a));
	int64_t after = d->after;

	if (!a)
		return NULL;
	a->after = after;
	a->collect = after == ANA_HD_NO_SITES;
	a->top_gen = -1;
	a->old = d->old;
	a->nold = d->nold;
	a->shapes = after != ANA_HD_NO_SITES;
	a->st.max_gen = -1;
	a->last_type_sid = HD_NONE;
	a->last_file = a->last_method = HD_NONE;
	if (ana__hd_strs_init(&a->str) < 0 ||
	    ana__hd_tab_init(&a->cls, 1, 1) < 0 ||
	    ana__hd_tab_init(&a->tcs, 4, TV_NV) < 0 ||
	    ana__hd_tab_init(&a->site, 8, 2) < 0 ||
	    ana__hd_tab_init(&a->coarse, 6, 1) < 0 ||
	    ana__hg_acc_init(&a->hg, d) < 0) {
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
		sid = ana__hd_strs_intern(&a->str, r->name, r->name_len);
		kind = CN_NAME;
	} else if (r->have & HD_REAL) {
		sid = ana__hd_strs_intern(&a->str, r->real, r->real_len);
		kind = CN_REAL;
	}
	v = ana__hd_tab_add(&a->cls, &r->addr);
	if (sid == HD_NONE || !v) {
		a->oom = true;
		return;
	}
	v[0] = sid | kind << 32;
}

/*
 * Intern p[0..n), trying *last first: objects next to each other in a
 * dump were often allocated in the same file (and method).
 */
static inline uint32_t
intern_cached(struct hd_strs *t, uint32_t *last, const char *p, size_t n)
{
	size_t len;
	const char *s;

	if (*last != HD_NONE) {
		s = ana__hd_strs_at(t, *last, &len);
		if (len == n && !memcmp(s, p, n))
			return *last;
	}
	*last = ana__hd_strs_intern(t, p, n);
	return *last;
}

static void
acc_site(struct hd_acc *a, const struct hd_rec *r, uint64_t *k4,
	 uint64_t ms)
{
	uint64_t k[8], *v, *cv;
	uint32_t f = 0, m = 0;

	if (r->have & HD_FILE)
		f = intern_cached(&a->str, &a->last_file, r->file,
				  r->file_len);
	if (r->have & HD_METHOD)
		m = intern_cached(&a->str, &a->last_method, r->method,
				  r->method_len);
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
	v = ana__hd_tab_find(&a->site, k);
	if (!v) {
		/* a new size for this site: keep at most so many */
		cv = ana__hd_tab_add(&a->coarse, k);
		if (!cv) {
			a->oom = true;
			return;
		}
		if (cv[0] >= HD_SHAPES_PER_SITE) {
			k[6] = k[7] = HD_SHAPE_ANY;
			v = ana__hd_tab_find(&a->site, k);
		} else {
			cv[0]++;
		}
		if (!v && !(v = ana__hd_tab_add(&a->site, k))) {
			a->oom = true;
			return;
		}
	}
	v[0]++;
	v[1] += ms;
}

/* Keep addr when gen is the newest generation seen so far. */
static void
acc_top(struct hd_acc *a, int64_t gen, uint64_t addr)
{
	if (gen < a->top_gen)
		return;
	if (gen > a->top_gen) {
		a->top_gen = gen;
		a->ntop = 0;
	}
	if (!ana__hd_grow((void **)&a->top, &a->ctop, a->ntop + 1,
			  sizeof(*a->top))) {
		a->oom = true;
		return;
	}
	a->top[a->ntop++] = addr;
}

/* Is addr in the sorted v[0..n)? */
static bool
addr_in(const uint64_t *v, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] == addr)
			return true;
		if (v[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A type name's tag for grown objects: its length and first 8 bytes
 * (Ruby's type names are shorter). */
static inline uint64_t
type_hash(const char *s, size_t n)
{
	uint64_t w = 0;

	memcpy(&w, s, n < 8 ? n : 8);
	return hd_mix(n, w);
}

static void
acc_line(struct hd_acc *a, const char *p, const char *e)
{
	struct hd_rec r;
	uint64_t k[4], *v, ms, th = 0;
	uint32_t tsid;
	bool fresh = false;
	int bad;

	a->st.lines++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (skip_ws(p, e) == e)
		return;		/* blank */
	bad = ana__hd_parse(p, e, &r, false);
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
		if (a->collect && (r.have & HD_ADDR))
			acc_top(a, r.gen, r.addr);
		if (r.gen == a->after) {
			/* Within one generation no GC ran, so no slot was
			 * freed: an object of OLD's newest generation whose
			 * address OLD does not have was born after OLD. */
			fresh = a->old && (r.have & HD_ADDR) &&
				!addr_in(a->old, a->nold, r.addr);
			if (fresh)
				a->st.same_gen_new++;
			else
				a->st.same_gen++;
		}
	}
	if ((r.have & HD_ADDR) && (span_is(r.type, r.type_len, "CLASS") ||
				   span_is(r.type, r.type_len, "MODULE")))
		acc_class(a, &r);

	if (a->last_type_sid != HD_NONE && r.type_len == a->last_type_len &&
	    !memcmp(r.type, a->last_type, r.type_len)) {
		tsid = a->last_type_sid;
		th = a->last_type_hash;
	} else {
		tsid = ana__hd_strs_intern(&a->str, r.type, r.type_len);
		if (tsid == HD_NONE) {
			a->oom = true;
			return;
		}
		if (a->hg.role != HG_OFF)
			th = type_hash(r.type, r.type_len);
		a->last_type_sid = HD_NONE;
		if (r.type_len <= sizeof(a->last_type)) {
			memcpy(a->last_type, r.type, r.type_len);
			a->last_type_len = r.type_len;
			a->last_type_sid = tsid;
			a->last_type_hash = th;
		}
	}
	if (a->hg.role != HG_OFF && (r.have & HD_ADDR) &&
	    ana__hg_line(&a->hg, &a->str, &r, th, tsid, ms) < 0) {
		a->oom = true;
		return;
	}
	k[0] = tsid;
	k[1] = (r.have & HD_CLASS) ? r.cls : 0;
	k[2] = a->shapes && (r.have & HD_SHAPE) ? r.shape : 0;
	k[3] = a->shapes ? ms : 0;
	v = ana__hd_tab_add(&a->tcs, k);
	if (!v) {
		a->oom = true;
		return;
	}
	v[TV_N]++;
	v[TV_BYTES] += ms;
	if (!(r.have & HD_GEN)) {
		v[TV_UN]++;
		v[TV_UBYTES] += ms;
	} else if (r.gen <= a->after && !fresh) {
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

unsigned
ana__hd_pick_threads(unsigned want, size_t len)
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
void
ana__hd_split_lines(const char *buf, size_t len, unsigned n, size_t *cut)
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
void
ana__hd_run_jobs(struct scan_job *jobs, unsigned n)
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


struct ana_hd_digest *
ana_hd_digest_new(int64_t sites_after_gen)
{
	struct ana_hd_digest *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->after = sites_after_gen;
	d->st.max_gen = -1;
	d->st.first_bad_why = "";
	if (ana__hd_strs_init(&d->str) < 0 ||
	    ana__hd_tab_init(&d->tcs, 4, TV_NV) < 0 ||
	    ana__hd_tab_init(&d->site, 8, 2) < 0) {
		ana_hd_digest_free(d);
		return NULL;
	}
	d->sid_anon = ana__hd_strs_intern(&d->str, "(anonymous)", 11);
	d->sid_unknown = ana__hd_strs_intern(&d->str, "(unknown)", 9);
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
	ana__hd_strs_release(&d->str);
	ana__hd_tab_release(&d->tcs);
	ana__hd_tab_release(&d->site);
	acc_free(d->feed);
	free(d->carry);
	free(d->top);
	ana__hg_release(d);
	free(d);
}

const struct ana_hd_stats *
ana_hd_digest_stats(const struct ana_hd_digest *d)
{
	return &d->st;
}

/* sid of acc string `sid` in the digest (memoised in tr[]). */
uint32_t
ana__hd_tr_sid(struct hd_strs *to, const struct hd_strs *from, uint32_t *tr,
       uint32_t sid)
{
	size_t len;
	const char *s;

	if (tr[sid] == HD_NONE) {
		s = ana__hd_strs_at(from, sid, &len);
		tr[sid] = ana__hd_strs_intern(to, s, len);
	}
	return tr[sid];
}

static int
cmp_u64(const void *pa, const void *pb)
{
	uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;

	return a < b ? -1 : a > b;
}

/* The addresses of the newest generation, from every thread, sorted. */
static int
merge_top(struct ana_hd_digest *d, struct hd_acc **acc, unsigned n)
{
	size_t total = 0, o = 0;

	if (d->after != ANA_HD_NO_SITES || d->st.max_gen < 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (acc[i]->top_gen == d->st.max_gen)
			total += acc[i]->ntop;
	d->top = malloc((total ? total : 1) * sizeof(*d->top));
	if (!d->top)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (acc[i]->top_gen != d->st.max_gen)
			continue;
		memcpy(d->top + o, acc[i]->top,
		       acc[i]->ntop * sizeof(*d->top));
		o += acc[i]->ntop;
	}
	qsort(d->top, total, sizeof(*d->top), cmp_u64);
	d->ntop = total;
	return 0;
}

int
ana_hd_digest_use_old(struct ana_hd_digest *d,
		      const struct ana_hd_digest *old)
{
	if (d->ended || d->feed || !old->ended ||
	    old->after != ANA_HD_NO_SITES)
		return -LP_EINVAL;
	if (old->st.max_gen != d->after)
		return 0;	/* another window: nothing to decide */
	d->old = old->top;
	d->nold = old->ntop;
	return 0;
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

	if (ana__hd_tab_init(&cmap, 1, 1) < 0)
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
				s = ana__hd_strs_at(&a->str, (uint32_t)val,
						    &len);
				sid = ana__hd_strs_intern(&d->str, s, len);
			}
			v = ana__hd_tab_add(&cmap, k);
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

			nk[0] = ana__hd_tr_sid(&d->str, &a->str, tr,
					       (uint32_t)k[0]);
			c = k[1] ? ana__hd_tab_find(&cmap, &k[1]) : NULL;
			nk[1] = !k[1] ? 0 : c ? c[0] - 1 : d->sid_unknown;
			nk[2] = k[2];
			nk[3] = k[3];
			v = nk[0] == HD_NONE ? NULL :
			    ana__hd_tab_add(&d->tcs, nk);
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

			nk[0] = ana__hd_tr_sid(&d->str, &a->str, tr,
					       (uint32_t)k[0]);
			nk[1] = k[1];
			nk[2] = ana__hd_tr_sid(&d->str, &a->str, tr,
					       (uint32_t)k[2]);
			nk[3] = k[3];
			nk[4] = ana__hd_tr_sid(&d->str, &a->str, tr,
					       (uint32_t)k[4]);
			c = k[5] ? ana__hd_tab_find(&cmap, &k[5]) : NULL;
			nk[5] = !k[5] ? 0 : c ? c[0] - 1 : d->sid_unknown;
			nk[6] = k[6];
			nk[7] = k[7];
			v = (nk[0] == HD_NONE || nk[2] == HD_NONE ||
			     nk[4] == HD_NONE) ? NULL :
			    ana__hd_tab_add(&d->site, nk);
			if (!v) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				break;
			}
			v[0] += av[0];
			v[1] += av[1];
		}
		if (!rc && ana__hg_merge_acc(d, &a->hg, &a->str, tr, &cmap,
					     i) < 0)
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
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
		d->st.same_gen_new += a->st.same_gen_new;
		d->st.bad += a->st.bad;
		if (a->st.max_gen > d->st.max_gen)
			d->st.max_gen = a->st.max_gen;
	}
	if (!rc && merge_top(d, acc, n) < 0)
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	if (!rc && ana__hg_merge_end(d) < 0)
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	free(tr);
	ana__hd_tab_release(&cmap);
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
	n = ana__hd_pick_threads(nthreads, len);
	ana__hd_split_lines(buf, len, n, cut);
	for (unsigned i = 0; i < n; i++) {
		acc[i] = acc_new(d);
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
	ana__hd_run_jobs(jobs, n);
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
	if (!d->feed && !(d->feed = acc_new(d)))
		return lp_err_set(err, LP_ENOMEM, "heap dump: out of memory");
	a = d->feed;
	d->st.bytes += len;
	if (d->carry_len) {
		nl = memchr(p, '\n', len);
		if (!nl) {
			if (!ana__hd_grow((void **)&d->carry, &d->carry_cap,
				  d->carry_len + len, 1))
				return lp_err_set(err, LP_ENOMEM,
						  "heap dump: out of memory "
						  "(line of %zu bytes)",
						  d->carry_len + len);
			memcpy(d->carry + d->carry_len, p, len);
			d->carry_len += len;
			return 0;
		}
		if (!ana__hd_grow((void **)&d->carry, &d->carry_cap,
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
		if (!ana__hd_grow((void **)&d->carry, &d->carry_cap,
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
	if (!d->feed && !(d->feed = acc_new(d)))
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


/* Open path; map it when it is a regular file.  err names the path. */
int
ana__hd_input_open(const char *path, struct hd_input *in, struct lp_err *err)
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

void
ana__hd_input_close(struct hd_input *in)
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

	rc = ana__hd_input_open(path, &in, err);
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
	ana__hd_input_close(&in);
	return rc;
}
