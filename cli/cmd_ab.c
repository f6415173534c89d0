/*
 * leakprobe ab PID --a CODE --b CODE [options]
 *
 * Alternates batches of A and B in the same target (A C B C A C ..., C a
 * no-op control), so slow drift of the worker hits both alike, and reports
 * the growth per call of each, the difference, and which one leaks.
 */
#include "cli/cmds.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "cli/measure.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static const char ab_usage[] =
"usage: leakprobe ab PID (--a CODE | --a-file PATH) (--b CODE | --b-file PATH)\n"
"                    [options]\n"
"\n"
"Compare two snippets in the same live Ruby process: batches of A and B\n"
"alternate (with no-op control batches between them), so the worker's own\n"
"drift hits both alike.  Prints the growth per call of each with 95 %\n"
"intervals, the difference, and which one leaks.\n"
"\n"
"  --a CODE, --b CODE       the two snippets\n"
"  --a-file P, --b-file P   read them from files\n"
"  -n, --times N            measured calls of each (default 2000)\n"
"  -r, --rounds R           batches of each (default 10)\n"
"  -w, --warmup K           warm-up batches of each (default 2)\n"
"      --no-gc              no GC.start after each batch\n"
"      --no-control         no control batches\n"
"  -t, --timeout SEC        limit for the job to start and each batch (30)\n"
"      --fail-on-growth B   exit 1 when either side's lower 95 % bound is\n"
"                           >= B bytes per call (7 when either is\n"
"                           inconclusive)\n"
"      --max-growth B       stop when the target grew by B in all (64MiB)\n"
"      --json               one JSON document on stdout\n"
"  -q, --quiet              only the result\n"
"  -h, --help               this help\n";

struct ab_opts {
	pid_t pid;
	char *code[2];
	size_t len[2];
	uint64_t times, rounds, warmup, fail, max_growth;
	bool fail_set, gc, control, json, quiet;
	double timeout;
};

