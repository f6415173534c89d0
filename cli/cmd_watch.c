/*
 * leakprobe watch: sample the memory of processes at an interval and write
 * one row per process per sample (CSV or JSON lines).
 *
 * Durability: every row is formatted in full and written with a single
 * write(2) on an O_APPEND descriptor, so a crash or kill of leakprobe loses
 * at most the row being written, and the rows before it are in the page
 * cache (they survive leakprobe dying, not the machine losing power).  We
 * do not fdatasync each row: measured on ext4 (virtio SSD) a row costs
 * 1 us to write and 140 us to write and flush, and a spinning disk takes
 * ms; we fdatasync once at the end.  A failed write (disk full) that
 * wrote part of a row is truncated away, so the file stays whole rows.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "cli/measure.h"
#include "cli/metrics.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/probes.h"

#define CMD		"watch"
#define ROW_MAX		1024
#define MIN_INTERVAL_NS	1000000ull		/* 1 ms */
#define MAX_INTERVAL_NS	(86400ull * 1000000000ull)	/* 1 day */
#define SUMMARY_TOP	10
#define GC_START_TIMEOUT 30.0	/* s: for the helper thread's hello */
#define RATE_POINTS	32	/* growth-rate history kept per process */
#define RATE_WINDOW_NS	(300ull * 1000000000ull)	/* default: 5 min */

enum wstate {
	W_LIVE,		/* sampled every sweep */
	W_DONE,		/* exited or became unreadable: reported once */
	W_IGNORED,	/* --all: kernel thread, ourselves, unreadable */
};

struct wproc {
	pid_t pid;
	uint64_t starttime;	/* with pid: which process this is */
	char comm[32];
	enum wstate st;
	bool named;		/* given on the command line */
	bool kthread;
	bool is_new;		/* --all: appeared after the first sweep */
	bool exited;
	size_t nsamples;
	struct ana_sample first, last;
	struct ana_smaps snap[2];	/* --smaps-diff: alternate buffers */
	int cur;
	/* --gc-stat */
	struct probe_session *sess;	/* the GC.stat reporter, or NULL */
	struct probe_gc gc;		/* newest report (-1: not known) */
	bool gc_lost;			/* the reporter ended early */
	bool gc_lost_told;
	/* --openmetrics/--listen: heap+arena+anon over the rate window,
	 * oldest first, about window/RATE_POINTS apart */
	struct { uint64_t ns, v; } pts[RATE_POINTS];
	size_t npts;
	uint64_t now_ns, now_v;		/* newest sample (monotonic) */
};

struct watch {
	/* options */
	bool all, smaps_diff, quiet, gc_stat;
	uint64_t interval_ns, duration_ns, count;
	enum ana_format fmt;
	const char *output;
	const char *om_file;		/* --openmetrics */
	const char *listen;		/* --listen */
	uint64_t rate_window_ns;
	pid_t *named;
	size_t nnamed;

	/* output */
	int fd;
	bool regular;		/* fd is a regular file: torn rows can be
				 * truncated away */
	FILE *diff_fp;		/* --smaps-diff goes here */
	bool progress, progress_shown;
	bool no_rows;		/* metrics only: no -o, rows not wanted */
	struct cli_httpd *httpd;
	struct cli_mbuf mtext, mom;	/* exposition, rendered per sweep */
	struct cli_mproc *mprocs;
	size_t mprocs_cap;

	/* processes, sorted by pid */
	struct wproc **procs;
	size_t nprocs, procs_cap;
	struct ana_growth_summary *gone;	/* --all: no longer listed */
	size_t ngone, gone_cap;
	size_t noaccess;
	pid_t self;
	pid_t *pids;
	size_t pids_cap;
	struct ana_smaps scratch;
	struct probe_fast *fast;

