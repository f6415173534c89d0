#ifndef LP_PROBES_H
#define LP_PROBES_H

/*
 * probes/: what runs in or against a target.  The smaps sampler, Ruby
 * detection, the safe-point eval session (wrapper program, result
 * channel, batches).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analysis/analysis.h"
#include "common/err.h"
#include "injector/injector.h"

/* ---- sampler.c ----------------------------------------------------- */

/*
 * Read /proc/PID/smaps (or smaps_rollup when rollup) into s and parse it.
 * Returns 0, -LP_ENOPROC when the process is gone, -LP_EPERM.
 */
int probe_smaps_read(pid_t pid, bool rollup, struct ana_smaps *s,
		     struct lp_err *err);
/* Command name of pid (from /proc/PID/comm), "" when unreadable. */
void probe_comm(pid_t pid, char *buf, size_t len);

/* What /proc/PID/stat says about a process (watch --all bookkeeping). */
struct probe_proc {
	pid_t pid, ppid;
	char state;		/* R S D Z X ... */
	unsigned long flags;	/* PF_* */
	uint64_t starttime;	/* clock ticks after boot; pid + starttime
				 * identify a process across pid reuse */
	char comm[32];
};

/* Read /proc/PID/stat.  Returns 0, or -LP_ENOPROC when pid is gone. */
int probe_proc_stat(pid_t pid, struct probe_proc *out, struct lp_err *err);
/*
 * Alive and not on its way out: false once the process is gone, a
 * zombie, or its main thread has begun to exit (PF_EXITING, set before
 * the kernel closes its files: a killed target is "exited", not "its
 * helper thread closed the channel").
 */
bool probe_proc_alive(pid_t pid);
/* Kernel thread: PF_KTHREAD, kthreadd (pid 2) or one of its children. */
bool probe_is_kthread(const struct probe_proc *p);
/*
 * Every pid under /proc, ascending, into *pids (grown as needed; *cap is
 * its capacity; caller frees).  Returns the count or a negative LP_E*.
 */
ssize_t probe_list_pids(pid_t **pids, size_t *cap, struct lp_err *err);

/*
 * Cheap sample for many processes (watch --all): whole-process totals
 * from smaps_rollup, [heap]/arena/anon ranges from /proc/PID/maps, and
 * their resident and swapped pages from /proc/PID/pagemap.  Fills
 * out->rss/pss/uss/swap and cls[HEAP/ARENA/ANON].size/rss/swap.  The
 * handle keeps buffers between calls.  Same returns as probe_smaps_read.
 */
struct probe_fast;
struct probe_fast *probe_fast_new(void);
void probe_fast_free(struct probe_fast *f);
int probe_sample_fast(struct probe_fast *f, pid_t pid, struct ana_totals *out,
		      struct lp_err *err);
/*
 * pagemap costs 8 bytes per page of address space whether or not it is
 * populated: a process whose writable tracked ranges span more than
 * max_pages (default 512 Ki) is sampled from its full smaps instead (same
 * figures).  Setting it to UINT64_MAX always reads pagemap (benchmarks).
 */
void probe_fast_set_max_pages(struct probe_fast *f, uint64_t pages);
/* What the handle has done so far (watch -vv, tests, benchmarks). */
struct probe_fast_stats {
	uint64_t samples;	/* probe_sample_fast calls */
	uint64_t pagemap_reads;	/* pread(2)s of /proc/PID/pagemap */
	uint64_t full_smaps;	/* samples taken from the full smaps */
};
void probe_fast_stats(const struct probe_fast *f, struct probe_fast_stats *out);


/* ---- ruby.c: what kind of Ruby the target is ------------------------ */

