/*
 * --format pprof|folded and -o for the commands that report stacks.
 * The encoders are in analysis/stacks.c; here results are turned into
 * their input, and written where the user asked.
 */
#include "cli/profile_out.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "cli/exit.h"
#include "common/xalloc.h"

int
cli_format_parse(const char *cmd, const char *arg, enum cli_format *out)
{
	static const char *const names[] = { "text", "json", "pprof",
					     "folded" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(arg, names[i])) {
			struct lp_err err = { 0 };

			*out = (enum cli_format)i;
			/* libprotobuf-c is loaded only for pprof: say that
			 * it is missing before any target is touched */
			if (*out == CLI_FMT_PPROF && ana_pprof_load(&err) < 0)
				return cli_report(cmd, &err);
			return EXIT_OK;
		}
	cli_error(cmd, "bad --format '%s': give text, json, pprof or folded",
		  arg);
	return EXIT_USAGE;
}

bool
cli_format_stacks(enum cli_format f)
{
	return f == CLI_FMT_PPROF || f == CLI_FMT_FOLDED;
}

static const char *
keep(struct cli_prof *cp, char *s)
{
	cp->strs = xgrow(cp->strs, &cp->scap, cp->nstrs + 1,
			 sizeof(*cp->strs));
	cp->strs[cp->nstrs++] = s;
	return s;
}

