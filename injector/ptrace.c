/*
 * Stopping the main thread, running syscalls and calls in it, restoring.
 *
 * Only the main thread (tid == pid) is seized, with PTRACE_SEIZE +
 * PTRACE_INTERRUPT; the other threads keep running.  We save the general
 * registers and the legacy FXSAVE area and never touch xstate: the kernel
 * wants the exact CPUID size for NT_X86_XSTATE (11,008 bytes on AMX CPUs)
 * and a guessed size is what makes debuggers fail there.
 *
 * Syscall restart: a thread interrupted inside a blocking syscall shows
 * rax = -ERESTART* and orig_rax = the syscall number.  While our code runs
 * we set orig_rax = -1 so the kernel does not "restart" into our rip; on
 * detach we put rip/rax/orig_rax back exactly, and the kernel restarts the
 * interrupted call itself (-516 through restart_syscall).
 */
#include "injector/injector_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define CALL_STACK_GAP	512	/* bytes below rsp: past the 128-byte red zone */

static void
pause_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

/*
 * Wait for the next ptrace stop (or exit) of the main thread.  Polls with
 * a short back-off rather than blocking in waitpid, so that a timeout
 * needs no timer signal; SIGINT to leakprobe does not cut this short: every
 * wait is bounded and the caller must first get the thread back to a stop
 * to restore it.
 */
int
inj__wait_stop(struct inj_target *t, int *status, int timeout_ms,
	       struct lp_err *err)
{
	uint64_t start = lp_mono_ns();
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000ull;
	unsigned delay = 20;
	pid_t r;

	for (;;) {
		r = waitpid(t->pid, status, __WALL | WNOHANG);
		if (r == t->pid)
			break;
		if (r < 0 && errno != EINTR) {
			if (errno == ECHILD) {
				t->gone = true;
				return lp_err_set(err, LP_EEXITED,
						  "process %d went away",
						  (int)t->pid);
			}
			return lp_err_sys(err, LP_EINJECT, "waitpid(%d)",
					  (int)t->pid);
		}
		uint64_t now = lp_mono_ns();
		if (now > deadline)
			return lp_err_set(err, LP_ETIMEDOUT,
					  "process %d did not stop within "
					  "%d ms", (int)t->pid, timeout_ms);
		/* Every stop we wait for is tens of microseconds away while
		 * the target's main thread is held: yield for the first
		 * 300 us (the stop time is what the target pays), then back
		 * off to at most 1 ms per poll. */
		if (now - start < 300000) {
			sched_yield();
			continue;
		}
		pause_us(delay);
		if (delay < 1000)
			delay *= 2;
	}
	if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
		t->gone = true;
		t->attached = false;
		if (WIFSIGNALED(*status))
			return lp_err_set(err, LP_EEXITED,
					  "process %d was killed by signal %d",
					  (int)t->pid, WTERMSIG(*status));
		return lp_err_set(err, LP_EEXITED, "process %d exited with "
				  "status %d", (int)t->pid,
				  WEXITSTATUS(*status));
	}
	return 0;
}

static void
queue_signal(struct inj_target *t, int sig)
{
	/* A synchronous fault re-executes its instruction on resume and
	 * faults again by itself: re-sending it would deliver it twice. */
	if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
	    sig == SIGFPE || sig == SIGTRAP)
		return;
	for (int i = 0; i < t->npending; i++)
		if (t->pending_sig[i] == sig && sig < SIGRTMIN)
			return;	/* standard signals do not queue */
	if (t->npending < (int)(sizeof(t->pending_sig) /
				sizeof(t->pending_sig[0])))
		t->pending_sig[t->npending++] = sig;
	lp_debug("queued signal %d for pid %d", sig, (int)t->pid);
}

/*
 * Registers hold injected values from mark_dirty() until clean_regs().
 * That is the only time a SIGKILL of leakprobe (which cannot be caught)
 * would let the thread resume with them, so each operation puts the saved
 * registers back as soon as it is done: the window is the operation
 * itself, not the whole stop.
 */
static void
mark_dirty(struct inj_target *t)
{
	if (!t->regs_dirty)
		t->dirty_start_ns = lp_mono_ns();
	t->regs_dirty = true;
}

