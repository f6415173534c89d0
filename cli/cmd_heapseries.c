/*
 * leakprobe heapdiff --series DIR: growth by allocation site across every
 * heap dump in a directory (as heapdump --every writes them), oldest
 * first: which sites grow in every interval, by how much per interval,
 * and their first and last counts.
 */
#include "cli/cmds.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CMD		"heapdiff"
#define DEFAULT_TOP	20
#define MAX_THREADS	8

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: leakprobe heapdiff --series DIR [--top N] [--json] [--threads N]\n"
"\n"
"Growth across a whole series of heap dumps of one process: every\n"
"*.json and *.json.gz file in DIR (as 'heapdump PID --every' writes\n"
"them; gzip'd ones are read with zlib), oldest first by modification\n"
"time.  Per allocation site (file:line) when every dump has allocation\n"
"info (ObjectSpace.trace_object_allocations: heapdump\n"
"--trace-allocations), else per type and class: the live objects in each\n"
"dump, in how many intervals the count rose, the mean growth per\n"
"interval, first and last count.  Sites that grow in every interval come\n"
"first, then the others by growth.\n"
"\n"
"options:\n"
"      --series DIR     the directory of dumps (at least two)\n"
"      --top N          rows to show (default %d; 0: all)\n"
"      --json           one JSON document on stdout (every group, with\n"
"                       its count in each dump)\n"
"      --threads N      threads per dump (default: one per CPU, at most %d)\n"
"  -h, --help           this help\n"
"\n"
"exit status: 0 done, 2 usage (fewer than two dumps, dumps of several\n"
"processes), 6 a dump cannot be read.\n", DEFAULT_TOP, MAX_THREADS);
}

struct dump_file {
	char *path;
	struct timespec mtime;
	long pid;		/* from heap-PID-..., -1 when not so named */
};

static int
cmp_dump(const void *pa, const void *pb)
{
	const struct dump_file *a = pa, *b = pb;

	if (a->mtime.tv_sec != b->mtime.tv_sec)
		return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
	if (a->mtime.tv_nsec != b->mtime.tv_nsec)
		return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
	return strcmp(a->path, b->path);
}

static bool
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && !strcmp(s + a - b, suf);
}

