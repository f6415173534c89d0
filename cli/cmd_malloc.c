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
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/probes.h"

#define MAX_SNIPPET (64u << 20)

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
	uint64_t times, batch, warmup;
	double timeout;
	uint64_t top, fail_bytes;
	bool fail_set, json, quiet;
	struct probe_malloc_opts mo;
};

static int
read_snippet_file(const char *path, struct malloc_cli *o)
{
	FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 0, n;
	int rc = EXIT_OK;

	if (!fp) {
		cli_error("malloc", "cannot read snippet file '%s': %s", path,
			  strerror(errno));
		return EXIT_USAGE;
	}
	o->code_len = 0;
	for (;;) {
		o->code = xgrow(o->code, &cap, o->code_len + 65536, 1);
		n = fread(o->code + o->code_len, 1, cap - o->code_len - 1, fp);
		o->code_len += n;
		if (o->code_len > MAX_SNIPPET) {
			cli_error("malloc", "snippet file '%s' is larger than "
				  "%u MiB", path, MAX_SNIPPET >> 20);
			rc = EXIT_USAGE;
			break;
		}
		if (n == 0)
			break;
	}
	o->code[o->code_len] = '\0';
	if (rc == EXIT_OK && ferror(fp)) {
		cli_error("malloc", "reading '%s': %s", path, strerror(errno));
		rc = EXIT_USAGE;
	}
	if (fp != stdin)
		fclose(fp);
	return rc;
}

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
	enum { O_STACK = 256, O_SAMPLE, O_TOP, O_FRAMES, O_MAXOUT, O_FAIL,
	       O_COUNT, O_JSON };
	static const struct option lo[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "eval", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		{ "times", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "stack-bytes", required_argument, NULL, O_STACK },
		{ "sample", required_argument, NULL, O_SAMPLE },
		{ "top", required_argument, NULL, O_TOP },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "max-outstanding", required_argument, NULL, O_MAXOUT },
		{ "fail-on-bytes", required_argument, NULL, O_FAIL },
		{ "count-only", no_argument, NULL, O_COUNT },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *eval = NULL;
	bool have_batch = false, have_duration = false;
	uint64_t v;
	int c, rc;

	o->times = 1000;
	o->warmup = 2;
	o->timeout = 30;
	o->top = 10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:e:f:n:b:w:t:qvh", lo, NULL)) !=
	       -1) {
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
		case 'n':
			if (parse_count("--times", optarg, 1, UINT64_MAX / 2,
					&o->times) < 0)
				return EXIT_USAGE;
			break;
		case 'b':
			if (parse_count("--batch", optarg, 1, UINT64_MAX / 2,
					&o->batch) < 0)
				return EXIT_USAGE;
			have_batch = true;
			break;
		case 'w':
			if (parse_count("--warmup", optarg, 0, 1000,
					&o->warmup) < 0)
				return EXIT_USAGE;
			break;
		case 't':
			if (lp_parse_seconds(optarg, &o->timeout) < 0) {
				cli_error("malloc", "--timeout wants seconds "
					  "> 0, not '%s'", optarg);
				return EXIT_USAGE;
			}
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
			fputs(malloc_usage, stdout);
			return cli_finish_stdout("malloc", -1);
		default:
			cli_error("malloc", "unknown option '%s'; see "
				  "'leakprobe malloc --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("malloc", optind >= argc ? "missing PID; see "
			  "'leakprobe malloc --help'" : "expected one PID, got "
			  "extra arguments");
		return EXIT_USAGE;
	}
	if (lp_parse_pid(argv[optind], &o->pid) < 0) {
		cli_error("malloc", "'%s' is not a process id", argv[optind]);
		return EXIT_USAGE;
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
	if (eval) {
		o->code_len = strlen(eval);
		o->code = xstrndup(eval, o->code_len);
	} else if (file && (rc = read_snippet_file(file, o)) != EXIT_OK) {
		return rc;
	}
	if (o->code && memchr(o->code, '\0', o->code_len)) {
		cli_error("malloc", "the snippet has a NUL byte at offset %zu; "
			  "Ruby would stop reading there: remove it",
			  (size_t)((char *)memchr(o->code, '\0', o->code_len) -
				   o->code));
		return EXIT_USAGE;
	}
	if (!have_batch)
		o->batch = o->times >= 10 ? (o->times + 9) / 10 : 1;
	if (o->batch > o->times)
		o->batch = o->times;
	return EXIT_OK;
}

static void
print_raised(const struct probe_result *r)
{
	cli_error("malloc", "the snippet raised %s: %s", r->err_class,
		  r->err_message);
	if (r->err_backtrace[0] && lp_verbose >= 0) {
		char *bt = xstrdup(r->err_backtrace), *save = NULL, *l;

		for (l = strtok_r(bt, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "    from %s\n", l);
		free(bt);
	}
}

static bool
target_gone(pid_t pid)
{
	struct probe_proc p;

	return probe_proc_stat(pid, &p, NULL) < 0 || p.state == 'Z' ||
	       p.state == 'X';
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
		if (target_gone(o->pid))
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

	for (uint64_t i = 0; i < o->warmup + (o->times + o->batch - 1) /
					      o->batch; i++) {
		bool warm = i < o->warmup;
		uint64_t n = o->batch;

		if (!warm && *done + n > o->times)
			n = o->times - *done;
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
			print_raised(&res);
			return 1;
		}
		if (!warm)
			*done += res.calls;
		if (!o->quiet && !o->json && isatty(STDERR_FILENO))
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
	m = probe_malloc_start(o.pid, &o.mo, &err);
	if (!m) {
		rc = cli_report("malloc", &err);
		goto out;
	}
	if (o.code) {
		snip.code = o.code;
		snip.len = o.code_len;
		po.snippets = &snip;
		po.nsnippets = 1;
		po.timeout = o.timeout;
		s = probe_session_start(o.pid, &po, &hello, &stack, &err);
		if (!s) {
			rc = cli_report("malloc", &err);
			if (stack)
				fprintf(stderr, "main thread of %d:\n%s",
					(int)o.pid, stack);
			goto out;
		}
		if (hello.compile_errors) {
			print_raised(&hello.err);
			rc = EXIT_SNIPPET;
			goto out;
		}
		if (!o.quiet && !o.json)
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
		if (!o.quiet && !o.json && isatty(STDERR_FILENO))
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
	    probe_malloc_report(m, o.top, &r, &err) < 0) {
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
	if (o.json) {
		doc = cli_malloc_sites_json(r, done);
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
		if (o.code && !o.quiet)
			printf("window: %" PRIu64 " traced calls in batches of "
			       "%" PRIu64 ", each followed by GC.start\n", done,
			       o.batch);
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
