/*
 * Unit tests for analysis/heapseries.c: growth across a series of heap
 * dumps, plain and gzip'd (fixtures in tests/fixtures/heapseries, see its
 * README).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "analysis/analysis.h"
#include "common/err.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/heapseries"

static void
load(struct ana_hs *s, const char *const *names, size_t n)
{
	struct lp_err err = { 0 };
	char path[512];

	assert_int_equal(ana_hs_init(s, &err), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", FIXDIR, names[i]);
		if (ana_hs_add_file(s, path, 1, &err) < 0)
			fail_msg("%s: %s", path, err.msg);
	}
	assert_int_equal(ana_hs_finish(s, &err), 0);
}

static const struct ana_hs_group *
site(const struct ana_hs *s, const char *file, int64_t line)
{
	for (size_t i = 0; i < s->ngroups; i++)
		if (s->groups[i].file && !strcmp(s->groups[i].file, file) &&
		    s->groups[i].line == line)
			return &s->groups[i];
	fail_msg("no group %s:%lld", file, (long long)line);
	return NULL;
}

static void
test_heapseries_sites_growing_every_interval(void **state)
{
	static const char *const names[] = {
		"traced.1.json", "traced.2.json", "traced.3.json",
		"traced.4.json.gz",
	};
	const struct ana_hs_group *g;
	struct ana_hs s;

	(void)state;
	load(&s, names, 4);
	assert_int_equal(s.method, ANA_HD_SITES);
	assert_int_equal(s.ndumps, 4);
	assert_int_equal(s.ngroups, 3);
	/* the one growing in every interval comes first */
	g = &s.groups[0];
	assert_string_equal(g->file, "grow.rb");
	assert_int_equal(g->line, 3);
	assert_true(g->every);
	assert_int_equal(g->grew, 3);
	assert_int_equal(g->count[0], 1);
	assert_int_equal(g->count[3], 7);	/* read from the .gz */
	assert_int_equal(g->bytes[3], 7 * 40);
	assert_true(g->per_interval > 1.99 && g->per_interval < 2.01);
	assert_string_equal(g->type, "STRING");
	assert_string_equal(g->cls, "String");
	g = site(&s, "steady.rb", 7);
	assert_false(g->every);
	assert_int_equal(g->grew, 0);
	assert_int_equal(g->count[0], 4);
	assert_int_equal(g->count[3], 4);
	assert_string_equal(g->cls, "Array");
	g = site(&s, "wobble.rb", 9);
	assert_false(g->every);
	assert_int_equal(g->grew, 2);
	/* 11 objects per dump at most: 1 + 4 + 2 + 1 without a site, ... */
	assert_int_equal(s.objects[0], 1 + 4 + 2 + 1 + 2);
	ana_hs_release(&s);
}

static void
test_heapseries_classes_without_allocation_info(void **state)
{
	static const char *const names[] = {
		"untraced.1.json", "untraced.2.json", "untraced.3.json",
	};
	struct ana_hs s;
	bool seen = false;

	(void)state;
	load(&s, names, 3);
	assert_int_equal(s.method, ANA_HD_CLASSES);
	for (size_t i = 0; i < s.ngroups; i++) {
		const struct ana_hs_group *g = &s.groups[i];

		assert_null(g->file);
		if (g->cls && !strcmp(g->cls, "String") &&
		    !strcmp(g->type, "STRING")) {
			assert_true(g->every);
			assert_int_equal(g->count[0], 1);
			assert_int_equal(g->count[2], 3);
			assert_int_equal(i, 0);
			seen = true;
		}
		if (g->cls && !strcmp(g->cls, "Array"))
			assert_false(g->every);
	}
	assert_true(seen);
	ana_hs_release(&s);
}

/* One dump without allocation info makes the whole series by class. */
static void
test_heapseries_mixed_falls_back_to_classes(void **state)
{
	static const char *const names[] = {
		"traced.1.json", "untraced.2.json",
	};
	struct ana_hs s;

	(void)state;
	load(&s, names, 2);
	assert_int_equal(s.method, ANA_HD_CLASSES);
	ana_hs_release(&s);
}

static void
test_heapseries_truncated_gzip_is_an_error(void **state)
{
	struct lp_err err = { 0 };
	struct ana_hs s;

	(void)state;
	assert_int_equal(ana_hs_init(&s, &err), 0);
	assert_int_equal(ana_hs_add_file(&s, FIXDIR "/truncated.json.gz", 1,
					 &err), -LP_EIO);
	assert_non_null(strstr(err.msg, "truncated.json.gz"));
	assert_int_equal(ana_hs_add_file(&s, FIXDIR "/missing.json", 1, &err),
			 -LP_EIO);
	ana_hs_release(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heapseries_sites_growing_every_interval),
		cmocka_unit_test(test_heapseries_classes_without_allocation_info),
		cmocka_unit_test(test_heapseries_mixed_falls_back_to_classes),
		cmocka_unit_test(test_heapseries_truncated_gzip_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
