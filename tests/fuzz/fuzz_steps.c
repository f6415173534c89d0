/*
 * The steps file of bisect: ana_steps_parse() on NUL-terminated text, as
 * cli_read_code() reads it.  Every step has a non-empty name, distinct
 * from the others, and its code lies inside the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ana_step steps[ANA_MAX_STEPS];
	char *text = malloc(size + 1);
	struct lp_err err;
	int n = -1, rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	lp_err_clear(&err);
	rc = ana_steps_parse("fuzz.rb", text, size, steps, &n, &err);
	if (n < 0 || n > ANA_MAX_STEPS || (rc == 0 && n == 0))
		abort();
	for (int i = 0; i < n; i++) {
		if (!steps[i].name[0] || steps[i].len > size)
			abort();
		if (rc == 0 && !steps[i].code)
			abort();
		for (int j = 0; j < i; j++)
			if (!strcmp(steps[i].name, steps[j].name))
				abort();
	}
	ana_steps_release(steps, n);
	free(text);
	return 0;
}