static int
clean_regs(struct inj_target *t, struct lp_err *err)
{
	if (!t->regs_dirty || t->gone)
		return 0;
	if (ptrace(PTRACE_SETREGS, t->pid, 0, &t->saved) < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "restore registers of %d", (int)t->pid);
	t->regs_dirty = false;
	t->dirty_ns += lp_mono_ns() - t->dirty_start_ns;
	return 0;
}

static bool
is_event_stop(int status)
{
	return (status >> 16) == PTRACE_EVENT_STOP;
}

int
inj_attach(struct inj_target *t, struct lp_err *err)
{
	int status, rc;

	if (t->attached)
		return 0;
	if (t->gone)
		return lp_err_set(err, LP_EEXITED, "process %d is gone",
				  (int)t->pid);
	t->npending = 0;
	t->regs_saved = false;
	t->regs_dirty = false;
	/* No PTRACE_O_EXITKILL: if leakprobe dies the target must live. */
	if (ptrace(PTRACE_SEIZE, t->pid, 0, 0) < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "attach: ptrace(PTRACE_SEIZE, %d)",
				  (int)t->pid);
	t->attached = true;
	t->stop_start_ns = lp_mono_ns();
	/* Ctrl-Z must not suspend leakprobe while it holds the thread. */
	{
		sigset_t stop;

		sigemptyset(&stop);
		sigaddset(&stop, SIGTSTP);
		sigaddset(&stop, SIGTTIN);
		sigaddset(&stop, SIGTTOU);
		pthread_sigmask(SIG_BLOCK, &stop, &t->oldmask);
		t->masked = true;
	}

	if (ptrace(PTRACE_INTERRUPT, t->pid, 0, 0) < 0) {
		rc = lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				"attach: ptrace(PTRACE_INTERRUPT, %d)",
				(int)t->pid);
		goto fail;
	}
	rc = inj__wait_stop(t, &status, 2000, err);
	if (rc == -LP_ETIMEDOUT && !t->gone) {
		/*
		 * The thread does not stop (uninterruptible sleep, a frozen
		 * cgroup).  The interrupt is still pending: detaching now
		 * fails while it is running, and it would stop later with
		 * nobody to resume it.  Wait for that stop, then detach.
		 */
		if (inj__wait_stop(t, &status, 10000, NULL) == 0 &&
		    !t->gone)
			t->regs_saved = false;	/* nothing injected yet */
		else
			t->stuck = true;
		goto fail;
	}
	if (rc < 0)
		goto fail;
	if (!WIFSTOPPED(status)) {
		rc = lp_err_set(err, LP_EINJECT, "attach: unexpected wait "
				"status 0x%x", status);
		goto fail;
	}
	/*
	 * Either our interrupt stop, or a signal-delivery-stop that raced
	 * with it.  In the latter case the signal belongs to the target:
	 * queue it for re-delivery; the interrupt will show up as an event
	 * stop when we resume and is skipped then.
	 */
	if (!is_event_stop(status))
		queue_signal(t, WSTOPSIG(status));
	if (ptrace(PTRACE_GETREGS, t->pid, 0, &t->saved) < 0 ||
	    ptrace(PTRACE_GETFPREGS, t->pid, 0, &t->saved_fp) < 0) {
		rc = lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				"attach: read registers of %d", (int)t->pid);
		goto fail;
	}
	t->regs_saved = true;
	t->regs_dirty = false;
	t->dirty_ns = 0;
	t->held_start_ns = lp_mono_ns();
	return 0;
fail:
	inj_detach(t, NULL);
	return rc;
}

int
inj_prepare(struct inj_target *t, struct lp_err *err)
{
	if (t->syscall_insn)
		return 0;
	return inj__find_syscall(t, err);
}

bool
inj_attached(const struct inj_target *t)
{
	return t->attached;
}

uint64_t
inj_stopped_ip(const struct inj_target *t)
{
	return t->saved.rip;
}

long
inj_stopped_syscall(const struct inj_target *t)
{
	return (long)t->saved.orig_rax;
}

uint64_t
inj_last_stop_ns(const struct inj_target *t)
{
	return t->last_stop_ns;
}

