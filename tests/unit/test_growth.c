/*
 * Unit tests for analysis/growth.c: per-batch growth statistics and the
 * leak verdict of `attach`, on synthetic batch series.  Each series is
 * generated here with a fixed-seed PRNG: a true level per memory part
 * (leak + drift + jumps) plus level noise, rounded up to 4 KiB pages as
 * rss is, and live slots with their own noise.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

#define PAGE 4096.0
#define MiB (1024.0 * 1024.0)

struct scenario {
	uint64_t seed;
	size_t warmups, measured;	/* batch counts */
	uint64_t batch;			/* calls per batch */
	uint64_t last_batch;		/* calls of the last measured, or 0 */
	bool controls;			/* interleave A C A C ... */
	double leak;			/* bytes per call of the snippet ... */
	size_t leak_until;		/* ... in measured batches before this
					 * one (0: all), then: */
	double late_leak;		/* bytes per call */
	double to_heap, to_arena;	/* shares of the leak; rest is anon */
	double slots;			/* live slots per call */
	double drift, slot_drift;	/* per batch of any kind */
	double warm_growth;		/* extra bytes per warm-up batch */
	double first_growth;		/* extra in the first measured ... */
	size_t first_n;			/* ... batches (0 means 1) */
	double jitter;			/* +- bytes on each part's level */
	double slot_jitter;		/* +- slots on the level */
	double jump_p, jump_lo, jump_hi;	/* persistent +- anon jumps */
	size_t step_every;		/* a measured step every k batches */
	size_t step_until;		/* ... before this one (0: all) */
	double step;			/* ... of this many bytes */
	double rand_walk;		/* +- bytes per batch, uniform */
	double rb_grow;			/* bytes per call that objects which
					 * exist grow by (in [heap] too) */
	bool rb_unknown;		/* Ruby's bytes not measured */
	bool rb_not_in_rss;		/* rb_grow does not show in memory */
};

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double
rng_sym(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0 * 2 - 1;
}

static uint64_t
page_up(double bytes)
{
	if (bytes < 0)
		bytes = 0;
	return (uint64_t)(ceil(bytes / PAGE) * PAGE);
}

/* Build the batch series of a scenario; caller frees *out. */
static size_t
generate(const struct scenario *sc, struct ana_batch **out)
{
	size_t n = sc->warmups + sc->measured * (sc->controls ? 2 : 1);
	struct ana_batch *b = calloc(n ? n : 1, sizeof(*b));
	double heap = 8 * MiB, arena = 32 * MiB, anon = 256 * MiB;
	double slots = 100000, grow, rbheld = 0;
	uint64_t rng = sc->seed;
	size_t i = 0, w, m, pass;

	assert_non_null(b);
	for (w = 0; w < sc->warmups + sc->measured; w++) {
		bool warm = w < sc->warmups;

		m = w - sc->warmups;	/* measured index when !warm */
		for (pass = 0; pass < (!warm && sc->controls ? 2u : 1u);
		     pass++) {
			struct ana_batch *x = &b[i++];

			x->warmup = warm;
			x->control = pass == 1;
			x->calls = sc->batch;
			if (!warm && !x->control && m == sc->measured - 1 &&
			    sc->last_batch)
				x->calls = sc->last_batch;
			anon += sc->drift + sc->rand_walk * rng_sym(&rng);
			slots += sc->slot_drift;
			if (!x->control) {
				grow = (!warm && sc->leak_until &&
					m >= sc->leak_until ? sc->late_leak
							    : sc->leak) *
				       (double)x->calls;
				heap += grow * sc->to_heap;
				arena += grow * sc->to_arena;
				anon += grow * (1 - sc->to_heap - sc->to_arena);
				slots += sc->slots * (double)x->calls;
				rbheld += sc->rb_grow * (double)x->calls;
				if (!sc->rb_not_in_rss)
					heap += sc->rb_grow * (double)x->calls;
			}
			if (warm)
				heap += sc->warm_growth;
			if (!warm && !x->control &&
			    m < (sc->first_n ? sc->first_n : 1))
				heap += sc->first_growth;
			if (!warm && !x->control && sc->step_every &&
			    m % sc->step_every == sc->step_every - 1 &&
			    (!sc->step_until || m < sc->step_until))
				anon += sc->step;
			if (sc->jump_p > 0 &&
			    (rng_sym(&rng) + 1) / 2 < sc->jump_p) {
				double j = sc->jump_lo + (sc->jump_hi -
					sc->jump_lo) * (rng_sym(&rng) + 1) / 2;

				anon += rng_sym(&rng) < 0 ? -j : j;
			}
			x->heap_rss = page_up(heap + sc->jitter *
					      rng_sym(&rng));
			x->arena_rss = page_up(arena + sc->jitter *
					       rng_sym(&rng));
			x->anon_rss = page_up(anon + sc->jitter *
					      rng_sym(&rng));
			x->rss = x->heap_rss + x->arena_rss + x->anon_rss;
			x->live_slots = llround(slots + sc->slot_jitter *
						rng_sym(&rng));
			/* a slot is 40 B; buffers grow on their own */
			x->rb_bytes = sc->rb_unknown ? -1 :
				llround((double)x->live_slots * 40 + rbheld);
			x->rb_types[1] = sc->rb_unknown ? -1 : llround(rbheld);
		}
	}
	*out = b;
	return n;
}

