/*
 * leakprobe attach PID (--eval CODE | --file PATH) [options]
 *
 * Runs the snippet in batches inside the live target (through the
 * safe-point helper thread), samples smaps and GC.stat after every batch,
 * and fits growth per call into a verdict.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "cli/malloc_report.h"
#include "cli/profile_out.h"
#include "cli/measure.h"
#include "cli/progress.h"
#include "common/log.h"
#include "common/util.h"
#include "probes/probes.h"


static const char attach_usage[] =
"usage: leakprobe attach PID (--eval CODE | --file PATH) [options]\n"
"\n"
"Run CODE inside the live Ruby process PID at a safe point, in batches\n"
"each followed by a full GC.start, sample its memory between batches and\n"
"say whether CODE leaks: native leak, Ruby-object leak, no leak, or\n"
"inconclusive, with bytes per call and a 95 % interval.  One line per\n"
"batch when stdout is not a terminal (or with -v), under a legend.\n"
"\n"
"  -e, --eval CODE          Ruby code to run (one call)\n"
"  -f, --file PATH          read the code from PATH ('-' = stdin)\n"
"  -n, --times N            measured calls in all (default 1000)\n"
"  -b, --batch M            calls per batch (default: N/10, at least 1)\n"
"  -w, --warmup K           warm-up batches, not measured (default 2;\n"
"                           0 when there is only one measured batch: a\n"
"                           smoke test with no warm-up or control)\n"
"      --no-gc              no GC.start after each batch\n"
"      --no-control         no interleaved no-op control batches (by\n"
"                           default the target's own drift is measured\n"
"                           by control batches and subtracted; off when\n"
"                           there is only one measured batch)\n"
"  -t, --timeout SEC        limit for the job to start and for each batch\n"
"                           (default 30)\n"
"      --fail-on-growth B   the floor of every kind of leak: a leak is\n"
"                           reported, and exit is 1, only when the lower\n"
"                           95 % bound of its bytes per call is >= B (7\n"
"                           when inconclusive; default floor 4 B)\n"
"      --max-growth B       stop when the target grew by B bytes in all\n"
"                           (default 64MiB), to protect it\n"
"      --retained           trace allocations during the run and list,\n"
"                           by allocation site, the objects born in the\n"
"                           measured batches that are still alive after\n"
"                           the last GC.start and at a later dump (three\n"
"                           heap dumps, streamed): other threads' objects\n"
"                           in flight drop out, and their number is said\n"
"      --keep-dumps DIR     keep those dumps in DIR (implies --retained)\n"
"      --malloc-sites       trace malloc/free with eBPF uprobes during\n"
"                           the measured batches and list the native\n"
"                           stacks that still hold the bytes (root)\n"
"      --stack-bytes N      stack copied per allocation (default 4096)\n"
"      --sample N           record 1 in N allocations (default 1)\n"
"      --top N              sites to list (default 10)\n"
"      --format FMT         also write every malloc site as a profile:\n"
"                           pprof (gzip'd profile.proto) or folded (one\n"
"                           line per stack, for flame graphs); needs -o\n"
"                           (implies --malloc-sites)\n"
"  -o, --output FILE        where --format writes the profile\n"
"      --json               one JSON document on stdout\n"
"  -q, --quiet              print only the verdict\n"
"  -v, --verbose            the per-batch table even on a terminal (where\n"
"                           a progress line is shown instead); twice:\n"
"                           debug details on stderr\n"
"  -h, --help               this help\n"
"\n"
"Sizes take k, M, G suffixes (binary).  Exit status: 0 done, 1 leak over\n"
"--fail-on-growth, 2 usage, 3 target error, 4 injection error or timeout,\n"
"5 the snippet raised, 6 local i/o, 7 inconclusive under --fail-on-growth.\n";

struct attach_opts {
	pid_t pid;
	char *code;
	size_t code_len;
	struct cli_mopts m;	/* the shared measuring options */
	bool retained;		/* allocation sites of retained objects */
	bool malloc_sites;	/* native stacks holding the growth */
	uint64_t stack_bytes, sample;
	const char *keep_dumps;
	uint64_t top;
	enum cli_format fmt;	/* CLI_FMT_TEXT: no profile */
	const char *output;
};

