#include "cli/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"

const char cli_batch_legend[] =
	"# kind    calls/total  resident after the batch: [heap], malloc "
	"arenas, other anon, RSS; live Ruby slots; time";

/* The one progress line that may be on the screen. */
static struct cli_show *active;

void
cli_show_init(struct cli_show *sh, bool quiet)
{
	struct winsize ws;

	memset(sh, 0, sizeof(*sh));
	if (quiet || lp_verbose < 0)
		return;
	sh->table = lp_verbose > 0 || !isatty(STDOUT_FILENO);
	sh->progress = !sh->table && isatty(STDERR_FILENO);
	sh->width = 80;
	if (sh->progress && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 10)
		sh->width = ws.ws_col;
}

void
cli_show_legend(struct cli_show *sh, const char *legend)
{
	if (!sh->table || sh->legend)
		return;
	sh->legend = true;
	printf("%s\n", legend);
}

void
cli_progress(struct cli_show *sh, const char *fmt, ...)
{
	char line[512];
	size_t n;
	va_list ap;

	if (!sh->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* never wrap: a wrapped line cannot be rewritten with \r */
	n = strlen(line);
	if (n > sh->width - 1)
		line[sh->width - 1] = '\0';
	fflush(stdout);
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	sh->shown = true;
	active = sh;
}

void
cli_progress_clear(struct cli_show *sh)
{
	if (!sh->shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	sh->shown = false;
	if (active == sh)
		active = NULL;
}

void
cli_progress_clear_any(void)
{
	if (active)
		cli_progress_clear(active);
}