/* A quiet target: page jitter only; 20 batches of 1000 after 3 warm-ups. */
static struct scenario
base(uint64_t seed)
{
	struct scenario sc = {
		.seed = seed,
		.warmups = 3,
		.measured = 20,
		.batch = 1000,
		.controls = true,
		.to_heap = 0.5,
		.to_arena = 0.5,
		.jitter = 4096,
		.slot_jitter = 3,
	};
	return sc;
}

static int
run(const struct scenario *sc, struct ana_verdict *v)
{
	struct ana_batch *b;
	size_t n = generate(sc, &b);
	int rc = ana_verdict_compute(b, n, v);

	print_message("    %s\n", v->summary);
	free(b);
	return rc;
}

static void
assert_kind(const struct ana_verdict *v, enum ana_verdict_kind k)
{
	if (v->kind != k)
		print_message("expected '%s', got '%s': %s\n",
			      ana_verdict_name(k), ana_verdict_name(v->kind),
			      v->summary);
	assert_int_equal(v->kind, k);
}

/* slope within +-25 % of truth and the interval contains the truth. */
static void
assert_slope(const struct ana_estimate *e, double truth)
{
	if (fabs(e->slope - truth) > 0.25 * fabs(truth) ||
	    e->lo > truth || e->hi < truth)
		print_message("slope %g (%g .. %g), truth %g\n", e->slope,
			      e->lo, e->hi, truth);
	assert_true(fabs(e->slope - truth) <= 0.25 * fabs(truth));
	assert_true(e->lo <= truth && truth <= e->hi);
}

static void
assert_no_trailing_period(const struct ana_verdict *v)
{
	size_t len = strlen(v->summary);

	assert_true(len > 0);
	assert_true(len < sizeof(v->summary) - 1);
	assert_true(v->summary[len - 1] != '.');
	assert_null(strchr(v->summary, '\n'));
}

/* ---- leaks ---------------------------------------------------------- */

static void
test_verdict_native_leak(void **state)
{
	struct scenario sc = base(1);
	struct ana_verdict v;

	(void)state;
	sc.leak = 256;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 256);
	assert_int_equal(v.measured_calls, 20000);
	assert_int_equal(v.native.n, 20);
	assert_int_equal(v.controls, 20);
	assert_true(fabs(v.total_growth - 256 * 20000.0) < 0.1 * 256 * 20000);
	/* Live slots flat within the stated margin. */
	assert_true(v.slots.lo >= -v.slot_margin);
	assert_true(v.slots.hi <= v.slot_margin);
	assert_true(v.slot_margin > 0);
	/* Where it went: half [heap], half arenas, no anon. */
	assert_true(fabs(v.heap.slope - 128) < 32);
	assert_true(fabs(v.arena.slope - 128) < 32);
	assert_true(fabs(v.anon.slope) < 32);
	assert_int_equal(v.more_calls_needed, 0);
	assert_non_null(strstr(v.summary, "native leak: +"));
	assert_non_null(strstr(v.summary, "[heap]/malloc arenas grew"));
	assert_non_null(strstr(v.summary, "20,000 calls"));
	assert_non_null(strstr(v.summary, "Ruby live objects flat"));
	assert_no_trailing_period(&v);
}

/* The leaks DESIGN §9 asks for: 32-64 B per call, quiet. */
static void
test_verdict_quiet_native_leak(void **state)
{
	static const double rates[] = { 48, 32, 64 };
	struct ana_verdict v;
	size_t i;
	uint64_t seed;

	(void)state;
	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		for (seed = 10; seed < 15; seed++) {
			struct scenario sc = base(seed);

			sc.leak = rates[i];
			sc.to_heap = 0;
			sc.to_arena = 1;	/* helper-thread arena */
			assert_int_equal(run(&sc, &v), 0);
			assert_kind(&v, ANA_NATIVE_LEAK);
			assert_slope(&v.native, rates[i]);
			assert_true(v.arena.slope > 0.75 * rates[i]);
			assert_non_null(strstr(v.summary,
					       "; malloc arenas grew"));
		}
	}
}

/*
 * Batches smaller than a page of growth (48 B x 50 calls = 2400 B): most
 * deltas are 0 or 1 page; the estimate must still find the rate.
 */
static void
test_verdict_quiet_leak_small_batches(void **state)
{
	struct scenario sc = base(20);
	struct ana_verdict v;

	(void)state;
	sc.leak = 48;
	sc.batch = 50;
	sc.measured = 400;
	sc.jitter = 4096;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 48);

	sc.jitter = 0;		/* bare page quantisation */
	sc.seed = 21;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 48);
}

/* A quiet leak inside a target that is noisy on its own. */
static void
test_verdict_native_leak_in_noisy_target(void **state)
{
	struct scenario sc = base(30);
	struct ana_verdict v;

	(void)state;
	sc.leak = 48;
	sc.batch = 500;
	sc.measured = 80;
	sc.jump_p = 0.1;
	sc.jump_lo = 1 * MiB;
	sc.jump_hi = 4 * MiB;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 48);
}

