/*
 * Unit tests for analysis/heapdump.c: the heap dump scanner, digests,
 * diffs and --why chains.
 *
 * Fixtures are data: tests/fixtures/heapdump/NAME.1.json (OLD), NAME.2.json
 * (NEW) and NAME.3.json (LATER) when present, and expected/NAME.out, the
 * result printed by fmt_case() (format in tests/fixtures/heapdump/README).
 * Adding a case means adding files; test_heapdump_fixtures_match_expected
 * picks them up.  LP_UPDATE_EXPECTED=1 rewrites the .out files (review
 * the diff before keeping it).
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
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "analysis/analysis_int.h"
#include "common/err.h"
#include "common/util.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/heapdump"

/* ---- helpers ---------------------------------------------------------- */

static char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0;
	struct lp_err err = { 0 };
	ssize_t n = lp_read_file(path, &buf, &cap, &err);

	if (n < 0)
		fail_msg("cannot read %s: %s", path, err.msg);
	*len = (size_t)n;
	return buf;
}

/* Print a string with bytes outside printable ASCII as \xNN. */
static void
put_esc(FILE *fp, const char *s)
{
	if (!s) {
		fputs("-", fp);
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '\\')
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
}

static void
fmt_stats(FILE *fp, const char *role, const struct ana_hd_stats *s)
{
	fprintf(fp, "dump %s: lines=%" PRIu64 " objects=%" PRIu64
		" roots=%" PRIu64 " traced=%" PRIu64 " memsize=%" PRIu64
		" max_gen=%" PRId64 " same_gen=%" PRIu64 "/%" PRIu64
		" bad=%" PRIu64 " first_bad=%" PRIu64 " (%s)\n", role,
		s->lines, s->objects, s->roots, s->traced, s->memsize,
		s->max_gen, s->same_gen, s->same_gen_new, s->bad,
		s->first_bad, s->first_bad_why);
}

static void
fmt_diff(FILE *fp, const struct ana_hd_diff *d)
{
	fprintf(fp, "by %s: method=%s after=%" PRId64 " upto=%" PRId64
		" total=%" PRIu64 "/%" PRIu64 " by_shape=%" PRIu64
		" candidates=%" PRIu64 " lost_info=%" PRIu64
		" same_gen=%" PRIu64 "/%" PRIu64 "\n", ana_hd_by_name(d->by),
		d->method == ANA_HD_SITES ? "sites" : "classes", d->after_gen,
		d->upto_gen == INT64_MAX ? -1 : d->upto_gen, d->total_count,
		d->total_bytes, d->by_shape, d->candidates, d->lost_info,
		d->same_gen, d->same_gen_new);
	for (size_t i = 0; i < d->nrows; i++) {
		const struct ana_hd_row *r = &d->rows[i];

		fprintf(fp, "  row file=");
		put_esc(fp, r->file);
		fprintf(fp, " line=%" PRId64 " method=", r->line);
		put_esc(fp, r->method);
		fprintf(fp, " type=");
		put_esc(fp, r->type);
		fprintf(fp, " class=");
		put_esc(fp, r->cls);
		fprintf(fp, " count=%" PRIu64 " bytes=%" PRIu64, r->count,
			r->bytes);
		if (d->method == ANA_HD_SITES)
			fprintf(fp, " by_shape=%" PRIu64 " sites=%" PRIu64,
				r->by_shape, r->sites);
		else
			fprintf(fp, " counts=%" PRIu64 ",%" PRIu64 ",%" PRIu64
				" bytes=%" PRIu64 ",%" PRIu64 ",%" PRIu64,
				r->n_count[0], r->n_count[1], r->n_count[2],
				r->n_bytes[0], r->n_bytes[1], r->n_bytes[2]);
		fputc('\n', fp);
	}
	if (d->by != ANA_HD_BY_SITE || !d->grown_on)
		return;
	fprintf(fp, "grown count=%" PRIu64 " bytes=%" PRIu64 "\n",
		d->grown_count, d->grown_bytes);
	for (size_t i = 0; i < d->ngrown; i++) {
		const struct ana_hd_grown *g = &d->grown[i];

		fprintf(fp, "  grown address=0x%" PRIx64 " type=", g->address);
		put_esc(fp, g->type);
		fprintf(fp, " class=");
		put_esc(fp, g->cls);
		fprintf(fp, " file=");
		put_esc(fp, g->file);
		fprintf(fp, " line=%" PRId64 " method=", g->line);
		put_esc(fp, g->method);
		fprintf(fp, " gen=%" PRId64 " memsize=%" PRIu64, g->gen,
			g->memsize[0]);
		for (size_t j = 1; j < d->ndumps; j++)
			fprintf(fp, ",%" PRIu64, g->memsize[j]);
		fprintf(fp, " growth=%" PRIu64 "\n", g->growth);
	}
}

