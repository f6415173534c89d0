/*
 * leakprobe heapdiff: which allocation sites retained objects between Ruby
 * heap dumps (ObjectSpace.dump_all, JSON lines), and who holds them.
 *
 * The dumps are read once each, streamed (analysis/heapdump.c): OLD for
 * its highest generation, then NEW and LATER for the objects born after
 * it.  --why reads the last dump once more, to build its reference graph.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "cli/profile_out.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CMD		"heapdiff"
#define DEFAULT_TOP	20
#define MAX_THREADS	8

static const char *const role[3] = { "OLD", "NEW", "LATER" };

struct hdopts {
	size_t top;
	enum ana_hd_by by;
	bool json;
	bool no_grown;		/* --no-grown */
	const char *why;
	char *why_file;
	int64_t why_line;
	bool fail_count_set, fail_bytes_set;
	uint64_t fail_count, fail_bytes;
	unsigned threads;
	size_t why_dump;	/* the dump --why searched */
	const char *path[3];
	size_t n;
	enum cli_format fmt;	/* --format; --json is CLI_FMT_JSON */
	const char *output;	/* -o */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: leakprobe heapdiff OLD NEW [LATER] [--top N]\n"
"                 [--by site|method|class|type]\n"
"                 [--why FILE:LINE] [--json] [--fail-on-count N]\n"
"                 [--fail-on-bytes N] [--threads N] [--no-grown]\n"
"       leakprobe heapdiff --series DIR [--top N] [--json] [--threads N]\n"
"                 (a whole series of dumps: see 'heapdiff --series --help')\n"
"\n"
"Compare Ruby heap dumps (ObjectSpace.dump_all, one JSON object per line)\n"
"taken from one process, oldest first.  With NEW and LATER: the objects\n"
"born after OLD and before NEW that are still alive in LATER.  With two\n"
"dumps: the objects of NEW born after OLD.  Per allocation site\n"
"(file:line; the methods, types and classes allocated there are listed):\n"
"count and bytes (memsize), largest first.  \"Born after\" uses allocation\n"
"generations (in OLD's newest one: an address OLD does not have) and\n"
"\"still alive\" matches (site, generation, type, class) as multisets,\n"
"not addresses (reused, and moved by GC.compact).  Sites need dumps taken while\n"
"ObjectSpace.trace_object_allocations was on; without it, the growth per\n"
"type and class is shown instead.\n"
"Grown objects: the objects alive in every dump at one address (same type,\n"
"class and generation) whose memsize is larger in the last dump than in\n"
"OLD, largest growth first, with their memsize in each dump.\n"
"\n"
"options:\n"
"      --top N          rows to show, and grown objects (default %d; 0:\n"
"                       all)\n"
"      --by WHAT        site (file:line, default), method (file:line,\n"
"                       method, type and class), class or type\n"
"      --why FILE:LINE  print one shortest reference chain from a GC root\n"
"                       to a retained object of that site (FILE whole or\n"
"                       as a path suffix); reads the last dump's graph,\n"
"                       so it needs memory for all its objects\n"
"      --json           one JSON document on stdout\n"
"      --format FMT     text (default), json, pprof (gzip'd profile.proto,\n"
"                       retained_objects/retained_space per site: go tool\n"
"                       pprof) or folded (\"method;file:line bytes\" lines:\n"
"                       flamegraph.pl, speedscope); pprof and folded hold\n"
"                       every site and need --by site\n"
"  -o, --output FILE    write the --format output to FILE; with pprof or\n"
"                       folded the text report (or --json) still goes to\n"
"                       stdout\n"
"      --fail-on-count N  exit 1 when a row retains N objects or more\n"
"      --fail-on-bytes N  exit 1 when a row retains N bytes or more\n"
"      --threads N      threads per dump (default: one per CPU, at most %d)\n"
"      --no-grown       leave out the grown objects (they need 9 bytes of\n"
"                       memory per object of OLD)\n"
"  -h, --help           this help\n"
"\n"
"Malformed lines are counted, reported on stderr and skipped.\n"
"exit status: 0 done, 1 a row over --fail-on-count/--fail-on-bytes,\n"
"2 usage (bad option, no objects in a file), 6 a dump cannot be read.\n",
		DEFAULT_TOP, MAX_THREADS);
}

/* ---- text output -------------------------------------------------------- */

/* Print s with control characters as '?' (file names come from dumps). */
static void
put_clean(FILE *fp, const char *s)
{
	for (; s && *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, fp);
}

static const char *
hbytes(uint64_t b, bool sign, char *buf, size_t len)
{
	lp_human_bytes((double)b, sign, buf, len);
	return buf;
}