/* Retained strings: one live object and ~40 B of memory per call. */
static void
test_verdict_ruby_leak(void **state)
{
	struct scenario sc = base(40);
	struct ana_verdict v;

	(void)state;
	sc.leak = 40;
	sc.to_heap = 0;
	sc.to_arena = 0;	/* Ruby heap pages are anonymous mappings */
	sc.slots = 1;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_RUBY_LEAK);
	assert_slope(&v.slots, 1);
	assert_slope(&v.mem, 40);
	assert_true(v.slots.lo > v.slot_margin);
	assert_slope(&v.ruby, 40);
	assert_slope(&v.leak, 40);
	assert_non_null(strstr(v.summary, "ruby-object leak: +40 B per call"));
	assert_non_null(strstr(v.summary, "+1.00 new live objects per call"));
	assert_no_trailing_period(&v);
}

/* Live objects grow while rss stays flat (free slots reused first). */
static void
test_verdict_ruby_leak_memory_flat(void **state)
{
	struct scenario sc = base(41);
	struct ana_verdict v;

	(void)state;
	sc.slots = 0.2;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_RUBY_LEAK);
	assert_true(v.native.lo <= 0);
	assert_slope(&v.slots, 0.2);
}

/* ---- no leak -------------------------------------------------------- */

static void
test_verdict_no_leak_quiet(void **state)
{
	struct ana_verdict v;
	uint64_t seed;

	(void)state;
	for (seed = 50; seed < 60; seed++) {
		struct scenario sc = base(seed);

		assert_int_equal(run(&sc, &v), 0);
		assert_kind(&v, ANA_NO_LEAK);
		assert_true(v.native.lo <= 0 && v.native.hi >= 0);
		assert_true(v.native.hi < v.mem_floor);
		assert_int_equal(v.more_calls_needed, 0);
		assert_non_null(strstr(v.summary, "no leak: native "));
		assert_no_trailing_period(&v);
	}
}

/*
 * Noisy on its own: other threads move anon memory by 1-4 MiB in 10 % of
 * all batches (both directions, never given back in step), in measured
 * and control batches alike.
 */
static void
test_verdict_no_leak_noisy_target(void **state)
{
	struct ana_verdict v;
	uint64_t seed;

	(void)state;
	for (seed = 60; seed < 65; seed++) {
		struct scenario sc = base(seed);

		sc.batch = 500;
		sc.measured = 80;
		sc.jump_p = 0.1;
		sc.jump_lo = 1 * MiB;
		sc.jump_hi = 4 * MiB;
		sc.slot_jitter = 200;
		assert_int_equal(run(&sc, &v), 0);
		assert_kind(&v, ANA_NO_LEAK);
		/* The untrimmed mean is far wider: the jumps are real. */
		assert_true(v.mem_mean.hi - v.mem_mean.lo >
			    2 * (v.native.hi - v.native.lo));
	}
}

/*
 * The worker drifts by itself (+256 KiB and +300 live objects per batch,
 * measured or not): the controls cancel it.  Without them, the same
 * drift reads as a leak, which shows that the controls are what count.
 */
static void
test_verdict_no_leak_drifting_worker(void **state)
{
	struct scenario sc = base(70);
	struct ana_batch *b;
	struct ana_verdict v;
	size_t n;

	(void)state;
	sc.drift = 256 * 1024;
	sc.slot_drift = 300;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NO_LEAK);
	assert_true(fabs(v.total_growth) < 64 * 1024);

	/* Same process, no control batches: drift is all there is. */
	sc.controls = false;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_RUBY_LEAK);
	assert_slope(&v.mem, 256 * 1024 / 1000.0);
	assert_slope(&v.slots, 0.3);
	assert_int_equal(v.controls, 0);

	/* Drift plus a real leak: the net is the leak. */
	sc.controls = true;
	sc.leak = 64;
	n = generate(&sc, &b);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 64);
	assert_int_equal(v.controls, 20);
	free(b);
}

/* A cache that fills during warm-up, then stays. */
static void
test_verdict_no_leak_cache_warmup(void **state)
{
	struct scenario sc = base(80);
	struct ana_verdict v;

	(void)state;
	sc.warm_growth = 4 * MiB;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NO_LEAK);

	/* ... and still grows in the first measured batch. */
	sc.seed = 81;
	sc.first_growth = 512 * 1024;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NO_LEAK);
	assert_true(v.total_growth > 256 * 1024);	/* it is in there */

	/* ... or in the first four, 256 KiB each. */
	sc.seed = 82;
	sc.first_growth = 256 * 1024;
	sc.first_n = 4;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NO_LEAK);
	assert_true(v.total_growth > 768 * 1024);
}

/* Memory handed back steadily (free lists trimmed): no leak. */
static void
test_verdict_negative_deltas(void **state)
{
	struct scenario sc = base(90);
	struct ana_verdict v;

	(void)state;
	sc.leak = -100;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NO_LEAK);
	assert_slope(&v.native, -100);
	assert_true(v.total_growth < 0);
	assert_non_null(strstr(v.summary, "native -"));
}

/* ---- inconclusive --------------------------------------------------- */

/*
 * Memory that moves in large steps, flat between them.  Recurring steps
 * (1 MiB every 5th batch) are how this process grows: a leak, sized by
 * the plain mean.  Growth in the first half only is not a leak while the
 * second half shows none: inconclusive, run longer.
 */
