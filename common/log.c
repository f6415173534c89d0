#include "log.h"

#include <stdarg.h>
#include <stdio.h>

int lp_verbose;

void
lp_debug(const char *fmt, ...)
{
	va_list ap;

	if (lp_verbose < 2)
		return;
	va_start(ap, fmt);
	fputs("leakprobe: debug: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
