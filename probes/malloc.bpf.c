/*
 * BPF side of malloc tracing (probes/malloc.c loads and attaches it).
 *
 * Entry uprobes on malloc, calloc, realloc, memalign, valloc, pvalloc and
 * posix_memalign note the request per thread; one return uprobe shared
 * by all of them records the result: it adds the pointer to `live`
 * (pointer -> bytes) and sends a record with the caller's registers and
 * a raw copy of its stack through the ring buffer, to be unwound in user
 * space only if the allocation survives.  free() (and realloc moving or
 * freeing a block) removes a pointer from `live` and sends a small
 * record, but only for pointers that are in `live`: frees of memory
 * allocated before the window, or not sampled, end here in the kernel.
 *
 * Only the target's threads count (tgid check); the kernel removes the
 * probes when leakprobe's file descriptors close, even on SIGKILL.
 *
 * Built with clang -target bpf against the UAPI headers only: struct
 * pt_regs of a uprobe is the user register frame, whose layout is ABI,
 * so neither vmlinux.h nor kernel BTF is needed.
 */
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "probes/malloc_bpf.h"

/* bpf_probe_read_user() is only offered to GPL-compatible programs. */
char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load; constants to the verifier. */
const volatile __u32 target_tgid = 0;
const volatile __u32 stack_bytes = 4096;	/* <= LPM_MAX_STACK */
const volatile __u32 sample_n = 1;		/* record 1 in N allocations */
const volatile __u32 count_only = 0;		/* only count calls */
const volatile __u64 wake_bytes = 1 << 20;	/* see ring_flags() */

/* Switched by user space while running (window begin/pause/end). */
volatile __u32 track_allocs = 0;
volatile __u32 track_frees = 0;

/* A call in progress on one thread, from entry to return. */
struct inflight {
	__u64 sp;		/* sp at entry (points at the return address);
				 * 0 when no call is in flight */
	__u64 size;		/* bytes requested */
	__u64 arg;		/* realloc: old block; posix_memalign: memptr */
	__u64 t;		/* entry time, jiffies */
	__u32 kind;
	__u32 sampled;
};

/*
 * One record per thread, written in place: an update and a delete per
 * call would cost more than the record.  LRU, so that the records of
 * exited threads make room for new ones.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LPM_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* Outstanding pointers recorded in the window; size set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 21);
	__type(key, __u64);
	__type(value, __u64);
} live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LPM_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * A nested call (realloc(NULL, n) calling malloc) happens within
 * microseconds of the outer entry; an older record whose return we
 * never saw must not silence the thread's later calls.  Jiffies are
 * plenty for that and cost next to nothing.
 */
#define NESTED_WINDOW	25	/* jiffies: 25 to 250 ms */

static __always_inline void
count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += n;
}

static __always_inline int
is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline int
enter(struct pt_regs *ctx, __u32 kind, __u64 size, __u64 arg)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 sp = PT_REGS_SP(ctx), now;
	struct inflight *f, rec = {};

	count(LPM_C_CALLS + kind, 1);
	if (count_only)
		return 0;
	/* realloc while paused still frees its old block */
	if (!track_allocs && !(kind == LPM_REALLOC && track_frees))
		return 0;
	now = bpf_jiffies64();
	f = bpf_map_lookup_elem(&inflight, &tid);
	if (f && f->sp > sp && now - f->t < NESTED_WINDOW) {
		count(LPM_C_NESTED, 1);
		return 0;
	}
	if (!f) {
		if (bpf_map_update_elem(&inflight, &tid, &rec, BPF_ANY) ||
		    !(f = bpf_map_lookup_elem(&inflight, &tid))) {
			count(LPM_C_INFLIGHT_FULL, 1);
			return 0;
		}
	}
	/* only this thread touches its record */
	f->sp = sp;
	f->size = size;
	f->arg = arg;
	f->t = now;
	f->kind = kind;
	f->sampled = sample_n <= 1 || bpf_get_prandom_u32() % sample_n == 0;
	if (!f->sampled)
		count(LPM_C_SAMPLED_OUT, 1);
	return 0;
}

/*
 * Waking the collector for every record costs an irq_work and a context
 * switch per allocation, more than the record itself.  It polls every
 * few milliseconds anyway; wake it early only when the ring fills up.
 */
static __always_inline __u64
ring_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wake_bytes ?
	       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Drop ptr from `live` and tell user space, when it was ours. */
static __always_inline void
forget(__u64 ptr, __u32 tid)
{
	struct lpm_free_ev *e;

	if (!ptr || bpf_map_delete_elem(&live, &ptr))
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(LPM_C_FREE_DROPS, 1);
		return;
	}
	e->type = LPM_EV_FREE;
	e->tid = tid;
	e->ptr = ptr;
	bpf_ringbuf_submit(e, ring_flags());
	count(LPM_C_FREES, 1);
}

/* Copy up to stack_bytes of the stack at sp, halving when a read faults
 * (the copy ran past the top of the thread's stack). */
