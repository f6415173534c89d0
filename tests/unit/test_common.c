/*
 * Unit tests for common/: libraries loaded on first use (lazy.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/lazy.h"

static struct lp_lazy libc_lib = { { "libc.so.6", NULL, NULL }, { NULL }, 0,
				   "" };

/* A stub of libc's own getppid in this program: it must reach the real
 * one through the handle, not itself. */
LP_LAZY_FN(libc_lib, pid_t, getppid, (void), ())

static void
test_lazy_missing_library(void **state)
{
	struct lp_lazy l = { { "libleakprobe-nonexistent.so.9", NULL, NULL },
			     { NULL }, 0, "" };

	(void)state;
	assert_int_equal(lp_lazy_load(&l), -1);
	assert_non_null(strstr(l.why, "libleakprobe-nonexistent.so.9"));
	/* the answer is kept: no second attempt */
	assert_int_equal(l.state, -1);
	assert_int_equal(lp_lazy_load(&l), -1);
}

static void
test_lazy_missing_later_library(void **state)
{
	/* a list stops at the first library that fails */
	struct lp_lazy l = { { "libc.so.6", "libleakprobe-nonexistent.so.9",
			       NULL }, { NULL }, 0, "" };

	(void)state;
	assert_int_equal(lp_lazy_load(&l), -1);
	assert_non_null(l.h[0]);
	assert_null(l.h[1]);
}

static void
test_lazy_symbol(void **state)
{
	pid_t (*f)(void);

	(void)state;
	assert_int_equal(lp_lazy_load(&libc_lib), 0);
	*(void **)&f = lp_lazy_sym(&libc_lib, "getpid");
	assert_int_equal(f(), getpid());
}

static void
test_lazy_stub_forwards(void **state)
{
	(void)state;
	assert_int_equal(getppid(), (pid_t)syscall(SYS_getppid));
	/* twice: the second call takes the cached pointer */
	assert_int_equal(getppid(), (pid_t)syscall(SYS_getppid));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_missing_library),
		cmocka_unit_test(test_lazy_missing_later_library),
		cmocka_unit_test(test_lazy_symbol),
		cmocka_unit_test(test_lazy_stub_forwards),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