static int
parse(int argc, char **argv, struct ab_opts *o)
{
	enum { O_A = 256, O_B, O_AF, O_BF, O_NOGC, O_NOCTL, O_FAIL, O_MAX,
	       O_JSON };
	static const struct option lo[] = {
		{ "a", required_argument, NULL, O_A },
		{ "b", required_argument, NULL, O_B },
		{ "a-file", required_argument, NULL, O_AF },
		{ "b-file", required_argument, NULL, O_BF },
		{ "times", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "no-gc", no_argument, NULL, O_NOGC },
		{ "no-control", no_argument, NULL, O_NOCTL },
		{ "timeout", required_argument, NULL, 't' },
		{ "fail-on-growth", required_argument, NULL, O_FAIL },
		{ "max-growth", required_argument, NULL, O_MAX },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, rc, k;

	o->times = 2000;
	o->rounds = 10;
	o->warmup = 2;
	o->gc = o->control = true;
	o->timeout = 30;
	o->max_growth = 64ull << 20;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "n:r:w:t:qvh", lo, NULL)) != -1) {
		switch (c) {
		case O_A:
		case O_B:
			k = c == O_B;
			free(o->code[k]);
			o->len[k] = strlen(optarg);
			o->code[k] = xstrndup(optarg, o->len[k]);
			break;
		case O_AF:
		case O_BF:
			k = c == O_BF;
			free(o->code[k]);
			rc = cli_read_code("ab", optarg, &o->code[k],
					   &o->len[k]);
			if (rc != EXIT_OK)
				return rc;
			break;
		case 'n':
		case 'r':
		case 'w': {
			uint64_t v;

			if (lp_parse_u64(optarg, &v) < 0 ||
			    (c != 'w' && v == 0) || v > 1000000000000ull) {
				cli_error("ab", "-%c wants a %s count, not '%s'",
					  c, c == 'w' ? "non-negative" :
					  "positive", optarg);
				return EXIT_USAGE;
			}
			*(c == 'n' ? &o->times : c == 'r' ? &o->rounds :
			  &o->warmup) = v;
			break;
		}
		case O_NOGC:
			o->gc = false;
			break;
		case O_NOCTL:
			o->control = false;
			break;
		case 't':
			if (lp_parse_seconds(optarg, &o->timeout) < 0) {
				cli_error("ab", "--timeout wants seconds > 0, "
					  "not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_FAIL:
			if (lp_parse_u64(optarg, &o->fail) < 0) {
				cli_error("ab", "--fail-on-growth wants bytes "
					  "per call, not '%s'", optarg);
				return EXIT_USAGE;
			}
			o->fail_set = true;
			break;
		case O_MAX:
			if (lp_parse_u64(optarg, &o->max_growth) < 0 ||
			    !o->max_growth) {
				cli_error("ab", "--max-growth wants bytes, not "
					  "'%s'", optarg);
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
			fputs(ab_usage, stdout);
			return -1;
		default:
			cli_error("ab", "unknown option '%s'; see 'leakprobe ab "
				  "--help'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if ((rc = cli_one_pid("ab", argc, argv, optind, &o->pid)) != EXIT_OK)
		return rc;
	for (k = 0; k < 2; k++) {
		if (!o->code[k]) {
			cli_error("ab", "missing --%c CODE (or --%c-file PATH)",
				  'a' + k, 'a' + k);
			return EXIT_USAGE;
		}
		rc = cli_check_code("ab", k ? "snippet B" : "snippet A",
				    o->code[k], o->len[k]);
		if (rc != EXIT_OK)
			return rc;
	}
	if (o->rounds > o->times)
		o->rounds = o->times;
	return EXIT_OK;
}

static void
on_batch(const struct probe_run *run, size_t i, void *arg)
{
	const struct ab_opts *o = arg;
	const struct ana_batch *b = &run->b[i];
	int arm = run->arm[i];
	const char *label = b->warmup ? (arm ? "warmup B" : "warmup A") :
			    b->control ? "control" : arm ? "B" : "A";

	if (b->warmup || b->control)
		cli_print_batch(label, b, b->calls, b->calls);
	else
		cli_print_batch(label, b, run->done[arm], o->times);
}

/* Do the two per-call estimates differ?  Normal approximation from the
 * two 95 % intervals (half-widths combined in quadrature). */
static void
difference(const struct ana_estimate *a, const struct ana_estimate *b,
	   double *d, double *lo, double *hi)
{
	double ha = (a->hi - a->lo) / 2, hb = (b->hi - b->lo) / 2;
	double h = sqrt(ha * ha + hb * hb);

	*d = a->slope - b->slope;
	*lo = *d - h;
	*hi = *d + h;
}

int
cmd_ab(int argc, char **argv)
{
	struct ab_opts o;
	struct probe_snippet sn[2];
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_run run;
	struct ana_verdict v[2];
	struct lp_err err;
	int rc, idx[2] = { 0, 1 };
	double d, dlo, dhi;
	char a[32], b[32], buf[3][32];

	memset(&o, 0, sizeof(o));
	memset(&run, 0, sizeof(run));
	lp_err_clear(&err);
	rc = parse(argc, argv, &o);
	if (rc != EXIT_OK) {
		rc = rc < 0 ? cli_finish_stdout("ab", EXIT_OK) : rc;
		goto out;
	}
	cli_install_signals();
	for (int k = 0; k < 2; k++) {
		sn[k].code = o.code[k];
		sn[k].len = o.len[k];
	}
	s = cli_session_start("ab", o.pid, sn, 2, o.timeout, false, &hello,
			      &rc);
	if (!s)
		goto out;
	if (hello.compile_errors) {
		cli_print_raised("ab", &hello.err, hello.first_bad ?
				 "snippet B" : "snippet A");
		rc = EXIT_SNIPPET;
		goto out;
	}
	{
		struct probe_arm arms[2] = { { &idx[0], 1 }, { &idx[1], 1 } };
		struct probe_measure_opts mo = {
			.times = o.times,
			.batch = (o.times + o.rounds - 1) / o.rounds,
			.warmup = o.warmup, .gc = o.gc, .control = o.control,
			.max_growth = o.max_growth, .lanes = true,
		};

		rc = probe_measure(s, arms, 2, &mo, &hello, &run,
				   o.quiet || o.json ? NULL : on_batch, &o,
				   &err);
	}
	probe_session_end(s);
	s = NULL;
	if (rc < 0) {
		rc = cli_report("ab", &err);
		goto out;
	}
	if (run.raised) {
		cli_print_raised("ab", &run.err, run.raised_arm ? "snippet B" :
				 "snippet A");
		rc = EXIT_SNIPPET;
		goto out;
	}
	for (int k = 0; k < 2; k++) {
		size_t n;
		struct ana_batch *bb = probe_run_arm(&run, k, &n);

		ana_verdict_compute(bb, n, &v[k]);
		free(bb);
	}
	difference(&v[0].mem, &v[1].mem, &d, &dlo, &dhi);
	{
		bool la = v[0].kind == ANA_NATIVE_LEAK ||
			  v[0].kind == ANA_RUBY_LEAK;
		bool lb = v[1].kind == ANA_NATIVE_LEAK ||
			  v[1].kind == ANA_RUBY_LEAK;
		bool differ = dlo > 0 || dhi < 0;
		const char *who = la && lb ? "both leak" : la ? "A leaks" :
				  lb ? "B leaks" : "neither leaks";

		lp_human_bytes(d, 1, buf[0], sizeof(buf[0]));
		lp_human_bytes(dlo, 1, buf[1], sizeof(buf[1]));
		lp_human_bytes(dhi, 1, buf[2], sizeof(buf[2]));
		if (o.json) {
			json_t *doc = json_pack(
				"{s:i,s:o,s:o,s:{s:f,s:f,s:f,s:b},s:s}",
				"pid", (int)o.pid, "a", cli_verdict_json(&v[0]),
				"b", cli_verdict_json(&v[1]), "difference",
				"bytes_per_call", d, "lo", dlo, "hi", dhi,
				"significant", differ, "result", who);

			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else {
			printf("A: %s\nB: %s\n", v[0].summary, v[1].summary);
			printf("A - B: %s per call (95 %% CI %s to %s): %s; %s\n",
			       buf[0], buf[1], buf[2], differ ? "they differ" :
			       "no significant difference", who);
		}
	}
	(void)a;
	(void)b;
	rc = cli_verdict_exit(&v[0], o.fail_set, o.fail);
	{
		int rb = cli_verdict_exit(&v[1], o.fail_set, o.fail);

		/* a leak beats inconclusive, which beats ok */
		if (rb == EXIT_LEAK || (rb == EXIT_INCONCLUSIVE &&
					rc == EXIT_OK))
			rc = rb;
	}
	rc = cli_finish_stdout("ab", rc);
out:
	probe_session_end(s);
	probe_run_release(&run);
	free(o.code[0]);
	free(o.code[1]);
	return rc;
}
