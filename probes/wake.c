/*
 * Where does the stopped main thread wait, and how is it woken in place?
 *
 * Ruby's own unblocking signal (SIGVTALRM) ends a blocking syscall, and on
 * the 3.3+ scheduler SIGCHLD wakes the timer thread.  A Ruby whose sleep
 * is a condition-variable wait (native_sleep -> pthread_cond_(timed)wait:
 * sleep, Thread#join, Queue#pop, ConditionVariable#wait, Mutex#lock) is
 * woken by neither: glibc restarts the futex after the handler.  While the
 * main thread is stopped inside that futex:
 *
 *   timed wait (futex with a timeout, interrupted: rax -516): complete the
 *     syscall as -ETIMEDOUT.  pthread_cond_timedwait returns ETIMEDOUT,
 *     which Ruby's sleep loops treat as a wake-up: it checks interrupts
 *     (the job runs) and sleeps again for the time left.  No symbol needed.
 *
 *   untimed wait (rax -512, no timeout): never complete it (Ruby aborts
 *     with "[BUG] pthread_cond_wait: Connection timed out").  Call
 *     rb_threadptr_interrupt(main thread) in the main thread's own
 *     context instead: it takes the thread's interrupt lock (released by
 *     the waiting thread), sets the interrupt flag and runs the unblocking
 *     function native_sleep set, which signals the very condition variable
 *     the thread waits on.  When the syscall restarts, glibc sees the
 *     signal and returns; Ruby checks interrupts and goes back to sleep.
 *     Only done when the frame that called pthread_cond_wait is Ruby's
 *     native_sleep (or native_cond_sleep): that is where the lock is free
 *     and the unblocking function is the condition-variable signal.
 *
 * The main thread's rb_thread_t comes from public API only:
 * rb_thread_main() (reads process globals, allocates nothing) gives the
 * Thread object, a T_DATA whose data pointer sits at a fixed place in the
 * public struct RTypedData; its type's name is checked to be "VM/thread".
 */
#include "probes/probes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define ERESTARTSYS_		512
#define ERESTARTNOINTR_		513
#define ERESTARTNOHAND_		514
#define ERESTART_RESTARTBLOCK_	516

#define FUTEX_CMD_MASK_		0x7f	/* without PRIVATE, CLOCK_REALTIME */
#define FUTEX_WAIT_		0
#define FUTEX_WAIT_BITSET_	9

/* struct RTypedData: RBasic (flags, klass), type, typed_flag, data */
#define RTYPEDDATA_TYPE_OFF	16
#define RTYPEDDATA_DATA_OFF	32

static const char *const cond_timed_fns[] = {
	"pthread_cond_timedwait", "__pthread_cond_timedwait",
	"___pthread_cond_timedwait", "___pthread_cond_timedwait64",
	"___pthread_cond_clockwait64",
	"pthread_cond_clockwait", "__pthread_cond_clockwait",
	"__pthread_cond_timedwait64", "__pthread_cond_clockwait64",
};
static const char *const cond_fns[] = {
	"pthread_cond_wait", "__pthread_cond_wait", "___pthread_cond_wait",
};
static const char *const lock_fns[] = {
	"pthread_mutex_lock", "__pthread_mutex_lock", "___pthread_mutex_lock",
	"__lll_lock_wait",
	"__lll_lock_wait_private", "pthread_rwlock_rdlock",
	"pthread_rwlock_wrlock", "pthread_mutex_timedlock", "sem_wait",
	"__new_sem_wait_slow64", "__new_sem_wait_slow",
};
/*
 * Ruby functions that wait on a condition variable whose mutex is the only
 * lock they hold, with an unblocking function that signals it:
 * native_sleep (2.4-2.5; 2.6-2.7 threads other than the main one:
 * native_cond_sleep) waits on the thread's sleep_cond under its
 * interrupt_lock (ubf_pthread_cond_signal); 2.4's Mutex#lock (lock_func,
 * inlined into rb_mutex_lock) waits on the mutex's cond under its lock
 * (lock_interrupt).  Not the GVL's wait: no unblocking function is set.
 */
static const char *const ruby_sleep_fns[] = {
	"native_sleep", "native_cond_sleep", "lock_func", "rb_mutex_lock",
};
static const char *const ruby_cond_wrappers[] = {
	"native_cond_wait", "native_cond_timedwait", "rb_native_cond_wait",
	"rb_native_cond_timedwait",
};