static int
parse_opts(int argc, char **argv, struct attach_opts *o)
{
	enum { O_RETAINED = CLI_O_FIRST_OWN, O_KEEP, O_TOP, O_MSITES, O_SBYTES,
	       O_SAMPLE, O_FORMAT };
	static const struct option lo[] = {
		{ "eval", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		CLI_OPT_TIMES, CLI_OPT_BATCH, CLI_OPT_WARMUP, CLI_OPT_NOGC,
		CLI_OPT_NOCTL, CLI_OPT_TIMEOUT, CLI_OPT_FAIL, CLI_OPT_MAX,
		CLI_OPT_JSON,
		{ "retained", no_argument, NULL, O_RETAINED },
		{ "keep-dumps", required_argument, NULL, O_KEEP },
		{ "top", required_argument, NULL, O_TOP },
		{ "malloc-sites", no_argument, NULL, O_MSITES },
		{ "stack-bytes", required_argument, NULL, O_SBYTES },
		{ "sample", required_argument, NULL, O_SAMPLE },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		CLI_OPT_QUIET, CLI_OPT_VERBOSE, CLI_OPT_HELP,
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *eval = NULL;
	int c, rc;

	cli_mopts_init(&o->m, 1000, 2);
	o->top = 10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "e:f:n:b:w:t:o:qvh", lo, NULL)) !=
	       -1) {
		if ((rc = cli_mopt("attach", c, optarg, &o->m)) >= 0) {
			if (rc != EXIT_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'e':
			eval = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case O_RETAINED:
			o->retained = true;
			break;
		case O_KEEP:
			o->keep_dumps = optarg;
			o->retained = true;
			break;
		case O_MSITES:
			o->malloc_sites = true;
			break;
		case O_SBYTES:
		case O_SAMPLE: {
			uint64_t v;

			if (lp_parse_u64(optarg, &v) < 0 || !v ||
			    v > (c == O_SBYTES ? 16384 : 1000000)) {
				cli_error("attach", "--%s wants %s, not '%s'",
					  c == O_SBYTES ? "stack-bytes" : "sample",
					  c == O_SBYTES ? "1 to 16384 bytes" :
					  "a count from 1", optarg);
				return EXIT_USAGE;
			}
			*(c == O_SBYTES ? &o->stack_bytes : &o->sample) = v;
			o->malloc_sites = true;
			break;
		}
		case O_FORMAT:
			rc = cli_format_parse("attach", optarg, &o->fmt);
			if (rc != EXIT_OK)
				return rc;
			if (!cli_format_stacks(o->fmt)) {
				cli_error("attach", "--format wants pprof or "
					  "folded (the verdict itself: --json "
					  "or text), not '%s'", optarg);
				return EXIT_USAGE;
			}
			o->malloc_sites = true;
			break;
		case 'o':
			o->output = optarg;
			break;
		case O_TOP:
			if (lp_parse_u64(optarg, &o->top) < 0 || !o->top) {
				cli_error("attach", "--top wants a positive "
					  "count, not '%s'", optarg);
				return EXIT_USAGE;
			}
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
	rc = cli_one_pid("attach", argc, argv, optind, &o->pid);
	if (rc != EXIT_OK)
		return rc;
	if (cli_format_stacks(o->fmt) != !!o->output) {
		cli_error("attach", "%s", o->output ? "-o FILE is for the "
			  "profile: give --format pprof or folded too" :
			  "--format writes a profile file: give -o FILE too");
		return EXIT_USAGE;
	}
	if (!!eval == !!file) {
		cli_error("attach", "give exactly one of --eval CODE or --file "
			  "PATH");
		return EXIT_USAGE;
	}
	rc = cli_take_code("attach", eval, file, &o->code, &o->code_len);
	if (rc != EXIT_OK)
		return rc;
	rc = cli_check_code("attach", "the snippet", o->code, o->code_len);
	if (rc != EXIT_OK)
		return rc;
	cli_mopts_finish(&o->m);
	/* With a single measured batch no slope can be fitted: a run such
	 * as --times 1 is a smoke test, so skip what only serves the fit
	 * (warm-up, control batches) unless asked for.  The GC.start stays:
	 * without it the helper's own garbage waits for the target's next
	 * GC, and back-to-back runs would grow its heap meanwhile. */
	if ((o->m.times + o->m.batch - 1) / o->m.batch < 2) {
		if (!o->m.have_warmup)
			o->m.warmup = 0;
		if (!o->m.have_control)
			o->m.control = false;
	}
	return EXIT_OK;
}

/* ---- --retained: heap dumps around the measured batches, and later ---- */

#define LATER_GAP_NS	200000000L	/* 0.2 s before the later dump */

struct retained {
	const struct attach_opts *o;
	struct ana_hd_digest *dg[3];	/* before, after, later */
	int fd;				/* --keep-dumps file, or -1 */
	int io_errno;
	uint64_t dropped;		/* alive after, gone later */
	char kept[3][4200];
};

static int
retained_sink(const char *buf, size_t len, void *arg)
{
	struct retained *r = arg;
	struct ana_hd_digest *d = r->dg[2] ? r->dg[2] :
				  r->dg[1] ? r->dg[1] : r->dg[0];
	size_t off = 0;

	while (r->fd >= 0 && off < len) {
		ssize_t n = write(r->fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->io_errno = n < 0 ? errno : ENOSPC;
			return -1;
		}
		off += (size_t)n;
	}
	return ana_hd_digest_feed(d, buf, len, NULL);
}

/* Take dump `which` (0 before, 1 after, 2 later) into r->dg[which]. */
static int
retained_dump(struct probe_session *s, struct retained *r, int which,
	      struct lp_err *err)
{
	struct probe_result res;
	int rc;

	r->dg[which] = ana_hd_digest_new(which ? ana_hd_digest_stats(
					 r->dg[0])->max_gen : ANA_HD_NO_SITES);
	if (!r->dg[which] ||
	    (which && ana_hd_digest_use_old(r->dg[which], r->dg[0]) < 0))
		return lp_err_set(err, LP_ENOMEM, "out of memory");
	if (r->o->keep_dumps) {
		char stamp[32];

		lp_stamp(lp_wall_ns(), stamp, sizeof(stamp));
		snprintf(r->kept[which], sizeof(r->kept[which]),
			 "%s/heap-%d-%s-%s.json", r->o->keep_dumps,
			 (int)r->o->pid, stamp, which == 2 ? "later" :
			 which ? "after" : "before");
		r->fd = open(r->kept[which], O_WRONLY | O_CREAT | O_TRUNC |
			     O_CLOEXEC, 0644);
		if (r->fd < 0)
			return lp_err_sys(err, LP_EIO, "cannot write '%s'",
					  r->kept[which]);
	}
	rc = probe_session_dump(s, retained_sink, r, NULL, &res, err);
	if (r->fd >= 0) {
		if (close(r->fd) < 0 && rc == 0)
			rc = lp_err_sys(err, LP_EIO, "writing '%s'",
					r->kept[which]);
		r->fd = -1;
	}
	if (rc == 0)
		rc = ana_hd_digest_end(r->dg[which], err);
	return rc;
}

/* What runs between the warm-up and the first measured batch. */
struct phase {
	struct retained *ret;		/* --retained, or NULL */
	struct probe_malloc *pm;	/* --malloc-sites, or NULL */
	bool window;			/* malloc window open */
};

static int
before_measure(struct probe_session *s, void *arg, struct lp_err *err)
{
	struct phase *ph = arg;
	int rc;

	if (ph->ret && (rc = retained_dump(s, ph->ret, 0, err)) < 0)
		return rc;
	if (ph->pm) {
		rc = probe_malloc_window_begin(ph->pm, err);
		if (rc < 0)
			return rc;
		ph->window = true;
	}
	return 0;
}

/* Control batches are the target's own drift: not the snippet's sites. */
static void
around_control(void *arg, bool before)
{
	struct phase *ph = arg;

	if (!ph->window)
		return;
	if (before)
		probe_malloc_pause(ph->pm);
	else
		probe_malloc_resume(ph->pm);
}

/* Objects the helper program itself allocated (its channel directory is
 * /tmp/leakprobe.PID.XXXXXX/helper.rb): not the user's, not listed. */
static bool
own_row(const struct ana_hd_row *r)
{
	const char *f = r->file;
	size_t n = f ? strlen(f) : 0;

	return n > 10 && !strcmp(f + n - 10, "/helper.rb") &&
	       strstr(f, "/leakprobe.");
}

/* Objects of the diff that are not the helper's own. */
static uint64_t
user_count(const struct ana_hd_diff *d)
{
	uint64_t n = 0;

	for (size_t i = 0; i < d->nrows; i++)
		if (!own_row(&d->rows[i]))
			n += d->rows[i].count;
	return n;
}

static void
print_retained(const struct ana_hd_diff *d, uint64_t top,
	       const struct retained *ret)
{
	char b[32];

	lp_human_bytes((double)d->total_bytes, 0, b, sizeof(b));
	printf("retained, born in the measured batches and still alive at a "
	       "later dump: %" PRIu64 " objects, %s (%" PRIu64 " alive "
	       "right after the run and gone by then were dropped: other "
	       "threads' objects in flight)\n", d->total_count, b,
	       ret->dropped);
	for (size_t i = 0, shown = 0; i < d->nrows && shown < top; i++) {
		const struct ana_hd_row *r = &d->rows[i];

		if (own_row(r))
			continue;
		shown++;
		lp_human_bytes((double)r->bytes, 0, b, sizeof(b));
		printf("  %8" PRIu64 " %-10s %10s  %s:%" PRId64 "%s%s%s\n",
		       r->count, r->cls && strcmp(r->cls, "(unknown)") ? r->cls :
		       r->type ? r->type : "?", b, r->file ? r->file : "?",
		       r->line, r->method && *r->method ? " (in " : "",
		       r->method && *r->method ? r->method : "",
		       r->method && *r->method ? ")" : "");
	}
	if (d->method != ANA_HD_SITES)
		printf("  (no allocation sites: allocation tracing did not "
		       "record any)\n");
}

static json_t *
retained_json(const struct ana_hd_diff *d, uint64_t top,
	      const struct retained *r)
{
	json_t *rows = json_array();

	for (size_t i = 0, shown = 0; i < d->nrows && shown < top; i++) {
		const struct ana_hd_row *w = &d->rows[i];

		if (own_row(w))
			continue;
		shown++;
		json_array_append_new(rows, json_pack(
			"{s:s?,s:I,s:s?,s:s?,s:s?,s:I,s:I}",
			"file", w->file, "line", (json_int_t)w->line,
			"method", w->method, "type", w->type, "class", w->cls,
			"count", (json_int_t)w->count,
			"bytes", (json_int_t)w->bytes));
	}
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:o,s:s?,s:s?,s:s?}",
			 "method", d->method == ANA_HD_SITES ?
			 "generations and allocation sites, alive at a later "
			 "dump" : "classes",
			 "after_generation", (json_int_t)d->after_gen,
			 "objects", (json_int_t)d->total_count,
			 "bytes", (json_int_t)d->total_bytes,
			 "dropped", (json_int_t)r->dropped, "sites", rows,
			 "dump_before", r->kept[0][0] ? r->kept[0] : NULL,
			 "dump_after", r->kept[1][0] ? r->kept[1] : NULL,
			 "dump_later", r->kept[2][0] ? r->kept[2] : NULL);
}

