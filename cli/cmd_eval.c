/*
 * leakprobe eval PID (CODE | - | --file PATH) [--json] [--max-bytes N]
 *
 * Runs CODE once inside the live target, at a safe point, through the
 * same safe-point job and helper thread as attach, and prints its value
 * the way a debugger's call would: no GC.start, no warm-up, no batches.
 * The value's text streams from the helper straight to stdout.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "cli/measure.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/probes.h"

#define EVAL_MAX_BYTES_DEFAULT (1ull << 20)

static const char eval_usage[] =
"usage: leakprobe eval PID CODE [options]\n"
"       leakprobe eval PID - [options]          (CODE from standard input)\n"
"       leakprobe eval PID --file PATH [options]\n"
"\n"
"Run CODE once inside the live Ruby process PID at a safe point (a helper\n"
"thread, in a fresh scope: the interrupted frame's locals are never\n"
"touched) and print the value's inspect.  No GC.start, no warm-up.  An\n"
"exception prints its class, message and backtrace (exit 5).  Put '--'\n"
"before a CODE that starts with '-'.\n"
"\n"
"  -e, --eval CODE          the code (instead of the CODE operand)\n"
"  -f, --file PATH          read the code from PATH ('-' = stdin); it may\n"
"                           hold any bytes, NUL included\n"
"      --json               one JSON document: the value as JSON when it\n"
"                           converts (JSON.generate when the target has\n"
"                           loaded JSON, else plain data: nil, booleans,\n"
"                           numbers, strings, symbols, arrays, hashes),\n"
"                           else its inspect as a JSON string\n"
"      --max-bytes N        print at most N bytes of the value's text and\n"
"                           say that it was cut (default 1MiB)\n"
"  -t, --timeout SEC        limit for the job to start and for the code\n"
"                           (default 30)\n"
"  -q, --quiet              no backtrace on an exception\n"
"  -v, --verbose            print debug details on stderr\n"
"  -h, --help               this help\n"
"\n"
"Exit status: 0 done, 2 usage, 3 target error, 4 injection error or\n"
"timeout, 5 the code raised, 6 local i/o (e.g. stdout closed).\n";

struct eval_opts {
	pid_t pid;
	char *code;
	size_t code_len;
	bool json, quiet;
	uint64_t max_bytes;
	double timeout;
};

static int
parse_opts(int argc, char **argv, struct eval_opts *o)
{
	enum { O_JSON = 1000, O_MAXB };
	static const struct option lo[] = {
		{ "eval", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, O_JSON },
		{ "max-bytes", required_argument, NULL, O_MAXB },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *eval = NULL;
	int c, nsrc;

	o->max_bytes = EVAL_MAX_BYTES_DEFAULT;
	o->timeout = 30;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "e:f:t:qvh", lo, NULL)) != -1) {
		switch (c) {
		case 'e':
			eval = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_MAXB:
			if (lp_parse_u64(optarg, &o->max_bytes) < 0 ||
			    !o->max_bytes) {
				cli_error("eval", "--max-bytes wants a size in "
					  "bytes from 1 (k, M, G suffixes), "
					  "not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (lp_parse_seconds(optarg, &o->timeout) < 0) {
				cli_error("eval", "--timeout wants seconds > 0, "
					  "not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			lp_verbose++;
			break;
		case 'h':
			fputs(eval_usage, stdout);
			return cli_finish_stdout("eval", -1);
		default:
			cli_error("eval", "unknown option '%s'; see "
				  "'leakprobe eval --help' (put '--' before "
				  "code that starts with '-')",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error("eval", "missing PID; see 'leakprobe eval --help'");
		return EXIT_USAGE;
	}
	if (lp_parse_pid(argv[optind], &o->pid) < 0) {
		cli_error("eval", "'%s' is not a process id", argv[optind]);
		return EXIT_USAGE;
	}
	if (optind + 2 < argc) {
		cli_error("eval", "expected PID and one CODE, got extra "
			  "arguments from '%s' (quote the code as one "
			  "argument)", argv[optind + 2]);
		return EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		const char *a = argv[optind + 1];

		if (eval || file) {
			cli_error("eval", "give the code once: as CODE, '-', "
				  "--eval or --file");
			return EXIT_USAGE;
		}
		if (!strcmp(a, "-"))
			file = "-";
		else
			eval = a;
	}
	nsrc = !!eval + !!file;
	if (nsrc != 1) {
		cli_error("eval", nsrc ? "give the code once: as CODE, '-', "
			  "--eval or --file" : "missing CODE; give it as an "
			  "argument, '-' for standard input, or --file PATH");
		return EXIT_USAGE;
	}
	/* Any bytes: Ruby reads a NUL inside a string literal as a byte
	 * (outside one, it ends the program, as in a file) */
	return cli_take_code("eval", eval, file, &o->code, &o->code_len);
}

struct out_ctx {
	int err;		/* errno of a failed write */
};

static int
to_stdout(const char *buf, size_t len, void *arg)
{
	struct out_ctx *c = arg;

	if (!len)
		return 0;
	if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
		c->err = errno;
		return -1;
	}
	return 0;
}

