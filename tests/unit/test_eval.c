/*
 * Unit tests for the message side of probes/eval.c: the result channel
 * cut into lines, the helper's {"bye":...} line, and the hello, batch and
 * GC.stat messages (fixtures in tests/fixtures/helper, see its README).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/probes.h"

#ifndef LP_SRCDIR
#define LP_SRCDIR "."
#endif
#define FIXDIR LP_SRCDIR "/tests/fixtures/helper"

static void
test_next_line(void **state)
{
	char buf[] = "a\n\nbc\n{\"partial\"";
	size_t len = strlen(buf), cap = 0;
	char *line = NULL;

	(void)state;
	assert_true(probe__next_line(buf, &len, &line, &cap));
	assert_string_equal(line, "a");
	assert_true(probe__next_line(buf, &len, &line, &cap));
	assert_string_equal(line, "");
	assert_true(probe__next_line(buf, &len, &line, &cap));
	assert_string_equal(line, "bc");
	/* a partial line stays buffered */
	assert_false(probe__next_line(buf, &len, &line, &cap));
	assert_int_equal(len, strlen("{\"partial\""));
	assert_memory_equal(buf, "{\"partial\"", len);
	len = 0;
	assert_false(probe__next_line(buf, &len, &line, &cap));
	free(line);
}

static void
test_take_bye(void **state)
{
	char bye[8] = "";

	(void)state;
	assert_false(probe__take_bye("{\"calls\":1}", bye, sizeof(bye)));
	assert_string_equal(bye, "");
	/* after a partial line the helper could not finish */
	assert_true(probe__take_bye("{\"kind\":\"meas{\"bye\":\"killed\"}", bye,
				    sizeof(bye)));
	assert_string_equal(bye, "killed");
	/* cut to the buffer; no closing quote: to the end */
	assert_true(probe__take_bye("{\"bye\":\"a very long reason", bye,
				    sizeof(bye)));
	assert_string_equal(bye, "a very ");
}

static void
test_parse_msg_errors(void **state)
{
	struct lp_err err;
	json_t *msg;

	(void)state;
	lp_err_clear(&err);
	assert_int_equal(probe__parse_msg("{\"calls\":", &msg, &err),
			 -LP_EINJECT);
	assert_null(msg);
	assert_non_null(strstr(err.msg, "bad message from the helper"));
	lp_err_clear(&err);
	assert_int_equal(probe__parse_msg("[1,2]", &msg, &err), -LP_EINJECT);
	assert_null(msg);
	assert_non_null(strstr(err.msg, "not a JSON object"));
	lp_err_clear(&err);
	assert_int_equal(probe__parse_msg("{\"hello\":2}", &msg, &err), 0);
	{
		struct probe_hello h;

		memset(&h, 0, sizeof(h));
		assert_int_equal(probe__parse_hello(msg, &h), -1);
	}
	json_decref(msg);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

/*
 * Integers written as reals out of int64_t range are unknown (-1), not
 * cast (undefined behaviour: x86 gave INT64_MIN); reals in range are
 * truncated.  Found by tests/fuzz/fuzz_helper.c.
 */
static void
test_huge_reals(void **state)
{
	char *text = slurp(FIXDIR "/huge-reals.jsonl"), *line = NULL;
	size_t len = strlen(text), cap = 0;
	struct probe_hello h;
	struct probe_result r;
	struct probe_gc gc;
	struct lp_err err;
	json_t *msg;

	(void)state;
	lp_err_clear(&err);
	assert_true(probe__next_line(text, &len, &line, &cap));
	assert_int_equal(probe__parse_msg(line, &msg, &err), 0);
	memset(&h, 0, sizeof(h));
	h.first_bad = -1;
	assert_int_equal(probe__parse_hello(msg, &h), 0);
	json_decref(msg);
	assert_string_equal(h.ruby, "ruby 3.1.2");
	assert_int_equal(h.nsnippets, -1);
	assert_int_equal(h.compile_errors, 1);
	assert_int_equal(h.nbad, 1);
	assert_int_equal(h.bad_idx[0], -1);
	assert_int_equal(h.first_bad, -1);
	assert_true(h.err.raised);
	assert_string_equal(h.err.err_class, "SyntaxError");
	assert_int_equal(h.gc.live_slots, -1);		/* 1e19 */
	assert_int_equal(h.gc.pages, -1);		/* -1e19 */
	assert_int_equal(h.gc.allocated, -1);		/* a string */
	assert_int_equal(h.gc.freed, 9200000000000000000LL);
	assert_int_equal(h.gc.malloc_increase, -1);	/* -9.3e18 */
	assert_int_equal(h.gc.count, 1);		/* 1.5 */
	assert_int_equal(h.gc.major, -2);		/* -2.5 */

	assert_true(probe__next_line(text, &len, &line, &cap));
	assert_int_equal(probe__parse_msg(line, &msg, &err), 0);
	memset(&r, 0, sizeof(r));
	probe__parse_run(msg, &r);
	json_decref(msg);
	assert_int_equal(r.calls, (uint64_t)-1);
	assert_true(r.seconds == 0.5);
	assert_int_equal(r.gc.live_slots, -1);
	assert_int_equal(r.gc.pages, -1);		/* 2^63: past the top */
	assert_true(r.gc.allocated == INT64_MIN);	/* -2^63: in range */
	assert_int_equal(r.gc.count, -1);		/* missing */
	assert_false(r.raised);

	assert_true(probe__next_line(text, &len, &line, &cap));
	memset(&gc, 0, sizeof(gc));
	assert_true(probe__parse_gcstat(line, &gc));
	assert_int_equal(gc.live_slots, -1);
	assert_int_equal(gc.count, 7);
	assert_false(probe__parse_gcstat("{\"gc\":{}}", &gc));
	assert_false(probe__next_line(text, &len, &line, &cap));
	free(line);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_line),
		cmocka_unit_test(test_take_bye),
		cmocka_unit_test(test_parse_msg_errors),
		cmocka_unit_test(test_huge_reals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
