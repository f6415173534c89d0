/*
 * The injector against a real child process (a fork of this test): stop
 * it inside a blocking syscall, run syscalls and calls in it, restore it,
 * and check it carries on exactly as before: its read() still gets its
 * data, its sleep is not cut short, its SSE registers are intact, and a
 * signal sent while it was held is delivered after detach.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "injector/injector_int.h"

static volatile long called;
static volatile sig_atomic_t usr1;

/* Called remotely in the child. */
long __attribute__((noinline, used))
lp_test_add(long a, long b)
{
	called = a + b;
	return a + b;
}

/* Called remotely: slower than the call's timeout (a syscall inside). */
long __attribute__((noinline, used))
lp_test_slow(long a)
{
	struct timespec d = { 0, 300 * 1000000L };

	nanosleep(&d, NULL);
	called = a;
	return a;
}

/* Called remotely: stores the trampoline's completion word itself, then
 * runs on, as a signal handler that runs on top of the step after the
 * trampoline stored it (before its rt_sigreturn) would.  Like the
 * kernel's signal frame, which holds the interrupted rip in the
 * trampoline and lies below the 128-byte red zone under the step's stack
 * pointer, it keeps an address in the trampoline (its return address)
 * well below that. */
long __attribute__((noinline, used))
lp_test_done_early(volatile uint64_t *done, long a)
{
	struct timespec d = { 0, 300 * 1000000L };
	volatile uint64_t frame[48];

	frame[0] = (uint64_t)(uintptr_t)__builtin_return_address(0);
	*done = 1;
	nanosleep(&d, NULL);
	called = a + (long)(frame[0] & 0);
	return a;
}

/* Called remotely: clobbers xmm7 (caller-saved, so an interrupted thread
 * never expected it to change). */
void __attribute__((noinline, used))
lp_test_clobber(void)
{
	__asm__ volatile("pcmpeqd %%xmm7, %%xmm7" ::: "xmm7");
}

static void
on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static int small_fd;
static char *small_buf;
static volatile long small_n;

static void
small_read(void)
{
	small_n = read(small_fd, small_buf, 63);
}

struct child {
	pid_t pid;
	int to[2], from[2];
};

/*
 * The child: set xmm7 to a marker, block in read() on `to` (the syscall
 * the test interrupts), then report what it read, xmm7, `called` and the
 * SIGUSR1 count on `from`.
 */
