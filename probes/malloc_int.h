#ifndef LP_PROBES_MALLOC_INT_H
#define LP_PROBES_MALLOC_INT_H

/*
 * Native malloc sites, private to probes/malloc*.c: the structures the
 * collector, the site grouping, the unwinder and the BPF side share.
 * Layout of the work:
 *
 *   malloc.c         BPF checks, load, attach; the window; the report
 *   malloc_coll.c    the collector: pointer table, interned stacks,
 *                    the FIFO of raw records
 *   malloc_sites.c   grouping outstanding allocations into sites
 *   malloc_unwind.c  target memory and modules, DWARF CFI rows, libunwind
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libunwind.h>

#include "common/err.h"
#include "probes/malloc_bpf.h"
#include "probes/probes.h"

#define MAX_FRAMES		64
#define MAX_STACKS		(1u << 18)	/* distinct stacks kept */
#define MAX_POOL		(1u << 22)	/* their frames, in all */
#define MAX_TIDS		16		/* threads told apart */
#define TMEM_PAGES		2048		/* 8 MiB of target code cache */
#define PAGE_4K			4096ull

/* Static names of the allocator functions (enum lpm_kind order). */
extern const char *const probe__func_names[LPM_NKINDS];

static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* ---- malloc_coll.c ---------------------------------------------------- */

struct ptr_ent {
	uint64_t ptr;		/* 0: empty slot */
	uint64_t size;		/* bytes (in the FIFO index: slot counter) */
	uint32_t stack;		/* interned stack id */
	uint32_t tid;
};

struct ptrtab {
	struct ptr_ent *e;
	size_t cap;		/* a power of two, or 0 */
	size_t n;
	uint64_t bytes;		/* sum of size */
};

struct stack_ent {
	uint64_t hash;
	uint64_t off;		/* first frame in the pool */
	uint16_t n;
	uint8_t kind;		/* enum lpm_kind; LPM_NKINDS for id 0 */
	uint8_t truncated;
};

/*
 * Distinct stacks, each stored once.  Id 0 collects what arrives after
 * `max` distinct stacks: its allocations still count in the totals.
 */
struct stacktab {
	struct stack_ent *s;
	size_t n, cap;
	uint64_t *pool;
	size_t pool_n, pool_cap;
	uint32_t *idx;		/* id + 1; 0: empty */
	size_t icap;
	uint32_t max;
	uint64_t overflow;
};

struct probe__mcoll {
	/* waiting raw records: a FIFO of fixed-size slots */
	uint8_t *slots;
	size_t slot_size, nslots;
	uint64_t head, tail;	/* slot counters; tail - head in use */
	struct ptrtab waiting;	/* ptr -> slot counter (in .size) */
	uint64_t waiting_bytes;
	struct ptrtab live;	/* unwound outstanding allocations */
	struct stacktab st;
	uint32_t stack_bytes;
	probe__unwind_fn unwind;
	void *arg;
	struct probe__mcoll_stats stats;
	uint64_t frames[MAX_FRAMES];
};

/* The top bit of tid marks an outstanding entry confirmed by the kernel. */
#define TID_MARK	0x80000000u

/* Hash of a stack of n frames of allocator function `kind`. */
uint64_t probe__stack_hash(uint8_t kind, const uint64_t *f, size_t n);

/* ---- malloc_unwind.c -------------------------------------------------- */

/*
 * Only the target's file mappings are read here (code, .eh_frame_hdr,
 * .eh_frame): they do not change, so pages are cached, direct-mapped.
 * Its stack is never read live: the record's copy is the stack.
 */
struct tpage {
	uint64_t tag;		/* page address + 1; 0: empty */
	uint8_t d[PAGE_4K];
};

struct tmem {
	int fd;			/* /proc/PID/mem */
	struct tpage *p;	/* TMEM_PAGES */
};

/* One line of /proc/PID/maps. */
struct mline {
	uint64_t start, end, off, ino;
	char perms[5];
	char *path;		/* NULL for anonymous and [special] */
};

/* /proc/PID/maps as lines (*out malloc'd: probe__mlines_free).  0 or
 * LP_E* (LP_ENOPROC when the process is gone). */
int probe__read_maps(pid_t pid, struct mline **out, size_t *nout,
		     struct lp_err *err);
void probe__mlines_free(struct mline *l, size_t n);

/* A mapped ELF file: its span, and its .eh_frame_hdr search table. */
struct umod {
	uint64_t lo, hi;
	uint64_t hdr, table, count;	/* count 0: no usable table */
};

struct umods {
	struct umod *m;
	size_t n, cap;
	size_t last;		/* the module found last */
	uint64_t loaded_ns;
};

#define ROWS		(1u << 16)	/* cached rows, direct-mapped */

struct row_slot {
	uint64_t pc;		/* 0: empty */
	struct probe__cfa_row row;
};

/* The unwinder of records: libunwind over the record's copy of the
 * stack and the target's code, with a cache of CFI rows in front. */
struct unwinder {
	unw_addr_space_t as;
	struct tmem mem;
	struct umods mods;
	pid_t pid;
	const struct lpm_alloc_ev *ev;	/* the record being unwound */
	struct row_slot *rows;		/* ROWS */
	uint64_t fast, slow;		/* unwinds by each path */
	bool check;			/* LEAKPROBE_UNWIND_CHECK: both paths */
	uint64_t checked, differ;
};

/* Set up for pid (opens /proc/PID/mem, reads its modules).  0 or LP_E*. */
int probe__uw_init(struct unwinder *u, pid_t pid, struct lp_err *err);
void probe__uw_release(struct unwinder *u);
/* probe__unwind_fn over a record: return addresses into frames, at most
 * max; *truncated when the unwind stopped early. */
int probe__uw_unwind(void *arg, const struct lpm_alloc_ev *ev,
		     uint64_t *frames, int max, bool *truncated);

#endif
