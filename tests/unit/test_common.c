/*
 * Unit tests for common/: libraries loaded on first use (lazy.c), the
 * stoppable sleep (util.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/lazy.h"
#include "common/util.h"

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

static void
test_sleep_until_deadline(void **state)
{
	uint64_t deadline;

	(void)state;
	lp_stop_signal = 0;
	deadline = lp_mono_ns() + 2000000;
	assert_true(lp_sleep_until(deadline));
	assert_true(lp_mono_ns() >= deadline);
	/* a deadline already past returns at once */
	assert_true(lp_sleep_until(0));
}

static void
on_alarm(int sig)
{
	lp_stop_signal = sig;
}

static void
test_sleep_until_stopped(void **state)
{
	struct itimerval it = { { 0, 0 }, { 0, 10000 } };
	struct sigaction sa, old;

	(void)state;
	/* set before: no sleep at all (an hour would hang the test) */
	lp_stop_signal = SIGINT;
	assert_false(lp_sleep_until(lp_mono_ns() + 3600000000000ull));
	/* set by a signal during the sleep (no SA_RESTART, as the cli's) */
	lp_stop_signal = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_false(lp_sleep_until(lp_mono_ns() + 3600000000000ull));
	assert_int_equal(lp_stop_signal, SIGALRM);
	sigaction(SIGALRM, &old, NULL);
	lp_stop_signal = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_missing_library),
		cmocka_unit_test(test_lazy_missing_later_library),
		cmocka_unit_test(test_lazy_symbol),
		cmocka_unit_test(test_lazy_stub_forwards),
		cmocka_unit_test(test_sleep_until_deadline),
		cmocka_unit_test(test_sleep_until_stopped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
