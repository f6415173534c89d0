/*
 * The measuring loop shared by attach, ab and bisect: run batches in the
 * target's helper thread and sample memory between them.
 */
#include "probes/probes.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xalloc.h"

static struct ana_batch *
push(struct probe_run *run, int arm)
{
	run->b = xgrow(run->b, &run->cap, run->n + 1, sizeof(*run->b));
	/* arm[] grows with b[]: same capacity */
	run->arm = xrealloc(run->arm, run->cap * sizeof(*run->arm));
	memset(&run->b[run->n], 0, sizeof(run->b[run->n]));
	run->arm[run->n] = arm;
	return &run->b[run->n++];
}

static void
fill_mem(struct ana_batch *b, const struct ana_totals *t)
{
	b->heap_rss = t->cls[ANA_MAP_HEAP].rss;
	b->heap_size = t->cls[ANA_MAP_HEAP].size;
	b->arena_rss = t->cls[ANA_MAP_ARENA].rss;
	b->arena_size = t->cls[ANA_MAP_ARENA].size;
	b->anon_rss = t->cls[ANA_MAP_ANON].rss;
	b->anon_size = t->cls[ANA_MAP_ANON].size;
	b->rss = t->rss;
}

static void
fill_gc(struct ana_batch *b, const struct probe_gc *g)
{
	b->live_slots = g->live_slots;
	b->total_allocated = g->allocated;
	b->total_freed = g->freed;
	b->malloc_increase = g->malloc_increase;
	b->gc_count = g->count;
	b->major_gc_count = g->major;
	b->rb_bytes = g->rb_bytes;
	for (int i = 0; i < ANA_RB_NTYPES && i < PROBE_RB_NTYPES; i++)
		b->rb_types[i] = g->rb_types[i];
	b->grew_id = g->grew_id;
	b->grew_before = g->grew_before;
	b->grew_after = g->grew_after;
	memcpy(b->grew_class, g->grew_class, sizeof(b->grew_class));
	memcpy(b->grew_site, g->grew_site, sizeof(b->grew_site));
}

static uint64_t
mem_of(const struct ana_batch *b)
{
	return b->heap_rss + b->arena_rss + b->anon_rss;
}

int
probe_measure(struct probe_session *s, const struct probe_arm *arms,
	      int narms, const struct probe_measure_opts *o,
	      const struct probe_hello *hello, struct probe_run *run,
	      probe_batch_fn cb, void *arg, struct lp_err *err)
{
	pid_t pid = probe_session_pid(s);
	struct probe_fast *fast = probe_fast_new();
	struct ana_totals tot;
	struct probe_result res;
	struct ana_batch *b;
	uint64_t rounds, base;
	int rc;

	memset(run, 0, sizeof(*run));
	run->narms = narms;
	run->raised_arm = -1;
	run->done = xcalloc((size_t)narms, sizeof(*run->done));
	rounds = (o->times + o->batch - 1) / o->batch;

	/* The state before any batch: the first delta's baseline. */
	rc = probe_sample_fast(fast, pid, &tot, err);
	if (rc < 0)
		goto out;
	b = push(run, -1);
	b->warmup = true;
	fill_mem(b, &tot);
	fill_gc(b, &hello->gc);
	base = mem_of(b);

	for (uint64_t step = 0;; step++) {
		/* step -> (phase, arm, control?) */
		uint64_t per = (uint64_t)narms * (o->control ? 2 : 1);
		uint64_t wsteps = o->warmup * (uint64_t)narms;
		bool warm = step < wsteps, control;
		int arm;
		uint64_t n = o->batch;

		if (warm) {
			arm = (int)(step % (uint64_t)narms);
			control = false;
		} else {
			uint64_t k = step - wsteps;

			if (k >= rounds * per)
				break;
			arm = (int)((k % per) / (o->control ? 2 : 1));
			control = o->control && (k & 1);
			if (!control) {
				uint64_t left = o->times - run->done[arm];

				n = left < o->batch ? left : o->batch;
			}
		}
		if (lp_stop_signal) {
			rc = lp_err_set(err, LP_EINTR, "interrupted by signal "
					"%d", (int)lp_stop_signal);
			goto out;
		}
		if (step == wsteps && o->before_measure) {
			rc = o->before_measure(s, o->before_arg, err);
			if (rc < 0)
				goto out;
			/* What the hook did in the target (a heap dump loads
			 * objspace, allocates) must not count as the first
			 * measured batch's growth: a fresh baseline after an
			 * empty batch with GC. */
			rc = probe_session_run(s, NULL, 0, 0, true, 0, &res,
					       err);
			if (rc == 0)
				rc = probe_sample_fast(fast, pid, &tot, err);
			if (rc < 0)
				goto out;
			b = push(run, -1);
			b->warmup = true;
			fill_mem(b, &tot);
			fill_gc(b, &res.gc);
		}
		if (control && o->around_control)
			o->around_control(o->control_arg, true);
		rc = probe_session_run(s, control ? NULL : arms[arm].idx,
				       control ? 0 : arms[arm].nidx, n, o->gc,
				       o->lanes && (!control ||
						    o->lane_controls) ?
				       arm + 1 : 0,
				       &res, err);
		if (control && o->around_control)
			o->around_control(o->control_arg, false);
		if (rc < 0)
			goto out;
		if (res.raised) {
			run->raised = true;
			run->raised_arm = arm;
			run->err = res;
			break;
		}
		rc = probe_sample_fast(fast, pid, &tot, err);
		if (rc < 0)
			goto out;
		b = push(run, control ? -1 : arm);
		b->calls = res.calls;
		b->warmup = warm;
		b->control = control;
		b->seconds = res.seconds;
		fill_mem(b, &tot);
		fill_gc(b, &res.gc);
		if (!warm && !control)
			run->done[arm] += res.calls;
		if (cb)
			cb(run, run->n - 1, arg);
		if (mem_of(b) > base && mem_of(b) - base > o->max_growth) {
			run->stopped_early = true;
			run->growth = mem_of(b) - base;
			break;
		}
	}
	rc = 0;
out:
	probe_fast_free(fast);
	return rc;
}

struct ana_batch *
probe_run_arm(const struct probe_run *run, int arm, size_t *n)
{
	struct ana_batch *out = xcalloc(run->n ? run->n : 1, sizeof(*out));

	for (size_t i = 0; i < run->n; i++) {
		out[i] = run->b[i];
		/* another arm's batch: keep its state as a baseline only */
		if (run->arm[i] >= 0 && run->arm[i] != arm)
			out[i].warmup = true;
		/* control batches measure the target's own drift, the same
		 * for every arm: all of them stay in */
	}
	*n = run->n;
	return out;
}

void
probe_run_release(struct probe_run *run)
{
	free(run->b);
	free(run->arm);
	free(run->done);
	memset(run, 0, sizeof(*run));
}