static void
child_main(struct child *c, int mode)
{
	char buf[64] = "";
	uint64_t before = 0x1122334455667788ull, after = 0;
	long n;
	volatile int eintr = 0;	/* (getcontext returns twice) */
	struct timespec t0, t1;

	signal(SIGUSR1, on_usr1);
	close(c->to[1]);
	close(c->from[0]);
	if (write(c->from[1], "R", 1) != 1)
		_exit(2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (mode == 0) {
		/* read() with the marker live in xmm7 across the syscall */
		__asm__ volatile("movq %[v], %%xmm7\n\t"
				 "syscall\n\t"
				 "movq %%xmm7, %[o]"
				 : "=a"(n), [o] "=r"(after)
				 : "a"((long)SYS_read), "D"((long)c->to[0]),
				   "S"(buf), "d"((long)sizeof(buf) - 1),
				   [v] "r"(before)
				 : "rcx", "r11", "memory", "xmm7");
	} else if (mode == 2) {
		/*
		 * read() with a 256-bit marker live in ymm7 (upper half
		 * too), an alternate signal stack and SIGUSR2 blocked: all
		 * must be as they were, whenever the tracer died.
		 */
		static char alt[65536];
		uint64_t ymm[4] = { before, ~before, before ^ 0xff, 42 };
		uint64_t back[4] = { 0 };
		stack_t ss = { alt, 0, sizeof(alt) }, ss2;
		sigset_t m, m2;

		assert_int_equal(sigaltstack(&ss, NULL), 0);
		sigemptyset(&m);
		sigaddset(&m, SIGUSR2);
		sigprocmask(SIG_SETMASK, &m, NULL);
		__asm__ volatile("vmovdqu %[v], %%ymm7\n\t"
				 "syscall\n\t"
				 "vmovdqu %%ymm7, %[o]"
				 : "=a"(n), [o] "=m"(back)
				 : "a"((long)SYS_read), "D"((long)c->to[0]),
				   "S"(buf), "d"((long)sizeof(buf) - 1),
				   [v] "m"(ymm)
				 : "rcx", "r11", "memory", "xmm7");
		sigaltstack(NULL, &ss2);
		sigprocmask(SIG_SETMASK, NULL, &m2);
		after = !memcmp(ymm, back, sizeof(ymm)) &&
			ss2.ss_sp == alt && ss2.ss_size == sizeof(alt) &&
			ss2.ss_flags == 0 && sigismember(&m2, SIGUSR2) &&
			!sigismember(&m2, SIGUSR1) ? before : 0;
	} else if (mode == 3 || mode == 4) {
		/* read() on a stack of its own, as a fiber's: 8 KiB (too
		 * small for a call) or 128 KiB, above a guard page */
		size_t sz = mode == 3 ? 8192 : 131072;
		char *stk = mmap(NULL, sz + 4096, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		static ucontext_t main_uc, read_uc;

		assert_true(stk != MAP_FAILED);
		mprotect(stk, 4096, PROT_NONE);
		small_fd = c->to[0];
		small_buf = buf;
		getcontext(&read_uc);
		read_uc.uc_stack.ss_sp = stk + 4096;
		read_uc.uc_stack.ss_size = sz;
		read_uc.uc_link = &main_uc;
		makecontext(&read_uc, small_read, 0);
		swapcontext(&main_uc, &read_uc);
		n = small_n;
		after = before;
	} else {
		/* nanosleep: ERESTART_RESTARTBLOCK.  A step returns through
		 * rt_sigreturn, as a signal handler does: it comes back as
		 * EINTR with the time left, and the loop sleeps on */
		struct timespec d = { 1, 0 };

		while ((n = nanosleep(&d, &d) == 0 ? 0 : -errno) == -EINTR)
			eintr++;
		after = before;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	dprintf(c->from[1], "%ld %s %d %ld %d %.3f %d\n", n,
		n > 0 ? buf : "-", after == before, (long)called, (int)usr1,
		(double)(t1.tv_sec - t0.tv_sec) +
		(t1.tv_nsec - t0.tv_nsec) / 1e9, eintr);
	/* the sleeper lives on until the test is done with it (its memory
	 * holds a call's result) */
	if (mode == 1)
		while (read(c->to[0], buf, sizeof(buf)) > 0)
			;
	_exit(0);
}

static void
start_child(struct child *c, int mode)
{
	char r;

	assert_int_equal(pipe(c->to), 0);
	assert_int_equal(pipe(c->from), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0)
		child_main(c, mode);
	close(c->to[0]);
	close(c->from[1]);
	assert_int_equal(read(c->from[0], &r, 1), 1);
}

/* Wait until the child sleeps in its syscall (a real state, polled). */
static void
wait_blocked(pid_t pid)
{
	char path[64], st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 5000 && st != 'S'; i++) {
		FILE *fp = fopen(path, "r");

		if (fp) {
			if (fscanf(fp, "%*d (%*[^)]) %c", &st) != 1)
				st = 0;
			fclose(fp);
		}
		if (st != 'S')
			usleep(1000);
	}
	assert_int_equal(st, 'S');
}

static void
finish_child(struct child *c, char *line, size_t len)
{
	FILE *fp = fdopen(c->from[0], "r");
	int status;

	assert_non_null(fp);
	assert_non_null(fgets(line, (int)len, fp));
	fclose(fp);
	close(c->to[1]);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * A child blocked in its wait, opened (and prepared when asked), with an
 * executable code page mapped by the injector and in use: what most
 * tests below start from.  The thread runs detached after the mmap.
 */
static struct inj_target *
open_with_page(struct child *c, int mode, bool prepare, uint64_t *code)
{
	struct lp_err err = { 0 };
	struct inj_target *t;

	start_child(c, mode);
	wait_blocked(c->pid);
	t = inj_open(c->pid, &err);
	assert_non_null(t);
	if (prepare)
		assert_int_equal(inj_prepare(t, &err), 0);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_mmap(t, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				  code, &err), 0);
	assert_int_equal(inj_use_page(t, *code, 4096 - 64), 0);
	return t;
}

static void
test_ptrace_read_survives_injection(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 0 }, ret = 0, page = 0, blob = 0xfeedfacecafebeefull;
	uint64_t back = 0, code = 0;
	int64_t r = 0;
	char line[256];
	long n, got_called;
	int same, sig;

	(void)state;
	start_child(&c, 0);
	wait_blocked(c.pid);
	t = inj_open(c.pid, &err);
	assert_non_null(t);
	assert_int_equal(inj_prepare(t, &err), 0);
	assert_int_equal(inj_attach(t, &err), 0);
	/* stopped inside read(): orig_rax says so */
	assert_int_equal(inj_stopped_syscall(t), SYS_read);

	/* a signal for the child while we hold it: delivered after */
	assert_int_equal(syscall(SYS_tgkill, c.pid, c.pid, SIGUSR1), 0);

	/* a syscall's result and a call need an executable page */
	assert_true(inj_syscall(t, SYS_getpid, args, &r, &err) < 0);
	lp_err_clear(&err);
	assert_true(inj_call(t, (uint64_t)(uintptr_t)lp_test_add, args, 2,
			     &ret, 1000, &err) < 0);
	lp_err_clear(&err);
	assert_int_equal(inj_mmap(t, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				  &code, &err), 0);
	/* each step lets the thread go: attach again for the next */
	assert_false(inj_attached(t));
	assert_int_equal(inj_use_page(t, code, 4096 - 64), 0);

	args[0] = 2;
	args[1] = 40;
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_add, args, 2,
				  &ret, 1000, &err), 0);
	assert_int_equal(ret, 42);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_syscall(t, SYS_getpid, args, &r, &err), 0);
	assert_int_equal(r, c.pid);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_clobber,
				  NULL, 0, &ret, 1000, &err), 0);

	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_mmap(t, 4096, PROT_READ | PROT_WRITE, &page,
				  &err), 0);
	assert_int_equal(inj_write(t, page, &blob, sizeof(blob), &err), 0);
	assert_int_equal(inj_read(t, page, &back, sizeof(back), &err), 0);
	assert_int_equal(back, blob);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, page, 4096, &err), 0);
	assert_true(inj_read(t, page, &back, sizeof(back), NULL) < 0);
	assert_int_equal(inj_attach(t, &err), 0);
	/* the interrupted read(), the thread's own syscall again */
	assert_int_equal(inj_stopped_syscall(t), SYS_read);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);

	assert_int_equal(inj_detach(t, &err), 0);
	assert_true(inj_stops(t) >= 7);
	inj_close(t);

	/* the interrupted read() restarts and gets its data */
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %d %ld %d", &n, &same,
				&got_called, &sig), 4);
	assert_int_equal(n, 5);
	assert_non_null(strstr(line, " hello "));
	assert_int_equal(same, 1);		/* xmm7 intact */
	assert_int_equal(got_called, 42);	/* the call ran in the child */
	assert_int_equal(sig, 1);		/* SIGUSR1 delivered once */
}

