/*
 * Unit tests for the /proc/PID/maps parser (injector/symbols.c).
 *
 * Fixtures are data (tests/fixtures/maps/README): every NAME.txt must
 * parse to NAME.expected, every NAME.bad must be refused with the message
 * in NAME.err.  Adding a case means adding files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "injector/injector_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/maps"

static char *
slurp(const char *path)
{
	struct lp_err err = { 0 };
	char *buf = NULL;
	size_t cap = 0;

	if (lp_read_file(path, &buf, &cap, &err) < 0)
		fail_msg("%s", err.msg);
	return buf;
}

/* The .expected format of tests/fixtures/maps/README. */
static char *
format_maps(const struct inj_map *m, size_t n)
{
	size_t cap = 256 + n * 160, len = 0;
	char *out = malloc(cap);

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t need = 160 + (m[i].path ? strlen(m[i].path) : 0);

		if (len + need > cap) {
			cap = (len + need) * 2;
			out = realloc(out, cap);
		}
		len += (size_t)snprintf(out + len, cap - len,
					"%" PRIx64 " %" PRIx64 " %s %" PRIx64
					" %u:%u %" PRIu64 " %s\n", m[i].start,
					m[i].end, m[i].perms, m[i].offset,
					major(m[i].dev), minor(m[i].dev),
					m[i].inode,
					m[i].path ? m[i].path : "<anon>");
	}
	return out;
}

static bool
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);

	return n > k && !strcmp(s + n - k, suf);
}

static void
test_maps_fixtures_match_expected(void **state)
{
	struct dirent *de;
	int cases = 0;
	DIR *d;

	(void)state;
	d = opendir(FIXDIR);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[512], exp_path[512];
		struct lp_err err = { 0 };
		struct inj_map *m = NULL;
		char *text, *want, *got;
		size_t n = 0;

		if (!has_suffix(de->d_name, ".txt"))
			continue;
		snprintf(path, sizeof(path), FIXDIR "/%s", de->d_name);
		snprintf(exp_path, sizeof(exp_path), FIXDIR "/%.*s.expected",
			 (int)(strlen(de->d_name) - 4), de->d_name);
		text = slurp(path);
		want = slurp(exp_path);
		if (inj__parse_maps(text, &m, &n, &err) < 0)
			fail_msg("%s: %s", de->d_name, err.msg);
		got = format_maps(m, n);
		if (strcmp(got, want)) {
			print_message("%s: got\n%s", de->d_name, got);
			fail_msg("%s differs from %s", de->d_name, exp_path);
		}
		inj__free_maps(m, n);
		free(text);
		free(want);
		free(got);
		cases++;
	}
	closedir(d);
	assert_true(cases >= 3);
}

static void
test_maps_hostile_refused(void **state)
{
	struct dirent *de;
	int cases = 0;
	DIR *d;

	(void)state;
	d = opendir(FIXDIR);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[512], err_path[512];
		struct lp_err err = { 0 };
		struct inj_map *m = (struct inj_map *)1;
		size_t n = 99;
		char *text, *want;

		if (!has_suffix(de->d_name, ".bad"))
			continue;
		snprintf(path, sizeof(path), FIXDIR "/%s", de->d_name);
		snprintf(err_path, sizeof(err_path), FIXDIR "/%.*s.err",
			 (int)(strlen(de->d_name) - 4), de->d_name);
		text = slurp(path);
		want = slurp(err_path);
		want[strcspn(want, "\n")] = '\0';
		if (inj__parse_maps(text, &m, &n, &err) != -LP_EPARSE)
			fail_msg("%s: accepted", de->d_name);
		assert_int_equal(err.code, LP_EPARSE);
		if (strncmp(err.msg, want, strlen(want)))
			fail_msg("%s: message '%s', want '%s...'", de->d_name,
				 err.msg, want);
		/* outputs untouched on failure */
		assert_ptr_equal(m, (struct inj_map *)1);
		assert_int_equal(n, 99);
		free(text);
		free(want);
		cases++;
	}
	closedir(d);
	assert_true(cases >= 10);
}

