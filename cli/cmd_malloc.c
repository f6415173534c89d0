/*
 * leakprobe malloc PID (--duration SEC | --eval CODE [--times N]) [options]
 *
 * Which native code path holds the bytes that grew: traces the target's
 * allocator with eBPF uprobes over a window (a duration, or exactly the
 * measured batches of a snippet run at a safe point), then reports the
 * outstanding allocations grouped by stack, reconciled with the smaps
 * growth of the same window.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/exit.h"
#include "cli/malloc_report.h"
#include "cli/measure.h"
#include "cli/profile_out.h"
#include "common/log.h"
#include "common/util.h"
#include "probes/probes.h"


static const char malloc_usage[] =
"usage: leakprobe malloc PID --duration SEC [options]\n"
"       leakprobe malloc PID (--eval CODE | --file PATH) [--times N] "
"[options]\n"
"\n"
"Trace the allocator of process PID with eBPF uprobes (malloc, calloc,\n"
"realloc, memalign, valloc, pvalloc, posix_memalign, free) and report the\n"
"native stacks that hold the bytes still outstanding at the end of the\n"
"window, with the smaps growth of the same window.  The window is SEC\n"
"seconds, or exactly the measured batches of CODE run inside the live Ruby\n"
"process at a safe point (after warm-up, each batch followed by GC.start).\n"
"Needs root (CAP_BPF, CAP_PERFMON, and CAP_SYS_PTRACE for --eval).\n"
"\n"
"  -d, --duration SEC       trace for SEC seconds (SIGINT ends it early)\n"
"  -e, --eval CODE          Ruby code to run (one call)\n"
"  -f, --file PATH          read the code from PATH ('-' = stdin)\n"
"  -n, --times N            measured calls (default 1000)\n"
"  -b, --batch M            calls per batch (default: N/10, at least 1)\n"
"  -w, --warmup K           warm-up batches, not traced (default 2)\n"
"  -t, --timeout SEC        limit for the job to start and for each batch\n"
"                           (default 30)\n"
"      --stack-bytes N      stack copied per allocation (default 4096;\n"
"                           256-16384, a multiple of 8)\n"
"      --sample N           record 1 in N allocations (default 1: all);\n"
"                           counts and bytes are scaled by N\n"
"      --top N              sites to print (default 10)\n"
"      --frames K           group stacks by their innermost K frames\n"
"                           (default 8, at most 64)\n"
"      --max-outstanding N  pointers tracked at once (default 2097152)\n"
"      --fail-on-bytes B    exit 1 when a site holds >= B bytes\n"
"      --count-only         attach every probe but only count calls\n"
"      --json               one JSON document on stdout\n"
"      --format FMT         text (default), json, pprof (gzip'd\n"
"                           profile.proto: go tool pprof) or folded (one\n"
"                           line per stack: flamegraph.pl, speedscope);\n"
"                           pprof and folded hold every site\n"
"  -o, --output FILE        write the --format output to FILE; with pprof\n"
"                           or folded the text report still goes to\n"
"                           stdout (not with -q)\n"
"  -q, --quiet              print only the report\n"
"  -v, --verbose            print debug details on stderr\n"
"  -h, --help               this help\n"
"\n"
"Sizes take k, M, G suffixes (binary).  Exit status: 0 done, 1 a site over\n"
"--fail-on-bytes, 2 usage, 3 target error, 4 tracing or injection error\n"
"(also: BPF unusable), 5 the snippet raised, 6 local i/o.\n";

struct malloc_cli {
	pid_t pid;
	double duration;
	char *code;
	size_t code_len;
	struct cli_mopts m;	/* the shared measuring options */
	uint64_t top, fail_bytes;
	bool fail_set, top_set;
	enum cli_format fmt;
	const char *output;
	struct probe_malloc_opts mo;
};

static int
parse_count(const char *opt, const char *arg, uint64_t lo, uint64_t hi,
	    uint64_t *out)
{
	if (lp_parse_u64(arg, out) < 0 || *out < lo || *out > hi) {
		cli_error("malloc", "%s wants a number from %" PRIu64 " to %"
			  PRIu64 ", not '%s'", opt, lo, hi, arg);
		return -1;
	}
	return 0;
}