struct probe_ruby {
	char description[256];	/* ruby_description from target memory */
	char libruby[256];	/* module defining rb_eval_string */
	uint64_t eval_string;	/* rb_eval_string */
	uint64_t register_one;	/* rb_postponed_job_register_one, or 0 */
	uint64_t preregister;	/* rb_postponed_job_preregister, or 0 */
	uint64_t trigger;	/* rb_postponed_job_trigger, or 0 */
	const char *api;	/* "register_one" or "preregister+trigger" */
	bool wake_vtalrm;	/* SIGVTALRM caught: Ruby's unblock signal */
	bool wake_chld;		/* SIGCHLD caught and 3.3+ scheduler */
	/* Address of the process-global "current thread" pointer (Ruby up
	 * to 2.7: ruby_current_execution_context_ptr, or ruby_current_thread
	 * before 2.5), 0 where it is thread-local (3.0+). */
	uint64_t cur_global;
	bool cur_is_thread;	/* it holds the rb_thread_t itself (else an
				 * execution context, which the thread's
				 * struct points to) */
	uint64_t xfree;		/* ruby_xfree: a job that does nothing */
	/* Waking a main thread asleep on a condition variable (wake.c):
	 * rb_threadptr_interrupt (a local symbol: .symtab only, 0 when
	 * stripped) and rb_thread_main (public API). */
	uint64_t threadptr_interrupt;
	uint64_t thread_main;
	uint64_t main_th;	/* the main thread's rb_thread_t, once asked */
};

/*
 * Detect Ruby by symbols and facts, never by a version table.  Returns 0,
 * or -LP_ENOTRUBY with a message naming what is missing.
 */
int probe_ruby_detect(struct inj_target *t, struct probe_ruby *out,
		      struct lp_err *err);

/* ---- wake.c: where the stopped main thread waits; waking it in place - */

enum probe_wait_kind {
	PROBE_WAIT_NONE,
	PROBE_WAIT_BUSY,	/* not in a syscall: running native code */
	PROBE_WAIT_SYSCALL,	/* blocked in a syscall other than futex */
	PROBE_WAIT_COND_TIMED,	/* pthread_cond_timedwait (futex, timeout) */
	PROBE_WAIT_COND,	/* pthread_cond_wait (futex, no timeout) */
	PROBE_WAIT_LOCK,	/* a lock: mutex, rwlock, semaphore */
	PROBE_WAIT_FUTEX,	/* another futex wait */
};

struct probe_wait {
	enum probe_wait_kind kind;
	long nr;		/* syscall number, -1 when running */
	int64_t rax;		/* its restart code while interrupted */
	uint64_t uaddr;		/* first argument (the futex word) */
	uint64_t callsite;	/* frame that called the libc wait */
	uint64_t caller;	/* Ruby's native_sleep frame, when named */
	bool from_ruby;		/* callsite is in the Ruby module */
	bool ruby_sleep;	/* called from native_sleep/native_cond_sleep */
	int nframes;
	int max_frames;		/* in: frames to unwind (0: 24) */
	char what[512];		/* "sleeps on a condition variable (...)" */
};

/* Load the symbol tables probe__wait_inspect() needs (before a stop). */
void probe__wait_prepare(struct inj_target *t, const struct probe_ruby *r);
/* Classify the wait of the stopped (attached) main thread by its syscall,
 * restart code, arguments and native stack (w->max_frames frames; set it
 * before the call, 0 for the default). */
int probe__wait_inspect(struct inj_target *t, const struct probe_ruby *r,
			struct probe_wait *w);
/*
 * Wake it in place, while it is stopped inside a condition-variable wait
 * of Ruby's that no signal ends: a timed one completes as ETIMEDOUT, an
 * untimed one in native_sleep gets rb_threadptr_interrupt(main thread).
 * Returns 1 when woken (effective at detach), 0 when nothing applies.
 */
int probe__wake_in_stop(struct inj_target *t, struct probe_ruby *r,
			const struct probe_wait *w, struct lp_err *err);
/* An untimed condition-variable wait of Ruby's that neither a signal nor
 * an interrupt call can end on this Ruby (no rb_threadptr_interrupt). */
bool probe__wait_unwakeable(const struct probe_ruby *r,
			    const struct probe_wait *w);
/*
 * Whether the process-global current thread (Ruby up to 2.7) names the
 * main thread now; the main thread must be stopped (rb_thread_main() is
 * called in it).  1 yes, 0 no, < 0 unknown.
 */
int probe__main_is_current(struct inj_target *t, struct probe_ruby *r);
/* The syscall the main thread of pid is in, from /proc without stopping
 * it: its number, -1 when running, -2 when unknown. */
