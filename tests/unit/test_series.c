/*
 * Unit tests for analysis/series.c: watch rows (CSV and JSON lines, with
 * and without the GC.stat columns of watch --gc-stat), loading them back
 * (hostile lines included), metric lookup, time parsing and growth
 * summaries.
 *
 * Fixtures are data: tests/fixtures/series/NAME (.csv or .jsonl) sits
 * beside NAME.expected (format in tests/fixtures/series/README);
 * test_load_fixtures_match_expected picks up every pair.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "analysis/analysis.h"
#include "common/err.h"
#include "common/util.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/series"

/* 2026-11-21T12:00:00Z */
#define T0 1795262400000000000ull

/* ---- helpers -------------------------------------------------------- */

static struct ana_sample
sample(uint64_t wall_ns, pid_t pid, const char *comm, uint64_t base)
{
	struct ana_sample s;

	memset(&s, 0, sizeof(s));
	s.wall_ns = wall_ns;
	s.pid = pid;
	snprintf(s.comm, sizeof(s.comm), "%s", comm);
	s.rss = base;
	s.pss = base + 1;
	s.uss = base + 2;
	s.heap_rss = base + 3;
	s.heap_size = base + 4;
	s.arena_rss = base + 5;
	s.anon_rss = base + 6;
	s.swap = base + 7;
	return s;
}

/* A sample with every GC.stat value known: base + 100 + i. */
static struct ana_sample
sample_gc(uint64_t wall_ns, pid_t pid, const char *comm, uint64_t base)
{
	struct ana_sample s = sample(wall_ns, pid, comm, base);

	for (int i = 0; i < ANA_NGCMETRICS; i++)
		ana_sample_set_metric(&s, ANA_NMETRICS + i, base + 100 +
				      (uint64_t)i);
	return s;
}

/* A temporary file holding text; the caller unlinks path. */
static void
write_temp(char *path, size_t len, const char *text, size_t tlen)
{
	int fd;

	snprintf(path, len, "/tmp/lp-series-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, tlen), (ssize_t)tlen);
	close(fd);
}

/* Write rows with ana_sample_format (plus the CSV header) and load them. */
static void
roundtrip_gc(const struct ana_sample *in, size_t n, enum ana_format fmt,
	     bool gc, struct ana_series *out)
{
	char path[64], *text;
	size_t len = 0, cap = 65536, bad = 99;
	struct lp_err err = { 0 };

	text = malloc(cap);
	assert_non_null(text);
	if (fmt == ANA_FMT_CSV) {
		strcpy(text, ana_csv_header(gc));
		len = strlen(text);
	}
	for (size_t i = 0; i < n; i++) {
		int k = ana_sample_format(&in[i], fmt, gc, text + len,
					  cap - len);

		assert_true(k > 0);
		assert_int_equal(text[len + (size_t)k - 1], '\n');
		/* One row is one line. */
		assert_null(memchr(text + len, '\n', (size_t)k - 1));
		len += (size_t)k;
	}
	write_temp(path, sizeof(path), text, len);
	free(text);
	assert_int_equal(ana_series_load(out, path, &bad, &err), 0);
	unlink(path);
	assert_int_equal(bad, 0);
	assert_int_equal(out->fmt, fmt);
	assert_int_equal(out->n, n);
}

static void
roundtrip(const struct ana_sample *in, size_t n, enum ana_format fmt,
	  struct ana_series *out)
{
	roundtrip_gc(in, n, fmt, false, out);
	assert_false(out->gc);
}

static void
assert_same_sample(const struct ana_sample *a, const struct ana_sample *b)
{
	/* Files keep milliseconds. */
	assert_int_equal(a->wall_ns / 1000000, b->wall_ns / 1000000);
	assert_int_equal(a->pid, b->pid);
	for (int m = 0; m < ANA_NALLMETRICS; m++) {
		assert_int_equal(ana_sample_has_metric(a, m),
				 ana_sample_has_metric(b, m));
		assert_int_equal(ana_sample_metric(a, m),
				 ana_sample_metric(b, m));
	}
	assert_int_equal(a->gc_known, b->gc_known);
	if (a->event)
		assert_string_equal(a->event, b->event);
	else
		assert_null(b->event);
}

static int
group_setup(void **state)
{
	(void)state;
	/* Rows carry local time with its offset; pin the zone so exact
	 * strings are stable, and test another zone explicitly. */
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

/* ---- writing -------------------------------------------------------- */

static void
test_format_csv_exact(void **state)
{
	struct ana_sample s = sample(T0 + 123456789, 4242, "ruby", 1000);
	char buf[512];
	int n;

	(void)state;
	n = ana_sample_format(&s, ANA_FMT_CSV, false, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T12:00:00.123+0000,4242,ruby,"
			    "1000,1001,1002,1003,1004,1005,1006,1007,\n");
	assert_int_equal(n, (int)strlen(buf));
	s.event = "exit";
	ana_sample_format(&s, ANA_FMT_CSV, false, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",1007,exit\n"));
	/* The header names the same columns, in order. */
	assert_string_equal(ana_csv_header(false),
			    "time,pid,comm,rss,pss,uss,heap_rss,heap_size,"
			    "arena_rss,anon_rss,swap,event\n");
}

static void
test_format_csv_local_offset(void **state)
{
	struct ana_sample s = sample(T0, 1, "x", 0);
	struct ana_series in = { 0 };
	char buf[512];

	(void)state;
	setenv("TZ", "CET-1", 1);
	tzset();
	ana_sample_format(&s, ANA_FMT_CSV, false, buf, sizeof(buf));
	assert_true(!strncmp(buf, "2026-11-21T13:00:00.000+0100,", 29));
	/* Loading it back gives the same instant, whatever the zone. */
	roundtrip(&s, 1, ANA_FMT_CSV, &in);
	assert_int_equal(in.rows[0].wall_ns, T0);
	ana_series_release(&in);
	setenv("TZ", "UTC", 1);
	tzset();
}

static void
test_format_jsonl_fields(void **state)
{
	struct ana_sample s = sample(T0 + 5000000, 77, "ruby", 1ull << 40);
	json_t *o;
	char buf[512];

	(void)state;
	ana_sample_format(&s, ANA_FMT_JSONL, false, buf, sizeof(buf));
	o = json_loads(buf, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "time")),
			    "2026-11-21T12:00:00.005+0000");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 77);
	assert_string_equal(json_string_value(json_object_get(o, "comm")),
			    "ruby");
	for (int m = 0; m < ANA_NMETRICS; m++)
		assert_int_equal(json_integer_value(json_object_get(o,
				 ana_metric_name(m))), (1ll << 40) + m);
	/* No event key on a plain row. */
	assert_null(json_object_get(o, "event"));
	json_decref(o);
	s.event = "noaccess";
	ana_sample_format(&s, ANA_FMT_JSONL, false, buf, sizeof(buf));
	o = json_loads(buf, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(o, "event")),
			    "noaccess");
	json_decref(o);
}

