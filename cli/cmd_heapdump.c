/*
 * leakprobe heapdump PID [-o FILE] [--trace-allocations] [--stop-tracing]
 *
 * ObjectSpace.dump_all of a live process, taken by the safe-point helper
 * thread and streamed to leakprobe over a FIFO: leakprobe writes FILE, the
 * target writes nothing to its disk.
 */
#include "cli/cmds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/exit.h"
#include "cli/progress.h"
#include "cli/measure.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static const char heapdump_usage[] =
"usage: leakprobe heapdump PID [-o FILE] [--trace-allocations]\n"
"                          [--stop-tracing] [--json] [--gzip]\n"
"       leakprobe heapdump PID --every TIME [--count N] [--dir DIR]\n"
"                          [--keep N] [--gzip] [--trace-allocations]\n"
"\n"
"Take an ObjectSpace.dump_all heap dump of the live Ruby process PID,\n"
"after a full GC.start, and write it to FILE (default\n"
"heap-PID-YYYYMMDDTHHMMSS.json).  The dump streams from the target to\n"
"leakprobe over a pipe: nothing is written on the target's disk.\n"
"dump_all stops the target's world for about 3 s per GB of dump.\n"
"\n"
"  -o, --output FILE        where to write the dump ('-' = stdout)\n"
"      --trace-allocations  start ObjectSpace allocation tracing first, so\n"
"                           objects allocated from now on carry file,\n"
"                           line and generation in later dumps; it stays\n"
"                           on (leakprobe says so) until --stop-tracing\n"
"      --stop-tracing       stop allocation tracing after the dump\n"
"  -t, --timeout SEC        limit for the job to start and the dump (120)\n"
"      --json               a JSON summary on stdout (needs -o FILE)\n"
"      --gzip               compress the dump with zlib (FILE.json.gz)\n"
"\n"
"A series (what a months-long hunt does by hand):\n"
"      --every TIME         a dump every TIME (s, m, h suffixes: 90,\n"
"                           10m, 1h; at least 1 s), into\n"
"                           DIR/heap-PID-YYYYMMDDTHHMMSSZ.json[.gz] (UTC),\n"
"                           one line per dump on stdout, until --count,\n"
"                           SIGINT/SIGTERM (a dump in progress is\n"
"                           abandoned, no partial file) or the process's\n"
"                           exit; exit 0.  With --trace-allocations,\n"
"                           tracing starts before the first dump and\n"
"                           stays on.  Read the series with 'leakprobe\n"
"                           heapdiff --series DIR'\n"
"      --count N            stop after N dumps\n"
"      --dir DIR            where the dumps go (default: .)\n"
"      --keep N             keep only the newest N dumps of PID in DIR\n"
"                           (older ones are removed)\n"
"  -h, --help               this help\n"
"\n"
"exit status: 0 done, 2 usage, 3 no such process / not Ruby, 4 injection\n"
"error or timeout, 5 dump_all raised, 6 writing failed (disk full: the\n"
"dumps of a series written before stay whole).\n";

struct sink {
	int fd;
	gzFile gz;		/* --gzip: writes go through zlib */
	uint64_t bytes;		/* dump bytes (before compression) */
	struct ana_hd_digest *dg;
	int err;
	struct cli_show *sh;	/* progress line, or NULL */
	pid_t pid;
	uint64_t t0, shown;	/* start, and the last progress update */
};

static int
sink_write(const char *buf, size_t len, void *arg)
{
	struct sink *k = arg;
	size_t off = 0;

	if (k->gz) {
		/* gzwrite takes an unsigned length: pieces under 1 GiB */
		while (off < len) {
			size_t part = len - off < (1u << 30) ? len - off
							     : (1u << 30);
			int zerr;

			errno = 0;
			if (gzwrite(k->gz, buf + off, (unsigned)part) <= 0) {
				gzerror(k->gz, &zerr);
				k->err = zerr == Z_ERRNO && errno ? errno : EIO;
				return -1;
			}
			off += part;
		}
	}
	while (!k->gz && off < len) {
		ssize_t n = write(k->fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			k->err = n < 0 ? errno : ENOSPC;
			return -1;
		}
		off += (size_t)n;
	}
	k->bytes += len;
	if (k->sh && k->sh->progress) {
		uint64_t now = lp_mono_ns();

		/* ten updates a second at most */
		if (now - k->shown >= 100000000ull) {
			char b[32];

			k->shown = now;
			lp_human_bytes((double)k->bytes, 0, b, sizeof(b));
			cli_progress(k->sh, "heapdump %d: %s received, %.1f s",
				     (int)k->pid, b, (now - k->t0) / 1e9);
		}
	}
	if (k->dg)
		ana_hd_digest_feed(k->dg, buf, len, NULL);
	return 0;
}

