/*
 * /proc/PID/maps: inj__parse_maps() on NUL-terminated text, as
 * inj_refresh_maps() reads it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "injector/injector_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct inj_map *m = NULL;
	struct lp_err err;
	size_t n = 0;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	lp_err_clear(&err);
	if (inj__parse_maps(text, &m, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (m[i].end <= m[i].start)
				abort();	/* the parser rejects these */
			if (m[i].path)
				(void)strlen(m[i].path);
		}
		inj__free_maps(m, n);
	}
	free(text);
	return 0;
}