enum how { HOW_FILE, HOW_BUF1, HOW_STREAM };

/* Grown objects kept by fmt_case (0: all). */
static size_t case_top;

/*
 * Before dump i of n is fed: follow OLD for grown objects (all: the
 * digests before it; NULL: no grown objects).
 */
static void
grown_prep(struct ana_hd_digest *d, struct ana_hd_digest *const *all,
	   size_t i, size_t n)
{
	if (!all || n < 2)
		return;
	if (!i)
		assert_int_equal(ana_hd_digest_keep_sizes(d), 0);
	else
		assert_int_equal(ana_hd_digest_follow(d, all[0],
				 i == 2 ? all[1] : NULL, i == n - 1,
				 case_top), 0);
}

/* Digest one dump from memory, the way `how` says. */
static struct ana_hd_digest *
digest_mem(const char *buf, size_t len, int64_t after,
	   const struct ana_hd_digest *old, enum how how, unsigned threads,
	   size_t piece, struct ana_hd_digest *const *all, size_t i,
	   size_t n)
{
	struct ana_hd_digest *d = ana_hd_digest_new(after);
	struct lp_err err = { 0 };

	assert_non_null(d);
	if (old)
		assert_int_equal(ana_hd_digest_use_old(d, old), 0);
	grown_prep(d, all, i, n);
	if (how == HOW_STREAM) {
		for (size_t off = 0; off < len;) {
			size_t n = len - off < piece ? len - off : piece;

			assert_int_equal(ana_hd_digest_feed(d, buf + off, n,
							    &err), 0);
			off += n;
			/* vary the pieces: odd sizes cut lines anywhere */
			piece = piece * 7 % 4093 + 1;
		}
		assert_int_equal(ana_hd_digest_end(d, &err), 0);
	} else {
		assert_int_equal(ana_hd_digest_buf(d, buf, len, threads,
						   &err), 0);
	}
	return d;
}

/*
 * Run a case: digest dumps[0..n) (OLD without sites, the others for
 * generations above OLD's highest) and print stats and the diff by site,
 * class, type and method.  Returns a malloc'd text.
 */
static char *
fmt_case(char **bufs, size_t *lens, const char **paths, size_t n,
	 enum how how, unsigned threads, size_t piece)
{
	struct ana_hd_digest *d[3] = { NULL, NULL, NULL };
	static const char *const role[3] = { "old", "new", "later" };
	struct lp_err err = { 0 };
	char *text = NULL;
	size_t tlen = 0;
	FILE *fp = open_memstream(&text, &tlen);

	assert_non_null(fp);
	for (size_t i = 0; i < n; i++) {
		int64_t after = i ? ana_hd_digest_stats(d[0])->max_gen
				  : ANA_HD_NO_SITES;

		if (how == HOW_FILE) {
			d[i] = ana_hd_digest_new(after);
			assert_non_null(d[i]);
			if (i)
				assert_int_equal(ana_hd_digest_use_old(d[i],
								       d[0]),
						 0);
			grown_prep(d[i], d, i, n);
			assert_int_equal(ana_hd_digest_file(d[i], paths[i],
							    threads, &err), 0);
		} else {
			d[i] = digest_mem(bufs[i], lens[i], after,
					  i ? d[0] : NULL, how, threads,
					  piece, d, i, n);
		}
		fmt_stats(fp, role[i], ana_hd_digest_stats(d[i]));
	}
	for (int by = ANA_HD_BY_SITE; by <= ANA_HD_BY_METHOD; by++) {
		struct ana_hd_diff diff;

		assert_int_equal(ana_hd_diff_compute(d, n, (enum ana_hd_by)by,
						     &diff, &err), 0);
		fmt_diff(fp, &diff);
		ana_hd_diff_release(&diff);
	}
	fclose(fp);
	for (size_t i = 0; i < n; i++)
		ana_hd_digest_free(d[i]);
	return text;
}

