#ifndef LP_CLI_CMDS_H
#define LP_CLI_CMDS_H

#include <stdio.h>

#include "common/err.h"

/* Each command parses its own options and returns an exit status. */
int cmd_watch(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_ab(int argc, char **argv);
int cmd_bisect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_heapdump(int argc, char **argv);
int cmd_heapdiff(int argc, char **argv);
/* heapdiff --series DIR (cli/cmd_heapseries.c) */
int cmd_heapseries(int argc, char **argv);
int cmd_malloc(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Print "leakprobe: CMD: msg" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Map an LP_E* code to an exit status (cli/exit.h). */
int cli_exit_code(int lp_code);
/* Print err (with a hint for EPERM/ETRACED) and return its exit status. */
int cli_report(const char *cmd, const struct lp_err *err);
/* Install SIGINT/SIGTERM/SIGHUP handlers (no SA_RESTART) that set
 * lp_stop_signal; SIGPIPE ignored. */
void cli_install_signals(void);
/* fflush stdout and report a write failure as EXIT_IO (or keep rc). */
int cli_finish_stdout(const char *cmd, int rc);

#endif