static void
test_ptrace_sleep_not_cut_short(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 0 }, code = 0;
	int64_t r;
	char line[256];
	double secs = 0;
	long n;
	int eintr = 0;

	(void)state;
	t = open_with_page(&c, 1, true, &code);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_syscall(t, SYS_getppid, args, &r, &err), 0);
	assert_int_equal(r, getpid());
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %*d %*d %*d %lf %d", &n, &secs,
				&eintr), 3);
	assert_int_equal(n, 0);		/* nanosleep completed in the end */
	assert_true(eintr >= 1);	/* after EINTRs, as from a handler */
	assert_true(secs >= 1.0);	/* and slept its full second */
}

/* The wake of a timed wait: the interrupted syscall completes with the
 * result we set instead of restarting, also after a call in that stop. */
static void
test_ptrace_set_syscall_result(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 5, 6 }, ret = 0, code = 0;
	char line[256];
	double secs = 9;
	long n;

	(void)state;
	t = open_with_page(&c, 1, true, &code);
	wait_blocked(c.pid);	/* asleep again, for the time left */
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_stopped_syscall(t), SYS_clock_nanosleep);
	assert_int_equal(inj_set_syscall_result(t, -ETIMEDOUT, &err), 0);
	/* still the syscall it was stopped in, for the caller's logic */
	assert_int_equal(inj_stopped_syscall(t), SYS_clock_nanosleep);
	/* the call's frame completes the syscall with that result */
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_add, args, 2,
				  &ret, 1000, &err), 0);
	assert_int_equal(ret, 11);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %*d %*d %*d %lf", &n, &secs), 2);
	assert_int_equal(n, -ETIMEDOUT);	/* completed, as we said */
	assert_true(secs < 1.0);		/* not slept to the end */
}

