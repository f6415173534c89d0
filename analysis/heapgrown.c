/*
 * analysis/heapgrown.c: the grown objects of a series of heap dumps:
 * objects alive in every dump at one address whose memsize grew.
 *
 * OLD keeps, per object, the low 32 bits of its address (the rest per
 * run of entries), its memsize (32 bits; larger ones in a side table)
 * and a one-byte tag of its type, class and generation: 9 bytes an
 * object, in one segment per scanning thread.  Ruby writes a dump heap
 * page by heap page, each page's slots in address order, so entries
 * come in ascending runs, one per 16 KiB block, that are sorted by
 * address at the end of the scan (the entries themselves only when runs
 * overlap).  NEW looks each object up (from a hint,
 * the previous hit, galloping forward: dumps come in the same order),
 * marks it alive in a bitmap of OLD's entries and keeps its memsize only
 * when it changed.  LATER (or NEW, of two dumps) looks it up again: an
 * object alive in NEW whose memsize is larger than in OLD has grown; it
 * is counted, and kept in a bounded heap of the largest growths.  So the
 * counts are exact, and the memory is 9 bytes per object of OLD, plus
 * one bit per object for NEW, plus the objects whose memsize changed
 * between OLD and NEW, plus the top kept.
 *
 * Identity: the same address, and the same tag.  With allocation info
 * the generation tells a new object in a reused slot from the old one
 * (born after OLD: a generation above OLD's highest, or OLD's highest at
 * an address that was free in OLD, since no slot is freed within a
 * generation); without it only type and class can, and a slot reused by
 * an object of the same type and class looks the same.
 */
#include "analysis/analysis.h"

#include <stdlib.h>
#include <string.h>

#include "analysis/analysis_int.h"
#include "common/log.h"

#define HG_BIG		UINT32_MAX
#define HG_MIN_CAP	4096
#define HG_BLOCK_SHIFT	14	/* runs stay within 16 KiB */

/* ---- OLD's segments ----------------------------------------------------- */

static void
seg_release(struct hg_seg *s)
{
	free(s->lo);
	free(s->ms);
	free(s->tag);
	free(s->run);
	ana__hd_tab_release(&s->big);
	memset(s, 0, sizeof(*s));
}

/*
 * A run: ascending addresses within one aligned block of 16 KiB.  Ruby's
 * heap pages are 16 or 64 KiB, aligned, and a dump writes a page's slots
 * in address order, but not the pages: runs that crossed blocks would
 * overlap other runs.
 */
static int
run_add(struct hg_seg *s, uint64_t addr)
{
	struct hg_run *r = s->nrun ? &s->run[s->nrun - 1] : NULL;

	if (!r || addr < r->max || addr >> HG_BLOCK_SHIFT !=
				   r->max >> HG_BLOCK_SHIFT) {
		if (!ana__hd_grow((void **)&s->run, &s->crun, s->nrun + 1,
				  sizeof(*s->run)))
			return -1;
		r = &s->run[s->nrun++];
		r->min = addr;
		r->start = s->n;
		r->n = 0;
	}
	r->max = addr;
	r->n++;
	return 0;
}

static int
seg_add(struct hg_seg *s, uint64_t addr, uint64_t ms, uint8_t tag)
{
	uint64_t *v;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : HG_MIN_CAP;
		uint32_t *lo, *m;
		uint8_t *t;

		if (!(lo = realloc(s->lo, cap * sizeof(*lo))))
			return -1;
		s->lo = lo;
		if (!(m = realloc(s->ms, cap * sizeof(*m))))
			return -1;
		s->ms = m;
		if (!(t = realloc(s->tag, cap)))
			return -1;
		s->tag = t;
		s->cap = cap;
	}
	if (run_add(s, addr) < 0)
		return -1;
	if (ms >= HG_BIG) {
		if (!s->big.slot && ana__hd_tab_init(&s->big, 1, 1) < 0)
			return -1;
		if (!(v = ana__hd_tab_add(&s->big, &addr)))
			return -1;
		v[0] = ms;
		ms = HG_BIG;
	}
	s->lo[s->n] = (uint32_t)addr;
	s->ms[s->n] = (uint32_t)ms;
	s->tag[s->n++] = tag;
	return 0;
}

