#ifndef LP_PROBES_H
#define LP_PROBES_H

/*
 * probes/: what runs in or against a target.  The smaps sampler, Ruby
 * detection, the safe-point eval session (wrapper program, result
 * channel, batches).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analysis/analysis.h"
#include "common/err.h"

/* ---- sampler.c ----------------------------------------------------- */

/*
 * Read /proc/PID/smaps (or smaps_rollup when rollup) into s and parse it.
 * Returns 0, -LP_ENOPROC when the process is gone, -LP_EPERM.
 */
int probe_smaps_read(pid_t pid, bool rollup, struct ana_smaps *s,
		     struct lp_err *err);
/* Command name of pid (from /proc/PID/comm), "" when unreadable. */
void probe_comm(pid_t pid, char *buf, size_t len);

#endif