/* The dumps in dir, oldest first.  Prints the error; exit status. */
static int
list_dumps(const char *dir, struct dump_file **out, size_t *nout)
{
	struct dump_file *f = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	long pid = -1;

	d = opendir(dir);
	if (!d) {
		cli_error(CMD, "cannot read directory '%s': %s", dir,
			  strerror(errno));
		return errno == ENOENT || errno == ENOTDIR ? EXIT_USAGE
							  : EXIT_IO;
	}
	while ((e = readdir(d))) {
		struct stat st;
		char *path;
		long p = -1;

		if (e->d_name[0] == '.' ||
		    !(has_suffix(e->d_name, ".json") ||
		      has_suffix(e->d_name, ".json.gz")))
			continue;
		path = xmalloc(strlen(dir) + strlen(e->d_name) + 2);
		sprintf(path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (sscanf(e->d_name, "heap-%ld-", &p) != 1)
			p = -1;
		if (p >= 0 && pid >= 0 && p != pid) {
			cli_error(CMD, "'%s' holds dumps of processes %ld and "
				  "%ld: give a directory with the dumps of "
				  "one process", dir, pid, p);
			free(path);
			for (size_t i = 0; i < n; i++)
				free(f[i].path);
			free(f);
			closedir(d);
			return EXIT_USAGE;
		}
		if (p >= 0)
			pid = p;
		f = xgrow(f, &cap, n + 1, sizeof(*f));
		f[n].path = path;
		f[n].mtime = st.st_mtim;
		f[n].pid = p;
		n++;
	}
	closedir(d);
	qsort(f, n, sizeof(*f), cmp_dump);
	*out = f;
	*nout = n;
	return EXIT_OK;
}

/* Print s with control characters as '?' (names come from dumps). */
static void
put_clean(const char *s)
{
	for (; s && *s; s++)
		putchar((unsigned char)*s < 0x20 ? '?' : *s);
}

static void
print_group(const struct ana_hs *s, const struct ana_hs_group *g)
{
	size_t n = s->ndumps;
	char b0[32], b1[32];

	lp_human_bytes((double)g->bytes[0], 0, b0, sizeof(b0));
	lp_human_bytes((double)g->bytes[n - 1], 0, b1, sizeof(b1));
	printf("  %+10.1f/interval  %zu/%zu grew  %8" PRIu64 " -> %8" PRIu64
	       "  (%s -> %s)  ", g->per_interval, g->grew, n - 1,
	       g->count[0], g->count[n - 1], b0, b1);
	if (s->method == ANA_HD_SITES) {
		put_clean(g->file ? g->file : "(no file)");
		printf(":%" PRId64 "  ", g->line);
	}
	put_clean(g->type ? g->type : "?");
	if (g->cls) {
		putchar(' ');
		put_clean(g->cls);
	}
	putchar('\n');
}

static void
print_text(const struct ana_hs *s, const struct dump_file *f, size_t top)
{
	size_t every = 0, shown = 0, n = s->ndumps;

	for (size_t i = 0; i < s->ngroups; i++)
		every += s->groups[i].every;
	printf("heap series: %zu dumps, %s .. %s; %zu intervals; by %s\n", n,
	       f[0].path, f[n - 1].path, n - 1,
	       s->method == ANA_HD_SITES ? "allocation site"
					 : "type and class (no allocation "
					   "info in every dump)");
	printf("objects per dump:");
	for (size_t i = 0; i < n; i++)
		printf(" %" PRIu64, s->objects[i]);
	printf("\n\ngrowing in every interval: %zu\n", every);
	for (size_t i = 0; i < s->ngroups && s->groups[i].every; i++) {
		if (top && shown >= top)
			break;
		print_group(s, &s->groups[i]);
		shown++;
	}
	if (every > shown)
		printf("  ... and %zu more\n", every - shown);
	printf("\nothers, by growth per interval:\n");
	shown = 0;
	for (size_t i = every; i < s->ngroups; i++) {
		if (top && shown >= top)
			break;
		print_group(s, &s->groups[i]);
		shown++;
	}
	if (s->ngroups - every > shown)
		printf("  ... and %zu more\n", s->ngroups - every - shown);
}

static void
print_json(const struct ana_hs *s, const struct dump_file *f)
{
	json_t *doc, *dumps, *groups;

	dumps = json_array();
	for (size_t i = 0; i < s->ndumps; i++)
		json_array_append_new(dumps, json_pack("{s:s,s:I,s:I}",
			"file", f[i].path,
			"objects", (json_int_t)s->objects[i],
			"traced", (json_int_t)s->traced[i]));
	groups = json_array();
	for (size_t i = 0; i < s->ngroups; i++) {
		const struct ana_hs_group *g = &s->groups[i];
		json_t *c = json_array(), *b = json_array(), *o;

		for (size_t k = 0; k < s->ndumps; k++) {
			json_array_append_new(c, json_integer(
				(json_int_t)g->count[k]));
			json_array_append_new(b, json_integer(
				(json_int_t)g->bytes[k]));
		}
		o = json_pack("{s:o,s:o,s:I,s:I,s:f,s:I,s:b}", "counts", c,
			      "bytes", b,
			      "first", (json_int_t)g->count[0],
			      "last", (json_int_t)g->count[s->ndumps - 1],
			      "per_interval", g->per_interval,
			      "grew_intervals", (json_int_t)g->grew,
			      "every_interval", g->every);
		if (s->method == ANA_HD_SITES) {
			json_object_set_new(o, "file", g->file ?
					    json_string(g->file) : json_null());
			json_object_set_new(o, "line",
					    json_integer(g->line));
		}
		json_object_set_new(o, "type", g->type ? json_string(g->type)
						       : json_null());
		json_object_set_new(o, "class", g->cls ? json_string(g->cls)
						       : json_null());
		json_array_append_new(groups, o);
	}
	doc = json_pack("{s:s,s:I,s:I,s:o,s:o}", "by",
			s->method == ANA_HD_SITES ? "site" : "class",
			"dumps_count", (json_int_t)s->ndumps,
			"intervals", (json_int_t)(s->ndumps - 1),
			"dumps", dumps, "groups", groups);
	json_dumpf(doc, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(doc);
}

int
cmd_heapseries(int argc, char **argv)
{
	enum { O_SERIES = 256, O_TOP, O_JSON, O_THREADS };
	static const struct option lo[] = {
		{ "series", required_argument, NULL, O_SERIES },
		{ "top", required_argument, NULL, O_TOP },
		{ "json", no_argument, NULL, O_JSON },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct dump_file *f = NULL;
	struct lp_err err = { 0 };
	struct ana_hs s;
	const char *dir = NULL;
	uint64_t top = DEFAULT_TOP, threads = 0;
	bool json = false, inited = false;
	size_t n = 0;
	int c, rc = EXIT_OK;

	/* "--series --help": help, not a directory named --help */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return cli_finish_stdout(CMD, EXIT_OK);
		}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SERIES:
			dir = optarg;
			break;
		case O_TOP:
			if (lp_parse_u64(optarg, &top) < 0) {
				cli_error(CMD, "bad --top '%s': give a whole "
					  "number (0: all)", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_JSON:
			json = true;
			break;
		case O_THREADS:
			if (lp_parse_u64(optarg, &threads) < 0 || !threads ||
			    threads > MAX_THREADS) {
				cli_error(CMD, "bad --threads '%s': give 1 to "
					  "%d", optarg, MAX_THREADS);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return cli_finish_stdout(CMD, EXIT_OK);
		default:
			cli_error(CMD, "unknown option or missing value '%s' "
				  "with --series; see 'leakprobe heapdiff "
				  "--help'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (!dir || !*dir) {
		cli_error(CMD, "--series needs a directory of dumps");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		cli_error(CMD, "--series DIR reads every dump in DIR: give no "
			  "other files ('%s')", argv[optind]);
		return EXIT_USAGE;
	}
	rc = list_dumps(dir, &f, &n);
	if (rc)
		return rc;
	if (n < 2) {
		cli_error(CMD, "'%s' holds %zu dump%s (*.json, *.json.gz): a "
			  "series needs at least two (heapdump PID --every "
			  "10m --dir '%s')", dir, n, n == 1 ? "" : "s", dir);
		rc = EXIT_USAGE;
		goto out;
	}
	if (ana_hs_init(&s, &err) < 0) {
		rc = cli_report(CMD, &err);
		goto out;
	}
	inited = true;
	for (size_t i = 0; i < n; i++) {
		if (ana_hs_add_file(&s, f[i].path, (unsigned)threads,
				    &err) < 0) {
			rc = cli_report(CMD, &err);
			if (err.code == LP_EIO)
				rc = EXIT_IO;
			goto out;
		}
		if (!s.objects[i]) {
			cli_error(CMD, "'%s' holds no objects: not a heap dump "
				  "(ObjectSpace.dump_all)", f[i].path);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	ana_hs_finish(&s, &err);
	if (json)
		print_json(&s, f);
	else
		print_text(&s, f, (size_t)top);
	rc = cli_finish_stdout(CMD, EXIT_OK);
out:
	if (inited)
		ana_hs_release(&s);
	for (size_t i = 0; i < n; i++)
		free(f[i].path);
	free(f);
	return rc;
}