static void
test_verdict_step_growth(void **state)
{
	struct scenario sc = base(100);
	struct ana_verdict v;

	(void)state;
	sc.step_every = 5;
	sc.step = 1 * MiB;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, MiB / 5000);
	assert_true(v.native.slope == v.mem_mean.slope);
	assert_non_null(strstr(v.summary, " in large steps; "));

	/* Growth in the first half only, a little shrinking after: the
	 * process was still settling. */
	sc = base(104);
	sc.measured = 80;
	sc.batch = 250;
	sc.leak = 64;
	sc.leak_until = 40;
	sc.late_leak = -16;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_true(v.native.lo > 0);
	assert_true(v.mem_late.slope <= 0);
	assert_int_equal(v.mem_late.n, 40);
	assert_int_equal(v.more_calls_needed, 20000);
	assert_non_null(strstr(v.summary, "(still settling?); run about "
			       "20,000 more calls"));
	assert_no_trailing_period(&v);

	/* A steady leak plus steps is a leak all the same. */
	sc = base(102);
	sc.leak = 64;
	sc.step_every = 5;
	sc.step = 1 * MiB;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_true(v.native.lo > 32);
}

/*
 * A sawtooth: steady growth handed back by a 1 MiB drop every 10th
 * batch.  Typical batches grow; the process does not.  The verdict rests
 * on the plain mean, which is too noisy here to rule a leak out.
 */
static void
test_verdict_sawtooth(void **state)
{
	struct scenario sc = base(101);
	struct ana_verdict v;

	(void)state;
	sc.leak = 1 * MiB / 10000;
	sc.step_every = 10;
	sc.step = -1 * MiB;
	sc.measured = 40;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_true(fabs(v.total_growth) < 256 * 1024);
	assert_true(v.native.slope == v.mem_mean.slope);
	assert_true(v.native.lo < 0 && v.native.hi > 0);
	assert_true(v.more_calls_needed > 0);

	/* One drop only, at the end: typical batches grow and nothing
	 * says they are handed back regularly; never "no leak". */
	sc.measured = 20;
	sc.step_every = 20;
	assert_int_equal(run(&sc, &v), 0);
	assert_true(v.kind != ANA_NO_LEAK);
}

static void
test_verdict_inconclusive_few_batches(void **state)
{
	struct scenario sc = base(110);
	struct ana_verdict v;

	(void)state;
	sc.leak = 256;
	sc.measured = 3;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.more_calls_needed, 2000);
	assert_int_equal(v.native.n, 3);
	assert_non_null(strstr(v.summary, "need at least 5"));
	assert_non_null(strstr(v.summary, "run about 2,000 more calls"));
	assert_no_trailing_period(&v);

	/* One measured batch: nothing to fit. */
	sc.measured = 1;
	assert_int_equal(run(&sc, &v), -LP_EINVAL);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.more_calls_needed, 4000);
}

/* Several MiB of level noise on every batch: cannot tell 0 from 256. */
static void
test_verdict_inconclusive_huge_noise(void **state)
{
	struct scenario sc = base(120);
	struct ana_verdict v, v2;

	(void)state;
	sc.measured = 10;
	sc.rand_walk = 4 * MiB;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_true(v.native.lo < 0 && v.native.hi > v.mem_floor);
	assert_true(v.more_calls_needed > 0);
	assert_int_equal(v.more_calls_needed % 1000, 0);
	assert_non_null(strstr(v.summary, "more calls"));

	/* Milder noise needs fewer calls, and a finite number of them. */
	sc.rand_walk = 64 * 1024;
	assert_int_equal(run(&sc, &v2), 0);
	assert_kind(&v2, ANA_INCONCLUSIVE);
	assert_true(v2.more_calls_needed > 0);
	assert_true(v2.more_calls_needed < v.more_calls_needed);
	assert_true(v2.more_calls_needed < 100 * v2.measured_calls);
}

/* ---- properties and edges ------------------------------------------ */

/*
 * The interval is honest: over 100 runs each of a quiet target (level
 * noise; truth 0), a worker drifting as a random walk and a quiet leak
 * (truth 48 B/call), it covers the truth at about its 95 %, false leak
 * verdicts stay rare and the leak is always found.  (Over 3000 runs:
 * coverage 96-97 %, false "native leak" 1.3-1.9 %; an i.i.d. bootstrap
 * covered 84-89 %.)
 */
static void
test_verdict_interval_coverage(void **state)
{
	int covered[3] = { 0 }, leaks[3] = { 0 }, s, i;

	(void)state;
	for (s = 0; s < 100; s++) {
		for (i = 0; i < 3; i++) {
			struct scenario sc = base(10000 + (uint64_t)s);
			struct ana_batch *b;
			struct ana_verdict v;
			double truth = i == 2 ? 48 : 0;
			size_t n;

			if (i == 1) {
				sc.jitter = 0;
				sc.rand_walk = 8192;
			}
			sc.leak = truth;
			n = generate(&sc, &b);
			assert_int_equal(ana_verdict_compute(b, n, &v), 0);
			covered[i] += v.native.lo <= truth && truth <= v.native.hi;
			leaks[i] += v.kind == ANA_NATIVE_LEAK;
			free(b);
		}
	}
	print_message("    coverage %d %d %d of 100; leak verdicts %d %d %d\n",
		      covered[0], covered[1], covered[2], leaks[0], leaks[1],
		      leaks[2]);
	for (i = 0; i < 3; i++)
		assert_true(covered[i] >= 90);
	assert_true(leaks[0] <= 6);
	assert_true(leaks[1] <= 6);
	assert_int_equal(leaks[2], 100);
}