static void
test_maps_fields(void **state)
{
	static const char text[] =
		"7f00c0000000-7f00c0021000 r-xs 0001a000 fd:02 123456"
		"                    /usr/lib/lib odd name.so (deleted)\n"
		"7f00c0021000-7f00c0022000 rw-p 00000000 00:00 0\n";
	struct inj_map *m;
	size_t n;

	(void)state;
	assert_int_equal(inj__parse_maps(text, &m, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].start, 0x7f00c0000000);
	assert_int_equal(m[0].end, 0x7f00c0021000);
	assert_string_equal(m[0].perms, "r-xs");
	assert_int_equal(m[0].offset, 0x1a000);
	assert_int_equal(m[0].dev, makedev(0xfd, 2));
	assert_int_equal(m[0].inode, 123456);
	assert_string_equal(m[0].path, "/usr/lib/lib odd name.so (deleted)");
	assert_null(m[1].path);
	assert_int_equal(m[1].inode, 0);
	inj__free_maps(m, n);
	inj__free_maps(NULL, 0);
}

static void
test_maps_live_self(void **state)
{
	char *text = slurp("/proc/self/maps");
	uintptr_t here = (uintptr_t)test_maps_live_self;
	struct inj_map *m;
	size_t n;
	bool found = false, heap_or_stack = false;

	(void)state;
	assert_int_equal(inj__parse_maps(text, &m, &n, NULL), 0);
	assert_true(n > 5);
	for (size_t i = 0; i < n; i++) {
		if (i)
			assert_true(m[i].start >= m[i - 1].end);
		if (here >= m[i].start && here < m[i].end) {
			found = true;
			assert_int_equal(m[i].perms[2], 'x');
			assert_non_null(strstr(m[i].path, "test_maps"));
		}
		if (m[i].path && !strcmp(m[i].path, "[stack]"))
			heap_or_stack = true;
	}
	assert_true(found);
	assert_true(heap_or_stack);
	inj__free_maps(m, n);
	free(text);
}

/* x86_Thread_features in /proc/PID/status: tests/fixtures/status/README */
static void
test_status_shadow_stack(void **state)
{
	static const struct {
		const char *name;
		bool shstk;
	} cases[] = {
		{ "shstk", true }, { "shstk-only", true },
		{ "locked-off", false }, { "none-enabled", false },
		{ "no-cet-kernel", false }, { "lookalike", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512], *buf;
		struct inj_procinfo pi;

		snprintf(path, sizeof(path), "%s/tests/fixtures/status/"
			 "%s.status", LP_SRCDIR, cases[i].name);
		buf = slurp(path);
		memset(&pi, 0, sizeof(pi));
		assert_int_equal(inj__parse_status(buf, 4242, &pi, NULL),
				 0);
		if (pi.shstk != cases[i].shstk)
			fail_msg("%s: shstk %d", cases[i].name, pi.shstk);
		/* the lines before were parsed as usual */
		assert_string_equal(pi.comm, "ruby");
		assert_int_equal(pi.threads, 2);
		free(buf);
	}
}

/* The probe of MAP_FIXED_NOREPLACE answers yes on this kernel (4.17+). */
static void
test_kernel_fixed_noreplace(void **state)
{
	struct lp_err err = { 0 };

	(void)state;
	assert_int_equal(inj__check_fixed_noreplace(&err), 0);
}

/*
 * Our mmap's result is the mapping seen afterwards, and only one with
 * everything of ours: a mapping of the target's that took the address
 * while the step was pending is never taken for ours.
 */
