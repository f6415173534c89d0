/*
 * leakprobe heapdump PID [-o FILE] [--trace-allocations] [--stop-tracing]
 *
 * ObjectSpace.dump_all of a live process, taken by the safe-point helper
 * thread and streamed to leakprobe over a FIFO: leakprobe writes FILE, the
 * target writes nothing to its disk.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/exit.h"
#include "cli/progress.h"
#include "cli/measure.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static const char heapdump_usage[] =
"usage: leakprobe heapdump PID [-o FILE] [--trace-allocations]\n"
"                          [--stop-tracing] [--json]\n"
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
"  -h, --help               this help\n";

struct sink {
	int fd;
	uint64_t bytes;
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

	while (off < len) {
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
	if (k->dg)
		ana_hd_digest_feed(k->dg, buf, len, NULL);
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
	return 0;
}

int
cmd_heapdump(int argc, char **argv)
{
	enum { O_TRACE = 256, O_STOP, O_JSON };
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "trace-allocations", no_argument, NULL, O_TRACE },
		{ "stop-tracing", no_argument, NULL, O_STOP },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, O_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *out = NULL;
	char defname[128], tmp[4200];
	bool trace = false, stop = false, json = false, to_stdout;
	bool traced = false;
	double timeout = 120, secs = 0;
	struct probe_hello hello;
	struct probe_session *s = NULL;
	struct probe_result res;
	struct lp_err err;
	struct sink k = { -1, 0, NULL, 0, NULL, 0, 0, 0 };
	struct cli_show sh;
	uint64_t t0;
	pid_t pid;
	int c, rc = EXIT_OK;

	lp_err_clear(&err);
	memset(&sh, 0, sizeof(sh));
	tmp[0] = '\0';
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
	to_stdout = out && !strcmp(out, "-");
	if (json && to_stdout) {
		cli_error("heapdump", "--json needs -o FILE (the dump cannot "
			  "share stdout)");
		return EXIT_USAGE;
	}
	if (!out) {
		char stamp[32];

		lp_stamp(lp_wall_ns(), stamp, sizeof(stamp));
		snprintf(defname, sizeof(defname), "heap-%d-%s.json", (int)pid,
			 stamp);
		out = defname;
	}
	/* Written under a temporary name and renamed at the end: a failed
	 * or interrupted dump leaves nothing. */
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
	cli_install_signals();
	/* no table here: the progress line only, never over a dump that
	 * goes to stdout */
	cli_show_init(&sh, json || to_stdout);
	k.sh = &sh;
	k.pid = pid;
	k.t0 = lp_mono_ns();
	k.dg = ana_hd_digest_new(ANA_HD_NO_SITES);
	t0 = lp_mono_ns();
	s = cli_session_start("heapdump", pid, NULL, 0, timeout, true, &hello,
			      &rc);
	if (!s)
		goto out;
	if (trace) {
		/* the reply may be lost (timeout): say tracing may be on */
		traced = true;
		if (probe_session_trace(s, true, true, NULL, &err) < 0) {
			rc = cli_report("heapdump", &err);
			goto out;
		}
	}
	fprintf(stderr, "leakprobe: heapdump: dumping the heap of %d "
		"(dump_all stops its world for about 3 s per GB)\n", (int)pid);
	if (probe_session_dump(s, sink_write, &k, &secs, &res, &err) < 0) {
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
		traced = false;
	probe_session_end(s);
	s = NULL;
	cli_progress_clear(&sh);
	if (!to_stdout) {
		if (fsync(k.fd) < 0 || close(k.fd) < 0) {
			k.fd = -1;
			cli_error("heapdump", "writing '%s': %s", tmp,
				  strerror(errno));
			rc = EXIT_IO;
			goto out;
		}
		k.fd = -1;
		if (rename(tmp, out) < 0) {
			cli_error("heapdump", "rename '%s' to '%s': %s", tmp,
				  out, strerror(errno));
			rc = EXIT_IO;
			goto out;
		}
		tmp[0] = '\0';
	}
	ana_hd_digest_end(k.dg, NULL);
	{
		const struct ana_hd_stats *st = ana_hd_digest_stats(k.dg);
		double all = (lp_mono_ns() - t0) / 1e9;
		char size[32];

		lp_human_bytes((double)k.bytes, 0, size, sizeof(size));
		if (json) {
			json_t *doc = json_pack("{s:i,s:s,s:I,s:I,s:I,s:f,s:f,"
						"s:b,s:b}", "pid", (int)pid,
						"file", out,
						"bytes", (json_int_t)k.bytes,
						"objects", (json_int_t)st->objects,
						"traced", (json_int_t)st->traced,
						"dump_seconds", secs,
						"seconds", all,
						"tracing_started", trace,
						"tracing_stopped", stop);

			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else if (!to_stdout) {
			printf("heap dump of %d: %s, %s, %" PRIu64 " objects "
			       "(%" PRIu64 " with allocation sites); dump_all "
			       "took %.2f s in the target, %.2f s in all\n",
			       (int)pid, out, size, st->objects, st->traced,
			       secs, all);
		}
	}
	rc = cli_finish_stdout("heapdump", rc);
out:
	cli_progress_clear(&sh);
	if (traced)
		fprintf(stderr, "leakprobe: heapdump: allocation tracing is now "
			"ON in %d (it costs CPU and memory); stop it with "
			"'leakprobe heapdump %d --stop-tracing'\n", (int)pid,
			(int)pid);
	probe_session_end(s);
	if (k.fd >= 0 && k.fd != STDOUT_FILENO)
		close(k.fd);
	if (tmp[0])
		unlink(tmp);
	ana_hd_digest_free(k.dg);
	return rc;
}
