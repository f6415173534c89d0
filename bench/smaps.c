/*
 * Benchmark: cost of one smaps sample of a process with many mappings.
 *
 * A helper child creates N anonymous mappings (one page each, alternating
 * rw-/r-- so the kernel cannot merge them, the writable ones touched so
 * they have Rss).  For each N it measures, as the median over many
 * samples:
 *   full      probe_smaps_read(pid, false): read + parse /proc/PID/smaps
 *   rollup    probe_smaps_read(pid, true):  read + parse smaps_rollup
 *   read      plain read of /proc/PID/smaps, no parsing (the kernel's cost)
 *   parse     ana_smaps_parse_buf() on text already in memory
 *   pmap -X   fork + exec of "pmap -X PID" (the baseline), fewer runs
 *
 *   smaps [--samples N] [--pmap-runs N] [--maps N[,N...]]
 *   smaps --hold N      create N mappings, print the pid, wait for a
 *                       signal (used to capture test fixtures)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "common/util.h"
#include "probes/probes.h"

static void
make_mappings(size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *base;
	size_t i;

	base = mmap(NULL, n * (size_t)pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		perror("smaps bench: mmap");
		_exit(1);
	}
	for (i = 0; i < n; i++) {
		if (i % 2 == 0) {
			base[i * (size_t)pg] = 1;
		} else if (mprotect(base + i * (size_t)pg, (size_t)pg,
				    PROT_READ) < 0) {
			perror("smaps bench: mprotect");
			_exit(1);
		}
	}
}

/* Fork a child holding n extra mappings; returns its pid once ready. */
static pid_t
start_holder(size_t n)
{
	int fd[2];
	pid_t pid;
	char c;

	if (pipe(fd) < 0) {
		perror("smaps bench: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("smaps bench: fork");
		exit(1);
	}
	if (pid == 0) {
		close(fd[0]);
		make_mappings(n);
		if (write(fd[1], "r", 1) != 1)
			_exit(1);
		close(fd[1]);
		for (;;)
			pause();
	}
	close(fd[1]);
	if (read(fd[0], &c, 1) != 1) {
		fprintf(stderr, "smaps bench: helper died before ready\n");
		exit(1);
	}
	close(fd[0]);
	return pid;
}

static void
stop_holder(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Number of mappings of this process (a child starts with the same). */
static size_t
own_mappings(void)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t len, i;

	len = lp_read_file("/proc/self/maps", &buf, &cap, NULL);
	for (i = 0; i < len; i++)
		n += buf[i] == '\n';
	free(buf);
	return n;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
median_us(uint64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	if (n % 2)
		return (double)ns[n / 2] / 1e3;
	return ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2e3;
}

/* One pmap -X PID, output thrown away; 0 when pmap cannot run. */
static uint64_t
time_pmap(pid_t target)
{
	uint64_t t0 = lp_mono_ns();
	char arg[16];
	pid_t pid;
	int st;

	snprintf(arg, sizeof(arg), "%d", (int)target);
	pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("pmap", "pmap", "-X", arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return 0;
	return lp_mono_ns() - t0;
}

static void
check(int rc, const struct lp_err *err)
{
	if (rc < 0) {
		fprintf(stderr, "smaps bench: %s\n", err->msg);
		exit(1);
	}
}

enum { M_FULL, M_ROLLUP, M_READ, M_PARSE, M_FAST, M_PMAP, M_N };

/*
 * All measurements interleaved, one of each per round (pmap every few
 * rounds), so that they share whatever else the machine is doing.
 */
static void
measure(pid_t pid, int samples, int pmap_runs, double med[M_N],
	size_t *nmaps)
{
	struct ana_smaps full, roll, raw;
	struct lp_err err = { 0 };
	struct probe_fast *fast;
	struct ana_totals tot;
	uint64_t *ns[M_N], t0;
	int i, k, np = 0, every;
	char path[64];

	ana_smaps_init(&full);
	ana_smaps_init(&roll);
	ana_smaps_init(&raw);
	fast = probe_fast_new();
	for (k = 0; k < M_N; k++)
		ns[k] = calloc((size_t)samples, sizeof(uint64_t));
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	/* Warm the buffers once: the sampler reuses them between samples. */
	check(probe_smaps_read(pid, false, &full, &err), &err);
	check(probe_smaps_read(pid, true, &roll, &err), &err);
	check((int)lp_read_file(path, &raw.buf, &raw.cap, &err), &err);
	*nmaps = full.nmaps;
	every = samples / pmap_runs > 0 ? samples / pmap_runs : 1;
	for (i = 0; i < samples; i++) {
		t0 = lp_mono_ns();
		check(probe_smaps_read(pid, false, &full, &err), &err);
		ns[M_FULL][i] = lp_mono_ns() - t0;

		t0 = lp_mono_ns();
		check(probe_smaps_read(pid, true, &roll, &err), &err);
		ns[M_ROLLUP][i] = lp_mono_ns() - t0;

		t0 = lp_mono_ns();
		check((int)lp_read_file(path, &raw.buf, &raw.cap, &err), &err);
		ns[M_READ][i] = lp_mono_ns() - t0;

		/* what attach and watch --all sample between batches:
		 * smaps_rollup + maps + pagemap of [heap]/arena/anon */
		t0 = lp_mono_ns();
		check(probe_sample_fast(fast, pid, &tot, &err), &err);
		ns[M_FAST][i] = lp_mono_ns() - t0;

		/* the text of the last full sample, already in memory */
		t0 = lp_mono_ns();
		check(ana_smaps_parse_buf(&full, full.len, &err), &err);
		ns[M_PARSE][i] = lp_mono_ns() - t0;

		if (np < pmap_runs && i % every == 0) {
			ns[M_PMAP][np] = time_pmap(pid);
			np = ns[M_PMAP][np] ? np + 1 : pmap_runs + 1;
		}
	}
	for (k = 0; k < M_PMAP; k++)
		med[k] = median_us(ns[k], samples);
	med[M_PMAP] = np > 0 && np <= pmap_runs ? median_us(ns[M_PMAP], np)
						: -1;
	for (k = 0; k < M_N; k++)
		free(ns[k]);
	ana_smaps_release(&full);
	ana_smaps_release(&roll);
	ana_smaps_release(&raw);
	probe_fast_free(fast);
}

static int
run(size_t extra, int samples, int pmap_runs)
{
	double med[M_N], full, rollup, rd, parse, pmap, fastu;
	size_t nmaps = 0;
	pid_t pid;
	int ok = 1;

	pid = start_holder(extra);
	measure(pid, samples, pmap_runs, med, &nmaps);
	stop_holder(pid);
	full = med[M_FULL];
	rollup = med[M_ROLLUP];
	rd = med[M_READ];
	parse = med[M_PARSE];
	pmap = med[M_PMAP];
	fastu = med[M_FAST];

	printf("\ntarget with %zu mappings (median of %d samples, pmap of %d runs)\n",
	       nmaps, samples, pmap_runs);
	printf("  %-34s %10.1f us\n", "leakprobe smaps read+parse", full);
	printf("  %-34s %10.1f us\n", "leakprobe smaps_rollup read+parse",
	       rollup);
	printf("  %-34s %10.1f us\n", "leakprobe fast sample (attach)",
	       fastu);
	printf("  %-34s %10.1f us\n", "plain read of smaps (kernel)", rd);
	printf("  %-34s %10.1f us  (%.0f ns/mapping)\n",
	       "parse only (text in memory)", parse,
	       nmaps ? parse * 1e3 / (double)nmaps : 0.0);
	if (pmap >= 0)
		printf("  %-34s %10.1f us\n", "pmap -X (fork+exec)", pmap);
	else
		printf("  %-34s %10s\n", "pmap -X (fork+exec)", "n/a");
	printf("  ratios: parse overhead over plain read %+.1f %%",
	       rd > 0 ? (full - rd) / rd * 100 : 0.0);
	if (pmap >= 0)
		printf("; pmap -X / full %.1fx; pmap -X / fast %.1fx",
		       pmap / full, pmap / fastu);
	printf("\n");
	if (nmaps >= 1000 && nmaps < 2000) {
		printf("  goal sample <= 1000 us at ~1k mappings: full smaps %s",
		       full <= 1000 ? "met" : "MISSED");
		if (full > 1000 && rd > 1000)
			printf(" (the kernel's read alone takes %.0f us)", rd);
		printf(", smaps_rollup %s, fast sample (rollup + maps + "
		       "pagemap, what attach uses) %s\n",
		       rollup <= 1000 ? "met" : "MISSED",
		       fastu <= 1000 ? "met" : "MISSED");
		ok &= full <= 1000;
	}
	if (pmap >= 0) {
		printf("  goal >= 5x faster than pmap -X: %s\n",
		       pmap / full >= 5 ? "met" : "MISSED");
		ok &= pmap / full >= 5;
	}
	return ok;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "samples", required_argument, NULL, 's' },
		{ "pmap-runs", required_argument, NULL, 'p' },
		{ "maps", required_argument, NULL, 'm' },
		{ "hold", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	const char *maps = "1000,10000";
	int samples = 200, pmap_runs = 20, c;
	long hold = -1;
	char *list, *tok, *save;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			samples = atoi(optarg);
			break;
		case 'p':
			pmap_runs = atoi(optarg);
			break;
		case 'm':
			maps = optarg;
			break;
		case 'H':
			hold = atol(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: smaps [--samples N] [--pmap-runs N] [--maps N,N] | --hold N\n");
			return 2;
		}
	}
	if (samples < 1 || pmap_runs < 1) {
		fprintf(stderr, "smaps bench: --samples and --pmap-runs must be >= 1\n");
		return 2;
	}
	if (hold >= 0) {
		make_mappings((size_t)hold);
		printf("%d\n", (int)getpid());
		fflush(stdout);
		for (;;)
			pause();
	}
	printf("smaps sampling cost: a helper process with N mappings, most of them\n"
	       "one-page anonymous, alternating rw-/r-- (one page of each rw- touched)\n");
	list = strdup(maps);
	c = 1;
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		/* The helper starts with this process's own mappings. */
		size_t n = (size_t)atol(tok), base = own_mappings();

		c &= run(n > base ? n - base : 0, samples, pmap_runs);
	}
	free(list);
	return 0;
}