static void
print_row_label(FILE *fp, const struct ana_hd_row *r, enum ana_hd_method m)
{
	bool any = false;

	if (r->file) {
		put_clean(fp, r->file);
		fprintf(fp, ":%" PRId64, r->line);
		any = true;
	}
	if (r->type) {
		fputs(any ? "  " : "", fp);
		put_clean(fp, r->type);
		any = true;
	}
	if (r->cls && *r->cls) {
		fputs(any ? " " : "", fp);
		put_clean(fp, r->cls);
	}
	if (r->method && *r->method) {
		fputs("  in ", fp);
		put_clean(fp, r->method);
	}
	if (m == ANA_HD_SITES && !r->file && r->sites > 1)
		fprintf(fp, "  (%" PRIu64 " sites)", r->sites);
}

static size_t all_rows(const struct ana_hd_diff *d);

/* Rows to show: --top of them. */
static size_t
shown_rows(const struct ana_hd_diff *d, const struct hdopts *o)
{
	size_t n = all_rows(d);

	return o->top && o->top < n ? o->top : n;
}

/* Rows with something in them (rows of CLASSES may be all zero). */
static size_t
all_rows(const struct ana_hd_diff *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nrows; i++)
		if (d->rows[i].count || d->rows[i].bytes)
			n++;
	return n;
}

static void
print_sites(const struct ana_hd_diff *d, const struct hdopts *o,
	    const struct ana_hd_digest *const *dg)
{
	size_t shown = shown_rows(d, o), groups = all_rows(d);
	const struct ana_hd_stats *s1 = ana_hd_digest_stats(dg[1]);
	char b1[32];

	printf("heapdiff: %s %s, %s %s", role[0], o->path[0], role[1],
	       o->path[1]);
	if (d->ndumps == 3)
		printf(", %s %s", role[2], o->path[2]);
	printf("\nmethod: allocation generations and sites: objects born "
	       "after OLD (generation > %" PRId64 ", or %" PRId64 " at an "
	       "address OLD does not have)", d->after_gen, d->after_gen);
	if (d->ndumps == 3)
		printf(" and no later than NEW (<= %" PRId64 "), still alive "
		       "in LATER: matched on (file, line, method, generation, "
		       "type, class) as multisets\n", d->upto_gen);
	else
		printf(" that are alive in NEW\n");
	printf("%s: %" PRIu64 " objects, %s, at %zu %s%s%s\n",
	       d->ndumps == 3 ? "retained in LATER" : "new in NEW",
	       d->total_count, hbytes(d->total_bytes, false, b1, sizeof(b1)),
	       groups, o->by == ANA_HD_BY_SITE ? "line" :
	       o->by == ANA_HD_BY_METHOD ? "site" :
	       o->by == ANA_HD_BY_CLASS ? "class" : "type",
	       groups == 1 ? "" : o->by == ANA_HD_BY_CLASS ? "es" : "s",
	       d->ndumps == 3 ? " (bytes: memsize in LATER)" : "");
	if (shown) {
		printf("\n%9s %12s%s  %s\n", "count", "bytes",
		       d->by_shape ? "  by size" : "",
		       o->by == ANA_HD_BY_SITE ||
		       o->by == ANA_HD_BY_METHOD ? "site  type class  method" :
		       o->by == ANA_HD_BY_CLASS ? "class" : "type");
	}
	for (size_t i = 0, k = 0; i < d->nrows && k < shown; i++) {
		const struct ana_hd_row *r = &d->rows[i];

		if (!r->count && !r->bytes)
			continue;
		k++;
		printf("%9" PRIu64 " %12s", r->count,
		       hbytes(r->bytes, false, b1, sizeof(b1)));
		if (d->by_shape)
			printf("  %7" PRIu64, r->by_shape);
		printf("  ");
		print_row_label(stdout, r, d->method);
		putchar('\n');
	}
	if (shown < groups)
		printf("(top %zu of %zu; --top 0 for all)\n", shown, groups);
	if (d->same_gen_new)
		printf("note: %" PRIu64 " objects of NEW born in OLD's last "
		       "generation (%" PRId64 ") after OLD are counted: OLD "
		       "does not have their addresses\n", d->same_gen_new,
		       d->after_gen);
	if (d->same_gen)
		printf("note: %" PRIu64 " objects of NEW born in OLD's last "
		       "generation (%" PRId64 ") are not counted (before or "
		       "after OLD cannot be told: run GC.start right after "
		       "taking OLD)\n", d->same_gen, d->after_gen);
	if (d->lost_info && d->ndumps == 3)
		printf("note: LATER has %" PRIu64 " more objects without "
		       "allocation info than NEW: GC.compact on Ruby 3.1 drops "
		       "it for the objects it moves; %" PRIu64 " retained "
		       "objects were matched to their site by type, class and "
		       "size instead (column 'by size')\n", d->lost_info,
		       d->by_shape);
	else if (d->lost_info)
		printf("note: NEW has %" PRIu64 " more objects without "
		       "allocation info than OLD: GC.compact on Ruby 3.1 drops "
		       "it for the objects it moves; such objects cannot be "
		       "attributed to sites\n", d->lost_info);
	if (s1->traced && s1->max_gen >= 0 && s1->max_gen <= d->after_gen)
		printf("note: NEW's newest generation (%" PRId64 ") is not "
		       "above OLD's (%" PRId64 "): are the dumps oldest first "
		       "and from one process?\n", s1->max_gen, d->after_gen);
	if (ana_hd_digest_stats(dg[0])->traced == 0)
		printf("note: OLD has no allocation info: every traced object "
		       "of NEW counts as born after OLD\n");
}