/* A call that outlives its timeout is never pulled out of the middle:
 * after the detach it finishes and the thread restores itself. */
static void
test_ptrace_timed_out_call_finishes(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 77 }, ret = 0, code = 0;
	char line[256];
	long n, got_called;
	int same;

	(void)state;
	t = open_with_page(&c, 0, false, &code);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_slow, args,
				  1, &ret, 50, &err), -LP_ETIMEDOUT);
	/* no further step while that one runs */
	lp_err_clear(&err);
	assert_true(inj_munmap(t, code, 4096, &err) < 0);
	/* a stop comes only once the thread is out of the step: the call
	 * has ended by then */
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_read(t, (uint64_t)(uintptr_t)&called, &n,
				  sizeof(n), &err), 0);
	assert_int_equal(n, 77);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %d %ld", &n, &same,
				&got_called), 3);
	assert_int_equal(n, 5);			/* read() restarted */
	assert_int_equal(same, 1);
	assert_int_equal(got_called, 77);	/* the call ran to its end */
}

/*
 * The completion word stored, but code still running on top of the step
 * (a signal handler between the trampoline's store and its rt_sigreturn):
 * the step still counts as running (the stack pointer below its frame, a
 * return into the page on the stack), and a stop comes only after it.
 */
static void
test_ptrace_step_with_code_on_top(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 0, 91 }, ret = 0, code = 0;
	char line[256];
	long n;

	(void)state;
	t = open_with_page(&c, 0, false, &code);
	/* the completion word: 48 bytes into the trampoline */
	args[0] = code + 4096 - 64 + 48;
	assert_int_equal(inj_attach(t, &err), 0);
	/* (the word says done: the call's result is taken, too early) */
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_done_early,
				  args, 2, &ret, 1000, &err), 0);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_read(t, (uint64_t)(uintptr_t)&called, &n,
				  sizeof(n), &err), 0);
	assert_int_equal(n, 91);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld", &n), 1);
	assert_int_equal(n, 5);
}

/*
 * A call that timed out may return into the code page at any later time:
 * the page is pinned (no munmap, not even asked of the thread) until a
 * stop sees the thread out of the call, which no stop does while it is
 * inside the callee; then the page can go.
 */
static void
test_ptrace_timed_out_call_pins_page(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 78 }, ret = 0, code = 0;
	char line[256];
	long n, got_called;
	int same;

	(void)state;
	t = open_with_page(&c, 0, false, &code);
	assert_false(inj_page_pinned(t, code));
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_slow, args,
				  1, &ret, 50, &err), -LP_ETIMEDOUT);
	assert_true(inj_page_pinned(t, code));
	lp_err_clear(&err);
	/* the thread is inside lp_test_slow's 300 ms sleep */
	assert_int_equal(inj_munmap(t, code, 4096, &err), -LP_EBUSY);
	assert_non_null(strstr(err.msg, "may still return"));
	lp_err_clear(&err);
	assert_int_equal(inj_mprotect(t, code, 4096, PROT_READ, &err),
			 -LP_EBUSY);
	lp_err_clear(&err);
	assert_true(inj_page_pinned(t, code));
	/* the stop comes once the call has returned through the page */
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_read(t, (uint64_t)(uintptr_t)&called, &n,
				  sizeof(n), &err), 0);
	assert_int_equal(n, 78);
	assert_false(inj_page_pinned(t, code));
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %d %ld", &n, &same,
				&got_called), 3);
	assert_int_equal(n, 5);
	assert_int_equal(same, 1);
	assert_int_equal(got_called, 78);	/* returned through the page */
}

/* The permissions of the mapping at addr in pid's maps ("r-xs"). */
static void
perms_of(pid_t pid, uint64_t addr, char out[5])
{
	char path[64], line[512];
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	strcpy(out, "none");
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 &&
		    addr >= lo && addr < hi) {
			memcpy(out, p, 5);
			break;
		}
	}
	fclose(fp);
}