/* A process can name itself anything: rows must stay one valid line. */
static void
test_format_hostile_comm(void **state)
{
	static const char *const names[] = {
		"a,b", "say \"hi\"", "new\nline", "tab\there", " pad ",
		"\xff\xfe bad utf8", "caf\xc3\xa9", "back\\slash", "",
		"\xe2\x82", "123456789012345678901234567890x",
	};
	size_t n = sizeof(names) / sizeof(names[0]);
	struct ana_sample in[sizeof(names) / sizeof(names[0])];
	struct ana_series out = { 0 };

	(void)state;
	for (size_t i = 0; i < n; i++)
		in[i] = sample(T0 + i * 1000000, (pid_t)(i + 1), names[i], i);
	for (int f = 0; f < 2; f++) {
		roundtrip(in, n, f ? ANA_FMT_JSONL : ANA_FMT_CSV, &out);
		for (size_t i = 0; i < n; i++)
			assert_same_sample(&in[i], &out.rows[i]);
		assert_string_equal(out.rows[0].comm, "a,b");
		assert_string_equal(out.rows[1].comm, "say \"hi\"");
		assert_string_equal(out.rows[2].comm, "new?line");
		assert_string_equal(out.rows[3].comm, "tab?here");
		assert_string_equal(out.rows[4].comm, " pad ");
		assert_string_equal(out.rows[5].comm, "?? bad utf8");
		assert_string_equal(out.rows[6].comm, "caf\xc3\xa9");
		assert_string_equal(out.rows[7].comm, "back\\slash");
		assert_string_equal(out.rows[8].comm, "");
		assert_string_equal(out.rows[9].comm, "??");
		ana_series_release(&out);
	}
}

static void
test_format_small_buffer(void **state)
{
	struct ana_sample s = sample_gc(T0, 1, "ruby", UINT64_MAX - 200);
	enum ana_format fmt;
	char buf[1024];
	int full;

	(void)state;
	for (int f = 0; f < 4; f++) {
		bool gc = f >= 2;

		fmt = (enum ana_format)(f % 2);
		full = ana_sample_format(&s, fmt, gc, buf, sizeof(buf));
		assert_true(full > 0);
		/* Exactly enough (with the NUL) works; one less does not. */
		assert_int_equal(ana_sample_format(&s, fmt, gc, buf,
						   (size_t)full + 1), full);
		assert_int_equal(ana_sample_format(&s, fmt, gc, buf,
						   (size_t)full), -1);
		assert_int_equal(ana_sample_format(&s, fmt, gc, buf, 0), -1);
	}
	/* The widest row (every value 20 digits) fits watch's 1 KiB. */
	assert_true(full < 1024);
}

