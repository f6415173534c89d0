/*
 * leakprobe plot: draw memory over time from a watch file with gnuplot.
 *
 * The script and the data go to gnuplot on its stdin (data as inline
 * datablocks), gnuplot's messages go to a memfd, and the image is drawn
 * into a temporary file beside the output that is renamed into place on
 * success and removed otherwise: nothing is left behind on any path.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "cli/exit.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CMD		"plot"
#define MAX_AUTO_PIDS	10
#define MIB		1048576.0

struct plot {
	const char *input, *output, *from_s, *to_s;
	char *out_path;		/* final output (malloc'd) */
	char *tmp_path;		/* gnuplot draws here first */
	bool png;
	int metrics[ANA_NALLMETRICS];
	size_t nmetrics;
	pid_t *want_pids;
	size_t nwant, want_cap;
	uint64_t from_ns, to_ns;	/* 0 / UINT64_MAX when open */
	struct ana_series s;
	size_t *order;		/* row indices by (pid, time, index) */
	pid_t *pids;		/* pids plotted */
	size_t npids, pids_cap;
	char gnuplot[PATH_MAX];
};

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: leakprobe plot FILE [-o OUT.svg|OUT.png] [--from TIME] [--to TIME]\n"
"                 [--metric NAME...] [--pid PID...]\n"
"\n"
"Draw memory over time from a watch file (CSV or JSON lines) with gnuplot:\n"
"one line per process and metric, MiB against local time (GC.stat counts\n"
"from watch --gc-stat as they are, on a 'count' axis: the right-hand one\n"
"when memory metrics are drawn too).\n"
"\n"
"options:\n"
"  -o, --output OUT   SVG or PNG, by its extension.  Default: FILE without\n"
"                     its extension, plus _from_STAMP/_to_STAMP for a\n"
"                     range, plus .svg (data_from_20261121T120000.svg)\n"
"      --from TIME    first sample to draw; TIME is ISO-8601 as watch\n"
"                     writes it (2026-11-21T12:00:00.000+0100; ms, offset\n"
"                     and seconds optional, no offset = local time), a\n"
"                     date (local midnight), or HH:MM[:SS] on the day of\n"
"                     the file's first sample\n"
"      --to TIME      last sample to draw (same forms)\n"
"  -m, --metric NAME  rss pss uss heap_rss heap_size arena_rss anon_rss\n"
"                     swap, or (files of watch --gc-stat) live_slots\n"
"                     heap_pages malloc_increase gc_count major_gc_count\n"
"                     allocated_objects freed_objects; repeat or separate\n"
"                     with commas.  Default: rss heap_rss arena_rss\n"
"                     anon_rss for one process, rss for several\n"
"  -p, --pid PID      processes to draw; repeat or separate with commas.\n"
"                     Default: all, or the %d that grew most when more\n"
"  -h, --help         this help\n"
"\n"
"Needs gnuplot (Debian package gnuplot-nox).  Prints the path written.\n"
"exit status: 0 done, 2 usage (unknown metric, bad time, no samples, no\n"
"GC.stat values for a GC metric),\n"
"4 gnuplot missing or failed, 6 cannot read FILE or write OUT.\n",
		MAX_AUTO_PIDS);
}

/* ---- options -------------------------------------------------------- */

/* "rss pss ... freed_objects" for messages. */
static const char *
metric_list(void)
{
	static char buf[256];

	if (!buf[0]) {
		size_t n = 0;

		for (int i = 0; i < ANA_NALLMETRICS; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
					      "%s%s", i ? " " : "",
					      ana_metric_name(i));
	}
	return buf;
}