	size_t sweeps, rows;
	uint64_t first_ns, last_ns;	/* wall clock of first/last sweep */
	struct lp_err err;		/* output error: ends the watch */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: leakprobe watch PID... | --all [--interval SEC] [--count N |\n"
"                 --duration SEC] [-o FILE] [--format csv|jsonl]\n"
"                 [--smaps-diff] [--gc-stat] [--openmetrics FILE]\n"
"                 [--listen ADDR:PORT] [--rate-window SEC]\n"
"\n"
"Sample the memory of processes and write one row per process per sample:\n"
"time (ISO-8601, ms, UTC offset), pid, comm, rss, pss, uss, heap_rss,\n"
"heap_size ([heap]), arena_rss (other glibc malloc arenas), anon_rss (other\n"
"anonymous memory), swap (all bytes), event (exit, noaccess, new or empty).\n"
"\n"
"options:\n"
"  -a, --all             every process on the host (not kernel threads);\n"
"                        picks up new processes, marks exits\n"
"  -i, --interval SEC    time between samples (default 1; 0.5, 250ms, 2m;\n"
"                        1 ms to 1 day); the schedule does not drift\n"
"  -n, --count N         stop after N samples\n"
"  -d, --duration SEC    stop after SEC (samples at 0, SEC/interval...)\n"
"  -o, --output FILE     write to FILE, appending when it already holds\n"
"                        rows of the same format (else exit 2)\n"
"  -f, --format FMT      csv (default; header line, gnuplot reads it) or\n"
"                        jsonl; default jsonl when FILE ends in .jsonl,\n"
"                        .ndjson or .json\n"
"      --smaps-diff      print each sample's changed mappings: to stderr\n"
"                        when rows go to stdout, else to stdout\n"
"      --gc-stat         Ruby PIDs only (not --all): add GC.stat columns\n"
"                        live_slots heap_pages malloc_increase gc_count\n"
"                        major_gc_count allocated_objects freed_objects,\n"
"                        reported every interval by a helper thread in\n"
"                        each target (it ends when leakprobe does)\n"
"      --openmetrics FILE  after every sample, replace FILE (temporary\n"
"                        file + rename) with Prometheus metrics for\n"
"                        node_exporter's textfile collector (name it\n"
"                        *.prom); rows are then written only with -o\n"
"      --listen ADDR:PORT  serve the same metrics over HTTP on /metrics\n"
"                        (OpenMetrics when the scraper asks for it,\n"
"                        else text 0.0.4); 127.0.0.1:9464, :9464 (all\n"
"                        addresses), [::1]:9464; port 0 picks one; the\n"
"                        address is printed on stderr\n"
"      --rate-window SEC  span of leakprobe_heap_growth_bytes_per_second\n"
"                        (default 5m); published once half of it is\n"
"                        covered\n"
"  -h, --help            this help\n"
"\n"
"Without --count or --duration, watch runs until every PID has exited\n"
"(then exits 0) or until SIGINT/SIGTERM, and prints a summary (first ->\n"
"last sample, growth per hour) on stderr.  A process that exits gets one\n"
"\"exit\" row (and, for a PID given, one stderr line); the others go on.\n"
"PIDs are read with /proc/PID/smaps; --all reads smaps_rollup, maps and\n"
"pagemap instead (cheaper), but smaps for a process with over 2 GiB of\n"
"writable anonymous address space (a sanitizer's shadow, say: pagemap\n"
"costs 8 bytes per page mapped).  Each row is one write(2) with O_APPEND: a\n"
"kill of leakprobe loses at most that row; the file is fdatasync'ed at\n"
"the end, not per row.\n"
"\n"
"Metrics (labels pid, comm, starttime: a reused pid is a new series):\n"
"leakprobe_{rss,pss,uss,swap,heap_rss,heap_size,arena_rss,anon_rss}_bytes,\n"
"leakprobe_heap_growth_bytes_per_second (heap+arena+anon) and with\n"
"--gc-stat leakprobe_ruby_*; a process that exits leaves the output.\n"
"\n"
"exit status: 0 done, 2 usage, 3 no such process, permission denied or\n"
"(--gc-stat) not Ruby, 4 --gc-stat helper did not start, 6 output file\n"
"error (disk full, not writable) or --listen address not usable.\n");
}

/* Clear the progress line before anything else goes to stderr. */
static void
progress_clear(struct watch *w)
{
	if (w->progress_shown) {
		fputs("\r\033[K", stderr);
		w->progress_shown = false;
	}
}

static void
progress_show(struct watch *w)
{
	uint64_t rss = 0;
	size_t live = 0;
	char hb[32], ts[40];

	if (!w->progress)
		return;
	for (size_t i = 0; i < w->nprocs; i++)
		if (w->procs[i]->st == W_LIVE) {
			live++;
			rss += w->procs[i]->last.rss;
		}
	lp_human_bytes((double)rss, 0, hb, sizeof(hb));
	lp_iso8601(w->last_ns, ts, sizeof(ts));
	fprintf(stderr, "\r\033[Kwatch: %.12s sample %zu, %zu process%s, "
		"rss %s (Ctrl-C stops)", ts + 11, w->sweeps, live,
		live == 1 ? "" : "es", hb);
	fflush(stderr);
	w->progress_shown = true;
}

/* ---- output -------------------------------------------------------- */

/*
 * Write one whole row.  Returns 0, 1 when interrupted before writing
 * anything (the row is dropped, the watch stops), or -LP_EIO with w->err.
 */
static int
write_row(struct watch *w, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(w->fd, buf + done, len - done);
		int e;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			/* A stop signal while blocked on a slow reader: drop
			 * the row unless part of it went out already. */
			if (lp_stop_signal && done == 0)
				return 1;
			continue;
		}
		e = n < 0 ? errno : ENOSPC;
		if (done && w->regular) {
			/* O_APPEND: the offset is the end of our part-row. */
			off_t end = lseek(w->fd, 0, SEEK_CUR);

			if (end >= (off_t)done &&
			    ftruncate(w->fd, end - (off_t)done) == 0)
				done = 0;
		}
		errno = e;
		if (w->output)
			return lp_err_sys(&w->err, LP_EIO,
					  "writing to '%s'%s", w->output,
					  done ? " (last row torn)" : "");
		return lp_err_sys(&w->err, LP_EIO,
				  "writing to standard output");
	}
	return 0;
}

static int
emit(struct watch *w, const struct ana_sample *s)
{
	char buf[ROW_MAX];
	int n, rc;

	if (w->err.code)
		return -w->err.code;
	if (w->no_rows)
		return 0;
	n = ana_sample_format(s, w->fmt, w->gc_stat, buf, sizeof(buf));
	if (n < 0)
		return lp_err_set(&w->err, LP_EINVAL,
				  "internal: row longer than %d bytes",
				  ROW_MAX);
	rc = write_row(w, buf, (size_t)n);
	if (rc == 0)
		w->rows++;
	return rc;
}

/*
 * Check that an existing file (rfd, size bytes) holds rows we may append
 * to: the same format and, for CSV, the same columns (with or without
 * GC.stat).  JSON lines name their fields, so rows with and without GC
 * fields mix.  *newline: the last row is torn (no newline).  Returns 0
 * or -LP_EINVAL / -LP_EIO with w->err and *exit_code.
 */