static void
print_classes(const struct ana_hd_diff *d, const struct hdopts *o,
	      const struct ana_hd_digest *const *dg)
{
	size_t shown = shown_rows(d, o), groups = all_rows(d);
	char b1[32], b2[32];

	printf("heapdiff: %s %s, %s %s", role[0], o->path[0], role[1],
	       o->path[1]);
	if (d->ndumps == 3)
		printf(", %s %s", role[2], o->path[2]);
	printf("\nmethod: counts per type and class.  NEW has no allocation "
	       "info, so allocation sites are unknown: sites need the dumps "
	       "taken while tracing (require \"objspace\"; "
	       "ObjectSpace.trace_object_allocations_start, before OLD)\n");
	printf("growth: %" PRIu64 " objects, %s%s\n", d->total_count,
	       hbytes(d->total_bytes, true, b1, sizeof(b1)),
	       d->ndumps == 3 ? " (the smaller of NEW - OLD and LATER - OLD)"
			      : " (NEW - OLD)");
	for (size_t i = 0; i < d->ndumps; i++) {
		const struct ana_hd_stats *s = ana_hd_digest_stats(dg[i]);

		printf("  %-5s %10" PRIu64 " objects %12s\n", role[i],
		       s->objects, hbytes(s->memsize, false, b2, sizeof(b2)));
	}
	if (shown) {
		printf("\n%9s %12s", "growth", "bytes");
		for (size_t j = 0; j < d->ndumps; j++)
			printf(" %9s", role[j]);
		printf("  %s\n", o->by == ANA_HD_BY_TYPE ? "type" :
		       o->by == ANA_HD_BY_CLASS ? "class" : "type class");
	}
	for (size_t i = 0, k = 0; i < d->nrows && k < shown; i++) {
		const struct ana_hd_row *r = &d->rows[i];

		if (!r->count && !r->bytes)
			continue;
		k++;
		printf("%+9" PRId64 " %12s", (int64_t)r->count,
		       hbytes(r->bytes, true, b1, sizeof(b1)));
		for (size_t j = 0; j < d->ndumps; j++)
			printf(" %9" PRIu64, r->n_count[j]);
		printf("  ");
		print_row_label(stdout, r, d->method);
		putchar('\n');
	}
	if (shown < groups)
		printf("(top %zu of %zu; --top 0 for all)\n", shown, groups);
}

/* The grown objects section. */
static void
print_grown(const struct ana_hd_diff *d)
{
	char b[32];

	if (!d->grown_on)
		return;
	printf("\ngrown objects: alive in every dump at one address (same "
	       "type, class and generation), memsize larger in %s than in "
	       "OLD: %" PRIu64 " object%s, %s\n", role[d->ndumps - 1],
	       d->grown_count, d->grown_count == 1 ? "" : "s",
	       hbytes(d->grown_bytes, true, b, sizeof(b)));
	if (!d->ngrown)
		return;
	printf("\n%10s", "growth");
	for (size_t j = 0; j < d->ndumps; j++)
		printf(" %10s", role[j]);
	printf("  %-18s  %s\n", "address", "type class  site");
	for (size_t i = 0; i < d->ngrown; i++) {
		const struct ana_hd_grown *g = &d->grown[i];

		printf("%10s", hbytes(g->growth, true, b, sizeof(b)));
		for (size_t j = 0; j < d->ndumps; j++)
			printf(" %10s", hbytes(g->memsize[j], false, b,
					       sizeof(b)));
		printf("  0x%-16" PRIx64 "  ", g->address);
		put_clean(stdout, g->type);
		if (g->cls && *g->cls) {
			putchar(' ');
			put_clean(stdout, g->cls);
		}
		if (g->file) {
			printf("  ");
			put_clean(stdout, g->file);
			printf(":%" PRId64, g->line);
			if (g->method && *g->method) {
				printf(" in ");
				put_clean(stdout, g->method);
			}
		}
		putchar('\n');
	}
	if (d->ngrown < d->grown_count)
		printf("(top %zu of %" PRIu64 "; --top 0 for all)\n",
		       d->ngrown, d->grown_count);
}

