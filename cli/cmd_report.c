/*
 * leakprobe report FILE... -o OUT.html
 *
 * One self-contained HTML page from what a run produced, any subset of:
 * a watch file (CSV or JSON lines), the JSON of attach (a verdict, maybe
 * with retained sites and malloc sites), of heapdiff, of malloc.  The
 * page holds the memory plot and the flame graph as inline SVG drawn by
 * analysis/, and its CSS: no script, no font, no image from anywhere.
 * Every string from the inputs (file names, frames, Ruby sites) goes
 * through ana_html_escape: a hostile input cannot add markup.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CMD "report"
#define MAX_INPUTS 16
#define PAGE_WIDTH 1100

static const char report_usage[] =
"usage: leakprobe report FILE... -o OUT.html [--title TEXT] [--top N]\n"
"\n"
"Turn what a run produced into one self-contained HTML page, readable\n"
"offline (no script, font or image from anywhere): the memory plot of a\n"
"watch file (CSV or JSON lines), the verdict of `attach --json` with its\n"
"95 % interval, the retained allocation sites of `heapdiff --json` (or of\n"
"attach --retained), and the native malloc sites of `malloc --json` (or\n"
"of attach --malloc-sites) with a flame graph of their stacks.  Any\n"
"subset of those files, in any order: each is recognised by its content.\n"
"\n"
"  -o, --output FILE    the HTML page to write ('-': stdout)\n"
"      --title TEXT     the page's title (default: leakprobe report)\n"
"      --top N          rows per table (default 20)\n"
"  -h, --help           this help\n"
"\n"
"Exit status: 0 done, 2 usage (an input leakprobe did not write), 6 an\n"
"input cannot be read or the page cannot be written.\n";

enum input_kind { IN_WATCH, IN_VERDICT, IN_HEAPDIFF, IN_MALLOC };

struct input {
	const char *path;
	enum input_kind kind;
	json_t *doc;		/* JSON inputs */
	struct ana_series series;	/* watch */
};

struct report {
	const char *title;
	size_t top;
	struct input in[MAX_INPUTS];
	size_t n;
};

/* ---- reading -------------------------------------------------------- */

static int
read_first_line(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "re");
	size_t n;

	if (!fp) {
		cli_error(CMD, "cannot read '%s': %s", path, strerror(errno));
		return EXIT_IO;
	}
	if (!fgets(buf, (int)len, fp))
		buf[0] = '\0';
	fclose(fp);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return EXIT_OK;
}

static int
load_input(struct input *in)
{
	char line[4096];
	json_error_t je;
	struct lp_err err = { 0 };
	enum ana_format fmt;
	size_t bad = 0;
	bool gc;
	int rc;

	rc = read_first_line(in->path, line, sizeof(line));
	if (rc != EXIT_OK)
		return rc;
	if (ana_series_detect(line, strlen(line), &fmt, &gc) == 0) {
		in->kind = IN_WATCH;
		if (ana_series_load(&in->series, in->path, &bad, &err) < 0) {
			cli_error(CMD, "'%s': %s", in->path, err.msg);
			return EXIT_IO;
		}
		if (!in->series.n) {
			cli_error(CMD, "'%s': a watch file without samples: "
				  "let watch run longer", in->path);
			return EXIT_USAGE;
		}
		return EXIT_OK;
	}
	in->doc = json_load_file(in->path, JSON_DISABLE_EOF_CHECK |
				 JSON_DECODE_ANY, &je);
	if (in->doc && json_is_object(in->doc)) {
		if (json_object_get(in->doc, "verdict")) {
			in->kind = IN_VERDICT;
			return EXIT_OK;
		}
		if (json_object_get(in->doc, "rows") &&
		    json_object_get(in->doc, "total")) {
			in->kind = IN_HEAPDIFF;
			return EXIT_OK;
		}
		if (json_object_get(in->doc, "sites") &&
		    json_object_get(in->doc, "outstanding")) {
			in->kind = IN_MALLOC;
			return EXIT_OK;
		}
	}
	cli_error(CMD, "'%s' is none of: a watch file (CSV or JSON lines), "
		  "the --json of attach, heapdiff or malloc; give files "
		  "leakprobe wrote", in->path);
	return EXIT_USAGE;
}