struct hg_ent {
	uint64_t addr;
	uint32_t ms;
	uint8_t tag;
};

static int
cmp_ent(const void *pa, const void *pb)
{
	const struct hg_ent *a = pa, *b = pb;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

static int
cmp_run(const void *pa, const void *pb)
{
	const struct hg_run *a = pa, *b = pb;

	return a->min < b->min ? -1 : a->min > b->min;
}

/* Every entry sorted (a dump out of order): 16 bytes an entry, briefly. */
static int
seg_sort_all(struct hg_seg *s)
{
	struct hg_ent *e = malloc((s->n ? s->n : 1) * sizeof(*e));
	size_t n = s->n;

	if (!e)
		return -1;
	for (size_t r = 0; r < s->nrun; r++) {
		const struct hg_run *u = &s->run[r];

		for (size_t i = u->start; i < u->start + u->n; i++) {
			e[i].addr = (u->min >> 32) << 32 | s->lo[i];
			e[i].ms = s->ms[i];
			e[i].tag = s->tag[i];
		}
	}
	qsort(e, n, sizeof(*e), cmp_ent);
	s->nrun = s->n = 0;
	for (size_t i = 0; i < n; i++) {
		run_add(s, e[i].addr);	/* fewer runs than before */
		s->lo[i] = (uint32_t)e[i].addr;
		s->ms[i] = e[i].ms;
		s->tag[i] = e[i].tag;
		s->n++;
	}
	free(e);
	return 0;
}

/*
 * At the end of the scan: runs by address.  When runs overlap (a dump
 * that is not written page by page), the entries are sorted.
 */
static int
seg_finish(struct hg_seg *s)
{
	bool all = false;

	if (s->nrun > 1)
		qsort(s->run, s->nrun, sizeof(*s->run), cmp_run);
	for (size_t r = 1; r < s->nrun && !all; r++)
		all = s->run[r - 1].max >= s->run[r].min;
	lp_debug("heap dump: grown objects: %zu objects of OLD in %zu runs%s",
		 s->n, s->nrun, all ? ", sorted one by one" : "");
	return all ? seg_sort_all(s) : 0;
}

/*
 * Find addr in a finished segment.  cur[0] and cur[1] are a hint, the
 * run and the entry found last: dumps come in the same order, so the
 * next object is usually in that run, a little after that entry
 * (galloped forward from it).
 */
static bool
seg_find(const struct hg_seg *s, uint64_t addr, size_t *cur, size_t *at)
{
	uint32_t lo = (uint32_t)addr;
	size_t r = cur[0], a, b, end, c = cur[1];
	const struct hg_run *u;

	if (r >= s->nrun || addr < s->run[r].min || addr > s->run[r].max) {
		a = 0;
		b = s->nrun;
		/* the first run with min > addr */
		while (a < b) {
			size_t m = a + (b - a) / 2;

			if (s->run[m].min <= addr)
				a = m + 1;
			else
				b = m;
		}
		if (!a || addr > s->run[a - 1].max)
			return false;
		r = a - 1;
		c = SIZE_MAX;
	}
	u = &s->run[r];
	a = u->start;
	end = b = u->start + u->n;
	if (c >= a && c < b && s->lo[c] <= lo) {
		size_t step = 1;

		/* lo[a] <= lo; the first entry >= lo is in [a, a + step] */
		a = c;
		while (a + step < b && s->lo[a + step] < lo) {
			a += step;
			step <<= 1;
		}
		if (a + step + 1 < b)
			b = a + step + 1;
	}
	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (s->lo[m] < lo)
			a = m + 1;
		else
			b = m;
	}
	cur[0] = r;
	cur[1] = a;
	if (a >= end || s->lo[a] != lo)
		return false;
	*at = a;
	return true;
}

static uint64_t
seg_ms(const struct hg_seg *s, size_t i, uint64_t addr)
{
	const uint64_t *v;

	if (s->ms[i] != HG_BIG)
		return s->ms[i];
	v = s->big.slot ? ana__hd_tab_find(&s->big, &addr) : NULL;
	return v ? v[0] : HG_BIG;
}