static void
assert_same_estimate(const struct ana_estimate *a,
		     const struct ana_estimate *b)
{
	assert_true(a->slope == b->slope);
	assert_true(a->lo == b->lo);
	assert_true(a->hi == b->hi);
	assert_int_equal(a->n, b->n);
}

static void
test_verdict_deterministic(void **state)
{
	struct scenario sc = base(130);
	struct ana_batch *b;
	struct ana_verdict v1, v2;
	size_t n;

	(void)state;
	sc.leak = 48;
	sc.jump_p = 0.1;
	sc.jump_lo = 1 * MiB;
	sc.jump_hi = 2 * MiB;
	n = generate(&sc, &b);
	assert_int_equal(ana_verdict_compute(b, n, &v1), 0);
	assert_int_equal(ana_verdict_compute(b, n, &v2), 0);
	assert_int_equal(v1.kind, v2.kind);
	assert_same_estimate(&v1.mem, &v2.mem);
	assert_same_estimate(&v1.mem_mean, &v2.mem_mean);
	assert_same_estimate(&v1.heap, &v2.heap);
	assert_same_estimate(&v1.arena, &v2.arena);
	assert_same_estimate(&v1.anon, &v2.anon);
	assert_same_estimate(&v1.slots, &v2.slots);
	assert_true(v1.total_growth == v2.total_growth);
	assert_int_equal(v1.more_calls_needed, v2.more_calls_needed);
	assert_string_equal(v1.summary, v2.summary);
	free(b);
}

/* Batches of different sizes (the last one short, some doubled). */
static void
test_verdict_unequal_batches(void **state)
{
	struct scenario sc = base(140);
	struct ana_batch *b;
	struct ana_verdict v;
	size_t n, i;

	(void)state;
	sc.leak = 128;
	sc.controls = false;
	sc.last_batch = 300;
	n = generate(&sc, &b);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_int_equal(v.measured_calls, 19 * 1000 + 300);
	assert_slope(&v.native, 128);
	free(b);

	/* Rebuild with alternating 500/1500 calls, controls kept. */
	sc.controls = true;
	sc.last_batch = 0;
	sc.seed = 141;
	n = generate(&sc, &b);
	{
		double heap = (double)b[sc.warmups - 1].heap_rss;
		double arena = (double)b[sc.warmups - 1].arena_rss;

		for (i = sc.warmups; i < n; i++) {
			uint64_t calls = (i / 2) % 2 ? 1500 : 500;

			if (!b[i].control) {
				b[i].calls = calls;
				heap += 64.0 * (double)calls;
				arena += 64.0 * (double)calls;
			}
			b[i].heap_rss = page_up(heap);
			b[i].arena_rss = page_up(arena);
		}
	}
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 128);
	free(b);
}

static void
test_verdict_edge_empty(void **state)
{
	struct ana_verdict v;
	struct ana_batch one = { .calls = 10 };

	(void)state;
	assert_int_equal(ana_verdict_compute(NULL, 0, &v), -LP_EINVAL);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.measured_calls, 0);
	assert_int_equal(v.more_calls_needed, 0);
	assert_true(strlen(v.summary) > 0);
	assert_no_trailing_period(&v);

	/* One batch: no delta to take at all. */
	assert_int_equal(ana_verdict_compute(&one, 1, &v), -LP_EINVAL);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.more_calls_needed, 50);

	assert_int_equal(ana_verdict_compute(&one, 1, NULL), -LP_EINVAL);
}

static void
test_verdict_edge_all_warmup(void **state)
{
	struct scenario sc = base(150);
	struct ana_batch *b;
	struct ana_verdict v;
	size_t n;

	(void)state;
	sc.warmups = 10;
	sc.measured = 0;
	sc.leak = 1024;
	n = generate(&sc, &b);
	assert_int_equal(n, 10);
	assert_int_equal(ana_verdict_compute(b, n, &v), -LP_EINVAL);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.measured_calls, 0);
	assert_int_equal(v.more_calls_needed, 5000);
	assert_non_null(strstr(v.summary, "0 measured batches"));
	free(b);
}

static void
test_verdict_edge_zero_calls(void **state)
{
	struct scenario sc = base(160);
	struct ana_batch *b;
	struct ana_verdict v;
	size_t n, i;

	(void)state;
	sc.leak = 256;
	n = generate(&sc, &b);
	for (i = 0; i < n; i++)
		b[i].calls = 0;
	assert_int_equal(ana_verdict_compute(b, n, &v), -LP_EINVAL);
	assert_kind(&v, ANA_INCONCLUSIVE);
	assert_int_equal(v.measured_calls, 0);
	assert_int_equal(v.more_calls_needed, 0);
	assert_non_null(strstr(v.summary, "no batch ran any call"));

	/* Some measured batches empty: they are skipped, not divided by. */
	free(b);
	n = generate(&sc, &b);
	for (i = sc.warmups; i < n; i += 4)
		b[i].calls = 0;
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_int_equal(v.native.n, 10);	/* every other measured batch */
	assert_int_equal(v.measured_calls, 10000);
	assert_true(isfinite(v.native.slope) && isfinite(v.native.lo) &&
		    isfinite(v.native.hi));
	free(b);
}

