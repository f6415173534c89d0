#ifndef LP_PROBES_MALLOC_BPF_H
#define LP_PROBES_MALLOC_BPF_H

/*
 * What probes/malloc.bpf.c and probes/malloc.c share: the records sent
 * through the ring buffer, the counters and the function kinds.  Included
 * by the BPF program (clang -target bpf) and by user space, so it uses
 * only the fixed-width __u* types of <linux/types.h>.
 */

#include <linux/types.h>

/* Largest --stack-bytes: the BPF program copies at most this much. */
#define LPM_MAX_STACK		16384
/* Threads with a call in flight at the same time (inflight map). */
#define LPM_MAX_THREADS		65536

/* Which allocator function a record comes from. */
enum lpm_kind {
	LPM_MALLOC,
	LPM_CALLOC,
	LPM_REALLOC,
	LPM_MEMALIGN,		/* memalign, aligned_alloc (one address) */
	LPM_VALLOC,
	LPM_PVALLOC,
	LPM_POSIX_MEMALIGN,
	LPM_FREE,
	LPM_NKINDS
};

enum lpm_ev_type {
	LPM_EV_ALLOC = 1,
	LPM_EV_FREE = 2
};

/*
 * An allocation that returned inside the window, taken at the return
 * probe: the caller's registers after `ret` (ip is the return address in
 * the caller; sp, rbp, rbx, r12-r15 are the caller's, restored by the
 * callee as the ABI demands) and a copy of [sp, sp + stack_len).
 * stack[] has the room reserved for --stack-bytes; stack_len says how
 * much of it holds data (less when the read crossed the stack's top).
 */
struct lpm_alloc_ev {
	__u32 type;		/* LPM_EV_ALLOC */
	__u32 tid;
	__u64 ptr;
	__u64 size;		/* bytes requested */
	__u64 ip, sp, bp, bx, r12, r13, r14, r15;
	__u32 stack_len;
	__u32 kind;		/* enum lpm_kind */
	__u8 stack[];
};

/* A pointer we reported was freed (or moved by realloc). */
struct lpm_free_ev {
	__u32 type;		/* LPM_EV_FREE */
	__u32 tid;
	__u64 ptr;
};

/* Per-CPU counters (index into the `counters` map). */
enum lpm_counter {
	LPM_C_CALLS,		/* + kind: calls seen, LPM_NKINDS slots */
	LPM_C_ALLOCS = LPM_C_CALLS + LPM_NKINDS,	/* alloc records sent */
	LPM_C_FREES,		/* free records sent */
	LPM_C_ALLOC_DROPS,	/* ring buffer full: allocation not recorded */
	LPM_C_ALLOC_DROP_BYTES,
	LPM_C_FREE_DROPS,	/* ring buffer full: free record lost */
	LPM_C_LIVE_FULL,	/* table of outstanding pointers full */
	LPM_C_INFLIGHT_FULL,	/* too many threads in a call at once */
	LPM_C_NESTED,		/* allocator calls made by the allocator */
	LPM_C_SAMPLED_OUT,	/* skipped by --sample */
	LPM_C_STACK_SHORT,	/* stack copy shortened (top of stack) */
	LPM_C_STACK_FAIL,	/* no stack bytes could be read */
	LPM_NCOUNTERS
};

#endif