long probe__main_syscall(pid_t pid);
/* Whether a thread of pid other than the main one is running (R) or in
 * uninterruptible sleep (D): one that may hold the GVL. */
bool probe__other_thread_runs(pid_t pid);
/* The "cannot wake" error (LP_EINJECT), naming why and what to do. */
int probe__wake_refuse(const struct probe_ruby *r, const struct probe_wait *w,
		       pid_t pid, struct lp_err *err);

/* ---- wrapper.c: text that runs inside the target -------------------- */

/*
 * Ruby source of the safe-point job: start one helper thread that loads
 * `path` in a fresh, wrapped top-level scope.  The path is escaped as a
 * Ruby double-quoted literal.  Returns the length written (excluding the
 * NUL) or -LP_EINVAL when it does not fit.
 */
int probe__bootstrap(char *buf, size_t len, const char *path);
/* Escape s as a Ruby double-quoted string literal (with the quotes). */
int probe__ruby_quote(char *buf, size_t len, const char *s, size_t n);
/* The helper program (loaded by the bootstrap), NUL-terminated. */
extern const char probe__helper_rb[];
/*
 * The helper program for a session: without the batch commands (run,
 * trace, gcstat, dump, lanes) for an eval session, else without eval.
 * malloc'd, caller frees; *len (may be NULL) gets its length.
 */
char *probe__helper_for(bool eval, size_t *len);

/* ---- eval.c: the safe-point eval session ---------------------------- */

struct probe_session;

struct probe_snippet {
	const char *code;	/* may contain any bytes */
	size_t len;
};

/* One evaluation, asked for at the start of a session (eval). */
struct probe_eval_req {
	int idx;		/* the snippet */
	bool json;		/* JSON text of the value (else inspect) */
	uint64_t max_bytes;	/* at most this much of the text */
};

struct probe_opts {
	const struct probe_snippet *snippets;
	size_t nsnippets;
	double timeout;		/* seconds, per wait (job start, batch) */
	bool dump_channel;	/* a third FIFO for ObjectSpace.dump_all */
	/* an eval session: the helper (a smaller program, less to compile)
	 * evaluates this right after its hello, unasked, and ends; only
	 * probe_session_eval() can be used */
	const struct probe_eval_req *eval;
};

#define PROBE_RB_NTYPES 6

/* Result of one batch, or of the hello (calls == 0). */
struct probe_gc {
	int64_t live_slots, pages, allocated, freed, malloc_increase, count,
		major;
	int64_t rb_bytes;	/* ObjectSpace.count_objects_size TOTAL
				 * after a GC; -1: not measured */
	int64_t rb_types[PROBE_RB_NTYPES];	/* its STRING, ARRAY, HASH,
						 * OBJECT, DATA, STRUCT */
	/* the big String/Array/Hash buffer that grew most since the last
	 * walk: object id (0: none), bytes in use before and after, class
	 * name, allocation site ("" unless allocations are traced) */
	int64_t grew_id, grew_before, grew_after;
	char grew_class[64];
	char grew_site[160];
};

struct probe_result {
	uint64_t calls;
	double seconds;
	struct probe_gc gc;
	bool raised;
	char err_class[128];
	char err_message[1024];
	char err_backtrace[2048];	/* lines joined by '\n' */
};

struct probe_hello {
	char ruby[256];
	int nsnippets;
	int compile_errors;	/* snippets that failed to compile */
	int first_bad;		/* index of the first one, or -1 */
	int bad_idx[64];	/* indices of those that failed (first 64) */
	int nbad;
	struct probe_result err;	/* its error, when compile_errors */
	struct probe_gc gc;
};

/*
 * Open the target, take the per-target lock, prepare the private result
 * channel, register the safe-point job through the injector, wake the
 * main thread if needed and wait for the helper thread's hello.  The main
 * thread is stopped only for the registration (about 0.1 ms).
 *
 * On any failure everything is undone (registers, memory, mappings,
 * files, lock) and NULL is returned with err filled; a job that could not
 * be cancelled is made harmless.  When the job does not start in time,
 * *stack (malloc'd, caller frees) receives the main thread's native
 * stack, one frame per line.
 */