/* Counters that go backwards (rss returned, u64 wrap in the delta). */
static void
test_verdict_edge_returned_memory(void **state)
{
	struct ana_batch b[12];
	struct ana_verdict v;
	size_t i;

	(void)state;
	memset(b, 0, sizeof(b));
	for (i = 0; i < 12; i++) {
		b[i].calls = 1000;
		b[i].warmup = i == 0;
		/* 40 MiB handed back in the first measured batch, then flat */
		b[i].heap_rss = i < 1 ? 48 << 20 : 8 << 20;
		b[i].arena_rss = 1 << 20;
		b[i].live_slots = 5000 - (int64_t)i;
	}
	assert_int_equal(ana_verdict_compute(b, 12, &v), 0);
	assert_true(v.total_growth == -40.0 * MiB);
	assert_true(v.mem_mean.slope < -3000);
	assert_true(fabs(v.slots.slope + 0.001) < 1e-12);
	/* One batch of eleven does not make a trend: it is clipped to 4
	 * pages below the median (0), so it moves the slope by 4 pages /
	 * 11,000 calls at most. */
	assert_true(v.native.slope < 0);
	assert_true(v.native.slope >= -4 * PAGE / 11000 - 1e-9);
	assert_true(v.kind == ANA_NO_LEAK || v.kind == ANA_INCONCLUSIVE);
}

static void
test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(ana_verdict_name(ANA_NO_LEAK), "no leak");
	assert_string_equal(ana_verdict_name(ANA_NATIVE_LEAK), "native leak");
	assert_string_equal(ana_verdict_name(ANA_RUBY_LEAK),
			    "ruby-object leak");
	assert_string_equal(ana_verdict_name(ANA_INCONCLUSIVE),
			    "inconclusive");
	assert_string_equal(ana_verdict_name((enum ana_verdict_kind)42),
			    "unknown");
}

/* Growing Arrays: Ruby-held bytes grow, live objects do not. */
static void
test_verdict_ruby_growth(void **state)
{
	struct scenario sc = base(201);
	struct ana_verdict v;

	(void)state;
	sc.rb_grow = 8.4;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_RUBY_GROWTH);
	assert_slope(&v.ruby, 8.4);
	assert_slope(&v.leak, 8.4);
	assert_true(v.native.lo <= 0);		/* not called native */
	assert_int_equal(v.rb_type, 1);
	assert_string_equal(ana_rb_type_name(v.rb_type), "Array");
	assert_non_null(strstr(v.summary, "ruby-held growth: +8.4 B per "
			       "call"));
	assert_non_null(strstr(v.summary, "mostly Array"));
	assert_no_trailing_period(&v);
}

/*
 * The one object that grows is named: each batch names the buffer that
 * grew most in it; measured batches count, controls (the target's own
 * growth, here a bigger one) do not, and a one-off grower loses to the
 * object that grows in every measured batch.
 */
static void
test_verdict_ruby_grower(void **state)
{
	struct scenario sc = base(202);
	struct ana_verdict v;
	struct ana_batch *b;
	size_t n, i, first = 0, last = 0;
	int64_t used = 100000;

	(void)state;
	sc.rb_grow = 8.4;
	n = generate(&sc, &b);
	for (i = 1; i < n; i++) {
		if (b[i].warmup)
			continue;
		if (b[i].control) {
			b[i].grew_id = 9;
			b[i].grew_before = 1 << 20;
			b[i].grew_after = (1 << 20) + 50000;
			strcpy(b[i].grew_class, "Noise");
			continue;
		}
		if (!first) {	/* a one-off */
			first = i;
			b[i].grew_id = 11;
			b[i].grew_before = 5000;
			b[i].grew_after = 9000;
			strcpy(b[i].grew_class, "Once");
			used += 8400;
			continue;
		}
		last = i;
		b[i].grew_id = 7;
		b[i].grew_before = used;
		used += 8400;
		b[i].grew_after = used;
		strcpy(b[i].grew_class, "MyList");
		strcpy(b[i].grew_site, "app.rb:12");
	}
	assert_true(first && last);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	print_message("    %s\n", v.summary);
	assert_kind(&v, ANA_RUBY_GROWTH);
	assert_int_equal(v.grower_id, 7);
	assert_int_equal(v.grower_before, 108400);
	assert_int_equal(v.grower_after, used);
	assert_string_equal(v.grower_class, "MyList");
	assert_string_equal(v.grower_site, "app.rb:12");
	assert_non_null(strstr(v.summary, "; one MyList grew 105.9 KiB -> "));
	assert_non_null(strstr(v.summary, "(allocated at app.rb:12)"));
	assert_no_trailing_period(&v);
	free(b);
}

/*
 * One object per hundred calls (0.6 B per call) clears the live-slot
 * margin but not the bytes floor: no leak of any kind, with the default
 * floor or --fail-on-growth 32.  A Ruby-held 20 B per call is a leak by
 * default and not under a floor of 32.
 */
