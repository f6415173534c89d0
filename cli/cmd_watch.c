#include "cli/cmds.h"
#include "cli/exit.h"

int
cmd_watch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("watch", "not implemented yet");
	return EXIT_USAGE;
}