struct probe_session *probe_session_start(pid_t pid,
					  const struct probe_opts *opts,
					  struct probe_hello *hello,
					  char **stack, struct lp_err *err);
/*
 * Run one batch in the helper thread: `n` calls of the snippets listed
 * in idx (count nidx; 0 = a no-op control batch), then a full GC.start
 * when gc.  Blocks until the helper reports (bounded by the timeout).
 * lane > 0 runs the batch in a thread of its own, kept for later batches
 * of the same lane: glibc gives each thread its own malloc arena, so
 * free space left by one lane's garbage is not consumed by another
 * lane's leak (which would move the growth to the wrong side of an A/B).
 */
int probe_session_run(struct probe_session *s, const int *idx, int nidx,
		      uint64_t n, bool gc, int lane, struct probe_result *out,
		      struct lp_err *err);
/* Receives heap-dump bytes as they stream in; returns 0 or < 0 to stop
 * (the dump is then abandoned and the helper's dump_all fails). */
typedef int (*probe_sink_fn)(const char *buf, size_t len, void *arg);

/* What probe_session_eval() learned about the value. */
struct probe_eval {
	char cls[128];		/* the value's class name, "?" when unknown */
	bool json;		/* the bytes are the value as JSON text */
	uint64_t bytes;		/* size of the whole text in the target */
	uint64_t sent;		/* bytes passed to the sink */
	bool cut;		/* bytes > max_bytes: the text was cut */
	double seconds;		/* time the snippet took in the target */
	struct probe_result err;	/* raised (-LP_ESNIPPET) */
};

/*
 * The result of the evaluation asked for at the start (probe_opts.eval):
 * the snippet ran once in the helper thread (no GC.start, no warm-up);
 * stream the text of its value into sink as it arrives: its inspect, or
 * with json its JSON text when it converts (JSON.generate when the target
 * has JSON loaded, else plain data only) and else its inspect as a JSON
 * string.  At most max_bytes of the text are sent (a cut JSON text is
 * sent as a JSON string of the part).  Once per session.  Returns 0,
 * -LP_ESNIPPET when the snippet (or its inspect) raised (out->err), or
 * another negative LP_E* with err filled (-LP_EIO: the sink failed).
 */
int probe_session_eval(struct probe_session *s, probe_sink_fn sink,
		       void *arg, struct probe_eval *out,
		       struct lp_err *err);

/*
 * Start or stop ObjectSpace allocation tracing in the target (loads
 * objspace).  Tracing started here stops when the helper ends, however it
 * ends, unless persist.  *gc_count (may be NULL) receives GC.count then.
 */
int probe_session_trace(struct probe_session *s, bool on, bool persist,
			int64_t *gc_count, struct lp_err *err);
/*
 * Full GC.start, then ObjectSpace.dump_all streamed through the dump
 * channel into sink: nothing is written on the target's disk.  *secs
 * gets the time dump_all took in the target (the world is stopped for
 * it: about 3 s per GB).  Needs probe_opts.dump_channel.  A dump that
 * raised in the target gives -LP_ESNIPPET with the error in *res.
 */
int probe_session_dump(struct probe_session *s, probe_sink_fn sink,
		       void *arg, double *secs, struct probe_result *res,
		       struct lp_err *err);

/*
 * Turn the helper into a light GC.stat reporter: one line every `interval`
 * seconds until the session ends or leakprobe dies (the helper then sees
 * EPIPE and ends).  No batches can be run afterwards.
 */
int probe_session_gcstat_start(struct probe_session *s, double interval,
			       struct lp_err *err);
/*
 * Without blocking: the latest GC.stat received.  Returns 1 when *out was
 * updated, 0 when nothing new arrived, < 0 when the helper is gone.
 */
int probe_session_gcstat_poll(struct probe_session *s, struct probe_gc *out,
			      struct lp_err *err);