/* Names of the frames' functions, looked up by address (a binary search
 * in tables loaded before the stop), "" when unnamed. */
static bool
in_list(const char *name, const char *const *names, size_t n)
{
	if (!name[0])
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

#define IN_LIST(name, a) in_list((name), (a), sizeof(a) / sizeof((a)[0]))

/* Function name of a frame ("name" of "name+0x12 (mod)"), or the module
 * offset when unnamed. */
static void
frame_name(struct inj_target *t, uint64_t ip, char *buf, size_t len)
{
	char *p;

	inj_symbolize(t, ip, buf, len);
	if ((p = strstr(buf, " ("))) {
		*p = '\0';
		if ((p = strrchr(buf, '+')))
			*p = '\0';
		if ((p = strchr(buf, '@')))	/* name@@VERSION */
			*p = '\0';
	}
}

/* The function's name only: "" when the frame is unnamed. */
static void
func_name(struct inj_target *t, uint64_t ip, char *buf, size_t len)
{
	frame_name(t, ip, buf, len);
	if (!strstr(buf, "+0x") && strncmp(buf, "0x", 2))
		return;
	buf[0] = '\0';
}

static bool
same_module(struct inj_target *t, uint64_t ip, const char *path)
{
	const char *m = inj_addr_module(t, ip), *b = strrchr(path, '/');

	return m && !strcmp(m, b ? b + 1 : path);
}

static const struct {
	long nr;
	const char *name;
} sysnames[] = {
	{ SYS_read, "read" }, { SYS_write, "write" }, { SYS_poll, "poll" },
	{ SYS_ppoll, "ppoll" }, { SYS_select, "select" },
	{ SYS_pselect6, "pselect6" }, { SYS_epoll_wait, "epoll_wait" },
	{ SYS_epoll_pwait, "epoll_pwait" }, { SYS_futex, "futex" },
	{ SYS_nanosleep, "nanosleep" },
	{ SYS_clock_nanosleep, "clock_nanosleep" },
	{ SYS_accept, "accept" }, { SYS_accept4, "accept4" },
	{ SYS_recvfrom, "recvfrom" }, { SYS_recvmsg, "recvmsg" },
	{ SYS_sendto, "sendto" }, { SYS_sendmsg, "sendmsg" },
	{ SYS_connect, "connect" }, { SYS_wait4, "wait4" },
	{ SYS_waitid, "waitid" }, { SYS_pause, "pause" },
	{ SYS_rt_sigsuspend, "rt_sigsuspend" },
	{ SYS_rt_sigtimedwait, "rt_sigtimedwait" },
	{ SYS_restart_syscall, "restart_syscall" }, { SYS_flock, "flock" },
	{ SYS_fcntl, "fcntl" }, { SYS_ioctl, "ioctl" },
	{ SYS_openat, "openat" }, { SYS_readv, "readv" },
	{ SYS_writev, "writev" }, { SYS_pread64, "pread64" },
	{ SYS_fsync, "fsync" }, { SYS_msgrcv, "msgrcv" },
	{ SYS_semop, "semop" }, { SYS_semtimedop, "semtimedop" },
};

static const char *
sysname(long nr, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(sysnames) / sizeof(sysnames[0]); i++)
		if (sysnames[i].nr == nr)
			return sysnames[i].name;
	snprintf(buf, len, "syscall %ld", nr);
	return buf;
}

void
probe__wait_prepare(struct inj_target *t, const struct probe_ruby *r)
{
	uint64_t a = 0;

	/* Load the tables the names are looked up in now, not while the
	 * thread is stopped: libc's (and its debug file's), and Ruby's
	 * .symtab. */
	inj_lookup(t, NULL, "pthread_cond_wait", &a, NULL);
	{
		char buf[64];

		inj_symbolize(t, r->eval_string, buf, sizeof(buf));
		inj_symbolize(t, a, buf, sizeof(buf));
	}
}

int
probe__wait_inspect(struct inj_target *t, const struct probe_ruby *r,
		    struct probe_wait *w)
{
	uint64_t args[6], ips[24];
	int n, i, at = -1;
	char name[160];

	uint64_t t0 = lp_mono_ns();
	int max = w->max_frames;