uint64_t
inj_last_held_ns(const struct inj_target *t)
{
	return t->last_held_ns;
}

uint64_t
inj_last_dirty_ns(const struct inj_target *t)
{
	return t->dirty_ns;
}

/* Bring a running (injected) thread back to a ptrace stop. */
static int
reinterrupt(struct inj_target *t)
{
	int status;

	if (ptrace(PTRACE_INTERRUPT, t->pid, 0, 0) < 0)
		return -LP_EINJECT;
	for (int tries = 0; tries < 16; tries++) {
		if (inj__wait_stop(t, &status, 1000, NULL) < 0)
			return t->gone ? 0 : -LP_EINJECT;
		if (is_event_stop(status))
			return 0;
		/* a signal for the target; it stays stopped, that is enough */
		queue_signal(t, WSTOPSIG(status));
		return 0;
	}
	return -LP_EINJECT;
}

/*
 * Resume the thread with `req` (PTRACE_CONT or PTRACE_SINGLESTEP) until a
 * stop that is ours: SIGTRAP for single-step, SIGSEGV at rip 0 for calls.
 * Signals meant for the target are queued and suppressed for now.
 */
static int
run_until(struct inj_target *t, int req, int want_sig, int timeout_ms,
	  struct user_regs_struct *out, struct lp_err *err)
{
	uint64_t deadline = lp_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	int status, rc, left;

	for (;;) {
		/* a stream of signals for the target must not defeat the
		 * timeout */
		if (lp_mono_ns() > deadline) {
			reinterrupt(t);
			return lp_err_set(err, LP_ETIMEDOUT, "injected code in "
					  "%d did not finish within %d ms",
					  (int)t->pid, timeout_ms);
		}
		if (ptrace(req, t->pid, 0, 0) < 0)
			return lp_err_sys(err, lp_errno_code(errno,
							     LP_EINJECT),
					  "ptrace(%s, %d)",
					  req == PTRACE_CONT ? "PTRACE_CONT" :
					  "PTRACE_SINGLESTEP", (int)t->pid);
		left = (int)((int64_t)(deadline - lp_mono_ns()) / 1000000);
		if (left < 1)
			left = 1;
		rc = inj__wait_stop(t, &status, left, err);
		if (rc == -LP_ETIMEDOUT) {
			reinterrupt(t);
			return rc;
		}
		if (rc < 0)
			return rc;
		if (is_event_stop(status))
			continue;	/* our earlier interrupt, or group stop */
		if (WSTOPSIG(status) != want_sig) {
			queue_signal(t, WSTOPSIG(status));
			continue;
		}
		if (ptrace(PTRACE_GETREGS, t->pid, 0, out) < 0)
			return lp_err_sys(err, lp_errno_code(errno,
							     LP_EINJECT),
					  "ptrace(PTRACE_GETREGS, %d)",
					  (int)t->pid);
		return 0;
	}
}

int
inj_syscall(struct inj_target *t, long nr, const uint64_t args[6],
	    int64_t *ret, struct lp_err *err)
{
	struct user_regs_struct regs;
	int rc;

	if (!t->attached || !t->regs_saved)
		return lp_err_set(err, LP_EINJECT, "syscall: not attached");
	if (!t->syscall_insn && (rc = inj__find_syscall(t, err)) < 0)
		return rc;
	regs = t->saved;
	regs.rip = t->syscall_insn;
	regs.rax = (uint64_t)nr;
	regs.orig_rax = (uint64_t)-1;	/* no restart logic while ours */
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	mark_dirty(t);
	if (ptrace(PTRACE_SETREGS, t->pid, 0, &regs) < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "syscall: ptrace(PTRACE_SETREGS, %d)",
				  (int)t->pid);
	for (int step = 0; step < 4; step++) {
		rc = run_until(t, PTRACE_SINGLESTEP, SIGTRAP, 2000, &regs,
			       err);
		if (rc < 0)
			return rc;
		if (regs.rip == t->syscall_insn + 2) {
			*ret = (int64_t)regs.rax;
			return clean_regs(t, err);
		}
		if (regs.rip != t->syscall_insn)
			break;
	}
	return lp_err_set(err, LP_EINJECT, "syscall %ld in pid %d stopped at "
			  "unexpected rip 0x%llx", nr, (int)t->pid,
			  (unsigned long long)regs.rip);
}

