/*
 * leakprobe attach PID (--eval CODE | --file PATH) [options]
 *
 * Runs the snippet in batches inside the live target (through the
 * safe-point helper thread), samples smaps and GC.stat after every batch,
 * and fits growth per call into a verdict.
 */
#include "cli/cmds.h"

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
#include "probes/probes.h"

#define MAX_SNIPPET (64u << 20)

static const char attach_usage[] =
"usage: leakprobe attach PID (--eval CODE | --file PATH) [options]\n"
"\n"
"Run CODE inside the live Ruby process PID at a safe point, in batches\n"
"each followed by a full GC.start, sample its memory between batches and\n"
"say whether CODE leaks: native leak, Ruby-object leak, no leak, or\n"
"inconclusive, with bytes per call and a 95 % interval.\n"
"\n"
"  -e, --eval CODE          Ruby code to run (one call)\n"
"  -f, --file PATH          read the code from PATH ('-' = stdin)\n"
"  -n, --times N            measured calls in all (default 1000)\n"
"  -b, --batch M            calls per batch (default: N/10, at least 1)\n"
"  -w, --warmup K           warm-up batches, not measured (default 2;\n"
"                           0 when there is only one measured batch)\n"
"      --no-gc              no GC.start after each batch\n"
"      --no-control         no interleaved no-op control batches (by\n"
"                           default the target's own drift is measured\n"
"                           by control batches and subtracted; off when\n"
"                           there is only one measured batch)\n"
"  -t, --timeout SEC        limit for the job to start and for each batch\n"
"                           (default 30)\n"
"      --fail-on-growth B   exit 1 when the lower 95 % bound of growth\n"
"                           per call is >= B bytes; 7 when inconclusive\n"
"      --max-growth B       stop when the target grew by B bytes in all\n"
"                           (default 64MiB), to protect it\n"
"      --json               one JSON document on stdout\n"
"  -q, --quiet              print only the verdict\n"
"  -v, --verbose            print debug details on stderr\n"
"  -h, --help               this help\n"
"\n"
"Sizes take k, M, G suffixes (binary).  Exit status: 0 done, 1 leak over\n"
"--fail-on-growth, 2 usage, 3 target error, 4 injection error or timeout,\n"
"5 the snippet raised, 6 local i/o, 7 inconclusive under --fail-on-growth.\n";

struct attach_opts {
	pid_t pid;
	char *code;
	size_t code_len;
	uint64_t times, batch, warmup;
	bool gc, control, json, quiet;
	double timeout;
	bool fail_set;
	uint64_t fail_on_growth, max_growth;
};

static int
read_snippet_file(const char *path, struct attach_opts *o)
{
	FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 0, n;

	if (!fp) {
		cli_error("attach", "cannot read snippet file '%s': %s", path,
			  strerror(errno));
		return EXIT_USAGE;
	}
	o->code_len = 0;
	for (;;) {
		o->code = xgrow(o->code, &cap, o->code_len + 65536, 1);
		n = fread(o->code + o->code_len, 1, cap - o->code_len - 1, fp);
		o->code_len += n;
		if (o->code_len > MAX_SNIPPET) {
			cli_error("attach", "snippet file '%s' is larger than "
				  "%u MiB", path, MAX_SNIPPET >> 20);
			if (fp != stdin)
				fclose(fp);
			return EXIT_USAGE;
		}
		if (n == 0)
			break;
	}
	o->code[o->code_len] = '\0';
	if (ferror(fp)) {
		cli_error("attach", "reading '%s': %s", path, strerror(errno));
		if (fp != stdin)
			fclose(fp);
		return EXIT_USAGE;
	}
	if (fp != stdin)
		fclose(fp);
	return EXIT_OK;
}

