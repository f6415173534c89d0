#ifndef LP_INJECTOR_H
#define LP_INJECTOR_H

/*
 * injector/: attach to a live process on x86-64 Linux, resolve symbols of
 * its mapped ELF files, run syscalls and calls in its main thread, read and
 * write its memory, unwind a stopped thread, restore everything, detach.
 * Knows Linux, ptrace, ELF and x86-64; nothing about Ruby.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct inj_target;

/* Facts read from /proc/PID/status and /proc/PID/stat at open time. */
struct inj_procinfo {
	pid_t pid;
	char comm[32];
	char state;		/* R S D T Z ... */
	uid_t uid, euid;
	gid_t gid, egid;
	pid_t tracer;		/* TracerPid, 0 when none */
	char tracer_comm[32];
	uint64_t start_time;	/* field 22 of stat, clock ticks */
	uint64_t sig_caught;	/* SigCgt mask: bit (sig-1) */
	uint64_t sig_blocked;	/* SigBlk of the main thread */
	uint64_t sig_ignored;	/* SigIgn */
	int threads;
	bool shstk;		/* x86_Thread_features has shstk: the main
				 * thread runs with a user shadow stack */
};

/*
 * Open a target by pid: validate it (exists, not ourselves, not a zombie,
 * not traced by someone else) and index the ELF files it maps.  Does not
 * stop anything.  Returns NULL with err filled (LP_ENOPROC, LP_ESELF,
 * LP_EZOMBIE, LP_ETRACED, LP_EPERM).  Caller frees with inj_close().
 */
struct inj_target *inj_open(pid_t pid, struct lp_err *err);
/* Detach (restoring the thread) if attached, and free.  NULL is a no-op. */
void inj_close(struct inj_target *t);

const struct inj_procinfo *inj_info(const struct inj_target *t);
/* Re-read /proc/PID/status (signal masks, state, thread count). */
int inj_refresh_info(struct inj_target *t, struct lp_err *err);
/* Re-read /proc/PID/maps and index newly mapped ELF files. */
int inj_refresh_maps(struct inj_target *t, struct lp_err *err);

/*
 * Address of a symbol by name in any mapped ELF (.dynsym first, then
 * .symtab).  When `module` is non-NULL only files whose basename starts
 * with it are searched ("libc.so", "libruby").  0 or -LP_ENOSYM.
 */
int inj_lookup(struct inj_target *t, const char *module, const char *name,
	       uint64_t *addr, struct lp_err *err);
bool inj_has_symbol(struct inj_target *t, const char *name);
/* Path (as mapped) of the module defining `name`, or NULL. */
const char *inj_symbol_module(struct inj_target *t, const char *name);

/*
 * Name an address: "func+0x12 (libfoo.so.1)" when it lies within a
 * symbol's st_size (.symtab, including a build-id debug file, else
 * .dynsym), otherwise "libfoo.so.1+0x1234", or "0x7f..." when unmapped.
 */
void inj_symbolize(struct inj_target *t, uint64_t addr, char *buf,
		   size_t len);
/* True when addr lies inside the named function (by st_size). */
bool inj_addr_in_symbol(struct inj_target *t, uint64_t addr,
			const char *name);
/* Basename of the module mapping addr, or NULL. */
const char *inj_addr_module(struct inj_target *t, uint64_t addr);

/* What a profile needs to know of an address (see inj_addr_info). */
struct inj_addr_info {
	const char *path;	/* module as mapped; NULL when unmapped */
	const char *base;	/* its basename */
	uint64_t lo, hi;	/* the module's span in the target */
	uint64_t file_off;	/* file offset mapped at lo */
	const char *build_id;	/* hex, "" when none */
	const char *sym;	/* symbol containing addr (by st_size), or
				 * NULL */
	uint64_t sym_off;	/* addr - the symbol's start */
};
/*
 * Module, build-id and symbol of addr (the rules of inj_symbolize).
 * Strings are owned by t and live until inj_close() or the next
 * inj_refresh_maps().  Returns 0, or -LP_ENOSYM when addr is unmapped
 * (out->path NULL).
 */
int inj_addr_info(struct inj_target *t, uint64_t addr,
		  struct inj_addr_info *out);
/* The same for the main executable (/proc/PID/exe), without a symbol:
 * 0, or -LP_ENOSYM when it is not mapped. */
int inj_main_info(struct inj_target *t, struct inj_addr_info *out);

/*
 * Do the slow preparation (find a `syscall; ret` and __restore_rt in libc
 * with capstone) before stopping anything, so the stop stays short.
 */
int inj_prepare(struct inj_target *t, struct lp_err *err);

/*
 * Seize and interrupt the main thread only (tid == pid) and save its
 * general and legacy FP registers.  Other threads keep running.  A signal
 * that arrives for the thread while we hold it is queued and re-delivered
 * by inj_detach().  Returns 0, -LP_EPERM, -LP_ENOPROC, -LP_EINTR...
 */