static void
test_format_roundtrip_both(void **state)
{
	struct ana_sample in[50];
	struct ana_series out = { 0 };
	static const char *const ev[] = { NULL, "new", NULL, "exit",
					  "noaccess" };

	(void)state;
	for (size_t i = 0; i < 50; i++) {
		in[i] = sample(T0 + i * 1234567891ull, (pid_t)(100 + i % 3),
			       "ruby", i * 4096 * 1000003ull);
		in[i].event = ev[i % 5];
	}
	for (int f = 0; f < 2; f++) {
		roundtrip(in, 50, (enum ana_format)f, &out);
		for (size_t i = 0; i < 50; i++)
			assert_same_sample(&in[i], &out.rows[i]);
		ana_series_release(&out);
	}
}

/* ---- GC.stat columns (watch --gc-stat) ------------------------------ */

static void
test_format_csv_gc_exact(void **state)
{
	struct ana_sample s = sample_gc(T0, 4242, "ruby", 1000);
	char buf[512];
	int n;

	(void)state;
	/* The GC.stat columns follow event, in the header's order. */
	assert_string_equal(ana_csv_header(true),
			    "time,pid,comm,rss,pss,uss,heap_rss,heap_size,"
			    "arena_rss,anon_rss,swap,event,live_slots,"
			    "heap_pages,malloc_increase,gc_count,"
			    "major_gc_count,allocated_objects,"
			    "freed_objects\n");
	n = ana_sample_format(&s, ANA_FMT_CSV, true, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T12:00:00.000+0000,4242,ruby,"
			    "1000,1001,1002,1003,1004,1005,1006,1007,,"
			    "1100,1101,1102,1103,1104,1105,1106\n");
	assert_int_equal(n, (int)strlen(buf));
	/* Without gc the row is the plain one, whatever the sample holds. */
	ana_sample_format(&s, ANA_FMT_CSV, false, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T12:00:00.000+0000,4242,ruby,"
			    "1000,1001,1002,1003,1004,1005,1006,1007,\n");
	/* Not known (before the first report, an exit row): empty. */
	s = sample(T0, 4242, "ruby", 1000);
	s.event = "exit";
	ana_sample_format(&s, ANA_FMT_CSV, true, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",1007,exit,,,,,,,\n"));
	/* Some known. */
	ana_sample_set_metric(&s, ana_metric_index("gc_count"), 0);
	ana_sample_set_metric(&s, ana_metric_index("freed_objects"),
			      UINT64_MAX);
	s.event = NULL;
	ana_sample_format(&s, ANA_FMT_CSV, true, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",1007,,,,,0,,,18446744073709551615\n"));
}

static void
test_format_jsonl_gc_fields(void **state)
{
	struct ana_sample s = sample_gc(T0, 77, "ruby", 5);
	json_t *o;
	char buf[1024];

	(void)state;
	ana_sample_format(&s, ANA_FMT_JSONL, true, buf, sizeof(buf));
	o = json_loads(buf, 0, NULL);
	assert_non_null(o);
	for (int m = 0; m < ANA_NALLMETRICS; m++)
		assert_int_equal(json_integer_value(json_object_get(o,
				 ana_metric_name(m))),
				 m < ANA_NMETRICS ? 5 + m :
				 105 + m - ANA_NMETRICS);
	json_decref(o);
	/* Without gc, or not known: no GC keys at all. */
	ana_sample_format(&s, ANA_FMT_JSONL, false, buf, sizeof(buf));
	assert_null(strstr(buf, "live_slots"));
	s.gc_known = 0;
	ana_sample_format(&s, ANA_FMT_JSONL, true, buf, sizeof(buf));
	assert_null(strstr(buf, "live_slots"));
	assert_null(strstr(buf, "gc_count"));
	/* One known: only that key. */
	ana_sample_set_metric(&s, ana_metric_index("major_gc_count"), 3);
	ana_sample_format(&s, ANA_FMT_JSONL, true, buf, sizeof(buf));
	o = json_loads(buf, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 3 + ANA_NMETRICS + 1);
	assert_int_equal(json_integer_value(json_object_get(o,
			 "major_gc_count")), 3);
	json_decref(o);
}