static void
test_verdict_bytes_floor(void **state)
{
	struct scenario sc = base(202);
	struct ana_batch *b;
	struct ana_verdict v;
	size_t n;

	(void)state;
	sc.slots = 0.015;
	sc.slot_jitter = 0;
	n = generate(&sc, &b);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	print_message("    %s\n", v.summary);
	assert_true(v.slots.lo > v.slot_margin);
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));
	assert_int_equal(ana_verdict_compute_floor(b, n, 32, &v), 0);
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));
	free(b);

	sc = base(203);
	sc.slots = 0.5;			/* 20 B per call */
	n = generate(&sc, &b);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_kind(&v, ANA_RUBY_LEAK);
	assert_int_equal(ana_verdict_compute_floor(b, n, 32, &v), 0);
	print_message("    %s\n", v.summary);
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));
	assert_true(v.leak_floor == 32);
	free(b);

	/* without measured sizes, a new object counts as its slot */
	sc = base(204);
	sc.slots = 1;
	sc.rb_unknown = true;
	assert_int_equal(run(&sc, &v), 0);
	assert_kind(&v, ANA_RUBY_LEAK);
	assert_false(v.rb_measured);
	assert_slope(&v.ruby, 40);
}

/*
 * Ruby-held bytes fall after measured batches (other threads held fewer
 * objects then) while memory stays flat: native = memory - Ruby-held
 * would come out at +30 B per call, but Ruby-held did not grow, so
 * native is memory itself: flat, no native leak.
 */
static void
test_verdict_native_needs_memory(void **state)
{
	struct scenario sc = base(205);
	struct ana_verdict v;

	(void)state;
	sc.rb_grow = -30;
	sc.rb_not_in_rss = true;
	assert_int_equal(run(&sc, &v), 0);
	assert_true(v.ruby.hi < 0);
	assert_true(fabs(v.native.slope - v.mem.slope) < 0.5);
	assert_true(v.native.lo < 4);
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));
}

/*
 * A series captured from `attach --json` on an idle target (snippet
 * `($lp_cache ||= {})[rand(64)] ||= "v" * 200`, warm, 10,000 calls):
 * everything flat but one measured batch, in which Ruby-held bytes step
 * up by 1 MiB (a T_DATA object, 8 new slots) and memory does not move.
 * The controls are flat, so the step alone made a Ruby-held interval of
 * zero width at 105 B per call: "ruby-held growth", exit 1 under
 * --fail-on-growth 32.  One batch is no leak.
 */
enum { W, M, C };
static const struct {
	int kind;
	uint64_t calls, heap, arena, anon;
	int64_t slots, rb;
} one_step[] = {
	{ W, 0, 3084288, 4227072, 6463488, 22656, -1 },
	{ W, 1000, 3084288, 4227072, 6463488, 21302, 4102566 },
	{ W, 1000, 3084288, 4227072, 6463488, 21313, 4103094 },
	{ M, 1000, 3084288, 4227072, 6463488, 21313, 4103094 },
	{ C, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ M, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ C, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ M, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ C, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ M, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ C, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ M, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ C, 1000, 3084288, 4227072, 6463488, 21314, 4103134 },
	{ M, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ C, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ M, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ C, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ M, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ C, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ M, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ C, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ M, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
	{ C, 1000, 3084288, 4227072, 6463488, 21322, 5152030 },
};

static size_t
load_one_step(struct ana_batch *b, double rb_per_call)
{
	size_t n = sizeof(one_step) / sizeof(one_step[0]), i;
	double grown = 0;

	memset(b, 0, n * sizeof(*b));
	for (i = 0; i < n; i++) {
		b[i].warmup = one_step[i].kind == W;
		b[i].control = one_step[i].kind == C;
		b[i].calls = one_step[i].calls;
		/* a Ruby-held leak on top, rss growing with it */
		if (one_step[i].kind == M)
			grown += rb_per_call * (double)one_step[i].calls;
		b[i].heap_rss = one_step[i].heap +
				page_up(grown) * (rb_per_call > 0);
		b[i].arena_rss = one_step[i].arena;
		b[i].anon_rss = one_step[i].anon;
		b[i].rss = b[i].heap_rss + b[i].arena_rss + b[i].anon_rss;
		b[i].live_slots = one_step[i].slots;
		b[i].rb_bytes = one_step[i].rb < 0 ? -1 :
				one_step[i].rb + llround(grown);
	}
	return n;
}

static void
test_verdict_ruby_one_step(void **state)
{
	struct ana_batch b[sizeof(one_step) / sizeof(one_step[0])];
	struct ana_verdict v;
	size_t n = load_one_step(b, 0);

	(void)state;
	assert_int_equal(ana_verdict_compute_floor(b, n, 32, &v), 0);
	print_message("    %s\n", v.summary);
	assert_true(v.ruby.lo > 100);		/* the step, as it was */
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));
	assert_true(v.ruby_rest.hi < 1);
	assert_non_null(strstr(v.summary, "one-off"));
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	assert_false(ANA_VERDICT_IS_LEAK(v.kind));

	/* a real 32 B per call on top: still found, at 32, not 137 */
	n = load_one_step(b, 32);
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	print_message("    %s\n", v.summary);
	assert_kind(&v, ANA_RUBY_GROWTH);
	assert_true(fabs(v.leak.slope - 32) < 1);
	assert_true(v.leak.lo <= 32 && v.leak.hi >= 32);
}

