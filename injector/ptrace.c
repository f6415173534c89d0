/*
 * Stopping the main thread, running syscalls and calls in it, restoring.
 *
 * Only the main thread (tid == pid) is seized, with PTRACE_SEIZE +
 * PTRACE_INTERRUPT; the other threads keep running.
 *
 * Every injected step returns through rt_sigreturn, so that a leakprobe
 * that vanishes (SIGKILL, the OOM killer) at any instant leaves a thread
 * that either runs its own code or restores itself:
 *
 * - At the first step of a stop we build, below the red zone of the
 *   thread's stack, a frame in the kernel's x86-64 rt_sigframe layout:
 *   pretcode, then a ucontext with the saved general registers, the
 *   thread's blocked mask (PTRACE_GETSIGMASK: the mask a signal frame
 *   would hold, also inside ppoll/pselect), an invalid uc_stack mode (the
 *   kernel ignores the EINVAL and leaves the thread's sigaltstack as it
 *   is), and the FP state as the kernel itself writes it (NT_X86_XSTATE
 *   read with the size the kernel reports, with the software-reserved
 *   bytes and FP_XSTATE_MAGIC2 set for the components in use; the
 *   512-byte FXSAVE form only where there is no xsave).  An interrupted
 *   syscall is saved as a signal with SA_RESTART would save it: RIP-2 and
 *   RAX = orig_rax, or __NR_restart_syscall for ERESTART_RESTARTBLOCK.
 * - A syscall: through the trampoline of our executable page (which
 *   stores the result and a completion word there), or, for the mmap of
 *   that page and its munmap, through a `syscall; ret` in libc with rsp
 *   at the frame's pretcode slot, which holds libc's __restore_rt.
 * - A call: the trampoline calls the function, stores rax and the
 *   completion word in the page, then `mov $15,%eax; syscall` with rsp at
 *   the frame.
 *
 * Each step is detached: seize and interrupt the thread, read its
 * registers, write the frame, set the step's registers and PTRACE_DETACH
 * at once.  The thread runs the step and comes back by itself through
 * rt_sigreturn, exactly as from a signal handler; leakprobe polls memory
 * (the completion word; for the page's own mmap/munmap, the page
 * appearing or vanishing) and never watches the thread run, so no stop
 * outlasts a few register writes, and nothing that happens to leakprobe
 * (SIGKILL, SIGSTOP, a slow scheduler) holds or hurts the target.  Since
 * rt_sigreturn really runs, an interrupted syscall comes back as after a
 * handled signal: ERESTARTSYS, ERESTARTNOINTR and ERESTARTNOHAND restart
 * (with the arguments the kernel left: ppoll's and pselect's timeouts
 * count down), ERESTART_RESTARTBLOCK (nanosleep, a timed futex wait,
 * poll with a timeout) returns EINTR, as it does after any signal with a
 * handler.  A stop that finds the thread still inside a step of ours (at
 * the gadget or __restore_rt with rsp at the frame, in the page, or
 * before the completion word) lets it go and retries: a frame is never
 * built over one in use.
 */
#include "injector/injector_int.h"

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define FRAME_GAP	512	/* bytes below rsp: past the 128-byte red zone */
#define XSTATE_MAX	(64 * 1024)	/* more than any CPU's xsave area */
/*
 * Stack the callee may use below the frame (see check_stack_room).  Seen
 * (the stack painted below the frame, then read back; Ruby 2.4.3, 2.6.8,
 * 3.1, 3.4): rb_postponed_job_register_one 16-32 bytes, rb_thread_main,
 * preregister and trigger none beyond their return address.  The rest
 * covers a TLS lookup that mallocs, and rb_threadptr_interrupt's mutex
 * and condition-variable signal.
 */
#define STACK_HEADROOM	(16 * 1024)
/* The kernel's default stack_guard_gap: 256 pages */
#define STACK_GUARD_GAP	(256 * 4096ull)

/* The kernel's x86-64 signal frame (arch/x86/include/asm/sigframe.h,
 * uapi asm/sigcontext.h); rt_sigreturn reads it at rsp - 8. */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved1[8];
};

struct k_ucontext {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, ss_pad;
	uint64_t ss_size;
	struct k_sigcontext mc;
	uint64_t sigmask;
};

struct k_rt_sigframe {
	uint64_t pretcode;
	struct k_ucontext uc;
	uint8_t info[128];	/* siginfo: not read by rt_sigreturn */
};

_Static_assert(sizeof(struct k_sigcontext) == 256, "sigcontext layout");
_Static_assert(sizeof(struct k_ucontext) == 304, "ucontext layout");

#define UC_FP_XSTATE		0x1
#define UC_SIGCONTEXT_SS	0x2
#define UC_STRICT_RESTORE_SS	0x4
#ifndef FP_XSTATE_MAGIC1	/* <sys/user.h> may have them */
#define FP_XSTATE_MAGIC1	0x46505853u
#define FP_XSTATE_MAGIC2	0x46505845u
#endif
#define SW_RESERVED_OFF		464	/* in the FXSAVE area */
#define XSTATE_HDR_OFF		512
/* uc_stack.ss_flags: neither 0, SS_ONSTACK nor SS_DISABLE, so the
 * kernel's do_sigaltstack() refuses it (EINVAL, ignored by rt_sigreturn)
 * before it changes anything: the target's sigaltstack stays. */
#define SS_FLAGS_KEEP		3

#define ERESTARTSYS_		512
#define ERESTARTNOINTR_		513
#define ERESTARTNOHAND_		514
#define ERESTART_RESTARTBLOCK_	516

/*
 * The trampoline, INJ_TRAMP_SIZE bytes in the code page:
 *    0: call *%r11			a call step enters here
 *    3: mov %rax, 40(%rip-relative)	the result
 *   10: movl $1, 48(%rip-relative)	the completion word
 *   20: mov $15, %eax			rt_sigreturn, rsp at the frame
 *   25: syscall
 *   27: jmp 20				(rt_sigreturn never returns)
 *   29: syscall			a syscall step enters here
 *   31: jmp 3
 *   40: result (8 bytes), 48: completion word (8 bytes)
 * leakprobe clears both before a step, lets the thread go, and polls
 * the completion word: the thread restores itself through the frame.
 */
static const uint8_t tramp_code[33] = {
	0x41, 0xff, 0xd3,
	0x48, 0x89, 0x05, 0x1e, 0x00, 0x00, 0x00,
	0xc7, 0x05, 0x1c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	0xb8, 0x0f, 0x00, 0x00, 0x00,
	0x0f, 0x05,
	0xeb, 0xf7,
	0x0f, 0x05,
	0xeb, 0xe2,
};
#define TRAMP_SYSCALL		29
#define TRAMP_RESULT		40
#define TRAMP_DONE		48
#define TRAMP_DONE_MARK		1ull
_Static_assert(TRAMP_DONE + 8 <= INJ_TRAMP_SIZE, "trampoline size");
/* the callee returns to the instruction after the 3-byte `call *%r11` */
_Static_assert(INJ_TRAMP_RET == 3, "the call's return address");