static void
test_format_roundtrip_gc(void **state)
{
	struct ana_sample in[40];
	struct ana_series out = { 0 };

	(void)state;
	for (size_t i = 0; i < 40; i++) {
		/* All known, none known, and each subset pattern of i. */
		in[i] = sample(T0 + i * 1000000000ull, (pid_t)(100 + i % 2),
			       "ruby", i * 4096);
		for (int g = 0; g < ANA_NGCMETRICS; g++)
			if (i % 4 == 0 || (i % 4 == 2 && (i >> g) & 1))
				ana_sample_set_metric(&in[i], ANA_NMETRICS + g,
						      i * 1000003ull + g);
		if (i == 39)
			in[i].event = "exit";
	}
	for (int f = 0; f < 2; f++) {
		roundtrip_gc(in, 40, (enum ana_format)f, true, &out);
		assert_true(out.gc);
		for (size_t i = 0; i < 40; i++)
			assert_same_sample(&in[i], &out.rows[i]);
		ana_series_release(&out);
	}
}

static void
test_sample_from_totals(void **state)
{
	struct ana_totals t;
	struct ana_sample s;

	(void)state;
	memset(&t, 0, sizeof(t));
	memset(&s, 0, sizeof(s));
	t.rss = 1;
	t.pss = 2;
	t.uss = 3;
	t.swap = 4;
	t.cls[ANA_MAP_HEAP].rss = 5;
	t.cls[ANA_MAP_HEAP].size = 6;
	t.cls[ANA_MAP_ARENA].rss = 7;
	t.cls[ANA_MAP_ANON].rss = 8;
	t.cls[ANA_MAP_FILE].rss = 1000;	/* not a column */
	t.cls[ANA_MAP_STACK].rss = 1000;
	s.pid = 9;
	ana_sample_from_totals(&s, &t);
	assert_int_equal(s.rss, 1);
	assert_int_equal(s.pss, 2);
	assert_int_equal(s.uss, 3);
	assert_int_equal(s.swap, 4);
	assert_int_equal(s.heap_rss, 5);
	assert_int_equal(s.heap_size, 6);
	assert_int_equal(s.arena_rss, 7);
	assert_int_equal(s.anon_rss, 8);
	assert_int_equal(s.pid, 9);	/* identity is left alone */
}

/* ---- detection and loading ------------------------------------------ */

static void
test_detect(void **state)
{
	enum ana_format f = ANA_FMT_JSONL;
	const char *h = ana_csv_header(false);
	char row[512];
	struct ana_sample s = sample(T0, 1, "x", 1);

	(void)state;
	assert_int_equal(ana_series_detect(h, strlen(h), &f, NULL), 0);
	assert_int_equal(f, ANA_FMT_CSV);
	assert_int_equal(ana_series_detect(h, strlen(h) - 1, &f, NULL), 0);
	ana_sample_format(&s, ANA_FMT_JSONL, false, row, sizeof(row));
	assert_int_equal(ana_series_detect(row, strlen(row), &f, NULL), 0);
	assert_int_equal(f, ANA_FMT_JSONL);
	/* A CSV data row, another header, other JSON, text: not ours. */
	ana_sample_format(&s, ANA_FMT_CSV, false, row, sizeof(row));
	assert_int_equal(ana_series_detect(row, strlen(row), &f, NULL),
			 -LP_EPARSE);
	assert_int_equal(ana_series_detect("time,pid,rss", 12, &f, NULL),
			 -LP_EPARSE);
	assert_int_equal(ana_series_detect("{\"a\":1}", 7, &f, NULL),
			 -LP_EPARSE);
	assert_int_equal(ana_series_detect("{\"time\":\"x", 10, &f, NULL),
			 -LP_EPARSE);
	assert_int_equal(ana_series_detect("hello", 5, &f, NULL), -LP_EPARSE);
	assert_int_equal(ana_series_detect("", 0, &f, NULL), -LP_EPARSE);
}