/* Type, class and generation, in a byte. */
static inline uint8_t
hg_tag(uint64_t type_hash, const struct hd_rec *r)
{
	uint64_t h = hd_mix(type_hash, (r->have & HD_CLASS) ? r->cls : 0);

	h = hd_mix(h, (r->have & HD_GEN) ? (uint64_t)r->gen : UINT64_MAX);
	return (uint8_t)(h >> 56);
}

/* OLD's entry of this object: segment and index. */
static bool
old_find(struct hg_acc *g, uint64_t addr, uint8_t tag, unsigned *seg,
	 size_t *at)
{
	const struct ana_hd_digest *o = g->old;
	unsigned n = o->hg_nseg;

	/* the segment of the last hit first */
	for (unsigned k = 0, i = g->last_seg; k < n; k++, i = (i + 1) % n) {
		if (seg_find(&o->hg_seg[i], addr, g->cur[i], at)) {
			if (o->hg_seg[i].tag[*at] != tag)
				return false;
			*seg = g->last_seg = i;
			return true;
		}
	}
	return false;
}

/* ---- the top grown objects: a heap, the smallest growth at the root ---- */

/* a ranks below b: smaller growth, or the same at a higher address */
static inline bool
below(const struct hg_obj *a, const struct hg_obj *b)
{
	return a->growth < b->growth ||
	       (a->growth == b->growth && a->addr > b->addr);
}

