/*
 * Malloc-site reports as text and JSON (leakprobe malloc, attach
 * --malloc-sites).  Totals come first and say how much of the window's
 * growth the stacks explain; sampling and every loss are stated, never
 * left out.
 */
#include "cli/malloc_report.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "common/util.h"

static void
hb(double v, int sign, char *buf, size_t len)
{
	lp_human_bytes(v, sign, buf, len);
}

static const char *
base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static void
print_losses(FILE *fp, const struct probe_malloc_report *r)
{
	char b[32];
	bool any = false;

	fputs("losses:", fp);
	if (r->alloc_drops) {
		hb((double)r->alloc_drop_bytes, 0, b, sizeof(b));
		fprintf(fp, " %" PRIu64 " allocations (%s) not recorded, ring "
			"buffer full;", r->alloc_drops, b);
		any = true;
	}
	if (r->free_drops) {
		fprintf(fp, " %" PRIu64 " free records lost, ring buffer full "
			"(%" PRIu64 " outstanding entries repaired from the "
			"kernel's table);", r->free_drops, r->free_repaired);
		any = true;
	}
	if (r->live_full) {
		fprintf(fp, " %" PRIu64 " allocations not tracked, "
			"--max-outstanding reached;", r->live_full);
		any = true;
	}
	if (r->inflight_full) {
		fprintf(fp, " %" PRIu64 " calls missed, too many threads in "
			"the allocator at once;", r->inflight_full);
		any = true;
	}
	if (r->stack_overflow) {
		fprintf(fp, " %" PRIu64 " allocations beyond the table of "
			"distinct stacks (grouped as one);", r->stack_overflow);
		any = true;
	}
	if (r->stack_fail) {
		fprintf(fp, " %" PRIu64 " stacks unreadable;", r->stack_fail);
		any = true;
	}
	if (!any)
		fputs(" none", fp);
	fputc('\n', fp);
}

void
cli_print_malloc_sites(FILE *fp, const struct probe_malloc_report *r,
		       uint64_t calls)
{
	char a[32], b[32], c[32], d[32], e[32];

	fprintf(fp, "malloc tracing of %d for %.2f s through %s\n", (int)r->pid,
		r->seconds, r->allocator[0] ? base(r->allocator) : "?");
	if (r->count_only) {
		fprintf(fp, "count only: %" PRIu64 " allocating calls, %"
			PRIu64 " frees (%.0f calls/s)\n", r->calls_alloc,
			r->calls_free,
			r->seconds > 0 ? (double)(r->calls_alloc +
						  r->calls_free) / r->seconds :
			0.0);
		return;
	}
	hb((double)r->outstanding_bytes, 0, a, sizeof(a));
	fprintf(fp, "calls: %" PRIu64 " allocating, %" PRIu64 " free; "
		"recorded %" PRIu64 ", freed in the window %" PRIu64
		"; outstanding %" PRIu64 " (%s)\n", r->calls_alloc,
		r->calls_free, r->recorded, r->freed, r->outstanding, a);
	hb((double)r->growth, 1, a, sizeof(a));
	hb((double)r->heap_growth, 1, b, sizeof(b));
	hb((double)r->arena_growth, 1, c, sizeof(c));
	hb((double)r->anon_growth, 1, d, sizeof(d));
	fprintf(fp, "growth: %s ([heap] %s, arenas %s, other anon %s); ", a, b,
		c, d);
	if (r->explained < 0)
		fputs("no growth for the stacks to explain\n", fp);
	else if (r->explained > 1.0)
		fprintf(fp, "outstanding bytes are %.0f %% of it (the "
			"allocator reused freed memory)\n",
			r->explained * 100);
	else
		fprintf(fp, "the stacks explain %.0f %% of it\n",
			r->explained * 100);
	if (r->sample > 1)
		fprintf(fp, "sampling: 1 in %u allocations; counts and bytes "
			"are scaled by %u (estimates)\n", r->sample, r->sample);
	else
		fputs("sampling: every allocation\n", fp);
	print_losses(fp, r);
	hb((double)r->rss_peak, 0, a, sizeof(a));
	hb((double)r->bound_bytes, 0, b, sizeof(b));
	hb((double)r->bpf_bytes, 0, c, sizeof(c));
	hb((double)r->bpf_bound_bytes, 0, e, sizeof(e));
	fprintf(fp, "cost: unwound %" PRIu64 " survivors of %" PRIu64
		" allocations into %" PRIu64 " distinct stacks (%" PRIu64
		" end before the outermost frame: --stack-bytes copy or unwind "
		"info ended); memory: leakprobe peak RSS %s (bound %s), BPF "
		"maps %s (bound %s)\n", r->unwound, r->recorded,
		r->distinct_stacks, r->unwind_short, a, b, c, e);
	if (!r->nsites) {
		fputs("\nno outstanding allocations\n", fp);
		return;
	}
	fprintf(fp, "\ntop %zu of %zu sites by outstanding bytes (grouped by "
		"the innermost %u frames):\n", r->nsites, r->total_sites,
		r->group_frames);
	for (size_t i = 0; i < r->nsites; i++) {
		const struct probe_malloc_site *s = &r->sites[i];

		hb((double)s->bytes, 0, a, sizeof(a));
		fprintf(fp, "\n#%zu %s", i + 1, a);
		if (s->share >= 0)
			fprintf(fp, " (%.1f %% of growth)", s->share * 100);
		fprintf(fp, " in %" PRIu64 " allocations", s->count);
		/* per call only for sites that grow with the calls */
		if (calls && s->count * 10 >= calls) {
			hb((double)s->bytes / (double)calls, 0, b, sizeof(b));
			fprintf(fp, ", %s per call", b);
		}
		if (s->threads > 16)
			fputs(", 16+ threads", fp);
		else
			fprintf(fp, ", %u thread%s", s->threads,
				s->threads == 1 ? "" : "s");
		fprintf(fp, ", %u stack%s%s\n", s->stacks,
			s->stacks == 1 ? "" : "s",
			s->truncated ? " (unwind stopped early)" : "");
		for (size_t j = 0; j < s->nframes; j++)
			fprintf(fp, "    %s\n", s->frames[j] ? s->frames[j] :
				"?");
	}
}