/* What one dump gave. */
struct dump_info {
	uint64_t bytes, objects, traced, file_bytes;
	double secs;		/* dump_all in the target */
};

/*
 * Flush and close the output of a dump written to a file (fd, and gz
 * over it).  Returns 0 or -1 with errno.
 */
static int
sink_close(struct sink *k)
{
	int rc = 0, e = 0, zerr;

	if (k->gz) {
		zerr = gzflush(k->gz, Z_FINISH);
		if (zerr != Z_OK) {
			e = zerr == Z_ERRNO && errno ? errno : EIO;
			rc = -1;
		}
		/* gzclose_w closes the fd too: give it a dup */
		if (gzclose_w(k->gz) != Z_OK && !rc) {
			e = errno ? errno : EIO;
			rc = -1;
		}
		k->gz = NULL;
	}
	if (!rc && fsync(k->fd) < 0) {
		e = errno;
		rc = -1;
	}
	if (close(k->fd) < 0 && !rc) {
		e = errno;
		rc = -1;
	}
	k->fd = -1;
	errno = e;
	return rc;
}

/*
 * One heap dump of pid into out ('-': stdout), written as out.partial
 * and renamed, so a failed or interrupted dump leaves no file.  Turns
 * allocation tracing on first (trace) or off after (stop); *traced says
 * whether tracing may be on now.  Prints errors; returns an exit status
 * and, on success, fills *info.
 */
static int
take_dump(pid_t pid, const char *out, bool gzip, bool trace, bool stop,
	  double timeout, bool quiet, struct cli_show *sh, bool *traced,
	  struct dump_info *info)
{
	struct probe_session *s = NULL;
	struct probe_hello hello;
	struct probe_result res;
	struct lp_err err;
	struct sink k = { -1, NULL, 0, NULL, 0, sh, pid, 0, 0 };
	struct stat st;
	char tmp[4200];
	bool to_stdout = !strcmp(out, "-");
	int rc = EXIT_OK;

	lp_err_clear(&err);
	memset(info, 0, sizeof(*info));
	tmp[0] = '\0';
	if (to_stdout) {
		k.fd = STDOUT_FILENO;
	} else {
		snprintf(tmp, sizeof(tmp), "%s.partial", out);
		k.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (k.fd < 0) {
			cli_error("heapdump", "cannot write '%s': %s", tmp,
				  strerror(errno));
			return EXIT_IO;
		}
	}
	if (gzip) {
		int dfd = dup(k.fd);

		/*
		 * Level 1: dump_all waits on the pipe while we compress, so
		 * speed matters more than size (measured on a 94 MB dump:
		 * level 1 71 MB/s to 8.7 %, level 6 42 MB/s to 6.7 %).
		 */
		k.gz = dfd >= 0 ? gzdopen(dfd, "wb1") : NULL;
		if (!k.gz) {
			if (dfd >= 0)
				close(dfd);
			cli_error("heapdump", "cannot start gzip output for "
				  "'%s'", tmp[0] ? tmp : "stdout");
			rc = EXIT_IO;
			goto out;
		}
		gzbuffer(k.gz, 256 * 1024);
	}
	k.dg = ana_hd_digest_new(ANA_HD_NO_SITES);
	k.t0 = lp_mono_ns();
	s = cli_session_start("heapdump", pid, NULL, 0, timeout, true, &hello,
			      &rc);
	if (!s)
		goto out;
	if (trace) {
		/* the reply may be lost (timeout): say tracing may be on */
		*traced = true;
		if (probe_session_trace(s, true, true, NULL, &err) < 0) {
			rc = cli_report("heapdump", &err);
			goto out;
		}
	}
	if (!quiet)
		fprintf(stderr, "leakprobe: heapdump: dumping the heap of %d "
			"(dump_all stops its world for about 3 s per GB)\n",
			(int)pid);
	if (probe_session_dump(s, sink_write, &k, &info->secs, &res,
			       &err) < 0) {
		if (err.code == LP_EIO && k.err)
			cli_error("heapdump", "writing '%s': %s", tmp[0] ? tmp :
				  "stdout", strerror(k.err));
		else
			cli_report("heapdump", &err);
		rc = err.code == LP_EIO ? EXIT_IO : cli_exit_code(err.code);
		goto out;
	}
	if (stop && probe_session_trace(s, false, false, NULL, &err) < 0) {
		rc = cli_report("heapdump", &err);
		goto out;
	}
	if (stop)
		*traced = false;
	probe_session_end(s);
	s = NULL;
	if (sh)
		cli_progress_clear(sh);
	if (to_stdout) {
		if (k.gz) {
			int zerr = gzclose_w(k.gz);

			k.gz = NULL;
			if (zerr != Z_OK) {
				cli_error("heapdump", "writing stdout: %s",
					  strerror(errno ? errno : EIO));
				rc = EXIT_IO;
				goto out;
			}
		}
	} else {
		if (sink_close(&k) < 0) {
			cli_error("heapdump", "writing '%s': %s", tmp,
				  strerror(errno));
			rc = EXIT_IO;
			goto out;
		}
		if (stat(tmp, &st) == 0)
			info->file_bytes = (uint64_t)st.st_size;
		if (rename(tmp, out) < 0) {
			cli_error("heapdump", "rename '%s' to '%s': %s", tmp,
				  out, strerror(errno));
			rc = EXIT_IO;
			goto out;
		}
		tmp[0] = '\0';
	}
	ana_hd_digest_end(k.dg, NULL);
	info->bytes = k.bytes;
	info->objects = ana_hd_digest_stats(k.dg)->objects;
	info->traced = ana_hd_digest_stats(k.dg)->traced;
out:
	probe_session_end(s);
	if (sh)
		cli_progress_clear(sh);
	if (k.gz)
		gzclose_w(k.gz);
	if (k.fd >= 0 && k.fd != STDOUT_FILENO)
		close(k.fd);
	if (tmp[0])
		unlink(tmp);
	ana_hd_digest_free(k.dg);
	return rc;
}