static void
sift_down(struct hg_obj *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct hg_obj t;

		if (l < n && below(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && below(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void
sift_up(struct hg_obj *h, size_t i)
{
	while (i) {
		size_t p = (i - 1) / 2;
		struct hg_obj t;

		if (!below(&h[i], &h[p]))
			return;
		t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static int
top_add(struct hg_acc *g, struct hd_strs *str, const struct hd_rec *r,
	struct hg_obj *o)
{
	uint32_t f = 0, m = 0;
	bool full = g->want && g->ntop >= g->want;

	if (full && !below(&g->top[0], o))
		return 0;
	o->traced = (r->have & (HD_FILE | HD_LINE)) != 0;
	if (r->have & HD_FILE)
		f = ana__hd_strs_intern(str, r->file, r->file_len);
	if (r->have & HD_METHOD)
		m = ana__hd_strs_intern(str, r->method, r->method_len);
	if (f == HD_NONE || m == HD_NONE)
		return -1;
	o->file = f;
	o->method = m;
	o->line = (r->have & HD_LINE) ? r->line : -1;
	o->gen = (r->have & HD_GEN) ? r->gen : -1;
	if (full) {
		g->top[0] = *o;
		sift_down(g->top, g->ntop, 0);
		return 0;
	}
	if (!ana__hd_grow((void **)&g->top, &g->ctop, g->ntop + 1,
			  sizeof(*g->top)))
		return -1;
	g->top[g->ntop] = *o;
	if (g->want)
		sift_up(g->top, g->ntop);
	g->ntop++;
	return 0;
}

/* ---- per line ----------------------------------------------------------- */

int
ana__hg_acc_init(struct hg_acc *g, const struct ana_hd_digest *d)
{
	memset(g, 0, sizeof(*g));
	g->role = d->hg_role;
	g->old = d->hg_old;
	g->mid = d->hg_mid;
	g->alive = d->hg_alive;
	g->want = d->hg_want;
	if (g->role == HG_MID && ana__hd_tab_init(&g->changed, 1, 1) < 0)
		return -1;
	return 0;
}

void
ana__hg_acc_release(struct hg_acc *g)
{
	seg_release(&g->seg);
	ana__hd_tab_release(&g->changed);
	free(g->top);
	g->top = NULL;
	g->ntop = g->ctop = 0;
}

/*
 * One object line (r has an address).  tsid: its type in str.  Returns 0
 * or -1 (out of memory).
 */
int
ana__hg_line(struct hg_acc *g, struct hd_strs *str, const struct hd_rec *r,
	     uint64_t type_hash, uint32_t tsid, uint64_t ms)
{
	uint8_t tag = hg_tag(type_hash, r);
	unsigned seg;
	size_t at;
	uint64_t m0, m1, key, *v;
	const struct hg_seg *s;
	struct hg_obj o;

	if (!(r->have & HD_MEMSIZE))
		return 0;	/* not in OLD, or not followed */
	if (g->role == HG_KEEP)
		return seg_add(&g->seg, r->addr, ms, tag);
	/* born after OLD: a new object in a reused slot, whatever the tag */
	if ((r->have & HD_GEN) && r->gen > g->old->st.max_gen)
		return 0;
	if (!old_find(g, r->addr, tag, &seg, &at))
		return 0;
	s = &g->old->hg_seg[seg];
	m0 = seg_ms(s, at, r->addr);
	key = (uint64_t)seg << 40 | at;
	if (g->role == HG_MID) {
		__atomic_fetch_or(&g->alive[seg][at >> 3],
				  (uint8_t)(1u << (at & 7)), __ATOMIC_RELAXED);
		if (ms == m0)
			return 0;
		if (!(v = ana__hd_tab_add(&g->changed, &key)))
			return -1;
		v[0] = ms;
		return 0;
	}
	/* HG_LAST */
	if (ms <= m0)
		return 0;
	m1 = ms;
	if (g->mid) {
		if (!(g->mid->hg_alive[seg][at >> 3] & (1u << (at & 7))))
			return 0;
		v = ana__hd_tab_find(&g->mid->hg_changed, &key);
		m1 = v ? v[0] : m0;
	}
	g->count++;
	g->bytes += ms - m0;
	memset(&o, 0, sizeof(o));
	o.addr = r->addr;
	o.ms[0] = m0;
	o.ms[1] = m1;
	o.ms[2] = ms;
	o.growth = ms - m0;
	o.type = tsid;
	o.cls = (r->have & HD_CLASS) ? r->cls : 0;
	return top_add(g, str, r, &o);
}

/* ---- merging the threads' parts into the digest ------------------------- */

/*
 * acc `idx` (in chunk order): OLD's segment moves to the digest, NEW's
 * changed memsizes and LATER's top are merged, strings translated with
 * tr (str's sids to the digest's), class addresses with cmap.
 */
int
ana__hg_merge_acc(struct ana_hd_digest *d, struct hg_acc *g,
		  const struct hd_strs *str, uint32_t *tr,
		  const struct hd_tab *cmap, unsigned idx)
{
	(void)idx;
	switch (g->role) {
	case HG_KEEP:
		if (d->hg_nseg >= HD_MAX_THREADS || seg_finish(&g->seg) < 0)
			return -1;
		d->hg_seg[d->hg_nseg++] = g->seg;
		memset(&g->seg, 0, sizeof(g->seg));
		return 0;
	case HG_MID:
		for (size_t j = 0; j < g->changed.n; j++) {
			uint64_t *v = ana__hd_tab_add(&d->hg_changed,
					TAB_KEY(&g->changed, j));

			if (!v)
				return -1;
			v[0] = TAB_VAL(&g->changed, j)[0];
		}
		return 0;
	case HG_LAST:
		break;
	default:
		return 0;
	}
	if (!ana__hd_grow((void **)&d->hg_obj, &d->hg_cobj,
			  d->hg_nobj + g->ntop + 1, sizeof(*d->hg_obj)))
		return -1;
	for (size_t j = 0; j < g->ntop; j++) {
		struct hg_obj o = g->top[j];
		const uint64_t *c;

		o.type = ana__hd_tr_sid(&d->str, str, tr, (uint32_t)o.type);
		o.file = ana__hd_tr_sid(&d->str, str, tr, (uint32_t)o.file);
		o.method = ana__hd_tr_sid(&d->str, str, tr,
					  (uint32_t)o.method);
		if (o.type == HD_NONE || o.file == HD_NONE ||
		    o.method == HD_NONE)
			return -1;
		c = o.cls ? ana__hd_tab_find(cmap, &o.cls) : NULL;
		o.cls = !o.cls ? 0 : c ? c[0] - 1 : d->sid_unknown;
		d->hg_obj[d->hg_nobj++] = o;
	}
	d->hg_count += g->count;
	d->hg_bytes += g->bytes;
	return 0;
}

static int
cmp_obj(const void *pa, const void *pb)
{
	const struct hg_obj *a = pa, *b = pb;

	if (below(a, b))
		return 1;
	return below(b, a) ? -1 : 0;
}

/* After every acc: LATER's top, sorted and cut. */
int
ana__hg_merge_end(struct ana_hd_digest *d)
{
	if (d->hg_role != HG_LAST)
		return 0;
	if (d->hg_nobj)
		qsort(d->hg_obj, d->hg_nobj, sizeof(*d->hg_obj), cmp_obj);
	if (d->hg_want && d->hg_nobj > d->hg_want)
		d->hg_nobj = d->hg_want;
	return 0;
}

void
ana__hg_release(struct ana_hd_digest *d)
{
	for (unsigned i = 0; i < HD_MAX_THREADS; i++) {
		seg_release(&d->hg_seg[i]);
		free(d->hg_alive[i]);
		d->hg_alive[i] = NULL;
	}
	d->hg_nseg = 0;
	ana__hd_tab_release(&d->hg_changed);
	free(d->hg_obj);
	d->hg_obj = NULL;
	d->hg_nobj = d->hg_cobj = 0;
}

/* ---- the API ------------------------------------------------------------ */

int
ana_hd_digest_keep_sizes(struct ana_hd_digest *old)
{
	if (old->ended || old->feed || old->hg_role != HG_OFF)
		return -LP_EINVAL;
	old->hg_role = HG_KEEP;
	return 0;
}

int
ana_hd_digest_follow(struct ana_hd_digest *d,
		     const struct ana_hd_digest *old,
		     const struct ana_hd_digest *mid, bool last, size_t top)
{
	if (d->ended || d->feed || d->hg_role != HG_OFF || !old->ended ||
	    old->hg_role != HG_KEEP || (!last && mid) ||
	    (mid && (!mid->ended || mid->hg_role != HG_MID ||
		     mid->hg_old != old)))
		return -LP_EINVAL;
	if (!last) {
		if (ana__hd_tab_init(&d->hg_changed, 1, 1) < 0)
			return -LP_ENOMEM;
		for (unsigned i = 0; i < old->hg_nseg; i++) {
			d->hg_alive[i] = calloc(old->hg_seg[i].n / 8 + 1, 1);
			if (!d->hg_alive[i]) {
				ana__hg_release(d);
				return -LP_ENOMEM;
			}
		}
	}
	d->hg_role = last ? HG_LAST : HG_MID;
	d->hg_old = old;
	d->hg_mid = mid;
	d->hg_want = top;
	return 0;
}

/* The grown objects of the last digest d, n dumps, into out. */
int
ana__hg_diff(const struct ana_hd_digest *d, size_t n,
	     struct ana_hd_diff *out)
{
	size_t len;
	const char *s;

	if (d->hg_role != HG_LAST || n < 2)
		return 0;
	out->grown_on = true;
	out->grown_count = d->hg_count;
	out->grown_bytes = d->hg_bytes;
	out->grown = calloc(d->hg_nobj ? d->hg_nobj : 1, sizeof(*out->grown));
	if (!out->grown)
		return -1;
	for (size_t i = 0; i < d->hg_nobj; i++) {
		const struct hg_obj *o = &d->hg_obj[i];
		struct ana_hd_grown *g = &out->grown[i];

		out->ngrown = i + 1;
		g->address = o->addr;
		g->line = o->line;
		g->gen = o->gen;
		g->growth = o->growth;
		g->memsize[0] = o->ms[0];
		g->memsize[n - 1] = o->ms[2];
		if (n == 3)
			g->memsize[1] = o->ms[1];
		s = ana__hd_strs_at(&d->str, (uint32_t)o->type, &len);
		if (!(g->type = ana__hd_json_unescape(s, len)))
			return -1;
		s = ana__hd_strs_at(&d->str, (uint32_t)o->cls, &len);
		if (!(g->cls = ana__hd_json_unescape(s, len)))
			return -1;
		if (!o->traced)
			continue;
		s = ana__hd_strs_at(&d->str, (uint32_t)o->file, &len);
		if (!(g->file = ana__hd_json_unescape(s, len)))
			return -1;
		s = ana__hd_strs_at(&d->str, (uint32_t)o->method, &len);
		if (!(g->method = ana__hd_json_unescape(s, len)))
			return -1;
	}
	return 0;
}
