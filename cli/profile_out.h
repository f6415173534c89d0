#ifndef LP_CLI_PROFILE_OUT_H
#define LP_CLI_PROFILE_OUT_H

/*
 * Stacks where people read stacks: --format pprof and folded for malloc
 * sites (leakprobe malloc, attach --malloc-sites) and for heapdiff's
 * Ruby allocation sites, and the file they are written to (-o).
 */

#include <stdbool.h>
#include <stdint.h>

#include "analysis/analysis.h"
#include "probes/probes.h"

enum cli_format {
	CLI_FMT_TEXT,
	CLI_FMT_JSON,
	CLI_FMT_PPROF,
	CLI_FMT_FOLDED
};

/* Parse --format ARG (text, json, pprof, folded); EXIT_OK, EXIT_USAGE,
 * or for pprof without libprotobuf-c EXIT_INJECT (after saying so). */
int cli_format_parse(const char *cmd, const char *arg, enum cli_format *out);
/* True for pprof and folded. */
bool cli_format_stacks(enum cli_format f);

/*
 * A profile built from one of leakprobe's results, with everything it
 * points to owned here (cli_prof_release).
 */
struct cli_prof {
	struct ana_prof p;
	struct ana_prof_stack *stacks;
	struct ana_prof_frame *frames;
	struct ana_prof_map *maps;
	char **strs;		/* strings owned */
	size_t nstrs, scap;
	const char *cmts[8];
};

/* Every site of a malloc report: frames leaf (the allocator function)
 * first, modules as mappings with their build-ids.  The report must
 * outlive cp. */
void cli_prof_malloc(struct cli_prof *cp,
		     const struct probe_malloc_report *r);
/*
 * Ruby allocation sites (heapdiff --by site): each row is a stack of
 * "FILE:LINE" under its method (two frames; one without a method),
 * valued by retained bytes and objects.  The rows must outlive cp.
 */
void cli_prof_hd_sites(struct cli_prof *cp, const struct ana_hd_row *rows,
		       size_t nrows);
void cli_prof_release(struct cli_prof *cp);

/*
 * Write p as pprof or folded to path (NULL or "-": stdout; pprof is not
 * written to a terminal).  Returns an exit status, having said why.
 */
int cli_prof_write(const char *cmd, const struct ana_prof *p,
		   enum cli_format f, const char *path);

#endif