/* ---- small helpers -------------------------------------------------- */

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static double
jnum(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void
esc(FILE *fp, const char *s)
{
	ana_html_escape(fp, s);
}

static void
put_bytes(FILE *fp, double v, int sign)
{
	char b[32];

	if (isnan(v)) {
		fputs("?", fp);
		return;
	}
	lp_human_bytes(v, sign, b, sizeof(b));
	esc(fp, b);
}

/* ---- sections ------------------------------------------------------- */

static const char css[] =
"body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',"
"sans-serif;margin:0;background:#f3f4f6;color:#1f2328}\n"
"header{background:#24292f;color:#fff;padding:18px 32px}\n"
"header h1{margin:0;font-size:22px}\n"
"header p{margin:4px 0 0;color:#c9d1d9;font-size:13px}\n"
"main{max-width:1160px;margin:0 auto;padding:16px 24px 40px}\n"
"section{background:#fff;border:1px solid #d0d7de;border-radius:8px;"
"padding:16px 20px;margin:16px 0}\n"
"h2{font-size:18px;margin:0 0 10px}\n"
".src{color:#57606a;font-size:12px;margin:-6px 0 10px;"
"overflow-wrap:anywhere}\n"
".verdict{font-size:20px;font-weight:600;padding:10px 14px;"
"border-radius:6px;margin:6px 0 12px}\n"
".leak{background:#ffebe9;border-left:6px solid #cf222e}\n"
".ok{background:#dafbe1;border-left:6px solid #1a7f37}\n"
".unsure{background:#fff8c5;border-left:6px solid #bf8700}\n"
"table{border-collapse:collapse;width:100%;font-size:13px}\n"
"th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;"
"vertical-align:top}\n"
"th{background:#f6f8fa;font-weight:600}\n"
"td.n,th.n{text-align:right;white-space:nowrap;"
"font-variant-numeric:tabular-nums}\n"
"code,.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;"
"font-size:12px;overflow-wrap:anywhere}\n"
".frames{margin:0;padding-left:16px;color:#57606a}\n"
".kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;"
"font-size:14px;margin:8px 0}\n"
".kv dt{color:#57606a}.kv dd{margin:0}\n"
".scroll{overflow-x:auto}\n"
"svg{display:block;max-width:100%;height:auto}\n"
"footer{color:#57606a;font-size:12px;text-align:center;margin:20px}\n";

static void
section_source(FILE *fp, const struct input *in)
{
	fputs("<p class=\"src\">from <code>", fp);
	esc(fp, in->path);
	fputs("</code></p>\n", fp);
}

/* The watch file: rss, USS and malloc'd memory of each process. */
static void
section_watch(FILE *fp, const struct input *in)
{
	const struct ana_series *s = &in->series;
	struct ana_chart_line lines[8];
	double *xs[8], *ys[8];
	char *labels[8];
	pid_t pids[8];
	size_t np = 0, nl = 0;
	struct ana_chart c = { 0 };
	struct ana_growth_summary *g = NULL;
	size_t ng;

	for (size_t i = 0; i < s->n && np < 6; i++) {
		size_t k;

		for (k = 0; k < np; k++)
			if (pids[k] == s->rows[i].pid)
				break;
		if (k == np)
			pids[np++] = s->rows[i].pid;
	}
	/* one process: three lines; several: RSS of each */
	for (size_t k = 0; k < np; k++) {
		int what[3] = { 0, 1, 2 };
		int nw = np == 1 ? 3 : 1;

		for (int wi = 0; wi < nw && nl < 8; wi++) {
			size_t m = 0;
			const char *comm = "";

			xs[nl] = xcalloc(s->n, sizeof(double));
			ys[nl] = xcalloc(s->n, sizeof(double));
			for (size_t i = 0; i < s->n; i++) {
				const struct ana_sample *r = &s->rows[i];
				double v;

				if (r->pid != pids[k] || (r->event &&
							  strcmp(r->event,
								 "new")))
					continue;
				comm = r->comm;
				v = what[wi] == 0 ? (double)r->rss :
				    what[wi] == 1 ? (double)r->uss :
				    (double)(r->heap_rss + r->arena_rss +
					     r->anon_rss);
				xs[nl][m] = (double)r->wall_ns / 1e9;
				ys[nl][m] = v / 1048576.0;
				m++;
			}
			if (asprintf(&labels[nl], "%s %d %s", comm,
				     (int)pids[k], what[wi] == 0 ? "RSS" :
				     what[wi] == 1 ? "USS" :
				     "malloc heap + arenas + anon") < 0)
				abort();
			lines[nl].label = labels[nl];
			lines[nl].x = xs[nl];
			lines[nl].y = ys[nl];
			lines[nl].n = m;
			nl++;
		}
	}
	c.xlabel = "time (UTC)";
	c.ylabel = "MiB";
	c.x_time = true;
	c.lines = lines;
	c.nlines = nl;
	c.width = PAGE_WIDTH;
	c.height = 360;
	fputs("<section id=\"memory\">\n<h2>Memory over time</h2>\n", fp);
	section_source(fp, in);
	ana_chart_svg(&c, fp);
	ng = ana_series_growth(s, &g);
	fputs("<table><tr><th>process</th><th class=\"n\">samples from"
	      "</th><th class=\"n\">RSS first</th><th class=\"n\">RSS last"
	      "</th><th class=\"n\">RSS / hour</th><th class=\"n\">heap / "
	      "hour</th></tr>\n", fp);
	for (size_t i = 0; i < ng; i++) {
		char t[64];
		time_t tt = (time_t)(g[i].first_ns / 1000000000ull);
		struct tm tm;

		gmtime_r(&tt, &tm);
		strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
		fputs("<tr><td>", fp);
		esc(fp, g[i].comm);
		fprintf(fp, " %d%s</td><td class=\"n\">%s</td><td class=\"n\">",
			(int)g[i].pid, g[i].exited ? " (exited)" : "", t);
		put_bytes(fp, (double)g[i].first_rss, 0);
		fputs("</td><td class=\"n\">", fp);
		put_bytes(fp, (double)g[i].last_rss, 0);
		fputs("</td><td class=\"n\">", fp);
		put_bytes(fp, g[i].rss_per_hour, 1);
		fputs("</td><td class=\"n\">", fp);
		put_bytes(fp, g[i].heap_per_hour, 1);
		fputs("</td></tr>\n", fp);
	}
	fputs("</table>\n</section>\n", fp);
	free(g);
	for (size_t i = 0; i < nl; i++) {
		free(xs[i]);
		free(ys[i]);
		free(labels[i]);
	}
}

static void
slope_row(FILE *fp, const char *what, json_t *e, bool bytes)
{
	double s = jnum(e, "slope"), lo = jnum(e, "lo"), hi = jnum(e, "hi");

	if (!e || isnan(s))
		return;
	fputs("<tr><td>", fp);
	esc(fp, what);
	fputs("</td><td class=\"n\">", fp);
	if (bytes) {
		put_bytes(fp, s, 1);
		fputs("</td><td class=\"n\">", fp);
		put_bytes(fp, lo, 1);
		fputs(" to ", fp);
		put_bytes(fp, hi, 1);
	} else {
		fprintf(fp, "%+.4g</td><td class=\"n\">%+.4g to %+.4g", s, lo,
			hi);
	}
	fprintf(fp, "</td><td class=\"n\">%.0f</td></tr>\n",
		jnum(e, "batches"));
}

/* The batches of a verdict run: memory after each, over calls. */
static void
batches_chart(FILE *fp, json_t *batches)
{
	size_t n = json_array_size(batches), m = 0;
	double *x = xcalloc(n ? n : 1, sizeof(double));
	double *y[2] = { xcalloc(n ? n : 1, sizeof(double)),
			 xcalloc(n ? n : 1, sizeof(double)) };
	struct ana_chart_line l[2];
	struct ana_chart c = { 0 };
	double calls = 0;

	for (size_t i = 0; i < n; i++) {
		json_t *b = json_array_get(batches, i);
		const char *kind = jstr(b, "kind");

		if (strcmp(kind, "measure"))
			continue;
		calls += isnan(jnum(b, "calls")) ? 0 : jnum(b, "calls");
		x[m] = calls;
		y[0][m] = jnum(b, "rss") / 1048576.0;
		y[1][m] = (jnum(b, "heap_rss") + jnum(b, "arena_rss") +
			   jnum(b, "anon_rss")) / 1048576.0;
		m++;
	}
	if (m >= 2) {
		l[0] = (struct ana_chart_line){ "RSS", x, y[0], m };
		l[1] = (struct ana_chart_line){ "malloc heap + arenas + anon",
						x, y[1], m };
		c.xlabel = "measured calls";
		c.ylabel = "MiB after the batch (GC.start)";
		c.lines = l;
		c.nlines = 2;
		c.width = PAGE_WIDTH;
		c.height = 300;
		ana_chart_svg(&c, fp);
	}
	free(x);
	free(y[0]);
	free(y[1]);
}

static void sites_table(FILE *fp, json_t *rows, size_t top);
static void malloc_body(FILE *fp, json_t *m, size_t top);

static void
section_verdict(FILE *fp, const struct input *in, size_t top)
{
	json_t *d = in->doc, *v = json_object_get(d, "verdict");
	json_t *t = json_object_get(d, "target");
	json_t *ret = json_object_get(d, "retained");
	json_t *ms = json_object_get(d, "malloc_sites");
	const char *kind = jstr(v, "kind");
	const char *cls = strstr(kind, "leak") ? "leak" :
			  !strcmp(kind, "no leak") ? "ok" : "unsure";

	fputs("<section id=\"verdict\">\n<h2>Verdict</h2>\n", fp);
	section_source(fp, in);
	fprintf(fp, "<div class=\"verdict %s\">", cls);
	esc(fp, kind[0] ? kind : "?");
	fputs("</div>\n<p>", fp);
	esc(fp, jstr(v, "summary"));
	fputs("</p>\n<dl class=\"kv\">", fp);
	if (t) {
		fputs("<dt>target</dt><dd>", fp);
		esc(fp, jstr(t, "command"));
		fprintf(fp, " (pid %.0f)</dd><dt>Ruby</dt><dd>",
			jnum(t, "pid"));
		esc(fp, jstr(t, "ruby"));
		fputs("</dd>", fp);
	}
	fputs("<dt>bytes per call</dt><dd>", fp);
	{
		json_t *b = json_object_get(v, "bytes_per_call");

		put_bytes(fp, jnum(b, "slope"), 1);
		fputs(" (95 % interval ", fp);
		put_bytes(fp, jnum(b, "lo"), 1);
		fputs(" to ", fp);
		put_bytes(fp, jnum(b, "hi"), 1);
		fputs(")", fp);
	}
	fprintf(fp, "</dd><dt>measured calls</dt><dd>%.0f</dd>"
		"<dt>total growth</dt><dd>", jnum(v, "measured_calls"));
	put_bytes(fp, jnum(v, "total_growth"), 1);
	fputs("</dd></dl>\n", fp);
	fputs("<table><tr><th>per call</th><th class=\"n\">slope</th>"
	      "<th class=\"n\">95 % interval</th><th class=\"n\">batches"
	      "</th></tr>\n", fp);
	slope_row(fp, "all malloc'd memory", json_object_get(v,
			"bytes_per_call"), true);
	slope_row(fp, "[heap] (main arena)", json_object_get(v, "heap"), true);
	slope_row(fp, "other malloc arenas", json_object_get(v, "arena"),
		  true);
	slope_row(fp, "other anonymous memory", json_object_get(v, "anon"),
		  true);
	slope_row(fp, "Ruby live slots", json_object_get(v,
			"live_slots_per_call"), false);
	fputs("</table>\n", fp);
	batches_chart(fp, json_object_get(d, "batches"));
	fputs("</section>\n", fp);
	if (json_is_object(ret)) {
		fputs("<section id=\"retained\">\n<h2>Retained objects by "
		      "allocation site</h2>\n", fp);
		section_source(fp, in);
		sites_table(fp, json_object_get(ret, "sites"), top);
		fputs("</section>\n", fp);
	}
	if (json_is_object(ms)) {
		fputs("<section id=\"native\">\n<h2>Native malloc sites</h2>\n",
		      fp);
		section_source(fp, in);
		malloc_body(fp, ms, top);
		fputs("</section>\n", fp);
	}
}

/* Rows of heapdiff (or attach --retained): count, bytes, site. */
static void
sites_table(FILE *fp, json_t *rows, size_t top)
{
	size_t n = json_array_size(rows);

	fputs("<table class=\"sites\"><tr><th class=\"n\">objects</th>"
	      "<th class=\"n\">bytes</th><th>site</th><th>method</th>"
	      "<th>type</th><th>class</th></tr>\n", fp);
	for (size_t i = 0; i < n && i < top; i++) {
		json_t *r = json_array_get(rows, i);
		json_t *line = json_object_get(r, "line");

		fprintf(fp, "<tr><td class=\"n\">%.0f</td><td class=\"n\">",
			jnum(r, "count"));
		put_bytes(fp, jnum(r, "bytes"), 0);
		fputs("</td><td><code>", fp);
		esc(fp, jstr(r, "file"));
		if (json_is_integer(line))
			fprintf(fp, ":%" JSON_INTEGER_FORMAT,
				json_integer_value(line));
		fputs("</code></td><td><code>", fp);
		esc(fp, jstr(r, "method"));
		fputs("</code></td><td>", fp);
		esc(fp, jstr(r, "type"));
		fputs("</td><td>", fp);
		esc(fp, jstr(r, "class"));
		fputs("</td></tr>\n", fp);
	}
	if (!n)
		fputs("<tr><td colspan=\"6\">no retained objects</td></tr>\n",
		      fp);
	fputs("</table>\n", fp);
	if (n > top)
		fprintf(fp, "<p class=\"src\">%zu more rows not shown "
			"(--top)</p>\n", n - top);
}

static void
section_heapdiff(FILE *fp, const struct input *in, size_t top)
{
	json_t *d = in->doc, *tot = json_object_get(d, "total");

	fputs("<section id=\"heapdiff\">\n<h2>Retained objects (heapdiff)"
	      "</h2>\n", fp);
	section_source(fp, in);
	fprintf(fp, "<p>%.0f objects, ", jnum(tot, "count"));
	put_bytes(fp, jnum(tot, "bytes"), 0);
	fputs(" retained; method: ", fp);
	esc(fp, jstr(d, "method"));
	fputs(", by ", fp);
	esc(fp, jstr(d, "by"));
	fputs(".</p>\n", fp);
	sites_table(fp, json_object_get(d, "rows"), top);
	fputs("</section>\n", fp);
}

/* The flame graph of malloc sites, from their frames (leaf first). */
static void
malloc_flame(FILE *fp, json_t *sites)
{
	size_t n = json_array_size(sites), nf = 0, k = 0;
	struct ana_prof_stack *st = xcalloc(n ? n : 1, sizeof(*st));
	struct ana_prof_frame *fr;
	struct ana_prof p = { 0 };

	for (size_t i = 0; i < n; i++)
		nf += json_array_size(json_object_get(json_array_get(sites, i),
						      "frames"));
	fr = xcalloc(nf ? nf : 1, sizeof(*fr));
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(sites, i);
		json_t *f = json_object_get(s, "frames");

		st[i].frames = &fr[k];
		st[i].nframes = json_array_size(f);
		st[i].bytes = (int64_t)jnum(s, "bytes");
		st[i].count = (int64_t)jnum(s, "count");
		for (size_t j = 0; j < json_array_size(f); j++, k++) {
			json_t *e = json_array_get(f, j);
			const char *nm = jstr(e, "function");

			fr[k].func = nm[0] ? nm : jstr(e, "name");
			fr[k].map = -1;
		}
	}
	p.stacks = st;
	p.nstacks = n;
	fputs("<h3>Flame graph of the outstanding bytes</h3>\n<p class=\"src\">"
	      "root at the bottom, allocator function on top; width is "
	      "bytes (hover a frame for its bytes)</p>\n<div class=\"scroll\">",
	      fp);
	ana_prof_flame_svg(&p, fp, PAGE_WIDTH);
	fputs("</div>\n", fp);
	free(fr);
	free(st);
}