/*
 * Only our own page is ever unmapped or protected, and it is known by its
 * inode: the target's private memory at an address is refused untouched,
 * and a mapping that refilled our page's range after it went is not ours.
 */
static void
test_ptrace_page_identity(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t code = 0, again = 0, ino, ino2, priv;
	char line[256], perms[5];
	void *p;
	long n;

	(void)state;
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	priv = (uint64_t)(uintptr_t)p;
	start_child(&c, 0);		/* the child has it too, there */
	wait_blocked(c.pid);
	t = inj_open(c.pid, &err);
	assert_non_null(t);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, priv, 4096, &err), -LP_EBUSY);
	lp_err_clear(&err);
	assert_int_equal(inj_mprotect(t, priv, 4096, PROT_READ, &err),
			 -LP_EBUSY);
	lp_err_clear(&err);
	perms_of(c.pid, priv, perms);
	assert_string_equal(perms, "rw-p");

	assert_int_equal(inj_mmap(t, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				  &code, &err), 0);
	ino = inj_mmap_inode(t);
	assert_true(ino != 0);
	assert_int_equal(inj_page_is(t, code, 4096, ino), 1);
	assert_int_equal(inj_page_is(t, code, 4096, ino + 1), 0);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	assert_int_equal(inj_page_is(t, code, 4096, ino), 0);
	/* the range refilled: a mapping like ours, but not the same one */
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_mmap_at(t, code, 4096, PROT_READ | PROT_WRITE |
				     PROT_EXEC, &again, &err), 0);
	assert_int_equal(again, code);
	ino2 = inj_mmap_inode(t);
	assert_true(ino2 != ino);
	assert_int_equal(inj_page_is(t, code, 4096, ino), 0);
	assert_int_equal(inj_page_is(t, code, 4096, ino2), 1);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld", &n), 1);
	assert_int_equal(n, 5);
	munmap(p, 4096);
}

/*
 * The code page's own permissions change through libc's gadget (the
 * trampoline would lose its execute permission under the thread): read-
 * only, then executable again, and calls run through it after that.
 */
static void
test_ptrace_mprotect_code_page(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t args[6] = { 30, 12 }, ret = 0, code = 0;
	char line[256], perms[5];
	long n, got;
	int same;

	(void)state;
	t = open_with_page(&c, 0, false, &code);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_mprotect(t, code, 4096, PROT_READ, &err), 0);
	perms_of(c.pid, code, perms);
	assert_string_equal(perms, "r--s");
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_mprotect(t, code, 4096, PROT_READ | PROT_WRITE |
				      PROT_EXEC, &err), 0);
	perms_of(c.pid, code, perms);
	assert_string_equal(perms, "rwxs");
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)lp_test_add, args,
				  2, &ret, 1000, &err), 0);
	assert_int_equal(ret, 42);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %d %ld", &n, &same, &got), 3);
	assert_int_equal(n, 5);			/* read() restarted */
	assert_int_equal(same, 1);
	assert_int_equal(got, 42);
}

/*
 * Where the CPU uses XSAVE, a frame without the whole FP state would
 * reset the upper halves of the AVX registers: when that state cannot be
 * read, nothing is injected, and the thread carries on untouched.
 */
static void
test_ptrace_refuses_without_xstate(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	uint64_t page = 0;
	char line[256];
	long n;
	int same, rc;

	(void)state;
	if (!__builtin_cpu_supports("avx"))
		skip();
	start_child(&c, 0);
	wait_blocked(c.pid);
	t = inj_open(c.pid, &err);
	assert_non_null(t);
	assert_int_equal(inj_attach(t, &err), 0);
	/* the first step (the mmap of the code page) builds the frame */
	setenv("LEAKPROBE_TEST_NO_XSTATE", "1", 1);
	rc = inj_mmap(t, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, &page,
		      &err);
	unsetenv("LEAKPROBE_TEST_NO_XSTATE");
	assert_int_equal(rc, -LP_EINJECT);
	assert_non_null(strstr(err.msg, "extended FP state"));
	assert_non_null(strstr(err.msg, "nothing was injected"));
	assert_int_equal(page, 0);
	assert_true(inj_attached(t));	/* still stopped: nothing ran */
	lp_err_clear(&err);
	assert_int_equal(inj_detach(t, &err), 0);
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(sscanf(line, "%ld %*s %d", &n, &same), 2);
	assert_int_equal(n, 5);
	assert_int_equal(same, 1);
}