/* Tell the helper to finish, close the channel, release everything. */
void probe_session_end(struct probe_session *s);
pid_t probe_session_pid(const struct probe_session *s);
const struct probe_ruby *probe_session_ruby(const struct probe_session *s);
const struct inj_procinfo *probe_session_info(const struct probe_session *s);
/*
 * Main-thread stops of the start, ns, summed over its stops (each step
 * is a stop of its own; the thread runs between them): from
 * PTRACE_SEIZE to detach (stop), and from the observed stop to detach
 * (held); and the stop(s) that unmap the code page.
 */
uint64_t probe_session_stop_ns(const struct probe_session *s);
uint64_t probe_session_held_ns(const struct probe_session *s);
/* Time the main thread ran with a step's registers (it restores itself
 * whatever happens to leakprobe). */
uint64_t probe_session_dirty_ns(const struct probe_session *s);
uint64_t probe_session_unmap_stop_ns(const struct probe_session *s);
/* From the start's first stop until the main thread was seen back in its
 * own code (polled without a stop; 0 when it could not be seen), and the
 * number of stops of the start. */
uint64_t probe_session_back_ns(const struct probe_session *s);
unsigned probe_session_stops(const struct probe_session *s);
/* Time from registration to the helper's hello, ns. */
uint64_t probe_session_start_ns(const struct probe_session *s);

/* ---- measure.c: batches, samples, per-arm series -------------------- */

/* One thing to measure: a combination of snippets run per call. */
struct probe_arm {
	const int *idx;		/* snippet indices (into probe_opts) */
	int nidx;
};

struct probe_measure_opts {
	uint64_t times;		/* measured calls per arm */
	uint64_t batch;		/* calls per batch */
	uint64_t warmup;	/* warm-up batches per arm */
	bool gc;		/* full GC.start after each batch */
	bool control;		/* a no-op control batch after each batch */
	uint64_t max_growth;	/* stop when memory grew this much (bytes) */
	bool lanes;		/* each arm in a thread (arena) of its own */
	bool lane_controls;	/* with lanes: controls in the lane of the
				 * arm they follow, not the helper's */
	/* called once after the warm-up, before the first measured batch
	 * (e.g. to take a heap dump); < 0 stops the run with that code */
	int (*before_measure)(struct probe_session *s, void *arg,
			      struct lp_err *err);
	void *before_arg;
	/* called around each control batch (before = true, then false),
	 * e.g. to pause malloc tracing during it */
	void (*around_control)(void *arg, bool before);
	void *control_arg;
};

/* Every batch of a run, in execution order. */
struct probe_run {
	struct ana_batch *b;
	int *arm;		/* per batch: arm index, -1 for control/base */
	size_t n, cap;
	uint64_t *done;		/* per arm: measured calls done */
	int narms;
	bool raised;		/* a snippet raised: see err/raised_arm */
	int raised_arm;
	struct probe_result err;
	bool stopped_early;	/* --max-growth reached */
	uint64_t growth;	/* memory growth at the stop, bytes */
};

/* Called after each batch with its index in run->b. */
typedef void (*probe_batch_fn)(const struct probe_run *run, size_t i,
			       void *arg);

/*
 * Measure arms in one target: a baseline sample, `warmup` batches of each
 * arm, then rounds of one batch per arm (A [C] B [C] A [C] ...), so slow
 * drift of the target hits every arm alike.  After each batch the memory
 * of the target is sampled from outside ([heap], malloc arenas, other
 * anonymous; RSS) and GC.stat from inside.  Stops early when a snippet
 * raises (run->raised) or growth exceeds max_growth.  Returns 0, or a
 * negative LP_E* (interrupted, timeout, target gone) with err filled.
 */
int probe_measure(struct probe_session *s, const struct probe_arm *arms,
		  int narms, const struct probe_measure_opts *o,
		  const struct probe_hello *hello, struct probe_run *run,
		  probe_batch_fn cb, void *arg, struct lp_err *err);
/*
 * The batches of one arm, ready for ana_verdict_compute(): every batch
 * of another arm stays in as a baseline (marked warm-up) so that each
 * delta is taken from the batch that really preceded it.  Caller frees.
 */
struct ana_batch *probe_run_arm(const struct probe_run *run, int arm,
				size_t *n);
void probe_run_release(struct probe_run *run);