/*
 * LEAKPROBE_TEST_KILL_AT=N: leakprobe SIGKILLs itself at the Nth instant
 * of the injection (after each ptrace request, wait and remote write that
 * changes the thread's state, and when a step is seen done), so that
 * tests can stop it between any two of them and check that the target
 * restores itself.  LEAKPROBE_TEST_STOP_AT=N: it SIGSTOPs itself there
 * instead (SIGSTOP cannot be caught), so that tests can check the target
 * runs on while leakprobe is stopped.
 */
static void
instant(void)
{
	static long n;
	const char *k = getenv("LEAKPROBE_TEST_KILL_AT");
	const char *st = getenv("LEAKPROBE_TEST_STOP_AT");

	if ((!k || !*k) && (!st || !*st))
		return;
	n++;
	if (k && *k && n == strtol(k, NULL, 10))
		raise(SIGKILL);
	if (st && *st && n == strtol(st, NULL, 10))
		raise(SIGSTOP);
}

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
						  "process %d exited",
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
		t->maps_snap = false;
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

/*
 * A signal-delivery stop came instead of (or before) our interrupt stop:
 * the signal belongs to the target.  Raise it again at once, while the
 * thread is still stopped: it stays pending and is delivered when we let
 * go, even if leakprobe dies before that.  A synchronous fault
 * re-executes its instruction on resume and faults again by itself:
 * raising it again would deliver it twice.
 */
static void
redeliver(struct inj_target *t, int sig)
{
	if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
	    sig == SIGFPE || sig == SIGTRAP)
		return;
	syscall(SYS_tgkill, t->pid, t->pid, sig);
	lp_debug("signal %d for pid %d raised again", sig, (int)t->pid);
}

static bool
is_event_stop(int status)
{
	return (status >> 16) == PTRACE_EVENT_STOP;
}

/* Let the thread go from the stop it is in (registers as they are). */
static int
release(struct inj_target *t, struct lp_err *err)
{
	int rc = 0;

	if (!t->attached)
		return 0;
	if (!t->gone && ptrace(PTRACE_DETACH, t->pid, 0, 0) < 0 &&
	    errno != ESRCH)
		rc = lp_err_sys(err, LP_EINJECT, "detach: ptrace(PTRACE_DETACH"
				", %d)", (int)t->pid);
	instant();
	t->attached = false;
	t->maps_snap = false;
	t->regs_saved = false;
	t->result_set = false;
	if (t->masked) {
		pthread_sigmask(SIG_SETMASK, &t->oldmask, NULL);
		t->masked = false;
	}
	{
		uint64_t now = lp_mono_ns();

		t->last_stop_ns = now - t->stop_start_ns;
		t->last_held_ns = t->held_start_ns ? now - t->held_start_ns : 0;
		t->stop_total_ns += t->last_stop_ns;
		t->held_total_ns += t->last_held_ns;
		t->nstops++;
		t->held_start_ns = 0;
	}
	return rc;
}

/*
 * At a stop: is the thread still inside a step we started (and let run
 * detached), or one of a leakprobe that died?  Then no new frame may be
 * built on it, and its page may still be returned into: let it go and
 * stop it again a moment later.  A step runs for as long as the stack
 * pointer is at or below the step's frame (+8: the gadget's `ret` pops
 * its pretcode slot) on the stack the frame is on, wherever rip is: a
 * signal handler that runs on top of the step (before the trampoline's
 * or the gadget's rt_sigreturn) returns into it.  Only rt_sigreturn puts
 * the stack pointer back above the frame.  On another stack (an
 * alternate signal stack, a fiber's) the stack pointer cannot tell: the
 * step counts as running until its outcome is seen (the completion word
 * for a step in the code page, the maps for one through the gadget).
 */
/* An address the step's code runs at: in its page (a step in the code
 * page), or libc's gadget and __restore_rt (a syscall through them). */
static bool
step_addr(const struct inj_target *t, uint64_t a)
{
	if (t->step != STEP_GADGET)
		return a >= t->step_page && a < t->step_page + 4096;
	return a == t->syscall_insn || a == t->syscall_insn + 2 ||
	       (a >= t->restore_rt && a < t->restore_rt + 16);
}

/*
 * The stack pointer is below the step's frame: the step itself, or code
 * on top of it (its callee; a signal handler, whose frame holds the
 * interrupted rip in the step), or, the step long over, the thread's own
 * code gone deeper.  Only the last has no address of the step below the
 * step's red zone: a handler's signal frame goes below the 128 bytes
 * under the step's stack pointer (frame + 8 at most), while the slots
 * above are the step's own (the return address its call pushed, __restore_rt
 * for the gadget), which stay there, stale, once it is over.  The 64 KiB
 * under the red zone are read (a handler's frame lies at its top);
 * unreadable counts as the step.
 */
static bool
step_below(struct inj_target *t, uint64_t rip, uint64_t rsp)
{
	uint64_t buf[512], end = t->step_frame + 8, done = 0;

	if (step_addr(t, rip))
		return true;
	if (t->step != STEP_GADGET) {
		if (inj_read(t, t->step_tramp + TRAMP_DONE, &done,
			     sizeof(done), NULL) < 0)
			return false;	/* the page is gone: nothing runs there */
		if (done != TRAMP_DONE_MARK)
			return true;	/* the call has not returned */
	}
	end -= 128;			/* the step's red zone and own slots */
	if (rsp >= end)
		return false;
	if (end - rsp > 65536)
		rsp = end - 65536;
	for (uint64_t a = rsp & ~(uint64_t)7; a < end; a += sizeof(buf)) {
		size_t len = end - a < sizeof(buf) ? end - a : sizeof(buf);

		if (inj_read(t, a, buf, len, NULL) < 0)
			return true;
		for (size_t i = 0; i < len / 8; i++)
			if (step_addr(t, buf[i]))
				return true;
	}
	return false;
}

static bool
in_step(struct inj_target *t)
{
	const struct user_regs_struct *r = &t->saved;
	uint64_t done = 0;

	switch (t->step) {
	case STEP_GADGET:
	case STEP_PAGE:
	case STEP_CALL:
		if (t->step != STEP_GADGET && r->rip >= t->step_page &&
		    r->rip < t->step_page + 4096)
			return true;
		if (r->rsp >= t->step_stack_lo && r->rsp < t->step_stack_hi)
			return r->rsp <= t->step_frame + 8 &&
			       step_below(t, r->rip, r->rsp);
		if (t->step == STEP_GADGET)
			return !t->step_seen;
		if (inj_read(t, t->step_tramp + TRAMP_DONE, &done,
			     sizeof(done), NULL) < 0)
			return false;	/* the page is gone: nothing runs there */
		return done != TRAMP_DONE_MARK;
	default:
		break;
	}
	/*
	 * A step of a leakprobe that died just after it let the thread go
	 * (this leakprobe's gadget and __restore_rt are the same: found the
	 * same way in the same libc): at the gadget with __restore_rt as
	 * the return address, or in __restore_rt itself.  A new frame
	 * below it would be safe, but the step must be over before this
	 * run looks for the page it maps.
	 */
	if (t->restore_rt && r->rip >= t->restore_rt &&
	    r->rip < t->restore_rt + 16)
		return true;
	if (t->syscall_insn && (r->rip == t->syscall_insn ||
				r->rip == t->syscall_insn + 2)) {
		uint64_t ra = 0;

		return inj_read(t, r->rsp, &ra, sizeof(ra), NULL) == 0 &&
		       ra == t->restore_rt;
	}
	return false;
}

