/*
 * Unit tests for analysis/stacks.c and chart.c: folded stacks (order,
 * names cleaned), the pprof encoding read back with the generated
 * decoder (interning of strings, functions, locations, mappings), HTML
 * escaping of hostile strings (markup, control bytes, invalid UTF-8),
 * and the SVGs (flame graph, chart) carrying no markup from names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "analysis/analysis.h"
#include "analysis/profile.pb-c.h"

/* Two stacks sharing their root and a mapping (leaf first). */
static const struct ana_prof_map maps[] = {
	{ 0x1000, 0x9000, 0, "/usr/lib/libfoo.so", "abcdef0123" },
};
static const struct ana_prof_frame s1[] = {
	{ "malloc", NULL, 0, 0x1100, 0 },
	{ "grow;er", NULL, 0, 0x1200, 0 },
	{ "main", NULL, 0, 0x1300, 0 },
};
static const struct ana_prof_frame s2[] = {
	{ "calloc", NULL, 0, 0x1400, 0 },
	{ "main", NULL, 0, 0x1300, 0 },
};
static const struct ana_prof_stack stacks[] = {
	{ s1, 3, 4096, 16 },
	{ s2, 2, 100, 1 },
};

static struct ana_prof
prof(void)
{
	static const char *const cm[] = { "a comment" };
	struct ana_prof p = { 0 };

	p.stacks = stacks;
	p.nstacks = 2;
	p.maps = maps;
	p.nmaps = 1;
	p.kind = "inuse";
	p.duration_ns = 1500000000;
	p.period = 4;
	p.comments = cm;
	p.ncomments = 1;
	return p;
}

static char *
capture(int (*fn)(const struct ana_prof *, FILE *), const struct ana_prof *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(fn(p, fp), 0);
	fclose(fp);
	return buf;
}

static int
flame(const struct ana_prof *p, FILE *fp)
{
	return ana_prof_flame_svg(p, fp, 600);
}

static void
test_folded_root_first_names_cleaned(void **state)
{
	struct ana_prof p = prof();
	char *out = capture(ana_prof_folded, &p);

	(void)state;
	assert_string_equal(out, "main;grow_er;malloc 4096\n"
			    "main;calloc 100\n");
	free(out);
}

static const char *
str(const Perftools__Profiles__Profile *pr, int64_t i)
{
	assert_true(i >= 0 && (size_t)i < pr->n_string_table);
	return pr->string_table[i];
}