/* ---- malloc.c: native malloc sites (eBPF uprobes) -------------------- */

/*
 * Which native code path holds the bytes that grew.  Uprobes on the
 * allocator that serves the target (libc, or jemalloc/tcmalloc when
 * linked or preloaded) record every allocation made inside a window
 * with a raw copy of its stack; frees made in the window cancel them.
 * Only the allocations still outstanding are unwound (libunwind, from
 * the copy and the target's .eh_frame_hdr), interned and grouped by
 * their innermost frames.  The kernel removes the probes when our file
 * descriptors close, so a killed leakprobe leaves nothing attached.
 */
struct probe_malloc;
struct lpm_alloc_ev;

struct probe_malloc_opts {
	uint32_t stack_bytes;	/* stack copied per allocation; 0 = 4096,
				 * at most 16384 */
	uint32_t sample;	/* record 1 in N allocations; 0 or 1 = all */
	uint32_t group_frames;	/* group by innermost K frames; 0 = 8 */
	uint32_t max_outstanding;	/* pointers tracked; 0 = 2 Mi */
	uint64_t pending_bytes;	/* raw stacks held before unwinding;
				 * 0 = 8 MiB */
	uint32_t ring_bytes;	/* ring buffer; 0 = 32 MiB */
	bool count_only;	/* attach every probe, only count calls (the
				 * floor any uprobe tracer pays) */
};

/* One group of stacks with the same innermost frames. */
struct probe_malloc_site {
	uint64_t bytes, count;		/* outstanding, scaled by --sample */
	uint64_t raw_bytes, raw_count;	/* as recorded */
	double share;		/* bytes / window growth; < 0: no growth */
	uint32_t threads;	/* distinct threads that allocated them;
				 * 17: more than 16 */
	uint32_t stacks;	/* distinct full stacks in the group */
	const char *func;	/* "malloc", "realloc", ... */
	size_t nframes;		/* frames[0] = the allocator function */
	uint64_t *addrs;	/* return addresses (frames[0]: the
				 * allocator's address) */
	char **frames;		/* symbolized, "name+0x1f (libfoo.so)" */
	char **funcs;		/* the function alone ("name"), or
				 * "libfoo.so+0x1234" when unnamed */
	int *mods;		/* index into probe_malloc_report.mods of
				 * each frame, -1 when unmapped */
	bool truncated;		/* the unwind stopped early (copy too short
				 * or no unwind info) */
};

/* A module (mapped file) that frames of the report lie in. */
struct probe_malloc_module {
	char *path;		/* as mapped */
	uint64_t lo, hi, file_off;	/* span; file offset at lo */
	char build_id[41];	/* hex, "" when none */
};

struct probe_malloc_report {
	pid_t pid;
	double start_time;	/* window start, seconds since the epoch */
	bool count_only;
	double seconds;		/* window length */
	uint32_t sample, stack_bytes, group_frames;
	char allocator[256];	/* path of the module serving malloc */
	uint64_t calls_alloc;	/* allocating calls seen (all kinds) */
	uint64_t calls_free;
	uint64_t calls[8];	/* per function, in probe_malloc_func order */
	uint64_t recorded;	/* allocations recorded in the window */
	uint64_t freed;		/* of which freed in the window */
	uint64_t outstanding, outstanding_bytes;	/* scaled */
	uint64_t raw_outstanding, raw_outstanding_bytes;
	uint64_t unwound;	/* unwinds done (survivors only) */
	uint64_t unwind_short;	/* stacks that stopped early */
	uint64_t distinct_stacks;
	/* losses, never hidden */
	uint64_t alloc_drops, alloc_drop_bytes;	/* ring buffer full */
	uint64_t free_drops;	/* ring buffer full; repaired from the
				 * kernel's table (free_repaired) */
	uint64_t free_repaired;
	uint64_t live_full;	/* --max-outstanding reached */
	uint64_t inflight_full, nested, stack_short, stack_fail;
	uint64_t stack_overflow;	/* distinct-stack table full */
	/* smaps growth over the window ([heap] + arenas + other anon) */
	int64_t growth, heap_growth, arena_growth, anon_growth;
	double explained;	/* outstanding_bytes / growth; < 0: none */
	/* leakprobe's own cost */
	uint64_t rss_peak;	/* peak RSS of leakprobe, bytes */
	uint64_t bpf_bytes;	/* kernel memory of the BPF maps */
	uint64_t bound_bytes;	/* bound on leakprobe's memory (options) */
	uint64_t bpf_bound_bytes;	/* bound on the kernel's */
	size_t nsites, total_sites;	/* reported, and groups in all */
	struct probe_malloc_site *sites;
	struct probe_malloc_module *mods;	/* of the sites' frames */
	size_t nmods;
};

