#ifndef LP_CLI_PROGRESS_H
#define LP_CLI_PROGRESS_H

/*
 * How a long command shows its progress.  On a terminal: one line on
 * stderr, rewritten in place with \r and cleared before anything else is
 * printed, so that what stays on the screen ends in the result.  With -v,
 * or when stdout is not a terminal (a file, a pipe, a CI log): the
 * per-batch table on stdout instead, under a one-line legend.
 */

#include <stdbool.h>
#include <stddef.h>

struct cli_show {
	bool table;	/* per-batch lines on stdout */
	bool progress;	/* the progress line on stderr */
	bool legend;	/* the table's legend was printed */
	size_t width;	/* terminal columns (progress) */
	bool shown;	/* a progress line is on the screen */
};

/*
 * Decide for this run: nothing when quiet (or --json); else the table
 * with -v or when stdout is not a terminal, else the progress line when
 * stderr is a terminal.
 */
void cli_show_init(struct cli_show *sh, bool quiet);
/* Print the legend once (before the first table line); no-op unless the
 * table is on. */
void cli_show_legend(struct cli_show *sh, const char *legend);
/* Rewrite the progress line (cut to the terminal's width); no-op unless
 * the progress line is on. */
void cli_progress(struct cli_show *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Clear the progress line, if one is on the screen. */
void cli_progress_clear(struct cli_show *sh);
/* Clear whichever progress line is on the screen (cli_error calls it, so
 * a message never lands at the end of a progress line). */
void cli_progress_clear_any(void);

/* The legend of cli_print_batch() lines. */
extern const char cli_batch_legend[];

#endif