struct print_ctx {
	const struct attach_opts *o;
	struct cli_show *sh;
	uint64_t t0;
	int warm;		/* warm-up batches seen */
};

static void
on_batch(const struct probe_run *run, size_t i, void *arg)
{
	struct print_ctx *pc = arg;
	const struct ana_batch *b = &run->b[i];
	char rss[32], grown[32];

	if (pc->sh->table) {
		cli_show_legend(pc->sh, cli_batch_legend);
		if (b->warmup || b->control)
			cli_print_batch(NULL, b, b->calls, b->calls);
		else
			cli_print_batch(NULL, b, run->done[0],
					pc->o->m.times);
		return;
	}
	lp_human_bytes((double)b->rss, 0, rss, sizeof(rss));
	lp_human_bytes((double)b->rss - (double)run->b[0].rss, 1, grown,
		       sizeof(grown));
	if (b->warmup)
		pc->warm++;
	if (b->warmup && pc->warm <= (int)pc->o->m.warmup)
		cli_progress(pc->sh, "attach %d: warm-up batch %d of %" PRIu64
			     ", rss %s, %.1f s", (int)pc->o->pid, pc->warm,
			     pc->o->m.warmup, rss,
			     (lp_mono_ns() - pc->t0) / 1e9);
	else
		cli_progress(pc->sh, "attach %d: %" PRIu64 " of %" PRIu64
			     " calls, rss %s (%s), %.1f s", (int)pc->o->pid,
			     run->done[0], pc->o->m.times, rss, grown,
			     (lp_mono_ns() - pc->t0) / 1e9);
}