/* The part of the JSON document before the value: {"pid":..,"result": */
static int
print_json_head(pid_t pid, const struct probe_eval *ev)
{
	json_t *h = json_pack("{s:i,s:s,s:s,s:I,s:b,s:f}", "pid", (int)pid,
			      "class", ev->cls, "format", ev->json ? "json" :
			      "inspect", "bytes", (json_int_t)ev->bytes,
			      "truncated", ev->cut, "seconds", ev->seconds);
	char *t = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) :
		  NULL;
	size_t n = t ? strlen(t) : 0;

	json_decref(h);
	if (!t || n < 2)
		return -1;
	t[n - 1] = '\0';	/* drop the closing brace */
	printf("%s,\"result\":", t);
	free(t);
	return 0;
}

static void
print_json_error(pid_t pid, const struct probe_result *r)
{
	json_t *bt = json_array(), *doc;
	char *copy = xstrdup(r->err_backtrace), *save = NULL, *l;

	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n",
							      &save))
		json_array_append_new(bt, json_string(l));
	free(copy);
	doc = json_pack("{s:i,s:{s:s,s:s,s:o}}", "pid", (int)pid, "error",
			"class", r->err_class, "message", r->err_message,
			"backtrace", bt);
	if (doc) {
		json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(doc);
	}
}

/*
 * With --json the head is printed once the first byte is known to
 * follow, so an error before it leaves stdout empty.
 */
struct json_ctx {
	struct out_ctx out;
	pid_t pid;
	const struct probe_eval *ev;
	bool head;
};

static int
to_stdout_json(const char *buf, size_t len, void *arg)
{
	struct json_ctx *j = arg;

	if (!j->head) {
		j->head = true;
		if (print_json_head(j->pid, j->ev) < 0) {
			j->out.err = ENOMEM;
			return -1;
		}
	}
	return to_stdout(buf, len, &j->out);
}

int
cmd_eval(int argc, char **argv)
{
	struct eval_opts o;
	struct probe_snippet snip;
	struct probe_opts po;
	struct probe_eval_req req;
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_eval ev;
	struct json_ctx jc;
	struct lp_err err;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&jc, 0, sizeof(jc));
	memset(&po, 0, sizeof(po));
	lp_err_clear(&err);
	rc = parse_opts(argc, argv, &o);
	if (rc != EXIT_OK) {
		free(o.code);
		return rc < 0 ? EXIT_OK : rc;
	}
	if (o.quiet && lp_verbose == 0)
		lp_verbose = -1;
	snip.code = o.code;
	snip.len = o.code_len;
	req.idx = 0;
	req.json = o.json;
	req.max_bytes = o.max_bytes;
	po.snippets = &snip;
	po.nsnippets = 1;
	po.timeout = o.timeout;
	po.eval = &req;
	s = cli_session_start_opts("eval", o.pid, &po, &hello, &rc);
	if (!s)
		goto out;
	if (hello.compile_errors) {
		/* its backtrace is the helper's compile call: not the user's */
		hello.err.err_backtrace[0] = '\0';
		if (o.json)
			print_json_error(o.pid, &hello.err);
		cli_print_raised("eval", &hello.err, "the code");
		rc = EXIT_SNIPPET;
		goto out;
	}
	jc.pid = o.pid;
	jc.ev = &ev;
	rc = probe_session_eval(s, o.json ? to_stdout_json : to_stdout,
				o.json ? (void *)&jc : (void *)&jc.out, &ev,
				&err);
	/* an empty text (never from inspect, but a JSON generator may
	 * give one): the head is still due */
	if (rc == 0 && o.json && !jc.head &&
	    to_stdout_json("", 0, &jc) < 0)
		rc = lp_err_set(&err, LP_EIO, "writing the result failed");
	if (rc == -LP_ESNIPPET) {
		if (o.json)
			print_json_error(o.pid, &ev.err);
		cli_print_raised("eval", &ev.err, "the code");
		rc = EXIT_SNIPPET;
		goto out;
	}
	if (rc == -LP_ETIMEDOUT) {
		/* the helper's watchdog kills its thread once we close the
		 * channel, at its next interrupt check */
		cli_error("eval", "the code did not finish within %.1f s (see "
			  "--timeout); its thread in process %d is killed as "
			  "leakprobe exits", o.timeout, (int)o.pid);
		rc = EXIT_INJECT;
		goto out;
	}
	if (rc < 0) {
		if (jc.out.err) {
			lp_err_clear(&err);
			lp_err_set(&err, LP_EIO, "writing to standard output: "
				   "%s", strerror(jc.out.err));
		}
		rc = cli_report("eval", &err);
		goto out;
	}
	if (o.json)
		fputs("}\n", stdout);
	else
		fputc('\n', stdout);	/* as p does */
	rc = cli_finish_stdout("eval", EXIT_OK);
	if (rc == EXIT_OK && ev.cut)
		cli_error("eval", "the value's text was cut at %" PRIu64
			  " of %" PRIu64 " bytes (raise --max-bytes to see "
			  "more)", o.max_bytes, ev.bytes);
out:
	probe_session_end(s);
	free(o.code);
	return rc;
}