/* ---- fixtures ---------------------------------------------------------- */

static void
test_heapdump_fixtures_match_expected(void **state)
{
	DIR *dir = opendir(FIXDIR);
	struct dirent *de;
	size_t ncases = 0;
	bool update = getenv("LP_UPDATE_EXPECTED") != NULL;

	(void)state;
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		char name[256], paths[3][512], exp_path[512];
		const char *pp[3];
		char *bufs[3] = { NULL, NULL, NULL }, *got[3], *want;
		size_t lens[3], n = 0, wlen, dl = strlen(de->d_name);
		struct stat st;

		if (dl < 8 || strcmp(de->d_name + dl - 7, ".1.json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(dl - 7), de->d_name);
		for (n = 0; n < 3; n++) {
			snprintf(paths[n], sizeof(paths[n]), "%s/%s.%zu.json",
				 FIXDIR, name, n + 1);
			if (stat(paths[n], &st) < 0)
				break;
			pp[n] = paths[n];
			bufs[n] = slurp(paths[n], &lens[n]);
		}
		/* the same result read from a file, from memory with one
		 * thread, and streamed in pieces of odd sizes */
		got[0] = fmt_case(bufs, lens, pp, n, HOW_FILE, 0, 0);
		got[1] = fmt_case(bufs, lens, pp, n, HOW_BUF1, 1, 0);
		got[2] = fmt_case(bufs, lens, pp, n, HOW_STREAM, 1, 1);
		snprintf(exp_path, sizeof(exp_path), "%s/expected/%s.out",
			 FIXDIR, name);
		if (update) {
			FILE *fp = fopen(exp_path, "w");

			assert_non_null(fp);
			fputs(got[0], fp);
			fclose(fp);
		}
		want = slurp(exp_path, &wlen);
		for (int k = 0; k < 3; k++) {
			if (strcmp(got[k], want))
				fail_msg("case %s (read %s):\n--- expected\n%s"
					 "--- got\n%s", name, k == 0 ? "from "
					 "file" : k == 1 ? "from memory" :
					 "streamed", want, got[k]);
			free(got[k]);
		}
		free(want);
		for (size_t i = 0; i < n; i++)
			free(bufs[i]);
		ncases++;
	}
	closedir(dir);
	assert_true(ncases >= 8);
}

/* ---- synthetic dumps ---------------------------------------------------- */

/*
 * A dump of about `target` bytes (head: see below), Ruby's key order:
 * sites s0..s49.rb, strings with escapes, 2/3 arrays referencing objects
 * 2i+1 and 2i+2 (a tree from the root, cut at strings), classes at the
 * end (after the objects that name them), a ROOT line first.
 */
static char *
synth(size_t target, int gen_lo, int gen_hi, unsigned seed, size_t *len,
      bool head, unsigned grow)
{
	char *text = NULL;
	size_t tlen = 0, i;
	FILE *fp = open_memstream(&text, &tlen);

	assert_non_null(fp);
	fprintf(fp, "{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":"
		"[\"0x10000\", \"0x10028\", \"0x10050\", \"0x10078\"]}\n");
	for (i = 0; (size_t)ftell(fp) < target; i++) {
		unsigned r = seed = seed * 1103515245u + 12345u;
		unsigned site = (r >> 8) % 50;
		int gen = gen_lo + (int)((r >> 16) % (unsigned)(gen_hi -
							       gen_lo + 1));
		uint64_t addr = 0x10000 + i * 40;
		unsigned extra = 0;

		/* head: the first 3000 objects are the same in every dump,
		 * every third one grown by `grow` * 8 bytes */
		if (head && i < 3000) {
			r = (unsigned)i * 2654435761u;
			gen = 1;
			extra = i % 3 ? 0 : grow * 8;
		}

		if ((r >> 20) % 3 == 0) {
			fprintf(fp, "{\"address\":\"0x%" PRIx64 "\", \"type\":"
				"\"STRING\", \"class\":\"0x9000\", \"bytesize\""
				":%u, \"value\":\"v\\\"al\\\\ue %u \\\"file\\\""
				":\\\"x.rb\\\"\", \"encoding\":\"UTF-8\", "
				"\"file\":\"s%u.rb\", \"line\":%u, \"method\":"
				"\"m\", \"generation\":%d, \"memsize\":%u, "
				"\"flags\":{\"wb_protected\":true}}\n", addr,
				site % 7, r, site, site + 1, gen,
				40 + (r >> 26) % 4 * 8 + extra);
		} else {
			fprintf(fp, "{\"address\":\"0x%" PRIx64 "\", \"type\":"
				"\"ARRAY\", \"class\":\"0x9028\", \"length\":2,"
				" \"references\":[\"0x%" PRIx64 "\", \"0x%"
				PRIx64 "\"], \"file\":\"s%u.rb\", \"line\":%u,"
				" \"generation\":%d, \"memsize\":%u, \"flags\":"
				"{\"wb_protected\":true, \"old\":true}}\n",
				addr, 0x10000 + (2 * i + 1) * 40,
				0x10000 + (2 * i + 2) * 40, site, site + 1,
				gen, 56 + extra);
		}
	}
	fprintf(fp, "{\"address\":\"0x9000\", \"type\":\"CLASS\", \"name\":"
		"\"String\", \"memsize\":600}\n{\"address\":\"0x9028\", "
		"\"type\":\"CLASS\", \"name\":\"Array\", \"memsize\":600}\n");
	fclose(fp);
	*len = tlen;
	return text;
}

static size_t
count_of(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle))) {
		n++;
		s++;
	}
	return n;
}