static int
parse_opts(int argc, char **argv, struct attach_opts *o)
{
	enum { O_NOGC = 256, O_NOCONTROL, O_FAIL, O_MAX, O_JSON };
	static const struct option lo[] = {
		{ "eval", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		{ "times", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "no-gc", no_argument, NULL, O_NOGC },
		{ "no-control", no_argument, NULL, O_NOCONTROL },
		{ "timeout", required_argument, NULL, 't' },
		{ "fail-on-growth", required_argument, NULL, O_FAIL },
		{ "max-growth", required_argument, NULL, O_MAX },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *eval = NULL;
	bool have_batch = false, have_warmup = false, have_control = false;
	int c, rc;

	o->times = 1000;
	o->warmup = 2;
	o->gc = o->control = true;
	o->timeout = 30;
	o->max_growth = 64ull << 20;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "e:f:n:b:w:t:qvh", lo, NULL)) !=
	       -1) {
		switch (c) {
		case 'e':
			eval = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'n':
			if (lp_parse_u64(optarg, &o->times) < 0 || !o->times) {
				cli_error("attach", "--times wants a positive "
					  "count, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'b':
			if (lp_parse_u64(optarg, &o->batch) < 0 || !o->batch) {
				cli_error("attach", "--batch wants a positive "
					  "count, not '%s'", optarg);
				return EXIT_USAGE;
			}
			have_batch = true;
			break;
		case 'w':
			if (lp_parse_u64(optarg, &o->warmup) < 0 ||
			    o->warmup > 1000) {
				cli_error("attach", "--warmup wants a count of "
					  "batches (0-1000), not '%s'", optarg);
				return EXIT_USAGE;
			}
			have_warmup = true;
			break;
		case O_NOGC:
			o->gc = false;
			break;
		case O_NOCONTROL:
			o->control = false;
			have_control = true;
			break;
		case 't':
			if (lp_parse_seconds(optarg, &o->timeout) < 0) {
				cli_error("attach", "--timeout wants seconds "
					  "> 0, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_FAIL:
			if (lp_parse_u64(optarg, &o->fail_on_growth) < 0) {
				cli_error("attach", "--fail-on-growth wants "
					  "bytes per call, not '%s'", optarg);
				return EXIT_USAGE;
			}
			o->fail_set = true;
			break;
		case O_MAX:
			if (lp_parse_u64(optarg, &o->max_growth) < 0 ||
			    !o->max_growth) {
				cli_error("attach", "--max-growth wants bytes,"
					  " not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_JSON:
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			lp_verbose++;
			break;
		case 'h':
			fputs(attach_usage, stdout);
			return cli_finish_stdout("attach", -1);
		default:
			cli_error("attach", "unknown option '%s'; see "
				  "'leakprobe attach --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("attach", optind >= argc ? "missing PID; see "
			  "'leakprobe attach --help'" : "expected one PID, got "
			  "extra arguments");
		return EXIT_USAGE;
	}
	if (lp_parse_pid(argv[optind], &o->pid) < 0) {
		cli_error("attach", "'%s' is not a process id", argv[optind]);
		return EXIT_USAGE;
	}
	if (!!eval == !!file) {
		cli_error("attach", "give exactly one of --eval CODE or --file "
			  "PATH");
		return EXIT_USAGE;
	}
	if (eval) {
		o->code_len = strlen(eval);
		o->code = xstrndup(eval, o->code_len);
	} else if ((rc = read_snippet_file(file, o)) != EXIT_OK) {
		return rc;
	}
	{
		const char *nul = memchr(o->code, '\0', o->code_len);

		if (nul) {
			cli_error("attach", "the snippet has a NUL byte at "
				  "offset %zu; Ruby would stop reading there: "
				  "remove it", (size_t)(nul - o->code));
			return EXIT_USAGE;
		}
	}
	if (!have_batch)
		o->batch = o->times >= 10 ? (o->times + 9) / 10 : 1;
	if (o->batch > o->times)
		o->batch = o->times;
	/* With a single measured batch no slope can be fitted: a run such
	 * as --times 1 is a smoke test, so skip what only serves the fit
	 * unless asked for explicitly. */
	if ((o->times + o->batch - 1) / o->batch < 2) {
		if (!have_warmup)
			o->warmup = 0;
		if (!have_control)
			o->control = false;
	}
	return EXIT_OK;
}

static const char *
kind_of(const struct ana_batch *b)
{
	return b->warmup ? "warmup" : b->control ? "control" : "measure";
}

static void
print_batch(const struct ana_batch *b, uint64_t done, uint64_t total)
{
	char h[32], a[32], n[32], r[32];

	lp_human_bytes((double)b->heap_rss, 0, h, sizeof(h));
	lp_human_bytes((double)b->arena_rss, 0, a, sizeof(a));
	lp_human_bytes((double)b->anon_rss, 0, n, sizeof(n));
	lp_human_bytes((double)b->rss, 0, r, sizeof(r));
	printf("%-8s %7" PRIu64 "/%-7" PRIu64 " [heap] %-10s arenas %-10s "
	       "anon %-10s rss %-10s live %" PRId64 "  %.3fs\n", kind_of(b),
	       done, total, h, a, n, r, b->live_slots, b->seconds);
	fflush(stdout);
}

struct print_ctx {
	const struct attach_opts *o;
};

static void
on_batch(const struct probe_run *run, size_t i, void *arg)
{
	const struct print_ctx *pc = arg;
	const struct ana_batch *b = &run->b[i];

	if (b->warmup || b->control)
		print_batch(b, b->calls, b->calls);
	else
		print_batch(b, run->done[0], pc->o->times);
}

static json_t *
batch_json(const struct ana_batch *b)
{
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I,s:f}",
			 "kind", kind_of(b), "calls", (json_int_t)b->calls,
			 "heap_rss", (json_int_t)b->heap_rss,
			 "heap_size", (json_int_t)b->heap_size,
			 "arena_rss", (json_int_t)b->arena_rss,
			 "anon_rss", (json_int_t)b->anon_rss,
			 "rss", (json_int_t)b->rss,
			 "live_slots", (json_int_t)b->live_slots,
			 "total_allocated_objects",
			 (json_int_t)b->total_allocated,
			 "total_freed_objects", (json_int_t)b->total_freed,
			 "malloc_increase_bytes",
			 (json_int_t)b->malloc_increase,
			 "gc_count", (json_int_t)b->gc_count,
			 "major_gc_count", (json_int_t)b->major_gc_count,
			 "arena_size", (json_int_t)b->arena_size,
			 "seconds", b->seconds);
}

static json_t *
estimate_json(const struct ana_estimate *e)
{
	return json_pack("{s:f,s:f,s:f,s:I}", "slope", e->slope, "lo", e->lo,
			 "hi", e->hi, "batches", (json_int_t)e->n);
}

static void
print_raised(const struct probe_result *r, const char *what)
{
	cli_error("attach", "%s raised %s: %s", what, r->err_class,
		  r->err_message);
	if (r->err_backtrace[0] && lp_verbose >= 0) {
		char *bt = xstrdup(r->err_backtrace), *save = NULL, *l;

		for (l = strtok_r(bt, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "    from %s\n", l);
		free(bt);
	}
}

int
cmd_attach(int argc, char **argv)
{
	struct attach_opts o;
	struct probe_snippet snip;
	struct probe_opts po;
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_run run;
	struct ana_batch *b = NULL;
	struct ana_verdict v;
	struct lp_err err;
	char *stack = NULL;
	size_t nb = 0;
	bool stopped = false;
	json_t *doc = NULL, *jb = NULL;
	int rc, idx0 = 0;
	char comm[32] = "", api[32] = "", libruby[256] = "";
	double stop_ms = 0, held_ms = 0, unmap_ms = 0, start_ms = 0;

	memset(&o, 0, sizeof(o));
	lp_err_clear(&err);
	memset(&run, 0, sizeof(run));
	rc = parse_opts(argc, argv, &o);
	if (rc != EXIT_OK) {
		free(o.code);
		return rc < 0 ? EXIT_OK : rc;
	}
	cli_install_signals();

	snip.code = o.code;
	snip.len = o.code_len;
	po.snippets = &snip;
	po.nsnippets = 1;
	po.timeout = o.timeout;
	s = probe_session_start(o.pid, &po, &hello, &stack, &err);
	if (!s) {
		rc = cli_report("attach", &err);
		if (stack) {
			fprintf(stderr, "main thread of %d:\n%s", (int)o.pid,
				stack);
			free(stack);
		}
		goto out;
	}
	snprintf(comm, sizeof(comm), "%s", probe_session_info(s)->comm);
	snprintf(api, sizeof(api), "%s", probe_session_ruby(s)->api);
	snprintf(libruby, sizeof(libruby), "%s",
		 probe_session_ruby(s)->libruby);
	stop_ms = probe_session_stop_ns(s) / 1e6;
	held_ms = probe_session_held_ns(s) / 1e6;
	unmap_ms = probe_session_unmap_stop_ns(s) / 1e6;
	start_ms = probe_session_start_ns(s) / 1e6;
	if (hello.compile_errors) {
		print_raised(&hello.err, "the snippet");
		rc = EXIT_SNIPPET;
		goto out;
	}
	if (!o.quiet && !o.json) {
		printf("attached to %d (%s): %s\n", (int)o.pid, comm,
		       hello.ruby);
		printf("job via %s; main thread stopped %.3f ms (+%.3f ms "
		       "to unmap); helper started after %.1f ms\n", api,
		       stop_ms, unmap_ms, start_ms);
		fflush(stdout);
	}
	{
		struct probe_arm arm = { &idx0, 1 };
		struct probe_measure_opts mo = {
			.times = o.times, .batch = o.batch,
			.warmup = o.warmup, .gc = o.gc,
			.control = o.control, .max_growth = o.max_growth,
		};
		struct print_ctx pc = { &o };

		rc = probe_measure(s, &arm, 1, &mo, &hello, &run,
				   o.quiet || o.json ? NULL : on_batch, &pc,
				   &err);
	}
	probe_session_end(s);
	s = NULL;
	if (rc < 0) {
		rc = cli_report("attach", &err);
		goto out;
	}
	if (run.raised) {
		print_raised(&run.err, "the snippet");
		rc = EXIT_SNIPPET;
		goto out;
	}
	if (run.stopped_early) {
		char g[32];

		lp_human_bytes((double)run.growth, 1, g, sizeof(g));
		cli_error("attach", "stopped early: the target grew %s, over "
			  "--max-growth", g);
		stopped = true;
	}
	b = probe_run_arm(&run, 0, &nb);
	ana_verdict_compute(b, nb, &v);
	rc = EXIT_OK;
	if (o.fail_set) {
		if (v.kind == ANA_INCONCLUSIVE)
			rc = EXIT_INCONCLUSIVE;
		else if (v.kind != ANA_NO_LEAK &&
			 v.mem.lo >= (double)o.fail_on_growth)
			rc = EXIT_LEAK;
	}
	if (o.json) {
		jb = json_array();
		for (size_t i = 0; i < nb; i++)
			json_array_append_new(jb, batch_json(&b[i]));
		doc = json_pack("{s:{s:i,s:s,s:s,s:s,s:s},"
				"s:{s:I,s:I,s:I,s:b,s:b},"
				"s:o,s:{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:f,s:I,"
				"s:f,s:I,s:b},s:{s:f,s:f,s:f,s:f}}",
				"target", "pid", (int)o.pid,
				"command", comm, "ruby", hello.ruby,
				"api", api, "libruby", libruby,
				"options", "times", (json_int_t)o.times,
				"batch", (json_int_t)o.batch,
				"warmup", (json_int_t)o.warmup, "gc", o.gc,
				"control", o.control,
				"batches", jb,
				"verdict", "kind", ana_verdict_name(v.kind),
				"summary", v.summary,
				"bytes_per_call", estimate_json(&v.mem),
				"heap", estimate_json(&v.heap),
				"arena", estimate_json(&v.arena),
				"anon", estimate_json(&v.anon),
				"live_slots_per_call", estimate_json(&v.slots),
				"total_growth", v.total_growth,
				"measured_calls", (json_int_t)v.measured_calls,
				"slot_margin", v.slot_margin,
				"more_calls_needed",
				(json_int_t)v.more_calls_needed,
				"stopped_early", stopped,
				"timing", "stop_ms", stop_ms,
				"held_ms", held_ms, "unmap_stop_ms", unmap_ms,
				"start_ms", start_ms);
		if (doc) {
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
	} else {
		printf("%s\n", v.summary);
	}
	rc = cli_finish_stdout("attach", rc);
out:
	if (doc)
		json_decref(doc);
	probe_session_end(s);
	probe_run_release(&run);
	free(b);
	free(o.code);
	return rc;
}