static void
test_detect_gc(void **state)
{
	enum ana_format f = ANA_FMT_JSONL;
	const char *h = ana_csv_header(true), *p = ana_csv_header(false);
	struct ana_sample s = sample_gc(T0, 1, "x", 1);
	char row[1024], line[1024];
	bool gc = false;

	(void)state;
	assert_int_equal(ana_series_detect(h, strlen(h), &f, &gc), 0);
	assert_int_equal(f, ANA_FMT_CSV);
	assert_true(gc);
	snprintf(line, sizeof(line), "%.*s\r\n", (int)strlen(h) - 1, h);
	gc = false;
	assert_int_equal(ana_series_detect(line, strlen(line), &f, &gc), 0);
	assert_true(gc);
	assert_int_equal(ana_series_detect(p, strlen(p), &f, &gc), 0);
	assert_false(gc);
	/* JSON lines: whether the row has GC fields. */
	ana_sample_format(&s, ANA_FMT_JSONL, true, row, sizeof(row));
	assert_int_equal(ana_series_detect(row, strlen(row), &f, &gc), 0);
	assert_int_equal(f, ANA_FMT_JSONL);
	assert_true(gc);
	ana_sample_format(&s, ANA_FMT_JSONL, false, row, sizeof(row));
	assert_int_equal(ana_series_detect(row, strlen(row), &f, &gc), 0);
	assert_false(gc);
	/* Part of the GC columns, another order, one more: not ours. */
	snprintf(line, sizeof(line), "%.*s,live_slots", (int)strlen(p) - 1,
		 p);
	assert_int_equal(ana_series_detect(line, strlen(line), &f, &gc),
			 -LP_EPARSE);
	snprintf(line, sizeof(line), "%.*s,x", (int)strlen(h) - 1, h);
	assert_int_equal(ana_series_detect(line, strlen(line), &f, &gc),
			 -LP_EPARSE);
	snprintf(line, sizeof(line), "%s", h);
	memcpy(strstr(line, "gc_count"), "gc_c0unt", 8);
	assert_int_equal(ana_series_detect(line, strlen(line), &f, &gc),
			 -LP_EPARSE);
	/* A CSV row with GC columns is no header. */
	ana_sample_format(&s, ANA_FMT_CSV, true, row, sizeof(row));
	assert_int_equal(ana_series_detect(row, strlen(row), &f, &gc),
			 -LP_EPARSE);
}

static void
check_fixture(const char *name)
{
	char path[512], exp[600], line[512];
	struct ana_series s;
	struct lp_err err = { 0 };
	size_t bad = 0;
	FILE *fp;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", FIXDIR, name);
	snprintf(exp, sizeof(exp), "%s.expected", path);
	fp = fopen(exp, "r");
	if (!fp)
		fail_msg("%s: no %s", name, exp);
	rc = ana_series_load(&s, path, &bad, &err);
	while (fgets(line, sizeof(line), fp)) {
		char comm[64], ev[32], word[32];
		unsigned long long a, rss;
		unsigned idx;
		int pid;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (sscanf(line, "error %31s", word) == 1) {
			if (rc >= 0)
				fail_msg("%s: loaded, expected error %s", name,
					 word);
			assert_int_equal(-rc, !strcmp(word, "parse") ?
					 LP_EPARSE : LP_EIO);
			assert_true(err.msg[0] != '\0');
			assert_null(s.rows);
			fclose(fp);
			return;
		}
		if (rc < 0)
			fail_msg("%s: load failed: %s", name, err.msg);
		if (sscanf(line, "fmt %31s", word) == 1) {
			assert_int_equal(s.fmt, !strcmp(word, "csv") ?
					 ANA_FMT_CSV : ANA_FMT_JSONL);
		} else if (sscanf(line, "rows %llu", &a) == 1) {
			if (s.n != a)
				fail_msg("%s: %zu rows, expected %llu", name,
					 s.n, a);
		} else if (sscanf(line, "gc %31s", word) == 1) {
			assert_int_equal(s.gc, !strcmp(word, "yes"));
		} else if (sscanf(line, "metric %u %31s %31s", &idx, word,
				  ev) == 3) {
			int m = ana_metric_index(word);

			if (m < 0)
				fail_msg("%s: unknown metric %s", name, word);
			assert_true(idx < s.n);
			if (!strcmp(ev, "-")) {
				assert_false(ana_sample_has_metric(
					&s.rows[idx], m));
			} else {
				assert_true(ana_sample_has_metric(
					&s.rows[idx], m));
				assert_int_equal(ana_sample_metric(
					&s.rows[idx], m), strtoull(ev, NULL,
					10));
			}
		} else if (sscanf(line, "bad %llu", &a) == 1) {
			if (bad != a)
				fail_msg("%s: %zu bad lines, expected %llu",
					 name, bad, a);
		} else if (sscanf(line, "row %u %d %63s %llu %31s", &idx, &pid,
				  comm, &rss, ev) == 5) {
			assert_true(idx < s.n);
			assert_int_equal(s.rows[idx].pid, pid);
			assert_string_equal(s.rows[idx].comm,
					    strcmp(comm, "-") ? comm : "");
			assert_int_equal(s.rows[idx].rss, rss);
			if (strcmp(ev, "-"))
				assert_string_equal(s.rows[idx].event, ev);
			else
				assert_null(s.rows[idx].event);
		} else {
			fail_msg("%s: bad line in expected file: %s", name,
				 line);
		}
	}
	fclose(fp);
	ana_series_release(&s);
}