static void
malloc_body(FILE *fp, json_t *m, size_t top)
{
	json_t *out = json_object_get(m, "outstanding");
	json_t *gr = json_object_get(m, "growth");
	json_t *sites = json_object_get(m, "sites");
	double expl = jnum(m, "explained");
	size_t n = json_array_size(sites);

	fputs("<dl class=\"kv\"><dt>outstanding</dt><dd>", fp);
	put_bytes(fp, jnum(out, "bytes"), 0);
	fprintf(fp, " in %.0f allocations</dd><dt>window</dt><dd>%.2f s, "
		"through <code>", jnum(out, "count"), jnum(m, "seconds"));
	esc(fp, jstr(m, "allocator"));
	fputs("</code></dd><dt>smaps growth</dt><dd>", fp);
	put_bytes(fp, jnum(gr, "total"), 1);
	if (!isnan(expl))
		fprintf(fp, " (the stacks explain %.0f %%)", expl * 100);
	fputs("</dd></dl>\n", fp);
	fputs("<table class=\"msites\"><tr><th class=\"n\">bytes</th>"
	      "<th class=\"n\">allocations</th><th>function</th>"
	      "<th>innermost frames</th></tr>\n", fp);
	for (size_t i = 0; i < n && i < top; i++) {
		json_t *s = json_array_get(sites, i);
		json_t *f = json_object_get(s, "frames");

		fputs("<tr><td class=\"n\">", fp);
		put_bytes(fp, jnum(s, "bytes"), 0);
		fprintf(fp, "</td><td class=\"n\">%.0f</td><td><code>",
			jnum(s, "count"));
		esc(fp, jstr(s, "function"));
		fputs("</code></td><td><ol class=\"frames mono\">", fp);
		for (size_t j = 1; j < json_array_size(f) && j <= 5; j++) {
			fputs("<li>", fp);
			esc(fp, jstr(json_array_get(f, j), "name"));
			fputs("</li>", fp);
		}
		fputs("</ol></td></tr>\n", fp);
	}
	if (!n)
		fputs("<tr><td colspan=\"4\">no outstanding allocations</td>"
		      "</tr>\n", fp);
	fputs("</table>\n", fp);
	if (n)
		malloc_flame(fp, sites);
}