/*
 * A call's callee runs on the thread's stack below the restore frame:
 * on a stack too small for that (a fiber's, 8 KiB above a guard page)
 * nothing is injected; on a 128 KiB one the call runs.
 */
static void
test_ptrace_stack_headroom(void **state)
{
	(void)state;
	for (int mode = 3; mode <= 4; mode++) {
		struct lp_err err = { 0 };
		struct inj_target *t;
		struct child c;
		uint64_t args[6] = { 2, 40 }, ret = 0, code = 0;
		char line[256];
		long n, got;
		int rc;

		start_child(&c, mode);
		wait_blocked(c.pid);
		t = inj_open(c.pid, &err);
		assert_non_null(t);
		assert_int_equal(inj_prepare(t, &err), 0);
		assert_int_equal(inj_attach(t, &err), 0);
		rc = inj_mmap(t, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			      &code, &err);
		if (mode == 3) {
			assert_int_equal(rc, -LP_EINJECT);
			assert_non_null(strstr(err.msg, "for the callee"));
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(inj_use_page(t, code, 4096 - 64), 0);
			/* each step ran detached: a stop for the next */
			assert_int_equal(inj_attach(t, &err), 0);
			assert_int_equal(inj_call(t, (uint64_t)(uintptr_t)
						  lp_test_add, args, 2, &ret,
						  1000, &err), 0);
			assert_int_equal(ret, 42);
			assert_int_equal(inj_attach(t, &err), 0);
			assert_int_equal(inj_munmap(t, code, 4096, &err), 0);
			assert_int_equal(inj_attach(t, &err), 0);
		}
		lp_err_clear(&err);
		assert_int_equal(inj_detach(t, &err), 0);
		inj_close(t);
		assert_int_equal(write(c.to[1], "hello", 5), 5);
		finish_child(&c, line, sizeof(line));
		assert_int_equal(sscanf(line, "%ld %*s %*d %ld", &n, &got), 2);
		assert_int_equal(n, 5);		/* read() restarted */
		assert_int_equal(got, mode == 3 ? 0 : 42);
	}
}

/* A main thread with a user shadow stack (CET) is refused before any
 * stop: our steps would make the CPU kill it. */
static void
test_ptrace_refuses_shadow_stack(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	char line[256];

	(void)state;
	start_child(&c, 0);
	wait_blocked(c.pid);
	t = inj_open(c.pid, &err);
	assert_non_null(t);
	t->info.shstk = true;	/* as parsed from its status */
	assert_int_equal(inj_prepare(t, &err), -LP_EINJECT);
	assert_non_null(strstr(err.msg, "shadow stack"));
	inj_close(t);
	assert_int_equal(write(c.to[1], "hello", 5), 5);
	finish_child(&c, line, sizeof(line));
	assert_int_equal(strncmp(line, "5 hello 1 ", 10), 0);
}

static void
test_ptrace_refuses_bad_targets(void **state)
{
	struct lp_err err = { 0 };

	(void)state;
	assert_null(inj_open(getpid(), &err));
	assert_int_equal(err.code, LP_ESELF);
	lp_err_clear(&err);
	assert_null(inj_open(0x3ffffff0, &err));
	assert_int_equal(err.code, LP_ENOPROC);
}

static void
test_ptrace_detach_after_exit(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	struct child c;
	char line[256];

	(void)state;
	start_child(&c, 0);
	wait_blocked(c.pid);
	t = inj_open(c.pid, &err);
	assert_non_null(t);
	assert_int_equal(inj_attach(t, &err), 0);
	assert_int_equal(inj_detach(t, &err), 0);
	assert_int_equal(write(c.to[1], "bye", 3), 3);
	finish_child(&c, line, sizeof(line));
	/* the process is gone: a second attach fails cleanly */
	lp_err_clear(&err);
	assert_true(inj_attach(t, &err) < 0);
	inj_close(t);
}

