/*
 * The steps file of `bisect`: Ruby code cut into named steps by lines
 * "# step: NAME".
 */
#include "analysis/analysis.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
ana_steps_parse(const char *file, char *text, size_t len,
		struct ana_step *steps, int *nsteps, struct lp_err *err)
{
	char *p = text, *end = text + len, *code_start = NULL;
	int lineno = 0, n = 0;

	*nsteps = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		char *q = p;

		lineno++;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		if ((size_t)(eol - q) >= 7 && !strncmp(q, "# step:", 7)) {
			char save = *eol, *name;

			if (n && code_start) {
				struct ana_step *st = &steps[n - 1];

				st->len = (size_t)(p - code_start);
				st->code = xstrndup(code_start, st->len);
			}
			if (n == ANA_MAX_STEPS) {
				*nsteps = n;
				return lp_err_set(err, LP_EPARSE, "'%s': more "
						  "than %d steps", file,
						  ANA_MAX_STEPS);
			}
			*eol = '\0';
			name = trim(q + 7);
			if (!*name) {
				*nsteps = n;
				return lp_err_set(err, LP_EPARSE, "'%s' line %d: "
						  "a step needs a name: "
						  "'# step: NAME'", file,
						  lineno);
			}
			for (int i = 0; i < n; i++)
				if (!strcmp(steps[i].name, name)) {
					*nsteps = n;
					return lp_err_set(err, LP_EPARSE, "'%s' "
							  "line %d: step '%s' "
							  "appears twice",
							  file, lineno, name);
				}
			steps[n].name = xstrdup(name);
			steps[n].code = NULL;
			steps[n].len = 0;
			n++;
			*eol = save;
			code_start = nl ? nl + 1 : end;
		} else if (!n && q < eol && *q != '#') {
			return lp_err_set(err, LP_EPARSE, "'%s' line %d: code "
					  "before the first '# step: NAME' line",
					  file, lineno);
		}
		p = nl ? nl + 1 : end;
	}
	if (n && code_start) {
		struct ana_step *st = &steps[n - 1];

		st->len = (size_t)(end - code_start);
		st->code = xstrndup(code_start, st->len);
	}
	*nsteps = n;
	if (!n)
		return lp_err_set(err, LP_EPARSE, "'%s' has no steps: "
				  "introduce each with a line '# step: NAME'",
				  file);
	return 0;
}

void
ana_steps_release(struct ana_step *steps, int n)
{
	for (int i = 0; i < n; i++) {
		free(steps[i].name);
		free(steps[i].code);
		steps[i].name = steps[i].code = NULL;
	}
}