static int
check_existing(struct watch *w, int rfd, off_t size, bool *newline,
	       int *exit_code)
{
	char buf[4096];
	enum ana_format have;
	bool have_gc;
	ssize_t n;

	*newline = false;
	n = pread(rfd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		*exit_code = EXIT_IO;
		return lp_err_sys(&w->err, LP_EIO, "read '%s'", w->output);
	}
	if (n == 0)
		return 0;
	*exit_code = EXIT_USAGE;
	{
		char *nl = memchr(buf, '\n', (size_t)n);
		size_t len = nl ? (size_t)(nl - buf) : (size_t)n;

		if (ana_series_detect(buf, len, &have, &have_gc) < 0)
			return lp_err_set(&w->err, LP_EINVAL,
				"'%s' exists and is not a leakprobe watch "
				"file; give another file name", w->output);
	}
	if (have != w->fmt) {
		const char *hn = have == ANA_FMT_CSV ? "csv" : "jsonl";

		return lp_err_set(&w->err, LP_EINVAL,
			"'%s' holds %s rows, not %s; use --format %s "
			"or another file", w->output, hn,
			w->fmt == ANA_FMT_CSV ? "csv" : "jsonl", hn);
	}
	if (have == ANA_FMT_CSV && have_gc != w->gc_stat)
		return lp_err_set(&w->err, LP_EINVAL,
			"'%s' holds rows %s GC.stat columns; %s --gc-stat "
			"or use another file", w->output,
			have_gc ? "with" : "without",
			have_gc ? "add" : "drop");
	/* A torn last row (crash mid-write) stays one bad line. */
	if (pread(rfd, buf, 1, size - 1) == 1 && buf[0] != '\n')
		*newline = true;
	return 0;
}

/*
 * Before anything is started in a target: refuse an existing output we
 * would not append to (open_output checks it again).
 */