static __always_inline __u32
copy_stack(struct lpm_alloc_ev *e, __u64 sp)
{
	__u32 n = stack_bytes;

	if (n > LPM_MAX_STACK)
		n = LPM_MAX_STACK;
	if (!bpf_probe_read_user(e->stack, n, (void *)sp))
		return n;
	count(LPM_C_STACK_SHORT, 1);
	n >>= 1;
	if (!bpf_probe_read_user(e->stack, n, (void *)sp))
		return n;
	n >>= 1;
	if (!bpf_probe_read_user(e->stack, n, (void *)sp))
		return n;
	n >>= 1;
	if (!bpf_probe_read_user(e->stack, n, (void *)sp))
		return n;
	n >>= 1;
	if (!bpf_probe_read_user(e->stack, n, (void *)sp))
		return n;
	count(LPM_C_STACK_FAIL, 1);
	return 0;
}

static __always_inline void
record(struct pt_regs *ctx, __u64 ptr, __u64 size, __u32 kind, __u32 tid)
{
	struct lpm_alloc_ev *e;
	__u32 reserve = stack_bytes;

	if (reserve > LPM_MAX_STACK)
		reserve = LPM_MAX_STACK;
	e = bpf_ringbuf_reserve(&events, sizeof(*e) + reserve, 0);
	if (!e) {
		count(LPM_C_ALLOC_DROPS, 1);
		count(LPM_C_ALLOC_DROP_BYTES, size);
		return;
	}
	e->type = LPM_EV_ALLOC;
	e->tid = tid;
	e->ptr = ptr;
	e->size = size;
	e->kind = kind;
	e->ip = PT_REGS_IP(ctx);
	e->sp = PT_REGS_SP(ctx);
	e->bp = ctx->rbp;
	e->bx = ctx->rbx;
	e->r12 = ctx->r12;
	e->r13 = ctx->r13;
	e->r14 = ctx->r14;
	e->r15 = ctx->r15;
	e->stack_len = copy_stack(e, e->sp);
	if (bpf_map_update_elem(&live, &ptr, &size, BPF_ANY)) {
		/* not tracked: its free must not reach user space either */
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		count(LPM_C_LIVE_FULL, 1);
		return;
	}
	bpf_ringbuf_submit(e, ring_flags());
	count(LPM_C_ALLOCS, 1);
}

SEC("uprobe")
int
BPF_KPROBE(lpm_malloc, __u64 size)
{
	return is_target() ? enter(ctx, LPM_MALLOC, size, 0) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_calloc, __u64 n, __u64 size)
{
	return is_target() ? enter(ctx, LPM_CALLOC, n * size, 0) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_realloc, __u64 old, __u64 size)
{
	return is_target() ? enter(ctx, LPM_REALLOC, size, old) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_memalign, __u64 align, __u64 size)
{
	(void)align;
	return is_target() ? enter(ctx, LPM_MEMALIGN, size, 0) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_valloc, __u64 size)
{
	return is_target() ? enter(ctx, LPM_VALLOC, size, 0) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_pvalloc, __u64 size)
{
	return is_target() ? enter(ctx, LPM_PVALLOC, size, 0) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_posix_ma, __u64 memptr, __u64 align, __u64 size)
{
	(void)align;
	return is_target() ? enter(ctx, LPM_POSIX_MEMALIGN, size, memptr) : 0;
}

SEC("uprobe")
int
BPF_KPROBE(lpm_free, __u64 ptr)
{
	if (!is_target())
		return 0;
	count(LPM_C_CALLS + LPM_FREE, 1);
	if (count_only || !track_frees)
		return 0;
	forget(ptr, (__u32)bpf_get_current_pid_tgid());
	return 0;
}

/*
 * One return probe for every allocating function: the thread's
 * inflight record says which call this is.  After `ret`, sp is the
 * entry sp + 8; any other sp is the return of a nested call.
 */
SEC("uretprobe")
int
BPF_KRETPROBE(lpm_ret, __u64 ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *f, rec;
	__u64 ptr = ret;

	if (!is_target())
		return 0;
	if (count_only) {
		count(LPM_C_ALLOCS, 1);
		return 0;
	}
	f = bpf_map_lookup_elem(&inflight, &tid);
	if (!f || !f->sp || f->sp + 8 != PT_REGS_SP(ctx))
		return 0;
	rec = *f;
	f->sp = 0;

	if (rec.kind == LPM_REALLOC) {
		/* the old block is gone when realloc succeeded, or when it
		 * freed it (size 0); a failed realloc keeps it */
		if (track_frees && (ret || !rec.size))
			forget(rec.arg, tid);
	} else if (rec.kind == LPM_POSIX_MEMALIGN) {
		ptr = 0;
		if (ret == 0 &&
		    bpf_probe_read_user(&ptr, sizeof(ptr), (void *)rec.arg))
			ptr = 0;
	}
	if (ptr && rec.sampled && track_allocs)
		record(ctx, ptr, rec.size, rec.kind, tid);
	return 0;
}
