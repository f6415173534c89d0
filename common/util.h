#ifndef LP_COMMON_UTIL_H
#define LP_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* Monotonic and wall clocks in nanoseconds. */
uint64_t lp_mono_ns(void);
uint64_t lp_wall_ns(void);
/* Sleep until the absolute monotonic deadline (lp_mono_ns); false when
 * lp_stop_signal is set (before or during the sleep). */
bool lp_sleep_until(uint64_t deadline_ns);
/* Format a wall-clock time (ns since epoch) as local ISO-8601 with ms and
 * UTC offset, e.g. 2026-11-22T01:53:27.123+0000.  buf >= 32 bytes. */
void lp_iso8601(uint64_t wall_ns, char *buf, size_t len);
/* Compact form used in file names: 20261122T015327 (local time). */
void lp_stamp(uint64_t wall_ns, char *buf, size_t len);
/* Human-readable size with sign when want_sign: "1.2 MiB", "+64 B". */
void lp_human_bytes(double bytes, int want_sign, char *buf, size_t len);

/*
 * Read a whole file (typically under /proc) into *buf, growing it as
 * needed; *cap is its capacity.  One read(2) loop, no per-line work.
 * Returns the length, or a negative LP_E* code filled into err.
 */
ssize_t lp_read_file(const char *path, char **buf, size_t *cap,
		     struct lp_err *err);

/* Parse helpers for the cli; return 0 or -LP_EINVAL. */
int lp_parse_pid(const char *s, pid_t *out);
int lp_parse_u64(const char *s, uint64_t *out);
int lp_parse_seconds(const char *s, double *out);

/* Safe point for signal handlers: set by cli, polled by every wait loop. */
extern volatile int lp_stop_signal;

#endif
