#include "analysis/analysis.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/*
 * Growth statistics and the leak verdict of `leakprobe attach`.
 *
 * Input: the batches in execution order, each holding the state after its
 * GC.start.  The delta of batch i is state[i] - state[i-1]; batch 0 has no
 * delta (warm-ups exist to provide the baseline), warm-up deltas are
 * dropped, and measured batches with calls == 0 cannot give a per-call
 * rate and are dropped too.
 *
 * Estimator.  For every metric (memory = heap+arena+anon rss, each part,
 * live slots) and every measured batch i with delta a_i and c_i calls, the
 * per-call rate is r_i = a_i / c_i.  A control batch j runs a no-op; its
 * delta d_j is the worker's own drift *per batch*.  Since
 * a_i = slope * c_i + drift + noise, the net slope is
 *
 *	slope = H(r) - H(d) * mean(1 / c_i)
 *
 * exact for equal batch sizes and close to it otherwise.  H is a robust
 * mean: values are clipped to median +- c, then averaged (a one-step
 * Huber estimate), with c = max(3 MADN, 4 pages per batch) for memory and
 * max(3 MADN, 4 objects per batch) for live slots.  Why: memory deltas
 * are heavy-tailed -- arenas trimmed, Ruby heap pages freed, a cache that
 * still fills in the first measured batches, another thread of the target
 * allocating a few MiB -- and a few such batches must not decide the
 * verdict; yet they are clipped, not dropped, so they still count a
 * little.  The page floor of c matters: rss moves in 4 KiB steps, so a
 * quiet leak of 48 B x 50 calls per batch shows as deltas of 0 or 1 page,
 * a skewed two-point distribution that trimming or a median would bias;
 * nothing within 4 pages of the median is clipped.  (Robust means do not
 * add up: heap + arena + anon need not equal mem exactly.)
 *
 * Interval.  Page-granular series make least-squares intervals far too
 * narrow, so the interval is a percentile bootstrap (NBOOT resamples,
 * fixed-seed splitmix64: reproducible).  Deltas are not independent: the
 * level read after a batch ends one delta and starts the next, so with
 * interleaved controls (A C A C) the net A - C has about twice the
 * variance an i.i.d. resampling sees.  Batches are therefore drawn in
 * circular blocks of ~sqrt(L) consecutive batches in execution order
 * (Politis and Romano), measured and control together.  With few blocks a
 * percentile interval under-covers; it is "expanded" (Hesterberg 2015):
 * quantiles Phi(-+sqrt(n/(n-1)) t(.975, n-1)) instead of 2.5/97.5 %, n
 * being the number of blocks, and widened to at least slope +- the same
 * t factor times the replicates' sd.  Memory intervals are at least
 * +-1 page over the measured calls: rss cannot show less.  On the
 * generator of tests/unit/test_growth.c (level noise or random-walk
 * noise, controls interleaved, 5-80 measured batches, 600-3000 runs
 * each) this covers the true slope in 96-98 % of runs, and a quiet target
 * gets a "native leak" verdict in 1.3-1.9 %; an i.i.d. percentile
 * bootstrap covered 84-89 %.
 *
 * Cross-checks (see decide()).  The plain mean (sum of net deltas / sum
 * of calls, nothing clipped) is what the run really grew; when it
 * differs from the robust one significantly and in both halves of the
 * run, memory moves in recurring large steps and the verdict rests on
 * the plain mean.  A leak must also keep leaking in the second half,
 * and Ruby-held growth must go on without the measured batch that grew
 * most, by half its lower bound at least (see ruby_rest()).
 *
 * Verdict margins, stated in every summary:
 *  - native leak: memory lower bound > 0 and at least MIN_LEAK_PAGES
 *    pages of growth over the run, live slots not growing (lower bound
 *    <= ANA_VERDICT_SLOT_MARGIN per call);
 *  - ruby-object leak: live-slot lower bound > ANA_VERDICT_SLOT_MARGIN
 *    (0.01 objects, i.e. one retained object per 100 calls) per call,
 *    whatever memory does: slots are exact counts after a full GC, and
 *    Ruby reuses free slots before rss grows;
 *  - no leak: memory upper bound < ANA_VERDICT_MEM_FLOOR (16 B) per
 *    call, half the smallest leak DESIGN asks to catch (32 B/call), so
 *    a run whose interval covers a 32 B/call leak cannot say "no leak";
 *  - inconclusive otherwise, or with fewer than ANA_VERDICT_MIN_BATCHES
 *    measured (and control) batches; more_calls_needed assumes the point
 *    estimate holds and the interval shrinks as 1/sqrt(calls).
 */

#define PAGE		4096.0
#define CLIP_MADN	3.0	/* clip at median +- this many MADN ... */
#define CLIP_PAGES	4.0	/* ... but never closer than 4 pages */
#define CLIP_SLOTS	4.0	/* ... or 4 live objects */
#define NBOOT		2000
#define SEED		0x6c65616b70726f62ULL	/* "leakprob" */
#define MIN_LEAK_PAGES	2	/* a leak grows at least this many pages */
#define MAX_MORE	100	/* cap on more_calls_needed, in runs */
#define MAX_BLOCK	8	/* longest bootstrap block, in batches */

enum { M_MEM, M_HEAP, M_ARENA, M_ANON, M_SLOTS, M_RUBY, M_NATIVE,
       NMETRIC };
#define M_MEAN NMETRIC		/* plain-mean native slope, in estimates */
#define M_LATE (NMETRIC + 1)	/* robust native slope, second half */
#define M_DIFF (NMETRIC + 2)	/* plain mean - robust (clipped mass) */
#define M_RLATE (NMETRIC + 3)	/* robust Ruby-held slope, second half */
#define NEST (NMETRIC + 4)
#define SLOT_BYTES	40.0	/* an object's slot, when Ruby's bytes are
				 * not measured */

/* One group of batches (measured or control). */
struct group {
	size_t n;
	double *v[NMETRIC];	/* per-call rate (measured), delta (control);
				 * clipped by group_prepare() */
	double *mem;		/* raw memory delta, for the mean */
	double *calls;		/* calls of each batch (measured only) */
	uint32_t *cnt;		/* bootstrap multiplicities */
	size_t total;		/* sum of cnt */
};

