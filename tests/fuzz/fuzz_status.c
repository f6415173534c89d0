/*
 * /proc/PID/status and /proc/PID/stat as inj_read_procinfo() reads them:
 * inj__parse_status() and inj__parse_stat_start() on NUL-terminated text.
 * The input is the status text; after its first NUL byte, the stat text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "injector/injector_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	const uint8_t *nul = memchr(data, '\0', size);
	struct inj_procinfo info;
	struct lp_err err;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	memset(&info, 0, sizeof(info));
	lp_err_clear(&err);
	(void)inj__parse_status(buf, 4242, &info, &err);
	if (memchr(info.comm, '\0', sizeof(info.comm)) == NULL)
		abort();
	if (nul)
		info.start_time = inj__parse_stat_start(buf + (nul - data) + 1);
	free(buf);
	return 0;
}
