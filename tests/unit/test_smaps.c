/*
 * Unit tests for analysis/smaps.c: the smaps / smaps_rollup parser,
 * classification, totals and diff.
 *
 * Fixtures are data: every tests/fixtures/smaps/expected/NAME.out holds
 * the expected result of parsing tests/fixtures/smaps/NAME.txt (format in
 * tests/fixtures/smaps/README).  Adding a case means adding those two
 * files; test_smaps_fixtures_match_expected picks them up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "common/err.h"
#include "common/util.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/smaps"

/* ---- helpers ---------------------------------------------------------- */

/* Read fixture NAME.txt into s (through its reusable buffer) and parse. */
static int
load(struct ana_smaps *s, const char *name, struct lp_err *err)
{
	char path[512];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s.txt", FIXDIR, name);
	n = lp_read_file(path, &s->buf, &s->cap, err);
	if (n < 0)
		fail_msg("cannot read fixture %s: %s", path, err->msg);
	return ana_smaps_parse_buf(s, (size_t)n, err);
}

static void
load_ok(struct ana_smaps *s, const char *name)
{
	struct lp_err err = { 0 };

	if (load(s, name, &err) != 0)
		fail_msg("%s: unexpected parse error: %s", name, err.msg);
}

static int
parse_text(struct ana_smaps *s, const char *text, struct lp_err *err)
{
	return ana_smaps_parse(s, text, strlen(text), err);
}

static void
parse_ok(struct ana_smaps *s, const char *text)
{
	struct lp_err err = { 0 };

	if (parse_text(s, text, &err) != 0)
		fail_msg("unexpected parse error: %s", err.msg);
}

static const struct ana_mapping *
find(const struct ana_smaps *s, uint64_t start)
{
	size_t i;

	for (i = 0; i < s->nmaps; i++)
		if (s->maps[i].start == start)
			return &s->maps[i];
	fail_msg("no mapping starts at %" PRIx64, start);
	return NULL;
}

static bool
name_eq(const struct ana_mapping *m, const char *want)
{
	return m->name_len == strlen(want) &&
	       memcmp(m->name, want, m->name_len) == 0;
}