/* A batch in execution order: which group, which index. */
struct unit {
	struct group *g;
	uint32_t i;
};

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) (Lemire's multiply-shift; bias < n / 2^64). */
static size_t
rand_below(uint64_t *s, size_t n)
{
	return (size_t)(((unsigned __int128)splitmix64(s) * n) >> 64);
}

/* Signed difference of two unsigned byte counts. */
static double
udelta(uint64_t now, uint64_t before)
{
	return (double)(int64_t)(now - before);
}

static uint64_t
mem_of(const struct ana_batch *b)
{
	return b->heap_rss + b->arena_rss + b->anon_rss;
}

/*
 * Bytes held by Ruby objects come from ObjectSpace.count_objects_size
 * after the batch's GC; without them (objspace missing, --no-gc) each
 * new live object counts as one slot.  Native = memory - Ruby-held: the
 * malloc'd memory no Ruby object accounts for (net); or memory itself
 * when Ruby-held did not grow (see ana_verdict_compute_floor()).
 */
static void
batch_deltas(const struct ana_batch *b, double d[NMETRIC], bool rb, bool net)
{
	d[M_MEM] = udelta(mem_of(b), mem_of(b - 1));
	d[M_HEAP] = udelta(b->heap_rss, b[-1].heap_rss);
	d[M_ARENA] = udelta(b->arena_rss, b[-1].arena_rss);
	d[M_ANON] = udelta(b->anon_rss, b[-1].anon_rss);
	d[M_SLOTS] = (double)(b->live_slots - b[-1].live_slots);
	d[M_RUBY] = rb ? (double)(b->rb_bytes - b[-1].rb_bytes)
		       : d[M_SLOTS] * SLOT_BYTES;
	d[M_NATIVE] = net ? d[M_MEM] - d[M_RUBY] : d[M_MEM];
}

static void
group_free(struct group *g)
{
	int k;

	for (k = 0; k < NMETRIC; k++) {
		free(g->v[k]);
	}
	free(g->mem);
	free(g->calls);
	free(g->cnt);
	memset(g, 0, sizeof(*g));
}

static int
group_alloc(struct group *g, size_t n)
{
	size_t m = n ? n : 1;
	int k;

	memset(g, 0, sizeof(*g));
	for (k = 0; k < NMETRIC; k++) {
		g->v[k] = calloc(m, sizeof(double));
		if (!g->v[k])
			goto fail;
	}
	g->mem = calloc(m, sizeof(double));
	g->calls = calloc(m, sizeof(double));
	g->cnt = calloc(m, sizeof(uint32_t));
	if (!g->mem || !g->calls || !g->cnt)
		goto fail;
	return 0;
fail:
	group_free(g);
	return -LP_ENOMEM;
}

static int
cmp_double(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return a < b ? -1 : a > b;
}

/* Median of x[0..n), n > 0; sorts x. */
static double
median_sort(double *x, size_t n)
{
	qsort(x, n, sizeof(double), cmp_double);
	return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/*
 * Clip each metric's values to median +- c once, from the full sample:
 * c = max(CLIP_MADN * MADN, floor), the floor being CLIP_PAGES pages (or
 * CLIP_SLOTS objects) per batch, divided by the batch's calls when the
 * values are per-call rates.  The bounds are fixed for all resamples
 * (centre and scale are nuisance parameters): otherwise a resample that
 * drew a cluster of steps several times over would move the median onto
 * them.  Also resets the multiplicities to the sample itself.  Returns 0
 * or -LP_ENOMEM.
 */
static int
group_prepare(struct group *g, bool per_call)
{
	double *tmp, med, madn, unit, c;
	size_t i;
	int k;

	g->total = g->n;
	for (i = 0; i < g->n; i++)
		g->cnt[i] = 1;
	if (!g->n)
		return 0;
	tmp = malloc(g->n * sizeof(double));
	if (!tmp)
		return -LP_ENOMEM;
	for (k = 0; k < NMETRIC; k++) {
		double *v = g->v[k];

		/*
		 * Ruby's bytes are exact after a full GC and grow in
		 * steps by design (an Array or Hash doubles its buffer):
		 * the steps are the signal, so they are not clipped.
		 */
		if (k == M_RUBY)
			continue;
		memcpy(tmp, v, g->n * sizeof(double));
		med = median_sort(tmp, g->n);
		for (i = 0; i < g->n; i++)
			tmp[i] = fabs(v[i] - med);
		madn = 1.4826 * median_sort(tmp, g->n);
		unit = k == M_SLOTS ? CLIP_SLOTS :
		       k == M_RUBY ? CLIP_SLOTS * SLOT_BYTES :
		       CLIP_PAGES * PAGE;
		for (i = 0; i < g->n; i++) {
			c = fmax(CLIP_MADN * madn,
				 per_call ? unit / g->calls[i] : unit);
			v[i] = fmin(fmax(v[i], med - c), med + c);
		}
	}
	free(tmp);
	return 0;
}

/*
 * Mean of metric k over the resample in g->cnt, batches [from, to) only;
 * *w gets their weight (0: none drawn, the mean is then 0).
 */
static double
group_mean(const struct group *g, int k, size_t from, size_t to, double *w)
{
	double s = 0, t = 0;
	size_t i;

	for (i = from; i < to; i++) {
		s += g->cnt[i] * g->v[k][i];
		t += g->cnt[i];
	}
	*w = t;
	return t ? s / t : 0;
}

/*
 * Robust slope of metric k from the measured batches in half h of the
 * run (0: first, 1: second, 2: all) net of the control batches of the
 * same half (see the top of this file); NAN when no measured batch of
 * the range was drawn.  No control of the half drawn, all of them count.
 */
static double
robust_slope(const struct group *A, const struct group *C, int k, int h)
{
	size_t a0 = h == 1 ? A->n / 2 : 0, a1 = h == 0 ? A->n / 2 : A->n;
	size_t c0 = h == 1 ? C->n / 2 : 0, c1 = h == 0 ? C->n / 2 : C->n;
	double ta, tc = 0, wa, wc = 0, inv = 0;
	size_t i;

	ta = group_mean(A, k, a0, a1, &wa);
	if (!wa)
		return NAN;
	for (i = a0; i < a1; i++)
		inv += A->cnt[i] / A->calls[i];
	if (C->n) {
		tc = group_mean(C, k, c0, c1, &wc);
		if (!wc)
			tc = group_mean(C, k, 0, C->n, &wc);
	}
	return ta - tc * inv / wa;	/* inv / wa: mean of 1/calls */
}

/* All estimates for the multiplicities currently in A->cnt and C->cnt. */
static void
estimate(const struct group *A, const struct group *C, double est[NEST])
{
	double sum_mem = 0, sum_calls = 0, ctl_mem = 0;
	size_t i;
	int k;

	for (i = 0; i < A->n; i++) {
		sum_mem += A->cnt[i] * A->mem[i];
		sum_calls += A->cnt[i] * A->calls[i];
	}
	for (i = 0; i < C->n; i++)
		ctl_mem += C->cnt[i] * C->mem[i];
	if (C->total)
		ctl_mem /= (double)C->total;	/* mean drift per batch */

	for (k = 0; k < NMETRIC; k++)
		est[k] = robust_slope(A, C, k, 2);
	est[M_MEAN] = (sum_mem - (double)A->total * ctl_mem) / sum_calls;
	est[M_DIFF] = est[M_MEAN] - est[M_NATIVE];
	est[M_LATE] = robust_slope(A, C, M_NATIVE, 1);
	if (isnan(est[M_LATE]))	/* second half not drawn: stay neutral */
		est[M_LATE] = est[M_NATIVE];
	est[M_RLATE] = robust_slope(A, C, M_RUBY, 1);
	if (isnan(est[M_RLATE]))
		est[M_RLATE] = est[M_RUBY];
}

/*
 * One circular-block resample of the execution sequence: blocks of blk
 * consecutive batches from random starts until L batches are drawn.
 * Redrawn when a group that exists got nothing (possible only when the
 * run did not interleave its controls).
 */
static void
resample(const struct unit *seq, size_t L, size_t blk, struct group *A,
	 struct group *C, uint64_t *rng)
{
	size_t drawn, j, start;

	do {
		memset(A->cnt, 0, A->n * sizeof(*A->cnt));
		if (C->n)
			memset(C->cnt, 0, C->n * sizeof(*C->cnt));
		A->total = C->total = 0;
		for (drawn = 0; drawn < L; drawn += blk) {
			start = rand_below(rng, L);
			for (j = 0; j < blk; j++) {
				const struct unit *u = &seq[(start + j) % L];

				u->g->cnt[u->i]++;
				u->g->total++;
			}
		}
	} while (!A->total || (C->n && !C->total));
}

/* Two-sided 97.5 % quantile of Student's t with df degrees of freedom. */
static double
t975(size_t df)
{
	static const double tab[] = {
		12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
		2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
		2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
		2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
	};
	const double z = 1.959964;
	double d = (double)df;

	if (df >= 1 && df <= sizeof(tab) / sizeof(tab[0]))
		return tab[df - 1];
	/* Cornish-Fisher expansion; error < 1e-4 beyond 30 df. */
	return z + (z * z * z + z) / (4 * d) +
	       (5 * pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

/* Lower tail probability of the expanded percentile interval. */
static double
expanded_alpha(size_t n)
{
	double x;

	if (n < 2)
		return 0;
	x = sqrt((double)n / (double)(n - 1)) * t975(n - 1);
	return 0.5 * erfc(x / sqrt(2.0));
}

/* Quantile p of sorted x[0..n) with linear interpolation. */
static double
quantile(const double *x, size_t n, double p)
{
	double h = p * (double)(n - 1), f = floor(h);
	size_t i = (size_t)f;

	if (i + 1 >= n)
		return x[n - 1];
	return x[i] + (h - f) * (x[i + 1] - x[i]);
}

/*
 * 95 % interval from the sorted-in-place bootstrap replicates x[NBOOT] of
 * an estimate, nb being the number of independent blocks: the union of
 * the expanded percentile interval and slope +- t * sd of the replicates
 * (also expanded).  The percentile part follows skew; the t part reaches
 * beyond the replicates, which with 5-10 batches span too little.
 */
static void
interval(double *x, size_t nb, struct ana_estimate *e)
{
	double alpha = expanded_alpha(nb), mean = 0, ss = 0, hw = 0;
	size_t j;

	qsort(x, NBOOT, sizeof(double), cmp_double);
	for (j = 0; j < NBOOT; j++)
		mean += x[j];
	mean /= NBOOT;
	for (j = 0; j < NBOOT; j++)
		ss += (x[j] - mean) * (x[j] - mean);
	if (nb >= 2)
		hw = t975(nb - 1) * sqrt((double)nb / (double)(nb - 1)) *
		     sqrt(ss / (NBOOT - 1));
	e->lo = fmin(quantile(x, NBOOT, alpha), e->slope - hw);
	e->hi = fmax(quantile(x, NBOOT, 1 - alpha), e->slope + hw);
}

/* ---- summary ------------------------------------------------------- */

/* Append to a fixed buffer; output is cut at the end, never overflows. */
static void
sappend(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sappend(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* A byte figure without unit when below 1 KiB ("64", "0.31", "-2.1"). */
static void
fmt_num(double x, int want_sign, char *buf, size_t len)
{
	double a = fabs(x);
	int prec = a >= 10 ? 0 : a >= 1 ? 1 : 2;

	if (a < 0.005)
		x = 0;
	snprintf(buf, len, want_sign ? "%+.*f" : "%.*f", prec, x);
}

/* "+64 B" or "+1.50 KiB". */
static void
fmt_bytes(double x, int want_sign, char *buf, size_t len)
{
	char n[24];

	if (fabs(x) >= 1024) {
		lp_human_bytes(x, want_sign, buf, len);
		return;
	}
	fmt_num(x, want_sign, n, sizeof(n));
	snprintf(buf, len, "%s B", n);
}

/* "61 to 67 B" (or with a unit on each bound when one is >= 1 KiB). */
static void
fmt_bytes_ci(const struct ana_estimate *e, char *buf, size_t len)
{
	char lo[32], hi[32];

	if (fabs(e->lo) >= 1024 || fabs(e->hi) >= 1024) {
		fmt_bytes(e->lo, 0, lo, sizeof(lo));
		fmt_bytes(e->hi, 0, hi, sizeof(hi));
		snprintf(buf, len, "%s to %s", lo, hi);
		return;
	}
	fmt_num(e->lo, 0, lo, sizeof(lo));
	fmt_num(e->hi, 0, hi, sizeof(hi));
	snprintf(buf, len, "%s to %s B", lo, hi);
}

static void
fmt_slots(double x, int want_sign, char *buf, size_t len)
{
	double a = fabs(x);
	int prec = a >= 10 ? 1 : a >= 0.1 ? 2 : 3;

	if (a < 0.0005)
		x = 0;
	snprintf(buf, len, want_sign ? "%+.*f" : "%.*f", prec, x);
}

/* 20000 -> "20,000". */
static void
fmt_count(uint64_t v, char *buf, size_t len)
{
	char tmp[32];
	size_t n, i, o = 0;

	n = (size_t)snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	for (i = 0; i < n && o + 2 < len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
}

/* "memory +20 B per call (95 % CI -30 to 70 B)" */
static void
say_mem(char *buf, size_t len, const char *what, const struct ana_estimate *e)
{
	char s[32], ci[80];

	fmt_bytes(e->slope, 1, s, sizeof(s));
	fmt_bytes_ci(e, ci, sizeof(ci));
	sappend(buf, len, "%s%s per call (95 %% CI %s)", what, s, ci);
}

/* What the live-slot estimate says, for the tail of a summary. */
static void
say_slots(char *buf, size_t len, const struct ana_verdict *v)
{
	const struct ana_estimate *e = &v->slots;
	char s[32], lo[32], hi[32];

	fmt_slots(e->slope, 1, s, sizeof(s));
	fmt_slots(e->lo, 0, lo, sizeof(lo));
	fmt_slots(e->hi, 0, hi, sizeof(hi));
	if (e->lo > v->slot_margin) {
		char r[32];

		fmt_bytes(v->ruby.slope, 1, r, sizeof(r));
		sappend(buf, len, "Ruby live objects %s per call (%s per "
			"call, under the %.0f B leak floor)", s, r,
			v->leak_floor);
	} else if (e->lo > 0)
		sappend(buf, len, "Ruby live objects %s per call (below the "
			"%.2f margin)", s, v->slot_margin);
	else if (e->hi <= v->slot_margin && e->lo >= -v->slot_margin)
		sappend(buf, len, "Ruby live objects flat");
	else if (e->hi < 0)
		sappend(buf, len, "Ruby live objects %s per call (freed)", s);
	else
		sappend(buf, len, "Ruby live objects %s per call (95 %% CI "
			"%s to %s, not significant)", s, lo, hi);
}

/* "[heap]/malloc arenas" -- the parts holding >= 20 % of the growth. */
static void
say_where(char *buf, size_t len, const struct ana_verdict *v)
{
	static const char *const name[] = {
		"[heap]", "malloc arenas", "other anonymous memory"
	};
	double g[3] = { v->heap.slope, v->arena.slope, v->anon.slope };
	double pos = 0;
	int i, said = 0;

	for (i = 0; i < 3; i++)
		pos += g[i] > 0 ? g[i] : 0;
	for (i = 0; i < 3 && pos > 0; i++) {
		if (g[i] < 0.2 * pos)
			continue;
		sappend(buf, len, "%s%s", said ? "/" : "", name[i]);
		said = 1;
	}
	if (!said)
		sappend(buf, len, "memory");
}

/* ---- decision ------------------------------------------------------ */

/*
 * Calls (in total) that would decide the memory question if the point
 * estimate held and the interval shrank as 1/sqrt(calls): either the
 * lower bound clears 0 (with MIN_LEAK_PAGES of growth), or the upper
 * bound drops under the floor, whichever comes first.
 */
static double
calls_to_decide(const struct ana_estimate *e, double floor_bpc, double N)
{
	double s = e->slope, best = INFINITY, need;

	if (s > 0) {
		need = e->lo > 0 ? N : N * pow((s - e->lo) / s, 2);
		need = fmax(need, MIN_LEAK_PAGES * PAGE / s);
		best = fmin(best, need);
	}
	if (s < floor_bpc && e->hi >= floor_bpc) {
		/* A negative slope is noise as often as not: do not count
		 * on it to pull the upper bound down. */
		need = N * pow((e->hi - s) / (floor_bpc - fmax(s, 0)), 2);
		best = fmin(best, need);
	}
	return best;
}

/*
 * Extra calls, in whole batches of `per_batch`, at least one batch, at
 * most MAX_MORE runs' worth (*capped is then set: the estimate only says
 * "a lot more").
 */
static uint64_t
more_calls(double total_needed, double N, double per_batch, bool *capped)
{
	double more = total_needed - N;
	double cap;

	if (per_batch < 1)
		per_batch = 1;
	cap = MAX_MORE * fmax(N, ANA_VERDICT_MIN_BATCHES * per_batch);
	*capped = !(more < cap);	/* also catches inf and nan */
	if (*capped)
		more = cap;
	if (more < per_batch)
		more = per_batch;
	return (uint64_t)(ceil(more / per_batch) * per_batch);
}

/*
 * The interval of the Ruby-held slope from the controls' noise alone.
 * After a full GC Ruby's bytes are exact: a measured batch's delta is
 * the snippet's growth plus what the target's other threads held at
 * that instant, and the controls measure the latter.  Buffers that
 * double (an Array, a Hash) make the growth come in steps; a bootstrap
 * would take those for noise.  With na measured batches, nc controls of
 * variance s2 and N calls: se^2 = s2 na (1 + na / nc) / N^2.  A growth
 * that stops (a cache filled) is caught by the second-half check.
 */
static void
ruby_interval(struct ana_estimate *e, const struct group *C, size_t na,
	      double N)
{
	double mean = 0, ss = 0, se, t;
	size_t i;

	for (i = 0; i < C->n; i++)
		mean += C->v[M_RUBY][i];
	mean /= (double)C->n;
	for (i = 0; i < C->n; i++)
		ss += (C->v[M_RUBY][i] - mean) * (C->v[M_RUBY][i] - mean);
	se = sqrt(ss / (double)(C->n - 1) * (double)na *
		  (1 + (double)na / (double)C->n)) / N;
	t = t975(C->n - 1);
	e->lo = e->slope - t * se;
	e->hi = e->slope + t * se;
}

/*
 * The Ruby-held slope without the measured batch that grew most: the
 * other batches' deltas net of the controls' mean drift, over their
 * calls (*calls).  A one-off step (a thread of the target that starts
 * and gets its stack, a buffer resized once) sits in one batch; a leak
 * grows in the others too.  Sizes are exact and the controls of a quiet
 * target are flat: without this check, the step alone would be a leak
 * with an interval of zero width.
 */
static double
ruby_rest(const struct group *A, const struct group *C, double *calls)
{
	double sum = 0, drift = 0, top = -INFINITY;
	size_t i, ti = 0;

	*calls = 0;
	for (i = 0; i < A->n; i++) {
		double d = A->v[M_RUBY][i] * A->calls[i];

		if (d > top) {
			top = d;
			ti = i;
		}
	}
	for (i = 0; i < A->n; i++) {
		if (i == ti)
			continue;
		sum += A->v[M_RUBY][i] * A->calls[i];
		*calls += A->calls[i];
	}
	for (i = 0; i < C->n; i++)
		drift += C->v[M_RUBY][i];
	if (C->n)
		sum -= drift / (double)C->n * (double)(A->n - 1);
	return *calls > 0 ? sum / *calls : 0;
}

/* Plain-mean slope of A[a0, a1) net of the drift of C[c0, c1). */
static double
mean_slope(const struct group *A, size_t a0, size_t a1,
	   const struct group *C, size_t c0, size_t c1)
{
	double mem = 0, calls = 0, drift = 0;
	size_t i;

	for (i = a0; i < a1; i++) {
		mem += A->mem[i];
		calls += A->calls[i];
	}
	for (i = c0; i < c1; i++)
		drift += C->mem[i];
	if (c1 > c0)
		mem -= drift / (double)(c1 - c0) * (double)(a1 - a0);
	return calls > 0 ? mem / calls : 0;
}

/* The plain-mean slope of each half of the run (see decide()). */
static void
half_slopes(const struct group *A, const struct group *C, double half[2])
{
	size_t ha = A->n / 2, hc = C->n / 2;

	/* A half without controls borrows all of them. */
	half[0] = hc ? mean_slope(A, 0, ha, C, 0, hc)
		     : mean_slope(A, 0, ha, C, 0, C->n);
	half[1] = C->n - hc ? mean_slope(A, ha, A->n, C, hc, C->n)
			    : mean_slope(A, ha, A->n, C, 0, C->n);
}

/* "Ruby live objects +0.02 per call (0.6 B per call)" -- for a summary. */
static void
say_ruby_bytes(char *buf, size_t len, const struct ana_verdict *v)
{
	char s[32];

	if (v->ruby.lo <= 0 && v->ruby.hi >= 0)
		return;
	fmt_bytes(v->ruby.slope, 1, s, sizeof(s));
	sappend(buf, len, ", Ruby-held %s per call", s);
}

/* ", mostly Array (1.2 MiB -> 1.5 MiB)" when one type holds most. */
static void
say_type(char *buf, size_t len, const struct ana_verdict *v)
{
	char a[32], b[32];

	if (v->rb_type < 0 || v->rb_type_bpc < 0.5 * v->ruby.slope)
		return;
	lp_human_bytes((double)v->rb_type_before, 0, a, sizeof(a));
	lp_human_bytes((double)v->rb_type_after, 0, b, sizeof(b));
	sappend(buf, len, ", mostly %s (%s -> %s)",
		ana_rb_type_name(v->rb_type), a, b);
}

/*
 * "; one Array grew 243.5 KiB -> 321.6 KiB (allocated at app.rb:12)",
 * when one object holds at least half of the Ruby-held growth.
 */
static void
say_grower(char *buf, size_t len, const struct ana_verdict *v)
{
	char a[32], b[32];
	double g = (double)(v->grower_after - v->grower_before);

	if (!v->grower_id || g < 0.5 * v->ruby.slope *
	    (double)v->measured_calls)
		return;
	lp_human_bytes((double)v->grower_before, 0, a, sizeof(a));
	lp_human_bytes((double)v->grower_after, 0, b, sizeof(b));
	sappend(buf, len, "; one %s grew %s -> %s", v->grower_class[0] ?
		v->grower_class : "object", a, b);
	if (v->grower_site[0])
		sappend(buf, len, " (allocated at %s)", v->grower_site);
}

/*
 * Fill kind, leak, more_calls_needed and summary from the estimates in
 * v.  nctl: control batches used; per_batch: calls per measured batch;
 * half[0], half[1]: plain-mean native slopes of the first and the second
 * half of the measured batches (execution order, controls split the
 * same way); diff: plain mean minus robust native slope.
 *
 * Every kind is judged in bytes per call against one floor
 * (v->leak_floor: --fail-on-growth, or ANA_VERDICT_LEAK_FLOOR): a leak
 * needs the lower bound of its bytes at or above it.  Ruby-held bytes
 * are checked first: they are exact counts after a full GC, and Ruby
 * fills free slots and grows buffers before rss shows anything.  New
 * live objects (live-slot lower bound above the margin) make it a
 * ruby-object leak; without them the objects that exist grow.
 */
static void
decide(struct ana_verdict *v, size_t nctl, double per_batch,
       const double half[2],
       const struct ana_estimate *diff)
{
	struct ana_estimate *m = &v->native;
	const struct ana_estimate *mm = &v->mem_mean;
	double N = (double)v->measured_calls, F = v->leak_floor;
	char *sum = v->summary;
	size_t len = sizeof(v->summary);
	char calls[32], grew[32];
	bool mem_leak, mean_leak, slot_leak, ruby_leak, capped = false;
	bool steps = false, up, down, mem_grows;
	size_t fewest;

	fmt_count(v->measured_calls, calls, sizeof(calls));
	fewest = nctl && nctl < m->n ? nctl : m->n;
	if (fewest < ANA_VERDICT_MIN_BATCHES) {
		v->kind = ANA_INCONCLUSIVE;
		v->more_calls_needed = more_calls(N + (double)
			(ANA_VERDICT_MIN_BATCHES - fewest) * per_batch,
			N, per_batch, &capped);
		sappend(sum, len, "inconclusive: %zu measured batch%s",
			m->n, m->n == 1 ? "" : "es");
		if (nctl)
			sappend(sum, len, " and %zu control batch%s", nctl,
				nctl == 1 ? "" : "es");
		sappend(sum, len, ", need at least %d%s",
			ANA_VERDICT_MIN_BATCHES, nctl ? " of each" : "");
		goto more;
	}

	slot_leak = v->slots.lo > v->slot_margin;
	/* the levels must grow too, by half the lower bound at least */
	ruby_leak = v->ruby.lo > 0 && v->ruby.lo >= F &&
		    v->ruby_levels >= 0.5 * v->ruby.lo;
	/*
	 * One measured batch grew far more than the others (the rest grew
	 * by less than half the lower bound): without it, is there a leak
	 * still?  Then that is the leak; else the step was a one-off.
	 */
	if (ruby_leak && v->ruby_rest.slope < 0.5 * v->ruby.lo) {
		if (v->ruby_rest.lo > 0 && v->ruby_rest.lo >= F) {
			v->ruby = v->ruby_rest;
			v->rb_type = v->rb_rest_type;
			v->rb_type_bpc = v->rb_rest_bpc;
			v->rb_type_before = v->rb_rest_before;
			v->rb_type_after = v->rb_rest_after;
		} else {
			v->kind = ANA_INCONCLUSIVE;
			v->more_calls_needed = more_calls(2 * N, N, per_batch,
							  &capped);
			say_mem(sum, len, "inconclusive: Ruby-held ",
				&v->ruby);
			say_mem(sum, len, " but without the one batch that "
				"grew most ", &v->ruby_rest);
			sappend(sum, len, " over %s calls (a one-off step?)",
				calls);
			goto more;
		}
	}
	if (ruby_leak && v->ruby_late.slope <= 0) {
		/* grew, then stopped: a cache filling, not a leak */
		v->kind = ANA_INCONCLUSIVE;
		v->more_calls_needed = more_calls(2 * N, N, per_batch,
						  &capped);
		say_mem(sum, len, "inconclusive: Ruby-held ", &v->ruby);
		say_mem(sum, len, " but in the second half ", &v->ruby_late);
		sappend(sum, len, " over %s calls (still settling?)", calls);
		goto more;
	}
	if (ruby_leak) {
		v->leak = v->ruby;
		if (slot_leak) {
			v->kind = ANA_RUBY_LEAK;
			say_mem(sum, len, "ruby-object leak: ", &v->ruby);
			fmt_slots(v->slots.slope, 1, grew, sizeof(grew));
			sappend(sum, len, " held by %s new live objects per "
				"call", grew);
		} else {
			v->kind = ANA_RUBY_GROWTH;
			say_mem(sum, len, "ruby-held growth: ", &v->ruby);
			sappend(sum, len, " in objects that already exist "
				"(live objects flat)");
		}
		say_type(sum, len, v);
		if (v->kind == ANA_RUBY_GROWTH)
			say_grower(sum, len, v);
		if (!v->rb_measured)
			sappend(sum, len, " (%.0f B per new object: sizes "
				"not measured)", SLOT_BYTES);
		if (m->lo > 0 && m->lo >= F) {
			fmt_bytes(m->slope, 1, grew, sizeof(grew));
			sappend(sum, len, "; native %s per call too", grew);
		}
		sappend(sum, len, " over %s calls", calls);
		return;
	}
	/*
	 * The plain mean differs from the robust one significantly (the
	 * interval of their difference, bootstrapped on the same resamples,
	 * excludes 0) when a few batches move by far more than the rest:
	 * large steps up (typical batches flat, the total grows) or large
	 * drops (typical batches grow, the total does not: a sawtooth).
	 * Steps close together (a cache filling at the start) fall into one
	 * or two bootstrap blocks and are not significant; spread-out ones
	 * are.  When both halves of the run show the excess, the steps
	 * recur: they are how this process grows or shrinks, and the
	 * verdict rests on the plain mean (native becomes mem_mean).  When
	 * only one half does, it may be a one-off; if the two would then
	 * decide differently, the verdict is inconclusive, and a run twice
	 * as long dilutes the one-off.
	 */
	/*
	 * Native is memory less Ruby-held.  When Ruby-held shrinks (other
	 * threads held fewer objects at the reads after measured batches
	 * than after controls), native comes out above what memory did:
	 * a native leak also needs memory itself to grow, by half the
	 * native lower bound at least.
	 */
	up = diff->lo > 0;
	down = diff->hi < 0;
	mem_grows = v->mem.slope >= 0.5 * m->lo;
	mem_leak = m->lo > 0 && m->lo >= F && mem_grows &&
		   m->slope * N >= MIN_LEAK_PAGES * PAGE;
	mean_leak = mm->lo > 0 && mm->lo >= F && mem_grows &&
		    mm->slope * N >= MIN_LEAK_PAGES * PAGE;
	if ((up && half[0] > m->hi && half[1] > m->hi) ||
	    (down && half[0] < m->lo && half[1] < m->lo)) {
		*m = *mm;
		steps = true;
	} else if ((up && !mem_leak && mean_leak) ||
		   (down && mem_leak && !mean_leak)) {
		v->kind = ANA_INCONCLUSIVE;
		v->more_calls_needed = more_calls(2 * N, N, per_batch,
						  &capped);
		say_mem(sum, len, "inconclusive: typical batches ", m);
		say_mem(sum, len, " but overall ", mm);
		sappend(sum, len, " over %s calls (a few large %s)", calls,
			up ? "steps" : "drops");
		goto more;
	}
	mem_leak = m->lo > 0 && m->lo >= F &&
		   (steps || v->mem.slope >= 0.5 * m->lo) &&
		   m->slope * N >= MIN_LEAK_PAGES * PAGE;

	/*
	 * A leak keeps leaking: when the second half of the run shows no
	 * growth at all, the first half's was the process still settling
	 * (a warm-up too short for a cache, say); a longer run tells, or a
	 * longer --warmup.  Only the point estimate is asked for: demanding
	 * a significant second half would halve the power (a 16 B/call
	 * leak over 20 batches would be found in half of the runs instead
	 * of all).  Recurring steps were checked per half above.
	 */
	if (mem_leak && !steps && v->mem_late.slope <= 0) {
		v->kind = ANA_INCONCLUSIVE;
		v->more_calls_needed = more_calls(2 * N, N, per_batch,
						  &capped);
		say_mem(sum, len, "inconclusive: native ", m);
		say_mem(sum, len, " but in the second half ", &v->mem_late);
		sappend(sum, len, " over %s calls (still settling?)", calls);
		goto more;
	}
	if (mem_leak) {
		v->kind = ANA_NATIVE_LEAK;
		v->leak = *m;
		say_mem(sum, len, "native leak: ", m);
		sappend(sum, len, "%s; ", steps ? " in large steps" : "");
		say_where(sum, len, v);
		fmt_bytes(m->slope * N, 0, grew, sizeof(grew));
		sappend(sum, len, " grew %s over %s calls; ", grew, calls);
		say_slots(sum, len, v);
		say_ruby_bytes(sum, len, v);
		return;
	}
	if (m->hi < v->mem_floor && v->ruby.hi < v->mem_floor) {
		v->kind = ANA_NO_LEAK;
		say_mem(sum, len, "no leak: native ", m);
		sappend(sum, len, "%s, Ruby-held ", steps ? " (large steps)"
			: "");
		fmt_bytes(v->ruby.slope, 1, grew, sizeof(grew));
		sappend(sum, len, "%s per call over %s calls, below the "
			"%.0f B floor; ", grew, calls, v->mem_floor);
		say_slots(sum, len, v);
		return;
	}
	v->kind = ANA_INCONCLUSIVE;
	if (v->ruby.hi >= v->mem_floor && m->hi < v->mem_floor)
		m = &v->ruby;
	v->more_calls_needed = more_calls(calls_to_decide(m, v->mem_floor, N),
					  N, per_batch, &capped);
	say_mem(sum, len, m == &v->ruby ? "inconclusive: Ruby-held "
		: "inconclusive: native ", m);
	if (m == &v->native && m->lo > 0 && m->lo >= F &&
	    v->mem.slope < 0.5 * m->lo)
		sappend(sum, len, " over %s calls, but memory itself did not "
			"grow (Ruby-held fell)", calls);
	else
		sappend(sum, len, " over %s calls, neither above %s nor below "
			"the %.0f B floor", calls, F > 0 ? "the leak floor" :
			"0", v->mem_floor);
more:
	fmt_count(v->more_calls_needed, calls, sizeof(calls));
	if (v->more_calls_needed)
		sappend(sum, len, "; run %s %s more calls",
			capped ? "over" : "about", calls);
}


/* ---- entry point --------------------------------------------------- */

/*
 * Estimate per-call growth from the batches b[0..n) (execution order,
 * caller-owned, read only) and decide; *out (caller-owned) is always
 * filled, summary included.  Returns 0; -LP_EINVAL with out->kind
 * INCONCLUSIVE when fewer than two measured batches have a delta (or out
 * is NULL); -LP_ENOMEM.  Deterministic: same input, same output.
 */
int
ana_verdict_compute(const struct ana_batch *b, size_t n,
		    struct ana_verdict *out)
{
	return ana_verdict_compute_floor(b, n, ANA_VERDICT_LEAK_FLOOR, out);
}

/*
 * Which Ruby type holds most of the Ruby-held growth (plain means, net of
 * the controls' drift), and its bytes before and after the measured
 * batches.  rbt[0]: sums of the measured batches' deltas per type,
 * rbt[1]: of the controls'.  skip: a measured batch left out (0: none),
 * for the growth without the batch that grew most (see ruby_rest()).
 * The result goes to *type, *bpc, *before, *after.
 */
static void
rb_what_grows(const struct ana_verdict *v, const struct ana_batch *b,
	      size_t n, double rbt[2][ANA_RB_NTYPES], size_t na, size_t nc,
	      size_t skip, int *type, double *bpc, int64_t *before,
	      int64_t *after)
{
	double best = 0, calls = (double)v->measured_calls;
	size_t first = 0, last = 0, i;

	*type = -1;
	if (skip) {
		calls -= (double)b[skip].calls;
		na--;
	}
	if (!v->rb_measured || calls <= 0)
		return;
	for (int k = 0; k < ANA_RB_NTYPES; k++) {
		double s = rbt[0][k];

		if (skip)
			s -= (double)(b[skip].rb_types[k] -
				      b[skip - 1].rb_types[k]);
		if (nc)
			s -= rbt[1][k] / (double)nc * (double)na;
		s /= calls;
		if (s > best) {
			best = s;
			*type = k;
			*bpc = s;
		}
	}
	if (*type < 0)
		return;
	for (i = 1; i < n; i++) {
		if (b[i].warmup || b[i].control || !b[i].calls)
			continue;
		if (!first)
			first = i;
		last = i;
	}
	if (first) {
		*before = b[first - 1].rb_types[*type];
		*after = b[last].rb_types[*type];
	}
}

/*
 * The object that grew most over the measured batches: each batch names
 * the big buffer that grew most in it (ana_batch.grew_*); per object,
 * its growth is summed over the measured batches that name it, and the
 * largest sum wins, with its bytes at the first of them and after the
 * last.  Control batches are left out: what grows there is the target's
 * own.
 */
static void
rb_grower(struct ana_verdict *v, const struct ana_batch *b, size_t n)
{
	double best = 0;

	v->grower_id = 0;
	for (size_t i = 1; i < n; i++) {
		double sum = 0;
		size_t first = 0, last = 0;
		bool seen = false;

		if (b[i].warmup || b[i].control || !b[i].calls ||
		    !b[i].grew_id)
			continue;
		for (size_t j = 1; j < i; j++)	/* counted already */
			if (!b[j].warmup && !b[j].control && b[j].calls &&
			    b[j].grew_id == b[i].grew_id)
				seen = true;
		if (seen)
			continue;
		for (size_t j = i; j < n; j++) {
			if (b[j].warmup || b[j].control || !b[j].calls ||
			    b[j].grew_id != b[i].grew_id)
				continue;
			if (!first)
				first = j;
			last = j;
			sum += (double)(b[j].grew_after - b[j].grew_before);
		}
		if (sum > best) {
			best = sum;
			v->grower_id = b[i].grew_id;
			v->grower_before = b[first].grew_before;
			v->grower_after = b[last].grew_after;
			memcpy(v->grower_class, b[first].grew_class,
			       sizeof(v->grower_class));
			v->grower_class[sizeof(v->grower_class) - 1] = '\0';
			memcpy(v->grower_site, b[first].grew_site,
			       sizeof(v->grower_site));
			v->grower_site[sizeof(v->grower_site) - 1] = '\0';
		}
	}
}

/*
 * Ruby-held bytes per call from the levels alone: after the last
 * measured batch less before the first, over the measured calls.  A
 * level that alternates between measured and control batches (an
 * artifact: some state of the target differs after the two kinds) makes
 * every measured delta positive and every control delta negative, which
 * the delta estimator takes for growth; the levels do not grow.
 */
static double
ruby_by_levels(const struct ana_batch *b, size_t n, bool rb, double N)
{
	size_t first = 0, last = 0;

	for (size_t i = 1; i < n; i++) {
		if (b[i].warmup || b[i].control || !b[i].calls)
			continue;
		if (!first)
			first = i;
		last = i;
	}
	if (!first || N <= 0)
		return 0;
	if (rb)
		return (double)(b[last].rb_bytes - b[first - 1].rb_bytes) / N;
	return (double)(b[last].live_slots - b[first - 1].live_slots) *
	       SLOT_BYTES / N;
}

/* Name of Ruby type k of ana_batch.rb_types ("Array"; static). */
const char *
ana_rb_type_name(int k)
{
	static const char *const name[ANA_RB_NTYPES] = {
		"String", "Array", "Hash", "Object", "Data", "Struct"
	};

	return k >= 0 && k < ANA_RB_NTYPES ? name[k] : "?";
}

static int
compute(const struct ana_batch *b, size_t n, double leak_floor,
	struct ana_verdict *out, bool net)
{
	struct group A, C;
	struct unit *seq = NULL;
	struct ana_estimate *dst[NEST], diff;
	double *boot = NULL, d[NMETRIC], est[NEST], N, q, per, half[2];
	uint64_t rng = SEED, any_calls = 0, nany = 0;
	double rbt[2][ANA_RB_NTYPES] = { { 0 } }, ctl_mem = 0;
	size_t i, r, na = 0, nc = 0, L = 0, blk, top;
	int k, rc = 0;

	if (!out)
		return -LP_EINVAL;
	memset(out, 0, sizeof(*out));
	out->kind = ANA_INCONCLUSIVE;
	out->slot_margin = ANA_VERDICT_SLOT_MARGIN;
	out->leak_floor = leak_floor > 0 ? leak_floor : 0;
	out->mem_floor = fmax(ANA_VERDICT_MEM_FLOOR, out->leak_floor);
	out->rb_type = -1;
	if (!b)
		n = 0;

	for (i = 0; i < n; i++) {
		any_calls += b[i].calls;
		nany += b[i].calls != 0;
		if (i == 0 || b[i].warmup)
			continue;
		if (b[i].control)
			nc++;
		else if (b[i].calls)
			na++;
	}
	memset(&A, 0, sizeof(A));
	memset(&C, 0, sizeof(C));
	seq = calloc(na + nc + 1, sizeof(*seq));
	if (!seq || group_alloc(&A, na) < 0 || group_alloc(&C, nc) < 0) {
		rc = -LP_ENOMEM;
		goto out;
	}

	/* Ruby's bytes count only when every delta has both ends. */
	out->rb_measured = n > 1;
	for (i = 1; i < n; i++) {
		if (b[i].warmup || (!b[i].control && !b[i].calls))
			continue;
		if (b[i].rb_bytes < 0 || b[i - 1].rb_bytes < 0)
			out->rb_measured = false;
	}
	for (i = 1; i < n; i++) {
		struct group *g;

		if (b[i].warmup || (!b[i].control && !b[i].calls))
			continue;
		g = b[i].control ? &C : &A;
		batch_deltas(&b[i], d, out->rb_measured, net);
		for (k = 0; k < NMETRIC; k++)
			g->v[k][g->n] = b[i].control ? d[k]
				       : d[k] / (double)b[i].calls;
		g->mem[g->n] = d[M_NATIVE];
		g->calls[g->n] = (double)b[i].calls;
		if (out->rb_measured)
			for (k = 0; k < ANA_RB_NTYPES; k++)
				rbt[!!b[i].control][k] += (double)
					(b[i].rb_types[k] -
					 b[i - 1].rb_types[k]);
		if (!b[i].control) {
			out->measured_calls += b[i].calls;
			out->total_growth += d[M_MEM];
		} else {
			ctl_mem += d[M_MEM];
		}
		seq[L].g = g;
		seq[L++].i = (uint32_t)g->n++;
	}
	N = (double)out->measured_calls;
	out->controls = C.n;
	dst[M_MEM] = &out->mem;
	dst[M_HEAP] = &out->heap;
	dst[M_ARENA] = &out->arena;
	dst[M_ANON] = &out->anon;
	dst[M_SLOTS] = &out->slots;
	dst[M_RUBY] = &out->ruby;
	dst[M_NATIVE] = &out->native;
	dst[M_RLATE] = &out->ruby_late;
	dst[M_MEAN] = &out->mem_mean;
	dst[M_LATE] = &out->mem_late;
	dst[M_DIFF] = &diff;
	for (k = 0; k < NEST; k++)
		dst[k]->n = A.n;
	out->mem_late.n = A.n - A.n / 2;
	out->ruby_late.n = A.n - A.n / 2;

	/* Net observed growth: measured deltas minus the control drift. */
	if (C.n)
		out->total_growth -= ctl_mem / (double)C.n * (double)A.n;
	rb_what_grows(out, b, n, rbt, A.n, C.n, 0, &out->rb_type,
		      &out->rb_type_bpc, &out->rb_type_before,
		      &out->rb_type_after);
	/* the measured batch whose Ruby-held bytes grew most */
	for (i = 1, top = 0; i < n; i++)
		if (!b[i].warmup && !b[i].control && b[i].calls &&
		    b[i].rb_bytes >= 0 && b[i - 1].rb_bytes >= 0 &&
		    (!top || b[i].rb_bytes - b[i - 1].rb_bytes >
			     b[top].rb_bytes - b[top - 1].rb_bytes))
			top = i;
	out->rb_rest_type = -1;
	if (top && A.n >= 2)
		rb_what_grows(out, b, n, rbt, A.n, C.n, top,
			      &out->rb_rest_type, &out->rb_rest_bpc,
			      &out->rb_rest_before, &out->rb_rest_after);
	rb_grower(out, b, n);
	out->ruby_levels = ruby_by_levels(b, n, out->rb_measured, N);

	/* Batch size for "more calls": the measured one, else any. */
	per = A.n ? N / (double)A.n
		  : nany ? (double)any_calls / (double)nany : 0;

	if (A.n < 2) {
		bool capped;

		/* Nothing to fit: say what is missing and stop. */
		out->more_calls_needed = per > 0 ? more_calls(
			N + (double)(ANA_VERDICT_MIN_BATCHES - A.n) * per,
			N, per, &capped) : 0;
		if (!nany)
			snprintf(out->summary, sizeof(out->summary),
				 "inconclusive: no batch ran any call");
		else
			snprintf(out->summary, sizeof(out->summary),
				 "inconclusive: %zu measured batch%s after "
				 "warm-up, need at least %d", A.n,
				 A.n == 1 ? "" : "es",
				 ANA_VERDICT_MIN_BATCHES);
		if (out->more_calls_needed) {
			char c[32];

			fmt_count(out->more_calls_needed, c, sizeof(c));
			sappend(out->summary, sizeof(out->summary),
				"; run about %s more calls", c);
		}
		rc = -LP_EINVAL;
		goto out;
	}

	if (group_prepare(&A, true) < 0 || group_prepare(&C, false) < 0) {
		rc = -LP_ENOMEM;
		goto out;
	}
	estimate(&A, &C, est);
	for (k = 0; k < NEST; k++)
		dst[k]->slope = est[k];

	boot = calloc((size_t)NBOOT * NEST, sizeof(double));
	if (!boot) {
		rc = -LP_ENOMEM;
		goto out;
	}
	/*
	 * Block length ~ sqrt(L), 2..MAX_BLOCK.  The level shared by two
	 * adjacent deltas is lag-1 dependence; longer blocks also keep
	 * slower drifts, at the price of fewer independent blocks, which
	 * the expanded interval below pays for.
	 */
	blk = (size_t)lround(sqrt((double)L));
	blk = blk < 2 ? 2 : blk > MAX_BLOCK ? MAX_BLOCK : blk;
	if (blk > L)
		blk = L;
	for (r = 0; r < NBOOT; r++) {
		resample(seq, L, blk, &A, &C, &rng);
		estimate(&A, &C, est);
		for (k = 0; k < NEST; k++)
			boot[(size_t)k * NBOOT + r] = est[k];
	}
	q = PAGE / N;	/* rss cannot resolve less than a page per run */
	for (k = 0; k < NEST; k++) {
		struct ana_estimate *e = dst[k];

		interval(boot + (size_t)k * NBOOT,
			 k == M_LATE || k == M_RLATE ? L / blk / 2 : L / blk,
			 e);
		/* Ruby's bytes are exact counts, not resident pages */
		if (k != M_SLOTS && k != M_RUBY && k != M_RLATE) {
			double qk = k == M_LATE ? 2 * q : q;

			e->lo = fmin(e->lo, e->slope - qk);
			e->hi = fmax(e->hi, e->slope + qk);
		}
	}
	if (C.n >= 2)
		ruby_interval(&out->ruby, &C, A.n, N);
	/* its half width grows as 1 / calls: a little wider than needed */
	out->ruby_rest.slope = ruby_rest(&A, &C, &q);
	out->ruby_rest.n = A.n - 1;
	q = q > 0 ? (out->ruby.slope - out->ruby.lo) * N / q : INFINITY;
	out->ruby_rest.lo = out->ruby_rest.slope - q;
	out->ruby_rest.hi = out->ruby_rest.slope + q;
	half_slopes(&A, &C, half);
	decide(out, C.n, per, half, &diff);
out:
	if (rc == -LP_ENOMEM)
		snprintf(out->summary, sizeof(out->summary),
			 "inconclusive: out of memory for %zu batches", n);
	free(boot);
	free(seq);
	group_free(&A);
	group_free(&C);
	return rc;
}

/* Lowercase name of a verdict kind (static string). */
const char *
ana_verdict_name(enum ana_verdict_kind k)
{
	switch (k) {
	case ANA_NO_LEAK:
		return "no leak";
	case ANA_NATIVE_LEAK:
		return "native leak";
	case ANA_RUBY_LEAK:
		return "ruby-object leak";
	case ANA_INCONCLUSIVE:
		return "inconclusive";
	case ANA_RUBY_GROWTH:
		return "ruby-held growth";
	}
	return "unknown";
}

/*
 * Native is memory less Ruby-held where Ruby-held grew: significantly,
 * and its levels too (the tests of a Ruby-held leak, less the floor),
 * or by half of what memory grew at least.  Elsewhere Ruby-held moves
 * by what the target's other threads hold at the instant of each read --
 * objects in slots of pages that exist, not in rss -- and subtracting it
 * would only add that noise to native: native is then memory itself.
 * (On a noisy target, +-9 KiB per read against 32 KiB of leak per batch
 * made 5 of 120 runs of a 32 B/call native leak inconclusive.)
 */
int
ana_verdict_compute_floor(const struct ana_batch *b, size_t n,
			  double leak_floor, struct ana_verdict *out)
{
	int rc = compute(b, n, leak_floor, out, true);

	if (rc == 0 && !(out->ruby.lo > 0 &&
			 out->ruby_levels >= 0.5 * out->ruby.lo) &&
	    out->ruby.slope < 0.5 * out->mem.slope)
		rc = compute(b, n, leak_floor, out, false);
	return rc;
}