int
inj_call(struct inj_target *t, uint64_t fn, const uint64_t *args, int nargs,
	 uint64_t *ret, int timeout_ms, struct lp_err *err)
{
	struct user_regs_struct regs;
	uint64_t sp, zero = 0;
	siginfo_t si;
	int rc;

	if (!t->attached || !t->regs_saved)
		return lp_err_set(err, LP_EINJECT, "call: not attached");
	if (nargs < 0 || nargs > 6)
		return lp_err_set(err, LP_EINVAL, "call: %d arguments", nargs);
	/*
	 * Stack layout at entry (ABI: rsp+8 is 16-byte aligned):
	 *
	 *   saved rsp ─► ... interrupted frame ...
	 *                128-byte red zone (untouched)
	 *                padding to CALL_STACK_GAP
	 *   sp+8  ─►     16-byte aligned
	 *   sp    ─►     return address 0: `ret` faults with rip == 0,
	 *                which we catch as SIGSEGV and swallow
	 */
	sp = (t->saved.rsp - CALL_STACK_GAP) & ~(uint64_t)15;
	sp -= 8;
	rc = inj_write(t, sp, &zero, sizeof(zero), err);
	if (rc < 0)
		return rc;
	regs = t->saved;
	regs.rsp = sp;
	regs.rip = fn;
	regs.rax = 0;			/* no vector args (varargs ABI) */
	regs.orig_rax = (uint64_t)-1;
	regs.rdi = nargs > 0 ? args[0] : 0;
	regs.rsi = nargs > 1 ? args[1] : 0;
	regs.rdx = nargs > 2 ? args[2] : 0;
	regs.rcx = nargs > 3 ? args[3] : 0;
	regs.r8 = nargs > 4 ? args[4] : 0;
	regs.r9 = nargs > 5 ? args[5] : 0;
	mark_dirty(t);
	if (ptrace(PTRACE_SETREGS, t->pid, 0, &regs) < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "call: ptrace(PTRACE_SETREGS, %d)",
				  (int)t->pid);
	rc = run_until(t, PTRACE_CONT, SIGSEGV, timeout_ms, &regs, err);
	if (rc < 0)
		return rc;
	if (regs.rip != 0) {
		/* A real fault inside the callee: never deliver it; the
		 * registers are restored on detach. */
		memset(&si, 0, sizeof(si));
		ptrace(PTRACE_GETSIGINFO, t->pid, 0, &si);
		return lp_err_set(err, LP_EINJECT, "call of 0x%" PRIx64
				  " faulted at rip 0x%llx (address %p)", fn,
				  (unsigned long long)regs.rip, si.si_addr);
	}
	*ret = regs.rax;
	return clean_regs(t, err);
}

int
inj_mmap(struct inj_target *t, size_t len, int prot, uint64_t *addr,
	 struct lp_err *err)
{
	/*
	 * Shared anonymous memory: a VMA of its own that the kernel never
	 * merges with the target's private anonymous neighbours, so the
	 * page stays findable (and removable) as exactly what we mapped.
	 */
	uint64_t a[6] = { 0, len, (uint64_t)prot,
			  MAP_SHARED | MAP_ANONYMOUS, (uint64_t)-1, 0 };
	int64_t r;
	int rc;

	rc = inj_syscall(t, SYS_mmap, a, &r, err);
	if (rc < 0)
		return rc;
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return lp_err_sys(err, LP_EINJECT, "remote mmap(%zu) in pid %d",
				  len, (int)t->pid);
	}
	*addr = (uint64_t)r;
	return 0;
}

int
inj_munmap(struct inj_target *t, uint64_t addr, size_t len,
	   struct lp_err *err)
{
	uint64_t a[6] = { addr, len, 0, 0, 0, 0 };
	int64_t r;
	int rc;