	memset(w, 0, sizeof(*w));
	w->max_frames = max;
	w->nr = inj_stopped_syscall_regs(t, &w->rax, args);
	w->uaddr = args[0];
	w->caller = w->callsite = 0;
	/* the wait and its Ruby caller are within the first frames */
	n = inj_unwind(t, ips, w->max_frames > 0 && w->max_frames < 24 ?
		       w->max_frames : 24, NULL);
	lp_debug("wait: unwound %d frames in %.3f ms", n,
		 (lp_mono_ns() - t0) / 1e6);
	if (n <= 0) {
		w->kind = w->nr >= 0 ? PROBE_WAIT_SYSCALL : PROBE_WAIT_BUSY;
		snprintf(w->what, sizeof(w->what), "%s",
			 w->nr >= 0 ? "is blocked in a syscall" :
			 "runs native code");
		return 0;
	}
	/* Return addresses name the call instruction at ip - 1. */
	for (i = 0; i < n; i++)
		if (i)
			ips[i]--;
	w->nframes = n;
	if (w->nr < 0) {
		/* Running: the innermost named frame says what. */
		w->kind = PROBE_WAIT_BUSY;
		frame_name(t, ips[0], name, sizeof(name));
		for (i = 0; i < n && !same_module(t, ips[i], r->libruby); i++)
			;
		/* the innermost frame with a name says more than an offset */
		for (int j = 0; j < i; j++) {
			char fn[160];

			func_name(t, ips[j], fn, sizeof(fn));
			if (fn[0]) {
				frame_name(t, ips[j], name, sizeof(name));
				if (j)
					snprintf(name + strlen(name),
						 sizeof(name) - strlen(name),
						 " in %s", inj_addr_module(t,
						 ips[j]));
				break;
			}
		}
		if (i > 0 && i < n) {
			char rb[160];

			frame_name(t, ips[i], rb, sizeof(rb));
			snprintf(w->what, sizeof(w->what), "runs native code "
				 "(%s, called from %s) that never checks "
				 "Ruby's interrupts", name, rb);
		} else {
			snprintf(w->what, sizeof(w->what), "runs %s, a C "
				 "function that never checks Ruby's "
				 "interrupts", name);
		}
		return 0;
	}
	if (w->nr == SYS_futex || w->nr == SYS_restart_syscall) {
		for (i = 0; i < n && at < 0; i++) {
			func_name(t, ips[i], name, sizeof(name));
			if (IN_LIST(name, cond_timed_fns)) {
				w->kind = PROBE_WAIT_COND_TIMED;
				at = i;
			} else if (IN_LIST(name, cond_fns)) {
				w->kind = PROBE_WAIT_COND;
				at = i;
			} else if (IN_LIST(name, lock_fns)) {
				w->kind = PROBE_WAIT_LOCK;
				at = i;
			}
		}
		/* The wait's own fact beats the function name: an untimed
		 * futex never becomes a timed one. */
		if (w->kind == PROBE_WAIT_COND_TIMED && w->nr == SYS_futex &&
		    (args[1] & FUTEX_CMD_MASK_) != FUTEX_WAIT_BITSET_ &&
		    (args[1] & FUTEX_CMD_MASK_) != FUTEX_WAIT_)
			w->kind = PROBE_WAIT_LOCK;
		if (w->kind == PROBE_WAIT_COND && w->nr == SYS_futex &&
		    args[3] != 0)
			w->kind = PROBE_WAIT_COND_TIMED;
		if (at >= 0 && at + 1 < n) {
			w->callsite = ips[at + 1];
			w->from_ruby = same_module(t, w->callsite, r->libruby);
			/* the caller itself, or through Ruby's own wrapper
			 * (native_cond_wait when not inlined); never further
			 * up: a GVL wait inside native_sleep is not its
			 * sleep */
			for (i = at + 1; i < n && i <= at + 2; i++) {
				func_name(t, ips[i], name, sizeof(name));
				if (IN_LIST(name, ruby_sleep_fns)) {
					w->ruby_sleep = true;
					w->caller = ips[i];
					break;
				}
				if (!IN_LIST(name, ruby_cond_wrappers))
					break;
			}
		}
		/* restart_syscall resumes whatever was interrupted: a futex
		 * only when a futex function is on the stack */
		if (w->kind == PROBE_WAIT_NONE)
			w->kind = w->nr == SYS_futex ? PROBE_WAIT_FUTEX :
				  PROBE_WAIT_SYSCALL;
	} else {
		w->kind = PROBE_WAIT_SYSCALL;
	}
	/* Describe it: the wait, and who called it. */
	{
		char sb[32], fn[160] = "", who[160] = "";
		const char *sn = sysname(w->nr, sb, sizeof(sb));

		if (at >= 0)
			frame_name(t, ips[at], fn, sizeof(fn));
		for (i = at >= 0 ? at + 1 : 0; i < n; i++)
			if (same_module(t, ips[i], r->libruby))
				break;
		if (i < n)
			frame_name(t, ips[i], who, sizeof(who));
		else if (n > 1)
			frame_name(t, ips[1], who, sizeof(who));
		switch (w->kind) {
		case PROBE_WAIT_COND_TIMED:
		case PROBE_WAIT_COND:
			snprintf(w->what, sizeof(w->what), "sleeps on a "
				 "condition variable (%s %s, called from %s)",
				 w->kind == PROBE_WAIT_COND ? "untimed" :
				 "timed", fn, who[0] ? who : "?");
			break;
		case PROBE_WAIT_LOCK:
			snprintf(w->what, sizeof(w->what), "waits for a lock "
				 "(%s in %s, called from %s)", sn, fn,
				 who[0] ? who : "?");
			break;
		case PROBE_WAIT_FUTEX:
			snprintf(w->what, sizeof(w->what), "waits on a futex "
				 "(called from %s)", who[0] ? who : "?");
			break;
		default:
			/* the first named caller of the syscall's wrapper */
			frame_name(t, ips[0], fn, sizeof(fn));
			for (int j = 1; j < n && !same_module(t, ips[j],
							       r->libruby);
			     j++) {
				char f2[160];

				func_name(t, ips[j], f2, sizeof(f2));
				if (f2[0] && strcmp(f2, sn)) {
					snprintf(fn, sizeof(fn), "%s", f2);
					break;
				}
			}
			snprintf(w->what, sizeof(w->what), "is blocked in %s() "
				 "(in %s, called from %s) and Ruby's wake "
				 "signal did not end it", sn, fn,
				 who[0] ? who : "?");
			break;
		}
	}
	lp_debug("wait: %s (syscall %ld, rax %" PRId64 ", futex 0x%" PRIx64
		 ") in %.3f ms", w->what, w->nr, w->rax, w->uaddr,
		 (lp_mono_ns() - t0) / 1e6);
	return 0;
}