/*
 * A thread that did not stop for our interrupt (t->stuck: uninterruptible
 * sleep, a frozen cgroup) is still seized, and stops whenever it gets to
 * it: with nobody to resume it, it would stay stopped for as long as we
 * live.  Take that stop now if it came, and let the thread go (with the
 * signal of a signal-delivery stop: it belongs to the target).  0 when it
 * is released (or gone), -1 while it still has not stopped.
 */
int
inj__release_stuck(struct inj_target *t)
{
	int status;
	pid_t r;

	if (!t->stuck)
		return 0;
	r = waitpid(t->pid, &status, __WALL | WNOHANG);
	if (r < 0 && errno == ECHILD) {
		t->stuck = false;
		t->gone = true;
		return 0;
	}
	if (r != t->pid)
		return -1;
	t->stuck = false;
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		t->gone = true;
		return 0;
	}
	ptrace(PTRACE_DETACH, t->pid, 0,
	       is_event_stop(status) ? 0 : WSTOPSIG(status));
	return 0;
}

/*
 * The thread was seen out of the last step (a stop, or /proc): a call
 * that did not end in our hands (inj_call() timed out) has returned
 * through the trampoline and stored its completion word by then, so its
 * page is no longer one it may return into.
 */
static void
step_over(struct inj_target *t)
{
	if (t->step == STEP_CALL && t->pinned_page == t->step_page)
		t->pinned_page = 0;
	t->step = STEP_NONE;
}

int
inj_attach(struct inj_target *t, struct lp_err *err)
{
	uint64_t deadline = lp_mono_ns() + 2000000000ull;
	unsigned backoff = 20;
	int status, rc;

	if (t->attached)
		return 0;
	if (inj__release_stuck(t) < 0)
		return lp_err_set(err, LP_EINJECT, "the main thread of %d has "
				  "not yet stopped for an earlier interrupt "
				  "(uninterruptible sleep, a frozen cgroup?); "
				  "try again later", (int)t->pid);
	if (t->gone)
		return lp_err_set(err, LP_EEXITED, "process %d is gone",
				  (int)t->pid);
again:
	t->regs_saved = false;
	t->regs_dirty = false;
	t->frame = 0;
	t->frame_ok = false;
	t->pretcode_ok = false;
	t->result_set = false;
	t->let_finish = false;
	t->stop_nr = -1;
	/* the maps for this stop, read before the thread is held */
	t->maps_snap = inj__read_maps(t, NULL) == 0;
	/* No PTRACE_O_EXITKILL: if leakprobe dies the target must live. */
	if (ptrace(PTRACE_SEIZE, t->pid, 0, 0) < 0) {
		int e = errno;
		struct inj_procinfo pi;

		/* EPERM also when another tracer came first, or the process
		 * is exiting: say which */
		if (e == EPERM || e == ESRCH) {
			if (inj_read_procinfo(t->pid, &pi, NULL) < 0 ||
			    pi.state == 'Z' || pi.state == 'X') {
				t->gone = true;
				return lp_err_set(err, LP_EEXITED, "process %d "
						  "exited", (int)t->pid);
			}
			if (pi.tracer > 0 && pi.tracer != getpid())
				return lp_err_set(err, LP_ETRACED, "process %d "
						  "(%s) is already traced by "
						  "pid %d (%s)", (int)t->pid,
						  pi.comm, (int)pi.tracer,
						  pi.tracer_comm[0] ?
						  pi.tracer_comm : "?");
		}
		errno = e;
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "attach: ptrace(PTRACE_SEIZE, %d)",
				  (int)t->pid);
	}
	t->attached = true;
	t->stop_start_ns = lp_mono_ns();
	t->held_start_ns = 0;
	instant();
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
	instant();
	rc = inj__wait_stop(t, &status, 2000, err);
	instant();
	if (rc == -LP_ETIMEDOUT && !t->gone) {
		/*
		 * The thread does not stop (uninterruptible sleep, a frozen
		 * cgroup).  The interrupt is still pending: detaching now
		 * fails while it is running, and it would stop later with
		 * nobody to resume it.  Wait for that stop, then detach (a
		 * signal-delivery stop's signal raised again: it is the
		 * target's).  If it does not come, inj__release_stuck()
		 * takes it later.
		 */
		if (inj__wait_stop(t, &status, 10000, NULL) < 0) {
			if (!t->gone)
				t->stuck = true;
		} else if (WIFSTOPPED(status) && !is_event_stop(status)) {
			redeliver(t, WSTOPSIG(status));
		}
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
	 * Either our interrupt stop, or a signal-delivery stop that raced
	 * with it (a stop all the same: registers can be read and written
	 * there).  The signal belongs to the target: raised again now, it
	 * is delivered when we let go (the interrupt still pending then is
	 * dropped by the detach).
	 */
	if (!is_event_stop(status))
		redeliver(t, WSTOPSIG(status));
	/*
	 * A group stop (SIGSTOP and the like, from someone else) is a
	 * PTRACE_EVENT_STOP too, with the stop signal instead of SIGTRAP:
	 * never our stop to run steps from.  Let go (the thread stays
	 * stopped, as its sender wants) and say so; the same for the
	 * signal-delivery stop of a stop signal (raised again just above).
	 */
	if (WSTOPSIG(status) == SIGSTOP || WSTOPSIG(status) == SIGTSTP ||
	    WSTOPSIG(status) == SIGTTIN || WSTOPSIG(status) == SIGTTOU) {
		int sig = WSTOPSIG(status);

		release(t, NULL);
		return lp_err_set(err, LP_EUNSAFE, "process %d is stopped "
				  "(SIG%s); resume it with 'kill -CONT %d'",
				  (int)t->pid, sigabbrev_np(sig), (int)t->pid);
	}
	/* (the FP state is read by the first step: build_frame) */
	if (ptrace(PTRACE_GETREGS, t->pid, 0, &t->saved) < 0) {
		rc = lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				"attach: read registers of %d", (int)t->pid);
		goto fail;
	}
	t->held_start_ns = lp_mono_ns();
	if (in_step(t)) {
		/* still running a step of ours: come back a moment later */
		release(t, NULL);
		if (lp_mono_ns() > deadline)
			return lp_err_set(err, LP_EINJECT, "the main thread of "
					  "%d is still inside an injected step"
					  " after 2 s", (int)t->pid);
		pause_us(backoff);
		if (backoff < 1000)
			backoff *= 2;
		goto again;
	}
	step_over(t);
	t->regs_saved = true;
	t->regs_dirty = false;
	t->stop_nr = (long)t->saved.orig_rax;
	return 0;
fail:
	release(t, NULL);
	return rc;
}

/*
 * MAP_FIXED_NOREPLACE (Linux 4.17): an older kernel ignores the flag and
 * takes the address as a hint, so the page would land elsewhere and its
 * record would be wrong.  Asked of our own kernel once, by behaviour: a
 * second mapping over a page we hold must fail with EEXIST.
 */