static void
test_maps_own_mapping(void **state)
{
	static const char text[] =
		"7f00c0000000-7f00c0001000 rwxs 00000000 00:01 5001"
		"                       /dev/zero (deleted)\n"
		"7f00c0010000-7f00c0011000 rw-p 00000000 00:00 0\n"
		"7f00c0020000-7f00c0022000 rwxs 00000000 00:01 5002"
		"                       /dev/zero (deleted)\n"
		"7f00c0030000-7f00c0031000 r-xs 00000000 00:01 5003"
		"                       /dev/zero (deleted)\n"
		"7f00c0040000-7f00c0041000 rwxs 00000000 00:01 4000"
		"                       /dev/zero (deleted)\n"
		"7f00c0050000-7f00c0051000 rwxs 00000000 fd:01 5005"
		"                       /tmp/x\n"
		"7f00c0060000-7f00c0061000 rwxp 00000000 00:00 0\n";
	const uint64_t before[] = { 4000, 17 };
	int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;
	struct inj_map *m;
	uint64_t ino = 0;
	size_t n;
	char perms[5];

	(void)state;
	assert_int_equal(inj__parse_maps(text, &m, &n, NULL), 0);
	/* ours: exact start, size, rwxs, /dev/zero, a new inode */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0000000, 4096, rwx, before,
				      2, &ino), 1);
	assert_int_equal(ino, 5001);
	ino = 0;
	/* the target's private anonymous memory at the address */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0010000, 4096, rwx, before,
				      2, &ino), 0);
	/* a shared mapping of another size, other permissions */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0020000, 4096, rwx, before,
				      2, &ino), 0);
	assert_int_equal(inj__own_map(m, n, 0x7f00c0030000, 4096, rwx, before,
				      2, &ino), 0);
	/* the address inside a mapping that starts lower */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0021000, 4096, rwx, before,
				      2, &ino), 0);
	/* an inode that was there before the mmap */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0040000, 4096, rwx, before,
				      2, &ino), 0);
	/* a file's shared mapping, a private rwx one */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0050000, 4096, rwx, before,
				      2, &ino), 0);
	assert_int_equal(inj__own_map(m, n, 0x7f00c0060000, 4096, rwx, before,
				      2, &ino), 0);
	/* nothing at all there */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0070000, 4096, rwx, before,
				      2, &ino), 0);
	assert_int_equal(ino, 0);
	/* read-only asked: the r-xs one of that size is it */
	assert_int_equal(inj__own_map(m, n, 0x7f00c0030000, 4096,
				      PROT_READ | PROT_EXEC, before, 2, &ino),
			 1);
	assert_int_equal(ino, 5003);
	inj__prot_perms(PROT_READ | PROT_WRITE, perms);
	assert_string_equal(perms, "rw-s");
	inj__free_maps(m, n);
}

/*
 * The code page's address: never at the top of a gap (where the kernel's
 * top-down allocator puts the target's next mmap), never right above the
 * heap (where brk grows), never in the gap the stack grows into; random.
 */
static void
test_maps_free_gap_placement(void **state)
{
	static const char text[] =
		"55d0a0000000-55d0a0010000 r-xp 00000000 fd:01 11 /usr/bin/ruby\n"
		"55d0a1000000-55d0a2000000 rw-p 00000000 00:00 0  [heap]\n"
		"7f1000000000-7f1000100000 rw-p 00000000 00:00 0\n"
		"7f1000200000-7f1000300000 r-xp 00000000 fd:01 12 /usr/lib/libc.so.6\n"
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0  [stack]\n"
		"7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0  [vdso]\n";
	struct inj_target t = { 0 };
	uint64_t a, b = 0, gap_lo = 0x55d0a2000000, gap_hi = 0x7f1000000000;
	uint64_t eighth = (gap_hi - gap_lo) / 8;
	bool differ = false;

	(void)state;
	assert_int_equal(inj__parse_maps(text, &t.maps, &t.nmaps, NULL), 0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(inj_free_gap(&t, 4096, &a), 0);
		assert_int_equal(a & 4095, 0);
		/* in the largest gap, its second eighth from the bottom */
		assert_true(a >= gap_lo + eighth);
		assert_true(a + 4096 <= gap_lo + 2 * eighth + 4096);
		if (i && a != b)
			differ = true;
		b = a;
	}
	assert_true(differ);
	inj__free_maps(t.maps, t.nmaps);
	t.maps = NULL;
	t.nmaps = 0;
	assert_int_equal(inj_free_gap(&t, 4096, &a), -LP_ENOMEM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_fixtures_match_expected),
		cmocka_unit_test(test_status_shadow_stack),
		cmocka_unit_test(test_kernel_fixed_noreplace),
		cmocka_unit_test(test_maps_hostile_refused),
		cmocka_unit_test(test_maps_fields),
		cmocka_unit_test(test_maps_own_mapping),
		cmocka_unit_test(test_maps_free_gap_placement),
		cmocka_unit_test(test_maps_live_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