static int
add_metrics(struct plot *p, const char *arg)
{
	char *dup = xstrdup(arg), *save = NULL, *tok;
	size_t ntok = 0;
	int rc = 0;

	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), ntok++) {
		int m = ana_metric_index(tok);
		bool seen = false;

		if (m < 0) {
			cli_error(CMD, "unknown metric '%s'; valid: %s", tok,
				  metric_list());
			rc = -1;
			break;
		}
		for (size_t i = 0; i < p->nmetrics; i++)
			seen |= p->metrics[i] == m;
		if (!seen)
			p->metrics[p->nmetrics++] = m;
	}
	if (!rc && !ntok) {
		cli_error(CMD, "empty --metric; valid: %s", metric_list());
		rc = -1;
	}
	free(dup);
	return rc;
}

static int
add_pids(struct plot *p, const char *arg)
{
	char *dup = xstrdup(arg), *save = NULL, *tok;
	int rc = 0;

	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		pid_t pid;

		if (lp_parse_pid(tok, &pid) < 0) {
			cli_error(CMD, "bad --pid '%s': give a process id > 0",
				  tok);
			rc = -1;
			break;
		}
		p->want_pids = xgrow(p->want_pids, &p->want_cap, p->nwant + 1,
				     sizeof(*p->want_pids));
		p->want_pids[p->nwant++] = pid;
	}
	free(dup);
	return rc;
}

static bool
has_ext(const char *s, const char *ext)
{
	size_t a = strlen(s), b = strlen(ext);

	return a > b && !strcasecmp(s + a - b, ext);
}

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Look gnuplot up in PATH the way execvp would. */
static bool
find_gnuplot(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char *dup, *save = NULL, *dir;
	bool found = false;

	if (!path || !*path)
		return false;
	dup = xstrdup(path);
	for (dir = strtok_r(dup, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		struct stat st;

		snprintf(out, len, "%s/gnuplot", *dir ? dir : ".");
		found = stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
			access(out, X_OK) == 0;
	}
	free(dup);
	return found;
}

/* ---- data selection ------------------------------------------------- */

static bool
is_data(const struct ana_sample *r)
{
	return !r->event || !strcmp(r->event, "new");
}

static int
cmp_rows(const void *a, const void *b, void *arg)
{
	const struct ana_sample *rows = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct ana_sample *x = &rows[i], *y = &rows[j];

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->wall_ns != y->wall_ns)
		return x->wall_ns < y->wall_ns ? -1 : 1;
	return i < j ? -1 : i > j;
}

static bool
in_range(const struct plot *p, const struct ana_sample *r)
{
	return r->wall_ns >= p->from_ns && r->wall_ns <= p->to_ns;
}

