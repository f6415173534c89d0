/*
 * leakprobe: find memory leaks in live Ruby (MRI) processes.
 * Global options, then a table of commands.
 */
#include "cli/cmds.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "cli/progress.h"
#include "common/log.h"
#include "common/util.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "attach", cmd_attach,
	  "run a snippet in batches inside a live Ruby process; leak verdict" },
	{ "eval", cmd_eval,
	  "run Ruby code once in a live process and print its value" },
	{ "ab", cmd_ab,
	  "compare two snippets in the same live process, A/B interleaved" },
	{ "bisect", cmd_bisect,
	  "find which steps of a worker loop leak (alone or together)" },
	{ "run", cmd_run,
	  "start a target, wait until ready, measure, stop it (for CI)" },
	{ "heapdump", cmd_heapdump,
	  "ObjectSpace.dump_all of a live process, streamed to a file" },
	{ "watch", cmd_watch,
	  "sample memory of processes over time (CSV or JSON lines)" },
	{ "plot", cmd_plot, "plot a watch file with gnuplot (SVG or PNG)" },
	{ "heapdiff", cmd_heapdiff,
	  "objects retained between Ruby heap dumps, per allocation site" },
	{ "malloc", cmd_malloc,
	  "which native stacks hold the bytes that grew (eBPF uprobes)" },
	{ "report", cmd_report,
	  "one self-contained HTML page from a run's files (plot, verdict)" },
	{ "help", cmd_help, "show help for leakprobe or a command" },
	{ "version", cmd_version, "print the version" },
};

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: leakprobe [-v|-q] COMMAND [options]\n"
		"       leakprobe COMMAND --help\n"
		"       leakprobe --version\n\n"
		"Find memory leaks in live Ruby (MRI) processes.\n\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(fp, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(fp, "\nexit status: 0 ok, 1 leak over --fail-on-growth, "
		"2 usage, 3 target error,\n4 injection/timeout/missing tool, "
		"5 snippet raised, 6 local i/o, 7 inconclusive\n"
		"See leakprobe(1).\n");
}

int
cmd_help(int argc, char **argv)
{
	const struct command *c;
	char *sub[3];

	if (argc < 2) {
		usage(stdout);
		return cli_finish_stdout("help", EXIT_OK);
	}
	c = find_command(argv[1]);
	if (!c || c->fn == cmd_help) {
		cli_error("help", "unknown command '%s'; see 'leakprobe --help'",
			  argv[1]);
		return EXIT_USAGE;
	}
	sub[0] = argv[1];
	sub[1] = "--help";
	sub[2] = NULL;
	return c->fn(2, sub);
}

int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("leakprobe %s\n", LP_VERSION);
	return cli_finish_stdout("version", EXIT_OK);
}

void
cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	cli_progress_clear_any();
	fflush(stdout);
	fprintf(stderr, "leakprobe: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_exit_code(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case LP_OK:
		return EXIT_OK;
	case LP_EINVAL:
		return EXIT_USAGE;
	case LP_ENOPROC:
	case LP_EPERM:
	case LP_ENOTRUBY:
	case LP_EZOMBIE:
	case LP_ETRACED:
	case LP_EBUSY:
	case LP_ESELF:
	case LP_EEXITED:
	case LP_EUNSAFE:
		return EXIT_TARGET;
	case LP_ESNIPPET:
		return EXIT_SNIPPET;
	case LP_EIO:
		return EXIT_IO;
	default:
		return EXIT_INJECT;
	}
}

int
cli_report(const char *cmd, const struct lp_err *err)
{
	const char *hint = NULL;

	switch (err->code) {
	case LP_EPERM:
		hint = "run as root or as the target's user; check "
		       "/proc/sys/kernel/yama/ptrace_scope and that no other "
		       "tracer holds it";
		break;
	case LP_ETRACED:
		/* a stopped target's message says how to resume it; the
		 * other tracer may be a leakprobe that got there first */
		if (strstr(err->msg, "(leakprobe)"))
			hint = "another leakprobe is probing it: wait until "
			       "it ends";
		else if (!strstr(err->msg, " is stopped;"))
			hint = "detach the other tracer first";
		break;
	case LP_ENOPROC:
		hint = "check the pid with 'ps -p PID'";
		break;
	default:
		break;
	}
	if (hint)
		cli_error(cmd, "%s (%s)", err->msg[0] ? err->msg :
			  lp_strerror(err->code), hint);
	else
		cli_error(cmd, "%s", err->msg[0] ? err->msg :
			  lp_strerror(err->code));
	return cli_exit_code(err->code);
}

static void
on_signal(int sig)
{
	lp_stop_signal = sig;
}

void
cli_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: waits see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);	/* no core dump mid-injection */
	signal(SIGPIPE, SIG_IGN);
}

int
cli_finish_stdout(const char *cmd, int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(cmd, "writing to standard output: %s",
			  strerror(errno));
		return rc ? rc : EXIT_IO;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	const struct command *c;
	int i = 1;

	/* First thing: from here on SIGINT/SIGTERM/SIGHUP only set a flag
	 * that every command polls, so no signal can cut a run short while
	 * a target is held. */
	cli_install_signals();
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
			lp_verbose++;
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			lp_verbose = -1;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return cli_finish_stdout(NULL, EXIT_OK);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version"))
			return cmd_version(0, NULL);
		else {
			cli_error(NULL, "unknown option '%s'; see "
				  "'leakprobe --help'", a);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	c = find_command(argv[i]);
	if (!c) {
		cli_error(NULL, "unknown command '%s'; see 'leakprobe --help'",
			  argv[i]);
		return EXIT_USAGE;
	}
	return c->fn(argc - i, argv + i);
}