/* Threads and streaming see exactly what one thread sees. */
static void
test_heapdump_threads_and_stream_agree(void **state)
{
	char *bufs[3];
	size_t lens[3];
	char *one, *four, *stream;
	size_t ngrown;

	(void)state;
	bufs[0] = synth(3u << 20, 1, 10, 1, &lens[0], true, 0);
	bufs[1] = synth(5u << 20, 1, 20, 2, &lens[1], true, 1);
	bufs[2] = synth(5u << 20, 5, 30, 3, &lens[2], true, 2);
	for (int top = 3; top >= 0; top -= 3) {	/* 3 grown, then all */
		case_top = (size_t)top;
		one = fmt_case(bufs, lens, NULL, 3, HOW_BUF1, 1, 0);
		four = fmt_case(bufs, lens, NULL, 3, HOW_BUF1, 4, 0);
		stream = fmt_case(bufs, lens, NULL, 3, HOW_STREAM, 1, 65537);
		assert_string_equal(one, four);
		assert_string_equal(one, stream);
		/* grown objects were found, and cut at the top asked for */
		assert_non_null(strstr(one, "grown count="));
		assert_int_equal(sscanf(strstr(one, "grown count="),
					"grown count=%zu", &ngrown), 1);
		assert_true(ngrown >= 1000);	/* and chance matches */
		assert_int_equal(count_of(one, "  grown address="),
				 top ? 3 : ngrown);
		if (top) {
			free(one);
			free(four);
			free(stream);
		}
	}
	case_top = 0;
	/* it found something: rows for the sites */
	assert_non_null(strstr(one, "row file=s1.rb line=2 method=m "
				    "type=STRING class=String"));
	free(one);
	free(four);
	free(stream);
	for (int i = 0; i < 3; i++)
		free(bufs[i]);
}