/* The main thread's rb_thread_t, from public API (see the top); it
 * never changes, so it is asked once per target. */
static int
main_thread_ptr(struct inj_target *t, struct probe_ruby *r,
		uint64_t *th, struct lp_err *err)
{
	uint64_t v = 0, type = 0, name = 0;
	char tn[16];

	if (r->main_th) {
		*th = r->main_th;
		return 0;
	}
	if (inj_call(t, r->thread_main, NULL, 0, &v, 1000, err) < 0)
		return -LP_EINJECT;
	if ((v & 7) || v < 4096 ||
	    inj_read(t, v + RTYPEDDATA_TYPE_OFF, &type, sizeof(type),
		     NULL) < 0 ||
	    inj_read(t, type, &name, sizeof(name), NULL) < 0 ||
	    inj_read_string(t, name, tn, sizeof(tn), NULL) < 0 ||
	    strcmp(tn, "VM/thread") ||
	    inj_read(t, v + RTYPEDDATA_DATA_OFF, th, sizeof(*th), NULL) < 0 ||
	    !*th)
		return lp_err_set(err, LP_EINJECT, "rb_thread_main() gave no "
				  "VM/thread object (0x%" PRIx64 ")", v);
	r->main_th = *th;
	return 0;
}

int
probe__main_is_current(struct inj_target *t, struct probe_ruby *r)
{
	uint64_t th = 0, cur = 0, words[16];

	if (!r->cur_global || !r->thread_main ||
	    inj_read(t, r->cur_global, &cur, sizeof(cur), NULL) < 0 ||
	    main_thread_ptr(t, r, &th, NULL) < 0)
		return -1;
	if (r->cur_is_thread)
		return cur == th;
	/* an execution context: rb_thread_t points to it (th->ec) near
	 * its start; the words before are a list node and pointers to
	 * other structures, never a context */
	if (inj_read(t, th, words, sizeof(words), NULL) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (words[i] == cur)
			return 1;
	return 0;
}

int
probe__wake_in_stop(struct inj_target *t, struct probe_ruby *r,
		    const struct probe_wait *w, struct lp_err *err)
{
	uint64_t th = 0, ret = 0;
	int rc;

	/* The 3.3+ scheduler's waits end with SIGCHLD (eval.c). */
	if (!w->from_ruby || r->wake_chld)
		return 0;
	if (w->kind == PROBE_WAIT_COND_TIMED &&
	    (w->rax == -ERESTART_RESTARTBLOCK_ || w->rax == -ERESTARTSYS_ ||
	     w->rax == -ERESTARTNOHAND_)) {
		rc = inj_set_syscall_result(t, -ETIMEDOUT, err);
		lp_debug("wake: timed condition-variable wait completed as "
			 "ETIMEDOUT (%d)", rc);
		return rc < 0 ? rc : 1;
	}
	if (w->kind != PROBE_WAIT_COND || !w->ruby_sleep ||
	    !r->threadptr_interrupt || !r->thread_main ||
	    (w->rax != -ERESTARTSYS_ && w->rax != -ERESTARTNOINTR_ &&
	     w->rax != -ERESTARTNOHAND_))
		return 0;
	rc = main_thread_ptr(t, r, &th, err);
	if (rc < 0)
		return rc;
	/* Asking for it was a call, which ran detached: stop the thread
	 * again, and only if it is back in the same wait (the call's
	 * rt_sigreturn restarted it) interrupt it there. */
	if (!inj_attached(t)) {
		int64_t rax = 0;

		if ((rc = inj_attach(t, err)) < 0)
			return rc;
		if (inj_stopped_syscall_regs(t, &rax, NULL) != w->nr ||
		    rax != w->rax) {
			lp_debug("wake: the main thread left its wait");
			return 0;
		}
	}
	rc = inj_call(t, r->threadptr_interrupt, &th, 1, &ret, 1000, err);
	lp_debug("wake: rb_threadptr_interrupt(0x%" PRIx64 ") in the main "
		 "thread's untimed condition-variable wait (%d)", th, rc);
	return rc < 0 ? rc : 1;
}

bool
probe__wait_unwakeable(const struct probe_ruby *r, const struct probe_wait *w)
{
	return w->kind == PROBE_WAIT_COND && w->from_ruby &&
	       !r->threadptr_interrupt && !r->wake_chld;
}

int
probe__wake_refuse(const struct probe_ruby *r, const struct probe_wait *w,
		   pid_t pid, struct lp_err *err)
{
	return lp_err_set(err, LP_EINJECT, "cannot wake the main thread of "
			  "%d (%s): it %s, which no signal ends, and this Ruby "
			  "has no symbol rb_threadptr_interrupt (%s is "
			  "stripped) to interrupt it safely; nothing was "
			  "changed. Install the Ruby's debug symbols or use a "
			  "Ruby built with symbols, or make the application "
			  "wait with a timeout (sleep N, join(N), "
			  "ConditionVariable#wait(m, N)) or in IO",
			  (int)pid, r->description, w->what, r->libruby);
}

/* ---- /proc facts, read without stopping anything ------------------- */

/* The syscall the main thread is in, from /proc without stopping it:
 * its number, -1 when running, -2 when unknown. */
long
probe__main_syscall(pid_t pid)
{
	char path[64], buf[256];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid,
		 (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -2;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -2;
	buf[n] = '\0';
	if (!strncmp(buf, "running", 7))
		return -1;
	return buf[0] >= '0' && buf[0] <= '9' ? strtol(buf, NULL, 10) : -1;
}

/* Whether a thread of pid other than the main one is running (R) or in
 * uninterruptible sleep (D): one that may hold the GVL. */
bool
probe__other_thread_runs(pid_t pid)
{
	char path[300], buf[512], *p;
	struct dirent *de;
	bool runs = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return false;
	while (!runs && (de = readdir(d))) {
		int fd;
		ssize_t n;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    atoi(de->d_name) == (int)pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat",
			 (int)pid, de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) && (p[2] == 'R' || p[2] == 'D'))
			runs = true;
	}
	closedir(d);
	return runs;
}