/* First index of order[] whose pid is >= pid (order is sorted by pid). */
static size_t
lower_bound(const struct plot *p, pid_t pid)
{
	size_t lo = 0, hi = p->s.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->s.rows[p->order[mid]].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* [lo, hi) of order[] holding pid's rows. */
static void
pid_span(const struct plot *p, pid_t pid, size_t *lo, size_t *hi)
{
	*lo = lower_bound(p, pid);
	*hi = pid < INT_MAX ? lower_bound(p, pid + 1) : p->s.n;
}

/* Growth of metric m over the range, for choosing what to draw. */
static double
pid_growth(const struct plot *p, pid_t pid, int m)
{
	const struct ana_sample *first = NULL, *last = NULL;
	size_t lo, hi;

	pid_span(p, pid, &lo, &hi);
	for (size_t i = lo; i < hi; i++) {
		const struct ana_sample *r = &p->s.rows[p->order[i]];

		if (!is_data(r) || !in_range(p, r) ||
		    !ana_sample_has_metric(r, m))
			continue;
		if (!first)
			first = r;
		last = r;
	}
	if (!first)
		return 0;
	return (double)ana_sample_metric(last, m) -
	       (double)ana_sample_metric(first, m);
}

static size_t
pid_points(const struct plot *p, pid_t pid)
{
	size_t lo, hi, n = 0;

	pid_span(p, pid, &lo, &hi);
	for (size_t i = lo; i < hi; i++)
		n += is_data(&p->s.rows[p->order[i]]) &&
		     in_range(p, &p->s.rows[p->order[i]]);
	return n;
}

struct pid_rank {
	pid_t pid;
	double growth;
};

static int
cmp_rank(const void *a, const void *b)
{
	const struct pid_rank *x = a, *y = b;

	if (x->growth != y->growth)
		return x->growth > y->growth ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

/* Choose the pids to draw; exit status or 0. */
static int
select_pids(struct plot *p)
{
	pid_t last = 0;

	for (size_t i = 0; i < p->s.n; i++) {
		const struct ana_sample *r = &p->s.rows[p->order[i]];

		if (r->pid == last || !is_data(r) || !in_range(p, r))
			continue;
		if (pid_points(p, r->pid) == 0)
			continue;
		last = r->pid;
		p->pids = xgrow(p->pids, &p->pids_cap, p->npids + 1,
				sizeof(*p->pids));
		p->pids[p->npids++] = r->pid;
	}
	if (p->nwant) {
		for (size_t i = 0; i < p->nwant; i++) {
			if (p->npids && bsearch(&p->want_pids[i], p->pids,
						p->npids, sizeof(pid_t),
						cmp_pid))
				continue;
			{
				char list[256] = "";
				size_t n = 0;

				for (size_t j = 0; j < p->npids &&
				     n + 12 < sizeof(list); j++)
					n += (size_t)snprintf(list + n,
						sizeof(list) - n, " %d",
						(int)p->pids[j]);
				cli_error(CMD, "pid %d has no samples in "
					  "'%s'%s; pids there:%s",
					  (int)p->want_pids[i], p->input,
					  p->from_s || p->to_s ?
					  " in that time range" : "",
					  p->npids ? list : " none");
			}
			return EXIT_USAGE;
		}
		p->pids = xgrow(p->pids, &p->pids_cap, p->nwant,
				sizeof(*p->pids));
		memcpy(p->pids, p->want_pids, p->nwant * sizeof(pid_t));
		p->npids = p->nwant;
		qsort(p->pids, p->npids, sizeof(pid_t), cmp_pid);
		for (size_t i = 1, o = 1; i <= p->npids; i++) {
			if (i == p->npids) {
				p->npids = o;
				break;
			}
			if (p->pids[i] != p->pids[o - 1])
				p->pids[o++] = p->pids[i];
		}
		return 0;
	}
	if (!p->npids) {
		char a[40] = "the start", b[40] = "the end";

		if (p->from_s)
			lp_iso8601(p->from_ns, a, sizeof(a));
		if (p->to_s)
			lp_iso8601(p->to_ns, b, sizeof(b));
		cli_error(CMD, "no samples in '%s' between %s and %s",
			  p->input, a, b);
		return EXIT_USAGE;
	}
	if (p->npids > MAX_AUTO_PIDS) {
		struct pid_rank *r = xmalloc(p->npids * sizeof(*r));

		for (size_t i = 0; i < p->npids; i++) {
			r[i].pid = p->pids[i];
			r[i].growth = pid_growth(p, p->pids[i],
						 p->metrics[0]);
		}
		qsort(r, p->npids, sizeof(*r), cmp_rank);
		if (lp_verbose >= 0)
			fprintf(stderr, "leakprobe: plot: note: %zu processes "
				"in '%s'; drawing the %d whose %s grew most "
				"(choose with --pid)\n", p->npids, p->input,
				MAX_AUTO_PIDS, ana_metric_name(p->metrics[0]));
		for (size_t i = 0; i < MAX_AUTO_PIDS; i++)
			p->pids[i] = r[i].pid;
		p->npids = MAX_AUTO_PIDS;
		qsort(p->pids, p->npids, sizeof(pid_t), cmp_pid);
		free(r);
	}
	return 0;
}

/* ---- script --------------------------------------------------------- */

/* Printable ASCII only, for titles (valid UTF-8 and XML-safe in SVG). */
static void
put_title_text(FILE *fp, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '&' || c == '<' || c == '>')
			fputc('?', fp);
		else if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else
			fputc(c, fp);
	}
}