static void
test_load_fixtures_match_expected(void **state)
{
	struct dirent *de;
	DIR *d;
	size_t n = 0;

	(void)state;
	d = opendir(FIXDIR);
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if ((len > 4 && !strcmp(de->d_name + len - 4, ".csv")) ||
		    (len > 6 && !strcmp(de->d_name + len - 6, ".jsonl"))) {
			check_fixture(de->d_name);
			n++;
		}
	}
	closedir(d);
	assert_true(n >= 10);
}

static void
test_load_good_values(void **state)
{
	struct ana_series s;
	size_t bad;

	(void)state;
	assert_int_equal(ana_series_load(&s, FIXDIR "/good.csv", &bad, NULL),
			 0);
	assert_int_equal(s.rows[0].wall_ns, T0);
	assert_int_equal(s.rows[1].wall_ns, T0 + 1500000000ull);
	/* 13:00+0100 is 12:00Z. */
	assert_int_equal(s.rows[2].wall_ns, T0);
	assert_int_equal(s.rows[2].swap, 80);
	assert_int_equal(s.rows[2].anon_rss, 70);
	assert_int_equal(s.rows[1].arena_rss, 4096);
	assert_int_equal(s.rows[1].heap_size, 8192);
	/* No offset: local time (UTC here). */
	assert_int_equal(s.rows[4].wall_ns, T0 + 3000000000ull);
	ana_series_release(&s);
}