static int
parse_opts(int argc, char **argv, struct malloc_cli *o)
{
	enum { O_STACK = CLI_O_FIRST_OWN, O_SAMPLE, O_TOP, O_FRAMES, O_MAXOUT,
	       O_FAIL, O_COUNT, O_FORMAT };
	static const struct option lo[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "eval", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		CLI_OPT_TIMES, CLI_OPT_BATCH, CLI_OPT_WARMUP, CLI_OPT_TIMEOUT,
		{ "stack-bytes", required_argument, NULL, O_STACK },
		{ "sample", required_argument, NULL, O_SAMPLE },
		{ "top", required_argument, NULL, O_TOP },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "max-outstanding", required_argument, NULL, O_MAXOUT },
		{ "fail-on-bytes", required_argument, NULL, O_FAIL },
		{ "count-only", no_argument, NULL, O_COUNT },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		CLI_OPT_JSON, CLI_OPT_QUIET, CLI_OPT_VERBOSE, CLI_OPT_HELP,
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *eval = NULL;
	bool have_duration = false, have_format = false;
	uint64_t v;
	int c, rc;

	cli_mopts_init(&o->m, 1000, 2);
	o->top = 10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:e:f:n:b:w:t:o:qvh", lo, NULL)) !=
	       -1) {
		if ((rc = cli_mopt("malloc", c, optarg, &o->m)) >= 0) {
			if (rc != EXIT_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'd':
			if (lp_parse_seconds(optarg, &o->duration) < 0) {
				cli_error("malloc", "--duration wants seconds "
					  "> 0, not '%s'", optarg);
				return EXIT_USAGE;
			}
			have_duration = true;
			break;
		case 'e':
			eval = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case O_STACK:
			if (parse_count("--stack-bytes", optarg, 256, 16384,
					&v) < 0)
				return EXIT_USAGE;
			if (v % 8) {
				cli_error("malloc", "--stack-bytes wants a "
					  "multiple of 8, not '%s'", optarg);
				return EXIT_USAGE;
			}
			o->mo.stack_bytes = (uint32_t)v;
			break;
		case O_SAMPLE:
			if (parse_count("--sample", optarg, 1, 1000000, &v) < 0)
				return EXIT_USAGE;
			o->mo.sample = (uint32_t)v;
			break;
		case O_TOP:
			if (parse_count("--top", optarg, 1, 100000,
					&o->top) < 0)
				return EXIT_USAGE;
			o->top_set = true;
			break;
		case O_FORMAT:
			rc = cli_format_parse("malloc", optarg, &o->fmt);
			if (rc != EXIT_OK)
				return rc;
			have_format = true;
			break;
		case 'o':
			o->output = optarg;
			break;
		case O_FRAMES:
			if (parse_count("--frames", optarg, 1, 64, &v) < 0)
				return EXIT_USAGE;
			o->mo.group_frames = (uint32_t)v;
			break;
		case O_MAXOUT:
			if (parse_count("--max-outstanding", optarg, 1024,
					1u << 26, &v) < 0)
				return EXIT_USAGE;
			o->mo.max_outstanding = (uint32_t)v;
			break;
		case O_FAIL:
			if (lp_parse_u64(optarg, &o->fail_bytes) < 0) {
				cli_error("malloc", "--fail-on-bytes wants "
					  "bytes, not '%s'", optarg);
				return EXIT_USAGE;
			}
			o->fail_set = true;
			break;
		case O_COUNT:
			o->mo.count_only = true;
			break;
		case 'h':
			fputs(malloc_usage, stdout);
			return cli_finish_stdout("malloc", -1);
		default:
			cli_error("malloc", "unknown option '%s'; see "
				  "'leakprobe malloc --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	rc = cli_one_pid("malloc", argc, argv, optind, &o->pid);
	if (rc != EXIT_OK)
		return rc;
	/* --json with a profile in a file: the report on stdout is JSON */
	if (o->m.json && have_format && o->fmt != CLI_FMT_JSON &&
	    !(cli_format_stacks(o->fmt) && o->output)) {
		cli_error("malloc", "--json and --format %s: give one of them "
			  "(or -o FILE for the profile)",
			  o->fmt == CLI_FMT_TEXT ? "text" :
			  o->fmt == CLI_FMT_PPROF ? "pprof" : "folded");
		return EXIT_USAGE;
	}
	if (o->m.json && !cli_format_stacks(o->fmt))
		o->fmt = CLI_FMT_JSON;
	if (o->fmt == CLI_FMT_JSON)
		o->m.json = true;
	if (o->mo.count_only && cli_format_stacks(o->fmt)) {
		cli_error("malloc", "--count-only records no stacks: drop it "
			  "for --format pprof or folded");
		return EXIT_USAGE;
	}
	/* a profile on stdout is all that stdout carries */
	if (cli_format_stacks(o->fmt) && !o->output)
		o->m.quiet = true;
	if (o->output && !cli_format_stacks(o->fmt) &&
	    !freopen(o->output, "we", stdout)) {
		cli_error("malloc", "cannot write '%s': %s", o->output,
			  strerror(errno));
		return EXIT_IO;
	}
	if (eval && file) {
		cli_error("malloc", "give one of --eval CODE or --file PATH");
		return EXIT_USAGE;
	}
	if (have_duration == !!(eval || file)) {
		cli_error("malloc", "give either --duration SEC or --eval CODE "
			  "(or --file PATH)");
		return EXIT_USAGE;
	}
	rc = cli_take_code("malloc", eval, file, &o->code, &o->code_len);
	if (rc != EXIT_OK)
		return rc;
	if (o->code && (rc = cli_check_code("malloc", "the snippet", o->code,
					    o->code_len)) != EXIT_OK)
		return rc;
	cli_mopts_finish(&o->m);
	return EXIT_OK;
}

/*
 * Wait out --duration, polling for a stop signal and for the target's
 * exit.  Returns 0, 1 when a signal ended it early, or -LP_ENOPROC.
 */
static int
wait_duration(const struct malloc_cli *o, struct lp_err *err)
{
	uint64_t end = lp_mono_ns() + (uint64_t)(o->duration * 1e9);

	for (;;) {
		uint64_t now = lp_mono_ns(), left;
		struct timespec ts;

		if (lp_stop_signal)
			return 1;
		if (!probe_proc_alive(o->pid))
			return lp_err_set(err, LP_ENOPROC, "process %d exited "
					  "while it was traced", (int)o->pid);
		if (now >= end)
			return 0;
		left = end - now < 100000000ull ? end - now : 100000000ull;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
	}
}

/*
 * Run warm-up batches untraced, then the measured batches inside the
 * window.  Returns 0, 1 when the snippet raised (printed), or < 0.
 */
static int
run_batches(struct probe_session *s, struct probe_malloc *m,
	    const struct malloc_cli *o, uint64_t *done, struct lp_err *err)
{
	struct probe_result res;
	bool begun = false;
	int idx0 = 0;

	for (uint64_t i = 0; i < o->m.warmup + (o->m.times + o->m.batch - 1) /
					      o->m.batch; i++) {
		bool warm = i < o->m.warmup;
		uint64_t n = o->m.batch;

		if (!warm && *done + n > o->m.times)
			n = o->m.times - *done;
		if (!warm && !begun) {
			if (probe_malloc_window_begin(m, err) < 0)
				return -1;
			begun = true;
		}
		if (lp_stop_signal)
			return lp_err_set(err, LP_EINTR, "interrupted by "
					  "signal %d", (int)lp_stop_signal);
		if (probe_session_run(s, &idx0, 1, n, true, 0, &res, err) < 0)
			return -1;
		if (res.raised) {
			cli_print_raised("malloc", &res, "the snippet");
			return 1;
		}
		if (!warm)
			*done += res.calls;
		if (!o->m.quiet && !o->m.json && isatty(STDERR_FILENO))
			fprintf(stderr, "%s batch: %" PRIu64 " calls, %.3f s\n",
				warm ? "warm-up" : "traced", res.calls,
				res.seconds);
	}
	return 0;
}

int
cmd_malloc(int argc, char **argv)
{
	struct malloc_cli o;
	struct probe_snippet snip;
	struct probe_opts po;
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_malloc *m = NULL;
	struct probe_malloc_report *r = NULL;
	struct lp_err err;
	char *stack = NULL;
	uint64_t done = 0;
	json_t *doc = NULL;
	bool was_alive;
	bool early = false;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&hello, 0, sizeof(hello));
	lp_err_clear(&err);
	rc = parse_opts(argc, argv, &o);
	if (rc != EXIT_OK) {
		free(o.code);
		return rc < 0 ? EXIT_OK : rc;
	}
	cli_install_signals();

	/* BPF first: when it cannot be used the target is never touched */
	was_alive = probe_proc_alive(o.pid);
	m = probe_malloc_start(o.pid, &o.mo, &err);
	if (!m) {
		/* whatever step failed, a target that exited while the probes
		 * went in is said so (3), not as that step's error */
		if (was_alive && !probe_proc_alive(o.pid))
			lp_err_set(&err, LP_EEXITED, "process %d exited while "
				   "it was traced", (int)o.pid);
		rc = cli_report("malloc", &err);
		goto out;
	}
	if (o.code) {
		snip.code = o.code;
		snip.len = o.code_len;
		memset(&po, 0, sizeof(po));
		po.snippets = &snip;
		po.nsnippets = 1;
		po.timeout = o.m.timeout;
		s = probe_session_start(o.pid, &po, &hello, &stack, &err);
		if (!s) {
			rc = cli_report("malloc", &err);
			if (stack)
				fprintf(stderr, "main thread of %d:\n%s",
					(int)o.pid, stack);
			goto out;
		}
		if (hello.compile_errors) {
			cli_print_raised("malloc", &hello.err, "the snippet");
			rc = EXIT_SNIPPET;
			goto out;
		}
		if (!o.m.quiet && !o.m.json)
			printf("attached to %d: %s\n", (int)o.pid, hello.ruby);
		rc = run_batches(s, m, &o, &done, &err);
		if (rc != 0) {
			rc = rc > 0 ? EXIT_SNIPPET : cli_report("malloc", &err);
			goto out;
		}
	} else {
		if (probe_malloc_window_begin(m, &err) < 0) {
			rc = cli_report("malloc", &err);
			goto out;
		}
		if (!o.m.quiet && !o.m.json && isatty(STDERR_FILENO))
			fprintf(stderr, "leakprobe: malloc: tracing %d for "
				"%.1f s (Ctrl-C ends early)\n", (int)o.pid,
				o.duration);
		rc = wait_duration(&o, &err);
		if (rc < 0) {
			rc = cli_report("malloc", &err);
			goto out;
		}
		early = rc == 1;
	}
	if (probe_malloc_window_end(m, &err) < 0 ||
	    probe_malloc_report(m, cli_format_stacks(o.fmt) && !o.top_set ?
				SIZE_MAX : o.top, &r, &err) < 0) {
		rc = cli_report("malloc", &err);
		goto out;
	}
	probe_session_end(s);
	s = NULL;
	rc = EXIT_OK;
	if (o.fail_set)
		for (size_t i = 0; i < r->nsites; i++)
			if (r->sites[i].bytes >= o.fail_bytes)
				rc = EXIT_LEAK;
	if (cli_format_stacks(o.fmt)) {
		struct cli_prof cp;
		int wrc;

		cli_prof_malloc(&cp, r);
		wrc = cli_prof_write("malloc", &cp.p, o.fmt, o.output);
		cli_prof_release(&cp);
		if (wrc != EXIT_OK) {
			rc = wrc;
			goto out;
		}
	}
	if (cli_format_stacks(o.fmt) && !o.m.json) {
		/* the text report, --top sites, when the profile went to
		 * a file */
		struct probe_malloc_report shown = *r;

		if (shown.nsites > o.top)
			shown.nsites = o.top;
		if (!o.m.quiet) {
			if (early)
				printf("interrupted by signal %d: the window "
				       "ended early\n", (int)lp_stop_signal);
			if (o.code)
				printf("window: %" PRIu64 " traced calls in "
				       "batches of %" PRIu64 ", each followed "
				       "by GC.start\n", done, o.m.batch);
			cli_print_malloc_sites(stdout, &shown, done);
			printf("profile (%s, every site) written to %s\n",
			       o.fmt == CLI_FMT_PPROF ? "pprof" : "folded",
			       o.output);
		}
	} else if (o.m.json) {
		struct probe_malloc_report shown = *r;

		if (shown.nsites > o.top)
			shown.nsites = o.top;
		doc = cli_malloc_sites_json(&shown, done);
		if (doc) {
			json_object_set_new(doc, "pid", json_integer(o.pid));
			if (o.code) {
				json_object_set_new(doc, "ruby",
						    json_string(hello.ruby));
				json_object_set_new(doc, "measured_calls",
						    json_integer((json_int_t)
								 done));
			}
			json_object_set_new(doc, "interrupted",
					    json_boolean(early));
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
	} else {
		if (early)
			printf("interrupted by signal %d: the window ended "
			       "early\n", (int)lp_stop_signal);
		if (o.code && !o.m.quiet)
			printf("window: %" PRIu64 " traced calls in batches of "
			       "%" PRIu64 ", each followed by GC.start\n", done,
			       o.m.batch);
		cli_print_malloc_sites(stdout, r, done);
	}
	rc = cli_finish_stdout("malloc", rc);
out:
	if (doc)
		json_decref(doc);
	probe_session_end(s);
	probe_malloc_stop(m);
	probe_malloc_report_free(r);
	free(stack);
	free(o.code);
	return rc;
}