int inj_attach(struct inj_target *t, struct lp_err *err);
bool inj_attached(const struct inj_target *t);
/* Instruction pointer the thread was stopped at (valid when attached). */
uint64_t inj_stopped_ip(const struct inj_target *t);
/* Its stack pointer (valid when attached). */
uint64_t inj_stopped_sp(const struct inj_target *t);
/* Syscall the thread was in when stopped, or -1. */
long inj_stopped_syscall(const struct inj_target *t);
/*
 * The same, with rax (an ERESTART* code while interrupted: -512, -514,
 * -516) and the syscall's six arguments (rdi rsi rdx r10 r8 r9).
 */
long inj_stopped_syscall_regs(const struct inj_target *t, int64_t *rax,
			      uint64_t args[6]);

/*
 * Every step below returns through rt_sigreturn from a frame built below
 * the thread's red zone (see ptrace.c), and runs detached: the step sets
 * the registers and lets the thread go at once; it runs the step and
 * restores itself, whatever happens to leakprobe meanwhile.  So each step
 * ends with the thread detached (inj_attached() false): attach again for
 * the next one.  An attach made while the thread is still inside a step
 * lets it go and stops it again a moment later (up to 2 s).
 *
 * Run a syscall in the stopped main thread through the trampoline of the
 * code page given to inj_use_page() (required: the result is read from
 * the page).  *ret receives the raw return value (-errno on failure).
 */
int inj_syscall(struct inj_target *t, long nr, const uint64_t args[6],
		int64_t *ret, struct lp_err *err);
/*
 * Call a function in the stopped main thread with up to 6 integer args,
 * on an aligned stack below the restore frame, through a trampoline in
 * the code page given to inj_use_page() (it stores the return value and
 * a completion word there and ends in rt_sigreturn).  Only for audited
 * async-signal-safe functions; the whole xstate is restored from the
 * frame.  timeout_ms bounds the wait: a call still running then is left
 * to finish and restore itself (keep the page mapped: it returns there).
 */
int inj_call(struct inj_target *t, uint64_t fn, const uint64_t *args,
	     int nargs, uint64_t *ret, int timeout_ms, struct lp_err *err);
/*
 * 1 when the last step is over and the thread back in its own code
 * (seen in /proc while it is blocked or preempted, without a stop; or at
 * a later stop), 0 when not yet or when it cannot be told (it runs).
 */
int inj_step_settled(struct inj_target *t);

/* Bytes of the code page the call trampoline uses (code and result). */
#define INJ_TRAMP_SIZE	56
/* Offset in the trampoline of the callee's return address (the end of
 * its `call`): a call step in progress has tramp + INJ_TRAMP_RET on the
 * thread's stack. */
#define INJ_TRAMP_RET	3
/*
 * The executable page (mapped in the target, e.g. with inj_mmap(...,
 * PROT_READ | PROT_WRITE | PROT_EXEC)) whose bytes [off, off +
 * INJ_TRAMP_SIZE) inj_call() may use; off 8-byte aligned.  Kept across
 * attaches; forgotten when inj_munmap() removes it.  0 or -LP_EINVAL.
 */
int inj_use_page(struct inj_target *t, uint64_t page, uint32_t off);

/*
 * Make the syscall the stopped thread was in (inj_stopped_syscall() >= 0)
 * complete with `result` (e.g. -ETIMEDOUT) when the thread is restored,
 * instead of restarting.  Applies at inj_detach(); a leakprobe that dies
 * before it leaves the syscall restarting as usual.  0 or -LP_EINVAL.
 */
int inj_set_syscall_result(struct inj_target *t, int64_t result,
			   struct lp_err *err);

/*
 * True when an inj_call() through the code page `page` did not end in
 * our hands (a timeout, or an error after the thread was let go: it
 * finishes the call alone): it may return into the page at any later
 * time, so the page must stay mapped and executable (inj_munmap()
 * refuses it with -LP_EBUSY).
 */
bool inj_page_pinned(const struct inj_target *t, uint64_t page);

/*
 * Remote mmap (shared anonymous: never merged with neighbours; readable)
 * and munmap.  The mmap goes to a free range leakprobe chooses
 * (MAP_FIXED_NOREPLACE) and runs through libc's `syscall; ret`: its
 * result is our mapping appearing (inj_mmap_at).  munmap and mprotect
 * take only a shared anonymous mapping of exactly that range (else
 * -LP_EBUSY); munmap succeeds when that mapping (its inode) is gone from
 * the address, whatever the target maps there next.  munmap of the code
 * page itself runs through the gadget; other syscalls through the page.
 */
int inj_mmap(struct inj_target *t, size_t len, int prot, uint64_t *addr,
	     struct lp_err *err);