static void
test_load_missing_file(void **state)
{
	struct ana_series s;
	struct lp_err err = { 0 };

	(void)state;
	assert_int_equal(ana_series_load(&s, "/nonexistent/w.csv", NULL,
					 &err), -LP_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent/w.csv"));
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(s.n, 0);
}

/* A line too long to be ours is skipped, and the next one still read. */
static void
test_load_long_line(void **state)
{
	const char *h = ana_csv_header(false);
	size_t hl = strlen(h), big = 200000;
	char path[64], *text = malloc(hl + big + 200);
	const char *row = "2026-11-21T12:00:00.000+0000,5,a,1,1,1,1,1,1,1,1,\n";
	struct ana_series s;
	size_t bad = 0;

	(void)state;
	assert_non_null(text);
	memcpy(text, h, hl);
	memcpy(text + hl, "2026-11-21T12:00:00.000+0000,5,", 31);
	memset(text + hl + 31, 'x', big);
	text[hl + 31 + big] = '\n';
	strcpy(text + hl + 32 + big, row);
	write_temp(path, sizeof(path), text, strlen(text));
	free(text);
	assert_int_equal(ana_series_load(&s, path, &bad, NULL), 0);
	unlink(path);
	assert_int_equal(bad, 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.rows[0].pid, 5);
	ana_series_release(&s);
}

/* ---- metrics -------------------------------------------------------- */

static void
test_metric_lookup(void **state)
{
	static const char *const names[] = {
		"rss", "pss", "uss", "heap_rss", "heap_size", "arena_rss",
		"anon_rss", "swap",
		"live_slots", "heap_pages", "malloc_increase", "gc_count",
		"major_gc_count", "allocated_objects", "freed_objects",
	};
	struct ana_sample s = sample_gc(T0, 1, "x", 100);

	(void)state;
	assert_int_equal(sizeof(names) / sizeof(names[0]), ANA_NALLMETRICS);
	for (int i = 0; i < ANA_NALLMETRICS; i++) {
		assert_int_equal(ana_metric_index(names[i]), i);
		assert_string_equal(ana_metric_name(i), names[i]);
		assert_true(ana_sample_has_metric(&s, i));
		assert_int_equal(ana_sample_metric(&s, i),
				 i < ANA_NMETRICS ? 100 + i :
				 200 + i - ANA_NMETRICS);
		assert_int_equal(ana_metric_is_bytes(i), i < ANA_NMETRICS);
	}
	/* The fields behind the names. */
	assert_int_equal(s.live_slots, 200);
	assert_int_equal(s.heap_pages, 201);
	assert_int_equal(s.malloc_increase, 202);
	assert_int_equal(s.gc_count, 203);
	assert_int_equal(s.major_gc_count, 204);
	assert_int_equal(s.allocated_objects, 205);
	assert_int_equal(s.freed_objects, 206);
	assert_int_equal(s.gc_known, (1u << ANA_NGCMETRICS) - 1);
	assert_int_equal(ana_metric_index("RSS"), -1);
	assert_int_equal(ana_metric_index("heap"), -1);
	assert_int_equal(ana_metric_index(""), -1);
	assert_int_equal(ana_metric_index("time"), -1);
	assert_int_equal(ana_metric_index("event"), -1);
	assert_null(ana_metric_name(-1));
	assert_null(ana_metric_name(ANA_NALLMETRICS));
	assert_false(ana_metric_is_bytes(-1));
	assert_false(ana_metric_is_bytes(ANA_NALLMETRICS));
	assert_false(ana_sample_has_metric(&s, -1));
	assert_false(ana_sample_has_metric(&s, ANA_NALLMETRICS));
	assert_int_equal(ana_sample_metric(&s, ANA_NALLMETRICS), 0);
	assert_int_equal(ana_sample_metric(&s, -1), 0);
	/* Out of range: nothing set, nothing known. */
	ana_sample_set_metric(&s, ANA_NALLMETRICS, 5);
	ana_sample_set_metric(&s, -1, 5);
	assert_int_equal(s.gc_known, (1u << ANA_NGCMETRICS) - 1);

	/* A GC value is known once set, and 0 until then. */
	s = sample(T0, 1, "x", 100);
	s.live_slots = 99;	/* set directly: not known */
	assert_false(ana_sample_has_metric(&s, ANA_NMETRICS));
	assert_int_equal(ana_sample_metric(&s, ANA_NMETRICS), 0);
	ana_sample_set_metric(&s, ana_metric_index("gc_count"), 7);
	assert_true(ana_sample_has_metric(&s, ana_metric_index("gc_count")));
	assert_false(ana_sample_has_metric(&s,
					   ana_metric_index("live_slots")));
	assert_int_equal(s.gc_count, 7);
	/* Memory metrics are always there. */
	ana_sample_set_metric(&s, 0, 42);
	assert_int_equal(s.rss, 42);
	assert_int_equal(s.gc_known, 1u << 3);
}

/* ---- time ----------------------------------------------------------- */

static void
test_parse_time(void **state)
{
	static const struct {
		const char *s;
		int64_t off_ms;	/* from T0, or INT64_MIN for invalid */
	} cases[] = {
		{ "2026-11-21T12:00:00.000+0000", 0 },
		{ "2026-11-21T12:00:00.5Z", 500 },
		{ "2026-11-21T12:00:00,250Z", 250 },
		{ "2026-11-21T13:30:00+01:30", 0 },
		{ "2026-11-21T10:00:00-0200", 0 },
		{ "2026-11-21T12:00:01+00", 1000 },
		{ "2026-11-21 12:00:00", 0 },		/* local = UTC */
		{ "2026-11-21T12:00", 0 },
		{ "2026-11-21", -12 * 3600 * 1000ll },
		{ "12:00", 0 },				/* day of ref */
		{ "12:00:02.125", 2125 },
		{ "2026-11-21T12:00:60Z", 60000 },	/* leap second */
		{ "2026-02-29T00:00:00Z", INT64_MIN },	/* no leap year */
		{ "2026-11-31T00:00:00Z", INT64_MIN },
		{ "2026-00-10T00:00:00Z", INT64_MIN },
		{ "2026-11-21T24:00:00Z", INT64_MIN },
		{ "2026-11-21T12:60:00Z", INT64_MIN },
		{ "2026-11-21T12:00:00+2400", INT64_MIN },
		{ "2026-11-21T12:00:00.Z", INT64_MIN },
		{ "2026-11-21T12:00:00Zjunk", INT64_MIN },
		{ "2026-11-21X12:00:00", INT64_MIN },
		{ "1969-12-31T23:59:59Z", INT64_MIN },
		{ "26-11-21", INT64_MIN },
		{ "12:5", INT64_MIN },
		{ "noon", INT64_MIN },
		{ "", INT64_MIN },
	};
	uint64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ana_parse_time(cases[i].s, T0 + 3600000000000ull,
					&ns);

		if (cases[i].off_ms == INT64_MIN) {
			if (rc != -LP_EINVAL)
				fail_msg("'%s' accepted", cases[i].s);
			continue;
		}
		if (rc != 0)
			fail_msg("'%s' rejected", cases[i].s);
		if ((int64_t)(ns - T0) != cases[i].off_ms * 1000000)
			fail_msg("'%s': %lld ms from T0, expected %lld",
				 cases[i].s, (long long)(ns - T0) / 1000000,
				 (long long)cases[i].off_ms);
	}
}

/* ---- growth --------------------------------------------------------- */