/* Load libbpf (dlopen, once).  0, or -LP_EBPF naming what is missing. */
int probe__bpf_load(struct lp_err *err);

/* Name of function i of probe_malloc_report.calls ("malloc", "free"...). */
const char *probe_malloc_func(int i);

/*
 * Check that BPF can be used (capabilities, uprobe support), open the
 * target, find the allocator that serves it, load the BPF object and
 * attach the probes (return probes first).  Nothing is recorded until
 * probe_malloc_window_begin().  Returns NULL with err filled: LP_EBPF
 * naming what is missing, LP_ENOPROC/LP_EPERM/... for the target,
 * LP_ENOSYM when no malloc is mapped.  Free with probe_malloc_stop().
 */
struct probe_malloc *probe_malloc_start(pid_t pid,
					const struct probe_malloc_opts *opts,
					struct lp_err *err);
/*
 * Start recording (samples smaps for the growth figure and starts the
 * collector thread).  Once per handle.
 */
int probe_malloc_window_begin(struct probe_malloc *m, struct lp_err *err);
/*
 * Stop recording new allocations while frees still count (e.g. around
 * control batches), and record again.  Valid inside the window.
 */
void probe_malloc_pause(struct probe_malloc *m);
void probe_malloc_resume(struct probe_malloc *m);
/*
 * End the window: stop recording, drain the ring buffer, unwind the
 * survivors, reconcile with the kernel's table, sample smaps.
 */
int probe_malloc_window_end(struct probe_malloc *m, struct lp_err *err);
/*
 * Group the outstanding allocations into at most `top` sites (by bytes,
 * largest first), symbolized.  *out is owned by the caller
 * (probe_malloc_report_free).  Call after probe_malloc_window_end().
 */
int probe_malloc_report(struct probe_malloc *m, size_t top,
			struct probe_malloc_report **out, struct lp_err *err);
void probe_malloc_report_free(struct probe_malloc_report *r);
/* Detach every probe (entry probes first) and free.  NULL is a no-op. */
void probe_malloc_stop(struct probe_malloc *m);

/*
 * The collector, without BPF (unit-tested): raw allocation records
 * wait in a bounded FIFO; a free cancels a waiting record without an
 * unwind; records pushed out of the FIFO, or still there at the end,
 * are unwound by `unwind`, interned and kept as outstanding.
 */
typedef int (*probe__unwind_fn)(void *arg, const struct lpm_alloc_ev *ev,
				uint64_t *frames, int max, bool *truncated);
struct probe__mcoll;
struct probe__mcoll_stats {
	uint64_t outstanding, bytes;	/* unwound or waiting */
	uint64_t unwound, unwind_short;
	uint64_t freed_waiting;		/* freed before any unwind */
	uint64_t freed_unwound;
	uint64_t replaced;		/* same pointer without a free */
	uint64_t distinct_stacks, stack_overflow;
};
struct probe__mcoll *probe__mcoll_new(uint64_t pending_bytes,
				      uint32_t stack_bytes,
				      uint32_t max_stacks,
				      probe__unwind_fn unwind, void *arg);
void probe__mcoll_free(struct probe__mcoll *c);
/* An allocation record (len bytes, stack_len <= stack_bytes). */
void probe__mcoll_alloc(struct probe__mcoll *c,
			const struct lpm_alloc_ev *ev);