static json_t *
site_json(const struct probe_malloc_site *s, uint64_t calls)
{
	json_t *frames = json_array(), *o;

	for (size_t j = 0; j < s->nframes; j++) {
		char addr[24];

		snprintf(addr, sizeof(addr), "0x%" PRIx64, s->addrs[j]);
		json_array_append_new(frames, json_pack("{s:s,s:s,s:s}",
							"addr", addr, "name",
							s->frames[j] ?
							s->frames[j] : "?",
							"function",
							s->funcs && s->funcs[j]
							? s->funcs[j] : "?"));
	}
	o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:o,s:i,s:i,s:b,s:o}",
		      "function", s->func, "bytes", (json_int_t)s->bytes,
		      "count", (json_int_t)s->count,
		      "raw_bytes", (json_int_t)s->raw_bytes,
		      "raw_count", (json_int_t)s->raw_count,
		      "share", s->share >= 0 ? json_real(s->share) :
		      json_null(), "threads", (int)s->threads,
		      "stacks", (int)s->stacks, "truncated", s->truncated,
		      "frames", frames);
	if (o && calls)
		json_object_set_new(o, "bytes_per_call",
				    json_real((double)s->bytes /
					      (double)calls));
	return o;
}

struct json_t *
cli_malloc_sites_json(const struct probe_malloc_report *r, uint64_t calls)
{
	json_t *sites = json_array(), *calls_o = json_object(), *o;

	for (int k = 0; k < 8; k++)
		json_object_set_new(calls_o, probe_malloc_func(k),
				    json_integer((json_int_t)r->calls[k]));
	for (size_t i = 0; i < r->nsites; i++)
		json_array_append_new(sites, site_json(&r->sites[i], calls));
	o = json_pack("{s:s,s:b,s:f,s:{s:i,s:i,s:i},s:o,s:I,s:I,"
		      "s:{s:I,s:I,s:I,s:I},"
		      "s:{s:I,s:I,s:I,s:I},s:o,"
		      "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
		      "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:o,s:I}",
		      "allocator", r->allocator, "count_only", r->count_only,
		      "seconds", r->seconds,
		      "options", "sample", (int)r->sample,
		      "stack_bytes", (int)r->stack_bytes,
		      "group_frames", (int)r->group_frames,
		      "calls", calls_o,
		      "recorded", (json_int_t)r->recorded,
		      "freed", (json_int_t)r->freed,
		      "outstanding", "count", (json_int_t)r->outstanding,
		      "bytes", (json_int_t)r->outstanding_bytes,
		      "raw_count", (json_int_t)r->raw_outstanding,
		      "raw_bytes", (json_int_t)r->raw_outstanding_bytes,
		      "growth", "total", (json_int_t)r->growth,
		      "heap", (json_int_t)r->heap_growth,
		      "arenas", (json_int_t)r->arena_growth,
		      "anon", (json_int_t)r->anon_growth,
		      "explained", r->explained >= 0 ?
		      json_real(r->explained) : json_null(),
		      "losses", "alloc_drops", (json_int_t)r->alloc_drops,
		      "alloc_drop_bytes", (json_int_t)r->alloc_drop_bytes,
		      "free_drops", (json_int_t)r->free_drops,
		      "free_repaired", (json_int_t)r->free_repaired,
		      "table_full", (json_int_t)r->live_full,
		      "threads_full", (json_int_t)r->inflight_full,
		      "stack_short", (json_int_t)r->stack_short,
		      "stack_fail", (json_int_t)r->stack_fail,
		      "stacks_overflow", (json_int_t)r->stack_overflow,
		      "cost", "unwound", (json_int_t)r->unwound,
		      "unwind_short", (json_int_t)r->unwind_short,
		      "distinct_stacks", (json_int_t)r->distinct_stacks,
		      "rss_peak", (json_int_t)r->rss_peak,
		      "bpf_bytes", (json_int_t)r->bpf_bytes,
		      "bound_bytes", (json_int_t)r->bound_bytes,
		      "bpf_bound_bytes", (json_int_t)r->bpf_bound_bytes,
		      "sites", sites,
		      "total_sites", (json_int_t)r->total_sites);
	return o;
}