static void
print_link(const struct ana_hd_link *l)
{
	if (l->root) {
		printf("  ROOT ");
		put_clean(stdout, l->root);
		putchar('\n');
		return;
	}
	printf("  -> 0x%" PRIx64 " ", l->address);
	put_clean(stdout, l->type);
	if (l->cls && *l->cls) {
		putchar(' ');
		put_clean(stdout, l->cls);
	}
	if (l->file) {
		printf("  (");
		put_clean(stdout, l->file);
		printf(":%" PRId64, l->line);
		if (l->method && *l->method) {
			printf(" in ");
			put_clean(stdout, l->method);
		}
		printf(", generation %" PRId64 ")", l->gen);
	}
	putchar('\n');
}

static void
print_why(const struct hdopts *o, const struct ana_hd_chain *c)
{
	const char *dump = o->path[o->why_dump];

	printf("\nwhy ");
	put_clean(stdout, o->why);
	if (!c->candidates) {
		printf(": no object of this site born in the window is in %s\n",
		       dump);
		return;
	}
	if (!c->n) {
		printf(": %" PRIu64 " objects of this site in %s, none "
		       "reachable from a GC root (garbage not yet swept?)\n",
		       c->candidates, dump);
		return;
	}
	printf(": %" PRIu64 " objects of this site in %s; a shortest chain "
	       "from a GC root to one of them:\n", c->candidates, dump);
	if (o->why_dump != o->n - 1)
		printf("  (in NEW: in LATER these objects lost their "
		       "allocation info)\n");
	for (size_t i = 0; i < c->n; i++)
		print_link(&c->links[i]);
}

/* ---- JSON output -------------------------------------------------------- */