static void
test_growth_from(void **state)
{
	struct ana_sample a = sample(T0, 5, "ruby", 0), b;
	struct ana_growth_summary g;

	(void)state;
	a.rss = 100 << 20;
	a.heap_rss = 10 << 20;
	a.arena_rss = 1 << 20;
	a.anon_rss = 1 << 20;
	b = a;
	b.wall_ns = T0 + 1800ull * 1000000000ull;	/* half an hour */
	b.rss += 50 << 20;
	b.heap_rss += 20 << 20;
	b.arena_rss += 10 << 20;
	snprintf(b.comm, sizeof(b.comm), "renamed");
	ana_growth_from(&a, &b, true, &g);
	assert_int_equal(g.pid, 5);
	assert_string_equal(g.comm, "renamed");
	assert_int_equal(g.first_ns, T0);
	assert_int_equal(g.last_ns, b.wall_ns);
	assert_int_equal(g.first_rss, 100 << 20);
	assert_int_equal(g.last_rss, 150 << 20);
	assert_int_equal(g.first_heap, 12 << 20);
	assert_int_equal(g.last_heap, 42 << 20);
	assert_true(g.exited);
	/* Per hour: twice the half-hour growth. */
	assert_true(g.rss_per_hour == (double)(100 << 20));
	assert_true(g.heap_per_hour == (double)(60 << 20));

	/* Shrinking is negative growth. */
	a.wall_ns = b.wall_ns + 3600ull * 1000000000ull;
	ana_growth_from(&b, &a, false, &g);
	assert_true(g.rss_per_hour == -(double)(50 << 20));
	assert_true(g.heap_per_hour == -(double)(30 << 20));
	assert_false(g.exited);
	a.wall_ns = T0;

	/* One sample (or two at the same instant): no rate. */
	ana_growth_from(&a, &a, false, &g);
	assert_true(g.rss_per_hour == 0 && g.heap_per_hour == 0);
}

static void
test_series_growth(void **state)
{
	struct ana_sample r[9];
	struct ana_series s = { .rows = r, .n = 9 };
	struct ana_growth_summary *g;
	size_t n;

	(void)state;
	/* pid 7 starts first, exits; pid 7 is reused later; pid 3 lives. */
	r[0] = sample(T0, 7, "a", 1000);
	r[1] = sample(T0, 3, "b", 50);
	r[2] = sample(T0 + 3600000000000ull, 7, "a", 3000);
	r[3] = sample(T0 + 3600000000000ull, 7, "a", 0);
	r[3].event = "exit";
	r[4] = sample(T0 + 7200000000000ull, 3, "b", 40);
	r[5] = sample(T0 + 7200000000000ull, 7, "c", 9);
	r[5].event = "new";
	r[6] = sample(T0 + 9000000000000ull, 3, "b", 0);
	r[6].event = "noaccess";
	r[7] = sample(T0 + 9000000000000ull, 7, "c", 19);
	r[8] = sample(T0 + 9000000000000ull, 9, "d", 0);
	r[8].event = "exit";	/* an exit alone: no samples, no summary */
	n = ana_series_growth(&s, &g);
	assert_int_equal(n, 3);
	/* Order of first appearance. */
	assert_int_equal(g[0].pid, 7);
	assert_string_equal(g[0].comm, "a");
	assert_true(g[0].exited);
	assert_int_equal(g[0].first_rss, 1000);
	assert_int_equal(g[0].last_rss, 3000);
	assert_true(g[0].rss_per_hour == 2000.0);
	assert_int_equal(g[1].pid, 3);
	assert_false(g[1].exited);
	assert_int_equal(g[1].last_rss, 40);	/* noaccess row ignored */
	assert_true(g[1].rss_per_hour == -5.0);
	assert_int_equal(g[2].pid, 7);
	assert_string_equal(g[2].comm, "c");
	assert_int_equal(g[2].first_rss, 9);
	assert_int_equal(g[2].last_rss, 19);
	assert_true(g[2].rss_per_hour == 20.0);
	free(g);

	s.n = 0;
	assert_int_equal(ana_series_growth(&s, &g), 0);
	assert_null(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_csv_exact),
		cmocka_unit_test(test_format_csv_local_offset),
		cmocka_unit_test(test_format_jsonl_fields),
		cmocka_unit_test(test_format_hostile_comm),
		cmocka_unit_test(test_format_small_buffer),
		cmocka_unit_test(test_format_roundtrip_both),
		cmocka_unit_test(test_format_csv_gc_exact),
		cmocka_unit_test(test_format_jsonl_gc_fields),
		cmocka_unit_test(test_format_roundtrip_gc),
		cmocka_unit_test(test_sample_from_totals),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_detect_gc),
		cmocka_unit_test(test_load_fixtures_match_expected),
		cmocka_unit_test(test_load_good_values),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_load_long_line),
		cmocka_unit_test(test_metric_lookup),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_growth_from),
		cmocka_unit_test(test_series_growth),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