int inj_munmap(struct inj_target *t, uint64_t addr, size_t len,
	       struct lp_err *err);
/*
 * Remote mprotect.  A range holding the code page goes through libc's
 * `syscall; ret` (the trampoline must not lose its execute permission
 * under its own feet): its result is the permissions seen in the maps.
 * Taking PROT_EXEC from a pinned page is refused (-LP_EBUSY).
 */
int inj_mprotect(struct inj_target *t, uint64_t addr, size_t len, int prot,
		 struct lp_err *err);
/* The same mmap at a chosen address (MAP_FIXED_NOREPLACE: fails when
 * the range is taken).  Success is what the maps show afterwards: a
 * shared anonymous mapping exactly at `at`, of `len` bytes and `prot`,
 * whose inode is new (inj_mmap_inode); a mapping of the target's that
 * took the range meanwhile is -EEXIST, never ours. */
int inj_mmap_at(struct inj_target *t, uint64_t at, size_t len, int prot,
		uint64_t *addr, struct lp_err *err);
/* The inode of the mapping the last successful inj_mmap made: what
 * identifies it as ours (inj_own_page) for as long as it lives. */
uint64_t inj_mmap_inode(const struct inj_target *t);
/* The inode of the shared anonymous mapping exactly [addr, addr + len)
 * in the maps as last read (a page found there), 0 when there is none. */
uint64_t inj_page_inode(struct inj_target *t, uint64_t addr, size_t len);
/* A fresh read of the maps still shows that page: exactly there, that
 * size, shared anonymous, that inode.  1 or 0 (then it is not ours any
 * more: never write, protect or unmap it). */
int inj_page_is(struct inj_target *t, uint64_t addr, size_t len,
		uint64_t inode);
/*
 * A free range of len bytes in the target (from the last maps refresh),
 * with a free page on either side, away from the main stack's growth.
 * 0 or -LP_ENOMEM.
 */
int inj_free_gap(struct inj_target *t, size_t len, uint64_t *addr);

/*
 * Memory of the target: process_vm_readv/writev, falling back to
 * /proc/PID/mem.  Does not require inj_attach().
 */
int inj_read(struct inj_target *t, uint64_t addr, void *buf, size_t len,
	     struct lp_err *err);
int inj_write(struct inj_target *t, uint64_t addr, const void *buf,
	      size_t len, struct lp_err *err);
/* Read a NUL-terminated string (at most len-1 bytes). */
int inj_read_string(struct inj_target *t, uint64_t addr, char *buf,
		    size_t len, struct lp_err *err);

/*
 * Load libunwind (dlopen, once; inj_unwind does it itself).  0, or
 * -LP_ENOTOOL naming what is missing.
 */
int inj_unwind_load(struct lp_err *err);
/*
 * Native stack of the stopped main thread (libunwind-ptrace), symbolized.
 * Writes up to max frames' addresses to ips; returns the count or < 0.
 */
int inj_unwind(struct inj_target *t, uint64_t *ips, int max,
	       struct lp_err *err);

/*
 * Let the stopped thread go: registers as captured, or with the result of
 * inj_set_syscall_result().  A signal that arrived while we held it was
 * raised again at the stop and is delivered now.  Safe to call when not
 * attached (after a step), and when the target died (returns 0).
 */
int inj_detach(struct inj_target *t, struct lp_err *err);

/*
 * How long the main thread was held during the last attach: from
 * PTRACE_INTERRUPT to detach (an upper bound: it includes the time the
 * thread took to reach the stop), and from the moment we saw the stop to
 * detach (what the injection itself cost).
 */
uint64_t inj_last_stop_ns(const struct inj_target *t);
uint64_t inj_last_held_ns(const struct inj_target *t);
/*
 * How long the thread ran with a step's registers, summed over every
 * step since inj_open(): from setting them until the step was seen done (the thread then restores itself
 * from the frame, whatever happens to leakprobe).
 */
uint64_t inj_last_dirty_ns(const struct inj_target *t);
/* Sums over every stop since inj_open(), and their count. */
uint64_t inj_stop_total_ns(const struct inj_target *t);
uint64_t inj_held_total_ns(const struct inj_target *t);
unsigned inj_stops(const struct inj_target *t);

/*
 * Start addresses of anonymous mappings (private, or shared: "/dev/zero
 * (deleted)") of exactly `size` bytes with the given permissions
 * ("rw-s"), from the last maps refresh.  Returns the count (at most max).
 */
size_t inj_anon_maps(struct inj_target *t, uint64_t size, const char *perms,
		     uint64_t *starts, size_t max);

/* Read /proc/PID/status etc. without opening a target (for `watch`). */
int inj_read_procinfo(pid_t pid, struct inj_procinfo *out,
		      struct lp_err *err);

#endif