/* Wait until no tracer holds pid (the kernel detaches a dead one). */
static void
wait_untraced(pid_t pid)
{
	char path[64], line[256];
	int tracer = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	for (int i = 0; i < 5000 && tracer != 0; i++) {
		FILE *fp = fopen(path, "r");

		while (fp && fgets(line, sizeof(line), fp))
			if (sscanf(line, "TracerPid: %d", &tracer) == 1)
				break;
		if (fp)
			fclose(fp);
		if (tracer != 0)
			usleep(1000);
	}
	assert_int_equal(tracer, 0);
}

/*
 * A tracer that SIGKILLs itself at the Nth instant of an injection
 * (attach, mmap of an executable page, a call, a syscall, munmap,
 * detach), for N = 1, 2, ... until one finishes: after each, the child's
 * interrupted read() gets its data, and its ymm7, sigaltstack and signal
 * mask are as they were.
 */
static void
test_ptrace_killed_at_every_instant(void **state)
{
	int instants = 0;

	(void)state;
	if (!__builtin_cpu_supports("avx"))
		skip();
	for (int n = 1; n < 200; n++) {
		struct child c;
		pid_t tracer;
		char line[256];
		long got, same;
		int status;

		start_child(&c, 2);
		wait_blocked(c.pid);
		tracer = fork();
		assert_true(tracer >= 0);
		if (tracer == 0) {
			struct lp_err err = { 0 };
			struct inj_target *t;
			uint64_t args[6] = { 2, 40 }, ret, page;
			int64_t r;
			char num[16];

			snprintf(num, sizeof(num), "%d", n);
			setenv("LEAKPROBE_TEST_KILL_AT", num, 1);
			t = inj_open(c.pid, &err);
			if (!t || inj_prepare(t, &err) < 0 ||
			    inj_attach(t, &err) < 0 ||
			    inj_mmap(t, 4096, PROT_READ | PROT_WRITE |
				     PROT_EXEC, &page, &err) < 0 ||
			    inj_use_page(t, page, 4096 - 64) < 0 ||
			    inj_attach(t, &err) < 0 ||
			    inj_call(t, (uint64_t)(uintptr_t)lp_test_add,
				     args, 2, &ret, 1000, &err) < 0 ||
			    ret != 42 || inj_attach(t, &err) < 0 ||
			    inj_syscall(t, SYS_getpid, args, &r, &err) < 0 ||
			    inj_attach(t, &err) < 0 ||
			    inj_munmap(t, page, 4096, &err) < 0 ||
			    inj_attach(t, &err) < 0 ||
			    inj_detach(t, &err) < 0)
				_exit(3);
			_exit(0);
		}
		assert_int_equal(waitpid(tracer, &status, 0), tracer);
		wait_untraced(c.pid);
		assert_int_equal(write(c.to[1], "hello", 5), 5);
		finish_child(&c, line, sizeof(line));
		assert_int_equal(sscanf(line, "%ld %*s %ld %ld", &got, &same,
					&got), 3);
		if (strncmp(line, "5 hello 1 ", 10))
			fail_msg("killed at instant %d: child said '%s'", n,
				 line);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			instants = n - 1;
			break;
		}
		assert_true(WIFSIGNALED(status) &&
			    WTERMSIG(status) == SIGKILL);
	}
	/* the hook covered the whole injection */
	assert_true(instants > 20);
	print_message("killed at each of %d instants\n", instants);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ptrace_read_survives_injection),
		cmocka_unit_test(test_ptrace_sleep_not_cut_short),
		cmocka_unit_test(test_ptrace_set_syscall_result),
		cmocka_unit_test(test_ptrace_timed_out_call_finishes),
		cmocka_unit_test(test_ptrace_timed_out_call_pins_page),
		cmocka_unit_test(test_ptrace_step_with_code_on_top),
		cmocka_unit_test(test_ptrace_mprotect_code_page),
		cmocka_unit_test(test_ptrace_page_identity),
		cmocka_unit_test(test_ptrace_refuses_without_xstate),
		cmocka_unit_test(test_ptrace_stack_headroom),
		cmocka_unit_test(test_ptrace_refuses_shadow_stack),
		cmocka_unit_test(test_ptrace_refuses_bad_targets),
		cmocka_unit_test(test_ptrace_detach_after_exit),
		cmocka_unit_test(test_ptrace_killed_at_every_instant),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
