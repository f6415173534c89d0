/*
 * analysis/heapdiff.c: the diff of two or three heap-dump digests (see
 * heapdump.c for how objects of two dumps are told to be the same).
 */
#include "analysis/analysis.h"

#include <stdlib.h>
#include <string.h>

#include "analysis/analysis_int.h"

const char *
ana_hd_by_name(enum ana_hd_by by)
{
	switch (by) {
	case ANA_HD_BY_CLASS:
		return "class";
	case ANA_HD_BY_TYPE:
		return "type";
	case ANA_HD_BY_METHOD:
		return "method";
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
	else if (!strcmp(s, "method"))
		*out = ANA_HD_BY_METHOD;
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
	uint32_t s = ana__hd_tr_sid(&c->str, &c->d[i]->str, c->tr[i],
				    (uint32_t)sid);

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

/*
 * Site tables hold objects born after OLD: a generation above OLD's, or
 * OLD's own for objects whose address OLD does not have.
 */
static bool
in_window(uint64_t gen, int64_t after, int64_t upto)
{
	return (int64_t)gen >= after && (int64_t)gen <= upto;
}

/* Add a site (file, line, method, type, class) to S. */
static int
s_add(struct hd_tab *s, const uint64_t *jk, uint64_t n, uint64_t bytes,
      uint64_t shape)
{
	uint64_t k[5] = { jk[0], jk[1], jk[2], jk[4], jk[5] }, *v;

	if (!n)
		return 0;
	v = ana__hd_tab_add(s, k);
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

	if (ana__hd_tab_init(&J, 8, JV_NV) < 0)
		return -1;
	if (ana__hd_tab_init(&C, 6, CV_NV) < 0) {
		ana__hd_tab_release(&J);
		return -1;
	}
	if (ana__hd_tab_init(&B, 4, BV_NV) < 0) {
		ana__hd_tab_release(&J);
		ana__hd_tab_release(&C);
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
			if (c->oom || !(v = ana__hd_tab_add(&J, nk)))
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
		if (!(cv = ana__hd_tab_add(&C, k)))
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
		uint64_t *cv = ana__hd_tab_find(&C, k), take;

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
			if (c->oom || !(v = ana__hd_tab_add(&B, nk)))
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
		bv = ana__hd_tab_find(&B, bk);
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
		bv = ana__hd_tab_find(&B, bk);
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
	ana__hd_tab_release(&J);
	ana__hd_tab_release(&C);
	ana__hd_tab_release(&B);
	return rc;
}

static int
sites_two(struct dctx *c, struct ana_hd_diff *out, struct hd_tab *S)
{
	const struct hd_tab *t = &c->d[1]->site;

	for (size_t i = 0; i < t->n; i++) {
		const uint64_t *k = TAB_KEY(t, i), *sv = TAB_VAL(t, i);
		uint64_t nk[8];

		if ((int64_t)k[3] < out->after_gen)
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
	const char *s = ana__hd_strs_at(&c->str, (uint32_t)sid, &len);
	char *u = ana__hd_json_unescape(s, len);

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
	for (size_t i = 0; i < diff->ngrown; i++) {
		free(diff->grown[i].type);
		free(diff->grown[i].cls);
		free(diff->grown[i].file);
		free(diff->grown[i].method);
	}
	free(diff->grown);
	memset(diff, 0, sizeof(*diff));
}

/* Rows of one file:line together, most objects first. */
static int
cmp_lines(const void *pa, const void *pb)
{
	const struct ana_hd_row *a = pa, *b = pb;
	int r;

	if ((r = strcmp(a->file ? a->file : "", b->file ? b->file : "")))
		return r;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return cmp_rows(pa, pb);
}

/*
 * Append s to the ", "-joined list *list unless it is there; "" is
 * skipped.  Returns 0 or -1 (out of memory).
 */
static int
list_add(char **list, const char *s)
{
	size_t n = *list ? strlen(*list) : 0, m = strlen(s);
	const char *p = *list;
	char *q;

	if (!m)
		return 0;
	while (p && *p) {		/* whole items only */
		const char *e = strstr(p, ", ");
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == m && !memcmp(p, s, m))
			return 0;
		p = e ? e + 2 : NULL;
	}
	q = realloc(*list, n + m + 3);
	if (!q)
		return -1;
	if (n)
		memcpy(q + n, ", ", 2), n += 2;
	memcpy(q + n, s, m + 1);
	*list = q;
	return 0;
}

/*
 * By site: one row per file:line.  An allocation site is a line; which
 * C method allocated (String#* and the copy of #dup on one line) or what
 * type is no reason to split it.  Rows come from make_rows, split by
 * method, type and class; they are folded into the first of their line
 * (the largest), whose strings list the others'.
 */
static int
merge_lines(struct ana_hd_diff *out)
{
	size_t n = 0;

	qsort(out->rows, out->nrows, sizeof(*out->rows), cmp_lines);
	for (size_t i = 0; i < out->nrows; i++) {
		struct ana_hd_row *r = &out->rows[i], *w;

		w = n ? &out->rows[n - 1] : NULL;
		if (!w || !r->file || !w->file || w->line != r->line ||
		    strcmp(w->file, r->file)) {
			out->rows[n++] = *r;
			continue;
		}
		w->count += r->count;
		w->bytes += r->bytes;
		w->by_shape += r->by_shape;
		w->sites += r->sites;
		if ((r->method && list_add(&w->method, r->method) < 0) ||
		    (r->type && list_add(&w->type, r->type) < 0) ||
		    (r->cls && list_add(&w->cls, r->cls) < 0))
			return -1;
		free(r->file);
		free(r->method);
		free(r->type);
		free(r->cls);
	}
	out->nrows = n;
	return 0;
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
	if (out->by == ANA_HD_BY_SITE && out->method == ANA_HD_SITES &&
	    merge_lines(out) < 0)
		return -1;
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
	case ANA_HD_BY_METHOD:
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

	if (ana__hd_tab_init(&S, 5, SV_NV) < 0)
		return -1;
	rc = c->n == 3 ? sites_three(c, out, &S) : sites_two(c, out, &S);
	for (size_t i = 0; !rc && i < S.n; i++) {
		uint64_t *k = TAB_KEY(&S, i), *v = TAB_VAL(&S, i), g[5], *gv;

		group_key(out->by, true, k[0], k[1], k[2], k[3], k[4], g);
		if (!(gv = ana__hd_tab_add(G, g))) {
			rc = -1;
			break;
		}
		gv[GV_N] += v[SV_N];
		gv[GV_BYTES] += v[SV_BYTES];
		gv[GV_SHAPE] += v[SV_SHAPE];
		gv[GV_SITES]++;
	}
	ana__hd_tab_release(&S);
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
			if (c->oom || !(gv = ana__hd_tab_add(G, g)))
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
		if (d[1]->after == out->after_gen && !d[1]->old)
			out->same_gen = d[1]->st.same_gen;
		out->same_gen_new = d[1]->st.same_gen_new;
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
	if (ana__hd_strs_init(&c.str) < 0)
		return lp_err_set(err, LP_ENOMEM, "heap diff: out of memory");
	c.d = d;
	c.n = n;
	for (size_t i = 0; i < n; i++) {
		c.tr[i] = malloc(d[i]->str.n * sizeof(uint32_t));
		if (!c.tr[i])
			goto out_str;
		memset(c.tr[i], 0xff, d[i]->str.n * sizeof(uint32_t));
	}
	if (ana__hd_tab_init(&G, 5, GV_NV) < 0)
		goto out_str;
	if (out->method == ANA_HD_SITES)
		rc = diff_sites(&c, out, &G);
	else
		rc = diff_classes(&c, out, &G);
	if (!rc)
		rc = make_rows(&c, out, &G);
	if (!rc)
		rc = ana__hg_diff(d[n - 1], n, out);
	ana__hd_tab_release(&G);
out_str:
	for (size_t i = 0; i < n; i++)
		free(c.tr[i]);
	ana__hd_strs_release(&c.str);
	if (rc) {
		ana_hd_diff_release(out);
		return lp_err_set(err, LP_ENOMEM, "heap diff: out of memory");
	}
	return 0;
}