/* A 2 MB value full of escapes and fake keys does not fool the scanner. */
static void
test_heapdump_huge_string(void **state)
{
	size_t n = 2u << 20, len;
	char *buf = malloc(n + 512), *p = buf;
	struct ana_hd_digest *d[2];
	struct ana_hd_diff diff;
	struct lp_err err = { 0 };
	const char *old = "{\"address\":\"0x1\", \"type\":\"STRING\", "
			  "\"generation\":1, \"memsize\":40}\n";

	(void)state;
	assert_non_null(buf);
	p += sprintf(p, "{\"address\":\"0x100\", \"type\":\"STRING\", "
		     "\"class\":\"0x900\", \"value\":\"");
	while ((size_t)(p - buf) < n) {
		memcpy(p, "\\\"file\\\":\\\"fake.rb\\\", \\\\", 24);
		p += 24;
	}
	p += sprintf(p, "\\\\\", \"file\":\"real.rb\", \"line\":3, "
		     "\"generation\":9, \"memsize\":%zu}\n", n);
	len = (size_t)(p - buf);
	d[0] = digest_mem(old, strlen(old), ANA_HD_NO_SITES, NULL, HOW_BUF1, 1,
			  0, NULL, 0, 0);
	d[1] = digest_mem(buf, len, 1, NULL, HOW_STREAM, 1, 4096, NULL, 0,
			  0);
	assert_int_equal(ana_hd_digest_stats(d[1])->bad, 0);
	assert_int_equal(ana_hd_digest_stats(d[1])->objects, 1);
	assert_int_equal(ana_hd_diff_compute(d, 2, ANA_HD_BY_SITE, &diff,
					     &err), 0);
	assert_int_equal(diff.nrows, 1);
	assert_string_equal(diff.rows[0].file, "real.rb");
	assert_int_equal(diff.rows[0].line, 3);
	assert_int_equal(diff.rows[0].bytes, n);
	assert_string_equal(diff.rows[0].cls, "(unknown)");
	ana_hd_diff_release(&diff);
	ana_hd_digest_free(d[0]);
	ana_hd_digest_free(d[1]);
	free(buf);
}

/*
 * The end of a nested value, byte by byte (what the scanner's 16-byte
 * skip must agree with): just after the matching bracket, or NULL.
 */
