/*
 * The fast sampler (smaps_rollup + maps + pagemap) must give the same
 * figures as a full smaps parse on a quiescent process: a child with
 * many small anonymous mappings (adjacent, alternating protections, so
 * one pagemap read covers many of them), a large one half touched, and
 * [heap] growth.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/probes.h"

static pid_t
start_child(int nsmall, size_t big_pages, int *to)
{
	int p[2], q[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		long pg = sysconf(_SC_PAGESIZE);
		char *base, *big, *heap;

		close(p[1]);
		close(q[0]);
		base = mmap(NULL, (size_t)(nsmall * pg), PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED)
			_exit(2);
		for (int i = 0; i < nsmall; i++) {
			if (i & 1)
				mprotect(base + i * pg, (size_t)pg, PROT_READ);
			else if (i % 4 == 0)
				base[i * pg] = 1;	/* every other rw page */
		}
		big = mmap(NULL, big_pages * (size_t)pg, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (big == MAP_FAILED)
			_exit(2);
		for (size_t i = 0; i < big_pages; i += 2)
			big[i * (size_t)pg] = 1;
		heap = malloc(64 * 1024);	/* below the mmap threshold */
		if (!heap)
			_exit(2);
		memset(heap, 1, 64 * 1024);
		if (write(q[1], "r", 1) != 1)
			_exit(2);
		if (read(p[0], &c, 1) < 0)	/* quiescent until told */
			_exit(2);
		_exit(0);
	}
	close(p[0]);
	close(q[1]);
	assert_int_equal(read(q[0], &c, 1), 1);
	close(q[0]);
	*to = p[1];
	return pid;
}

static void
compare(int nsmall, size_t big_pages)
{
	struct probe_fast *f = probe_fast_new();
	struct ana_smaps full;
	struct ana_totals fast;
	struct lp_err err = { 0 };
	int to, status;
	pid_t pid = start_child(nsmall, big_pages, &to);

	ana_smaps_init(&full);
	assert_int_equal(probe_smaps_read(pid, false, &full, &err), 0);
	assert_int_equal(probe_sample_fast(f, pid, &fast, &err), 0);
	assert_true(full.nmaps > (size_t)nsmall);
	for (int c = ANA_MAP_HEAP; c <= ANA_MAP_ANON; c++) {
		assert_int_equal(fast.cls[c].rss, full.totals.cls[c].rss);
		assert_int_equal(fast.cls[c].size, full.totals.cls[c].size);
	}
	assert_int_equal(fast.rss, full.totals.rss);
	close(to);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	ana_smaps_release(&full);
	probe_fast_free(f);
}

static void
test_fast_sample_matches_smaps_many_small(void **state)
{
	(void)state;
	compare(1000, 512);
}

static void
test_fast_sample_matches_smaps_big_range(void **state)
{
	(void)state;
	/* larger than one pagemap window: counted chunk by chunk */
	compare(10, 20000);
}

static void
test_fast_sample_gone_process(void **state)
{
	struct probe_fast *f = probe_fast_new();
	struct ana_totals t;
	struct lp_err err = { 0 };
	int status;
	pid_t pid = fork();

	(void)state;
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(probe_sample_fast(f, pid, &t, &err), -LP_ENOPROC);
	probe_fast_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_sample_matches_smaps_many_small),
		cmocka_unit_test(test_fast_sample_matches_smaps_big_range),
		cmocka_unit_test(test_fast_sample_gone_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