int
cmd_attach(int argc, char **argv)
{
	struct attach_opts o;
	struct probe_snippet snip;
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_run run;
	struct retained ret;
	struct phase ph = { NULL, NULL, false };
	struct probe_malloc *pm = NULL;
	struct probe_malloc_report *mr = NULL, mshown;
	struct ana_hd_diff hdiff;
	bool have_diff = false, tracing = false;
	struct ana_batch *b = NULL;
	struct ana_verdict v;
	struct lp_err err;
	size_t nb = 0;
	bool stopped = false;
	json_t *doc = NULL, *jb = NULL;
	int rc, idx0 = 0;
	char comm[32] = "", api[32] = "", libruby[256] = "";
	double stop_ms = 0, held_ms = 0, dirty_ms = 0, unmap_ms = 0;
	double back_ms = 0;
	unsigned stops = 0;
	double start_ms = 0;
	struct cli_show sh;

	memset(&o, 0, sizeof(o));
	lp_err_clear(&err);
	memset(&run, 0, sizeof(run));
	memset(&ret, 0, sizeof(ret));
	memset(&hdiff, 0, sizeof(hdiff));
	rc = parse_opts(argc, argv, &o);
	if (rc != EXIT_OK) {
		free(o.code);
		return rc < 0 ? EXIT_OK : rc;
	}
	cli_install_signals();
	cli_show_init(&sh, o.m.quiet || o.m.json);

	snip.code = o.code;
	snip.len = o.code_len;
	/* BPF first: when it cannot be used, nothing was injected yet. */
	if (o.malloc_sites) {
		struct probe_malloc_opts mopt;

		memset(&mopt, 0, sizeof(mopt));
		mopt.stack_bytes = (uint32_t)o.stack_bytes;
		mopt.sample = (uint32_t)o.sample;
		pm = probe_malloc_start(o.pid, &mopt, &err);
		if (!pm) {
			rc = cli_report("attach", &err);
			goto out;
		}
	}
	s = cli_session_start("attach", o.pid, &snip, 1, o.m.timeout,
			      o.retained, &hello, &rc);
	if (!s)
		goto out;
	snprintf(comm, sizeof(comm), "%s", probe_session_info(s)->comm);
	snprintf(api, sizeof(api), "%s", probe_session_ruby(s)->api);
	snprintf(libruby, sizeof(libruby), "%s",
		 probe_session_ruby(s)->libruby);
	stop_ms = probe_session_stop_ns(s) / 1e6;
	held_ms = probe_session_held_ns(s) / 1e6;
	dirty_ms = probe_session_dirty_ns(s) / 1e6;
	unmap_ms = probe_session_unmap_stop_ns(s) / 1e6;
	start_ms = probe_session_start_ns(s) / 1e6;
	back_ms = probe_session_back_ns(s) / 1e6;
	stops = probe_session_stops(s);
	if (hello.compile_errors) {
		cli_print_raised("attach", &hello.err, "the snippet");
		rc = EXIT_SNIPPET;
		goto out;
	}
	if (!o.m.quiet && !o.m.json) {
		printf("attached to %d (%s): %s\n", (int)o.pid, comm,
		       hello.ruby);
		printf("job via %s; main thread stopped %.3f ms (+%.3f ms "
		       "to unmap); helper started after %.1f ms\n", api,
		       stop_ms, unmap_ms, start_ms);
		fflush(stdout);
	}
	ret.o = &o;
	ret.fd = -1;
	ph.ret = o.retained ? &ret : NULL;
	ph.pm = pm;
	if (o.retained &&
	    (rc = probe_session_trace(s, true, false, NULL, &err)) < 0) {
		rc = cli_report("attach", &err);
		goto out;
	}
	tracing = o.retained;
	{
		struct probe_arm arm = { &idx0, 1 };
		struct probe_measure_opts mo = {
			.times = o.m.times, .batch = o.m.batch,
			.warmup = o.m.warmup, .gc = o.m.gc,
			.control = o.m.control, .max_growth = o.m.max_growth,
			/*
			 * Batches, controls too, run in a thread of their
			 * own: its malloc arena holds none of the garbage
			 * the helper thread made starting up (compiling its
			 * program frees ~160 KiB there), which a small
			 * native leak would fill first, unseen by rss.
			 */
			.lanes = true, .lane_controls = true,
			.before_measure = o.retained || pm ? before_measure :
					  NULL,
			.before_arg = &ph,
			.around_control = pm ? around_control : NULL,
			.control_arg = &ph,
		};
		struct print_ctx pc = { &o, &sh, lp_mono_ns(), 0 };

		rc = probe_measure(s, &arm, 1, &mo, &hello, &run,
				   sh.table || sh.progress ? on_batch : NULL,
				   &pc, &err);
		if (rc == 0 && !run.raised)
			cli_progress(&sh, "attach %d: %" PRIu64 " calls done; "
				     "computing the verdict", (int)o.pid,
				     run.done[0]);
	}
	if (ph.window) {
		int mrc = probe_malloc_window_end(pm, rc < 0 ? NULL : &err);

		if (mrc == 0)
			mrc = probe_malloc_report(pm, o.output ? SIZE_MAX :
						  o.top, &mr,
						  rc < 0 ? NULL : &err);
		if (mrc < 0 && rc == 0)
			rc = mrc;
		ph.window = false;
	}
	if (rc == 0 && o.retained && !run.raised && ret.dg[0]) {
		/*
		 * The three-dump rule: an object born in the measured
		 * batches counts only when it is still alive at a later
		 * dump, after one more GC.  Other threads' objects in
		 * flight at the first dump (and anything else short-lived)
		 * are gone by then; those born after it are outside the
		 * window.
		 */
		struct probe_result res;
		struct ana_hd_diff two;

		rc = retained_dump(s, &ret, 1, &err);
		/*
		 * dump_all holds the GVL: other threads stood still during
		 * it and are where they were.  Give them a moment (the
		 * helper waits for a command without the GVL) to finish
		 * what they had in flight, then one more full GC.
		 */
		if (rc == 0) {
			struct timespec ts = { 0, LATER_GAP_NS };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
			       !lp_stop_signal)
				;
			rc = probe_session_run(s, NULL, 0, 0, true, 0, &res,
					       &err);
		}
		if (rc == 0)
			rc = retained_dump(s, &ret, 2, &err);
		if (rc == 0)
			rc = ana_hd_diff_compute(ret.dg, 3, ANA_HD_BY_SITE,
						 &hdiff, &err);
		have_diff = rc == 0;
		if (have_diff && ana_hd_diff_compute(ret.dg, 2, ANA_HD_BY_SITE,
						     &two, NULL) == 0) {
			uint64_t a = user_count(&two), l = user_count(&hdiff);

			ret.dropped = a > l ? a - l : 0;
			ana_hd_diff_release(&two);
		}
	}
	/* never leave allocation tracing on behind the user's back */
	if (tracing && probe_session_trace(s, false, false, NULL,
					   rc < 0 ? NULL : &err) < 0 && rc == 0)
		rc = -1;
	tracing = false;
	probe_session_end(s);
	s = NULL;
	if (rc < 0) {
		rc = cli_report("attach", &err);
		goto out;
	}
	if (run.raised) {
		cli_print_raised("attach", &run.err, "the snippet");
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
	if (mr && o.output) {
		struct cli_prof cp;
		int wrc;

		cli_prof_malloc(&cp, mr);
		wrc = cli_prof_write("attach", &cp.p, o.fmt, o.output);
		cli_prof_release(&cp);
		if (wrc != EXIT_OK) {
			rc = wrc;
			goto out;
		}
	}
	if (mr) {
		/* the sites past --top were for the profile only */
		mshown = *mr;
		if (mshown.nsites > o.top)
			mshown.nsites = o.top;
	}
	b = probe_run_arm(&run, 0, &nb);
	ana_verdict_compute_floor(b, nb, cli_leak_floor(&o.m), &v);
	cli_progress_clear(&sh);
	rc = cli_verdict_exit(&v, o.m.fail_set, o.m.fail_on_growth);
	if (o.m.json) {
		jb = json_array();
		for (size_t i = 0; i < nb; i++)
			json_array_append_new(jb, cli_batch_json(&b[i]));
		doc = json_pack("{s:{s:i,s:s,s:s,s:s,s:s},"
				"s:{s:I,s:I,s:I,s:b,s:b},s:o,s:o,s:b,s:o,"
				"s:{s:f,s:f,s:f,s:f,s:f}}",
				"target", "pid", (int)o.pid,
				"command", comm, "ruby", hello.ruby,
				"api", api, "libruby", libruby,
				"options", "times", (json_int_t)o.m.times,
				"batch", (json_int_t)o.m.batch,
				"warmup", (json_int_t)o.m.warmup, "gc", o.m.gc,
				"control", o.m.control,
				"batches", jb,
				"verdict", cli_verdict_json(&v),
				"stopped_early", stopped,
				"retained", have_diff ? retained_json(&hdiff,
						o.top, &ret) : json_null(),
				"timing", "stop_ms", stop_ms,
				"held_ms", held_ms, "kill_window_ms", dirty_ms,
				"unmap_stop_ms", unmap_ms,
				"start_ms", start_ms);
		if (doc) {
			json_t *tm = json_object_get(doc, "timing");

			json_object_set_new(tm, "back_ms",
					    json_real(back_ms));
			json_object_set_new(tm, "stops",
					    json_integer(stops));
		}
		if (doc && mr)
			json_object_set_new(doc, "malloc_sites",
					    cli_malloc_sites_json(&mshown,
						v.measured_calls));
		if (doc) {
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
	} else {
		printf("%s\n", v.summary);
		if (have_diff)
			print_retained(&hdiff, o.top, &ret);
		if (mr)
			cli_print_malloc_sites(stdout, &mshown,
					       v.measured_calls);
	}
	rc = cli_finish_stdout("attach", rc);
out:
	cli_progress_clear(&sh);
	if (doc)
		json_decref(doc);
	if (s && tracing)
		probe_session_trace(s, false, false, NULL, NULL);
	probe_session_end(s);
	if (have_diff)
		ana_hd_diff_release(&hdiff);
	probe_malloc_report_free(mr);
	probe_malloc_stop(pm);
	ana_hd_digest_free(ret.dg[0]);
	ana_hd_digest_free(ret.dg[1]);
	ana_hd_digest_free(ret.dg[2]);
	probe_run_release(&run);
	free(b);
	free(o.code);
	return rc;
}
