#ifndef LP_CLI_EXIT_H
#define LP_CLI_EXIT_H

/* Exit statuses of every command (DESIGN §9; man page EXIT STATUS). */
enum {
	EXIT_OK = 0,		/* done: no leak, or leak w/o --fail-on-growth */
	EXIT_LEAK = 1,		/* lower 95 % bound >= --fail-on-growth */
	EXIT_USAGE = 2,		/* usage error */
	EXIT_TARGET = 3,	/* no such process, not Ruby, zombie, traced,
				 * permission */
	EXIT_INJECT = 4,	/* injection/tracing error, timeout, missing
				 * tool (gnuplot), BPF unusable */
	EXIT_SNIPPET = 5,	/* the snippet raised */
	EXIT_IO = 6,		/* local I/O error: output file, disk full */
	EXIT_INCONCLUSIVE = 7	/* inconclusive under --fail-on-growth */
};

#endif
