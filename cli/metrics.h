#ifndef LP_CLI_METRICS_H
#define LP_CLI_METRICS_H

/*
 * Prometheus exposition of watch samples: the text is rendered here, then
 * written to a file for node_exporter's textfile collector (temporary
 * file + rename) and/or served over HTTP on /metrics (libmicrohttpd).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analysis/analysis.h"
#include "common/err.h"

enum cli_mfmt {
	CLI_MFMT_TEXT,		/* Prometheus text format 0.0.4 */
	CLI_MFMT_OPENMETRICS,	/* OpenMetrics 1.0.0 text */
	CLI_MFMT_TEXTFILE,	/* 0.0.4 plus # UNIT and # EOF lines: read
				 * by the textfile collector and promtool */
};

/* One process in the exposition. */
struct cli_mproc {
	const struct ana_sample *s;	/* newest sample (not owned) */
	uint64_t starttime;		/* /proc/PID/stat start time, ticks */
	bool have_rate;
	double rate;			/* heap+arena+anon, bytes per second */
	double rate_window;		/* seconds the rate spans */
};

/* A growable text buffer. */
struct cli_mbuf {
	char *p;
	size_t len, cap;
};

void cli_mbuf_release(struct cli_mbuf *b);

/*
 * Render the exposition of n processes (sampled at wall time now_ns) in
 * format fmt into b (cleared first).  gc: the GC.stat families, for the
 * processes whose sample has them.
 */
void cli_metrics_render(struct cli_mbuf *b, enum cli_mfmt fmt,
			const struct cli_mproc *p, size_t n, bool gc,
			uint64_t now_ns);

/*
 * Replace path with text atomically: write "path.PID.tmp" in the same
 * directory and rename it over path, so a reader never sees half a file.
 * Returns 0 or -LP_EIO with err (the temporary file is removed).
 */
int cli_metrics_write_file(const char *path, const char *text, size_t len,
			   struct lp_err *err);

struct cli_httpd;

/* Load libmicrohttpd (dlopen, once; cli/mhd_lib.c).  0, or -LP_ENOTOOL
 * naming the library and the package to install. */
int cli_httpd_load(struct lp_err *err);

/*
 * Listen on addr ("HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 picks a
 * free one) and serve /metrics from a thread of libmicrohttpd.  Returns
 * NULL with err: -LP_EINVAL for a malformed address, -LP_EIO when the
 * socket cannot be bound, -LP_ENOTOOL when libmicrohttpd is missing.  *bound gets "HOST:PORT" as bound.
 */
struct cli_httpd *cli_httpd_start(const char *addr, char *bound,
				  size_t boundlen, struct lp_err *err);
/* Publish the newest exposition in both formats (copied). */
void cli_httpd_publish(struct cli_httpd *h, const struct cli_mbuf *text,
		       const struct cli_mbuf *om);
/* Stop serving and free everything; NULL is a no-op. */
void cli_httpd_stop(struct cli_httpd *h);

#endif