/* A JSON string; bytes that are not UTF-8 (argv) become '?'. */
static json_t *
jstr(const char *s)
{
	json_t *j;
	char *t;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	t = xstrdup(s);
	for (char *p = t; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(t);
	free(t);
	return j ? j : json_null();
}

static json_t *
jint(int64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *
jgen(int64_t g)
{
	return g < 0 || g == INT64_MAX ? json_null() : jint(g);
}

/* The grown objects; null when left out (--no-grown). */
static json_t *
json_grown(const struct ana_hd_diff *d)
{
	json_t *g, *objs;

	if (!d->grown_on)
		return json_null();
	g = json_object();
	objs = json_array();
	json_object_set_new(g, "identity", json_string(
		"alive in every dump at one address, with the same type, "
		"class and generation; memsize larger in the last dump than "
		"in OLD"));
	json_object_set_new(g, "count", jint((int64_t)d->grown_count));
	json_object_set_new(g, "bytes", jint((int64_t)d->grown_bytes));
	for (size_t i = 0; i < d->ngrown; i++) {
		const struct ana_hd_grown *r = &d->grown[i];
		json_t *j = json_object(), *ms = json_array();
		char a[32];

		snprintf(a, sizeof(a), "0x%" PRIx64, r->address);
		json_object_set_new(j, "address", jstr(a));
		json_object_set_new(j, "type", jstr(r->type));
		json_object_set_new(j, "class", jstr(r->cls));
		json_object_set_new(j, "file", jstr(r->file));
		json_object_set_new(j, "line", r->file ? jint(r->line)
						       : json_null());
		json_object_set_new(j, "method", jstr(r->method));
		json_object_set_new(j, "generation", jgen(r->gen));
		for (size_t w = 0; w < d->ndumps; w++)
			json_array_append_new(ms, jint((int64_t)r->memsize[w]));
		json_object_set_new(j, "memsize", ms);
		json_object_set_new(j, "growth", jint((int64_t)r->growth));
		json_array_append_new(objs, j);
	}
	json_object_set_new(g, "objects", objs);
	return g;
}

static json_t *
json_doc(const struct ana_hd_diff *d, const struct hdopts *o,
	 const struct ana_hd_digest *const *dg, const struct ana_hd_chain *c)
{
	json_t *doc = json_object(), *dumps = json_array(), *rows =
		json_array();
	size_t shown = shown_rows(d, o);

	for (size_t i = 0; i < d->ndumps; i++) {
		const struct ana_hd_stats *s = ana_hd_digest_stats(dg[i]);
		json_t *j = json_object();

		json_object_set_new(j, "role", json_string(i == 0 ? "old" :
					i == 1 ? "new" : "later"));
		json_object_set_new(j, "path", jstr(o->path[i]));
		json_object_set_new(j, "bytes", jint((int64_t)s->bytes));
		json_object_set_new(j, "lines", jint((int64_t)s->lines));
		json_object_set_new(j, "objects", jint((int64_t)s->objects));
		json_object_set_new(j, "roots", jint((int64_t)s->roots));
		json_object_set_new(j, "traced", jint((int64_t)s->traced));
		json_object_set_new(j, "memsize", jint((int64_t)s->memsize));
		json_object_set_new(j, "max_generation", jgen(s->max_gen));
		json_object_set_new(j, "malformed_lines",
				    jint((int64_t)s->bad));
		json_object_set_new(j, "first_malformed_line", s->first_bad ?
				    jint((int64_t)s->first_bad) : json_null());
		json_object_set_new(j, "first_malformed_why",
				    s->first_bad ? jstr(s->first_bad_why)
						 : json_null());
		json_array_append_new(dumps, j);
	}
	json_object_set_new(doc, "command", json_string(CMD));
	json_object_set_new(doc, "method", json_string(
		d->method == ANA_HD_SITES ? "sites" : "classes"));
	json_object_set_new(doc, "identity", json_string(
		d->method == ANA_HD_CLASSES ?
		"counts per type and class (no allocation info)" :
		d->ndumps == 3 ?
		"generation window and multiset of (file, line, method, "
		"generation, type, class); OLD's highest generation told "
		"by address" :
		"generation above OLD's highest, or OLD's highest at an "
		"address OLD does not have"));
	json_object_set_new(doc, "by", json_string(ana_hd_by_name(d->by)));
	json_object_set_new(doc, "dumps", dumps);
	json_object_set_new(doc, "born_after_generation",
			    d->method == ANA_HD_SITES ? jint(d->after_gen)
						      : json_null());
	json_object_set_new(doc, "born_upto_generation",
			    d->method == ANA_HD_SITES ? jgen(d->upto_gen)
						      : json_null());
	json_object_set_new(doc, "total", json_pack("{s:I,s:I,s:I,s:I}",
		"count", (json_int_t)d->total_count,
		"bytes", (json_int_t)d->total_bytes,
		"groups", (json_int_t)all_rows(d),
		"by_shape", (json_int_t)d->by_shape));
	json_object_set_new(doc, "candidates", jint((int64_t)d->candidates));
	json_object_set_new(doc, "lost_info", jint((int64_t)d->lost_info));
	json_object_set_new(doc, "same_generation",
			    jint((int64_t)d->same_gen));
	json_object_set_new(doc, "same_generation_by_address",
			    jint((int64_t)d->same_gen_new));
	for (size_t i = 0, k = 0; i < d->nrows && k < shown; i++) {
		const struct ana_hd_row *r = &d->rows[i];
		json_t *j = json_object();

		if (!r->count && !r->bytes) {
			json_decref(j);
			continue;
		}
		k++;
		if (r->file) {
			json_object_set_new(j, "file", jstr(r->file));
			json_object_set_new(j, "line", jint(r->line));
			json_object_set_new(j, "method", jstr(r->method));
		}
		if (r->type)
			json_object_set_new(j, "type", jstr(r->type));
		if (r->cls)
			json_object_set_new(j, "class", jstr(r->cls));
		json_object_set_new(j, "count", jint((int64_t)r->count));
		json_object_set_new(j, "bytes", jint((int64_t)r->bytes));
		if (d->method == ANA_HD_SITES) {
			json_object_set_new(j, "by_shape",
					    jint((int64_t)r->by_shape));
			json_object_set_new(j, "sites",
					    jint((int64_t)r->sites));
		} else {
			json_t *nc = json_array(), *nb = json_array();

			for (size_t w = 0; w < d->ndumps; w++) {
				json_array_append_new(nc,
					jint((int64_t)r->n_count[w]));
				json_array_append_new(nb,
					jint((int64_t)r->n_bytes[w]));
			}
			json_object_set_new(j, "counts", nc);
			json_object_set_new(j, "bytes_per_dump", nb);
		}
		json_array_append_new(rows, j);
	}
	json_object_set_new(doc, "rows", rows);
	json_object_set_new(doc, "grown", json_grown(d));
	if (o->why && c) {
		json_t *w = json_object(), *chain = json_array();

		json_object_set_new(w, "site", jstr(o->why));
		json_object_set_new(w, "dump", jstr(o->path[o->why_dump]));
		json_object_set_new(w, "candidates",
				    jint((int64_t)c->candidates));
		for (size_t i = 0; i < c->n; i++) {
			const struct ana_hd_link *l = &c->links[i];
			json_t *j = json_object();
			char a[32];

			if (l->root) {
				json_object_set_new(j, "root", jstr(l->root));
			} else {
				snprintf(a, sizeof(a), "0x%" PRIx64,
					 l->address);
				json_object_set_new(j, "address", jstr(a));
				json_object_set_new(j, "type", jstr(l->type));
				json_object_set_new(j, "class", jstr(l->cls));
				json_object_set_new(j, "file", jstr(l->file));
				json_object_set_new(j, "line", l->file ?
					jint(l->line) : json_null());
				json_object_set_new(j, "method",
						    jstr(l->method));
				json_object_set_new(j, "generation",
						    jgen(l->gen));
			}
			json_array_append_new(chain, j);
		}
		json_object_set_new(w, "chain", chain);
		json_object_set_new(doc, "why", w);
	}
	return doc;
}

/* ---- options ------------------------------------------------------------ */

/* --format, --json and -o together. */
static int
check_format(struct hdopts *o)
{
	bool stacks = cli_format_stacks(o->fmt);

	if (o->json && stacks && !o->output) {
		cli_error(CMD, "--json and --format %s: give one of them (or "
			  "-o FILE for the profile)", o->fmt == CLI_FMT_PPROF ?
			  "pprof" : "folded");
		return EXIT_USAGE;
	}
	if (o->fmt == CLI_FMT_JSON)
		o->json = true;
	if (stacks && o->by != ANA_HD_BY_SITE) {
		cli_error(CMD, "--format %s is by allocation site: drop --by",
			  o->fmt == CLI_FMT_PPROF ? "pprof" : "folded");
		return EXIT_USAGE;
	}
	if (o->output && !stacks && !freopen(o->output, "we", stdout)) {
		cli_error(CMD, "cannot write '%s': %s", o->output,
			  strerror(errno));
		return EXIT_IO;
	}
	return EXIT_OK;
}

static int
parse_opts(int argc, char **argv, struct hdopts *o)
{
	enum { O_TOP = 256, O_BY, O_WHY, O_JSON, O_FCOUNT, O_FBYTES,
	       O_THREADS, O_FORMAT, O_NO_GROWN };
	static const struct option opts[] = {
		{ "top", required_argument, NULL, O_TOP },
		{ "by", required_argument, NULL, O_BY },
		{ "why", required_argument, NULL, O_WHY },
		{ "json", no_argument, NULL, O_JSON },
		{ "fail-on-count", required_argument, NULL, O_FCOUNT },
		{ "fail-on-bytes", required_argument, NULL, O_FBYTES },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "no-grown", no_argument, NULL, O_NO_GROWN },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c, rc;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case O_TOP:
			if (lp_parse_u64(optarg, &v) < 0 || v > SIZE_MAX) {
				cli_error(CMD, "bad --top '%s': give a number "
					  "of rows (0: all)", optarg);
				return EXIT_USAGE;
			}
			o->top = (size_t)v;
			break;
		case O_BY:
			if (ana_hd_by_parse(optarg, &o->by) < 0) {
				cli_error(CMD, "bad --by '%s': give site, "
					  "method, class or type", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_WHY:
			free(o->why_file);
			o->why_file = NULL;
			if (ana_hd_site_parse(optarg, &o->why_file,
					      &o->why_line) < 0) {
				cli_error(CMD, "bad --why '%s': give a site "
					  "as FILE:LINE, e.g. app.rb:14",
					  optarg);
				return EXIT_USAGE;
			}
			o->why = optarg;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_NO_GROWN:
			o->no_grown = true;
			break;
		case O_FCOUNT:
		case O_FBYTES:
			if (lp_parse_u64(optarg, &v) < 0 || v == 0) {
				cli_error(CMD, "bad %s '%s': give a number "
					  "> 0", c == O_FCOUNT ?
					  "--fail-on-count" : "--fail-on-bytes",
					  optarg);
				return EXIT_USAGE;
			}
			if (c == O_FCOUNT) {
				o->fail_count = v;
				o->fail_count_set = true;
			} else {
				o->fail_bytes = v;
				o->fail_bytes_set = true;
			}
			break;
		case O_THREADS:
			if (lp_parse_u64(optarg, &v) < 0 || v < 1 ||
			    v > MAX_THREADS) {
				cli_error(CMD, "bad --threads '%s': give 1 to "
					  "%d", optarg, MAX_THREADS);
				return EXIT_USAGE;
			}
			o->threads = (unsigned)v;
			break;
		case O_FORMAT:
			rc = cli_format_parse(CMD, optarg, &o->fmt);
			if (rc != EXIT_OK)
				return rc;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'h':
			usage(stdout);
			return cli_finish_stdout(CMD, EXIT_OK) ? EXIT_IO : -1;
		default:
			if (optopt >= O_TOP || optopt == 'o')
				cli_error(CMD, "option '%s' needs a value; see "
					  "'leakprobe heapdiff --help'",
					  argv[optind - 1]);
			else
				cli_error(CMD, "unknown option '%s'; see "
					  "'leakprobe heapdiff --help'",
					  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	o->n = (size_t)(argc - optind);
	if (o->n < 2 || o->n > 3) {
		cli_error(CMD, "give two or three heap dumps (OLD NEW "
			  "[LATER]), not %zu; see 'leakprobe heapdiff --help'",
			  o->n);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < o->n; i++)
		o->path[i] = argv[optind + (int)i];
	return check_format(o);
}

/* Fail early, before reading gigabytes, when a dump cannot be opened. */
static int
check_inputs(const struct hdopts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		struct stat st;
		int fd = open(o->path[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			cli_error(CMD, "open '%s': %s", o->path[i],
				  strerror(errno));
			return EXIT_IO;
		}
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			close(fd);
			cli_error(CMD, "read '%s': is a directory; give a heap "
				  "dump file", o->path[i]);
			return EXIT_IO;
		}
		if (o->why && i == o->n - 1 && fstat(fd, &st) == 0 &&
		    !S_ISREG(st.st_mode)) {
			close(fd);
			cli_error(CMD, "--why reads '%s' twice: give a regular "
				  "file, not a pipe", o->path[i]);
			return EXIT_USAGE;
		}
		close(fd);
	}
	return EXIT_OK;
}

static void
warn_bad(const char *path, const struct ana_hd_stats *s)
{
	if (!s->bad)
		return;
	cli_error(CMD, "warning: '%s': %" PRIu64 " malformed line%s skipped "
		  "(first: line %" PRIu64 ": %s)", path, s->bad,
		  s->bad == 1 ? "" : "s", s->first_bad, s->first_bad_why);
}

static int
threshold(const struct ana_hd_diff *d, const struct hdopts *o)
{
	for (size_t i = 0; i < d->nrows; i++) {
		const struct ana_hd_row *r = &d->rows[i];
		const char *what = NULL;
		uint64_t got = 0, lim = 0;

		if (o->fail_count_set && r->count >= o->fail_count) {
			what = "--fail-on-count";
			got = r->count;
			lim = o->fail_count;
		} else if (o->fail_bytes_set && r->bytes >= o->fail_bytes) {
			what = "--fail-on-bytes";
			got = r->bytes;
			lim = o->fail_bytes;
		}
		if (!what)
			continue;
		fflush(stdout);
		fprintf(stderr, "leakprobe: %s: ", CMD);
		print_row_label(stderr, r, d->method);
		fprintf(stderr, ": %" PRIu64 " >= %s %" PRIu64 "\n", got,
			what, lim);
		return EXIT_LEAK;
	}
	return EXIT_OK;
}

int
cmd_heapdiff(int argc, char **argv)
{
	struct hdopts o;
	struct ana_hd_digest *dg[3] = { NULL, NULL, NULL };
	struct ana_hd_diff diff;
	struct ana_hd_chain chain;
	struct lp_err err = { 0 };
	uint64_t t0 = lp_mono_ns();
	int rc;

	/* --series DIR: a whole series of dumps (cmd_heapseries.c) */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--series") ||
		    !strncmp(argv[i], "--series=", 9))
			return cmd_heapseries(argc, argv);
	memset(&o, 0, sizeof(o));
	memset(&diff, 0, sizeof(diff));
	memset(&chain, 0, sizeof(chain));
	o.top = DEFAULT_TOP;
	rc = parse_opts(argc, argv, &o);
	if (rc)
		goto out;
	rc = check_inputs(&o);
	if (rc)
		goto out;
	for (size_t i = 0; i < o.n; i++) {
		const struct ana_hd_stats *s;

		dg[i] = ana_hd_digest_new(i == 0 ? ANA_HD_NO_SITES :
			ana_hd_digest_stats(dg[0])->max_gen);
		if (!dg[i] || (i && ana_hd_digest_use_old(dg[i], dg[0]) < 0) ||
		    (!o.no_grown && (i ? ana_hd_digest_follow(dg[i], dg[0],
				i == 2 ? dg[1] : NULL, i == o.n - 1, o.top) :
				ana_hd_digest_keep_sizes(dg[0])) < 0)) {
			cli_error(CMD, "out of memory");
			rc = EXIT_INJECT;
			goto out;
		}
		if (ana_hd_digest_file(dg[i], o.path[i], o.threads, &err) < 0) {
			rc = cli_report(CMD, &err);
			goto out;
		}
		s = ana_hd_digest_stats(dg[i]);
		lp_debug("heapdiff: %s: %" PRIu64 " bytes, %" PRIu64
			 " objects (%" PRIu64 " traced), max generation %"
			 PRId64 ", %.3f s", o.path[i], s->bytes, s->objects,
			 s->traced, s->max_gen,
			 (double)(lp_mono_ns() - t0) / 1e9);
		warn_bad(o.path[i], s);
		if (!s->objects) {
			cli_error(CMD, "no objects in '%s': give a heap dump "
				  "written by ObjectSpace.dump_all (one JSON "
				  "object per line)", o.path[i]);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (ana_hd_diff_compute(dg, o.n, o.by, &diff, &err) < 0) {
		rc = cli_report(CMD, &err);
		goto out;
	}
	if (o.why) {
		if (diff.method != ANA_HD_SITES) {
			cli_error(CMD, "--why needs allocation sites, and '%s' "
				  "has no allocation info: take the dumps "
				  "while ObjectSpace.trace_object_allocations "
				  "is on", o.path[1]);
			rc = EXIT_USAGE;
			goto out;
		}
		o.why_dump = o.n - 1;
		if (ana_hd_why_file(o.path[o.why_dump], o.why_file,
				    o.why_line, diff.after_gen, diff.upto_gen,
				    o.threads, &chain, &err) < 0) {
			rc = cli_report(CMD, &err);
			goto out;
		}
		/* LATER's objects may have lost their allocation info
		 * (GC.compact on Ruby 3.1): then show who held them in NEW */
		if (!chain.candidates && o.n == 3 && diff.by_shape) {
			o.why_dump = 1;
			if (ana_hd_why_file(o.path[1], o.why_file, o.why_line,
					    diff.after_gen, diff.upto_gen,
					    o.threads, &chain, &err) < 0) {
				rc = cli_report(CMD, &err);
				goto out;
			}
		}
	}
	lp_debug("heapdiff: done in %.3f s", (double)(lp_mono_ns() - t0) / 1e9);
	if (cli_format_stacks(o.fmt)) {
		struct cli_prof cp;

		if (diff.method != ANA_HD_SITES) {
			cli_error(CMD, "--format %s needs allocation sites, "
				  "and '%s' has no allocation info: take the "
				  "dumps while ObjectSpace."
				  "trace_object_allocations is on",
				  o.fmt == CLI_FMT_PPROF ? "pprof" : "folded",
				  o.path[1]);
			rc = EXIT_USAGE;
			goto out;
		}
		cli_prof_hd_sites(&cp, diff.rows, diff.nrows);
		rc = cli_prof_write(CMD, &cp.p, o.fmt, o.output);
		cli_prof_release(&cp);
		if (rc != EXIT_OK || !o.output)
			goto out_threshold;
	}
	if (o.json) {
		json_t *doc = json_doc(&diff, &o,
				       (const struct ana_hd_digest *const *)dg,
				       o.why ? &chain : NULL);

		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else {
		if (diff.method == ANA_HD_SITES)
			print_sites(&diff, &o,
				    (const struct ana_hd_digest *const *)dg);
		else
			print_classes(&diff, &o,
				      (const struct ana_hd_digest *const *)dg);
		print_grown(&diff);
		if (o.why)
			print_why(&o, &chain);
	}
	rc = cli_finish_stdout(CMD, EXIT_OK);
out_threshold:
	if (!rc)
		rc = threshold(&diff, &o);
out:
	if (rc < 0)
		rc = EXIT_OK;	/* --help */
	ana_hd_chain_release(&chain);
	ana_hd_diff_release(&diff);
	for (size_t i = 0; i < 3; i++)
		ana_hd_digest_free(dg[i]);
	free(o.why_file);
	return rc;
}