/* A path as a gnuplot single-quoted string ('' stands for '). */
static void
put_path(FILE *fp, const char *s)
{
	fputc('\'', fp);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', fp);
		fputc(*s, fp);
	}
	fputc('\'', fp);
}

static const char *
comm_of(const struct plot *p, pid_t pid)
{
	size_t lo, hi;

	pid_span(p, pid, &lo, &hi);
	for (size_t i = hi; i > lo; i--)
		if (p->s.rows[p->order[i - 1]].comm[0])
			return p->s.rows[p->order[i - 1]].comm;
	return "?";
}

/* Seconds since the epoch, moved by the local UTC offset: gnuplot's time
 * axis is UTC, so this makes it show local wall-clock time. */
static double
local_seconds(uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	localtime_r(&t, &tm);
	return (double)ns / 1e9 + (double)tm.tm_gmtoff;
}

/*
 * Which axes the metrics need: memory in MiB on y, GC.stat counts on y,
 * or on y2 when memory is drawn too.
 */
static void
axes_of(const struct plot *p, bool *bytes, bool *counts)
{
	*bytes = *counts = false;
	for (size_t i = 0; i < p->nmetrics; i++) {
		if (ana_metric_is_bytes(p->metrics[i]))
			*bytes = true;
		else
			*counts = true;
	}
}

/* A GC.stat metric with no value in what is drawn: exit status or 0. */
static int
check_gc_metrics(const struct plot *p)
{
	for (size_t mi = 0; mi < p->nmetrics; mi++) {
		int m = p->metrics[mi];
		bool any = false;

		if (ana_metric_is_bytes(m))
			continue;
		for (size_t j = 0; j < p->npids && !any; j++) {
			size_t lo, hi;

			pid_span(p, p->pids[j], &lo, &hi);
			for (size_t i = lo; i < hi && !any; i++) {
				const struct ana_sample *r =
					&p->s.rows[p->order[i]];

				any = is_data(r) && in_range(p, r) &&
				      ana_sample_has_metric(r, m);
			}
		}
		if (!any) {
			cli_error(CMD, "'%s' has no %s values%s; record them "
				  "with 'leakprobe watch --gc-stat PID'",
				  p->input, ana_metric_name(m),
				  p->s.gc ? " for these processes and times" :
				  " (no GC.stat columns)");
			return EXIT_USAGE;
		}
	}
	return 0;
}

