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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_fixtures_match_expected),
		cmocka_unit_test(test_status_shadow_stack),
		cmocka_unit_test(test_kernel_fixed_noreplace),
		cmocka_unit_test(test_maps_hostile_refused),
		cmocka_unit_test(test_maps_fields),
		cmocka_unit_test(test_maps_live_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