	rc = inj_syscall(t, SYS_munmap, a, &r, err);
	if (rc < 0)
		return rc;
	if (r < 0) {
		errno = (int)-r;
		return lp_err_sys(err, LP_EINJECT, "remote munmap(0x%" PRIx64
				  ") in pid %d", addr, (int)t->pid);
	}
	return 0;
}

int
inj_detach(struct inj_target *t, struct lp_err *err)
{
	int rc = 0;

	if (!t || !t->attached)
		return 0;
	if (t->gone) {
		t->attached = false;
		t->regs_saved = false;
		if (t->masked) {
			pthread_sigmask(SIG_SETMASK, &t->oldmask, NULL);
			t->masked = false;
		}
		return 0;
	}
	if (t->regs_saved && t->regs_dirty) {
		/* The thread must be in a ptrace stop to take registers. */
		if (ptrace(PTRACE_SETREGS, t->pid, 0, &t->saved) < 0) {
			if (errno == ESRCH && reinterrupt(t) == 0 && !t->gone) {
				if (ptrace(PTRACE_SETREGS, t->pid, 0,
					   &t->saved) < 0 && !t->gone)
					rc = lp_err_sys(err, LP_EINJECT,
							"detach: restore "
							"registers of %d",
							(int)t->pid);
			} else if (!t->gone) {
				rc = lp_err_sys(err, LP_EINJECT, "detach: "
						"restore registers of %d",
						(int)t->pid);
			}
		}
		t->regs_dirty = false;
		t->dirty_ns += lp_mono_ns() - t->dirty_start_ns;
	}
	/* The callee may have used SSE registers (caller-saved, so the
	 * interrupted code did not expect that): always put them back. */
	if (t->regs_saved && !t->gone &&
	    ptrace(PTRACE_SETFPREGS, t->pid, 0, &t->saved_fp) < 0)
		rc = lp_err_sys(err, LP_EINJECT, "detach: restore FP "
				"registers of %d", (int)t->pid);
	if (!t->gone && ptrace(PTRACE_DETACH, t->pid, 0, 0) < 0 &&
	    errno != ESRCH)
		rc = lp_err_sys(err, LP_EINJECT, "detach: ptrace(PTRACE_DETACH"
				", %d)", (int)t->pid);
	t->attached = false;
	t->regs_saved = false;
	if (t->masked) {
		pthread_sigmask(SIG_SETMASK, &t->oldmask, NULL);
		t->masked = false;
	}
	{
		uint64_t now = lp_mono_ns();

		t->last_stop_ns = now - t->stop_start_ns;
		t->last_held_ns = t->held_start_ns ? now - t->held_start_ns : 0;
		t->held_start_ns = 0;
	}
	/* Signals that arrived for the thread while we held it. */
	for (int i = 0; i < t->npending; i++)
		syscall(SYS_tgkill, t->pid, t->pid, t->pending_sig[i]);
	t->npending = 0;
	return rc;
}

/*
 * The registers that describe the syscall the thread was stopped in:
 * rax (an ERESTART* code while interrupted) and the six arguments.
 * Returns the syscall number, or -1 when it was not in one.
 */
long
inj_stopped_syscall_regs(const struct inj_target *t, int64_t *rax,
			 uint64_t args[6])
{
	const struct user_regs_struct *r = &t->saved;

	if (rax)
		*rax = (int64_t)r->rax;
	if (args) {
		args[0] = r->rdi;
		args[1] = r->rsi;
		args[2] = r->rdx;
		args[3] = r->r10;
		args[4] = r->r8;
		args[5] = r->r9;
	}
	return (long)r->orig_rax;
}

/*
 * Complete the interrupted syscall with rax instead of restarting it:
 * on detach the thread resumes after its `syscall` instruction with that
 * value (orig_rax -1: the kernel does no restart processing).
 */
int
inj_set_syscall_result(struct inj_target *t, int64_t rax)
{
	if (!t->attached || !t->regs_saved)
		return -LP_EINJECT;
	if ((long)t->saved.orig_rax < 0)
		return -LP_EINVAL;	/* not stopped in a syscall */
	t->saved.rax = (uint64_t)rax;
	t->saved.orig_rax = (uint64_t)-1;
	mark_dirty(t);
	return 0;
}