static int
write_script(struct plot *p, FILE *fp, size_t *nseries, size_t *npoints)
{
	uint64_t tmin = UINT64_MAX, tmax = 0;
	char host[256], a[40], b[40], zone[8];
	time_t t;
	struct tm tm;
	size_t k = 0;
	double span;
	bool bytes, counts;

	/* Time extent of what is drawn, for the title and the axis. */
	for (size_t j = 0; j < p->npids; j++) {
		size_t lo, hi;

		pid_span(p, p->pids[j], &lo, &hi);
		for (size_t i = lo; i < hi; i++) {
			const struct ana_sample *r = &p->s.rows[p->order[i]];

			if (!is_data(r) || !in_range(p, r))
				continue;
			tmin = r->wall_ns < tmin ? r->wall_ns : tmin;
			tmax = r->wall_ns > tmax ? r->wall_ns : tmax;
		}
	}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	lp_iso8601(tmin, a, sizeof(a));
	lp_iso8601(tmax, b, sizeof(b));
	a[19] = b[19] = '\0';
	a[10] = b[10] = ' ';
	t = (time_t)(tmin / 1000000000ull);
	localtime_r(&t, &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	span = (double)(tmax - tmin) / 1e9;

	fprintf(fp, "set encoding utf8\n");
	if (p->png)
		fprintf(fp, "set terminal pngcairo size 1200,700 noenhanced "
			"font 'Sans,10' background rgb 'white'\n");
	else
		fprintf(fp, "set terminal svg size 1200,700 dynamic "
			"noenhanced font 'Sans,11' background rgb 'white'\n");
	fprintf(fp, "set output ");
	put_path(fp, p->tmp_path);
	fprintf(fp, "\nset title \"");
	put_title_text(fp, host);
	if (p->npids == 1) {
		fprintf(fp, ": pid %d (", (int)p->pids[0]);
		put_title_text(fp, comm_of(p, p->pids[0]));
		fputc(')', fp);
	} else if (p->npids <= 4) {
		for (size_t j = 0; j < p->npids; j++) {
			fprintf(fp, "%s pid %d (", j ? "," : ":",
				(int)p->pids[j]);
			put_title_text(fp, comm_of(p, p->pids[j]));
			fputc(')', fp);
		}
	} else {
		fprintf(fp, ": %zu processes", p->npids);
	}
	fprintf(fp, "\\n%s to %s (UTC%s)\" noenhanced\n", a,
		!strncmp(a, b, 10) ? b + 11 : b, zone);
	fprintf(fp, "set xdata time\nset timefmt '%%s'\n");
	fprintf(fp, "set format x '%s'\n", span > 2 * 86400 ? "%m-%d %H:%M" :
		span > 3 * 3600 ? "%H:%M" : span > 60 ? "%H:%M:%S" :
		"%H:%M:%.1S");
	fprintf(fp, "set xlabel 'local time (UTC%s)'\n", zone);
	axes_of(p, &bytes, &counts);
	if (bytes && counts)
		fprintf(fp, "set ylabel 'MiB'\nset ytics nomirror\n"
			"set y2label 'count'\nset y2tics\n");
	else
		fprintf(fp, "set ylabel '%s'\n", bytes ? "MiB" : "count");
	fprintf(fp, "set grid\nset key outside right top vertical "
		"noenhanced\n");
	if (p->from_s || p->to_s) {
		char lo[40] = "*", hi[40] = "*";

		/* With a time axis, range ends are strings read by timefmt. */
		if (p->from_s)
			snprintf(lo, sizeof(lo), "\"%.3f\"",
				 local_seconds(p->from_ns));
		if (p->to_s)
			snprintf(hi, sizeof(hi), "\"%.3f\"",
				 local_seconds(p->to_ns));
		fprintf(fp, "set xrange [%s:%s]\n", lo, hi);
	}

	/* One datablock per process and metric; a blank line breaks the
	 * line where the process exited (a reused pid starts over). */
	*npoints = 0;
	for (size_t j = 0; j < p->npids; j++) {
		size_t lo, hi;

		pid_span(p, p->pids[j], &lo, &hi);
		for (size_t mi = 0; mi < p->nmetrics; mi++) {
			bool brk = false, any = false;

			fprintf(fp, "$d%zu << EOD\n", k);
			for (size_t i = lo; i < hi; i++) {
				const struct ana_sample *r =
					&p->s.rows[p->order[i]];
				int m = p->metrics[mi];
				double x = local_seconds(r->wall_ns);

				if (!in_range(p, r))
					continue;
				/* An exit, or a GC.stat value not known:
				 * the line breaks there. */
				if (!is_data(r) ||
				    !ana_sample_has_metric(r, m)) {
					brk = any;
					continue;
				}
				if (brk)
					fputc('\n', fp);
				brk = false;
				any = true;
				if (ana_metric_is_bytes(m))
					fprintf(fp, "%.3f %.6f\n", x, (double)
						ana_sample_metric(r, m) / MIB);
				else
					fprintf(fp, "%.3f %llu\n", x,
						(unsigned long long)
						ana_sample_metric(r, m));
				(*npoints)++;
			}
			fprintf(fp, "EOD\n");
			k++;
		}
	}
	fprintf(fp, "plot ");
	k = 0;
	for (size_t j = 0; j < p->npids; j++) {
		bool few = pid_points(p, p->pids[j]) <= 60;

		for (size_t mi = 0; mi < p->nmetrics; mi++) {
			bool y2 = bytes && counts &&
				  !ana_metric_is_bytes(p->metrics[mi]);

			fprintf(fp, "%s$d%zu using 1:2%s with %s title "
				"\"pid %d ", k ? ", \\\n     " : "", k,
				y2 ? " axes x1y2" : "",
				few ? "linespoints pt 7 ps 0.5" : "lines",
				(int)p->pids[j]);
			put_title_text(fp, comm_of(p, p->pids[j]));
			fprintf(fp, " %s\" noenhanced",
				ana_metric_name(p->metrics[mi]));
			k++;
		}
	}
	fprintf(fp, "\nset output\n");
	*nseries = k;
	return ferror(fp) ? -1 : 0;
}

/* ---- gnuplot -------------------------------------------------------- */

/* First line of gnuplot's complaint, for the error message. */
static void
gnuplot_message(int fd, char *out, size_t len)
{
	char buf[4096], *line, *save = NULL;
	ssize_t n;

	out[0] = '\0';
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		/* gnuplot echoes the offending line and a caret first. */
		if (strstr(line, "line ") || strstr(line, "rror") ||
		    strstr(line, "arning")) {
			snprintf(out, len, "%s", line + strspn(line, " \t"));
			return;
		}
	}
	snprintf(out, len, "%s", buf + strspn(buf, " \t\n"));
	if (strchr(out, '\n'))
		*strchr(out, '\n') = '\0';
}