/* ---- --every: a series of dumps -------------------------------------- */

struct series {
	pid_t pid;
	uint64_t starttime;
	uint64_t every_ns, count, keep;
	const char *dir;
	bool gzip, trace;
	double timeout;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * --keep N: remove this process's oldest dumps in the directory beyond
 * the newest N (names sort by time: heap-PID-YYYYMMDDTHHMMSSZ...).
 */
static void
prune(const struct series *sr)
{
	char prefix[64], **names = NULL, path[4400];
	size_t n = 0, cap = 0, plen;
	struct dirent *e;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "heap-%d-", (int)sr->pid);
	plen = strlen(prefix);
	d = opendir(sr->dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (strncmp(e->d_name, prefix, plen) ||
		    !((l > 5 && !strcmp(e->d_name + l - 5, ".json")) ||
		      (l > 8 && !strcmp(e->d_name + l - 8, ".json.gz"))))
			continue;
		names = xgrow(names, &cap, n + 1, sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i + sr->keep < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", sr->dir, names[i]);
		if (unlink(path) == 0)
			lp_debug("heapdump: --keep %llu: removed %s",
				 (unsigned long long)sr->keep, path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Is it still the process we started with? */
static bool
same_process(const struct series *sr)
{
	struct probe_proc pp;

	return probe_proc_alive(sr->pid) &&
	       probe_proc_stat(sr->pid, &pp, NULL) == 0 &&
	       pp.starttime == sr->starttime;
}

/*
 * Dumps every sr->every_ns until the count, a signal or the target's
 * exit.  A failed dump (disk full) ends the series with its status; the
 * dumps written before it are whole.
 */
static int
run_series(struct series *sr)
{
	uint64_t start = lp_mono_ns(), k = 0, done = 0;
	bool traced = false;
	const char *why = "";
	int rc = EXIT_OK;

	fprintf(stderr, "leakprobe: heapdump: a dump of %d every %.0f s into "
		"'%s' (dump_all stops its world for about 3 s per GB each "
		"time); SIGINT/SIGTERM end the series\n", (int)sr->pid,
		(double)sr->every_ns / 1e9, sr->dir);
	for (;;) {
		char stamp[32], name[4400];
		struct dump_info info;
		struct tm tm;
		time_t now = (time_t)(lp_wall_ns() / 1000000000ull);
		uint64_t next, t;
		size_t l;
		int n = 1;

		if (!same_process(sr)) {
			why = ", the process exited";
			break;
		}
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		l = (size_t)snprintf(name, sizeof(name), "%s/heap-%d-%s",
				     sr->dir, (int)sr->pid, stamp);
		snprintf(name + l, sizeof(name) - l, ".json%s",
			 sr->gzip ? ".gz" : "");
		/* two dumps within a second: _002, _003, ... sort after */
		while (access(name, F_OK) == 0)
			snprintf(name + l, sizeof(name) - l, "_%03d.json%s",
				 ++n, sr->gzip ? ".gz" : "");
		rc = take_dump(sr->pid, name, sr->gzip, sr->trace && !traced,
			       false, sr->timeout, true, NULL, &traced,
			       &info);
		if (rc != EXIT_OK) {
			if (lp_stop_signal) {
				/* abandoned: take_dump left no file */
				why = ", interrupted during a dump (abandoned)";
				rc = EXIT_OK;
			} else if (!same_process(sr)) {
				why = ", the process exited during a dump";
				rc = EXIT_OK;
			}
			break;
		}
		done++;
		{
			char b[32];

			lp_human_bytes((double)(info.file_bytes ?
				info.file_bytes : info.bytes), 0, b, sizeof(b));
			printf("%s: %s, %" PRIu64 " objects (%" PRIu64
			       " with allocation sites), dump_all %.2f s\n",
			       name, b, info.objects, info.traced, info.secs);
			fflush(stdout);
		}
		if (sr->keep)
			prune(sr);
		if (sr->count && done >= sr->count)
			break;
		k++;
		next = start + k * sr->every_ns;
		t = lp_mono_ns();
		if (next <= t) {
			/* a dump took longer than --every: skip slots */
			k = (t - start) / sr->every_ns + 1;
			next = start + k * sr->every_ns;
		}
		if (!lp_sleep_until(next)) {
			why = ", stopped by a signal";
			break;
		}
	}
	fprintf(stderr, "leakprobe: heapdump: %" PRIu64 " dump%s of %d in "
		"'%s'%s\n", done, done == 1 ? "" : "s", (int)sr->pid, sr->dir,
		rc == EXIT_OK ? why : "; the dumps written before the error "
		"are whole");
	if (traced)
		fprintf(stderr, "leakprobe: heapdump: allocation tracing is now "
			"ON in %d (it costs CPU and memory); stop it with "
			"'leakprobe heapdump %d --stop-tracing'\n",
			(int)sr->pid, (int)sr->pid);
	return rc;
}

int
cmd_heapdump(int argc, char **argv)
{
	enum { O_TRACE = 256, O_STOP, O_JSON, O_EVERY, O_COUNT, O_DIR, O_GZIP,
	       O_KEEP };
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "trace-allocations", no_argument, NULL, O_TRACE },
		{ "stop-tracing", no_argument, NULL, O_STOP },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, O_JSON },
		{ "every", required_argument, NULL, O_EVERY },
		{ "count", required_argument, NULL, O_COUNT },
		{ "dir", required_argument, NULL, O_DIR },
		{ "gzip", no_argument, NULL, O_GZIP },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *out = NULL;
	char defname[128];
	bool trace = false, stop = false, json = false, to_stdout;
	bool traced = false, gzip = false;
	double timeout = 120, every = 0;
	struct series sr;
	struct dump_info info;
	struct cli_show sh;
	struct probe_proc pp;
	uint64_t t0, count = 0, keep = 0;
	const char *dir = NULL;
	pid_t pid;
	int c, rc = EXIT_OK;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:t:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case O_TRACE:
			trace = true;
			break;
		case O_STOP:
			stop = true;
			break;
		case O_JSON:
			json = true;
			break;
		case 't':
			if (lp_parse_seconds(optarg, &timeout) < 0) {
				cli_error("heapdump", "--timeout wants seconds "
					  "> 0, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_EVERY:
			if (lp_parse_seconds(optarg, &every) < 0 ||
			    every < 1) {
				cli_error("heapdump", "bad --every '%s': give a "
					  "time of 1 s or more (e.g. 90, 10m, "
					  "1h)", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_COUNT:
			if (lp_parse_u64(optarg, &count) < 0 || !count) {
				cli_error("heapdump", "bad --count '%s': give a "
					  "whole number of dumps >= 1", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_DIR:
			dir = optarg;
			break;
		case O_GZIP:
			gzip = true;
			break;
		case O_KEEP:
			if (lp_parse_u64(optarg, &keep) < 0 || !keep) {
				cli_error("heapdump", "bad --keep '%s': give the "
					  "number of newest dumps to keep (>= "
					  "1)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'v':
			lp_verbose++;
			break;
		case 'h':
			fputs(heapdump_usage, stdout);
			return cli_finish_stdout("heapdump", EXIT_OK);
		default:
			cli_error("heapdump", "unknown option '%s'; see "
				  "'leakprobe heapdump --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	rc = cli_one_pid("heapdump", argc, argv, optind, &pid);
	if (rc != EXIT_OK)
		return rc;
	if (trace && stop) {
		cli_error("heapdump", "give --trace-allocations or "
			  "--stop-tracing, not both");
		return EXIT_USAGE;
	}
	if (!every && (count || dir || keep)) {
		cli_error("heapdump", "--count, --dir and --keep belong to a "
			  "series: add --every TIME (e.g. --every 10m)");
		return EXIT_USAGE;
	}
	if (every) {
		struct stat st;

		if (out || json || stop) {
			cli_error("heapdump", "--every writes timestamped files "
				  "in --dir: not with %s", out ? "-o" :
				  json ? "--json" : "--stop-tracing (stop it "
				  "afterwards with 'heapdump PID "
				  "--stop-tracing')");
			return EXIT_USAGE;
		}
		if (!dir)
			dir = ".";
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    access(dir, W_OK) < 0) {
			cli_error("heapdump", "--dir '%s' is not a writable "
				  "directory; create it or give another",
				  dir);
			return EXIT_USAGE;
		}
		if (probe_proc_stat(pid, &pp, NULL) < 0) {
			cli_error("heapdump", "no such process: %d", (int)pid);
			return EXIT_TARGET;
		}
		memset(&sr, 0, sizeof(sr));
		sr.pid = pid;
		sr.starttime = pp.starttime;
		sr.every_ns = (uint64_t)(every * 1e9 + 0.5);
		sr.count = count;
		sr.keep = keep;
		sr.dir = dir;
		sr.gzip = gzip;
		sr.trace = trace;
		sr.timeout = timeout;
		cli_install_signals();
		rc = run_series(&sr);
		return cli_finish_stdout("heapdump", rc);
	}
	to_stdout = out && !strcmp(out, "-");
	if (json && to_stdout) {
		cli_error("heapdump", "--json needs -o FILE (the dump cannot "
			  "share stdout)");
		return EXIT_USAGE;
	}
	if (!out) {
		char stamp[32];

		lp_stamp(lp_wall_ns(), stamp, sizeof(stamp));
		snprintf(defname, sizeof(defname), "heap-%d-%s.json%s",
			 (int)pid, stamp, gzip ? ".gz" : "");
		out = defname;
	}
	cli_install_signals();
	/* no table here: the progress line only, never over a dump that
	 * goes to stdout */
	cli_show_init(&sh, json || to_stdout);
	t0 = lp_mono_ns();
	rc = take_dump(pid, out, gzip, trace, stop, timeout, false, &sh,
		       &traced, &info);
	if (rc != EXIT_OK)
		goto out;
	{
		double all = (lp_mono_ns() - t0) / 1e9;
		char size[32];

		lp_human_bytes((double)info.bytes, 0, size, sizeof(size));
		if (json) {
			json_t *doc = json_pack("{s:i,s:s,s:I,s:I,s:I,s:f,s:f,"
						"s:b,s:b}", "pid", (int)pid,
						"file", out,
						"bytes", (json_int_t)info.bytes,
						"objects", (json_int_t)info.objects,
						"traced", (json_int_t)info.traced,
						"dump_seconds", info.secs,
						"seconds", all,
						"tracing_started", trace,
						"tracing_stopped", stop);

			if (gzip)
				json_object_set_new(doc, "file_bytes",
					json_integer((json_int_t)info.file_bytes));
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else if (!to_stdout) {
			printf("heap dump of %d: %s, %s, %" PRIu64 " objects "
			       "(%" PRIu64 " with allocation sites); dump_all "
			       "took %.2f s in the target, %.2f s in all\n",
			       (int)pid, out, size, info.objects, info.traced,
			       info.secs, all);
		}
	}
	rc = cli_finish_stdout("heapdump", rc);
out:
	if (traced)
		fprintf(stderr, "leakprobe: heapdump: allocation tracing is now "
			"ON in %d (it costs CPU and memory); stop it with "
			"'leakprobe heapdump %d --stop-tracing'\n", (int)pid,
			(int)pid);
	return rc;
}