static void
section_malloc(FILE *fp, const struct input *in, size_t top)
{
	fputs("<section id=\"native\">\n<h2>Native malloc sites</h2>\n", fp);
	section_source(fp, in);
	malloc_body(fp, in->doc, top);
	fputs("</section>\n", fp);
}

static void
write_page(FILE *fp, const struct report *r)
{
	static const enum input_kind order[] = { IN_VERDICT, IN_WATCH,
						 IN_HEAPDIFF, IN_MALLOC };
	char now[64];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
	      "<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\""
	      "default-src 'none'; style-src 'unsafe-inline'\">\n<title>", fp);
	esc(fp, r->title);
	fprintf(fp, "</title>\n<style>\n%s</style>\n</head>\n<body>\n"
		"<header><h1>", css);
	esc(fp, r->title);
	fprintf(fp, "</h1><p>leakprobe %s, %s; from ", LP_VERSION, now);
	for (size_t i = 0; i < r->n; i++) {
		if (i)
			fputs(", ", fp);
		esc(fp, r->in[i].path);
	}
	fputs("</p></header>\n<main>\n", fp);
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++)
		for (size_t i = 0; i < r->n; i++) {
			const struct input *in = &r->in[i];

			if (in->kind != order[o])
				continue;
			switch (in->kind) {
			case IN_VERDICT:
				section_verdict(fp, in, r->top);
				break;
			case IN_WATCH:
				section_watch(fp, in);
				break;
			case IN_HEAPDIFF:
				section_heapdiff(fp, in, r->top);
				break;
			case IN_MALLOC:
				section_malloc(fp, in, r->top);
				break;
			}
		}
	fputs("</main>\n<footer>written by leakprobe report; this page "
	      "loads nothing from anywhere</footer>\n</body>\n</html>\n", fp);
}