/*
 * A series captured from `attach --json` on a noisy target (two threads
 * allocating and freeing Ruby objects all the time) with a native leak
 * of 32 B per call (Fiddle.malloc(24), 10,000 calls): memory grows 32 KiB
 * in every measured batch and never in a control.  Ruby-held moves by
 * +-9,400 B (the workers' 144 objects in flight at the read), more often
 * up after measured batches than after controls, in slots of pages that
 * exist: memory does not move with it.  Native = memory - Ruby-held
 * carried that noise: "inconclusive, native +19 B per call (4.0 to 34)".
 * Ruby-held did not grow (its levels are flat), so native is memory.
 */
static const struct {
	int kind;
	uint64_t calls, heap, arena, anon;
	int64_t slots, rb;
} noisy_native[] = {
	{ W, 0, 3084288, 7036928, 5734400, 20823, -1 },
	{ W, 1000, 3084288, 7069696, 5734400, 19041, 7123555 },
	{ W, 1000, 3084288, 7098368, 5734400, 18908, 7114683 },
	{ M, 1000, 3084288, 7131136, 5734400, 18908, 7124083 },
	{ C, 1000, 3084288, 7131136, 5734400, 19053, 7124123 },
	{ M, 1000, 3084288, 7163904, 5734400, 18909, 7114723 },
	{ C, 1000, 3084288, 7163904, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7196672, 5734400, 19053, 7124123 },
	{ C, 1000, 3084288, 7196672, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7229440, 5734400, 18909, 7114723 },
	{ C, 1000, 3084288, 7229440, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7258112, 5734400, 18909, 7114723 },
	{ C, 1000, 3084288, 7258112, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7290880, 5734400, 18909, 7114723 },
	{ C, 1000, 3084288, 7290880, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7323648, 5734400, 19197, 7133523 },
	{ C, 1000, 3084288, 7323648, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7356416, 5734400, 19197, 7133523 },
	{ C, 1000, 3084288, 7356416, 5734400, 19053, 7124123 },
	{ M, 1000, 3084288, 7389184, 5734400, 19053, 7124123 },
	{ C, 1000, 3084288, 7389184, 5734400, 18909, 7114723 },
	{ M, 1000, 3084288, 7417856, 5734400, 19197, 7133523 },
	{ C, 1000, 3084288, 7417856, 5734400, 18909, 7114723 },
};

static void
test_verdict_native_noisy_ruby(void **state)
{
	size_t n = sizeof(noisy_native) / sizeof(noisy_native[0]), i;
	struct ana_batch b[sizeof(noisy_native) / sizeof(noisy_native[0])];
	struct ana_verdict v;

	(void)state;
	memset(b, 0, sizeof(b));
	for (i = 0; i < n; i++) {
		b[i].warmup = noisy_native[i].kind == W;
		b[i].control = noisy_native[i].kind == C;
		b[i].calls = noisy_native[i].calls;
		b[i].heap_rss = noisy_native[i].heap;
		b[i].arena_rss = noisy_native[i].arena;
		b[i].anon_rss = noisy_native[i].anon;
		b[i].rss = b[i].heap_rss + b[i].arena_rss + b[i].anon_rss;
		b[i].live_slots = noisy_native[i].slots;
		b[i].rb_bytes = noisy_native[i].rb;
	}
	assert_int_equal(ana_verdict_compute(b, n, &v), 0);
	print_message("    %s\n", v.summary);
	assert_kind(&v, ANA_NATIVE_LEAK);
	assert_slope(&v.native, 32);
	assert_true(v.native.lo > 16);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_native_leak),
		cmocka_unit_test(test_verdict_quiet_native_leak),
		cmocka_unit_test(test_verdict_quiet_leak_small_batches),
		cmocka_unit_test(test_verdict_native_leak_in_noisy_target),
		cmocka_unit_test(test_verdict_ruby_leak),
		cmocka_unit_test(test_verdict_ruby_growth),
		cmocka_unit_test(test_verdict_ruby_grower),
		cmocka_unit_test(test_verdict_bytes_floor),
		cmocka_unit_test(test_verdict_native_needs_memory),
		cmocka_unit_test(test_verdict_ruby_one_step),
		cmocka_unit_test(test_verdict_native_noisy_ruby),
		cmocka_unit_test(test_verdict_ruby_leak_memory_flat),
		cmocka_unit_test(test_verdict_no_leak_quiet),
		cmocka_unit_test(test_verdict_no_leak_noisy_target),
		cmocka_unit_test(test_verdict_no_leak_drifting_worker),
		cmocka_unit_test(test_verdict_no_leak_cache_warmup),
		cmocka_unit_test(test_verdict_negative_deltas),
		cmocka_unit_test(test_verdict_step_growth),
		cmocka_unit_test(test_verdict_sawtooth),
		cmocka_unit_test(test_verdict_inconclusive_few_batches),
		cmocka_unit_test(test_verdict_inconclusive_huge_noise),
		cmocka_unit_test(test_verdict_interval_coverage),
		cmocka_unit_test(test_verdict_deterministic),
		cmocka_unit_test(test_verdict_unequal_batches),
		cmocka_unit_test(test_verdict_edge_empty),
		cmocka_unit_test(test_verdict_edge_all_warmup),
		cmocka_unit_test(test_verdict_edge_zero_calls),
		cmocka_unit_test(test_verdict_edge_returned_memory),
		cmocka_unit_test(test_verdict_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
