#ifndef LP_CLI_MEASURE_H
#define LP_CLI_MEASURE_H

/* Helpers shared by the measuring commands: attach, ab, bisect, run. */

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analysis/analysis.h"
#include "probes/probes.h"

#define CLI_MAX_SNIPPET (64u << 20)

/*
 * Options shared by the measuring commands (attach, ab, bisect, malloc):
 * each lists the ones it takes in its getopt table (CLI_OPT_*), hands
 * every option to cli_mopt() first and handles the rest itself, so a
 * shared option means and checks the same everywhere.
 */
struct cli_mopts {
	uint64_t times, batch, warmup;	/* batch 0: not given */
	double timeout;
	bool gc, control, json, quiet;
	bool fail_set;
	uint64_t fail_on_growth, max_growth;
	bool have_warmup, have_control;
};

enum {
	CLI_O_NOGC = 1000, CLI_O_NOCTL, CLI_O_FAIL, CLI_O_MAX, CLI_O_JSON,
	CLI_O_FIRST_OWN		/* a command's own long-only options */
};

#define CLI_OPT_TIMES	{ "times", required_argument, NULL, 'n' }
#define CLI_OPT_BATCH	{ "batch", required_argument, NULL, 'b' }
#define CLI_OPT_WARMUP	{ "warmup", required_argument, NULL, 'w' }
#define CLI_OPT_NOGC	{ "no-gc", no_argument, NULL, CLI_O_NOGC }
#define CLI_OPT_NOCTL	{ "no-control", no_argument, NULL, CLI_O_NOCTL }
#define CLI_OPT_TIMEOUT	{ "timeout", required_argument, NULL, 't' }
#define CLI_OPT_FAIL	{ "fail-on-growth", required_argument, NULL, \
			  CLI_O_FAIL }
#define CLI_OPT_MAX	{ "max-growth", required_argument, NULL, CLI_O_MAX }
#define CLI_OPT_JSON	{ "json", no_argument, NULL, CLI_O_JSON }
#define CLI_OPT_QUIET	{ "quiet", no_argument, NULL, 'q' }
#define CLI_OPT_VERBOSE	{ "verbose", no_argument, NULL, 'v' }
#define CLI_OPT_HELP	{ "help", no_argument, NULL, 'h' }

/* Defaults: times and warm-up batches as given, GC and control batches
 * on, 30 s timeout, 64 MiB growth limit. */
void cli_mopts_init(struct cli_mopts *m, uint64_t times, uint64_t warmup);
/*
 * Option c (with its argument) if it is a shared one: returns EXIT_OK,
 * or EXIT_USAGE after printing the error; -1 when c is not shared.
 */
int cli_mopt(const char *cmd, int c, const char *arg, struct cli_mopts *m);
/* After the options: the default batch (a tenth of --times), at most
 * --times. */
void cli_mopts_finish(struct cli_mopts *m);

/*
 * Read a snippet file ('-' = stdin) into *buf (malloc'd, NUL-terminated,
 * caller frees).  Prints the error; returns an exit status.
 */
int cli_read_code(const char *cmd, const char *path, char **buf,
		  size_t *len);
/*
 * The snippet of --eval CODE (a copy) or, without it, of --file PATH
 * (cli_read_code); neither leaves *buf NULL.  Prints the error; returns
 * an exit status.
 */
int cli_take_code(const char *cmd, const char *eval, const char *file,
		  char **buf, size_t *len);
/* The one PID operand after the options (argv[optind_]).  Prints the
 * error; returns an exit status. */
int cli_one_pid(const char *cmd, int argc, char **argv, int optind_,
		pid_t *pid);
/* Refuse a NUL byte (Ruby stops parsing there).  Returns an exit status. */
int cli_check_code(const char *cmd, const char *what, const char *code,
		   size_t len);
/*
 * Start a safe-point session (with a heap-dump channel when dump); on
 * failure print the error (and the main
 * thread's stack on a timeout) and set *rc to the exit status.
 */
struct probe_session *cli_session_start(const char *cmd, pid_t pid,
					const struct probe_snippet *sn,
					size_t n, double timeout, bool dump,
					struct probe_hello *hello, int *rc);
/* The same with every option of the session given. */
struct probe_session *cli_session_start_opts(const char *cmd, pid_t pid,
					     const struct probe_opts *po,
					     struct probe_hello *hello,
					     int *rc);
/* "CMD: WHAT raised Class: message" and the backtrace on stderr. */
void cli_print_raised(const char *cmd, const struct probe_result *r,
		      const char *what);
/* One human line for a batch. */
void cli_print_batch(const char *label, const struct ana_batch *b,
		     uint64_t done, uint64_t total);
const char *cli_batch_kind(const struct ana_batch *b);
json_t *cli_batch_json(const struct ana_batch *b);
json_t *cli_estimate_json(const struct ana_estimate *e);
json_t *cli_verdict_json(const struct ana_verdict *v);
/* The bytes/call every kind of leak must reach: --fail-on-growth, or
 * the default floor. */
double cli_leak_floor(const struct cli_mopts *m);
/* Exit status of a verdict under --fail-on-growth (fail_set false: 0). */
int cli_verdict_exit(const struct ana_verdict *v, bool fail_set,
		     uint64_t fail_on_growth);

#endif
