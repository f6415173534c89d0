#include "cli/cmds.h"
#include "cli/exit.h"

int
cmd_attach(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("attach", "not implemented yet");
	return EXIT_USAGE;
}