static void
test_pprof_round_trip(void **state)
{
	struct ana_prof p = prof();
	uint8_t *gz = NULL, raw[65536];
	size_t gzlen = 0;
	uLongf rawlen = sizeof(raw);
	z_stream z;
	Perftools__Profiles__Profile *pr;

	(void)state;
	assert_int_equal(ana_prof_pprof(&p, &gz, &gzlen, NULL), 0);
	assert_true(gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = raw;
	z.avail_out = sizeof(raw);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	rawlen = sizeof(raw) - z.avail_out;
	inflateEnd(&z);
	pr = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	assert_non_null(pr);
	assert_string_equal(pr->string_table[0], "");
	assert_int_equal(pr->n_sample_type, 2);
	assert_string_equal(str(pr, pr->sample_type[0]->type), "inuse_objects");
	assert_string_equal(str(pr, pr->sample_type[0]->unit), "count");
	assert_string_equal(str(pr, pr->sample_type[1]->type), "inuse_space");
	assert_string_equal(str(pr, pr->sample_type[1]->unit), "bytes");
	assert_string_equal(str(pr, pr->default_sample_type), "inuse_space");
	assert_int_equal(pr->n_sample, 2);
	assert_int_equal(pr->sample[0]->value[0], 16);
	assert_int_equal(pr->sample[0]->value[1], 4096);
	assert_int_equal(pr->sample[0]->n_location_id, 3);
	/* "main" at the same address: one location, one function */
	assert_int_equal(pr->n_location, 4);
	assert_int_equal(pr->n_function, 4);
	assert_int_equal(pr->sample[0]->location_id[2],
			 pr->sample[1]->location_id[1]);
	for (size_t i = 0; i < pr->n_location; i++) {
		const Perftools__Profiles__Location *l = pr->location[i];
		const Perftools__Profiles__Function *f;

		assert_int_equal(l->id, i + 1);
		assert_int_equal(l->mapping_id, 1);
		assert_int_equal(l->n_line, 1);
		f = pr->function[l->line[0]->function_id - 1];
		if (l->address == 0x1200)
			assert_string_equal(str(pr, f->name), "grow;er");
	}
	assert_int_equal(pr->n_mapping, 1);
	assert_int_equal(pr->mapping[0]->memory_start, 0x1000);
	assert_int_equal(pr->mapping[0]->memory_limit, 0x9000);
	assert_string_equal(str(pr, pr->mapping[0]->filename),
			    "/usr/lib/libfoo.so");
	assert_string_equal(str(pr, pr->mapping[0]->build_id), "abcdef0123");
	assert_int_equal(pr->duration_nanos, 1500000000);
	assert_int_equal(pr->period, 4);
	assert_int_equal(pr->n_comment, 1);
	assert_string_equal(str(pr, pr->comment[0]), "a comment");
	perftools__profiles__profile__free_unpacked(pr, NULL);
	free(gz);
}

static char *
escaped(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	ana_html_escape(fp, s);
	fclose(fp);
	return buf;
}

static void
test_html_escape_hostile(void **state)
{
	char *e;

	(void)state;
	e = escaped("<script>alert('x' & \"y\")</script>");
	assert_string_equal(e, "&lt;script&gt;alert(&#39;x&#39; &amp; "
			    "&quot;y&quot;)&lt;/script&gt;");
	free(e);
	/* control bytes and invalid UTF-8 become U+FFFD; valid kept */
	e = escaped("a\x01" "b\xff" "c\xc3\xa9" "\xe2\x82");
	assert_string_equal(e, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xc3\xa9"
			    "\xef\xbf\xbd\xef\xbf\xbd");
	free(e);
	e = escaped(NULL);
	assert_string_equal(e, "");
	free(e);
}

static void
test_flame_svg_escapes_names(void **state)
{
	static const struct ana_prof_frame f[] = {
		{ "</text></svg><script>x()</script>", NULL, 0, 0, -1 },
		{ "root", NULL, 0, 0, -1 },
	};
	static const struct ana_prof_stack st[] = { { f, 2, 1000, 1 } };
	struct ana_prof p = { 0 };
	char *out;

	(void)state;
	p.stacks = st;
	p.nstacks = 1;
	out = capture(flame, &p);
	assert_null(strstr(out, "<script"));
	assert_non_null(strstr(out, "&lt;/text&gt;&lt;/svg&gt;&lt;script"));
	/* root row, the frame row, and "all" */
	assert_non_null(strstr(out, ">root<"));
	assert_non_null(strstr(out, "1000 bytes, 100.0%"));
	assert_int_equal(strncmp(out, "<svg ", 5), 0);
	free(out);
}

static void
test_chart_svg_lines_and_legend(void **state)
{
	static const double x[] = { 0, 1, 2 }, y[] = { 10, 12, 11 };
	struct ana_chart_line l = { "<b>rss</b>", x, y, 3 };
	struct ana_chart c = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	(void)state;
	c.xlabel = "calls";
	c.ylabel = "MiB";
	c.lines = &l;
	c.nlines = 1;
	assert_int_equal(ana_chart_svg(&c, fp), 0);
	fclose(fp);
	assert_non_null(strstr(buf, "<polyline"));
	assert_non_null(strstr(buf, "&lt;b&gt;rss&lt;/b&gt;"));
	assert_null(strstr(buf, "<b>"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folded_root_first_names_cleaned),
		cmocka_unit_test(test_pprof_round_trip),
		cmocka_unit_test(test_html_escape_hostile),
		cmocka_unit_test(test_flame_svg_escapes_names),
		cmocka_unit_test(test_chart_svg_lines_and_legend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
