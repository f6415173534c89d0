#ifndef LP_CLI_MEASURE_H
#define LP_CLI_MEASURE_H

/* Helpers shared by the measuring commands: attach, ab, bisect, run. */

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "analysis/analysis.h"
#include "probes/probes.h"

#define CLI_MAX_SNIPPET (64u << 20)

/*
 * Read a snippet file ('-' = stdin) into *buf (malloc'd, NUL-terminated,
 * caller frees).  Prints the error; returns an exit status.
 */
int cli_read_code(const char *cmd, const char *path, char **buf,
		  size_t *len);
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
/* Exit status of a verdict under --fail-on-growth (fail_set false: 0). */
int cli_verdict_exit(const struct ana_verdict *v, bool fail_set,
		     uint64_t fail_on_growth);

#endif
