/*
 * Benchmark: one watch --all sweep over a fleet of processes.
 *
 * bench/watchall.sh starts idle Ruby targets and one or more "sparse"
 * ones (a huge MAP_NORESERVE mapping with a little written, like a
 * sanitizer's shadow) and passes their pids.  A sweep is what watch --all
 * does per process: /proc/PID/stat, then a sample.  Three ways, in the
 * same run:
 *   fast      probe_sample_fast as watch --all uses it (pagemap up to
 *             512 Ki pages of writable anonymous ranges, full smaps over)
 *   before    probe_sample_fast with pagemap always (the limit off: the
 *             sampler as it was)
 *   smaps     probe_smaps_read(pid, false): what named PIDs use
 *
 *   watchall [--runs N] [--before-runs N] IDLE_PID... [sparse SPARSE_PID...]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"
#include "common/util.h"
#include "probes/probes.h"

enum mode { FAST, BEFORE, SMAPS, NMODES };
static const char *mode_name[NMODES] = {
	"fast sample (pagemap <= 2 GiB, else smaps)",
	"fast sample, pagemap always (before)",
	"full smaps (named PIDs)",
};

struct result {
	double ms;		/* median sweep */
	uint64_t reads;		/* pagemap reads per sweep */
	uint64_t full;		/* full smaps reads per sweep */
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One sweep over pids; milliseconds. */
static double
sweep(enum mode m, struct probe_fast *f, struct ana_smaps *s,
      const pid_t *pids, size_t n)
{
	uint64_t t0 = lp_mono_ns();

	for (size_t i = 0; i < n; i++) {
		struct lp_err err = { 0 };
		struct probe_proc pp;
		struct ana_totals t;
		int rc;

		if (probe_proc_stat(pids[i], &pp, &err) < 0) {
			fprintf(stderr, "watchall bench: %s\n", err.msg);
			exit(1);
		}
		rc = m == SMAPS ? probe_smaps_read(pids[i], false, s, &err) :
		     probe_sample_fast(f, pids[i], &t, &err);
		if (rc < 0) {
			fprintf(stderr, "watchall bench: pid %d: %s\n",
				(int)pids[i], err.msg);
			exit(1);
		}
	}
	return (double)(lp_mono_ns() - t0) / 1e6;
}

/*
 * The three ways interleaved, one sweep of each per round (the before
 * way only in its first before_runs rounds), so that they share whatever
 * else the machine is doing.
 */
static void
report(const char *what, const pid_t *pids, size_t n, int runs,
       int before_runs, struct result *out)
{
	struct probe_fast *f[NMODES];
	struct probe_fast_stats st;
	struct ana_smaps s;
	double *ms[NMODES];
	int done[NMODES] = { 0 };

	if (!n)
		return;
	ana_smaps_init(&s);
	for (int m = 0; m < NMODES; m++) {
		f[m] = probe_fast_new();
		ms[m] = calloc((size_t)runs, sizeof(**ms));
		if (!ms[m])
			exit(1);
	}
	probe_fast_set_max_pages(f[BEFORE], UINT64_MAX);
	for (int i = 0; i < runs; i++)
		for (int m = 0; m < NMODES; m++)
			if (m != BEFORE || i < before_runs)
				ms[m][done[m]++] = sweep((enum mode)m, f[m],
							 &s, pids, n);
	printf("\n%zu %s (median sweep of %d rounds; pagemap always: %d)\n",
	       n, what, runs, done[BEFORE]);
	for (int m = 0; m < NMODES; m++) {
		int k = done[m];

		qsort(ms[m], (size_t)k, sizeof(**ms), cmp_double);
		out[m].ms = k % 2 ? ms[m][k / 2] :
			    (ms[m][k / 2 - 1] + ms[m][k / 2]) / 2;
		probe_fast_stats(f[m], &st);
		out[m].reads = st.pagemap_reads / (uint64_t)k;
		out[m].full = st.full_smaps / (uint64_t)k;
		printf("  %-44s %10.1f ms  %8.2f ms/process  %9llu pagemap "
		       "reads  %3llu full smaps\n", mode_name[m], out[m].ms,
		       out[m].ms / (double)n, (unsigned long long)out[m].reads,
		       (unsigned long long)out[m].full);
		probe_fast_free(f[m]);
		free(ms[m]);
	}
	ana_smaps_release(&s);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "before-runs", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct result idle[NMODES] = { 0 }, sparse[NMODES] = { 0 };
	int runs = 5, before_runs = 1, c, ok = 1;
	size_t nidle = 0, nsparse = 0;
	pid_t *pids;
	bool after_dash = false;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			runs = atoi(optarg);
		else if (c == 'b')
			before_runs = atoi(optarg);
		else
			return 2;
	}
	if (runs < 1 || before_runs < 1 || optind >= argc) {
		fprintf(stderr, "usage: watchall [--runs N] [--before-runs N] "
			"IDLE_PID... [sparse SPARSE_PID...]\n");
		return 2;
	}
	pids = calloc((size_t)argc, sizeof(*pids));
	if (!pids)
		return 1;
	/* idle pids first, then the sparse ones */
	for (int i = optind; i < argc; i++) {
		pid_t p;

		if (!strcmp(argv[i], "sparse")) {
			after_dash = true;
			continue;
		}
		if (lp_parse_pid(argv[i], &p) < 0) {
			fprintf(stderr, "watchall bench: bad pid '%s'\n",
				argv[i]);
			return 2;
		}
		pids[nidle + nsparse] = p;
		if (after_dash)
			nsparse++;
		else
			nidle++;
	}
	report("idle Ruby processes", pids, nidle, runs, runs, idle);
	report("sparse process(es) (huge MAP_NORESERVE mapping)", pids + nidle,
	       nsparse, runs, before_runs, sparse);

	double after = idle[FAST].ms + sparse[FAST].ms;
	double before = idle[BEFORE].ms + sparse[BEFORE].ms;
	size_t n = nidle + nsparse;

	printf("\nfleet of %zu: sweep %.1f ms (%.2f ms/process), before "
	       "%.1f ms (%.2f ms/process): %.1fx\n", n, after,
	       after / (double)n, before, before / (double)n,
	       after > 0 ? before / after : 0.0);
	/* a sweep should cost milliseconds per process */
	ok = idle[FAST].ms <= 5.0 * (double)nidle &&
	     sparse[FAST].ms <= 5.0 * (double)nsparse;
	printf("  goal <= 5 ms per process, every kind of process: %s\n",
	       ok ? "met" : "MISSED");
	free(pids);
	return ok ? 0 : 1;
}
