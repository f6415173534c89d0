/*
 * Unit tests for analysis/steps.c: the steps file of bisect.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

/* Parse a copy of text: the result; the steps in st, their count in n. */
static int
parse(const char *text, struct ana_step *st, int *n, struct lp_err *err)
{
	size_t len = strlen(text);
	char *buf = malloc(len + 1);
	int rc;

	assert_non_null(buf);
	memcpy(buf, text, len + 1);
	lp_err_clear(err);
	rc = ana_steps_parse("s.rb", buf, len, st, n, err);
	free(buf);
	return rc;
}

static void
test_steps_cut(void **state)
{
	struct ana_step st[ANA_MAX_STEPS];
	struct lp_err err;
	int n;

	(void)state;
	assert_int_equal(parse("# leading comment\n\n# step: a\nx = 1\n"
			       "  \t# step:   b c  \ny\n# step:z", st, &n,
			       &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(st[0].name, "a");
	assert_string_equal(st[0].code, "x = 1\n");
	assert_int_equal(st[0].len, 6);
	assert_string_equal(st[1].name, "b c");
	assert_string_equal(st[1].code, "y\n");
	assert_string_equal(st[2].name, "z");	/* no newline at the end */
	assert_string_equal(st[2].code, "");
	ana_steps_release(st, n);
}

static void
test_steps_errors(void **state)
{
	struct ana_step st[ANA_MAX_STEPS];
	struct lp_err err;
	char *many;
	size_t o = 0;
	int n;

	(void)state;
	assert_int_equal(parse("", st, &n, &err), -LP_EPARSE);
	assert_int_equal(n, 0);
	assert_string_equal(err.msg, "'s.rb' has no steps: introduce each "
			    "with a line '# step: NAME'");
	assert_int_equal(parse("x = 1\n# step: a\n", st, &n, &err),
			 -LP_EPARSE);
	assert_string_equal(err.msg, "'s.rb' line 1: code before the first "
			    "'# step: NAME' line");
	assert_int_equal(parse("# step: a\n1\n# step:  \n", st, &n, &err),
			 -LP_EPARSE);
	assert_string_equal(err.msg, "'s.rb' line 3: a step needs a name: "
			    "'# step: NAME'");
	ana_steps_release(st, n);
	assert_int_equal(parse("# step: a\n1\n# step: a\n", st, &n, &err),
			 -LP_EPARSE);
	assert_string_equal(err.msg, "'s.rb' line 3: step 'a' appears twice");
	assert_int_equal(n, 1);
	ana_steps_release(st, n);
	many = malloc(100 * 16);
	assert_non_null(many);
	for (int i = 0; i <= ANA_MAX_STEPS; i++)
		o += (size_t)sprintf(many + o, "# step: s%d\n", i);
	assert_int_equal(parse(many, st, &n, &err), -LP_EPARSE);
	assert_string_equal(err.msg, "'s.rb': more than 64 steps");
	assert_int_equal(n, ANA_MAX_STEPS);
	ana_steps_release(st, n);
	free(many);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps_cut),
		cmocka_unit_test(test_steps_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
