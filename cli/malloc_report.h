#ifndef LP_CLI_MALLOC_REPORT_H
#define LP_CLI_MALLOC_REPORT_H

/*
 * Printing of malloc-site reports, shared by `leakprobe malloc` and
 * `leakprobe attach --malloc-sites`.
 */

#include <stdio.h>

#include "probes/probes.h"

struct json_t;

/*
 * Human-readable report: window, totals reconciled with the smaps growth,
 * sampling, losses, cost, then the sites with their frames.  calls > 0
 * adds bytes per call to each site (snippet runs).
 */
void cli_print_malloc_sites(FILE *fp, const struct probe_malloc_report *r,
			    uint64_t calls);
/* The same as a new JSON object (caller owns the reference). */
struct json_t *cli_malloc_sites_json(const struct probe_malloc_report *r,
				     uint64_t calls);

#endif
