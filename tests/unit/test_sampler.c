/*
 * The fast sampler (smaps_rollup + maps + pagemap) must give the same
 * figures as a full smaps parse on a quiescent process: a child with
 * many small anonymous mappings (adjacent, alternating protections, so
 * one pagemap read covers many of them), a large one half touched, and
 * [heap] growth.  A child with a huge sparse writable mapping (like a
 * sanitizer's shadow) is read from its full smaps: pagemap would cost 8
 * bytes per page of it, populated or not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/probes.h"

/* A sanitizer's own shadow makes every forked child huge and sparse. */
#if defined(__SANITIZE_ADDRESS__)
#define SHADOWED true
#else
#define SHADOWED false
#endif

static pid_t
start_child(int nsmall, size_t big_pages, size_t sparse_gib, int *to)
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
		if (sparse_gib) {
			size_t len = sparse_gib << 30;
			char *sp = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS |
					MAP_NORESERVE, -1, 0);

			if (sp == MAP_FAILED)
				_exit(2);
			for (size_t off = 0; off < len; off += len / 64)
				sp[off] = 1;	/* 64 pages, far apart */
		}
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

static bool
same_totals(const struct ana_totals *a, const struct ana_totals *b)
{
	for (int c = ANA_MAP_HEAP; c <= ANA_MAP_ANON; c++)
		if (a->cls[c].rss != b->cls[c].rss ||
		    a->cls[c].size != b->cls[c].size)
			return false;
	return a->rss == b->rss;
}

/*
 * Full smaps, then the fast sample, then full smaps again.  The child
 * does nothing, but the kernel may still change it between the reads
 * (khugepaged filling a huge page raises Rss): only a pair of equal
 * full reads is a fair reference, so try a few times.
 */
static void
compare(int nsmall, size_t big_pages, size_t sparse_gib)
{
	struct probe_fast *f = probe_fast_new();
	struct probe_fast_stats st;
	struct ana_smaps full[2];
	struct ana_totals fast;
	struct lp_err err = { 0 };
	int to, status, tries;
	pid_t pid = start_child(nsmall, big_pages, sparse_gib, &to);

	for (tries = 0; tries < 5; tries++) {
		ana_smaps_init(&full[0]);
		ana_smaps_init(&full[1]);
		assert_int_equal(probe_smaps_read(pid, false, &full[0], &err),
				 0);
		assert_int_equal(probe_sample_fast(f, pid, &fast, &err), 0);
		assert_int_equal(probe_smaps_read(pid, false, &full[1], &err),
				 0);
		if (same_totals(&full[0].totals, &full[1].totals))
			break;
		ana_smaps_release(&full[0]);
		ana_smaps_release(&full[1]);
	}
	assert_true(tries < 5);		/* the child never held still */
	assert_true(full[0].nmaps > (size_t)nsmall);
	for (int c = ANA_MAP_HEAP; c <= ANA_MAP_ANON; c++) {
		if (fast.cls[c].rss != full[0].totals.cls[c].rss ||
		    fast.cls[c].size != full[0].totals.cls[c].size)
			print_message("class %d: rss %zu/%zu size %zu/%zu "
				      "(fast/full)\n", c,
				      (size_t)fast.cls[c].rss,
				      (size_t)full[0].totals.cls[c].rss,
				      (size_t)fast.cls[c].size,
				      (size_t)full[0].totals.cls[c].size);
		assert_int_equal(fast.cls[c].rss, full[0].totals.cls[c].rss);
		assert_int_equal(fast.cls[c].size, full[0].totals.cls[c].size);
	}
	assert_int_equal(fast.rss, full[0].totals.rss);
	probe_fast_stats(f, &st);
	assert_int_equal(st.samples, (uint64_t)tries + 1);
	if (sparse_gib || SHADOWED) {
		/* full smaps every time, not one pagemap read */
		assert_int_equal(st.full_smaps, st.samples);
		assert_int_equal(st.pagemap_reads, 0);
		if (sparse_gib)
			assert_true(fast.cls[ANA_MAP_ANON].size >=
				    (uint64_t)sparse_gib << 30);
	} else {
		assert_int_equal(st.full_smaps, 0);
		assert_true(st.pagemap_reads >= st.samples);
	}
	close(to);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	ana_smaps_release(&full[0]);
	ana_smaps_release(&full[1]);
	probe_fast_free(f);
}

static void
test_fast_sample_matches_smaps_many_small(void **state)
{
	(void)state;
	compare(1000, 512, 0);
}

static void
test_fast_sample_matches_smaps_big_range(void **state)
{
	(void)state;
	/* larger than one pagemap window: counted chunk by chunk */
	compare(10, 20000, 0);
}

static void
test_fast_sample_huge_sparse_range(void **state)
{
	(void)state;
	/* 64 GiB mapped, 64 pages touched: 16 Mi pagemap entries (2048
	 * reads) for 256 KiB of memory; full smaps gives the same figures */
	compare(10, 512, 64);
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
		cmocka_unit_test(test_fast_sample_huge_sparse_range),
		cmocka_unit_test(test_fast_sample_gone_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
