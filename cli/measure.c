#include "cli/measure.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmds.h"
#include "cli/exit.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

int
cli_read_code(const char *cmd, const char *path, char **buf, size_t *len)
{
	FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 0, n;
	int rc = EXIT_OK;

	*buf = NULL;
	*len = 0;
	if (!fp) {
		cli_error(cmd, "cannot read '%s': %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	for (;;) {
		*buf = xgrow(*buf, &cap, *len + 65536, 1);
		n = fread(*buf + *len, 1, cap - *len - 1, fp);
		*len += n;
		if (*len > CLI_MAX_SNIPPET) {
			cli_error(cmd, "'%s' is larger than %u MiB", path,
				  CLI_MAX_SNIPPET >> 20);
			rc = EXIT_USAGE;
			break;
		}
		if (n == 0)
			break;
	}
	(*buf)[*len] = '\0';
	if (rc == EXIT_OK && ferror(fp)) {
		cli_error(cmd, "reading '%s': %s", path, strerror(errno));
		rc = EXIT_USAGE;
	}
	if (fp != stdin)
		fclose(fp);
	if (rc != EXIT_OK) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int
cli_take_code(const char *cmd, const char *eval, const char *file,
	      char **buf, size_t *len)
{
	if (eval) {
		*len = strlen(eval);
		*buf = xstrndup(eval, *len);
		return EXIT_OK;
	}
	return file ? cli_read_code(cmd, file, buf, len) : EXIT_OK;
}

void
cli_mopts_init(struct cli_mopts *m, uint64_t times, uint64_t warmup)
{
	memset(m, 0, sizeof(*m));
	m->times = times;
	m->warmup = warmup;
	m->timeout = 30;
	m->gc = m->control = true;
	m->max_growth = 64ull << 20;
}

#define MAX_TIMES 1000000000000ull	/* 10^12 */
#define MAX_WARMUP 1000

static int
mopt_count(const char *cmd, const char *opt, const char *arg, uint64_t lo,
	   uint64_t hi, const char *what, uint64_t *out)
{
	uint64_t v;

	if (lp_parse_u64(arg, &v) < 0 || v < lo || v > hi) {
		cli_error(cmd, "%s wants %s, not '%s'", opt, what, arg);
		return EXIT_USAGE;
	}
	*out = v;
	return EXIT_OK;
}

int
cli_mopt(const char *cmd, int c, const char *arg, struct cli_mopts *m)
{
	switch (c) {
	case 'n':
		return mopt_count(cmd, "--times", arg, 1, MAX_TIMES,
				  "a count from 1 to 10^12", &m->times);
	case 'b':
		return mopt_count(cmd, "--batch", arg, 1, MAX_TIMES,
				  "a count from 1 to 10^12", &m->batch);
	case 'w':
		m->have_warmup = true;
		return mopt_count(cmd, "--warmup", arg, 0, MAX_WARMUP,
				  "a count of batches (0-1000)", &m->warmup);
	case 't':
		if (lp_parse_seconds(arg, &m->timeout) < 0) {
			cli_error(cmd, "--timeout wants seconds > 0, not '%s'",
				  arg);
			return EXIT_USAGE;
		}
		return EXIT_OK;
	case CLI_O_NOGC:
		m->gc = false;
		return EXIT_OK;
	case CLI_O_NOCTL:
		m->control = false;
		m->have_control = true;
		return EXIT_OK;
	case CLI_O_FAIL:
		m->fail_set = true;
		return mopt_count(cmd, "--fail-on-growth", arg, 0, UINT64_MAX,
				  "bytes per call", &m->fail_on_growth);
	case CLI_O_MAX:
		return mopt_count(cmd, "--max-growth", arg, 1, UINT64_MAX,
				  "bytes", &m->max_growth);
	case CLI_O_JSON:
		m->json = true;
		return EXIT_OK;
	case 'q':
		m->quiet = true;
		return EXIT_OK;
	case 'v':
		lp_verbose++;
		return EXIT_OK;
	default:
		return -1;
	}
}

void
cli_mopts_finish(struct cli_mopts *m)
{
	if (!m->batch)
		m->batch = m->times >= 10 ? (m->times + 9) / 10 : 1;
	if (m->batch > m->times)
		m->batch = m->times;
}

int
cli_one_pid(const char *cmd, int argc, char **argv, int optind_, pid_t *pid)
{
	if (optind_ >= argc) {
		cli_error(cmd, "missing PID; see 'leakprobe %s --help'", cmd);
		return EXIT_USAGE;
	}
	if (optind_ != argc - 1) {
		cli_error(cmd, "expected one PID, got extra arguments from "
			  "'%s'", argv[optind_ + 1]);
		return EXIT_USAGE;
	}
	if (lp_parse_pid(argv[optind_], pid) < 0) {
		cli_error(cmd, "'%s' is not a process id", argv[optind_]);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int
cli_check_code(const char *cmd, const char *what, const char *code,
	       size_t len)
{
	const char *nul = memchr(code, '\0', len);

	if (!nul)
		return EXIT_OK;
	cli_error(cmd, "%s has a NUL byte at offset %zu; Ruby would stop "
		  "reading there: remove it", what, (size_t)(nul - code));
	return EXIT_USAGE;
}

/*
 * Why a job that never started could not start, when /proc shows it: the
 * main thread blocks the signals that wake it, or the target has no free
 * file descriptor for the helper's channel.  Fills why and returns true.
 */
static bool
unreachable_why(pid_t pid, char *why, size_t len)
{
	char path[64], *buf = NULL, *p;
	size_t cap = 0;
	unsigned long long blk = 0, soft = 0;
	unsigned long nfd = 0;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid,
		 (int)pid);
	if (lp_read_file(path, &buf, &cap, NULL) > 0 &&
	    (p = strstr(buf, "\nSigBlk:")) &&
	    sscanf(p + 8, "%llx", &blk) == 1 &&
	    (blk & (1ull << (SIGVTALRM - 1)))) {
		snprintf(why, len, "the main thread of %d blocks SIGVTALRM%s "
			 "(SigBlk %llx), the signal%s that would wake it for "
			 "the job: leakprobe cannot reach it while %s blocked",
			 (int)pid, blk & (1ull << (SIGCHLD - 1)) ?
			 " and SIGCHLD" : "", blk,
			 blk & (1ull << (SIGCHLD - 1)) ? "s" : "",
			 blk & (1ull << (SIGCHLD - 1)) ? "they are" : "it is");
		found = true;
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	if (lp_read_file(path, &buf, &cap, NULL) <= 0 ||
	    !(p = strstr(buf, "Max open files")) ||
	    sscanf(p + strlen("Max open files"), "%llu", &soft) != 1)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		goto out;
	while (readdir(d))
		nfd++;
	closedir(d);
	nfd = nfd >= 2 ? nfd - 2 : 0;	/* . and .. */
	/* the helper opens its snippets and three FIFOs */
	if (nfd + 4 > soft) {
		snprintf(why, len, "%d has %lu file descriptors open and may "
			 "have %llu (ulimit -n): the helper thread cannot "
			 "open its channel; raise the target's limit (prlimit "
			 "--pid %d --nofile=N) or let it close some",
			 (int)pid, nfd, soft, (int)pid);
		found = true;
	}
out:
	free(buf);
	return found;
}

struct probe_session *
cli_session_start(const char *cmd, pid_t pid, const struct probe_snippet *sn,
		  size_t n, double timeout, bool dump,
		  struct probe_hello *hello, int *rc)
{
	struct probe_opts po = { sn, n, timeout, dump, NULL };

	return cli_session_start_opts(cmd, pid, &po, hello, rc);
}

struct probe_session *
cli_session_start_opts(const char *cmd, pid_t pid,
		       const struct probe_opts *po,
		       struct probe_hello *hello, int *rc)
{
	struct probe_session *s;
	struct lp_err err;
	char *stack = NULL;

	lp_err_clear(&err);
	s = probe_session_start(pid, po, hello, &stack, &err);
	if (!s) {
		char why[400];

		if (err.code == LP_ETIMEDOUT &&
		    !strncmp(err.msg, "the snippet did not start", 25) &&
		    unreachable_why(pid, why, sizeof(why))) {
			snprintf(err.msg, sizeof(err.msg), "the snippet did "
				 "not start within %.1f s: %s", po->timeout, why);
			free(stack);	/* the stack says nothing more */
			stack = NULL;
		}
		*rc = cli_report(cmd, &err);
		if (stack) {
			fprintf(stderr, "main thread of %d:\n%s", (int)pid,
				stack);
			free(stack);
		}
	}
	return s;
}

void
cli_print_raised(const char *cmd, const struct probe_result *r,
		 const char *what)
{
	cli_error(cmd, "%s raised %s: %s", what, r->err_class,
		  r->err_message);
	if (r->err_backtrace[0] && lp_verbose >= 0) {
		char *bt = xstrdup(r->err_backtrace), *save = NULL, *l;

		for (l = strtok_r(bt, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "    from %s\n", l);
		free(bt);
	}
}

const char *
cli_batch_kind(const struct ana_batch *b)
{
	return b->warmup ? "warmup" : b->control ? "control" : "measure";
}

void
cli_print_batch(const char *label, const struct ana_batch *b, uint64_t done,
		uint64_t total)
{
	char h[32], a[32], n[32], r[32];

	lp_human_bytes((double)b->heap_rss, 0, h, sizeof(h));
	lp_human_bytes((double)b->arena_rss, 0, a, sizeof(a));
	lp_human_bytes((double)b->anon_rss, 0, n, sizeof(n));
	lp_human_bytes((double)b->rss, 0, r, sizeof(r));
	printf("%-8s %7" PRIu64 "/%-7" PRIu64 " [heap] %-10s arenas %-10s "
	       "anon %-10s rss %-10s live %" PRId64 "  %.3fs\n",
	       label ? label : cli_batch_kind(b), done, total, h, a, n, r,
	       b->live_slots, b->seconds);
	fflush(stdout);
}

json_t *
cli_batch_json(const struct ana_batch *b)
{
	json_t *j;

	j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		      "s:I,s:I,s:f}",
		      "kind", cli_batch_kind(b),
		      "calls", (json_int_t)b->calls,
		      "heap_rss", (json_int_t)b->heap_rss,
		      "heap_size", (json_int_t)b->heap_size,
		      "arena_rss", (json_int_t)b->arena_rss,
		      "anon_rss", (json_int_t)b->anon_rss,
		      "rss", (json_int_t)b->rss,
		      "live_slots", (json_int_t)b->live_slots,
		      "total_allocated_objects",
		      (json_int_t)b->total_allocated,
		      "total_freed_objects", (json_int_t)b->total_freed,
		      "malloc_increase_bytes",
		      (json_int_t)b->malloc_increase,
		      "gc_count", (json_int_t)b->gc_count,
		      "major_gc_count", (json_int_t)b->major_gc_count,
		      "arena_size", (json_int_t)b->arena_size,
		      "seconds", b->seconds);

	/* bytes held by Ruby objects after the GC: null when not read */
	json_object_set_new(j, "ruby_bytes", b->rb_bytes >= 0 ?
			    json_integer((json_int_t)b->rb_bytes) :
			    json_null());
	return j;
}

json_t *
cli_estimate_json(const struct ana_estimate *e)
{
	return json_pack("{s:f,s:f,s:f,s:I}", "slope", e->slope, "lo", e->lo,
			 "hi", e->hi, "batches", (json_int_t)e->n);
}

static json_t *
cli_verdict_json_base(const struct ana_verdict *v)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:f,s:I,s:f,s:I}",
			 "bytes_per_call", cli_estimate_json(&v->mem),
			 "heap", cli_estimate_json(&v->heap),
			 "arena", cli_estimate_json(&v->arena),
			 "anon", cli_estimate_json(&v->anon),
			 "live_slots_per_call", cli_estimate_json(&v->slots),
			 "total_growth", v->total_growth,
			 "measured_calls", (json_int_t)v->measured_calls,
			 "slot_margin", v->slot_margin,
			 "more_calls_needed",
			 (json_int_t)v->more_calls_needed);
}

double
cli_leak_floor(const struct cli_mopts *m)
{
	return m->fail_set ? (double)m->fail_on_growth
			   : ANA_VERDICT_LEAK_FLOOR;
}

json_t *
cli_verdict_json(const struct ana_verdict *v)
{
	json_t *base, *j;

	j = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:f,s:f,s:f}",
		      "kind", ana_verdict_name(v->kind),
		      "summary", v->summary,
		      "leak_bytes_per_call", cli_estimate_json(&v->leak),
		      "native_bytes_per_call", cli_estimate_json(&v->native),
		      "ruby_bytes_per_call", cli_estimate_json(&v->ruby),
		      "ruby_bytes_late", cli_estimate_json(&v->ruby_late),
		      "native_bytes_late", cli_estimate_json(&v->mem_late),
		      "native_bytes_mean", cli_estimate_json(&v->mem_mean),
		      "ruby_bytes_measured", v->rb_measured,
		      "ruby_bytes_by_levels", v->ruby_levels,
		      "leak_floor", v->leak_floor,
		      "no_leak_floor", v->mem_floor);

	if (v->rb_type >= 0)
		json_object_set_new(j, "ruby_grows", json_pack(
			"{s:s,s:f,s:I,s:I}", "type",
			ana_rb_type_name(v->rb_type), "bytes_per_call",
			v->rb_type_bpc, "before", (json_int_t)v->rb_type_before,
			"after", (json_int_t)v->rb_type_after));
	if (v->grower_id)
		json_object_set_new(j, "ruby_grower", json_pack(
			"{s:s,s:I,s:I,s:I,s:s?}", "class", v->grower_class,
			"object_id", (json_int_t)v->grower_id,
			"before", (json_int_t)v->grower_before,
			"after", (json_int_t)v->grower_after,
			"site", v->grower_site[0] ? v->grower_site : NULL));
	base = cli_verdict_json_base(v);
	json_object_update(j, base);
	json_decref(base);
	return j;
}

int
cli_verdict_exit(const struct ana_verdict *v, bool fail_set,
		 uint64_t fail_on_growth)
{
	if (!fail_set)
		return EXIT_OK;
	if (v->kind == ANA_INCONCLUSIVE)
		return EXIT_INCONCLUSIVE;
	if (ANA_VERDICT_IS_LEAK(v->kind) &&
	    v->leak.lo >= (double)fail_on_growth)
		return EXIT_LEAK;
	return EXIT_OK;
}