/* Run gnuplot with the script on stdin; exit status or 0. */
static int
run_gnuplot(struct plot *p, const char *script, size_t len)
{
	char msg[512];
	int in[2], errfd, devnull, status = 0;
	size_t done = 0;
	pid_t pid;

	errfd = memfd_create("gnuplot-stderr", MFD_CLOEXEC);
	if (errfd < 0) {
		cli_error(CMD, "memfd_create: %s", strerror(errno));
		return EXIT_INJECT;
	}
	if (pipe2(in, O_CLOEXEC) < 0) {
		cli_error(CMD, "pipe: %s", strerror(errno));
		close(errfd);
		return EXIT_INJECT;
	}
	pid = fork();
	if (pid < 0) {
		cli_error(CMD, "fork: %s", strerror(errno));
		close(in[0]);
		close(in[1]);
		close(errfd);
		return EXIT_INJECT;
	}
	if (pid == 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(in[0], STDIN_FILENO);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		dup2(errfd, STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execl(p->gnuplot, "gnuplot", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	while (done < len) {
		ssize_t n = write(in[1], script + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;	/* gnuplot quit early; its status says why */
		done += (size_t)n;
	}
	close(in[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && done == len) {
		struct stat st;

		close(errfd);
		if (stat(p->tmp_path, &st) == 0 && st.st_size > 0)
			return 0;
		cli_error(CMD, "gnuplot wrote nothing to '%s'", p->out_path);
		return EXIT_INJECT;
	}
	gnuplot_message(errfd, msg, sizeof(msg));
	close(errfd);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		cli_error(CMD, "cannot run '%s'; install the package "
			  "gnuplot-nox", p->gnuplot);
	else if (WIFSIGNALED(status))
		cli_error(CMD, "gnuplot killed by signal %d%s%s",
			  WTERMSIG(status), msg[0] ? ": " : "", msg);
	else
		cli_error(CMD, "gnuplot failed (exit %d)%s%s",
			  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			  msg[0] ? ": " : "", msg);
	return EXIT_INJECT;
}

/* ---- output name ---------------------------------------------------- */

static char *
default_output(const struct plot *p)
{
	const char *base = p->input, *slash = strrchr(base, '/');
	const char *dot = strrchr(slash ? slash + 1 : base, '.');
	size_t stem = dot && dot != (slash ? slash + 1 : base) ?
		      (size_t)(dot - base) : strlen(base);
	char a[32] = "", b[32] = "", *out;

	if (p->from_s)
		lp_stamp(p->from_ns, a, sizeof(a));
	if (p->to_s)
		lp_stamp(p->to_ns, b, sizeof(b));
	if (asprintf(&out, "%.*s%s%s%s%s.svg", (int)stem, base,
		     a[0] ? "_from_" : "", a, b[0] ? "_to_" : "", b) < 0)
		return NULL;
	return out;
}

static void
plot_release(struct plot *p)
{
	if (p->tmp_path) {
		unlink(p->tmp_path);
		free(p->tmp_path);
	}
	free(p->out_path);
	free(p->want_pids);
	free(p->order);
	free(p->pids);
	ana_series_release(&p->s);
}

int
cmd_plot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' },
		{ "metric", required_argument, NULL, 'm' },
		{ "pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct plot p;
	struct lp_err err = { 0 };
	char *script = NULL;
	size_t script_len = 0, bad = 0, nseries = 0, npoints = 0;
	FILE *fp;
	bool metrics_given;
	mode_t um;
	int c, rc = EXIT_OK, fd;

	memset(&p, 0, sizeof(p));
	p.to_ns = UINT64_MAX;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:m:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			p.output = optarg;
			break;
		case 'F':
			p.from_s = optarg;
			break;
		case 'T':
			p.to_s = optarg;
			break;
		case 'm':
			if (add_metrics(&p, optarg) < 0) {
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case 'p':
			if (add_pids(&p, optarg) < 0) {
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = cli_finish_stdout(CMD, EXIT_OK);
			goto out;
		default:
			if (optopt && strchr("omp", optopt))
				cli_error(CMD, "option '-%c' needs a value; "
					  "see 'leakprobe plot --help'",
					  optopt);
			else
				cli_error(CMD, "unknown or incomplete option "
					  "'%s'; see 'leakprobe plot --help'",
					  argv[optind - 1]);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc - 1) {
		cli_error(CMD, optind >= argc ? "no watch file given; see "
			  "'leakprobe plot --help'" : "give one watch file, "
			  "not several");
		rc = EXIT_USAGE;
		goto out;
	}
	p.input = argv[optind];
	if (p.output) {
		if (!has_ext(p.output, ".svg") && !has_ext(p.output, ".png")) {
			cli_error(CMD, "output '%s' must end in .svg or .png",
				  p.output);
			rc = EXIT_USAGE;
			goto out;
		}
		p.png = has_ext(p.output, ".png");
	}
	if (!find_gnuplot(p.gnuplot, sizeof(p.gnuplot))) {
		cli_error(CMD, "gnuplot not found in PATH; install the package "
			  "gnuplot-nox (apt-get install gnuplot-nox)");
		rc = EXIT_INJECT;
		goto out;
	}

	if (ana_series_load(&p.s, p.input, &bad, &err) < 0) {
		cli_error(CMD, "%s", err.msg);
		rc = err.code == LP_EPARSE ? EXIT_USAGE : EXIT_IO;
		goto out;
	}
	if (bad && lp_verbose >= 0)
		fprintf(stderr, "leakprobe: plot: note: skipped %zu malformed "
			"line%s in '%s'\n", bad, bad == 1 ? "" : "s", p.input);
	{
		uint64_t ref = 0;

		for (size_t i = 0; i < p.s.n && !ref; i++)
			if (is_data(&p.s.rows[i]))
				ref = p.s.rows[i].wall_ns;
		if (!ref)
			ref = lp_wall_ns();
		if (p.from_s && ana_parse_time(p.from_s, ref, &p.from_ns) < 0) {
			cli_error(CMD, "bad --from '%s': use ISO-8601 as watch "
				  "writes it (2026-11-21T12:00:00) or "
				  "HH:MM[:SS]",
				  p.from_s);
			rc = EXIT_USAGE;
			goto out;
		}
		if (p.to_s && ana_parse_time(p.to_s, ref, &p.to_ns) < 0) {
			cli_error(CMD, "bad --to '%s': use ISO-8601 as watch "
				  "writes it (2026-11-21T12:00:00) or "
				  "HH:MM[:SS]",
				  p.to_s);
			rc = EXIT_USAGE;
			goto out;
		}
		if (p.from_ns > p.to_ns) {
			cli_error(CMD, "--from is after --to");
			rc = EXIT_USAGE;
			goto out;
		}
	}
	p.order = xmalloc((p.s.n ? p.s.n : 1) * sizeof(*p.order));
	for (size_t i = 0; i < p.s.n; i++)
		p.order[i] = i;
	qsort_r(p.order, p.s.n, sizeof(*p.order), cmp_rows, p.s.rows);
	metrics_given = p.nmetrics > 0;
	if (!p.nmetrics)
		p.metrics[p.nmetrics++] = ana_metric_index("rss");
	rc = select_pids(&p);
	if (rc)
		goto out;
	rc = check_gc_metrics(&p);
	if (rc)
		goto out;
	if (!metrics_given && p.npids == 1) {
		/* Default for one process: where the memory went. */
		p.metrics[p.nmetrics++] = ana_metric_index("heap_rss");
		p.metrics[p.nmetrics++] = ana_metric_index("arena_rss");
		p.metrics[p.nmetrics++] = ana_metric_index("anon_rss");
	}

	p.out_path = p.output ? xstrdup(p.output) : default_output(&p);
	if (!p.out_path || has_control(p.out_path)) {
		cli_error(CMD, "output name '%s' has control characters; give "
			  "another with -o", p.out_path ? p.out_path : "");
		rc = EXIT_USAGE;
		goto out;
	}
	{
		struct stat si, so;

		if (stat(p.input, &si) == 0 && stat(p.out_path, &so) == 0 &&
		    si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
			cli_error(CMD, "output '%s' is the input file; give "
				  "another with -o", p.out_path);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (asprintf(&p.tmp_path, "%s.XXXXXX", p.out_path) < 0) {
		p.tmp_path = NULL;
		rc = EXIT_IO;
		goto out;
	}
	cli_install_signals();	/* a Ctrl-C still runs the cleanup */
	fd = mkstemp(p.tmp_path);
	if (fd < 0) {
		cli_error(CMD, "cannot create '%s': %s", p.out_path,
			  strerror(errno));
		free(p.tmp_path);
		p.tmp_path = NULL;
		rc = EXIT_IO;
		goto out;
	}
	um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) < 0)
		lp_debug("plot: fchmod: %s", strerror(errno));
	close(fd);

	fp = open_memstream(&script, &script_len);
	if (!fp || write_script(&p, fp, &nseries, &npoints) < 0) {
		cli_error(CMD, "building the gnuplot script: out of memory");
		if (fp)
			fclose(fp);
		rc = EXIT_INJECT;
		goto out;
	}
	fclose(fp);
	if (lp_verbose > 1)
		fprintf(stderr, "%s", script);
	rc = run_gnuplot(&p, script, script_len);
	if (rc)
		goto out;
	if (lp_stop_signal) {
		cli_error(CMD, "interrupted");
		rc = EXIT_INJECT;
		goto out;
	}
	if (rename(p.tmp_path, p.out_path) < 0) {
		cli_error(CMD, "cannot write '%s': %s", p.out_path,
			  strerror(errno));
		rc = EXIT_IO;
		goto out;
	}
	free(p.tmp_path);
	p.tmp_path = NULL;
	printf("wrote %s (%zu series, %zu points)\n", p.out_path, nseries,
	       npoints);
	rc = cli_finish_stdout(CMD, EXIT_OK);
out:
	free(script);
	plot_release(&p);
	return rc;
}