/* A free of ptr (ignored when unknown). */
void probe__mcoll_forget(struct probe__mcoll *c, uint64_t ptr);
/* Unwind every waiting record. */
void probe__mcoll_flush(struct probe__mcoll *c);
/*
 * Reconciliation with a reference set of pointers: mark each pointer of
 * the set (false when the collector does not hold it), then sweep:
 * drop every unmarked allocation (returns how many) and clear the marks.
 */
bool probe__mcoll_mark(struct probe__mcoll *c, uint64_t ptr);
uint64_t probe__mcoll_sweep(struct probe__mcoll *c);
void probe__mcoll_stats(const struct probe__mcoll *c,
			struct probe__mcoll_stats *out);
/*
 * Group outstanding allocations by (function, innermost k frames):
 * sites sorted by bytes (then count), the first `top` into *out
 * (malloc'd; frames/addrs allocated, names NULL), scaled by `scale`.
 * *total gets the number of groups.  Call after probe__mcoll_flush().
 */
size_t probe__mcoll_sites(struct probe__mcoll *c, uint32_t k, size_t top,
			  uint32_t scale, struct probe_malloc_site **out,
			  size_t *total);
void probe__sites_free(struct probe_malloc_site *s, size_t n);
/*
 * The unwind rule of one address, from DWARF call frame information:
 * CFA = (rsp or rbp) + cfa_off; the return address at CFA + ra_off; the
 * caller's rbp at CFA + rbp_off when rbp_saved.
 */
enum probe__row_state {
	PROBE_ROW_OK,
	PROBE_ROW_OUTER,	/* return address undefined: outermost frame */
	PROBE_ROW_NOINFO,	/* no FDE covers the address */
	PROBE_ROW_HARD,		/* rules outside the fast subset (DWARF
				 * expressions, signal frames...) */
};
struct probe__cfa_row {
	int32_t cfa_off, ra_off, rbp_off;
	uint8_t cfa_reg;	/* DWARF register: 7 rsp, 6 rbp */
	uint8_t state;		/* enum probe__row_state */
	uint8_t rbp_saved;
};
/*
 * Run a CIE's initial instructions, then an FDE's, up to (and including)
 * the row that covers pc.  Returns 0 with *out filled (state OK, OUTER
 * or HARD), or -LP_EPARSE on malformed bytes.
 */
int probe__cfi_eval(const uint8_t *cie_ins, size_t cie_len,
		    const uint8_t *fde_ins, size_t fde_len,
		    uint64_t code_align, int64_t data_align, uint64_t ra_reg,
		    uint64_t pc_begin, uint64_t pc,
		    struct probe__cfa_row *out);
/*
 * Parse the header of an .eh_frame_hdr section read from memory at
 * address `at` (len bytes): the binary search table's address and
 * entry count.  0, or -LP_EPARSE when the encoding is not the sorted
 * datarel/sdata4 table.
 */
int probe__eh_frame_hdr(const uint8_t *buf, size_t len, uint64_t at,
			uint64_t *table, uint64_t *count);

/* ---- eval.c: the helper's messages (internal; unit tests, fuzzing) ----
 * The helper writes one JSON object a line on the result channel; its
 * last line is {"bye":"WHY"}, possibly after a partial line.
 */
/* Move the first complete line of buf[0..*len) into *line (grown to
 * *linecap, NUL-terminated) and drop it from buf: true, or false when no
 * whole line is buffered. */
bool probe__next_line(char *buf, size_t *len, char **line, size_t *linecap);
/* A line holding {"bye":"WHY"}: WHY into bye (cut to byelen), true. */
bool probe__take_bye(const char *line, char *bye, size_t byelen);
/* One message: *out (caller json_decref's) a JSON object, or
 * -LP_EINJECT. */
int probe__parse_msg(const char *line, json_t **out, struct lp_err *err);
/* The hello message into hello (zeroed by the caller, first_bad -1):
 * 0, or -1 when msg is not a hello. */
int probe__parse_hello(json_t *msg, struct probe_hello *hello);
/* A batch's result message into out (zeroed by the caller). */
void probe__parse_run(json_t *msg, struct probe_result *out);
/* A line of the GC.stat reporter: true with out filled, else false. */
bool probe__parse_gcstat(const char *line, struct probe_gc *out);

#endif
