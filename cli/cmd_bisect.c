/*
 * leakprobe bisect PID --steps FILE [options]
 *
 * Finds the smallest sets of steps whose combination leaks, in one live
 * target, by adaptive splitting: the number of trials grows like
 * k * log2(n) for k culprits among n steps, and a leak that needs two
 * steps together is found as that pair.
 *
 *   find(C, R): C candidate steps, R steps always run along (context);
 *               known: C|R leaks, R alone does not
 *     |C| == 1           -> C
 *     C1|R leaks         -> find(C1, R)
 *     C2|R leaks         -> find(C2, R)
 *     else (needs both)  -> X1 = find(C1, R|C2); X1 | find(C2, R|X1)
 *
 * then the culprit is removed and the rest tested again, until the rest
 * does not leak.  Growth is assumed monotone: adding steps never makes a
 * leak disappear.
 *
 * One trial is one statistical verdict and can be wrong.  A set that
 * leaks while neither half does is either a real combination or a false
 * positive, and following a false positive costs a search over every
 * subset (tens of trials ending in "all steps together").  So before the
 * "needs both" branch the set is measured again (a third time when the
 * two disagree) and the majority decides; a refuted set is not searched,
 * and find() goes on with the other half.  A culprit is confirmed alone
 * the same way before it is reported (the one extra trial of the clean
 * path); one refuted alone is a false lead, and the search runs again,
 * the cached trials steering it past it.
 */
#include "cli/cmds.h"

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "cli/measure.h"
#include "cli/progress.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_STEPS ANA_MAX_STEPS
#define MAX_TRIALS 1024
#define MAX_FALSE_LEADS 3	/* culprits refuted alone before giving up */
#define MAX_UNDECIDED	3	/* trials of a set without a majority (an
				 * inconclusive one has no vote): then it
				 * does not leak */

static const char bisect_usage[] =
"usage: leakprobe bisect PID --steps FILE [options]\n"
"\n"
"Find which steps of a worker loop leak, alone or only together, in the\n"
"live Ruby process PID.  FILE holds the candidate steps, each introduced by\n"
"a line '# step: NAME' and followed by its Ruby code (one call of the\n"
"step); lines before the first step may only be blank or comments.  At\n"
"most 64 steps.  Trials grow like k*log2(n) for k culprits among n steps.\n"
"\n"
"  -s, --steps FILE         the steps\n"
"  -n, --times N            calls per trial (default 1000)\n"
"  -b, --batch M            calls per batch (default N/10)\n"
"  -w, --warmup K           warm-up batches per trial (default 1)\n"
"      --no-control         no control batches\n"
"  -t, --timeout SEC        limit for the job to start and each batch (30)\n"
"      --fail-on-growth B   exit 1 when a culprit's lower 95 % bound is\n"
"                           >= B bytes per call; a trial below it is no\n"
"                           leak (default floor 4 B per call)\n"
"      --max-growth B       stop a trial when the target grew by B (64MiB)\n"
"      --json               one JSON document on stdout\n"
"  -q, --quiet              only the result\n"
"  -v, --verbose            the trial lines even on a terminal (where a\n"
"                           progress line is shown instead)\n"
"  -h, --help               this help\n";


struct trial {
	uint64_t mask;
	struct ana_verdict v;
	bool leaks;		/* this trial's verdict is a leak */
	bool again;		/* a repeat of an earlier trial */
	int decided;		/* the mask's majority after this trial:
				 * 1 leaks, 0 does not, -1 undecided */
};

struct bisect {
	pid_t pid;
	const char *file;
	struct ana_step steps[MAX_STEPS];
	int nsteps;
	uint64_t bad;		/* steps left out: they raised */
	char bad_why[MAX_STEPS][256];
	struct cli_mopts m;	/* the shared measuring options */
	struct probe_session *s;
	struct probe_hello hello;
	struct trial trials[MAX_TRIALS];
	int ntrials;
	struct lp_err err;
	int fatal;		/* exit status of a fatal error, 0 */
	struct cli_show sh;	/* progress line or trial table */
	const char *cur;	/* steps of the trial running now */
	uint64_t t0;
};