static const char *
ref_skip(const char *p, const char *e)
{
	size_t depth = 0;

	for (; p < e; p++) {
		if (*p == '"') {
			for (p++; p < e && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= e)
				return NULL;
		} else if (*p == '[' || *p == '{') {
			depth++;
		} else if (*p == ']' || *p == '}') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* Random nested values (quotes, escapes, brackets inside strings, long
 * references arrays) end where the byte-by-byte reading says. */
static void
test_heapdump_skip_nested_agrees(void **state)
{
	static const char alpha[] = "[]{}\"\\ ,0x1a";
	const char *pre = "{\"type\":\"ARRAY\", \"references\":";
	char line[600];
	unsigned seed = 12345;
	size_t npre = strlen(pre), found = 0;

	(void)state;
	for (int t = 0; t < 200000; t++) {
		char *v = line + npre, *end;
		size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 400;
		const char *want;
		struct hd_rec r;

		memcpy(line, pre, npre);
		v[0] = '[';
		for (size_t i = 1; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly a references array, sometimes noise */
			v[i] = (seed >> 20) % 8 ? "\"0x7f1a\", "[i % 10] :
			       alpha[(seed >> 8) % (sizeof(alpha) - 1)];
		}
		end = v + n;
		*end++ = '}';
		want = ref_skip(v, end);
		(void)ana__hd_parse(line, end, &r, true);
		/* "references" is kept when its array ends, where it ends */
		assert_int_equal(!!(r.have & HD_REFS), want != NULL);
		if (want) {
			assert_ptr_equal(r.refs, v);
			assert_ptr_equal(r.refs + r.refs_len, want);
			found++;
		}
	}
	assert_true(found > 1000);
}

/* ---- errors ---------------------------------------------------------- */

static void
test_heapdump_file_errors(void **state)
{
	struct ana_hd_digest *d = ana_hd_digest_new(ANA_HD_NO_SITES);
	struct lp_err err = { 0 };

	(void)state;
	assert_int_equal(ana_hd_digest_file(d, FIXDIR "/no-such.json", 0,
					    &err), -LP_EIO);
	assert_non_null(strstr(err.msg, "open '"));
	assert_non_null(strstr(err.msg, "No such file"));
	lp_err_clear(&err);
	assert_int_equal(ana_hd_digest_file(d, FIXDIR, 0, &err), -LP_EIO);
	assert_non_null(strstr(err.msg, "is a directory"));
	ana_hd_digest_free(d);

	/* an empty file is no error: no objects */
	d = ana_hd_digest_new(ANA_HD_NO_SITES);
	lp_err_clear(&err);
	assert_int_equal(ana_hd_digest_file(d, "/dev/null", 0, &err), 0);
	assert_int_equal(ana_hd_digest_stats(d)->objects, 0);
	/* fed after its end */
	assert_int_equal(ana_hd_digest_feed(d, "{}", 2, &err), -LP_EINVAL);
	ana_hd_digest_free(d);
}

static void
test_heapdump_diff_checks_generation(void **state)
{
	struct ana_hd_digest *d[2];
	struct ana_hd_diff diff;
	struct lp_err err = { 0 };
	const char *old = "{\"address\":\"0x1\", \"type\":\"STRING\", "
			  "\"generation\":4, \"memsize\":40}\n";

	(void)state;
	d[0] = digest_mem(old, strlen(old), ANA_HD_NO_SITES, NULL, HOW_BUF1, 1,
			  0, NULL, 0, 0);
	/* NEW digested for generations above 9: it misses 5..9 */
	d[1] = digest_mem(old, strlen(old), 9, NULL, HOW_BUF1, 1, 0, NULL, 0,
			  0);
	assert_int_equal(ana_hd_diff_compute(d, 2, ANA_HD_BY_SITE, &diff,
					     &err), -LP_EINVAL);
	assert_non_null(strstr(err.msg, "generations above 9, not 4"));
	ana_hd_digest_free(d[0]);
	ana_hd_digest_free(d[1]);
}

static void
test_heapdump_by_parse(void **state)
{
	enum ana_hd_by by;

	(void)state;
	assert_int_equal(ana_hd_by_parse("class", &by), 0);
	assert_int_equal(by, ANA_HD_BY_CLASS);
	assert_int_equal(ana_hd_by_parse("type", &by), 0);
	assert_int_equal(by, ANA_HD_BY_TYPE);
	assert_int_equal(ana_hd_by_parse("site", &by), 0);
	assert_int_equal(by, ANA_HD_BY_SITE);
	assert_int_equal(ana_hd_by_parse("sites", &by), -LP_EINVAL);
	assert_string_equal(ana_hd_by_name(ANA_HD_BY_CLASS), "class");
}

static void
test_heapdump_site_parse(void **state)
{
	char *f = NULL;
	int64_t line = 0;

	(void)state;
	assert_int_equal(ana_hd_site_parse("app/x.rb:14", &f, &line), 0);
	assert_string_equal(f, "app/x.rb");
	assert_int_equal(line, 14);
	free(f);
	/* the last colon splits: C:/x.rb:3 */
	assert_int_equal(ana_hd_site_parse("C:/x.rb:3", &f, &line), 0);
	assert_string_equal(f, "C:/x.rb");
	assert_int_equal(line, 3);
	free(f);
	assert_int_equal(ana_hd_site_parse("x.rb", &f, &line), -LP_EINVAL);
	assert_int_equal(ana_hd_site_parse("x.rb:", &f, &line), -LP_EINVAL);
	assert_int_equal(ana_hd_site_parse(":3", &f, &line), -LP_EINVAL);
	assert_int_equal(ana_hd_site_parse("x.rb:3x", &f, &line),
			 -LP_EINVAL);
	assert_int_equal(ana_hd_site_parse("x.rb:-1", &f, &line),
			 -LP_EINVAL);
}

/* ---- --why ----------------------------------------------------------- */

static void
test_heapdump_why_shortest_chain(void **state)
{
	struct ana_hd_chain c;
	struct lp_err err = { 0 };
	size_t len;
	char *buf = slurp(FIXDIR "/why.json", &len);

	(void)state;
	/* lib/x.rb:5 (whole) and /app/lib/x.rb:5 (suffix) both match */
	assert_int_equal(ana_hd_why_buf(buf, len, "x.rb", 5, 5, INT64_MAX, 1,
					&c, &err), 0);
	assert_int_equal(c.candidates, 2);
	assert_int_equal(c.objects, 11);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.links[0].type, "ROOT");
	assert_string_equal(c.links[0].root, "vm");
	assert_int_equal(c.links[1].address, 0xa00);
	assert_string_equal(c.links[1].cls, "Holder");
	assert_string_equal(c.links[1].file, "h.rb");
	assert_int_equal(c.links[1].gen, 1);
	assert_int_equal(c.links[2].address, 0xa28);
	assert_string_equal(c.links[2].type, "ARRAY");
	assert_string_equal(c.links[2].cls, "Arr\"ay");
	assert_null(c.links[2].file);
	assert_int_equal(c.links[2].line, -1);
	assert_int_equal(c.links[3].address, 0xa50);
	assert_string_equal(c.links[3].file, "lib/x.rb");
	assert_int_equal(c.links[3].line, 5);
	assert_string_equal(c.links[3].method, "new");
	assert_string_equal(c.links[3].cls, "String");
	ana_hd_chain_release(&c);

	/* the generation window excludes both */
	assert_int_equal(ana_hd_why_buf(buf, len, "x.rb", 5, 9, INT64_MAX, 1,
					&c, &err), 0);
	assert_int_equal(c.candidates, 0);
	assert_int_equal(c.n, 0);
	/* a suffix counts only at a '/' */
	assert_int_equal(ana_hd_why_buf(buf, len, "b/x.rb", 5, 5, INT64_MAX,
					1, &c, &err), 0);
	assert_int_equal(c.candidates, 0);
	/* only the unreachable one: candidates, but no chain */
	assert_int_equal(ana_hd_why_buf(buf, len, "/app/lib/x.rb", 5, 5,
					INT64_MAX, 1, &c, &err), 0);
	assert_int_equal(c.candidates, 1);
	assert_int_equal(c.n, 0);
	/* reached only through machine_context, across a cycle */
	assert_int_equal(ana_hd_why_buf(buf, len, "y.rb", 8, 0, INT64_MAX, 1,
					&c, &err), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.links[0].root, "machine_context");
	assert_int_equal(c.links[4].address, 0xb78);
	ana_hd_chain_release(&c);
	free(buf);
}

/* The chain in a big dump split over threads ends at a root. */
static void
test_heapdump_why_threads(void **state)
{
	size_t len;
	char *buf = synth(4u << 20, 1, 10, 7, &len, false, 0);
	struct ana_hd_chain c1, c4;
	struct lp_err err = { 0 };

	(void)state;
	assert_int_equal(ana_hd_why_buf(buf, len, "s3.rb", 4, 0, INT64_MAX, 1,
					&c1, &err), 0);
	assert_int_equal(ana_hd_why_buf(buf, len, "s3.rb", 4, 0, INT64_MAX, 4,
					&c4, &err), 0);
	assert_true(c1.candidates > 100);
	assert_int_equal(c1.candidates, c4.candidates);
	assert_true(c1.n >= 2);
	assert_int_equal(c1.n, c4.n);
	assert_string_equal(c4.links[0].type, "ROOT");
	assert_string_equal(c4.links[c4.n - 1].file, "s3.rb");
	assert_int_equal(c4.links[c4.n - 1].line, 4);
	ana_hd_chain_release(&c1);
	ana_hd_chain_release(&c4);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heapdump_fixtures_match_expected),
		cmocka_unit_test(test_heapdump_threads_and_stream_agree),
		cmocka_unit_test(test_heapdump_huge_string),
		cmocka_unit_test(test_heapdump_skip_nested_agrees),
		cmocka_unit_test(test_heapdump_file_errors),
		cmocka_unit_test(test_heapdump_diff_checks_generation),
		cmocka_unit_test(test_heapdump_by_parse),
		cmocka_unit_test(test_heapdump_site_parse),
		cmocka_unit_test(test_heapdump_why_shortest_chain),
		cmocka_unit_test(test_heapdump_why_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