int
cmd_report(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "title", required_argument, NULL, 'T' },
		{ "top", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct report r;
	const char *output = NULL;
	bool out_std;
	FILE *fp;
	uint64_t v;
	int c, rc = EXIT_OK;

	memset(&r, 0, sizeof(r));
	r.title = "leakprobe report";
	r.top = 20;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'T':
			r.title = optarg;
			break;
		case 'N':
			if (lp_parse_u64(optarg, &v) < 0 || !v || v > 100000) {
				cli_error(CMD, "--top wants a count from 1 to "
					  "100000, not '%s'", optarg);
				return EXIT_USAGE;
			}
			r.top = (size_t)v;
			break;
		case 'h':
			fputs(report_usage, stdout);
			return cli_finish_stdout(CMD, EXIT_OK);
		default:
			cli_error(CMD, "unknown option or missing value '%s'; "
				  "see 'leakprobe report --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (!output) {
		cli_error(CMD, "give -o OUT.html (or -o - for stdout)");
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		cli_error(CMD, "give the files of a run: a watch file, the "
			  "--json of attach, heapdiff or malloc");
		return EXIT_USAGE;
	}
	if (argc - optind > MAX_INPUTS) {
		cli_error(CMD, "at most %d input files, not %d", MAX_INPUTS,
			  argc - optind);
		return EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		r.in[r.n].path = argv[i];
		rc = load_input(&r.in[r.n++]);
		if (rc != EXIT_OK)
			goto out;
	}
	out_std = !strcmp(output, "-");
	fp = out_std ? stdout : fopen(output, "we");
	if (!fp) {
		cli_error(CMD, "cannot write '%s': %s", output,
			  strerror(errno));
		rc = EXIT_IO;
		goto out;
	}
	write_page(fp, &r);
	if (out_std) {
		rc = cli_finish_stdout(CMD, EXIT_OK);
	} else {
		if (fflush(fp) != 0 || ferror(fp))
			rc = EXIT_IO;
		if (fclose(fp) != 0)
			rc = EXIT_IO;
		if (rc != EXIT_OK)
			cli_error(CMD, "writing '%s' failed: %s", output,
				  strerror(errno));
	}
out:
	for (size_t i = 0; i < r.n; i++) {
		if (r.in[i].doc)
			json_decref(r.in[i].doc);
		ana_series_release(&r.in[i].series);
	}
	return rc;
}