static const char *
keepf(struct cli_prof *cp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *
keepf(struct cli_prof *cp, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return keep(cp, s);
}

void
cli_prof_malloc(struct cli_prof *cp, const struct probe_malloc_report *r)
{
	size_t nf = 0, k = 0, nc = 0;

	memset(cp, 0, sizeof(*cp));
	for (size_t i = 0; i < r->nsites; i++)
		nf += r->sites[i].nframes;
	cp->stacks = xcalloc(r->nsites ? r->nsites : 1, sizeof(*cp->stacks));
	cp->frames = xcalloc(nf ? nf : 1, sizeof(*cp->frames));
	cp->maps = xcalloc(r->nmods ? r->nmods : 1, sizeof(*cp->maps));
	for (size_t i = 0; i < r->nmods; i++) {
		cp->maps[i].start = r->mods[i].lo;
		cp->maps[i].limit = r->mods[i].hi;
		cp->maps[i].offset = r->mods[i].file_off;
		cp->maps[i].file = r->mods[i].path;
		cp->maps[i].build_id = r->mods[i].build_id;
	}
	for (size_t i = 0; i < r->nsites; i++) {
		const struct probe_malloc_site *s = &r->sites[i];

		cp->stacks[i].frames = &cp->frames[k];
		cp->stacks[i].nframes = s->nframes;
		cp->stacks[i].bytes = (int64_t)s->bytes;
		cp->stacks[i].count = (int64_t)s->count;
		for (size_t j = 0; j < s->nframes; j++, k++) {
			struct ana_prof_frame *f = &cp->frames[k];

			f->func = s->funcs && s->funcs[j] ? s->funcs[j] :
				  s->frames[j] ? s->frames[j] : "?";
			f->addr = s->addrs[j];
			f->map = s->mods ? s->mods[j] : -1;
		}
	}
	cp->p.stacks = cp->stacks;
	cp->p.nstacks = r->nsites;
	cp->p.maps = cp->maps;
	cp->p.nmaps = r->nmods;
	cp->p.kind = "inuse";
	cp->p.time_ns = (int64_t)(r->start_time * 1e9);
	cp->p.duration_ns = (int64_t)(r->seconds * 1e9);
	cp->p.period = r->sample ? r->sample : 1;
	cp->cmts[nc++] = keepf(cp, "leakprobe: native allocations of "
			       "process %d still outstanding at the end of a "
			       "%.2f s window", (int)r->pid, r->seconds);
	cp->cmts[nc++] = keepf(cp, "outstanding: %" PRIu64 " bytes in %"
			       PRIu64 " allocations; smaps growth %" PRId64
			       " bytes", r->outstanding_bytes, r->outstanding,
			       r->growth);
	if (r->sample > 1)
		cp->cmts[nc++] = keepf(cp, "sampled: 1 in %u allocations "
				       "recorded, values scaled by %u",
				       r->sample, r->sample);
	if (r->alloc_drops || r->free_drops || r->live_full ||
	    r->inflight_full || r->stack_overflow)
		cp->cmts[nc++] = keepf(cp, "losses: %" PRIu64 " allocations "
				       "not recorded, %" PRIu64 " free records "
				       "lost, %" PRIu64 " not tracked",
				       r->alloc_drops, r->free_drops,
				       r->live_full + r->inflight_full);
	cp->cmts[nc++] = keepf(cp, "stacks grouped by their innermost %u "
			       "frames", r->group_frames);
	cp->p.comments = cp->cmts;
	cp->p.ncomments = nc;
}

void
cli_prof_hd_sites(struct cli_prof *cp, const struct ana_hd_row *rows,
		  size_t nrows)
{
	size_t k = 0;

	memset(cp, 0, sizeof(*cp));
	cp->stacks = xcalloc(nrows ? nrows : 1, sizeof(*cp->stacks));
	cp->frames = xcalloc(nrows ? 2 * nrows : 1, sizeof(*cp->frames));
	for (size_t i = 0; i < nrows; i++) {
		const struct ana_hd_row *r = &rows[i];
		const char *file = r->file ? r->file : "?";
		bool meth = r->method && r->method[0];

		cp->stacks[i].frames = &cp->frames[k];
		cp->stacks[i].nframes = meth ? 2 : 1;
		cp->stacks[i].bytes = (int64_t)r->bytes;
		cp->stacks[i].count = (int64_t)r->count;
		cp->frames[k].func = keepf(cp, "%s:%" PRId64, file, r->line);
		cp->frames[k].file = file;
		cp->frames[k].line = r->line;
		cp->frames[k].map = -1;
		k++;
		if (meth) {
			cp->frames[k].func = r->method;
			cp->frames[k].file = file;
			cp->frames[k].map = -1;
			k++;
		}
	}
	cp->p.stacks = cp->stacks;
	cp->p.nstacks = nrows;
	cp->p.kind = "retained";
	cp->cmts[0] = "leakprobe heapdiff: Ruby objects retained per "
		      "allocation site (memsize bytes)";
	cp->p.comments = cp->cmts;
	cp->p.ncomments = 1;
}

void
cli_prof_release(struct cli_prof *cp)
{
	for (size_t i = 0; i < cp->nstrs; i++)
		free(cp->strs[i]);
	free(cp->strs);
	free(cp->stacks);
	free(cp->frames);
	free(cp->maps);
	memset(cp, 0, sizeof(*cp));
}

int
cli_prof_write(const char *cmd, const struct ana_prof *p, enum cli_format f,
	       const char *path)
{
	bool out = !path || !strcmp(path, "-");
	struct lp_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	FILE *fp;
	int rc = EXIT_OK;

	if (f == CLI_FMT_PPROF) {
		if (out && isatty(STDOUT_FILENO)) {
			cli_error(cmd, "--format pprof is gzip'd binary: give "
				  "-o FILE, or redirect stdout");
			return EXIT_USAGE;
		}
		if (ana_prof_pprof(p, &buf, &len, &err) < 0)
			return cli_report(cmd, &err);
	}
	fp = out ? stdout : fopen(path, "we");
	if (!fp) {
		cli_error(cmd, "cannot write '%s': %s", path, strerror(errno));
		free(buf);
		return EXIT_IO;
	}
	if (f == CLI_FMT_PPROF)
		fwrite(buf, 1, len, fp);
	else
		ana_prof_folded(p, fp);
	free(buf);
	if (out)
		return cli_finish_stdout(cmd, EXIT_OK);
	if (fflush(fp) != 0 || ferror(fp))
		rc = EXIT_IO;
	if (fclose(fp) != 0)
		rc = EXIT_IO;
	if (rc != EXIT_OK)
		cli_error(cmd, "writing '%s' failed: %s", path,
			  strerror(errno));
	return rc;
}
