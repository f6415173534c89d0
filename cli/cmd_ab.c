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
"                           inconclusive); also the floor below which\n"
"                           neither a leak nor a difference is reported\n"
"      --max-growth B       stop when the target grew by B in all (64MiB)\n"
"      --json               one JSON document on stdout\n"
"  -q, --quiet              only the result\n"
"  -h, --help               this help\n";

struct ab_opts {
	pid_t pid;
	char *code[2];
	size_t len[2];
	struct cli_mopts m;	/* the shared measuring options */
	uint64_t rounds;
};

static int
parse(int argc, char **argv, struct ab_opts *o)
{
	enum { O_A = CLI_O_FIRST_OWN, O_B, O_AF, O_BF };
	static const struct option lo[] = {
		{ "a", required_argument, NULL, O_A },
		{ "b", required_argument, NULL, O_B },
		{ "a-file", required_argument, NULL, O_AF },
		{ "b-file", required_argument, NULL, O_BF },
		CLI_OPT_TIMES,
		{ "rounds", required_argument, NULL, 'r' },
		CLI_OPT_WARMUP, CLI_OPT_NOGC, CLI_OPT_NOCTL, CLI_OPT_TIMEOUT,
		CLI_OPT_FAIL, CLI_OPT_MAX, CLI_OPT_JSON, CLI_OPT_QUIET,
		CLI_OPT_VERBOSE, CLI_OPT_HELP,
		{ NULL, 0, NULL, 0 }
	};
	int c, rc, k;

	cli_mopts_init(&o->m, 2000, 2);
	o->rounds = 10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "n:r:w:t:qvh", lo, NULL)) != -1) {
		if ((rc = cli_mopt("ab", c, optarg, &o->m)) >= 0) {
			if (rc != EXIT_OK)
				return rc;
			continue;
		}
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
		case 'r':
			if (lp_parse_u64(optarg, &o->rounds) < 0 ||
			    !o->rounds || o->rounds > 1000000000000ull) {
				cli_error("ab", "--rounds wants a count from 1 "
					  "to 10^12, not '%s'", optarg);
				return EXIT_USAGE;
			}
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
	if (o->rounds > o->m.times)
		o->rounds = o->m.times;
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
		cli_print_batch(label, b, run->done[arm], o->m.times);
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
	s = cli_session_start("ab", o.pid, sn, 2, o.m.timeout, false, &hello,
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
			.times = o.m.times,
			.batch = (o.m.times + o.rounds - 1) / o.rounds,
			.warmup = o.m.warmup, .gc = o.m.gc,
			.control = o.m.control,
			.max_growth = o.m.max_growth, .lanes = true,
		};

		rc = probe_measure(s, arms, 2, &mo, &hello, &run,
				   o.m.quiet || o.m.json ? NULL : on_batch, &o,
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

		ana_verdict_compute_floor(bb, n, cli_leak_floor(&o.m),
					  &v[k]);
		free(bb);
	}
	difference(&v[0].mem, &v[1].mem, &d, &dlo, &dhi);
	{
		bool la = ANA_VERDICT_IS_LEAK(v[0].kind);
		bool lb = ANA_VERDICT_IS_LEAK(v[1].kind);
		/* a difference, like a leak, needs its bound past the
		 * floor: one object in a hundred calls is not one */
		double fl = cli_leak_floor(&o.m);
		bool differ = (dlo > 0 && dlo >= fl) ||
			      (dhi < 0 && -dhi >= fl);
		const char *who = la && lb ? "both leak" : la ? "A leaks" :
				  lb ? "B leaks" : "neither leaks";

		lp_human_bytes(d, 1, buf[0], sizeof(buf[0]));
		lp_human_bytes(dlo, 1, buf[1], sizeof(buf[1]));
		lp_human_bytes(dhi, 1, buf[2], sizeof(buf[2]));
		if (o.m.json) {
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
	rc = cli_verdict_exit(&v[0], o.m.fail_set, o.m.fail_on_growth);
	{
		int rb = cli_verdict_exit(&v[1], o.m.fail_set,
					  o.m.fail_on_growth);

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