int
inj__check_fixed_noreplace(struct lp_err *err)
{
	static int known;	/* 1 works, -1 does not */
	void *a, *b;

	if (!known) {
		a = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
		if (a == MAP_FAILED)
			return lp_err_sys(err, LP_ENOMEM, "mmap");
		b = mmap(a, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_FIXED_NOREPLACE, -1, 0);
		known = b == MAP_FAILED && errno == EEXIST ? 1 : -1;
		if (b != MAP_FAILED && b != a)
			munmap(b, 4096);
		munmap(a, 4096);
	}
	if (known > 0)
		return 0;
	return lp_err_set(err, LP_EINJECT, "this kernel has no "
			  "MAP_FIXED_NOREPLACE (Linux 4.17 or later needed): "
			  "leakprobe could not place its code page safely, so "
			  "nothing was injected");
}

int
inj_prepare(struct inj_target *t, struct lp_err *err)
{
	uint8_t after = 0;
	int rc;

	/*
	 * A user shadow stack (CET): our steps `ret` into __restore_rt and
	 * end in an rt_sigreturn with no shadow-stack restore token, and
	 * the CPU would kill the thread for either.
	 */
	if (t->info.shstk)
		return lp_err_set(err, LP_EINJECT, "process %d runs with a "
				  "user shadow stack (CET; x86_Thread_features:"
				  " shstk in /proc/%d/status): leakprobe's "
				  "injected steps would kill it, so nothing "
				  "was injected; start it with the shadow stack"
				  " off (GLIBC_TUNABLES=glibc.cpu.x86_shstk=off)",
				  (int)t->pid, (int)t->pid);
	if ((rc = inj__check_fixed_noreplace(err)) < 0)
		return rc;
	if (!t->syscall_insn && (rc = inj__find_syscall(t, err)) < 0)
		return rc;
	/* the syscall's `ret` is what takes the thread to __restore_rt */
	if (inj_read(t, t->syscall_insn + 2, &after, 1, NULL) < 0 ||
	    after != 0xc3)
		return lp_err_set(err, LP_EINJECT, "no `syscall; ret` found "
				  "in the libc of process %d", (int)t->pid);
	if (!t->restore_rt && (rc = inj__find_restore_rt(t, err)) < 0)
		return rc;
	return 0;
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

uint64_t
inj_stopped_sp(const struct inj_target *t)
{
	return t->saved.rsp;
}

long
inj_stopped_syscall(const struct inj_target *t)
{
	return t->stop_nr;
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

int
inj_use_page(struct inj_target *t, uint64_t page, uint32_t off)
{
	if (off > 4096 - INJ_TRAMP_SIZE || (off & 7))
		return -LP_EINVAL;
	t->code_page = page;
	t->tramp_off = off;
	t->tramp_ok = false;
	return 0;
}

int
inj_set_syscall_result(struct inj_target *t, int64_t result,
		       struct lp_err *err)
{
	if (!t->attached || !t->regs_saved)
		return lp_err_set(err, LP_EINJECT, "set syscall result: not "
				  "attached");
	if (t->stop_nr < 0)
		return lp_err_set(err, LP_EINVAL, "set syscall result: the "
				  "main thread of %d is not in a syscall",
				  (int)t->pid);
	/* orig_rax -1: the kernel's restart logic leaves rax alone, and the
	 * thread sees its syscall return `result` */
	t->saved.rax = (uint64_t)result;
	t->saved.orig_rax = (uint64_t)-1;
	t->result_set = true;
	t->frame_ok = false;	/* the frame must say so too */
	return 0;
}

/* End of the xsave area actually in use: the highest component present
 * in XSTATE_BV, at its standard-format offset (CPUID leaf 0xD). */
static uint32_t
xstate_used_size(uint64_t xstate_bv, size_t have)
{
	uint32_t end = XSTATE_HDR_OFF + 64;

	for (unsigned i = 2; i < 63; i++) {
		unsigned a, b, c, d;

		if (!(xstate_bv & (1ull << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if (a && b + a > end)
			end = b + a;
	}
	return end <= have ? end : (uint32_t)have;
}

/* The CPU and the kernel use XSAVE (CPUID.1:ECX.OSXSAVE): the thread's FP
 * state is then more than the 512-byte FXSAVE area. */
static bool
cpu_uses_xsave(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	return (c & (1u << 27)) != 0;
}

/*
 * Read the thread's whole FP state (NT_X86_XSTATE, at the size the kernel
 * gives) for the restore frame.  Where the CPU uses XSAVE and that read
 * fails, refuse: a frame with only the 512-byte FXSAVE form makes
 * rt_sigreturn put every other component (the upper halves of the AVX
 * registers, AVX-512, AMX) back to its initial state.
 * LEAKPROBE_TEST_NO_XSTATE=1 makes the read fail (tests).
 */
static int
read_xstate(struct inj_target *t, struct lp_err *err)
{
	const char *fake = getenv("LEAKPROBE_TEST_NO_XSTATE");
	struct iovec iov;
	int e = ENOMEM;

	t->xstate_len = 0;
	if (!t->xstate)
		t->xstate = malloc(XSTATE_MAX);
	if (t->xstate) {
		iov.iov_base = t->xstate;
		iov.iov_len = XSTATE_MAX;
		if (fake && *fake == '1')
			e = EIO;
		else if (ptrace(PTRACE_GETREGSET, t->pid, NT_X86_XSTATE,
				&iov) < 0)
			e = errno;
		else if (iov.iov_len < XSTATE_HDR_OFF + 64)
			e = EINVAL;
		else
			t->xstate_len = iov.iov_len;
	}
	if (t->xstate_len || !cpu_uses_xsave())
		return 0;
	return lp_err_set(err, LP_EINJECT, "read the extended FP state of "
			  "process %d: ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)"
			  ": %s; without it the thread's AVX registers could "
			  "not be restored, so nothing was injected",
			  (int)t->pid, strerror(e));
}

/*
 * The restore frame [frame, frame + len) and, below it, STACK_HEADROOM
 * bytes for the callee's own stack must lie inside the mapping the
 * thread's stack pointer is in (its stack, a thread's or a fiber's):
 * never across a guard page into something else.  The process stack
 * ([stack]) grows down on demand, up to the kernel's guard gap above the
 * mapping below it.  The maps may be a little old: stacks do not move.
 */
static int
check_stack_room(struct inj_target *t, uint64_t frame, size_t len,
		 struct lp_err *err)
{
	uint64_t rsp = t->saved.rsp, low = 0;
	const char *what = "stack";

	for (int pass = 0;; pass++) {
		const struct inj_map *m = NULL, *below = NULL;

		for (size_t i = 0; i < t->nmaps; i++) {
			if (rsp - 1 >= t->maps[i].start &&
			    rsp - 1 < t->maps[i].end)
				m = &t->maps[i];
			else if (t->maps[i].end <= rsp - 1)
				below = &t->maps[i];
		}
		if (m) {
			low = m->start;
			if (m->path && !strcmp(m->path, "[stack]")) {
				low = below ? below->end + STACK_GUARD_GAP : 0;
				if (low > m->start)
					low = m->start;
			} else if (m->path) {
				what = m->path;
			}
			if (frame >= low + STACK_HEADROOM)
				return 0;
		}
		/* the stack may have grown since the maps were read */
		t->maps_snap = false;
		if (pass == 0 && inj_refresh_maps(t, NULL) == 0)
			continue;
		break;
	}
	return lp_err_set(err, LP_EINJECT, "the stack of the main thread of "
			  "process %d (%s) has %llu bytes below its stack "
			  "pointer 0x%llx; an injected call needs %zu (the "
			  "restore frame and %u for the callee), so nothing "
			  "was injected", (int)t->pid, what,
			  (unsigned long long)(rsp > low ? rsp - low : 0),
			  (unsigned long long)rsp,
			  len + FRAME_GAP + STACK_HEADROOM, STACK_HEADROOM);
}

/*
 * Write the restore frame (see the top of this file) for the saved
 * registers, once per stop (again after inj_set_syscall_result()).  The
 * memory below the red zone is dead stack: nothing of the thread lives
 * there while it is stopped.
 */
static int
build_frame(struct inj_target *t, struct lp_err *err)
{
	struct user_regs_struct *r = &t->saved;
	struct k_rt_sigframe *f;
	uint64_t fp, frame, top;
	uint8_t *buf, *fpbuf;
	uint32_t fpsz, used = 0;
	size_t len;
	int rc;

	if (t->frame_ok)
		return 0;
	if (!t->frame) {
		if (ptrace(PTRACE_GETSIGMASK, t->pid, sizeof(t->sigmask),
			   &t->sigmask) < 0) {
			rc = inj_refresh_info(t, err);
			if (rc < 0)
				return rc;
			t->sigmask = t->info.sig_blocked;
		}
		if ((rc = read_xstate(t, err)) < 0)
			return rc;
		/* no xsave: the legacy FXSAVE form */
		if (!t->xstate_len &&
		    ptrace(PTRACE_GETFPREGS, t->pid, 0, &t->saved_fp) < 0)
			return lp_err_sys(err, lp_errno_code(errno,
							     LP_EINJECT),
					  "read the FP registers of %d",
					  (int)t->pid);
	}
	if (t->xstate_len) {
		uint64_t bv;

		memcpy(&bv, t->xstate + XSTATE_HDR_OFF, sizeof(bv));
		used = xstate_used_size(bv | 3, t->xstate_len);
		fpsz = used + 4;	/* + FP_XSTATE_MAGIC2 */
	} else {
		fpsz = sizeof(t->saved_fp);
	}
	top = r->rsp - FRAME_GAP;
	fp = (top - fpsz) & ~(uint64_t)63;
	frame = ((fp - sizeof(*f)) & ~(uint64_t)15) - 8;
	len = (size_t)(fp + fpsz - frame);
	if ((rc = check_stack_room(t, frame, len, err)) < 0)
		return rc;
	buf = calloc(1, len);
	if (!buf)
		return lp_err_set(err, LP_ENOMEM, "restore frame");
	f = (struct k_rt_sigframe *)buf;
	fpbuf = buf + (fp - frame);
	f->pretcode = t->restore_rt;
	f->uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS |
			 (t->xstate_len ? UC_FP_XSTATE : 0);
	f->uc.ss_flags = SS_FLAGS_KEEP;
	f->uc.mc.r8 = r->r8;
	f->uc.mc.r9 = r->r9;
	f->uc.mc.r10 = r->r10;
	f->uc.mc.r11 = r->r11;
	f->uc.mc.r12 = r->r12;
	f->uc.mc.r13 = r->r13;
	f->uc.mc.r14 = r->r14;
	f->uc.mc.r15 = r->r15;
	f->uc.mc.rdi = r->rdi;
	f->uc.mc.rsi = r->rsi;
	f->uc.mc.rbp = r->rbp;
	f->uc.mc.rbx = r->rbx;
	f->uc.mc.rdx = r->rdx;
	f->uc.mc.rax = r->rax;
	f->uc.mc.rcx = r->rcx;
	f->uc.mc.rsp = r->rsp;
	f->uc.mc.rip = r->rip;
	f->uc.mc.eflags = r->eflags;
	f->uc.mc.cs = (uint16_t)r->cs;
	f->uc.mc.ss = (uint16_t)r->ss;
	/* An interrupted syscall: what a signal with SA_RESTART saves (a
	 * result set by inj_set_syscall_result() has orig_rax -1). */
	if ((int64_t)r->orig_rax >= 0) {
		switch ((int64_t)r->rax) {
		case -ERESTARTSYS_:
		case -ERESTARTNOINTR_:
		case -ERESTARTNOHAND_:
			f->uc.mc.rip -= 2;
			f->uc.mc.rax = r->orig_rax;
			break;
		case -ERESTART_RESTARTBLOCK_:
			f->uc.mc.rip -= 2;
			f->uc.mc.rax = SYS_restart_syscall;
			break;
		}
	}
	f->uc.mc.oldmask = t->sigmask;
	f->uc.mc.fpstate = fp;
	f->uc.sigmask = t->sigmask;
	if (t->xstate_len) {
		uint32_t magic2 = FP_XSTATE_MAGIC2;
		uint32_t sw[12] = { 0 };
		uint64_t features;

		memcpy(fpbuf, t->xstate, used);
		/* the software-reserved bytes as the kernel writes them:
		 * magic1, extended size, features, size of what is there */
		memcpy(sw, t->xstate + SW_RESERVED_OFF, sizeof(sw));
		memcpy(&features, (uint8_t *)sw + 8, sizeof(features));
		if (sw[0] != FP_XSTATE_MAGIC1 || !features)
			memcpy(&features, t->xstate + XSTATE_HDR_OFF,
			       sizeof(features));
		features |= 3;		/* x87, SSE */
		memset(sw, 0, sizeof(sw));
		sw[0] = FP_XSTATE_MAGIC1;
		sw[1] = used + 4;
		memcpy((uint8_t *)sw + 8, &features, sizeof(features));
		sw[4] = used;
		memcpy(fpbuf + SW_RESERVED_OFF, sw, sizeof(sw));
		memcpy(fpbuf + used, &magic2, sizeof(magic2));
	} else {
		memcpy(fpbuf, &t->saved_fp, sizeof(t->saved_fp));
		memset(fpbuf + SW_RESERVED_OFF, 0, 48);
	}
	rc = inj_write(t, frame, buf, len, err);
	free(buf);
	instant();
	if (rc < 0)
		return rc;
	t->frame = frame;
	t->frame_ok = true;
	t->pretcode_ok = true;
	return 0;
}

/*
 * The stack the step's frame is on: the mapping of the stack pointer at
 * the stop (the maps may be a little old: stacks do not move), down to
 * nothing for the process stack, which grows down.  Unknown: everything.
 */
static void
step_stack(struct inj_target *t)
{
	uint64_t rsp = t->saved.rsp;

	t->step_stack_lo = 0;
	t->step_stack_hi = UINT64_MAX;
	for (size_t i = 0; i < t->nmaps; i++) {
		const struct inj_map *m = &t->maps[i];

		if (rsp - 1 >= m->start && rsp - 1 < m->end) {
			t->step_stack_lo = m->path &&
					   !strcmp(m->path, "[stack]") ?
					   0 : m->start;
			t->step_stack_hi = m->end;
			return;
		}
	}
}

/*
 * Let the step whose registers are `regs` run: set them, and let the
 * thread go at once.  It runs the step by itself and comes back through
 * rt_sigreturn from the frame; nothing of leakprobe (killed, stopped,
 * slow) can hold it or hurt it from here on.  Results are read from
 * memory (the code page), never from registers.
 */
static int
launch(struct inj_target *t, enum step_kind kind,
       const struct user_regs_struct *regs, struct lp_err *err)
{
	t->dirty_start_ns = lp_mono_ns();
	t->regs_dirty = true;
	if (ptrace(PTRACE_SETREGS, t->pid, 0, regs) < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EINJECT),
				  "ptrace(PTRACE_SETREGS, %d)", (int)t->pid);
	instant();
	t->step = kind;
	t->step_seen = false;
	step_stack(t);
	t->step_frame = t->frame;
	t->step_page = t->code_page;
	t->step_tramp = t->code_page + t->tramp_off;
	t->regs_dirty = false;	/* the frame restores them, not us */
	return release(t, err);
}

/* Memory at addr is mapped (readable) in the target.  EFAULT is the
 * answer "no": only another error tries /proc/PID/mem. */
static bool
mapped(struct inj_target *t, uint64_t addr)
{
	uint8_t b;
	struct iovec l = { &b, 1 }, r = { (void *)(uintptr_t)addr, 1 };

	if (process_vm_readv(t->pid, &l, 1, &r, 1, 0) == 1)
		return true;
	if (errno == EFAULT)
		return false;
	return inj_read(t, addr, &b, 1, NULL) == 0;
}

/*
 * Where the thread is, without stopping it (/proc/PID/task/PID/syscall:
 * its stack and instruction pointers while it is blocked or preempted).
 * 0, or -1 while it runs (the kernel cannot tell then).
 */
static int
peek_where(struct inj_target *t, uint64_t *sp, uint64_t *pc)
{
	char path[64], buf[256];
	int fd;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)t->pid,
		 (int)t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] == 'r')
		return -1;	/* "running" */
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	if (!(p = strrchr(buf, ' ')))
		return -1;
	*pc = strtoull(p + 1, NULL, 0);
	*p = 0;
	if (!(p = strrchr(buf, ' ')))
		return -1;
	*sp = strtoull(p + 1, NULL, 0);
	return 0;
}

/*
 * Is the last step finished, the thread back in its own code?  1 yes
 * (seen without a stop), 0 not yet or cannot tell (the thread runs).
 */
int
inj_step_settled(struct inj_target *t)
{
	struct user_regs_struct keep;
	uint64_t sp, pc;
	bool in;

	if (!t->step)
		return 1;
	if (t->attached || peek_where(t, &sp, &pc) < 0)
		return 0;
	keep = t->saved;
	t->saved.rsp = sp;
	t->saved.rip = pc;
	in = in_step(t);
	t->saved = keep;
	if (in)
		return 0;
	step_over(t);
	return 1;
}

/* The permissions (PROT_*) of the mapping at addr, from a fresh read of
 * the maps; -1 when nothing is mapped there or the maps cannot be read. */
static int
map_prot(struct inj_target *t, uint64_t addr)
{
	if (inj_refresh_maps(t, NULL) < 0)
		return -1;
	for (size_t i = 0; i < t->nmaps; i++) {
		const struct inj_map *m = &t->maps[i];

		if (addr >= m->start && addr < m->end)
			return (m->perms[0] == 'r' ? PROT_READ : 0) |
			       (m->perms[1] == 'w' ? PROT_WRITE : 0) |
			       (m->perms[2] == 'x' ? PROT_EXEC : 0);
	}
	return -1;
}

/*
 * A syscall through libc's gadget leaves no result (rt_sigreturn puts
 * rax back): its outcome is seen in the target.  prot < 0: addr is
 * mapped (want) or not (!want); else addr is mapped with exactly prot.
 */
static bool
outcome(struct inj_target *t, uint64_t addr, bool want, int prot)
{
	if (prot < 0)
		return mapped(t, addr) == want;
	return map_prot(t, addr) == prot;
}

static uint64_t
now_ns_since(uint64_t start)
{
	return lp_mono_ns() - start;
}

/*
 * Wait (polling memory, the thread free) until the step's completion word
 * says it is done, or for a syscall through the gadget until `addr` is
 * mapped (want) or unmapped (!want).  1 done; 0 when the gadget step is
 * over without that (the thread seen back in its own code); <0 timeout or
 * the target gone.
 */
static int
wait_step(struct inj_target *t, uint64_t addr, bool want, int prot,
	  int timeout_ms, struct lp_err *err)
{
	uint64_t start = lp_mono_ns(), now;
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000ull;
	unsigned delay = 20;
	uint64_t done = 0;

	for (;;) {
		if (t->step == STEP_GADGET) {
			/* (the maps are read only once the fast polls are
			 * over: permissions show nowhere else) */
			if ((prot < 0 || now_ns_since(start) >= 300000) &&
			    outcome(t, addr, want, prot)) {
				t->step_seen = true;
				break;
			}
			/* seen back in its own code without it: failed */
			if (inj_step_settled(t) == 1)
				return outcome(t, addr, want, prot) ? 1 : 0;
		} else if (inj_read(t, t->step_tramp + TRAMP_DONE, &done,
				    sizeof(done), NULL) == 0 &&
			   done == TRAMP_DONE_MARK) {
			break;
		}
		if (delay >= 1000) {
			struct inj_procinfo pi;

			/* group-stopped (SIGSTOP from someone else) before
			 * it ran the step: it runs it once continued */
			if (inj_read_procinfo(t->pid, &pi, NULL) == 0 &&
			    pi.state == 'T') {
				t->let_finish = true;
				return lp_err_set(err, LP_EUNSAFE, "process %d "
						  "is stopped (SIGSTOP); resume"
						  " it with 'kill -CONT %d'",
						  (int)t->pid, (int)t->pid);
			}
		}
		if (kill(t->pid, 0) < 0 || !mapped(t, t->step_frame)) {
			struct inj_procinfo pi;

			/* no memory left to read: exiting, or gone */
			if (inj_read_procinfo(t->pid, &pi, NULL) < 0 ||
			    pi.state == 'Z' || pi.state == 'X') {
				t->gone = true;
				return lp_err_set(err, LP_EEXITED, "process %d "
						  "exited", (int)t->pid);
			}
		}
		now = lp_mono_ns();
		if (now > deadline) {
			if (t->step == STEP_GADGET) {
				/* a thread that keeps running its own code
				 * cannot be seen from /proc: a stop tells */
				int rc = inj_attach(t, err);

				if (rc < 0)
					return rc;
				rc = outcome(t, addr, want, prot);
				inj_detach(t, NULL);
				return rc;
			}
			t->let_finish = true;
			return lp_err_set(err, LP_ETIMEDOUT, "injected code in "
					  "%d did not finish within %d ms",
					  (int)t->pid, timeout_ms);
		}
		/* the step is microseconds away once the thread has a CPU:
		 * yield for the first 300 us, then back off to 1 ms */
		if (now - start < 300000) {
			sched_yield();
			continue;
		}
		pause_us(delay);
		if (delay < 1000)
			delay *= 2;
	}
	instant();
	t->dirty_ns += lp_mono_ns() - t->dirty_start_ns;
	return 1;
}

/* Write the trampoline (once per page) and clear its completion word. */
static int
arm_tramp(struct inj_target *t, struct lp_err *err)
{
	uint64_t tramp = t->code_page + t->tramp_off;
	uint64_t clear[2] = { 0, 0 };
	int rc;

	if (!t->tramp_ok) {
		uint8_t code[INJ_TRAMP_SIZE] = { 0 };

		memcpy(code, tramp_code, sizeof(tramp_code));
		rc = inj_write(t, tramp, code, sizeof(code), err);
		instant();
		if (rc < 0)
			return rc;
		t->tramp_ok = true;
	}
	rc = inj_write(t, tramp + TRAMP_RESULT, clear, sizeof(clear), err);
	instant();
	return rc;
}

static int
step_ready(struct inj_target *t, const char *what, struct lp_err *err)
{
	int rc;

	if (!t->attached || !t->regs_saved || t->let_finish)
		return lp_err_set(err, LP_EINJECT, "%s: not attached, or a "
				  "step still running", what);
	if ((!t->syscall_insn || !t->restore_rt) &&
	    (rc = inj_prepare(t, err)) < 0)
		return rc;
	return 0;
}

/*
 * A syscall step.  Through the code page when there is one (and the
 * syscall does not remove it): the trampoline stores the result, exact.
 * Else through libc's `syscall; ret` and __restore_rt, whose result is
 * lost in rt_sigreturn: the caller names an address whose mapping tells
 * (`probe`, to be mapped when `want`), and *ret is 0 or -EEXIST/-EINVAL
 * (seen back in its own code without that).
 */
static int
syscall_step(struct inj_target *t, long nr, const uint64_t args[6],
	     uint64_t probe, bool want, int prot, int64_t *ret,
	     struct lp_err *err)
{
	struct user_regs_struct regs;
	/* never a syscall that takes the code page away, or its execute
	 * permission, from under the trampoline's next instruction */
	bool page = t->code_page &&
		    !((nr == SYS_munmap || nr == SYS_mprotect) &&
		      t->code_page >= args[0] &&
		      t->code_page < args[0] + args[1]);
	int rc;

	if ((rc = step_ready(t, "syscall", err)) < 0)
		return rc;
	if (!page && !probe)
		return lp_err_set(err, LP_EINVAL, "syscall: no code page "
				  "(inj_use_page) for its result");
	if (page && (rc = arm_tramp(t, err)) < 0)
		return rc;
	if ((rc = build_frame(t, err)) < 0)
		return rc;
	regs = t->saved;
	if (page) {
		/* rsp where rt_sigreturn wants it: past the pretcode slot */
		regs.rip = t->code_page + t->tramp_off + TRAMP_SYSCALL;
		regs.rsp = t->frame + 8;
	} else {
		if (!t->pretcode_ok) {
			rc = inj_write(t, t->frame, &t->restore_rt,
				       sizeof(t->restore_rt), err);
			instant();
			if (rc < 0)
				return rc;
			t->pretcode_ok = true;
		}
		regs.rip = t->syscall_insn;
		regs.rsp = t->frame;		/* `ret` pops __restore_rt */
	}
	regs.rax = (uint64_t)nr;
	regs.orig_rax = (uint64_t)-1;	/* no restart logic while ours */
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	regs.eflags &= ~(uint64_t)0x100;	/* TF */
	rc = launch(t, page ? STEP_PAGE : STEP_GADGET, &regs, err);
	if (rc < 0)
		return rc;
	instant();
	rc = wait_step(t, probe, want, prot, page ? 2000 : 200, err);
	if (rc < 0)
		return rc;
	if (page)
		return inj_read(t, t->step_tramp + TRAMP_RESULT, ret,
				sizeof(*ret), err);
	*ret = rc ? 0 : want ? -EEXIST : -EINVAL;
	return 0;
}

int
inj_syscall(struct inj_target *t, long nr, const uint64_t args[6],
	    int64_t *ret, struct lp_err *err)
{
	return syscall_step(t, nr, args, 0, false, -1, ret, err);
}

/*
 * A call that did not end in our hands (a timeout, an error in the
 * middle) may still return into the trampoline, later, when the thread
 * runs it alone: its page must stay mapped for as long as we know it.
 */
static void
pin_page(struct inj_target *t)
{
	t->pinned_page = t->code_page;
}

bool
inj_page_pinned(const struct inj_target *t, uint64_t page)
{
	return t->pinned_page && t->pinned_page == page;
}

int
inj_call(struct inj_target *t, uint64_t fn, const uint64_t *args, int nargs,
	 uint64_t *ret, int timeout_ms, struct lp_err *err)
{
	struct user_regs_struct regs;
	uint64_t tramp = t->code_page + t->tramp_off;
	int rc;

	if ((rc = step_ready(t, "call", err)) < 0)
		return rc;
	if (nargs < 0 || nargs > 6)
		return lp_err_set(err, LP_EINVAL, "call: %d arguments", nargs);
	if (!t->code_page)
		return lp_err_set(err, LP_EINVAL, "call: no code page "
				  "(inj_use_page)");
	if ((rc = arm_tramp(t, err)) < 0)
		return rc;
	if ((rc = build_frame(t, err)) < 0)
		return rc;
	/*
	 * At the `call`, rsp = frame + 8 (16-byte aligned, as the ABI
	 * wants): the callee's return address overwrites the pretcode
	 * slot, and its stack lies below the frame.  After it returns, rsp
	 * is frame + 8 again: where rt_sigreturn looks.
	 */
	regs = t->saved;
	regs.rsp = t->frame + 8;
	regs.rip = tramp;
	regs.r11 = fn;
	regs.rax = 0;			/* no vector args (varargs ABI) */
	regs.orig_rax = (uint64_t)-1;
	regs.rdi = nargs > 0 ? args[0] : 0;
	regs.rsi = nargs > 1 ? args[1] : 0;
	regs.rdx = nargs > 2 ? args[2] : 0;
	regs.rcx = nargs > 3 ? args[3] : 0;
	regs.r8 = nargs > 4 ? args[4] : 0;
	regs.r9 = nargs > 5 ? args[5] : 0;
	regs.eflags &= ~(uint64_t)0x500;	/* DF (the ABI), TF */
	t->pretcode_ok = false;
	rc = launch(t, STEP_CALL, &regs, err);
	if (rc < 0) {
		/* the registers were set: the thread may be in the call */
		if (t->step == STEP_CALL)
			pin_page(t);
		return rc;
	}
	instant();
	rc = wait_step(t, 0, false, -1, timeout_ms, err);
	if (rc < 0) {
		/* still running (a timeout), or we could not tell */
		pin_page(t);
		return rc;
	}
	return inj_read(t, tramp + TRAMP_RESULT, ret, sizeof(*ret), err);
}

int
inj_mmap(struct inj_target *t, size_t len, int prot, uint64_t *addr,
	 struct lp_err *err)
{
	return inj_mmap_at(t, 0, len, prot, addr, err);
}

int
inj_mmap_at(struct inj_target *t, uint64_t at, size_t len, int prot,
	    uint64_t *addr, struct lp_err *err)
{
	/*
	 * Shared anonymous memory: a VMA of its own that the kernel never
	 * merges with the target's private anonymous neighbours, so the
	 * page stays findable (and removable) as exactly what we mapped.
	 * Always at an address we chose from a gap (MAP_FIXED_NOREPLACE):
	 * its appearing there is the result.
	 */
	uint64_t a[6] = { at, len, (uint64_t)prot,
			  MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			  (uint64_t)-1, 0 };
	uint64_t *before, inode = 0;
	size_t nbefore = 0;
	int64_t r = 0;
	int rc;

	if (!(prot & PROT_READ))
		return lp_err_set(err, LP_EINVAL, "remote mmap: the page must "
				  "be readable");
	if (inj_refresh_maps(t, NULL) < 0)
		return lp_err_set(err, LP_EINJECT, "remote mmap(%zu): cannot "
				  "read the maps of pid %d", len, (int)t->pid);
	if (!at) {
		if (inj_free_gap(t, len, &at) < 0)
			return lp_err_set(err, LP_EINJECT, "remote mmap(%zu): "
					  "no free range in pid %d", len,
					  (int)t->pid);
		a[0] = at;
	}
	/* the shared anonymous inodes before: ours will be a new one */
	before = xcalloc(t->nmaps + 1, sizeof(*before));
	for (size_t i = 0; i < t->nmaps; i++)
		if (t->maps[i].path &&
		    !strncmp(t->maps[i].path, "/dev/zero", 9))
			before[nbefore++] = t->maps[i].inode;
	if (mapped(t, at))
		r = -EEXIST;
	else if ((rc = syscall_step(t, SYS_mmap, a, at, true, -1, &r,
				    err)) < 0) {
		free(before);
		return rc;
	}
	/* "something is mapped at `at`" is not success: a thread of the
	 * target's may have mapped there while the step was pending (our
	 * MAP_FIXED_NOREPLACE then failed) */
	if (r >= 0 && (inj_refresh_maps(t, NULL) < 0 ||
		       !inj__own_map(t->maps, t->nmaps, at, len, prot, before,
				     nbefore, &inode)))
		r = -EEXIST;
	free(before);
	if (r < 0) {
		errno = (int)-r;
		return lp_err_sys(err, LP_EINJECT, "remote mmap(%zu) at 0x%"
				  PRIx64 " in pid %d", len, at, (int)t->pid);
	}
	t->mmap_inode = inode;
	*addr = at;
	return 0;
}

uint64_t
inj_mmap_inode(const struct inj_target *t)
{
	return t->mmap_inode;
}

/* The inode of the shared anonymous mapping exactly [addr, addr + len)
 * in the maps as last read; 0 when there is none such. */
static uint64_t
shared_anon_inode(const struct inj_target *t, uint64_t addr, size_t len)
{
	for (size_t i = 0; i < t->nmaps; i++) {
		const struct inj_map *m = &t->maps[i];

		if (m->start == addr)
			return m->end - m->start == len && m->perms[3] == 's' &&
			       m->path && !strcmp(m->path,
						  "/dev/zero (deleted)") ?
			       m->inode : 0;
	}
	return 0;
}

uint64_t
inj_page_inode(struct inj_target *t, uint64_t addr, size_t len)
{
	return shared_anon_inode(t, addr, len);
}

int
inj_page_is(struct inj_target *t, uint64_t addr, size_t len, uint64_t inode)
{
	if (!inode || inj_refresh_maps(t, NULL) < 0)
		return 0;
	return shared_anon_inode(t, addr, len) == inode;
}

/* Is the mapping with this inode still at addr (a fresh read of the
 * maps)?  1 yes, 0 no, -1 the maps cannot be read. */
static int
inode_at(struct inj_target *t, uint64_t addr, uint64_t inode)
{
	if (inj_refresh_maps(t, NULL) < 0)
		return -1;
	for (size_t i = 0; i < t->nmaps; i++)
		if (t->maps[i].start == addr)
			return t->maps[i].inode == inode;
	return 0;
}

int
inj_munmap(struct inj_target *t, uint64_t addr, size_t len,
	   struct lp_err *err)
{
	uint64_t a[6] = { addr, len, 0, 0, 0, 0 };
	uint64_t ino;
	int64_t r;
	int rc;

	if (t->pinned_page && t->pinned_page >= addr &&
	    t->pinned_page < addr + len)
		return lp_err_set(err, LP_EBUSY, "munmap(0x%" PRIx64 "): a "
				  "call that did not finish may still return "
				  "into the code page of process %d",
				  addr, (int)t->pid);
	/* only a mapping of the kind we make, the one there now: its inode
	 * going away is the munmap's success, whatever refills the hole */
	if (inj_refresh_maps(t, NULL) < 0 ||
	    !(ino = shared_anon_inode(t, addr, len)))
		return lp_err_set(err, LP_EBUSY, "munmap(0x%" PRIx64 "): no "
				  "page of leakprobe's there in process %d",
				  addr, (int)t->pid);
	rc = syscall_step(t, SYS_munmap, a, addr, false, -1, &r, err);
	if (rc < 0)
		return rc;
	switch (inode_at(t, addr, ino)) {
	case 0:
		r = 0;
		break;
	case 1:
		if (r == 0)
			r = -EINVAL;
		break;
	}
	if (r < 0) {
		errno = (int)-r;
		return lp_err_sys(err, LP_EINJECT, "remote munmap(0x%" PRIx64
				  ") in pid %d", addr, (int)t->pid);
	}
	if (t->code_page >= addr && t->code_page < addr + len) {
		t->code_page = 0;
		t->tramp_ok = false;
	}
	return 0;
}

int
inj_mprotect(struct inj_target *t, uint64_t addr, size_t len, int prot,
	     struct lp_err *err)
{
	uint64_t a[6] = { addr, len, (uint64_t)prot, 0, 0, 0 };
	uint64_t ino;
	int64_t r = 0;
	int rc;

	if (!(prot & PROT_EXEC) && t->pinned_page &&
	    t->pinned_page >= addr && t->pinned_page < addr + len)
		return lp_err_set(err, LP_EBUSY, "mprotect(0x%" PRIx64 "): a "
				  "call that did not finish may still return "
				  "into the code page of process %d",
				  addr, (int)t->pid);
	if (inj_refresh_maps(t, NULL) < 0 ||
	    !(ino = shared_anon_inode(t, addr, len)))
		return lp_err_set(err, LP_EBUSY, "mprotect(0x%" PRIx64 "): no "
				  "page of leakprobe's there in process %d",
				  addr, (int)t->pid);
	rc = syscall_step(t, SYS_mprotect, a, addr, true, prot, &r, err);
	if (rc < 0)
		return rc;
	if (r == 0 && inode_at(t, addr, ino) != 1)
		r = -EINVAL;
	if (r < 0) {
		errno = (int)-r;
		return lp_err_sys(err, LP_EINJECT, "remote mprotect(0x%" PRIx64
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
		t->maps_snap = false;
		t->regs_saved = false;
		if (t->masked) {
			pthread_sigmask(SIG_SETMASK, &t->oldmask, NULL);
			t->masked = false;
		}
		return 0;
	}
	/* Only a syscall result set in this stop changes the registers;
	 * killed before this, the thread restarts its syscall as usual. */
	if (t->regs_saved && (t->result_set || t->regs_dirty) &&
	    ptrace(PTRACE_SETREGS, t->pid, 0, &t->saved) < 0 && !t->gone)
		rc = lp_err_sys(err, LP_EINJECT, "detach: restore registers "
				"of %d", (int)t->pid);
	t->regs_dirty = false;
	instant();
	if (release(t, err) < 0 && rc == 0)
		rc = -LP_EINJECT;
	return rc;
}

uint64_t
inj_stop_total_ns(const struct inj_target *t)
{
	return t->stop_total_ns;
}

uint64_t
inj_held_total_ns(const struct inj_target *t)
{
	return t->held_total_ns;
}

unsigned
inj_stops(const struct inj_target *t)
{
	return t->nstops;
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