/* Parse the steps file, then refuse a step with a NUL byte. */
static int
parse_steps(struct bisect *bs, char *text, size_t len)
{
	struct lp_err err;

	lp_err_clear(&err);
	if (ana_steps_parse(bs->file, text, len, bs->steps, &bs->nsteps,
			    &err) < 0) {
		cli_error("bisect", "%s", err.msg);
		return EXIT_USAGE;
	}
	for (int i = 0; i < bs->nsteps; i++) {
		char what[160];
		int rc;

		snprintf(what, sizeof(what), "step '%s'", bs->steps[i].name);
		rc = cli_check_code("bisect", what, bs->steps[i].code,
				    bs->steps[i].len);
		if (rc != EXIT_OK)
			return rc;
	}
	return EXIT_OK;
}

static int
parse(int argc, char **argv, struct bisect *bs)
{
	static const struct option lo[] = {
		{ "steps", required_argument, NULL, 's' },
		CLI_OPT_TIMES, CLI_OPT_BATCH, CLI_OPT_WARMUP, CLI_OPT_NOCTL,
		CLI_OPT_TIMEOUT, CLI_OPT_FAIL, CLI_OPT_MAX, CLI_OPT_JSON,
		CLI_OPT_QUIET, CLI_OPT_VERBOSE, CLI_OPT_HELP,
		{ NULL, 0, NULL, 0 }
	};
	char *text;
	size_t len;
	int c, rc;

	cli_mopts_init(&bs->m, 1000, 1);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "s:n:b:w:t:qvh", lo, NULL)) !=
	       -1) {
		if ((rc = cli_mopt("bisect", c, optarg, &bs->m)) >= 0) {
			if (rc != EXIT_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 's':
			bs->file = optarg;
			break;
		case 'h':
			fputs(bisect_usage, stdout);
			return -1;
		default:
			cli_error("bisect", "unknown option '%s'; see 'leakprobe "
				  "bisect --help'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	rc = cli_one_pid("bisect", argc, argv, optind, &bs->pid);
	if (rc != EXIT_OK)
		return rc;
	if (!bs->file) {
		cli_error("bisect", "missing --steps FILE");
		return EXIT_USAGE;
	}
	cli_mopts_finish(&bs->m);
	rc = cli_read_code("bisect", bs->file, &text, &len);
	if (rc != EXIT_OK)
		return rc;
	rc = parse_steps(bs, text, len);
	free(text);
	return rc;
}

static void
names_of(const struct bisect *bs, uint64_t mask, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < bs->nsteps && o + 4 < len; i++)
		if (mask & (1ull << i))
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
					      o ? " + " : "",
					      bs->steps[i].name);
	if (!o)
		snprintf(buf, len, "(none)");
}

/* Which step raised: the first "(leakprobe snippet N)" in the trace. */
static int
raising_step(const struct probe_result *r, uint64_t mask)
{
	const char *p = r->err_backtrace;
	const char *tag = "(leakprobe snippet ";

	while ((p = strstr(p, tag))) {
		int i = atoi(p + strlen(tag));

		if (i >= 0 && i < MAX_STEPS && (mask & (1ull << i)))
			return i;
		p += strlen(tag);
	}
	/* not found (e.g. the backtrace was cut): the lowest step */
	for (int i = 0; i < MAX_STEPS; i++)
		if (mask & (1ull << i))
			return i;
	return -1;
}

/* The latest trial of mask, or NULL. */
static struct trial *
last_trial(struct bisect *bs, uint64_t mask)
{
	for (int i = bs->ntrials - 1; i >= 0; i--)
		if (bs->trials[i].mask == mask)
			return &bs->trials[i];
	return NULL;
}

/* The progress line, after each batch of a trial. */
static void
on_batch(const struct probe_run *run, size_t i, void *arg)
{
	struct bisect *bs = arg;

	(void)i;
	cli_progress(&bs->sh, "bisect %d: trial %d (%s): %" PRIu64 " of %"
		     PRIu64 " calls, %.1f s", (int)bs->pid, bs->ntrials + 1,
		     bs->cur, run->done[0], bs->m.times,
		     (lp_mono_ns() - bs->t0) / 1e9);
}

/*
 * Measure the steps in mask once more: appends a trial.  Returns 0, or
 * -1 when the run must stop (bs->fatal set), or 1 when a step raised
 * (it is left out, bs->bad; the caller decides what to measure now).
 */
static int
measure(struct bisect *bs, uint64_t mask)
{
	struct probe_measure_opts mo = {
		.times = bs->m.times, .batch = bs->m.batch,
		.warmup = bs->m.warmup, .gc = true,
		.control = bs->m.control, .max_growth = bs->m.max_growth,
	};
	int idx[MAX_STEPS], nidx = 0, rc;
	struct trial *t, *prev = last_trial(bs, mask);
	struct probe_run run;
	struct probe_arm arm;
	char names[1024];

	if (bs->ntrials == MAX_TRIALS) {
		cli_error("bisect", "more than %d trials", MAX_TRIALS);
		bs->fatal = EXIT_INJECT;
		return -1;
	}
	for (int i = 0; i < bs->nsteps; i++)
		if (mask & (1ull << i))
			idx[nidx++] = i;
	arm.idx = idx;
	arm.nidx = nidx;
	names_of(bs, mask, names, sizeof(names));
	bs->cur = names;
	rc = probe_measure(bs->s, &arm, 1, &mo, &bs->hello, &run,
			   bs->sh.progress ? on_batch : NULL, bs, &bs->err);
	if (rc < 0) {
		bs->fatal = cli_report("bisect", &bs->err);
		probe_run_release(&run);
		return -1;
	}
	if (run.raised) {
		int i = raising_step(&run.err, mask);

		snprintf(bs->bad_why[i], sizeof(bs->bad_why[i]),
			 "%.100s: %.140s", run.err.err_class,
			 run.err.err_message);
		bs->bad |= 1ull << i;
		cli_progress_clear(&bs->sh);
		if (!bs->m.quiet && !bs->m.json)
			printf("step '%s' raised %s; left out\n",
			       bs->steps[i].name, bs->bad_why[i]);
		probe_run_release(&run);
		return 1;
	}
	t = &bs->trials[bs->ntrials++];
	t->mask = mask;
	{
		size_t n;
		struct ana_batch *b = probe_run_arm(&run, 0, &n);

		ana_verdict_compute_floor(b, n, cli_leak_floor(&bs->m),
					  &t->v);
		free(b);
	}
	probe_run_release(&run);
	/*
	 * A leak is a leak of any kind.  An inconclusive trial does not
	 * vote: on a noisy target a real leak's interval can reach below
	 * the floor, and taking that for "no leak" ends the search with
	 * nothing found.  The set is measured again instead; after
	 * MAX_UNDECIDED trials without a majority, it does not leak.
	 */
	t->leaks = ANA_VERDICT_IS_LEAK(t->v.kind);
	t->again = prev != NULL;
	{
		int yes = 0, no = 0, all = 0;

		for (int i = 0; i < bs->ntrials; i++) {
			const struct trial *u = &bs->trials[i];

			if (u->mask != mask)
				continue;
			all++;
			if (u->leaks)
				yes++;
			else if (u->v.kind != ANA_INCONCLUSIVE)
				no++;
		}
		t->decided = yes > no ? 1 : no > yes ? 0 : -1;
		if (t->decided < 0 && all >= MAX_UNDECIDED)
			t->decided = 0;
	}
	if (bs->sh.table) {
		cli_show_legend(&bs->sh, "# trial  steps run together"
				"                          verdict");
		names_of(bs, mask, names, sizeof(names));
		printf("trial %2d: %-40s %s%s\n", bs->ntrials, names,
		       t->again ? "(again) " : "", t->v.summary);
		fflush(stdout);
	}
	if (lp_stop_signal) {
		lp_err_set(&bs->err, LP_EINTR, "interrupted");
		bs->fatal = cli_report("bisect", &bs->err);
		return -1;
	}
	return 0;
}

/*
 * Does running the steps in mask leak?  With confirm, until the trials
 * of mask have a majority of at least two votes (two agreeing, or two of
 * three; an inconclusive trial has no vote); without, the latest
 * decision, measuring until there is one.
 * Returns 1/0, or -1 when the run must stop (bs->fatal set).  A step
 * that raises is left out and the steps without it are measured.
 */
static int
leaks(struct bisect *bs, uint64_t mask, bool confirm)
{
	for (;;) {
		struct trial *t;
		int n = 0, rc;

		mask &= ~bs->bad;
		if (!mask)
			return 0;
		t = last_trial(bs, mask);
		if (t && !confirm && t->decided >= 0)
			return t->decided;
		if (t) {
			int all = 0;

			/* votes: trials that were not inconclusive */
			for (int i = 0; i < bs->ntrials; i++) {
				if (bs->trials[i].mask != mask)
					continue;
				all++;
				n += bs->trials[i].v.kind != ANA_INCONCLUSIVE;
			}
			if (t->decided >= 0 &&
			    (n >= 2 || all >= MAX_UNDECIDED))
				return t->decided;
		}
		rc = measure(bs, mask);
		if (rc < 0)
			return -1;
	}
}

static uint64_t
lower_half(uint64_t c)
{
	int n = __builtin_popcountll(c), k = 0;
	uint64_t out = 0;

	for (int i = 0; i < 64 && k < n / 2; i++)
		if (c & (1ull << i)) {
			out |= 1ull << i;
			k++;
		}
	return out;
}

/*
 * Smallest subset X of C with leaks(X | R), given that C | R was seen to
 * leak; 0 when C | R turns out not to leak, or on a fatal error.
 */
static uint64_t
find(struct bisect *bs, uint64_t c, uint64_t r)
{
	uint64_t c1, c2, x1, x2;
	int l;

	c &= ~bs->bad;
	if (__builtin_popcountll(c) <= 1)
		return c;
	c1 = lower_half(c);
	c2 = c & ~c1;
	if ((l = leaks(bs, c1 | r, false)) < 0)
		return 0;
	if (l && ((x1 = find(bs, c1, r)) || bs->fatal))
		return x1;
	if ((l = leaks(bs, c2 | r, false)) < 0)
		return 0;
	if (l && ((x2 = find(bs, c2, r)) || bs->fatal))
		return x2;
	/* neither half alone: a combination, or C | R never leaked */
	if ((l = leaks(bs, c | r, true)) <= 0)
		return 0;
	x1 = find(bs, c1, r | c2);
	if (bs->fatal || !x1)
		return 0;
	x2 = find(bs, c2, r | x1);
	/* x1 needs steps of c2 (x1 | R did not leak): none found means the
	 * lead was false, unless every step of c2 raised */
	if (bs->fatal || (!x2 && (c2 & ~bs->bad)))
		return 0;
	return x1 | x2;
}

int
cmd_bisect(int argc, char **argv)
{
	struct bisect *bs = xcalloc(1, sizeof(*bs));
	struct probe_snippet sn[MAX_STEPS];
	uint64_t all, rest, culprits[MAX_STEPS], start, unresolved = 0;
	uint64_t last_false = 0;
	int nfalse = 0;
	struct ana_verdict cv[MAX_STEPS];
	int nc = 0, rc, l;
	char names[1024];

	rc = parse(argc, argv, bs);
	if (rc != EXIT_OK) {
		rc = rc < 0 ? cli_finish_stdout("bisect", EXIT_OK) : rc;
		goto out;
	}
	cli_install_signals();
	cli_show_init(&bs->sh, bs->m.quiet || bs->m.json);
	bs->t0 = lp_mono_ns();
	start = lp_mono_ns();
	for (int i = 0; i < bs->nsteps; i++) {
		sn[i].code = bs->steps[i].code;
		sn[i].len = bs->steps[i].len;
	}
	bs->s = cli_session_start("bisect", bs->pid, sn, (size_t)bs->nsteps,
				  bs->m.timeout, false, &bs->hello, &rc);
	if (!bs->s)
		goto out;
	for (int i = 0; i < bs->hello.nbad; i++) {
		int k = bs->hello.bad_idx[i];

		if (k < 0 || k >= bs->nsteps)
			continue;
		bs->bad |= 1ull << k;
		snprintf(bs->bad_why[k], sizeof(bs->bad_why[k]), "%.250s",
			 i == 0 ? bs->hello.err.err_message : "does not compile");
		if (!bs->m.quiet && !bs->m.json)
			printf("step '%s' does not compile; left out\n",
			       bs->steps[k].name);
	}
	all = (bs->nsteps == 64 ? ~0ull : (1ull << bs->nsteps) - 1) & ~bs->bad;
	if (!all) {
		cli_error("bisect", "every step raised or failed to compile");
		rc = EXIT_SNIPPET;
		goto out;
	}
	rest = all;
	while (rest && (l = leaks(bs, rest, false)) == 1) {
		uint64_t x = find(bs, rest, 0);
		struct trial *t;

		if (bs->fatal || !x)
			break;
		/* the culprit alone, confirmed (a culprit is what the user
		 * acts on: never one trial's word), for its bytes per call */
		if ((l = leaks(bs, x, true)) < 0)
			break;
		x &= ~bs->bad;
		if (!l || !(t = last_trial(bs, x))) {
			/* It does not leak alone: a false lead, from one
			 * trial's wrong verdict on the way.  Its trials stay
			 * cached, so searching again takes another path; a
			 * few false leads, or the same one twice, end it. */
			if (x == last_false || ++nfalse > MAX_FALSE_LEADS)
				break;
			last_false = x;
			continue;
		}
		cv[nc] = t->v;
		culprits[nc++] = x;
		rest &= ~x;
		rest &= ~bs->bad;
	}
	if (bs->fatal) {
		rc = bs->fatal;
		goto out;
	}
	/* The search ended with steps left that leak (their latest majority)
	 * but no smaller set could be pinned down: say so, do not call it
	 * "no leak". */
	rest &= ~bs->bad;
	if (rest) {
		struct trial *t = last_trial(bs, rest);

		if (t && t->decided == 1)
			unresolved = rest;
	}
	probe_session_end(bs->s);
	bs->s = NULL;
	cli_progress_clear(&bs->sh);

	rc = EXIT_OK;
	for (int i = 0; i < nc; i++) {
		int e = cli_verdict_exit(&cv[i], bs->m.fail_set, bs->m.fail_on_growth);

		if (e == EXIT_LEAK)
			rc = EXIT_LEAK;
	}
	if (unresolved && bs->m.fail_set && rc == EXIT_OK)
		rc = EXIT_INCONCLUSIVE;
	{
		double secs = (lp_mono_ns() - start) / 1e9;

		if (bs->m.json) {
			json_t *doc = json_object(), *a = json_array(),
			       *tr = json_array(), *ex = json_array();

			for (int i = 0; i < nc; i++) {
				json_t *st = json_array();

				for (int k = 0; k < bs->nsteps; k++)
					if (culprits[i] & (1ull << k))
						json_array_append_new(st,
							json_string(bs->steps[k].name));
				json_array_append_new(a, json_pack("{s:o,s:o}",
					"steps", st,
					"verdict", cli_verdict_json(&cv[i])));
			}
			for (int i = 0; i < bs->ntrials; i++) {
				names_of(bs, bs->trials[i].mask, names,
					 sizeof(names));
				json_array_append_new(tr, json_pack(
					"{s:s,s:s,s:f,s:b}", "steps", names,
					"kind", ana_verdict_name(bs->trials[i].v.kind),
					"bytes_per_call",
					ANA_VERDICT_IS_LEAK(bs->trials[i].v.kind) ?
					bs->trials[i].v.leak.slope :
					bs->trials[i].v.mem.slope,
					"again", bs->trials[i].again));
			}
			for (int k = 0; k < bs->nsteps; k++)
				if (bs->bad & (1ull << k))
					json_array_append_new(ex, json_pack(
						"{s:s,s:s}", "step",
						bs->steps[k].name, "error",
						bs->bad_why[k]));
			json_object_set_new(doc, "pid", json_integer(bs->pid));
			json_object_set_new(doc, "steps",
					    json_integer(bs->nsteps));
			json_object_set_new(doc, "culprits", a);
			json_object_set_new(doc, "trials", tr);
			json_object_set_new(doc, "trial_count",
					    json_integer(bs->ntrials));
			json_object_set_new(doc, "left_out", ex);
			{
				json_t *u = json_array();

				for (int k = 0; k < bs->nsteps; k++)
					if (unresolved & (1ull << k))
						json_array_append_new(u,
							json_string(bs->steps[k].name));
				json_object_set_new(doc, "unresolved", u);
			}
			json_object_set_new(doc, "seconds", json_real(secs));
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else {
			if (unresolved) {
				names_of(bs, unresolved, names,
					 sizeof(names));
				printf("unresolved: %s leak together, but no "
				       "smaller set leaked again when measured;"
				       " run again with more --times\n", names);
			} else if (!nc && bs->ntrials && bs->trials[0].leaks)
				printf("no step leaks reproducibly: leaks seen "
				       "in single trials were not seen again "
				       "(see the trials above)\n");
			else if (!nc)
				printf("no step leaks (all %d steps together: "
				       "%s)\n", __builtin_popcountll(all),
				       bs->ntrials ? bs->trials[0].v.summary :
				       "");
			for (int i = 0; i < nc; i++) {
				names_of(bs, culprits[i], names,
					 sizeof(names));
				printf("culprit: %s%s: %s\n", names,
				       __builtin_popcountll(culprits[i]) > 1 ?
				       " (only together)" : "",
				       cv[i].summary);
			}
			printf("%d trials for %d steps in %.1f s (one by one "
			       "would take %d)\n", bs->ntrials, bs->nsteps,
			       secs, bs->nsteps);
		}
	}
	rc = cli_finish_stdout("bisect", rc);
out:
	cli_progress_clear(&bs->sh);
	probe_session_end(bs->s);
	ana_steps_release(bs->steps, bs->nsteps);
	free(bs);
	return rc;
}