static int
precheck_output(struct watch *w, int *exit_code)
{
	struct stat st;
	bool newline;
	int rfd, rc;

	if (!w->output)
		return 0;
	rfd = open(w->output, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (rfd < 0)
		return 0;	/* created (or refused) by open_output */
	rc = 0;
	if (fstat(rfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		rc = check_existing(w, rfd, st.st_size, &newline, exit_code);
	close(rfd);
	return rc;
}

/*
 * Open the output.  An existing non-empty regular file must hold rows of
 * the same format: we append to it and never write a second header.
 */
static int
open_output(struct watch *w, int *exit_code)
{
	const char *hdr = ana_csv_header(w->gc_stat);
	struct stat st;
	bool header = w->fmt == ANA_FMT_CSV, newline = false;
	int rfd, rc;

	*exit_code = EXIT_IO;
	if (!w->output) {
		w->fd = STDOUT_FILENO;
		w->regular = fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
		goto header;
	}
	w->fd = open(w->output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		     0666);
	if (w->fd < 0)
		return lp_err_sys(&w->err, LP_EIO, "cannot open output '%s'",
				  w->output);
	if (fstat(w->fd, &st) < 0)
		return lp_err_sys(&w->err, LP_EIO, "stat '%s'", w->output);
	w->regular = S_ISREG(st.st_mode);
	if (!w->regular || st.st_size == 0)
		goto header;

	rfd = open(w->output, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return lp_err_sys(&w->err, LP_EIO, "cannot read '%s' to check "
				  "its format before appending", w->output);
	rc = check_existing(w, rfd, st.st_size, &newline, exit_code);
	close(rfd);
	if (rc < 0)
		return rc;
	*exit_code = EXIT_IO;
	header = false;
	if (newline && write_row(w, "\n", 1) < 0)
		return -LP_EIO;
header:
	if (header && write_row(w, hdr, strlen(hdr)) < 0)
		return -LP_EIO;
	return 0;
}

/* ---- processes ------------------------------------------------------ */

/* No GC.stat value known. */
static void
gc_unknown(struct probe_gc *g)
{
	g->live_slots = g->pages = g->allocated = g->freed = -1;
	g->malloc_increase = g->count = g->major = -1;
}

/* Put the known GC.stat values into a row. */
static void
gc_to_sample(const struct probe_gc *g, struct ana_sample *s)
{
	/* In the order of the GC metrics (ANA_NMETRICS and after). */
	const int64_t v[ANA_NGCMETRICS] = {
		g->live_slots, g->pages, g->malloc_increase, g->count,
		g->major, g->allocated, g->freed,
	};

	for (int i = 0; i < ANA_NGCMETRICS; i++)
		if (v[i] >= 0)
			ana_sample_set_metric(s, ANA_NMETRICS + i,
					      (uint64_t)v[i]);
}

/*
 * Stop the GC.stat reporter: the helper thread sees EPIPE at its next
 * report (within one interval) and ends; nothing stays in the target.
 */
static void
gc_end(struct wproc *p)
{
	probe_session_end(p->sess);
	p->sess = NULL;
	gc_unknown(&p->gc);
}

static struct wproc *
wproc_new(pid_t pid)
{
	struct wproc *p = xcalloc(1, sizeof(*p));

	p->pid = pid;
	gc_unknown(&p->gc);
	ana_smaps_init(&p->snap[0]);
	ana_smaps_init(&p->snap[1]);
	return p;
}

static void
wproc_free(struct wproc *p)
{
	if (!p)
		return;
	gc_end(p);
	ana_smaps_release(&p->snap[0]);
	ana_smaps_release(&p->snap[1]);
	free(p);
}

static void
keep_summary(struct watch *w, const struct wproc *p)
{
	if (!p->nsamples)
		return;
	w->gone = xgrow(w->gone, &w->gone_cap, w->ngone + 1,
			sizeof(*w->gone));
	ana_growth_from(&p->first, &p->last, p->exited, &w->gone[w->ngone++]);
}

/* Forget a process (its pid now names another one) and start over. */
static void
wproc_reset(struct watch *w, struct wproc *p)
{
	struct ana_smaps s0 = p->snap[0], s1 = p->snap[1];
	pid_t pid = p->pid;

	keep_summary(w, p);
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->snap[0] = s0;
	p->snap[1] = s1;
	p->snap[0].nmaps = p->snap[1].nmaps = 0;
	gc_unknown(&p->gc);
}

static void
event_row(struct watch *w, struct wproc *p, const char *event)
{
	struct ana_sample s;

	memset(&s, 0, sizeof(s));
	s.wall_ns = lp_wall_ns();
	s.pid = p->pid;
	memcpy(s.comm, p->comm, sizeof(s.comm));
	s.event = event;
	emit(w, &s);
}

static void
mark_exit(struct watch *w, struct wproc *p)
{
	if (p->st != W_LIVE)
		return;
	gc_end(p);
	p->st = W_DONE;
	p->exited = true;
	event_row(w, p, "exit");
	if (p->named && !w->quiet) {
		progress_clear(w);
		fprintf(stderr, "leakprobe: watch: pid %d (%s) exited\n",
			(int)p->pid, p->comm);
	}
}

static void
mark_noaccess(struct watch *w, struct wproc *p)
{
	if (p->nsamples || p->named)
		event_row(w, p, "noaccess");
	if (p->named) {
		progress_clear(w);
		fprintf(stderr, "leakprobe: watch: pid %d (%s) is no longer "
			"readable (permission denied); dropping it\n",
			(int)p->pid, p->comm);
		gc_end(p);
		p->st = W_DONE;
	} else {
		w->noaccess++;
		p->st = W_IGNORED;
	}
}

/*
 * Take stock of a process we have not seen before (or whose pid was
 * reused).
 */
static void
identify(struct watch *w, struct wproc *p, const struct probe_proc *pp)
{
	p->starttime = pp->starttime;
	memcpy(p->comm, pp->comm, sizeof(p->comm));
	p->kthread = probe_is_kthread(pp);
	if (p->kthread || p->pid == w->self)
		p->st = W_IGNORED;
	else if (pp->state == 'Z' || pp->state == 'X')
		p->st = W_DONE;
	else
		p->st = W_LIVE;
	p->is_new = w->sweeps > 0;
}

static void
print_diff(struct watch *w, struct wproc *p, const struct ana_sample *s,
	   struct ana_smaps *old, struct ana_smaps *new)
{
	struct ana_map_change *c;
	char ts[40];
	size_t n;

	n = ana_smaps_diff(old, new, 1, &c);
	if (n) {
		if (w->diff_fp == stderr)
			progress_clear(w);
		lp_iso8601(s->wall_ns, ts, sizeof(ts));
		fprintf(w->diff_fp, "%s pid %d (%s): %zu mapping%s changed\n",
			ts, (int)p->pid, p->comm, n, n == 1 ? "" : "s");
		ana_smaps_diff_print(w->diff_fp, c, n);
		fflush(w->diff_fp);
	}
	free(c);
}

/*
 * --gc-stat: take the newest GC.stat report, if one came since the last
 * sample (else the previous values stay).  When the reporter is gone
 * while the process still looks alive, it may be exiting: the next
 * sample tells, and only a process still alive then gets a warning.
 */
static void
gc_poll(struct watch *w, struct wproc *p)
{
	struct lp_err e = { 0 };

	if (p->gc_lost && !p->gc_lost_told) {
		p->gc_lost_told = true;
		if (!w->quiet) {
			progress_clear(w);
			fprintf(stderr, "leakprobe: watch: pid %d (%s): the "
				"GC.stat reporter thread ended; its GC columns "
				"stay empty from now on\n", (int)p->pid,
				p->comm);
		}
	}
	if (!p->sess)
		return;
	if (probe_session_gcstat_poll(p->sess, &p->gc, &e) < 0) {
		lp_debug("watch: pid %d: %s", (int)p->pid, e.msg);
		gc_end(p);
		p->gc_lost = true;
	}
}

/*
 * Keep heap+arena+anon at about RATE_POINTS instants over the rate
 * window (older ones dropped), and the newest sample.
 */
static void
rate_add(struct watch *w, struct wproc *p, uint64_t now, uint64_t v)
{
	uint64_t step = w->rate_window_ns / RATE_POINTS;

	while (p->npts && now - p->pts[0].ns > w->rate_window_ns) {
		memmove(&p->pts[0], &p->pts[1],
			(p->npts - 1) * sizeof(p->pts[0]));
		p->npts--;
	}
	if (!p->npts || now - p->pts[p->npts - 1].ns >= step) {
		if (p->npts == RATE_POINTS) {
			memmove(&p->pts[0], &p->pts[1],
				(p->npts - 1) * sizeof(p->pts[0]));
			p->npts--;
		}
		p->pts[p->npts].ns = now;
		p->pts[p->npts++].v = v;
	}
	p->now_ns = now;
	p->now_v = v;
}

static void
sample_proc(struct watch *w, struct wproc *p)
{
	struct lp_err e = { 0 };
	struct probe_proc pp;
	struct ana_totals tot;
	struct ana_sample s;
	struct ana_smaps *snap = NULL;
	int rc;

	rc = probe_proc_stat(p->pid, &pp, NULL);
	if (rc == 0 && pp.starttime != p->starttime) {
		/* The pid now names another process: ours exited. */
		mark_exit(w, p);
		if (!w->all)
			return;
		wproc_reset(w, p);
		identify(w, p, &pp);
		if (p->st != W_LIVE)
			return;
	} else if (rc < 0 || pp.state == 'Z' || pp.state == 'X') {
		mark_exit(w, p);
		return;
	} else {
		memcpy(p->comm, pp.comm, sizeof(p->comm));
	}

	if (w->gc_stat)
		gc_poll(w, p);
	memset(&s, 0, sizeof(s));
	s.wall_ns = lp_wall_ns();
	s.pid = p->pid;
	memcpy(s.comm, p->comm, sizeof(s.comm));
	if (w->all && !w->smaps_diff) {
		rc = probe_sample_fast(w->fast, p->pid, &tot, &e);
	} else {
		snap = w->smaps_diff ? &p->snap[p->cur] : &w->scratch;
		rc = probe_smaps_read(p->pid, false, snap, &e);
		if (rc == 0)
			tot = snap->totals;
	}
	if (rc == -LP_ENOPROC) {
		mark_exit(w, p);
		return;
	}
	if (rc == -LP_EPERM) {
		mark_noaccess(w, p);
		return;
	}
	if (rc < 0) {
		/* Unexpected text from the kernel: skip this sample only. */
		lp_debug("watch: pid %d: %s", (int)p->pid, e.msg);
		return;
	}
	ana_sample_from_totals(&s, &tot);
	gc_to_sample(&p->gc, &s);
	if (p->is_new) {
		s.event = "new";
		p->is_new = false;
	}
	if (emit(w, &s) != 0)
		return;
	s.event = NULL;
	if (w->om_file || w->listen)
		rate_add(w, p, lp_mono_ns(),
			 s.heap_rss + s.arena_rss + s.anon_rss);
	if (!p->nsamples)
		p->first = s;
	p->last = s;
	p->nsamples++;
	if (w->smaps_diff) {
		if (p->nsamples > 1)
			print_diff(w, p, &s, &p->snap[!p->cur], snap);
		p->cur = !p->cur;
	}
}

static void
table_insert(struct watch *w, size_t at, struct wproc *p)
{
	w->procs = xgrow(w->procs, &w->procs_cap, w->nprocs + 1,
			 sizeof(*w->procs));
	memmove(&w->procs[at + 1], &w->procs[at],
		(w->nprocs - at) * sizeof(*w->procs));
	w->procs[at] = p;
	w->nprocs++;
}

/*
 * --all: merge this sweep's /proc listing into the table.  Processes that
 * vanished get their exit row; new ones are identified (kernel threads
 * are kept, ignored, so they are not looked at again).
 */
static void
refresh_all(struct watch *w)
{
	struct wproc **old = w->procs;
	size_t nold = w->nprocs, i = 0, j = 0;
	ssize_t n;

	n = probe_list_pids(&w->pids, &w->pids_cap, NULL);
	if (n < 0)
		return;
	w->procs = NULL;
	w->nprocs = w->procs_cap = 0;
	while (i < nold || j < (size_t)n) {
		struct probe_proc pp;
		struct wproc *p;

		if (j >= (size_t)n || (i < nold && old[i]->pid < w->pids[j])) {
			/* Gone from /proc (reaped). */
			mark_exit(w, old[i]);
			keep_summary(w, old[i]);
			wproc_free(old[i++]);
			continue;
		}
		if (i < nold && old[i]->pid == w->pids[j]) {
			p = old[i++];
			j++;
			/* Sampling checks live ones; re-check the others for
			 * pid reuse (kernel threads never change). */
			if (p->st != W_LIVE && !p->kthread &&
			    probe_proc_stat(p->pid, &pp, NULL) == 0 &&
			    pp.starttime != p->starttime) {
				wproc_reset(w, p);
				identify(w, p, &pp);
			}
			table_insert(w, w->nprocs, p);
			continue;
		}
		if (probe_proc_stat(w->pids[j], &pp, NULL) == 0) {
			p = wproc_new(w->pids[j]);
			identify(w, p, &pp);
			table_insert(w, w->nprocs, p);
		}
		j++;
	}
	free(old);
}

static bool
any_live(const struct watch *w)
{
	for (size_t i = 0; i < w->nprocs; i++)
		if (w->procs[i]->st == W_LIVE)
			return true;
	return false;
}

/*
 * --openmetrics/--listen: the processes alive at this sweep, with their
 * newest sample (exited ones are gone from the output).
 */
static void
publish_metrics(struct watch *w)
{
	size_t n = 0;

	if (!w->om_file && !w->httpd)
		return;
	w->mprocs = xgrow(w->mprocs, &w->mprocs_cap, w->nprocs + 1,
			  sizeof(*w->mprocs));
	for (size_t i = 0; i < w->nprocs; i++) {
		const struct wproc *p = w->procs[i];
		struct cli_mproc *m = &w->mprocs[n];
		uint64_t span;

		if (p->st != W_LIVE || !p->nsamples)
			continue;
		memset(m, 0, sizeof(*m));
		m->s = &p->last;
		m->starttime = p->starttime;
		span = p->npts ? p->now_ns - p->pts[0].ns : 0;
		if (span && span * 2 >= w->rate_window_ns) {
			m->have_rate = true;
			m->rate_window = (double)span / 1e9;
			m->rate = ((double)p->now_v - (double)p->pts[0].v) /
				  m->rate_window;
		}
		n++;
	}
	if (w->om_file) {
		cli_metrics_render(&w->mtext, CLI_MFMT_TEXTFILE, w->mprocs, n,
				   w->gc_stat, w->last_ns);
		if (cli_metrics_write_file(w->om_file, w->mtext.p,
					   w->mtext.len, &w->err) < 0)
			return;
	}
	if (w->httpd) {
		cli_metrics_render(&w->mtext, CLI_MFMT_TEXT, w->mprocs, n,
				   w->gc_stat, w->last_ns);
		cli_metrics_render(&w->mom, CLI_MFMT_OPENMETRICS, w->mprocs,
				   n, w->gc_stat, w->last_ns);
		cli_httpd_publish(w->httpd, &w->mtext, &w->mom);
	}
}

static void
sweep(struct watch *w)
{
	struct probe_fast_stats a = { 0 }, b = { 0 };
	uint64_t t0 = lp_mono_ns();

	if (w->all)
		refresh_all(w);
	w->last_ns = lp_wall_ns();
	if (!w->sweeps)
		w->first_ns = w->last_ns;
	if (w->fast)
		probe_fast_stats(w->fast, &a);
	for (size_t i = 0; i < w->nprocs && !w->err.code; i++)
		if (w->procs[i]->st == W_LIVE)
			sample_proc(w, w->procs[i]);
	if (w->fast) {
		probe_fast_stats(w->fast, &b);
		lp_debug("watch: sweep %zu: %llu processes sampled in %.1f ms, "
			 "%llu pagemap reads, %llu by full smaps",
			 w->sweeps + 1,
			 (unsigned long long)(b.samples - a.samples),
			 (double)(lp_mono_ns() - t0) / 1e6,
			 (unsigned long long)(b.pagemap_reads -
					      a.pagemap_reads),
			 (unsigned long long)(b.full_smaps - a.full_smaps));
	}
	if (w->all && w->sweeps == 0 && w->noaccess && !w->quiet) {
		progress_clear(w);
		fprintf(stderr, "leakprobe: watch: note: cannot read %zu "
			"process%s (other users'); run as root to include "
			"them\n", w->noaccess, w->noaccess == 1 ? "" : "es");
	}
	w->sweeps++;
	if (!w->err.code)
		publish_metrics(w);
	if (!w->err.code)
		progress_show(w);
}

/* ---- summary ------------------------------------------------------- */

static int
cmp_growth(const void *a, const void *b)
{
	const struct ana_growth_summary *x = a, *y = b;

	if (x->heap_per_hour != y->heap_per_hour)
		return x->heap_per_hour > y->heap_per_hour ? -1 : 1;
	return x->rss_per_hour > y->rss_per_hour ? -1 :
	       x->rss_per_hour < y->rss_per_hour;
}

static void
summary_line(const char *what, uint64_t first, uint64_t last, double rate,
	     bool have_rate)
{
	char a[32], b[32], d[32], r[32];

	lp_human_bytes((double)first, 0, a, sizeof(a));
	lp_human_bytes((double)last, 0, b, sizeof(b));
	lp_human_bytes((double)last - (double)first, 1, d, sizeof(d));
	if (have_rate)
		lp_human_bytes(rate, 1, r, sizeof(r));
	fprintf(stderr, "      %-16s %10s -> %10s  %11s  %s%s\n", what, a, b,
		d, have_rate ? r : "n/a", have_rate ? "/h" : "");
}

/* --gc-stat: live slots and GC counts, first -> last sample. */
static void
summary_gc(const struct watch *w, pid_t pid)
{
	const int m[3] = { ana_metric_index("live_slots"),
			   ana_metric_index("gc_count"),
			   ana_metric_index("major_gc_count") };
	uint64_t a[3], b[3];

	for (size_t i = 0; i < w->nprocs; i++) {
		const struct wproc *p = w->procs[i];

		if (p->pid != pid || !p->nsamples)
			continue;
		for (int k = 0; k < 3; k++) {
			if (!ana_sample_has_metric(&p->first, m[k]) ||
			    !ana_sample_has_metric(&p->last, m[k])) {
				fprintf(stderr, "      %-16s n/a\n",
					"live_slots");
				return;
			}
			a[k] = ana_sample_metric(&p->first, m[k]);
			b[k] = ana_sample_metric(&p->last, m[k]);
		}
		fprintf(stderr, "      %-16s %10llu -> %10llu  %+11lld  %llu "
			"GC%s (%llu major)\n", "live_slots",
			(unsigned long long)a[0], (unsigned long long)b[0],
			(long long)b[0] - (long long)a[0],
			(unsigned long long)(b[1] - a[1]),
			b[1] - a[1] == 1 ? "" : "s",
			(unsigned long long)(b[2] - a[2]));
		return;
	}
}

static void
print_summary(struct watch *w)
{
	struct ana_growth_summary *g = NULL;
	size_t n = 0, cap = 0, shown;
	double secs;

	for (size_t i = 0; i < w->nprocs; i++) {
		const struct wproc *p = w->procs[i];

		if (!p->nsamples)
			continue;
		g = xgrow(g, &cap, n + 1, sizeof(*g));
		ana_growth_from(&p->first, &p->last, p->exited, &g[n++]);
	}
	for (size_t i = 0; i < w->ngone; i++) {
		g = xgrow(g, &cap, n + 1, sizeof(*g));
		g[n++] = w->gone[i];
	}
	progress_clear(w);
	secs = (double)(w->last_ns - w->first_ns) / 1e9;
	fprintf(stderr, "leakprobe: watch: %zu sample%s over %.1f s, %zu "
		"row%s; first -> last sample%s:\n", w->sweeps,
		w->sweeps == 1 ? "" : "s", secs, w->rows,
		w->rows == 1 ? "" : "s",
		w->all ? ", fastest growing first" : "");
	if (w->all && n > 1)
		qsort(g, n, sizeof(*g), cmp_growth);
	shown = w->all && n > SUMMARY_TOP ? SUMMARY_TOP : n;
	for (size_t i = 0; i < shown; i++) {
		char t0[40], t1[40];
		bool rate = g[i].last_ns > g[i].first_ns + 1000000;

		lp_iso8601(g[i].first_ns, t0, sizeof(t0));
		lp_iso8601(g[i].last_ns, t1, sizeof(t1));
		t0[23] = t1[23] = '\0';		/* drop the UTC offset */
		fprintf(stderr, "  pid %d (%s) %s -> %s%s\n", (int)g[i].pid,
			g[i].comm, t0 + 11, t1 + 11,
			g[i].exited ? ", exited" : "");
		summary_line("rss", g[i].first_rss, g[i].last_rss,
			     g[i].rss_per_hour, rate);
		summary_line("heap+arena+anon", g[i].first_heap,
			     g[i].last_heap, g[i].heap_per_hour, rate);
		if (w->gc_stat)
			summary_gc(w, g[i].pid);
	}
	if (shown < n)
		fprintf(stderr, "  ... and %zu more process%s\n", n - shown,
			n - shown == 1 ? "" : "es");
	free(g);
}

/* ---- options -------------------------------------------------------- */

static bool
parse_interval(const char *s, uint64_t *out)
{
	double v;

	if (lp_parse_seconds(s, &v) < 0 || v * 1e9 < MIN_INTERVAL_NS ||
	    v * 1e9 > MAX_INTERVAL_NS)
		return false;
	*out = (uint64_t)(v * 1e9 + 0.5);
	return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcasecmp(s + a - b, suffix);
}

/* Check the pids given before creating any output: exit status or 0. */
static int
check_named(struct watch *w)
{
	for (size_t i = 0; i < w->nnamed; i++) {
		struct lp_err e = { 0 };
		struct probe_proc pp;
		struct wproc *p;
		pid_t pid = w->named[i];
		size_t at;
		int rc;

		for (at = 0; at < w->nprocs && w->procs[at]->pid < pid; at++)
			;
		if (at < w->nprocs && w->procs[at]->pid == pid)
			continue;	/* given twice */
		if (probe_proc_stat(pid, &pp, NULL) < 0) {
			cli_error(CMD, "no such process: %d (check the pid "
				  "with 'ps -p %d')", (int)pid, (int)pid);
			return EXIT_TARGET;
		}
		if (probe_is_kthread(&pp)) {
			cli_error(CMD, "pid %d (%s) is a kernel thread: it has "
				  "no user memory to watch", (int)pid,
				  pp.comm);
			return EXIT_TARGET;
		}
		if (pp.state == 'Z' || pp.state == 'X') {
			cli_error(CMD, "pid %d (%s) is a zombie: its memory is "
				  "gone", (int)pid, pp.comm);
			return EXIT_TARGET;
		}
		rc = probe_smaps_read(pid, false, &w->scratch, &e);
		if (rc == -LP_EPERM) {
			cli_error(CMD, "cannot read the memory of pid %d (%s): "
				  "permission denied (run as root or as the "
				  "process's user)", (int)pid, pp.comm);
			return EXIT_TARGET;
		}
		if (rc == -LP_ENOPROC) {
			cli_error(CMD, "no such process: %d (it exited)",
				  (int)pid);
			return EXIT_TARGET;
		}
		if (rc < 0) {
			cli_error(CMD, "pid %d: %s", (int)pid, e.msg);
			return EXIT_TARGET;
		}
		p = wproc_new(pid);
		p->named = true;
		identify(w, p, &pp);
		table_insert(w, at, p);
	}
	return 0;
}

/*
 * --gc-stat: start a session in each process and turn its helper thread
 * into a GC.stat reporter.  Any process that is not Ruby (or where the
 * helper does not start) ends the watch before it begins: exit status,
 * or 0.  The sessions started are ended by watch_release.
 */
static int
start_gc(struct watch *w)
{
	double iv = (double)w->interval_ns / 1e9;

	for (size_t i = 0; i < w->nprocs; i++) {
		struct wproc *p = w->procs[i];
		struct probe_hello hello;
		struct lp_err e = { 0 };
		int rc = EXIT_INJECT;

		memset(&hello, 0, sizeof(hello));
		p->sess = cli_session_start(CMD, p->pid, NULL, 0,
					    GC_START_TIMEOUT, false, &hello,
					    &rc);
		if (!p->sess)
			return rc;
		/* The hello carries GC.stat: the first row has it. */
		p->gc = hello.gc;
		if (probe_session_gcstat_start(p->sess, iv, &e) < 0)
			return cli_report(CMD, &e);
		if (lp_stop_signal) {
			cli_error(CMD, "interrupted while starting the GC.stat "
				  "reporters");
			return EXIT_INJECT;
		}
	}
	return 0;
}

static void
watch_release(struct watch *w)
{
	for (size_t i = 0; i < w->nprocs; i++)
		wproc_free(w->procs[i]);
	free(w->procs);
	free(w->gone);
	free(w->pids);
	free(w->named);
	ana_smaps_release(&w->scratch);
	probe_fast_free(w->fast);
	cli_httpd_stop(w->httpd);
	cli_mbuf_release(&w->mtext);
	cli_mbuf_release(&w->mom);
	free(w->mprocs);
	if (w->output && w->fd >= 0)
		close(w->fd);
}

int
cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "smaps-diff", no_argument, NULL, 'D' },
		{ "gc-stat", no_argument, NULL, 'G' },
		{ "openmetrics", required_argument, NULL, 'M' },
		{ "listen", required_argument, NULL, 'L' },
		{ "rate-window", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct watch w;
	const char *format = NULL;
	uint64_t start, k;
	double secs;
	int c, rc = EXIT_OK, code;

	memset(&w, 0, sizeof(w));
	w.fd = -1;
	w.interval_ns = 1000000000ull;
	w.rate_window_ns = RATE_WINDOW_NS;
	w.quiet = lp_verbose < 0;
	w.self = getpid();
	ana_smaps_init(&w.scratch);
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "ai:n:d:o:f:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'a':
			w.all = true;
			break;
		case 'i':
			if (!parse_interval(optarg, &w.interval_ns)) {
				cli_error(CMD, "bad --interval '%s': give "
					  "seconds from 0.001 to 86400 (e.g. "
					  "0.5, 250ms, 2m)", optarg);
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case 'n':
			if (lp_parse_u64(optarg, &w.count) < 0 || !w.count) {
				cli_error(CMD, "bad --count '%s': give a whole "
					  "number of samples >= 1", optarg);
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case 'd':
			if (lp_parse_seconds(optarg, &secs) < 0 ||
			    secs > 1e9) {
				cli_error(CMD, "bad --duration '%s': give "
					  "seconds > 0 (e.g. 30, 10m, 2h)",
					  optarg);
				rc = EXIT_USAGE;
				goto out;
			}
			w.duration_ns = (uint64_t)(secs * 1e9 + 0.5);
			break;
		case 'o':
			w.output = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'D':
			w.smaps_diff = true;
			break;
		case 'G':
			w.gc_stat = true;
			break;
		case 'M':
			w.om_file = optarg;
			break;
		case 'L':
			w.listen = optarg;
			break;
		case 'R':
			if (!parse_interval(optarg, &w.rate_window_ns)) {
				cli_error(CMD, "bad --rate-window '%s': give "
					  "seconds from 0.001 to 86400 (e.g. "
					  "300, 5m, 1h)", optarg);
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = cli_finish_stdout(CMD, EXIT_OK);
			goto out;
		default:
			if (optopt && strchr("indof", optopt))
				cli_error(CMD, "option '-%c' needs a value; "
					  "see 'leakprobe watch --help'",
					  optopt);
			else if (optopt && strchr("MLR", optopt))
				cli_error(CMD, "option '%s' needs a value; "
					  "see 'leakprobe watch --help'",
					  argv[optind - 1]);
			else
				cli_error(CMD, "unknown option '%s'; see "
					  "'leakprobe watch --help'",
					  argv[optind - 1]);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (w.count && w.duration_ns) {
		cli_error(CMD, "--count and --duration both set: give one");
		rc = EXIT_USAGE;
		goto out;
	}
	if (format) {
		if (!strcmp(format, "csv")) {
			w.fmt = ANA_FMT_CSV;
		} else if (!strcmp(format, "jsonl")) {
			w.fmt = ANA_FMT_JSONL;
		} else {
			cli_error(CMD, "unknown --format '%s': use csv or "
				  "jsonl", format);
			rc = EXIT_USAGE;
			goto out;
		}
	} else if (w.output && (ends_with(w.output, ".jsonl") ||
				ends_with(w.output, ".ndjson") ||
				ends_with(w.output, ".json"))) {
		w.fmt = ANA_FMT_JSONL;
	}
	if (w.all && optind < argc) {
		cli_error(CMD, "give PIDs or --all, not both");
		rc = EXIT_USAGE;
		goto out;
	}
	if (w.all && w.gc_stat) {
		cli_error(CMD, "--gc-stat needs the PIDs of Ruby processes, "
			  "not --all (it starts a helper thread in each)");
		rc = EXIT_USAGE;
		goto out;
	}
	if (!w.all && optind >= argc) {
		cli_error(CMD, "no process given: name PIDs or use --all; "
			  "see 'leakprobe watch --help'");
		rc = EXIT_USAGE;
		goto out;
	}
	w.nnamed = (size_t)(argc - optind);
	w.named = xcalloc(w.nnamed ? w.nnamed : 1, sizeof(*w.named));
	for (size_t i = 0; i < w.nnamed; i++) {
		if (lp_parse_pid(argv[optind + (int)i], &w.named[i]) < 0) {
			cli_error(CMD, "bad PID '%s': give a process id > 0",
				  argv[optind + (int)i]);
			rc = EXIT_USAGE;
			goto out;
		}
	}

	w.no_rows = (w.om_file || w.listen) && !w.output;
	if (w.om_file && !*w.om_file) {
		cli_error(CMD, "--openmetrics needs a file name (e.g. "
			  "/var/lib/prometheus/node-exporter/leakprobe.prom)");
		rc = EXIT_USAGE;
		goto out;
	}
	rc = check_named(&w);
	if (rc)
		goto out;
	if (w.listen) {
		struct lp_err e = { 0 };
		char bound[300];

		w.httpd = cli_httpd_start(w.listen, bound, sizeof(bound), &e);
		if (!w.httpd) {
			cli_error(CMD, "%s", e.msg);
			rc = e.code == LP_EINVAL ? EXIT_USAGE :
			     e.code == LP_ENOTOOL ? EXIT_INJECT : EXIT_IO;
			goto out;
		}
		if (!w.quiet)
			fprintf(stderr, "leakprobe: watch: serving metrics on "
				"http://%s/metrics\n", bound);
	}
	if (w.gc_stat) {
		/* Refuse a bad output before touching any target. */
		if (precheck_output(&w, &code) < 0) {
			cli_error(CMD, "%s", w.err.msg);
			rc = code;
			goto out;
		}
		cli_install_signals();
		rc = start_gc(&w);
		if (rc)
			goto out;
	}
	if (w.all)
		w.fast = probe_fast_new();
	if (!w.no_rows && open_output(&w, &code) < 0) {
		cli_error(CMD, "%s", w.err.msg);
		rc = code;
		goto out;
	}
	w.diff_fp = w.output ? stdout : stderr;
	w.progress = !w.quiet && isatty(STDERR_FILENO) &&
		     !(!w.output && isatty(STDOUT_FILENO)) &&
		     !(w.smaps_diff && w.diff_fp == stderr);
	cli_install_signals();

	start = lp_mono_ns();
	for (k = 0;;) {
		uint64_t next, now;

		sweep(&w);
		if (w.err.code || lp_stop_signal)
			break;
		if (w.count && w.sweeps >= w.count)
			break;
		if (!w.all && !any_live(&w))
			break;
		k++;
		next = start + k * w.interval_ns;
		now = lp_mono_ns();
		if (next <= now) {
			/* Sampling took longer than the interval: skip the
			 * missed slots and keep to the schedule. */
			k = (now - start) / w.interval_ns + 1;
			next = start + k * w.interval_ns;
		}
		if (w.duration_ns && next - start > w.duration_ns)
			break;
		if (!lp_sleep_until(next))
			break;
	}

	rc = EXIT_OK;
	if (!w.err.code && w.regular && w.output && fdatasync(w.fd) < 0 &&
	    errno != EINVAL)
		lp_err_sys(&w.err, LP_EIO, "fdatasync '%s'", w.output);
	if (w.err.code) {
		progress_clear(&w);
		cli_error(CMD, "%s (rows written before stay whole)",
			  w.err.msg);
		rc = EXIT_IO;
	}
	if (!w.quiet)
		print_summary(&w);
	if (w.output)
		rc = cli_finish_stdout(CMD, rc);
out:
	watch_release(&w);
	return rc;
}