static int
class_by_name(const char *n)
{
	int c;

	for (c = 0; c < ANA_MAP_NCLASS; c++)
		if (strcmp(ana_map_class_name(c), n) == 0)
			return c;
	return -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- fixture-driven checks -------------------------------------------- */

/* Compare one parsed fixture against its expected/NAME.out. */
static void
check_fixture(struct ana_smaps *s, const char *name)
{
	char path[512], line[512], key[64], a[64];
	struct lp_err err = { 0 };
	int rc, nline = 0, err_line = -1;
	bool saw_total = false;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/expected/%s.out", FIXDIR, name);
	fp = fopen(path, "r");
	if (!fp)
		fail_msg("cannot open %s", path);
	/* First pass: does the fixture have to fail? */
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "error parse line %d", &err_line) == 1)
			break;
	rewind(fp);

	rc = load(s, name, &err);
	if (err_line >= 0) {
		char want[32];

		fclose(fp);
		if (rc != -LP_EPARSE)
			fail_msg("%s: want -LP_EPARSE, got %d", name, rc);
		snprintf(want, sizeof(want), "line %d:", err_line);
		if (!strstr(err.msg, want))
			fail_msg("%s: message does not name %s: %s", name,
				 want, err.msg);
		assert_int_equal(s->nmaps, 0);
		return;
	}
	if (rc != 0)
		fail_msg("%s: unexpected parse error: %s", name, err.msg);

	while (fgets(line, sizeof(line), fp)) {
		unsigned long long v[5];
		uint64_t got[5];
		int c, k;

		nline++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%63s", key) != 1)
			continue;
		if (strcmp(key, "mappings") == 0) {
			if (sscanf(line, "mappings %llu", &v[0]) != 1)
				goto bad;
			if (s->nmaps != v[0])
				fail_msg("%s: mappings: got %zu want %llu",
					 name, s->nmaps, v[0]);
		} else if (strcmp(key, "rollup") == 0) {
			if (sscanf(line, "rollup %llu", &v[0]) != 1)
				goto bad;
			if (s->rollup != (v[0] != 0))
				fail_msg("%s: rollup: got %d want %llu", name,
					 s->rollup, v[0]);
		} else if (strcmp(key, "total") == 0) {
			static const char *const what[] = {
				"size", "rss", "pss", "uss", "swap"
			};

			if (sscanf(line,
				   "total size %llu rss %llu pss %llu uss %llu swap %llu",
				   &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
				goto bad;
			got[0] = s->totals.size;
			got[1] = s->totals.rss;
			got[2] = s->totals.pss;
			got[3] = s->totals.uss;
			got[4] = s->totals.swap;
			for (k = 0; k < 5; k++)
				if (got[k] != v[k])
					fail_msg("%s: total %s: got %" PRIu64
						 " want %llu", name, what[k],
						 got[k], v[k]);
			saw_total = true;
		} else if (strcmp(key, "class") == 0) {
			unsigned long long start;
			const struct ana_mapping *m;

			if (sscanf(line, "class %llx %63s", &start, a) != 2 ||
			    class_by_name(a) < 0)
				goto bad;
			m = find(s, start);
			if ((int)m->cls != class_by_name(a))
				fail_msg("%s: mapping %llx: class %s, want %s",
					 name, start,
					 ana_map_class_name(m->cls), a);
		} else if ((c = class_by_name(key)) >= 0) {
			static const char *const what[] = {
				"size", "rss", "pss", "private_dirty", "swap"
			};
			const struct ana_class_totals *t = &s->totals.cls[c];

			if (sscanf(line,
				   "%*s size %llu rss %llu pss %llu private_dirty %llu swap %llu",
				   &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
				goto bad;
			got[0] = t->size;
			got[1] = t->rss;
			got[2] = t->pss;
			got[3] = t->private_dirty;
			got[4] = t->swap;
			for (k = 0; k < 5; k++)
				if (got[k] != v[k])
					fail_msg("%s: %s %s: got %" PRIu64
						 " want %llu", name, key,
						 what[k], got[k], v[k]);
		} else {
			goto bad;
		}
	}
	fclose(fp);
	if (!saw_total)
		fail_msg("%s: no 'total' line in %s", name, path);
	return;
bad:
	fclose(fp);
	fail_msg("%s:%d: cannot read this line: %s", path, nline, line);
}

/*
 * Every expected/NAME.out against NAME.txt, all through one ana_smaps so
 * that buffer reuse across very different files is exercised as well.
 */
static void
test_smaps_fixtures_match_expected(void **state)
{
	char *names[256], *dot;
	struct ana_smaps s;
	struct dirent *de;
	size_t n = 0, ntxt = 0, i;
	DIR *d;

	(void)state;
	d = opendir(FIXDIR "/expected");
	if (!d)
		fail_msg("cannot open %s/expected (run from the repo root)",
			 FIXDIR);
	while ((de = readdir(d))) {
		dot = strrchr(de->d_name, '.');
		if (!dot || strcmp(dot, ".out") != 0)
			continue;
		assert_true(n < 256);
		names[n++] = strndup(de->d_name, (size_t)(dot - de->d_name));
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);

	/* Each fixture must have an expected result. */
	d = opendir(FIXDIR);
	assert_non_null(d);
	while ((de = readdir(d))) {
		bool found = false;

		dot = strrchr(de->d_name, '.');
		if (!dot || strcmp(dot, ".txt") != 0)
			continue;
		ntxt++;
		for (i = 0; i < n; i++)
			if (strlen(names[i]) == (size_t)(dot - de->d_name) &&
			    strncmp(names[i], de->d_name,
				    (size_t)(dot - de->d_name)) == 0)
				found = true;
		if (!found)
			fail_msg("fixture %s has no expected/*.out",
				 de->d_name);
	}
	closedir(d);
	assert_int_equal(ntxt, n);
	assert_true(n >= 20);

	ana_smaps_init(&s);
	for (i = 0; i < n; i++) {
		check_fixture(&s, names[i]);
		free(names[i]);
	}
	ana_smaps_release(&s);
}

/* ---- parsing details -------------------------------------------------- */

static void
test_smaps_parse_every_field(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;
	int f;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "sleep");
	m = &s.maps[0];
	assert_int_equal(m->start, 0x563d878c5000ull);
	assert_int_equal(m->end, 0x563d878c7000ull);
	assert_string_equal(m->perms, "r--p");
	assert_int_equal(m->offset, 0);
	assert_int_equal(m->dev_major, 0xfe);
	assert_int_equal(m->dev_minor, 0);
	assert_int_equal(m->inode, 248056);
	assert_true(name_eq(m, "/usr/bin/sleep"));
	assert_false(m->deleted);
	assert_int_equal(m->cls, ANA_MAP_FILE);
	/* every known field was printed, and is reachable by its name */
	assert_int_equal(m->present, (1u << ANA_F_NKNOWN) - 1);
	for (f = 0; f < ANA_F_NKNOWN; f++)
		assert_int_equal(ana_mapping_field(&s, m, ana_field_name(f)),
				 (int64_t)m->kb[f]);
	assert_int_equal(m->kb[ANA_F_SIZE], 8);
	assert_int_equal(m->kb[ANA_F_RSS], 8);
	assert_int_equal(m->kb[ANA_F_PSS], 4);
	assert_int_equal(m->kb[ANA_F_SHARED_CLEAN], 8);
	assert_int_equal(m->kb[ANA_F_PRIVATE_CLEAN], 0);
	/* the fields it does not know land in extra */
	assert_int_equal(m->extra_count, 8);
	assert_int_equal(ana_mapping_field(&s, m, "KSM"), 0);
	assert_int_equal(ana_mapping_field(&s, m, "AnonHugePages"), 0);
	assert_int_equal(ana_mapping_field(&s, m, "THPeligible"), 0);
	assert_int_equal(ana_mapping_field(&s, m, "NoSuchField"), -1);
	assert_int_equal(ana_mapping_field(&s, m, "VmFlags"), -1);
	assert_int_equal(m->vmflags_len, strlen("rd mr mw me"));
	assert_memory_equal(m->vmflags, "rd mr mw me", m->vmflags_len);
	/* the second mapping's offset, and the last one */
	assert_int_equal(s.maps[1].offset, 0x2000);
	m = &s.maps[s.nmaps - 1];
	assert_true(name_eq(m, "[vsyscall]"));
	assert_int_equal(m->start, 0xffffffffff600000ull);
	assert_string_equal(m->perms, "--xp");
	assert_int_equal(m->cls, ANA_MAP_SPECIAL);
	ana_smaps_release(&s);
}

/*
 * The parser has a fast path for the kernel's exact column layout.  The
 * same file with the padding squeezed out (so that path never applies)
 * must give the very same result.
 */
static void
test_smaps_parse_layout_independent(void **state)
{
	struct ana_smaps a, b;
	char *text, *o;
	const char *p;
	size_t i, j;

	(void)state;
	ana_smaps_init(&a);
	ana_smaps_init(&b);
	load_ok(&a, "ruby-threads");
	text = malloc(a.len + 1);
	assert_non_null(text);
	/* "Rss:            12 kB" becomes "Rss:\t12 kB" */
	for (p = a.buf, o = text; p < a.buf + a.len; p++) {
		*o++ = *p;
		if (*p == ':' && p[1] == ' ') {
			*o++ = '\t';
			while (p[1] == ' ')
				p++;
		}
	}
	*o = '\0';
	assert_true((size_t)(o - text) < a.len);
	parse_ok(&b, text);
	free(text);
	assert_int_equal(a.nmaps, b.nmaps);
	assert_int_equal(a.nextra, b.nextra);
	assert_memory_equal(&a.totals, &b.totals, sizeof(a.totals));
	for (i = 0; i < a.nmaps; i++) {
		const struct ana_mapping *x = &a.maps[i], *y = &b.maps[i];

		assert_int_equal(x->start, y->start);
		assert_int_equal(x->cls, y->cls);
		assert_int_equal(x->present, y->present);
		assert_memory_equal(x->kb, y->kb, sizeof(x->kb));
		assert_int_equal(x->extra_count, y->extra_count);
		assert_int_equal(x->vmflags_len, y->vmflags_len);
		assert_memory_equal(x->vmflags, y->vmflags, x->vmflags_len);
		for (j = 0; j < x->extra_count; j++) {
			const struct ana_extra_field *ex, *ey;

			ex = &a.extra[x->extra_first + j];
			ey = &b.extra[y->extra_first + j];
			assert_int_equal(ex->value, ey->value);
			assert_int_equal(ex->name_len, ey->name_len);
			assert_memory_equal(ex->name, ey->name, ex->name_len);
		}
	}
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

/*
 * /proc/PID/maps is smaps without the field lines (probes/sampler.c parses
 * it for the fast path): same mappings, same classes, Size from the range.
 */
static void
test_smaps_parse_maps_format(void **state)
{
	struct ana_smaps full, maps;
	char *text, *o;
	const char *p, *eol;
	size_t i, c;

	(void)state;
	ana_smaps_init(&full);
	ana_smaps_init(&maps);
	load_ok(&full, "ruby-threads");
	text = malloc(full.len + 1);
	assert_non_null(text);
	for (p = full.buf, o = text; p < full.buf + full.len; p = eol + 1) {
		eol = strchr(p, '\n');
		assert_non_null(eol);
		if (strchr("0123456789abcdef", *p)) {
			memcpy(o, p, (size_t)(eol - p + 1));
			o += eol - p + 1;
		}
	}
	*o = '\0';
	parse_ok(&maps, text);
	free(text);
	assert_int_equal(maps.nmaps, full.nmaps);
	assert_int_equal(maps.nextra, 0);
	assert_int_equal(maps.totals.size, full.totals.size);
	assert_int_equal(maps.totals.rss, 0);
	for (c = 0; c < ANA_MAP_NCLASS; c++)
		assert_int_equal(maps.totals.cls[c].size,
				 full.totals.cls[c].size);
	for (i = 0; i < maps.nmaps; i++) {
		assert_int_equal(maps.maps[i].cls, full.maps[i].cls);
		assert_int_equal(maps.maps[i].present, 0);
		assert_null(maps.maps[i].vmflags);
	}
	ana_smaps_release(&full);
	ana_smaps_release(&maps);
}

static void
test_smaps_parse_names(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "names");
	m = find(&s, 0x7f3a1d001000);
	assert_true(name_eq(m, "/tmp/dir with spaces/lib name.so"));
	assert_int_equal(m->inode, 1234);
	/* the kernel's escape for '\n' is kept as printed */
	m = find(&s, 0x7f3a1d002000);
	assert_true(name_eq(m, "/tmp/evil\\012name"));
	m = find(&s, 0x7f3a1d003000);
	assert_true(name_eq(m, "/memfd:ruby-buf"));
	assert_true(m->deleted);
	assert_string_equal(m->perms, "rw-s");
	assert_int_equal(m->cls, ANA_MAP_FILE);
	m = find(&s, 0x7f3a1d005000);
	assert_true(name_eq(m, "/tmp/gone.so"));
	assert_true(m->deleted);
	m = find(&s, 0x7f3a1d00f000);
	assert_true(name_eq(m, "/tmp/weird(deleted)"));
	assert_false(m->deleted);
	m = find(&s, 0x7f3a1d008000);
	assert_true(name_eq(m, "[anon:ruby heap page]"));
	assert_int_equal(m->cls, ANA_MAP_ANON);
	m = find(&s, 0x7f3a1d00a000);
	assert_int_equal(m->name_len, 0);
	assert_int_equal(m->cls, ANA_MAP_ANON);
	m = find(&s, 0x7f3a1d00d000);
	assert_true(name_eq(m, "anon_inode:[perf_event]"));
	assert_int_equal(m->dev_minor, 0x0e);
	m = find(&s, 0x7f3a1d106000);
	assert_true(name_eq(m, "[uprobes]"));
	assert_int_equal(m->cls, ANA_MAP_SPECIAL);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_unknown_fields(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "unknown-fields");
	m = &s.maps[0];
	assert_int_equal(ana_mapping_field(&s, m, "FutureField"), 42);
	assert_int_equal(ana_mapping_field(&s, m, "ProtectionKey"), 3);
	assert_int_equal(ana_mapping_field(&s, m, "X_Y"), 5);
	assert_int_equal(ana_mapping_field(&s, m, "Rss_Like_New_One"), 7);
	assert_int_equal(ana_mapping_field(&s, m, "Weird"), -1);
	assert_int_equal(ana_mapping_field(&s, m, "Rss"), 12);
	/* the next mapping's extras do not bleed into this one */
	assert_int_equal(ana_mapping_field(&s, &s.maps[1], "FutureField"),
			 -1);
	assert_int_equal(ana_mapping_field(&s, &s.maps[1], "KSM"), 0);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_missing_fields(void **state)
{
	struct ana_smaps s;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "missing-fields");
	assert_int_equal(s.nmaps, 4);
	assert_int_equal(s.maps[0].present, 1u << ANA_F_SIZE);
	assert_int_equal(ana_mapping_field(&s, &s.maps[0], "Rss"), -1);
	assert_int_equal(s.maps[0].kb[ANA_F_RSS], 0);
	assert_int_equal(s.maps[1].present, 0);
	assert_null(s.maps[1].vmflags);
	assert_int_equal(ana_mapping_field(&s, &s.maps[2], "Size"), -1);
	/* Size missing: the totals fall back to end - start */
	assert_int_equal(s.totals.cls[ANA_MAP_HEAP].size, 0x2000);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_huge_numbers_saturate(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "huge");
	m = &s.maps[1];
	assert_int_equal(m->start, 0xffffffffffff0000ull);
	assert_int_equal(m->end, 0xffffffffffffffffull);
	assert_int_equal(m->inode, UINT64_MAX);
	assert_int_equal(m->kb[ANA_F_SIZE], UINT64_MAX);
	assert_int_equal(m->kb[ANA_F_RSS], UINT64_MAX);
	assert_int_equal(m->kb[ANA_F_PSS], 18014398509481983ull);
	assert_int_equal(ana_mapping_field(&s, m, "Rss"), INT64_MAX);
	assert_int_equal(ana_mapping_field(&s, m, "FutureHuge"), INT64_MAX);
	assert_int_equal(s.totals.rss, UINT64_MAX);
	assert_int_equal(s.totals.uss, UINT64_MAX);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_truncated_last_line(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;

	(void)state;
	ana_smaps_init(&s);
	/* "Rss:   1" cut from "Rss:  12 kB": dropped, not taken as 1 kB */
	load_ok(&s, "truncated");
	assert_int_equal(s.nmaps, 3);
	m = &s.maps[2];
	assert_true(m->present & (1u << ANA_F_MMUPAGESIZE));
	assert_false(m->present & (1u << ANA_F_RSS));
	/* a header cut short drops only that mapping */
	load_ok(&s, "truncated-header");
	assert_int_equal(s.nmaps, 2);
	/* a header cut in the padding before its name: dropped, not taken
	 * for an anonymous mapping; cut right after "0 " it is anonymous */
	parse_ok(&s, "7f0000010000-7f0000013000 r--p 00000000 fe:00 42      ");
	assert_int_equal(s.nmaps, 0);
	parse_ok(&s, "7f0000010000-7f0000013000 rw-p 00000000 00:00 0 ");
	assert_int_equal(s.nmaps, 1);
	assert_int_equal(s.maps[0].name_len, 0);
	parse_ok(&s, "7f0000010000-7f0000013000 r--p 00000000 fe:00 42      /usr/li");
	assert_int_equal(s.nmaps, 1);
	/* VmFlags cut inside a flag: the partial flag is dropped */
	load_ok(&s, "truncated-flags");
	m = &s.maps[0];
	assert_int_equal(m->vmflags_len, strlen("rd wr mr mw me"));
	assert_memory_equal(m->vmflags, "rd wr mr mw me", m->vmflags_len);
	/* a complete last line without newline is kept */
	load_ok(&s, "no-newline");
	assert_int_equal(ana_mapping_field(&s, &s.maps[0], "Swap"), 8);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_empty(void **state)
{
	struct ana_smaps s;
	struct lp_err err = { 0 };

	(void)state;
	ana_smaps_init(&s);
	/* no buffer at all yet */
	assert_int_equal(ana_smaps_parse_buf(&s, 0, &err), 0);
	assert_int_equal(s.nmaps, 0);
	assert_int_equal(s.totals.rss, 0);
	assert_int_equal(parse_text(&s, "", &err), 0);
	assert_int_equal(s.nmaps, 0);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_error_names_line(void **state)
{
	struct ana_smaps s;
	struct lp_err err = { 0 };

	(void)state;
	ana_smaps_init(&s);
	assert_int_equal(load(&s, "garbage-header", &err), -LP_EPARSE);
	assert_int_equal(err.code, LP_EPARSE);
	assert_non_null(strstr(err.msg, "line 26"));
	assert_non_null(strstr(err.msg, "'this is not a mapping header'"));
	assert_int_equal(s.nmaps, 0);

	/* unprintable bytes in the quoted line are replaced */
	lp_err_clear(&err);
	assert_int_equal(parse_text(&s, "\033[2Jboom\n", &err), -LP_EPARSE);
	assert_non_null(strstr(err.msg, "line 1:"));
	assert_null(strchr(err.msg, '\033'));

	lp_err_clear(&err);
	assert_int_equal(parse_text(&s, "Rss: 4 kB\n", &err), -LP_EPARSE);
	assert_non_null(strstr(err.msg, "'Rss' before any mapping header"));

	/* a good parse after a failed one starts clean */
	lp_err_clear(&err);
	load_ok(&s, "sleep");
	assert_int_equal(s.nmaps, 37);
	ana_smaps_release(&s);
}

static void
test_smaps_parse_needs_spare_byte(void **state)
{
	struct ana_smaps s;
	struct lp_err err = { 0 };

	(void)state;
	ana_smaps_init(&s);
	ana_smaps_reserve(&s, 16);
	assert_true(s.cap >= 17);
	assert_int_equal(ana_smaps_parse_buf(&s, s.cap, &err), -LP_EINVAL);
	assert_int_equal(err.code, LP_EINVAL);
	ana_smaps_release(&s);
	ana_smaps_release(NULL);
}

static void
test_smaps_rollup_totals(void **state)
{
	struct ana_smaps s;
	const struct ana_mapping *m;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "ruby-json-rollup");
	assert_true(s.rollup);
	assert_int_equal(s.nmaps, 1);
	m = &s.maps[0];
	assert_true(name_eq(m, "[rollup]"));
	assert_int_equal(s.totals.rss, 13864ull * 1024);
	assert_int_equal(s.totals.pss, 10009ull * 1024);
	assert_int_equal(s.totals.uss, (64ull + 8628) * 1024);
	assert_int_equal(s.totals.size, 0);
	assert_int_equal(ana_mapping_field(&s, m, "Pss_Anon"), 8628);
	assert_int_equal(ana_mapping_field(&s, m, "Pss_File"), 1381);
	/* the same parser object then reads a full smaps */
	load_ok(&s, "sleep");
	assert_false(s.rollup);
	ana_smaps_release(&s);
}

/* The rollup's totals agree with the full file captured at that moment. */
static void
test_smaps_rollup_matches_full(void **state)
{
	struct ana_smaps full, roll;

	(void)state;
	ana_smaps_init(&full);
	ana_smaps_init(&roll);
	load_ok(&full, "ruby-threads");
	load_ok(&roll, "ruby-threads-rollup");
	assert_int_equal(full.totals.rss, roll.totals.rss);
	assert_int_equal(full.totals.uss, roll.totals.uss);
	assert_int_equal(full.totals.swap, roll.totals.swap);
	ana_smaps_release(&full);
	ana_smaps_release(&roll);
}

static void
test_smaps_buffers_reused(void **state)
{
	struct ana_smaps s;
	struct ana_totals big;
	struct ana_mapping *maps;
	struct ana_extra_field *extra;
	size_t nbig, maps_cap, extra_cap, cap;
	char *buf;

	(void)state;
	ana_smaps_init(&s);
	load_ok(&s, "many-maps");
	assert_true(s.nmaps >= 10000);
	nbig = s.nmaps;
	big = s.totals;
	buf = s.buf;
	cap = s.cap;
	maps = s.maps;
	maps_cap = s.maps_cap;
	extra = s.extra;
	extra_cap = s.extra_cap;

	/* a smaller file after a big one: nothing reallocated, nothing stale */
	load_ok(&s, "sleep");
	assert_int_equal(s.nmaps, 37);
	assert_int_equal(s.totals.rss, 1808ull * 1024);
	assert_int_equal(s.nextra, 37 * 8);
	assert_ptr_equal(s.buf, buf);
	assert_ptr_equal(s.maps, maps);
	assert_ptr_equal(s.extra, extra);

	/* and the big one again: same answer, same arrays */
	load_ok(&s, "many-maps");
	assert_int_equal(s.nmaps, nbig);
	assert_memory_equal(&s.totals, &big, sizeof(big));
	assert_ptr_equal(s.buf, buf);
	assert_int_equal(s.cap, cap);
	assert_ptr_equal(s.maps, maps);
	assert_int_equal(s.maps_cap, maps_cap);
	assert_ptr_equal(s.extra, extra);
	assert_int_equal(s.extra_cap, extra_cap);
	/* arrays grow amortized, not one element at a time */
	assert_true(s.maps_cap < 2 * nbig);
	ana_smaps_release(&s);
}

/* ---- classification --------------------------------------------------- */

static void
test_smaps_classify_arena_with_tail(void **state)
{
	struct ana_smaps s;

	(void)state;
	ana_smaps_init(&s);
	parse_ok(&s,
		 "7f1b64000000-7f1b64073000 rw-p 00000000 00:00 0 \n"
		 "Size: 460 kB\nRss: 300 kB\nPrivate_Dirty: 300 kB\n"
		 "7f1b64073000-7f1b68000000 ---p 00000000 00:00 0 \n"
		 "Size: 65076 kB\nRss: 0 kB\n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ARENA);
	assert_int_equal(s.maps[1].cls, ANA_MAP_ARENA);
	assert_int_equal(s.totals.cls[ANA_MAP_ARENA].size, 64ull << 20);
	assert_int_equal(s.totals.cls[ANA_MAP_ARENA].rss, 300 * 1024);
	assert_int_equal(s.totals.cls[ANA_MAP_ANON].size, 0);

	/* start not aligned (merged with a neighbour below): the tail that
	 * ends on the 64 MiB boundary still identifies the arena */
	parse_ok(&s,
		 "7f1b73f00000-7f1b74073000 rw-p 00000000 00:00 0 \n"
		 "7f1b74073000-7f1b78000000 ---p 00000000 00:00 0 \n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ARENA);
	assert_int_equal(s.maps[1].cls, ANA_MAP_ARENA);

	/* glibc >= 2.39 may name the first rw-p part; the part grown later
	 * and the tail stay unnamed */
	parse_ok(&s,
		 "7f1b90000000-7f1b90021000 rw-p 00000000 00:00 0   [anon: glibc: malloc arena]\n"
		 "7f1b90021000-7f1b90042000 rw-p 00000000 00:00 0 \n"
		 "7f1b90042000-7f1b94000000 ---p 00000000 00:00 0 \n"
		 "7f1b98100000-7f1b98200000 rw-p 00000000 00:00 0   [anon: glibc: malloc]\n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ARENA);
	assert_int_equal(s.maps[1].cls, ANA_MAP_ARENA);
	assert_int_equal(s.maps[2].cls, ANA_MAP_ARENA);
	assert_int_equal(s.maps[3].cls, ANA_MAP_ANON);

	/* the same pair one page off the boundary is ordinary memory */
	parse_ok(&s,
		 "7f1b73f00000-7f1b74073000 rw-p 00000000 00:00 0 \n"
		 "7f1b74073000-7f1b77fff000 ---p 00000000 00:00 0 \n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ANON);
	assert_int_equal(s.maps[1].cls, ANA_MAP_ANON);
	ana_smaps_release(&s);
}

static void
test_smaps_classify_arena_without_tail(void **state)
{
	struct ana_smaps s;

	(void)state;
	ana_smaps_init(&s);
	/* a fully grown arena: 64 MiB rw-p, aligned, no PROT_NONE left */
	parse_ok(&s,
		 "7f1b6c000000-7f1b70000000 rw-p 00000000 00:00 0 \n"
		 "7f1b70000000-7f1b70001000 ---p 00000000 00:00 0 \n"
		 "7f1b74000000-7f1b74021000 rw-p 00000000 00:00 0 \n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ARENA);
	/* a guard page above a full arena is outside its reservation */
	assert_int_equal(s.maps[1].cls, ANA_MAP_ANON);
	/* aligned, no tail, small: a young arena as well */
	assert_int_equal(s.maps[2].cls, ANA_MAP_ARENA);

	/* aligned but too big, aligned but read-only, aligned file */
	parse_ok(&s,
		 "7f1b84000000-7f1b8c000000 rw-p 00000000 00:00 0 \n"
		 "7f1b98000000-7f1b98001000 r--p 00000000 00:00 0 \n"
		 "7f1b9c000000-7f1b9c001000 rw-p 00000000 fe:00 12     /x\n"
		 "7f1ba0001000-7f1ba0002000 rw-p 00000000 00:00 0 \n");
	assert_int_equal(s.maps[0].cls, ANA_MAP_ANON);
	assert_int_equal(s.maps[1].cls, ANA_MAP_ANON);
	assert_int_equal(s.maps[2].cls, ANA_MAP_FILE);
	assert_int_equal(s.maps[3].cls, ANA_MAP_ANON);
	ana_smaps_release(&s);
}

static void
test_smaps_classify_real_threads(void **state)
{
	struct ana_smaps s;
	size_t i, arenas = 0;

	(void)state;
	ana_smaps_init(&s);
	/* four Ruby threads that allocated: four glibc arenas + tails */
	load_ok(&s, "ruby-threads");
	for (i = 0; i < s.nmaps; i++)
		arenas += s.maps[i].cls == ANA_MAP_ARENA;
	assert_int_equal(arenas, 8);
	assert_int_equal(s.totals.cls[ANA_MAP_ARENA].size, 4 * (64ull << 20));
	/* one Ruby without threads has none */
	load_ok(&s, "ruby-json");
	assert_int_equal(s.totals.cls[ANA_MAP_ARENA].size, 0);
	assert_true(s.totals.cls[ANA_MAP_HEAP].rss > 0);
	ana_smaps_release(&s);
}

static void
test_smaps_names_of_enums(void **state)
{
	(void)state;
	assert_string_equal(ana_map_class_name(ANA_MAP_HEAP), "heap");
	assert_string_equal(ana_map_class_name(ANA_MAP_ARENA), "arena");
	assert_string_equal(ana_map_class_name(ANA_MAP_SPECIAL), "special");
	assert_string_equal(ana_map_class_name(ANA_MAP_NCLASS), "?");
	assert_string_equal(ana_field_name(ANA_F_PRIVATE_DIRTY),
			    "Private_Dirty");
	assert_string_equal(ana_field_name(ANA_F_KERNELPAGESIZE),
			    "KernelPageSize");
	assert_string_equal(ana_field_name(ANA_F_NKNOWN), "?");
}

/* ---- diff -------------------------------------------------------------- */

#define HEAP_OLD "55d0c0a2e000-55d0c0b2e000 rw-p 00000000 00:00 0   [heap]\n" \
		 "Size: 1024 kB\nRss: 512 kB\nPrivate_Dirty: 512 kB\n"
#define HEAP_NEW "55d0c0a2e000-55d0c0d2e000 rw-p 00000000 00:00 0   [heap]\n" \
		 "Size: 3072 kB\nRss: 1536 kB\nPrivate_Dirty: 1536 kB\n"
#define LIBC "7f39c1418000-7f39c143e000 r--p 00000000 fe:00 332835   /usr/lib/libc.so.6\n" \
	     "Size: 152 kB\nRss: 152 kB\n"
#define STACK_OLD "7ffe6c69b000-7ffe6c6bc000 rw-p 00000000 00:00 0   [stack]\n" \
		  "Size: 132 kB\nRss: 20 kB\n"
#define STACK_NEW "7ffe6c59b000-7ffe6c6bc000 rw-p 00000000 00:00 0   [stack]\n" \
		  "Size: 1156 kB\nRss: 1044 kB\n"

static void
diff_of(struct ana_smaps *a, struct ana_smaps *b, const char *old,
	const char *new)
{
	ana_smaps_init(a);
	ana_smaps_init(b);
	parse_ok(a, old);
	parse_ok(b, new);
}

static void
test_smaps_diff_grew_in_place(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	size_t n;

	(void)state;
	diff_of(&a, &b, HEAP_OLD LIBC STACK_OLD, HEAP_NEW LIBC STACK_NEW);
	n = ana_smaps_diff(&a, &b, 0, &c);
	/* libc did not change; [heap] grew up, [stack] grew down */
	assert_int_equal(n, 2);
	assert_int_equal(c[0].kind, ANA_GREW);
	assert_ptr_equal(c[0].old, &a.maps[0]);
	assert_ptr_equal(c[0].new, &b.maps[0]);
	assert_int_equal(c[0].d_size, 2048 * 1024);
	assert_int_equal(c[0].d_rss, 1024 * 1024);
	assert_int_equal(c[0].d_private_dirty, 1024 * 1024);
	assert_int_equal(c[1].kind, ANA_GREW);
	assert_true(name_eq(c[1].new, "[stack]"));
	assert_int_equal(c[1].d_rss, 1024 * 1024);
	free(c);
	/* and backwards it shrank */
	n = ana_smaps_diff(&b, &a, 0, &c);
	assert_int_equal(n, 2);
	assert_int_equal(c[0].kind, ANA_SHRANK);
	assert_int_equal(c[0].d_size, -2048 * 1024);
	assert_int_equal(c[1].kind, ANA_SHRANK);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

static void
test_smaps_diff_appeared_vanished(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	size_t n;

	(void)state;
	diff_of(&a, &b,
		HEAP_OLD LIBC
		"7f0000200000-7f0000300000 rw-p 00000000 00:00 0 \n"
		"Size: 1024 kB\nRss: 1024 kB\n",
		HEAP_OLD LIBC
		"7f0000400000-7f0000480000 rw-p 00000000 00:00 0 \n"
		"Size: 512 kB\nRss: 64 kB\n");
	n = ana_smaps_diff(&a, &b, 0, &c);
	assert_int_equal(n, 2);
	/* sorted by |d_rss|: the 1 MiB that went away comes first */
	assert_int_equal(c[0].kind, ANA_VANISHED);
	assert_null(c[0].new);
	assert_int_equal(c[0].old->start, 0x7f0000200000ull);
	assert_int_equal(c[0].d_rss, -1024 * 1024);
	assert_int_equal(c[0].d_size, -1024 * 1024);
	assert_int_equal(c[1].kind, ANA_APPEARED);
	assert_null(c[1].old);
	assert_int_equal(c[1].new->start, 0x7f0000400000ull);
	assert_int_equal(c[1].d_size, 512 * 1024);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

static void
test_smaps_diff_renamed_is_vanish_and_appear(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	size_t n;

	(void)state;
	diff_of(&a, &b,
		"7f0000200000-7f0000300000 r--p 00000000 fe:00 1   /a.so\n"
		"Size: 1024 kB\nRss: 8 kB\n",
		"7f0000200000-7f0000300000 r--p 00000000 fe:00 2   /b.so\n"
		"Size: 1024 kB\nRss: 8 kB\n");
	n = ana_smaps_diff(&a, &b, 0, &c);
	assert_int_equal(n, 2);
	assert_true(c[0].kind == ANA_VANISHED || c[1].kind == ANA_VANISHED);
	assert_true(c[0].kind == ANA_APPEARED || c[1].kind == ANA_APPEARED);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);

	/* a file deleted under its mapping is the same mapping */
	diff_of(&a, &b,
		"7f0000200000-7f0000300000 r--p 00000000 fe:00 1   /a.so\n"
		"Size: 1024 kB\nRss: 8 kB\n",
		"7f0000200000-7f0000300000 r--p 00000000 fe:00 1   /a.so (deleted)\n"
		"Size: 1024 kB\nRss: 8 kB\n");
	assert_int_equal(ana_smaps_diff(&a, &b, 0, &c), 0);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

/* An arena's rw-p part grows into its PROT_NONE tail: one grow, one
 * shrink, no appear/vanish noise from the tail's moving start. */
static void
test_smaps_diff_arena_grows_into_tail(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	size_t n;

	(void)state;
	diff_of(&a, &b,
		"7f1b64000000-7f1b64073000 rw-p 00000000 00:00 0 \n"
		"Size: 460 kB\nRss: 300 kB\n"
		"7f1b64073000-7f1b68000000 ---p 00000000 00:00 0 \n"
		"Size: 65076 kB\nRss: 0 kB\n",
		"7f1b64000000-7f1b64273000 rw-p 00000000 00:00 0 \n"
		"Size: 2508 kB\nRss: 2348 kB\n"
		"7f1b64273000-7f1b68000000 ---p 00000000 00:00 0 \n"
		"Size: 63028 kB\nRss: 0 kB\n");
	n = ana_smaps_diff(&a, &b, 0, &c);
	assert_int_equal(n, 2);
	assert_int_equal(c[0].kind, ANA_GREW);
	assert_int_equal(c[0].new->cls, ANA_MAP_ARENA);
	assert_int_equal(c[0].d_rss, 2048 * 1024);
	assert_int_equal(c[0].d_size, 2048 * 1024);
	assert_int_equal(c[1].kind, ANA_SHRANK);
	assert_int_equal(c[1].new->cls, ANA_MAP_ARENA);
	assert_int_equal(c[1].d_size, -2048 * 1024);
	assert_int_equal(c[1].d_rss, 0);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

static void
test_smaps_diff_min_bytes(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	size_t n;

	(void)state;
	diff_of(&a, &b,
		HEAP_OLD LIBC
		"7f0000200000-7f0000300000 rw-p 00000000 00:00 0 \n"
		"Size: 1024 kB\nRss: 100 kB\n",
		HEAP_NEW LIBC
		"7f0000200000-7f0000300000 rw-p 00000000 00:00 0 \n"
		"Size: 1024 kB\nRss: 104 kB\n"
		"7f0000400000-7f0000402000 rw-p 00000000 00:00 0 \n"
		"Size: 8 kB\nRss: 8 kB\n");
	/* 0 keeps every change, even 4 KiB of Rss */
	n = ana_smaps_diff(&a, &b, 0, &c);
	assert_int_equal(n, 3);
	free(c);
	/* 64 KiB keeps only [heap] (+2 MiB size, +1 MiB rss) */
	n = ana_smaps_diff(&a, &b, 64 * 1024, &c);
	assert_int_equal(n, 1);
	assert_true(name_eq(c[0].new, "[heap]"));
	free(c);
	/* the threshold compares with Size as well as Rss */
	n = ana_smaps_diff(&a, &b, 2048 * 1024, &c);
	assert_int_equal(n, 1);
	free(c);
	n = ana_smaps_diff(&a, &b, 2048 * 1024 + 1, &c);
	assert_int_equal(n, 0);
	assert_null(c);
	/* identical snapshots: no change at all */
	n = ana_smaps_diff(&a, &a, 0, &c);
	assert_int_equal(n, 0);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

static void
test_smaps_diff_print_readable(void **state)
{
	struct ana_smaps a, b;
	struct ana_map_change *c;
	char *out = NULL;
	size_t n, len = 0;
	FILE *fp;

	(void)state;
	diff_of(&a, &b,
		HEAP_OLD
		"7f0000200000-7f0000300000 r--p 00000000 fe:00 1   /tmp/a\tb\n"
		"Size: 1024 kB\nRss: 8 kB\n",
		HEAP_NEW
		"7f1b64000000-7f1b64073000 rw-p 00000000 00:00 0 \n"
		"Size: 460 kB\nRss: 12 kB\n");
	n = ana_smaps_diff(&a, &b, 0, &c);
	assert_int_equal(n, 3);
	fp = open_memstream(&out, &len);
	assert_non_null(fp);
	ana_smaps_diff_print(fp, c, n);
	fclose(fp);
	assert_string_equal(out,
		"  grew       +1.00 MiB rss   +2.00 MiB size  [heap]  55d0c0a2e000-55d0c0d2e000 rw-p\n"
		"  appeared   +12.0 KiB rss  +460.0 KiB size  <arena>  7f1b64000000-7f1b64073000 rw-p\n"
		"  vanished   -8.00 KiB rss   -1.00 MiB size  /tmp/a\\011b  7f0000200000-7f0000300000 r--p\n");
	free(out);
	free(c);
	ana_smaps_release(&a);
	ana_smaps_release(&b);
}

/* Fail the whole group early, with the reason, when run from elsewhere. */
static int
group_setup(void **state)
{
	(void)state;
	if (access(FIXDIR "/expected", R_OK | X_OK) < 0) {
		fprintf(stderr, "test_smaps: cannot read %s/expected: run from the repository root (or build with -DLP_SRCDIR=...)\n",
			FIXDIR);
		return -1;
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smaps_fixtures_match_expected),
		cmocka_unit_test(test_smaps_parse_every_field),
		cmocka_unit_test(test_smaps_parse_layout_independent),
		cmocka_unit_test(test_smaps_parse_maps_format),
		cmocka_unit_test(test_smaps_parse_names),
		cmocka_unit_test(test_smaps_parse_unknown_fields),
		cmocka_unit_test(test_smaps_parse_missing_fields),
		cmocka_unit_test(test_smaps_parse_huge_numbers_saturate),
		cmocka_unit_test(test_smaps_parse_truncated_last_line),
		cmocka_unit_test(test_smaps_parse_empty),
		cmocka_unit_test(test_smaps_parse_error_names_line),
		cmocka_unit_test(test_smaps_parse_needs_spare_byte),
		cmocka_unit_test(test_smaps_rollup_totals),
		cmocka_unit_test(test_smaps_rollup_matches_full),
		cmocka_unit_test(test_smaps_buffers_reused),
		cmocka_unit_test(test_smaps_classify_arena_with_tail),
		cmocka_unit_test(test_smaps_classify_arena_without_tail),
		cmocka_unit_test(test_smaps_classify_real_threads),
		cmocka_unit_test(test_smaps_names_of_enums),
		cmocka_unit_test(test_smaps_diff_grew_in_place),
		cmocka_unit_test(test_smaps_diff_appeared_vanished),
		cmocka_unit_test(test_smaps_diff_renamed_is_vanish_and_appear),
		cmocka_unit_test(test_smaps_diff_arena_grows_into_tail),
		cmocka_unit_test(test_smaps_diff_min_bytes),
		cmocka_unit_test(test_smaps_diff_print_readable),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
