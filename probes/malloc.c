/*
 * Native malloc sites: which C code path still holds the bytes that grew.
 *
 * The BPF program (malloc.bpf.c) sends one record per allocation made in
 * the window, with the caller's registers and a raw copy of its stack,
 * and one per free of such an allocation.  Here:
 *
 *   ring buffer --> collector thread --> waiting FIFO (raw records)
 *                                           |  pushed out, or at the end
 *                                           v
 *                      unwind (cached CFI rows; libunwind) --> intern
 *                                           |
 *                                           v
 *                      outstanding table: ptr -> size, stack id, tid
 *
 * A free that finds its record still waiting cancels it: short-lived
 * allocations, most of them, are never unwound.  Memory is bounded by
 * the FIFO's size, the outstanding table (24 bytes a slot) and the table
 * of distinct stacks.  At the end, the kernel's own table of outstanding
 * pointers is the reference: a free whose record was lost (ring buffer
 * full) is repaired from it.
 *
 * Unwinding needs no ptrace: the registers and stack come from the
 * record, and code and .eh_frame_hdr/.eh_frame are read from
 * /proc/PID/mem (they are read-only mappings of the target's files).
 * The rule of each address is computed once from .eh_frame and cached;
 * libunwind (generic, custom accessors over the same record) takes the
 * frames outside that fast subset, and checks it when
 * LEAKPROBE_UNWIND_CHECK is set.  Frames are return addresses; they are
 * symbolized as address - 1.
 */
#include "probes/probes.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <libunwind.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/malloc_bpf.h"
#include "probes/malloc.skel.h"

#define MAX_FRAMES		64
#define DEF_STACK_BYTES		4096
#define DEF_GROUP_FRAMES	8
#define DEF_MAX_OUTSTANDING	(2u << 20)
#define DEF_PENDING_BYTES	(8ull << 20)
#define DEF_RING_BYTES		(32u << 20)
#define MAX_STACKS		(1u << 18)	/* distinct stacks kept */
#define MAX_POOL		(1u << 22)	/* their frames, in all */
#define MAX_TIDS		16		/* threads told apart */
#define TMEM_PAGES		2048		/* 8 MiB of target code cache */
#define PAGE_4K			4096ull
#define POLL_MS			5

static const char *const func_names[LPM_NKINDS] = {
	[LPM_MALLOC] = "malloc",
	[LPM_CALLOC] = "calloc",
	[LPM_REALLOC] = "realloc",
	[LPM_MEMALIGN] = "memalign",
	[LPM_VALLOC] = "valloc",
	[LPM_PVALLOC] = "pvalloc",
	[LPM_POSIX_MEMALIGN] = "posix_memalign",
	[LPM_FREE] = "free",
};

/* Static name of allocator function i (enum lpm_kind order). */
const char *
probe_malloc_func(int i)
{
	return i >= 0 && i < LPM_NKINDS ? func_names[i] : "?";
}

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

/* ---- pointer table: open addressing, linear probing ------------------- */

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

static void
ptrtab_release(struct ptrtab *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

static struct ptr_ent *
ptrtab_find(const struct ptrtab *t, uint64_t ptr)
{
	size_t mask, i;

	if (!t->cap || !ptr)
		return NULL;
	mask = t->cap - 1;
	for (i = mix64(ptr) & mask; t->e[i].ptr; i = (i + 1) & mask)
		if (t->e[i].ptr == ptr)
			return &t->e[i];
	return NULL;
}

static void ptrtab_put(struct ptrtab *t, const struct ptr_ent *v);

static void
ptrtab_grow(struct ptrtab *t)
{
	struct ptrtab nt = { 0 };

	nt.cap = t->cap ? t->cap * 2 : 1024;
	nt.e = xcalloc(nt.cap, sizeof(*nt.e));
	for (size_t i = 0; i < t->cap; i++)
		if (t->e[i].ptr)
			ptrtab_put(&nt, &t->e[i]);
	free(t->e);
	*t = nt;
}

/* Insert v, replacing an entry with the same pointer. */
static void
ptrtab_put(struct ptrtab *t, const struct ptr_ent *v)
{
	size_t mask, i;

	if ((t->n + 1) * 10 > t->cap * 7)
		ptrtab_grow(t);
	mask = t->cap - 1;
	for (i = mix64(v->ptr) & mask; t->e[i].ptr; i = (i + 1) & mask) {
		if (t->e[i].ptr == v->ptr) {
			t->bytes -= t->e[i].size;
			t->e[i] = *v;
			t->bytes += v->size;
			return;
		}
	}
	t->e[i] = *v;
	t->n++;
	t->bytes += v->size;
}

/*
 * Remove ptr.  Backward-shift deletion: every later entry of the cluster
 * whose home slot is not between the hole and itself moves into the
 * hole, so no probe sequence is broken and no tombstones pile up.
 */
static bool
ptrtab_del(struct ptrtab *t, uint64_t ptr)
{
	struct ptr_ent *hit = ptrtab_find(t, ptr);
	size_t mask, i, j;

	if (!hit)
		return false;
	mask = t->cap - 1;
	t->bytes -= hit->size;
	t->n--;
	i = (size_t)(hit - t->e);
	for (j = (i + 1) & mask; t->e[j].ptr; j = (j + 1) & mask) {
		size_t home = mix64(t->e[j].ptr) & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	t->e[i].ptr = 0;
	return true;
}

/* ---- interned stacks --------------------------------------------------- */

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

static void
stacktab_init(struct stacktab *st, uint32_t max)
{
	memset(st, 0, sizeof(*st));
	st->max = max;
	st->s = xgrow(st->s, &st->cap, 1, sizeof(*st->s));
	memset(&st->s[0], 0, sizeof(st->s[0]));
	st->s[0].kind = LPM_NKINDS;
	st->n = 1;
	st->icap = 1024;
	st->idx = xcalloc(st->icap, sizeof(*st->idx));
}

static void
stacktab_release(struct stacktab *st)
{
	free(st->s);
	free(st->pool);
	free(st->idx);
	memset(st, 0, sizeof(*st));
}

static uint64_t
stack_hash(uint8_t kind, const uint64_t *f, size_t n)
{
	uint64_t h = mix64(kind + 0x9e3779b97f4a7c15ULL * (n + 1));

	for (size_t i = 0; i < n; i++)
		h = mix64(h ^ f[i]) + i;
	return h;
}

static bool
stack_equal(const struct stacktab *st, const struct stack_ent *e, uint8_t kind,
	    const uint64_t *f, size_t n)
{
	return e->kind == kind && e->n == n &&
	       !memcmp(st->pool + e->off, f, n * sizeof(*f));
}

static void
stacktab_rehash(struct stacktab *st)
{
	size_t cap = st->icap * 2, mask = cap - 1;
	uint32_t *idx = xcalloc(cap, sizeof(*idx));

	for (uint32_t id = 1; id < st->n; id++) {
		size_t i = st->s[id].hash & mask;

		while (idx[i])
			i = (i + 1) & mask;
		idx[i] = id + 1;
	}
	free(st->idx);
	st->idx = idx;
	st->icap = cap;
}

static uint32_t
stacktab_intern(struct stacktab *st, uint8_t kind, const uint64_t *f,
		size_t n, bool truncated)
{
	uint64_t h = stack_hash(kind, f, n);
	size_t mask = st->icap - 1, i;
	struct stack_ent *e;

	for (i = h & mask; st->idx[i]; i = (i + 1) & mask) {
		e = &st->s[st->idx[i] - 1];
		if (e->hash == h && stack_equal(st, e, kind, f, n)) {
			e->truncated |= truncated;
			return st->idx[i] - 1;
		}
	}
	if (st->n > st->max || st->pool_n + n > MAX_POOL) {
		st->overflow++;
		return 0;
	}
	st->s = xgrow(st->s, &st->cap, st->n + 1, sizeof(*st->s));
	st->pool = xgrow(st->pool, &st->pool_cap, st->pool_n + n + 1,
			 sizeof(*st->pool));
	e = &st->s[st->n];
	e->hash = h;
	e->off = st->pool_n;
	e->n = (uint16_t)n;
	e->kind = kind;
	e->truncated = truncated;
	memcpy(st->pool + st->pool_n, f, n * sizeof(*f));
	st->pool_n += n;
	st->idx[i] = (uint32_t)st->n + 1;
	st->n++;
	if (st->n * 2 > st->icap)
		stacktab_rehash(st);
	return (uint32_t)st->n - 1;
}

/* ---- the collector ----------------------------------------------------- */

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

static struct lpm_alloc_ev *
slot_at(const struct probe__mcoll *c, uint64_t counter)
{
	return (struct lpm_alloc_ev *)(c->slots +
				       (counter % c->nslots) * c->slot_size);
}

/*
 * A collector whose FIFO holds about pending_bytes of records with up to
 * stack_bytes of stack each (at least 16 records).  unwind() is called
 * for survivors only.  Free with probe__mcoll_free().
 */
struct probe__mcoll *
probe__mcoll_new(uint64_t pending_bytes, uint32_t stack_bytes,
		 uint32_t max_stacks, probe__unwind_fn unwind, void *arg)
{
	struct probe__mcoll *c = xcalloc(1, sizeof(*c));

	c->stack_bytes = stack_bytes;
	c->slot_size = (sizeof(struct lpm_alloc_ev) + stack_bytes + 7) & ~7ul;
	c->nslots = pending_bytes / c->slot_size;
	if (c->nslots < 16)
		c->nslots = 16;
	/* calloc: pages are touched only as the FIFO fills */
	c->slots = xcalloc(c->nslots, c->slot_size);
	c->unwind = unwind;
	c->arg = arg;
	stacktab_init(&c->st, max_stacks);
	return c;
}

/* Free a collector and all it holds.  NULL is a no-op. */
void
probe__mcoll_free(struct probe__mcoll *c)
{
	if (!c)
		return;
	free(c->slots);
	ptrtab_release(&c->waiting);
	ptrtab_release(&c->live);
	stacktab_release(&c->st);
	free(c);
}

/* Unwind the oldest waiting record if it is still alive; free its slot. */
static void
retire_oldest(struct probe__mcoll *c)
{
	struct lpm_alloc_ev *ev = slot_at(c, c->head);
	struct ptr_ent v;
	bool truncated = false;
	int n;

	c->head++;
	if (ev->type != LPM_EV_ALLOC)
		return;
	ev->type = 0;
	ptrtab_del(&c->waiting, ev->ptr);
	c->waiting_bytes -= ev->size;
	n = c->unwind(c->arg, ev, c->frames, MAX_FRAMES, &truncated);
	if (n <= 0) {
		c->frames[0] = ev->ip;
		n = 1;
		truncated = true;
	}
	c->stats.unwound++;
	if (truncated)
		c->stats.unwind_short++;
	v.ptr = ev->ptr;
	v.size = ev->size;
	v.tid = ev->tid;
	v.stack = stacktab_intern(&c->st, (uint8_t)ev->kind, c->frames,
				  (size_t)n, truncated);
	ptrtab_put(&c->live, &v);
}

/* Drop a waiting record (freed, or replaced) without unwinding it. */
static void
cancel_waiting(struct probe__mcoll *c, struct ptr_ent *w)
{
	struct lpm_alloc_ev *ev = slot_at(c, w->size);

	ev->type = 0;
	c->waiting_bytes -= ev->size;
	ptrtab_del(&c->waiting, w->ptr);
}

/* Queue an allocation record (copied; the caller keeps ev). */
void
probe__mcoll_alloc(struct probe__mcoll *c, const struct lpm_alloc_ev *ev)
{
	struct ptr_ent *w = ptrtab_find(&c->waiting, ev->ptr), v;
	struct lpm_alloc_ev *s;
	uint32_t len = ev->stack_len < c->stack_bytes ? ev->stack_len :
		       c->stack_bytes;

	/*
	 * The same address again without a free: that free was not seen
	 * (its record was lost, or it went through a path we do not
	 * probe); the new block wins.  An unwound entry for the address is
	 * replaced when this record is unwound in turn (not looked up now:
	 * the table is large and a lookup is a cache miss per record).
	 */
	if (w) {
		cancel_waiting(c, w);
		c->stats.replaced++;
	}
	if (c->tail - c->head == c->nslots)
		retire_oldest(c);
	s = slot_at(c, c->tail);
	memcpy(s, ev, sizeof(*ev) + len);
	s->stack_len = len;
	memset(&v, 0, sizeof(v));
	v.ptr = ev->ptr;
	v.size = c->tail;
	ptrtab_put(&c->waiting, &v);
	c->waiting_bytes += ev->size;
	c->tail++;
}

/* A free: cancel a waiting record, or drop an unwound entry. */
void
probe__mcoll_forget(struct probe__mcoll *c, uint64_t ptr)
{
	struct ptr_ent *w = ptrtab_find(&c->waiting, ptr);

	if (w) {
		cancel_waiting(c, w);
		c->stats.freed_waiting++;
	} else if (ptrtab_del(&c->live, ptr)) {
		c->stats.freed_unwound++;
	}
}

/* Unwind every record still waiting (the end of a window). */
void
probe__mcoll_flush(struct probe__mcoll *c)
{
	while (c->head < c->tail)
		retire_oldest(c);
}

/* The top bit of tid marks an outstanding entry confirmed by the kernel. */
#define TID_MARK	0x80000000u

/* Mark ptr as confirmed; false when the collector does not hold it. */
bool
probe__mcoll_mark(struct probe__mcoll *c, uint64_t ptr)
{
	struct ptr_ent *e;

	probe__mcoll_flush(c);
	e = ptrtab_find(&c->live, ptr);
	if (!e)
		return false;
	e->tid |= TID_MARK;
	return true;
}

/* Drop unmarked entries, clear the marks; returns how many went. */
uint64_t
probe__mcoll_sweep(struct probe__mcoll *c)
{
	uint64_t n = 0;
	size_t i = 0;

	probe__mcoll_flush(c);
	/* deleting shifts later entries back into slot i: look again */
	while (i < c->live.cap) {
		struct ptr_ent *e = &c->live.e[i];

		if (e->ptr && !(e->tid & TID_MARK)) {
			ptrtab_del(&c->live, e->ptr);
			n++;
			if (c->live.e[i].ptr)
				continue;
		}
		i++;
	}
	for (i = 0; i < c->live.cap; i++)
		c->live.e[i].tid &= ~TID_MARK;
	return n;
}

/* Totals, waiting records included. */
void
probe__mcoll_stats(const struct probe__mcoll *c,
		   struct probe__mcoll_stats *out)
{
	*out = c->stats;
	out->outstanding = c->live.n + c->waiting.n;
	out->bytes = c->live.bytes + c->waiting_bytes;
	out->distinct_stacks = c->st.n - 1;
	out->stack_overflow = c->st.overflow;
}

/* ---- grouping into sites ----------------------------------------------- */

struct group {
	uint64_t hash;
	uint32_t rep;		/* a stack id of the group */
	uint32_t stacks, threads;
	uint64_t count, bytes;
	bool truncated;
	uint32_t tids[MAX_TIDS];	/* the first MAX_TIDS threads seen */
};

static int
group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static size_t
key_len(const struct stack_ent *e, uint32_t k)
{
	return e->n < k ? e->n : k;
}

/*
 * Sites, largest first: *out is malloc'd (probe__sites_free), names are
 * left NULL for the caller to fill.  Returns how many are in *out.
 */
size_t
probe__mcoll_sites(struct probe__mcoll *c, uint32_t k, size_t top,
		   uint32_t scale, struct probe_malloc_site **out,
		   size_t *total)
{
	struct stacktab *st = &c->st;
	uint64_t *cnt, *bytes;
	uint32_t *gof, *gidx;
	struct group *g = NULL;
	size_t ng = 0, gcap = 0, icap = 64, nout;
	struct probe_malloc_site *sites;

	if (!scale)
		scale = 1;
	if (!k)
		k = 1;
	probe__mcoll_flush(c);	/* first: it interns more stacks */
	cnt = xcalloc(st->n, sizeof(*cnt));
	bytes = xcalloc(st->n, sizeof(*bytes));
	gof = xcalloc(st->n, sizeof(*gof));	/* group + 1 */
	for (size_t i = 0; i < c->live.cap; i++) {
		const struct ptr_ent *e = &c->live.e[i];

		if (e->ptr) {
			cnt[e->stack]++;
			bytes[e->stack] += e->size;
		}
	}
	while (icap < st->n * 2)
		icap *= 2;
	gidx = xcalloc(icap, sizeof(*gidx));
	/* group stacks by (kind, innermost k frames) */
	for (uint32_t id = 0; id < st->n; id++) {
		const struct stack_ent *e = &st->s[id];
		size_t kl = key_len(e, k), i;
		uint64_t h;

		if (!cnt[id])
			continue;
		h = stack_hash(e->kind, st->pool + e->off, kl);
		for (i = h & (icap - 1); gidx[i]; i = (i + 1) & (icap - 1)) {
			struct group *gr = &g[gidx[i] - 1];
			const struct stack_ent *r = &st->s[gr->rep];

			if (gr->hash == h && r->kind == e->kind &&
			    key_len(r, k) == kl &&
			    !memcmp(st->pool + r->off, st->pool + e->off,
				    kl * sizeof(uint64_t)))
				break;
		}
		if (!gidx[i]) {
			g = xgrow(g, &gcap, ng + 1, sizeof(*g));
			memset(&g[ng], 0, sizeof(g[ng]));
			g[ng].hash = h;
			g[ng].rep = id;
			gidx[i] = (uint32_t)++ng;
		}
		gof[id] = gidx[i];
		g[gidx[i] - 1].stacks++;
		g[gidx[i] - 1].count += cnt[id];
		g[gidx[i] - 1].bytes += bytes[id];
		g[gidx[i] - 1].truncated |= e->truncated && e->n < k;
	}
	/* distinct threads per group; past MAX_TIDS, "more" (MAX_TIDS + 1) */
	for (size_t i = 0; i < c->live.cap; i++) {
		const struct ptr_ent *e = &c->live.e[i];
		struct group *gr;
		uint32_t t, k;

		if (!e->ptr)
			continue;
		gr = &g[gof[e->stack] - 1];
		t = e->tid & ~TID_MARK;
		for (k = 0; k < gr->threads && k < MAX_TIDS; k++)
			if (gr->tids[k] == t)
				break;
		if (k < gr->threads && k < MAX_TIDS)
			continue;
		if (gr->threads < MAX_TIDS)
			gr->tids[gr->threads++] = t;
		else
			gr->threads = MAX_TIDS + 1;
	}
	if (ng)
		qsort(g, ng, sizeof(*g), group_cmp);
	nout = ng < top ? ng : top;
	sites = xcalloc(nout ? nout : 1, sizeof(*sites));
	for (size_t i = 0; i < nout; i++) {
		const struct stack_ent *r = &st->s[g[i].rep];
		size_t kl = key_len(r, k);
		struct probe_malloc_site *s = &sites[i];

		s->raw_count = g[i].count;
		s->raw_bytes = g[i].bytes;
		s->count = g[i].count * scale;
		s->bytes = g[i].bytes * scale;
		s->share = -1;
		s->threads = g[i].threads;
		s->stacks = g[i].stacks;
		s->truncated = g[i].truncated;
		s->func = r->kind < LPM_NKINDS ? func_names[r->kind] :
			  "(too many distinct stacks)";
		s->nframes = kl + 1;
		s->addrs = xcalloc(kl + 1, sizeof(*s->addrs));
		s->frames = xcalloc(kl + 1, sizeof(*s->frames));
		memcpy(s->addrs + 1, st->pool + r->off, kl * sizeof(uint64_t));
	}
	*out = sites;
	*total = ng;
	free(gidx);
	free(g);
	free(gof);
	free(bytes);
	free(cnt);
	return nout;
}

/* Free n sites with their frames.  NULL is a no-op. */
void
probe__sites_free(struct probe_malloc_site *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; s[i].frames && j < s[i].nframes; j++)
			free(s[i].frames[j]);
		free(s[i].frames);
		free(s[i].addrs);
	}
	free(s);
}

/* ---- .eh_frame_hdr ----------------------------------------------------- */

/* Size of a DWARF pointer encoding's value (DW_EH_PE_*), or -1. */
static int
enc_size(uint8_t enc)
{
	switch (enc & 0x0f) {
	case 0x00:		/* absptr */
	case 0x04:		/* udata8 */
	case 0x0c:		/* sdata8 */
		return 8;
	case 0x02:
	case 0x0a:
		return 2;
	case 0x03:
	case 0x0b:
		return 4;
	default:
		return -1;
	}
}

static uint64_t
rd_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* See probes.h: the search table of an .eh_frame_hdr. */
int
probe__eh_frame_hdr(const uint8_t *b, size_t len, uint64_t at,
		    uint64_t *table, uint64_t *count)
{
	int ptr_sz, cnt_sz;
	uint64_t n;

	if (len < 4 || b[0] != 1)
		return -LP_EPARSE;
	/* the table must be sorted pairs of datarel sdata4 */
	if (b[3] != 0x3b || b[1] == 0xff || b[2] == 0xff)
		return -LP_EPARSE;
	ptr_sz = enc_size(b[1]);
	cnt_sz = enc_size(b[2]);
	if (ptr_sz < 0 || cnt_sz < 0 || (b[2] & 0x70) != 0 ||
	    4 + (size_t)ptr_sz + (size_t)cnt_sz > len)
		return -LP_EPARSE;
	n = rd_le(b + 4 + ptr_sz, cnt_sz);
	if ((b[2] & 0x08) && cnt_sz < 8 && (n >> (cnt_sz * 8 - 1)))
		return -LP_EPARSE;	/* negative count */
	if (!n || n > (1u << 26))
		return -LP_EPARSE;
	*table = at + 4 + (uint64_t)ptr_sz + (uint64_t)cnt_sz;
	*count = n;
	return 0;
}

/* ---- target memory: /proc/PID/mem through a small page cache ---------- */

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

static int
tmem_read(struct tmem *m, uint64_t addr, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		uint64_t page = addr & ~(PAGE_4K - 1), off = addr - page;
		size_t n = PAGE_4K - off < len ? PAGE_4K - off : len;
		struct tpage *tp = &m->p[mix64(page) % TMEM_PAGES];

		if (tp->tag != page + 1) {
			if (pread(m->fd, tp->d, PAGE_4K, (off_t)page) !=
			    (ssize_t)PAGE_4K) {
				tp->tag = 0;
				return -1;
			}
			tp->tag = page + 1;
		}
		memcpy(out, tp->d + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/* ---- /proc/PID/maps and the target's modules --------------------------- */

struct mline {
	uint64_t start, end, off, ino;
	char perms[5];
	char *path;		/* NULL for anonymous and [special] */
};

static void
mlines_free(struct mline *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].path);
	free(l);
}

static int
read_maps(pid_t pid, struct mline **out, size_t *nout, struct lp_err *err)
{
	char path[64], *buf = NULL, *p, *eol;
	struct lp_err e = { 0 };
	struct mline *l = NULL;
	size_t cap = 0, n = 0, bcap = 0;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	len = lp_read_file(path, &buf, &bcap, &e);
	if (len < 0) {
		free(buf);
		return lp_err_set(err, e.sys_errno == ENOENT ||
				  e.sys_errno == ESRCH ? LP_ENOPROC : e.code,
				  "%s", e.msg);
	}
	for (p = buf; p < buf + len; p = eol + 1) {
		unsigned long long s, en, off, ino;
		unsigned maj, min;
		char perms[5];
		int pos = 0;

		eol = memchr(p, '\n', (size_t)(buf + len - p));
		if (!eol)
			eol = buf + len;
		*eol = '\0';
		if (sscanf(p, "%llx-%llx %4s %llx %x:%x %llu %n", &s, &en,
			   perms, &off, &maj, &min, &ino, &pos) < 7)
			continue;
		l = xgrow(l, &cap, n + 1, sizeof(*l));
		l[n].start = s;
		l[n].end = en;
		l[n].off = off;
		l[n].ino = ino;
		memcpy(l[n].perms, perms, sizeof(perms));
		l[n].path = pos && p[pos] == '/' ? xstrdup(p + pos) : NULL;
		n++;
	}
	free(buf);
	*out = l;
	*nout = n;
	return 0;
}

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

/* Fill in the unwind table of a module from its headers in memory. */
static void
umod_probe(struct tmem *mem, struct umod *u)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	uint64_t bias = 0, eh_vaddr = 0;
	bool have_bias = false;
	uint8_t hb[32];

	if (tmem_read(mem, u->lo, &eh, sizeof(eh)) < 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum ||
	    eh.e_phnum > 64 ||
	    tmem_read(mem, u->lo + eh.e_phoff, ph,
		      eh.e_phnum * sizeof(Elf64_Phdr)) < 0)
		return;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0 &&
		    !have_bias) {
			bias = u->lo - (ph[i].p_vaddr & ~(PAGE_4K - 1));
			have_bias = true;
		} else if (ph[i].p_type == PT_GNU_EH_FRAME) {
			eh_vaddr = ph[i].p_vaddr;
		}
	}
	if (!have_bias || !eh_vaddr)
		return;
	u->hdr = bias + eh_vaddr;
	if (tmem_read(mem, u->hdr, hb, sizeof(hb)) < 0 ||
	    probe__eh_frame_hdr(hb, sizeof(hb), u->hdr, &u->table,
				&u->count) < 0)
		u->count = 0;
}

/*
 * Modules from /proc/PID/maps: a file mapped from offset 0 starts one,
 * later mappings of the same file extend it.
 */
static int
umods_load(struct umods *um, struct tmem *mem, pid_t pid, struct lp_err *err)
{
	struct mline *l = NULL;
	size_t n = 0;
	const struct mline *cur = NULL;
	int rc;

	rc = read_maps(pid, &l, &n, err);
	if (rc < 0)
		return rc;
	um->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!l[i].path)
			continue;
		if (cur && l[i].off && cur->ino == l[i].ino &&
		    !strcmp(cur->path, l[i].path)) {
			um->m[um->n - 1].hi = l[i].end;
			continue;
		}
		cur = NULL;
		if (l[i].off)
			continue;
		cur = &l[i];
		um->m = xgrow(um->m, &um->cap, um->n + 1, sizeof(*um->m));
		memset(&um->m[um->n], 0, sizeof(um->m[0]));
		um->m[um->n].lo = l[i].start;
		um->m[um->n].hi = l[i].end;
		um->n++;
	}
	for (size_t i = 0; i < um->n; i++)
		umod_probe(mem, &um->m[i]);
	um->loaded_ns = lp_mono_ns();
	mlines_free(l, n);
	return 0;
}

static const struct umod *
umods_find(struct umods *um, uint64_t ip)
{
	size_t lo = 0, hi = um->n;

	/* consecutive frames are mostly in the same module */
	if (um->last < um->n && ip >= um->m[um->last].lo &&
	    ip < um->m[um->last].hi)
		return &um->m[um->last];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (um->m[mid].hi <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < um->n && ip >= um->m[lo].lo && ip < um->m[lo].hi) {
		um->last = lo;
		return &um->m[lo];
	}
	return NULL;
}

/* ---- DWARF call frame information: the fast unwinder ------------------- */

/*
 * libunwind as packaged by Debian caches register states behind a lock
 * taken with sigprocmask(): two system calls per frame, about 15 us per
 * stack.  Survivors can arrive by the hundred thousand, so the common
 * case is done here: the rule for an address (CFA from rsp or rbp, the
 * return address and rbp saved at fixed offsets) is computed once from
 * the target's .eh_frame and cached.  Anything outside that subset
 * (DWARF expressions, signal frames) goes to libunwind.
 */

#define DW_RSP		7
#define DW_RBP		6
#define CFI_STACK	8	/* remember_state depth */

struct cfi_state {
	uint64_t cfa_reg;
	int64_t cfa_off;
	int64_t ra_off, rbp_off;
	uint8_t ra_rule, rbp_rule;	/* 0 same/unsaved, 1 at CFA+off,
					 * 2 undefined */
};

struct cfi_rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
rd_uleb(struct cfi_rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (r->p < r->end) {
		uint8_t b = *r->p++;

		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static int64_t
rd_sleb(struct cfi_rd *r)
{
	int64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;

	while (r->p < r->end) {
		b = *r->p++;
		if (shift < 64)
			v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
		shift += 7;
		if (!(b & 0x80)) {
			if (shift < 64 && (b & 0x40))
				v |= -(int64_t)((uint64_t)1 << shift);
			return v;
		}
	}
	r->bad = true;
	return 0;
}

static uint64_t
rd_fixed(struct cfi_rd *r, int n)
{
	uint64_t v;

	if (r->end - r->p < n) {
		r->bad = true;
		r->p = r->end;
		return 0;
	}
	v = rd_le(r->p, n);
	r->p += n;
	return v;
}

static void
rd_skip(struct cfi_rd *r, uint64_t n)
{
	if ((uint64_t)(r->end - r->p) < n) {
		r->bad = true;
		r->p = r->end;
	} else {
		r->p += n;
	}
}

/* Apply a register rule; false for rules the fast path does not take. */
static bool
set_rule(struct cfi_state *s, uint64_t reg, uint8_t rule, int64_t off)
{
	if (reg == 16) {
		s->ra_rule = rule;
		s->ra_off = off;
	} else if (reg == DW_RBP) {
		s->rbp_rule = rule;
		s->rbp_off = off;
	} else if (reg == DW_RSP && rule == 1) {
		return false;	/* rsp saved in memory: not a plain CFA */
	}
	return true;
}

/*
 * Interpret instructions until the location passes pc (fde true) or to
 * the end (the CIE's initial instructions).  Returns 1 when pc's row is
 * reached, 0 at the end of the bytes, -1 for what the fast path does not
 * handle, -2 on malformed bytes.
 */
static int
cfi_run(struct cfi_rd *r, struct cfi_state *s, const struct cfi_state *init,
	struct cfi_state *stack, int *depth, uint64_t code_align,
	int64_t data_align, uint64_t *loc, uint64_t pc, bool fde)
{
	while (r->p < r->end && !r->bad) {
		uint8_t op = *r->p++, lo = op & 0x3f;
		uint64_t reg, adv = 0;
		int64_t off;

		switch (op >> 6) {
		case 1:		/* advance_loc */
			adv = lo;
			break;
		case 2:		/* offset */
			off = (int64_t)rd_uleb(r) * data_align;
			if (!set_rule(s, lo, 1, off))
				return -1;
			continue;
		case 3:		/* restore */
			if (lo == 16 || lo == DW_RBP)
				set_rule(s, lo, lo == 16 ? init->ra_rule :
					 init->rbp_rule, lo == 16 ?
					 init->ra_off : init->rbp_off);
			continue;
		default:
			break;
		}
		switch (op) {
		case 0x40 ... 0x7f:
			break;
		case 0x00:	/* nop */
			continue;
		case 0x02:	/* advance_loc1 */
			adv = rd_fixed(r, 1);
			break;
		case 0x03:	/* advance_loc2 */
			adv = rd_fixed(r, 2);
			break;
		case 0x04:	/* advance_loc4 */
			adv = rd_fixed(r, 4);
			break;
		case 0x05:	/* offset_extended */
			reg = rd_uleb(r);
			off = (int64_t)rd_uleb(r) * data_align;
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		case 0x06:	/* restore_extended */
			reg = rd_uleb(r);
			if (reg == 16 || reg == DW_RBP)
				set_rule(s, reg, reg == 16 ? init->ra_rule :
					 init->rbp_rule, reg == 16 ?
					 init->ra_off : init->rbp_off);
			continue;
		case 0x07:	/* undefined */
			reg = rd_uleb(r);
			if (!set_rule(s, reg, 2, 0))
				return -1;
			continue;
		case 0x08:	/* same_value */
			reg = rd_uleb(r);
			set_rule(s, reg, 0, 0);
			continue;
		case 0x09:	/* register */
			reg = rd_uleb(r);
			rd_uleb(r);
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x0a:	/* remember_state */
			if (*depth == CFI_STACK)
				return -1;
			stack[(*depth)++] = *s;
			continue;
		case 0x0b:	/* restore_state */
			if (!*depth)
				return -2;
			*s = stack[--(*depth)];
			continue;
		case 0x0c:	/* def_cfa */
			s->cfa_reg = rd_uleb(r);
			s->cfa_off = (int64_t)rd_uleb(r);
			continue;
		case 0x0d:	/* def_cfa_register */
			s->cfa_reg = rd_uleb(r);
			continue;
		case 0x0e:	/* def_cfa_offset */
			s->cfa_off = (int64_t)rd_uleb(r);
			continue;
		case 0x0f:	/* def_cfa_expression */
			return -1;
		case 0x10:	/* expression */
		case 0x16:	/* val_expression */
			reg = rd_uleb(r);
			rd_skip(r, rd_uleb(r));
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x11:	/* offset_extended_sf */
			reg = rd_uleb(r);
			off = rd_sleb(r) * data_align;
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		case 0x12:	/* def_cfa_sf */
			s->cfa_reg = rd_uleb(r);
			s->cfa_off = rd_sleb(r) * data_align;
			continue;
		case 0x13:	/* def_cfa_offset_sf */
			s->cfa_off = rd_sleb(r) * data_align;
			continue;
		case 0x14:	/* val_offset */
		case 0x15:	/* val_offset_sf */
			reg = rd_uleb(r);
			if (op == 0x14)
				rd_uleb(r);
			else
				rd_sleb(r);
			if (reg == 16 || reg == DW_RBP || reg == DW_RSP)
				return -1;
			continue;
		case 0x2e:	/* GNU_args_size */
			rd_uleb(r);
			continue;
		case 0x2f:	/* GNU_negative_offset_extended */
			reg = rd_uleb(r);
			off = -(int64_t)rd_uleb(r) * data_align;
			if (!set_rule(s, reg, 1, off))
				return -1;
			continue;
		default:	/* set_loc and vendor extensions */
			return -1;
		}
		if (!fde)
			continue;
		if (*loc + adv * code_align > pc)
			return 1;
		*loc += adv * code_align;
	}
	return r->bad ? -2 : 0;
}

/* See probes.h: the row covering pc, from CIE and FDE instructions. */
int
probe__cfi_eval(const uint8_t *cie_ins, size_t cie_len,
		const uint8_t *fde_ins, size_t fde_len, uint64_t code_align,
		int64_t data_align, uint64_t ra_reg, uint64_t pc_begin,
		uint64_t pc, struct probe__cfa_row *out)
{
	struct cfi_state s = { .cfa_reg = DW_RSP }, init, stack[CFI_STACK];
	struct cfi_rd r = { cie_ins, cie_ins + cie_len, false };
	uint64_t loc = pc_begin;
	int depth = 0, rc;

	memset(out, 0, sizeof(*out));
	out->state = PROBE_ROW_HARD;
	if (ra_reg != 16 || !code_align)
		return 0;
	rc = cfi_run(&r, &s, &s, stack, &depth, code_align, data_align, &loc,
		     pc, false);
	if (rc == -2)
		return -LP_EPARSE;
	if (rc < 0)
		return 0;
	init = s;
	depth = 0;
	r.p = fde_ins;
	r.end = fde_ins + fde_len;
	r.bad = false;
	rc = cfi_run(&r, &s, &init, stack, &depth, code_align, data_align,
		     &loc, pc, true);
	if (rc == -2)
		return -LP_EPARSE;
	if (rc < 0)
		return 0;
	if (s.ra_rule == 2) {
		out->state = PROBE_ROW_OUTER;
		return 0;
	}
	if ((s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.ra_rule != 1 ||
	    s.cfa_off < INT32_MIN || s.cfa_off > INT32_MAX ||
	    s.ra_off < INT32_MIN || s.ra_off > INT32_MAX ||
	    s.rbp_off < INT32_MIN || s.rbp_off > INT32_MAX)
		return 0;
	out->cfa_reg = (uint8_t)s.cfa_reg;
	out->cfa_off = (int32_t)s.cfa_off;
	out->ra_off = (int32_t)s.ra_off;
	out->rbp_off = (int32_t)s.rbp_off;
	out->rbp_saved = s.rbp_rule == 1;
	out->state = PROBE_ROW_OK;
	return 0;
}

/* Decode a DW_EH_PE_* pointer at r (field address `at`); false when the
 * encoding is not one .eh_frame uses on x86-64. */
static bool
rd_encoded(struct cfi_rd *r, uint8_t enc, uint64_t at, uint64_t *out)
{
	int n = enc_size(enc);
	uint64_t v;

	if (n < 0 || (enc & 0x70) > 0x10)
		return false;
	v = rd_fixed(r, n);
	if ((enc & 0x08) && n < 8 && (v >> (n * 8 - 1)))
		v |= ~0ull << (n * 8);	/* sign-extend sdata2/4 */
	if ((enc & 0x70) == 0x10)
		v += at;
	*out = v;
	return !r->bad;
}

#define CFI_MAX_BYTES	65536

/* Read a CIE or FDE at addr: *len gets the bytes after the length word. */
static uint8_t *
read_entry(struct tmem *mem, uint64_t addr, uint64_t *body, size_t *len)
{
	uint32_t l32;
	uint8_t *buf;

	if (tmem_read(mem, addr, &l32, 4) < 0 || l32 == 0 ||
	    l32 == 0xffffffffu || l32 > CFI_MAX_BYTES)
		return NULL;
	buf = xmalloc(l32);
	if (tmem_read(mem, addr + 4, buf, l32) < 0) {
		free(buf);
		return NULL;
	}
	*body = addr + 4;
	*len = l32;
	return buf;
}

/* The row for pc in module md, from its .eh_frame through the table. */
static void
cfi_compute(struct tmem *mem, const struct umod *md, uint64_t pc,
	    struct probe__cfa_row *row)
{
	uint64_t lo = 0, hi = md->count, fde_addr, fde_body, cie_body;
	uint64_t pc_begin, pc_range, code_align, ra_reg, cie_ptr;
	int64_t data_align;
	uint8_t *fde = NULL, *cie = NULL, fde_enc = 0;
	size_t fde_len, cie_len;
	struct cfi_rd r;
	int32_t ent[2];
	const char *aug;

	memset(row, 0, sizeof(*row));
	row->state = PROBE_ROW_NOINFO;
	/* last entry whose initial location <= pc */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (tmem_read(mem, md->table + mid * 8, ent, 8) < 0)
			return;
		if (md->hdr + (uint64_t)(int64_t)ent[0] <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || tmem_read(mem, md->table + (lo - 1) * 8, ent, 8) < 0)
		return;
	fde_addr = md->hdr + (uint64_t)(int64_t)ent[1];
	row->state = PROBE_ROW_HARD;
	fde = read_entry(mem, fde_addr, &fde_body, &fde_len);
	if (!fde || fde_len < 4)
		goto out;
	cie_ptr = rd_le(fde, 4);
	if (!cie_ptr || cie_ptr > fde_body)
		goto out;
	cie = read_entry(mem, fde_body - cie_ptr, &cie_body, &cie_len);
	if (!cie || cie_len < 4 || rd_le(cie, 4) != 0)
		goto out;
	/* CIE: version, augmentation, alignment factors, RA register */
	r.p = cie + 4;
	r.end = cie + cie_len;
	r.bad = false;
	ra_reg = rd_fixed(&r, 1);	/* the version, 1 or 3 */
	if (ra_reg != 1 && ra_reg != 3)
		goto out;
	aug = (const char *)r.p;
	if (!memchr(aug, '\0', (size_t)(r.end - r.p)))
		goto out;
	r.p += strlen(aug) + 1;
	code_align = rd_uleb(&r);
	data_align = rd_sleb(&r);
	ra_reg = cie[4] == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
	if (aug[0] == 'z') {
		uint64_t alen = rd_uleb(&r);
		const uint8_t *aend = r.p + alen;

		if (alen > (uint64_t)(r.end - r.p))
			goto out;
		for (const char *a = aug + 1; *a && !r.bad; a++) {
			if (*a == 'R') {
				fde_enc = (uint8_t)rd_fixed(&r, 1);
			} else if (*a == 'P') {
				uint8_t penc = (uint8_t)rd_fixed(&r, 1);
				int n = enc_size(penc);

				if (n < 0)
					goto out;
				rd_skip(&r, (uint64_t)n);
			} else if (*a == 'L') {
				rd_fixed(&r, 1);
			} else {
				goto out;	/* 'S' (signal frame), others */
			}
		}
		r.p = aend;
	} else if (aug[0]) {
		goto out;
	}
	if (r.bad)
		goto out;
	/* FDE: the range, augmentation data, then the instructions */
	{
		struct cfi_rd f = { fde + 4, fde + fde_len, false };
		const uint8_t *cie_ins = r.p;
		size_t cie_ins_len = (size_t)(r.end - r.p);

		if (!rd_encoded(&f, fde_enc, fde_body + 4, &pc_begin) ||
		    !rd_encoded(&f, fde_enc & 0x0f, 0, &pc_range))
			goto out;
		if (pc < pc_begin || pc - pc_begin >= pc_range) {
			row->state = PROBE_ROW_NOINFO;
			goto out;
		}
		if (aug[0] == 'z')
			rd_skip(&f, rd_uleb(&f));
		if (f.bad || probe__cfi_eval(cie_ins, cie_ins_len, f.p,
					     (size_t)(f.end - f.p), code_align,
					     data_align, ra_reg, pc_begin, pc,
					     row) < 0)
			row->state = PROBE_ROW_HARD;
	}
out:
	free(fde);
	free(cie);
}

#define ROWS		(1u << 16)	/* cached rows, direct-mapped */

struct row_slot {
	uint64_t pc;		/* 0: empty */
	struct probe__cfa_row row;
};

/* ---- unwinding a record (libunwind, custom accessors) ------------------ */

/* Exported by libunwind-x86_64 (_UPT_find_proc_info uses it), not
 * declared in its headers. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as,
					      unw_word_t ip,
					      unw_dyn_info_t *di,
					      unw_proc_info_t *pi,
					      int need_unwind_info,
					      void *arg);

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

static const struct umod *
uw_module(struct unwinder *u, uint64_t ip)
{
	const struct umod *md = umods_find(&u->mods, ip);

	/* a library loaded since the last look: at most 5 looks a second */
	if (!md && lp_mono_ns() - u->mods.loaded_ns > 200000000ull &&
	    umods_load(&u->mods, &u->mem, u->pid, NULL) == 0) {
		unw_flush_cache(u->as, 0, 0);
		md = umods_find(&u->mods, ip);
	}
	return md;
}

static int
acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
		   int need_unwind_info, void *arg)
{
	struct unwinder *u = arg;
	const struct umod *md = uw_module(u, ip);
	unw_dyn_info_t di;

	if (!md || !md->count)
		return -UNW_ENOINFO;
	memset(&di, 0, sizeof(di));
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = md->lo;
	di.end_ip = md->hi;
	di.u.rti.segbase = md->hdr;
	di.u.rti.table_data = md->table;
	/* entries are two int32 (initial location, FDE), in words */
	di.u.rti.table_len = md->count * 8 / sizeof(unw_word_t);
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi,
						  need_unwind_info, arg);
}

/* libunwind frees what dwarf_search_unwind_table allocated itself. */
static void
acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	(void)as;
	(void)pi;
	(void)arg;
}

static int
acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	(void)as;
	(void)addr;
	(void)arg;
	return -UNW_ENOINFO;
}

static int
acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
	       int write, void *arg)
{
	struct unwinder *u = arg;
	const struct lpm_alloc_ev *ev = u->ev;

	(void)as;
	if (write)
		return -UNW_EINVAL;
	if (addr >= ev->sp && addr - ev->sp + sizeof(*val) <= ev->stack_len) {
		memcpy(val, ev->stack + (addr - ev->sp), sizeof(*val));
		return 0;
	}
	/* beyond the copy, the stack is gone: only module memory is read */
	if (!umods_find(&u->mods, addr) ||
	    tmem_read(&u->mem, addr, val, sizeof(*val)) < 0)
		return -UNW_EINVAL;
	return 0;
}

static int
acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
	       int write, void *arg)
{
	const struct lpm_alloc_ev *ev = ((struct unwinder *)arg)->ev;

	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	switch (reg) {
	case UNW_X86_64_RIP:
		/* a return address: look up the call instruction's row */
		*val = ev->ip - 1;
		break;
	case UNW_X86_64_RSP:
		*val = ev->sp;
		break;
	case UNW_X86_64_RBP:
		*val = ev->bp;
		break;
	case UNW_X86_64_RBX:
		*val = ev->bx;
		break;
	case UNW_X86_64_R12:
		*val = ev->r12;
		break;
	case UNW_X86_64_R13:
		*val = ev->r13;
		break;
	case UNW_X86_64_R14:
		*val = ev->r14;
		break;
	case UNW_X86_64_R15:
		*val = ev->r15;
		break;
	default:
		/* caller-saved: dead at a return, never needed by CFI */
		*val = 0;
		break;
	}
	return 0;
}

static int
acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
		 int write, void *arg)
{
	(void)as;
	(void)reg;
	(void)val;
	(void)write;
	(void)arg;
	return -UNW_EBADREG;
}

static int
acc_resume(unw_addr_space_t as, unw_cursor_t *cur, void *arg)
{
	(void)as;
	(void)cur;
	(void)arg;
	return -UNW_EINVAL;
}

static int
acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
		  size_t len, unw_word_t *off, void *arg)
{
	(void)as;
	(void)addr;
	(void)buf;
	(void)len;
	(void)off;
	(void)arg;
	return -UNW_ENOINFO;
}

static int
uw_init(struct unwinder *u, pid_t pid, struct lp_err *err)
{
	static unw_accessors_t acc = {
		.find_proc_info = acc_find_proc_info,
		.put_unwind_info = acc_put_unwind_info,
		.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
		.access_mem = acc_access_mem,
		.access_reg = acc_access_reg,
		.access_fpreg = acc_access_fpreg,
		.resume = acc_resume,
		.get_proc_name = acc_get_proc_name,
	};
	char path[64];

	u->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	u->mem.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (u->mem.fd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EPERM),
				  "malloc: cannot open '%s'", path);
	u->mem.p = xcalloc(TMEM_PAGES, sizeof(*u->mem.p));
	u->rows = xcalloc(ROWS, sizeof(*u->rows));
	u->check = getenv("LEAKPROBE_UNWIND_CHECK") != NULL;
	if (umods_load(&u->mods, &u->mem, pid, err) < 0)
		return -LP_ENOPROC;
	u->as = unw_create_addr_space(&acc, 0);
	if (!u->as)
		return lp_err_set(err, LP_ENOMEM, "malloc: cannot create a "
				  "libunwind address space");
	/* the per-ip register-state cache makes a step a table lookup */
	unw_set_caching_policy(u->as, UNW_CACHE_PER_THREAD);
	unw_set_cache_size(u->as, 1u << 14, 0);
	return 0;
}

static void
uw_release(struct unwinder *u)
{
	if (u->as)
		unw_destroy_addr_space(u->as);
	if (u->mem.fd >= 0)
		close(u->mem.fd);
	free(u->mem.p);
	free(u->rows);
	free(u->mods.m);
	memset(u, 0, sizeof(*u));
	u->mem.fd = -1;
}

/* The cached row for pc (a return address - 1). */
static const struct probe__cfa_row *
uw_row(struct unwinder *u, const struct umod *md, uint64_t pc)
{
	struct row_slot *sl = &u->rows[mix64(pc) & (ROWS - 1)];

	if (sl->pc != pc) {
		cfi_compute(&u->mem, md, pc, &sl->row);
		sl->pc = pc;
	}
	return &sl->row;
}

static bool
snap_word(const struct lpm_alloc_ev *ev, uint64_t addr, uint64_t *val)
{
	if (addr < ev->sp || addr - ev->sp + 8 > ev->stack_len)
		return false;
	memcpy(val, ev->stack + (addr - ev->sp), 8);
	return true;
}

/*
 * Unwind with cached rows.  Returns the frame count, or -1 when a frame
 * needs libunwind (a rule outside the fast subset).
 */
static int
fast_unwind(struct unwinder *u, const struct lpm_alloc_ev *ev,
	    uint64_t *frames, int max, bool *truncated)
{
	uint64_t ip = ev->ip, sp = ev->sp, bp = ev->bp;
	int n = 0;

	frames[n++] = ip;
	*truncated = true;
	while (n < max) {
		const struct umod *md = uw_module(u, ip);
		const struct probe__cfa_row *row;
		uint64_t cfa, ra;

		if (!md || !md->count)
			return n;
		row = uw_row(u, md, ip - 1);
		if (row->state == PROBE_ROW_HARD)
			return -1;
		if (row->state == PROBE_ROW_OUTER) {
			*truncated = false;
			return n;
		}
		if (row->state != PROBE_ROW_OK)
			return n;
		cfa = (row->cfa_reg == DW_RSP ? sp : bp) +
		      (uint64_t)(int64_t)row->cfa_off;
		if (cfa <= sp || !snap_word(ev, cfa + (uint64_t)(int64_t)
					    row->ra_off, &ra) ||
		    (row->rbp_saved &&
		     !snap_word(ev, cfa + (uint64_t)(int64_t)row->rbp_off,
				&bp)))
			return n;
		if (!ra || !umods_find(&u->mods, ra))
			return n;
		sp = cfa;
		ip = ra;
		frames[n++] = ip;
	}
	return n;
}

/* The same with libunwind. */
static int
slow_unwind(struct unwinder *u, const struct lpm_alloc_ev *ev,
	    uint64_t *frames, int max, bool *truncated)
{
	unw_cursor_t cur;
	unw_word_t prev_sp = ev->sp;
	int n = 0;

	u->ev = ev;
	frames[n++] = ev->ip;
	*truncated = true;
	if (!uw_module(u, ev->ip) || unw_init_remote(&cur, u->as, u) < 0)
		return n;
	while (n < max) {
		unw_word_t ip, sp;
		int r = unw_step(&cur);

		if (r == 0) {
			*truncated = false;
			break;
		}
		if (r < 0 || unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 ||
		    unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 || !ip ||
		    sp <= prev_sp || !umods_find(&u->mods, ip))
			break;
		frames[n++] = ip;
		prev_sp = sp;
	}
	return n;
}

/*
 * probe__unwind_fn for real records: frames[0] is the return address
 * into the allocator's caller, then one return address per frame.  An
 * unwind that ends at the outermost frame is complete; one that ends
 * because the copy was too short, or the code has no unwind info, is
 * truncated.  With LEAKPROBE_UNWIND_CHECK set, every stack is unwound
 * both ways and differences are counted (see probe_malloc_stop).
 */
static int
uw_unwind(void *arg, const struct lpm_alloc_ev *ev, uint64_t *frames, int max,
	  bool *truncated)
{
	struct unwinder *u = arg;
	int n = fast_unwind(u, ev, frames, max, truncated);

	if (n < 0) {
		u->slow++;
		return slow_unwind(u, ev, frames, max, truncated);
	}
	u->fast++;
	if (u->check) {
		uint64_t other[MAX_FRAMES];
		bool t2;
		int m = slow_unwind(u, ev, other, max, &t2), k = 0;

		while (k < n && k < m && frames[k] == other[k])
			k++;
		u->checked++;
		if (k != n || k != m) {
			u->differ++;
			if (u->differ <= 5)
				lp_debug("malloc: unwind check: fast path %d "
					 "frames, libunwind %d, first "
					 "difference at frame %d (%#" PRIx64
					 ")", n, m, k, k < n ? frames[k] : 0);
		}
	}
	return n;
}

/* ---- BPF: checks, load, attach ----------------------------------------- */

#ifndef CAP_PERFMON
#define CAP_PERFMON	38
#endif
#ifndef CAP_BPF
#define CAP_BPF		39
#endif

struct probe_malloc {
	pid_t pid;
	struct probe_malloc_opts o;
	struct inj_target *t;
	struct malloc_bpf *skel;
	struct bpf_link *links[2 * LPM_NKINDS + 2];
	int nlinks;		/* destroyed in reverse order */
	struct ring_buffer *rb;
	struct unwinder uw;
	struct probe__mcoll *coll;
	pthread_t thread;
	bool thread_on;
	atomic_int stop;
	int thread_err;		/* errno of a failed ring buffer poll */
	uint64_t got_allocs, got_frees;	/* records consumed */
	uint64_t func_addr[LPM_NKINDS];
	char allocator[256];
	enum { MW_READY, MW_OPEN, MW_DONE } state;
	uint64_t t0, t1;	/* window, monotonic ns */
	struct ana_totals s0, s1;
	uint64_t free_repaired, kernel_only;
	uint64_t c0[LPM_NCOUNTERS];	/* counters when the window opened */
	uint64_t c1[LPM_NCOUNTERS];	/* and when it ended */
	int ncpus;
};

/* The last warning libbpf printed, for error messages (main thread). */
static char bpf_last_msg[200];

static int
libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *buf = NULL;
	size_t n;

	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (level == LIBBPF_WARN && !strchr(buf, '\n'))
		snprintf(bpf_last_msg, sizeof(bpf_last_msg), "%s",
			 strncmp(buf, "libbpf: ", 8) ? buf : buf + 8);
	if (lp_verbose >= 2 || (lp_verbose >= 1 && level == LIBBPF_WARN))
		lp_debug("%s", buf);
	free(buf);
	return 0;
}

/*
 * Say exactly what is missing when BPF cannot be used: capabilities,
 * uprobe support, the program type or the ring buffer.
 */
static int
check_bpf(struct lp_err *err)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0
	};
	struct __user_cap_data_struct d[2];
	int r;

	if (syscall(SYS_capget, &h, d) == 0) {
		uint64_t eff = d[0].effective |
			       (uint64_t)d[1].effective << 32;
		bool bpf = eff >> CAP_BPF & 1, perf = eff >> CAP_PERFMON & 1;

		if (!(eff >> CAP_SYS_ADMIN & 1) && !(bpf && perf))
			return lp_err_set(err, LP_EBPF, "malloc tracing needs "
					  "BPF, and leakprobe lacks %s%s%s "
					  "(run it as root, or give it "
					  "cap_bpf,cap_perfmon and "
					  "cap_sys_ptrace)",
					  bpf ? "" : "CAP_BPF",
					  !bpf && !perf ? " and " : "",
					  perf ? "" : "CAP_PERFMON");
	}
	/* no sysfs at all (a chroot that mounted only /proc) says nothing
	 * about the kernel */
	if (access("/sys/kernel", F_OK))
		return lp_err_set(err, LP_EBPF, "/sys is not mounted here (a "
				  "chroot?), and malloc tracing finds the "
				  "kernel's uprobe support there: mount -t "
				  "sysfs sysfs /sys");
	if (access("/sys/bus/event_source/devices/uprobe/type", F_OK) &&
	    access("/sys/kernel/tracing/uprobe_events", F_OK) &&
	    access("/sys/kernel/debug/tracing/uprobe_events", F_OK))
		return lp_err_set(err, LP_EBPF, "this kernel has no uprobes "
				  "(CONFIG_UPROBE_EVENTS): neither "
				  "/sys/bus/event_source/devices/uprobe nor "
				  "tracefs uprobe_events exists");
	r = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, NULL);
	if (r <= 0)
		return lp_err_set(err, LP_EBPF, "the kernel refuses BPF "
				  "tracing programs%s%s (CONFIG_BPF_SYSCALL, "
				  "CONFIG_BPF_EVENTS; check kernel lockdown "
				  "and kernel.unprivileged_bpf_disabled)",
				  r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
	r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
	if (r <= 0)
		return lp_err_set(err, LP_EBPF, "the kernel has no BPF ring "
				  "buffer (Linux 5.8 or later is needed)");
	return 0;
}

/* Where an allocator function is mapped: the attach path and offset. */
struct fn_site {
	char path[PATH_MAX + 64];
	uint64_t off;
};

static int
locate(struct probe_malloc *m, const struct mline *l, size_t n,
       const char *mod, uint64_t addr, struct fn_site *out)
{
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		if (addr < l[i].start || addr >= l[i].end || !l[i].path ||
		    strcmp(l[i].path, mod))
			continue;
		out->off = addr - l[i].start + l[i].off;
		/* the file as the target sees it (containers), or the
		 * mapping itself when it was deleted or replaced */
		snprintf(out->path, sizeof(out->path), "/proc/%d/root%s",
			 (int)m->pid, l[i].path);
		if (stat(out->path, &st) < 0 || st.st_ino != l[i].ino)
			snprintf(out->path, sizeof(out->path),
				 "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
				 (int)m->pid, l[i].start, l[i].end);
		return 0;
	}
	return -1;
}

static struct bpf_program *
entry_prog(struct malloc_bpf *sk, int kind)
{
	switch (kind) {
	case LPM_MALLOC:
		return sk->progs.lpm_malloc;
	case LPM_CALLOC:
		return sk->progs.lpm_calloc;
	case LPM_REALLOC:
		return sk->progs.lpm_realloc;
	case LPM_MEMALIGN:
		return sk->progs.lpm_memalign;
	case LPM_VALLOC:
		return sk->progs.lpm_valloc;
	case LPM_PVALLOC:
		return sk->progs.lpm_pvalloc;
	case LPM_POSIX_MEMALIGN:
		return sk->progs.lpm_posix_ma;
	default:
		return sk->progs.lpm_free;
	}
}

static int
attach_one(struct probe_malloc *m, struct bpf_program *prog, bool ret,
	   const struct fn_site *fs, const char *name, struct lp_err *err)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = ret);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, m->pid, fs->path,
					       fs->off, &uo);
	if (!link) {
		int e = errno;

		/* the target may exit while the probes go in */
		if (!probe_proc_alive(m->pid))
			return lp_err_set(err, LP_EEXITED, "process %d exited",
					  (int)m->pid);
		return lp_err_set(err, LP_EBPF, "attaching a %s to %s in '%s'"
				  ": %s%s%s", ret ? "uretprobe" : "uprobe",
				  name, fs->path, strerror(e),
				  bpf_last_msg[0] ? "; " : "", bpf_last_msg);
	}
	m->links[m->nlinks++] = link;
	return 0;
}

/*
 * Find each function in the module that serves it (libc, or an
 * allocator linked in or preloaded), and attach: every return probe
 * first, then the entry probes, free last, so that no call we saw enter
 * can return unseen.  memalign and aligned_alloc share an address in
 * glibc: one address gets one probe.
 */
static int
attach_all(struct probe_malloc *m, struct lp_err *err)
{
	static const struct {
		const char *name;
		int kind;
		bool required;
	} fns[] = {
		{ "malloc", LPM_MALLOC, true },
		{ "calloc", LPM_CALLOC, false },
		{ "realloc", LPM_REALLOC, false },
		{ "memalign", LPM_MEMALIGN, false },
		{ "aligned_alloc", LPM_MEMALIGN, false },
		{ "valloc", LPM_VALLOC, false },
		{ "pvalloc", LPM_PVALLOC, false },
		{ "posix_memalign", LPM_POSIX_MEMALIGN, false },
		{ "free", LPM_FREE, true },
	};
	enum { NF = sizeof(fns) / sizeof(fns[0]) };
	struct fn_site fs[NF];
	uint64_t addr[NF];
	bool use[NF];
	struct mline *l = NULL;
	size_t n = 0;
	int rc;

	rc = read_maps(m->pid, &l, &n, err);
	if (rc < 0)
		return rc;
	for (int i = 0; i < NF; i++) {
		const char *mod = inj_symbol_module(m->t, fns[i].name);
		const char *base;

		use[i] = false;
		if (!mod || !(base = strrchr(mod, '/')) ||
		    inj_lookup(m->t, base + 1, fns[i].name, &addr[i],
			       NULL) < 0 ||
		    locate(m, l, n, mod, addr[i], &fs[i]) < 0) {
			if (!fns[i].required)
				continue;
			rc = lp_err_set(err, LP_ENOSYM, "malloc: process %d "
					"maps no '%s' (is it statically "
					"linked without symbols?)", (int)m->pid,
					fns[i].name);
			goto out;
		}
		use[i] = true;
		for (int j = 0; j < i; j++)
			if (use[j] && addr[j] == addr[i])
				use[i] = false;
		if (use[i] && !m->func_addr[fns[i].kind])
			m->func_addr[fns[i].kind] = addr[i];
		if (fns[i].kind == LPM_MALLOC)
			snprintf(m->allocator, sizeof(m->allocator), "%s", mod);
		lp_debug("malloc: %s at %#" PRIx64 " in %s (offset %#" PRIx64
			 ")%s", fns[i].name, addr[i], mod, fs[i].off,
			 use[i] ? "" : ", same address as before");
	}
	for (int pass = 0; pass < 3 && rc == 0; pass++) {
		for (int i = 0; i < NF && rc == 0; i++) {
			bool is_free = fns[i].kind == LPM_FREE;

			if (!use[i] || (pass == 2) != is_free)
				continue;
			if (pass == 0)
				rc = attach_one(m, m->skel->progs.lpm_ret, true,
						&fs[i], fns[i].name, err);
			else
				rc = attach_one(m, entry_prog(m->skel,
							      fns[i].kind),
						false, &fs[i], fns[i].name,
						err);
		}
	}
out:
	mlines_free(l, n);
	return rc;
}

static int
load_bpf(struct probe_malloc *m, struct lp_err *err)
{
	int r;

	libbpf_set_print(libbpf_print);
	bpf_last_msg[0] = '\0';
	m->skel = malloc_bpf__open();
	if (!m->skel)
		return lp_err_set(err, LP_EBPF, "opening the BPF object: %s",
				  strerror(errno));
	m->skel->rodata->target_tgid = (__u32)m->pid;
	m->skel->rodata->stack_bytes = m->o.stack_bytes;
	m->skel->rodata->sample_n = m->o.sample;
	m->skel->rodata->count_only = m->o.count_only;
	m->skel->rodata->wake_bytes = m->o.ring_bytes / 4;
	if (bpf_map__set_max_entries(m->skel->maps.live,
				     m->o.max_outstanding) < 0 ||
	    bpf_map__set_max_entries(m->skel->maps.events,
				     m->o.ring_bytes) < 0)
		return lp_err_set(err, LP_EBPF, "sizing the BPF maps failed");
	r = malloc_bpf__load(m->skel);
	if (r < 0)
		return lp_err_set(err, LP_EBPF, "loading the BPF program into "
				  "the kernel: %s%s%s", strerror(-r),
				  bpf_last_msg[0] ? "; " : "", bpf_last_msg);
	m->ncpus = libbpf_num_possible_cpus();
	if (m->ncpus <= 0)
		return lp_err_set(err, LP_EBPF, "cannot count the possible "
				  "CPUs");
	return 0;
}

static int
on_event(void *ctx, void *data, size_t len)
{
	struct probe_malloc *m = ctx;
	const struct lpm_free_ev *f = data;

	if (len >= sizeof(struct lpm_alloc_ev) && f->type == LPM_EV_ALLOC) {
		const struct lpm_alloc_ev *ev = data;

		if (ev->stack_len <= len - sizeof(*ev) &&
		    ev->kind < LPM_NKINDS) {
			m->got_allocs++;
			probe__mcoll_alloc(m->coll, ev);
		}
	} else if (len >= sizeof(*f) && f->type == LPM_EV_FREE) {
		m->got_frees++;
		probe__mcoll_forget(m->coll, f->ptr);
	}
	return 0;
}

static void *
collector_main(void *arg)
{
	struct probe_malloc *m = arg;

	/* records are sent without a wakeup until the ring is a quarter
	 * full: the poll's timeout is the usual pace */
	while (!atomic_load(&m->stop)) {
		int n = ring_buffer__poll(m->rb, POLL_MS);

		if (n >= 0)
			n = ring_buffer__consume(m->rb);
		if (n < 0 && n != -EINTR) {
			m->thread_err = -n;
			break;
		}
	}
	return NULL;
}

static void
read_counters(struct probe_malloc *m, uint64_t out[LPM_NCOUNTERS])
{
	int fd = bpf_map__fd(m->skel->maps.counters);
	uint64_t *v = xcalloc((size_t)m->ncpus, sizeof(*v));

	for (uint32_t i = 0; i < LPM_NCOUNTERS; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, v) == 0)
			for (int c = 0; c < m->ncpus; c++)
				out[i] += v[c];
	}
	free(v);
}

/*
 * Check BPF, open the target, load and attach (see probes.h).  The
 * handle owns everything; probe_malloc_stop() undoes it all.
 */
struct probe_malloc *
probe_malloc_start(pid_t pid, const struct probe_malloc_opts *opts,
		   struct lp_err *err)
{
	struct probe_malloc *m = xcalloc(1, sizeof(*m));

	m->pid = pid;
	m->uw.mem.fd = -1;
	if (opts)
		m->o = *opts;
	if (!m->o.stack_bytes)
		m->o.stack_bytes = DEF_STACK_BYTES;
	if (!m->o.sample)
		m->o.sample = 1;
	if (!m->o.group_frames)
		m->o.group_frames = DEF_GROUP_FRAMES;
	if (!m->o.max_outstanding)
		m->o.max_outstanding = DEF_MAX_OUTSTANDING;
	if (!m->o.pending_bytes)
		m->o.pending_bytes = DEF_PENDING_BYTES;
	if (!m->o.ring_bytes)
		m->o.ring_bytes = DEF_RING_BYTES;

	if (m->o.stack_bytes > LPM_MAX_STACK || m->o.stack_bytes % 8 ||
	    m->o.group_frames > MAX_FRAMES ||
	    (m->o.ring_bytes & (m->o.ring_bytes - 1)) ||
	    m->o.ring_bytes < PAGE_4K) {
		lp_err_set(err, LP_EINVAL, "malloc: bad tracing options");
		goto fail;
	}
	if (check_bpf(err) < 0)
		goto fail;
	m->t = inj_open(pid, err);
	if (!m->t)
		goto fail;
	if (load_bpf(m, err) < 0 || attach_all(m, err) < 0 ||
	    uw_init(&m->uw, pid, err) < 0)
		goto fail;
	m->coll = probe__mcoll_new(m->o.pending_bytes, m->o.stack_bytes,
				   MAX_STACKS, uw_unwind, &m->uw);
	m->rb = ring_buffer__new(bpf_map__fd(m->skel->maps.events), on_event,
				 m, NULL);
	if (!m->rb) {
		lp_err_set(err, LP_EBPF, "opening the BPF ring buffer: %s",
			   strerror(errno));
		goto fail;
	}
	return m;
fail:
	probe_malloc_stop(m);
	return NULL;
}

static void
set_tracking(struct probe_malloc *m, bool allocs, bool frees)
{
	/* frees before allocs when starting, allocs first when stopping */
	if (frees) {
		__atomic_store_n(&m->skel->bss->track_frees, 1,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&m->skel->bss->track_allocs, allocs,
				 __ATOMIC_SEQ_CST);
	} else {
		__atomic_store_n(&m->skel->bss->track_allocs, allocs,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&m->skel->bss->track_frees, 0,
				 __ATOMIC_SEQ_CST);
	}
}

static int
sample_growth(struct probe_malloc *m, struct ana_totals *out,
	      struct lp_err *err)
{
	struct ana_smaps sm;
	int rc;

	ana_smaps_init(&sm);
	rc = probe_smaps_read(m->pid, false, &sm, err);
	if (rc == 0)
		*out = sm.totals;
	ana_smaps_release(&sm);
	return rc;
}

/* Sample smaps, start the collector thread, turn recording on. */
int
probe_malloc_window_begin(struct probe_malloc *m, struct lp_err *err)
{
	sigset_t all, old;
	int rc;

	if (m->state != MW_READY)
		return lp_err_set(err, LP_EINVAL, "malloc: the window was "
				  "already opened");
	rc = sample_growth(m, &m->s0, err);
	if (rc < 0)
		return rc;
	/* the collector thread takes no signals: the caller's waits must
	 * see SIGINT/SIGTERM as EINTR */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&m->thread, NULL, collector_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return lp_err_set(err, LP_ENOMEM, "malloc: cannot start the "
				  "collector thread: %s", strerror(rc));
	m->thread_on = true;
	/* calls made before the window (warm-up) are not its calls */
	read_counters(m, m->c0);
	m->t0 = lp_mono_ns();
	m->state = MW_OPEN;
	set_tracking(m, true, true);
	return 0;
}

/* Stop recording allocations; frees still count. */
void
probe_malloc_pause(struct probe_malloc *m)
{
	if (m && m->state == MW_OPEN)
		set_tracking(m, false, true);
}

/* Record allocations again after probe_malloc_pause(). */
void
probe_malloc_resume(struct probe_malloc *m)
{
	if (m && m->state == MW_OPEN)
		set_tracking(m, true, true);
}

/*
 * The kernel's table of outstanding pointers is the reference at the
 * end: a free whose record was lost still removed its pointer there.
 * Entries it confirms are marked in place (no second table: memory
 * stays within the bound), the others are dropped.
 */
static int
reconcile(struct probe_malloc *m, struct lp_err *err)
{
	int fd = bpf_map__fd(m->skel->maps.live);
	const uint32_t chunk = 8192;
	uint64_t *keys = xcalloc(chunk, sizeof(*keys));
	uint64_t *vals = xcalloc(chunk, sizeof(*vals));
	__u64 in = 0, out = 0;
	bool first = true, batch = true;
	int rc = 0;

	m->kernel_only = 0;
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		__u32 cnt = chunk;
		int r;

		r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys,
					 vals, &cnt, &bo);
		if (r < 0 && first && errno != ENOENT) {
			batch = false;
			break;
		}
		for (__u32 i = 0; i < cnt; i++)
			if (!probe__mcoll_mark(m->coll, keys[i]))
				m->kernel_only++;
		if (r < 0) {
			if (errno != ENOENT)
				rc = lp_err_sys(err, LP_EBPF, "malloc: reading "
						"the kernel's table");
			break;
		}
		in = out;
		first = false;
	}
	if (!batch) {
		/* kernels without batch lookups for hash maps */
		__u64 k, next;
		void *prev = NULL;

		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			if (!probe__mcoll_mark(m->coll, next))
				m->kernel_only++;
			k = next;
			prev = &k;
		}
	}
	if (rc == 0)
		m->free_repaired = probe__mcoll_sweep(m->coll);
	if (m->kernel_only)
		lp_debug("malloc: %" PRIu64 " pointers in the kernel's table "
			 "without a record", m->kernel_only);
	free(keys);
	free(vals);
	return rc;
}

/*
 * Turn recording off, stop the collector, drain what the programs sent,
 * unwind the survivors, reconcile, sample smaps.  0 or LP_E*.
 */
int
probe_malloc_window_end(struct probe_malloc *m, struct lp_err *err)
{
	uint64_t c[LPM_NCOUNTERS];
	int rc = 0;

	if (m->state != MW_OPEN)
		return lp_err_set(err, LP_EINVAL, "malloc: no window is open");
	set_tracking(m, false, false);
	m->t1 = lp_mono_ns();
	m->state = MW_DONE;
	atomic_store(&m->stop, 1);
	pthread_join(m->thread, NULL);
	m->thread_on = false;
	if (m->thread_err)
		return lp_err_set(err, LP_EBPF, "malloc: reading the ring "
				  "buffer: %s", strerror(m->thread_err));
	/*
	 * A program that saw tracking on just before we turned it off may
	 * still be committing its record: drain until we consumed what
	 * the programs counted as sent (bounded: 100 ms).
	 */
	for (int i = 0; i < 100 && !m->o.count_only; i++) {
		struct timespec ts = { 0, 1000000 };

		ring_buffer__consume(m->rb);
		read_counters(m, c);
		if (m->got_allocs >= c[LPM_C_ALLOCS] &&
		    m->got_frees >= c[LPM_C_FREES])
			break;
		nanosleep(&ts, NULL);
	}
	read_counters(m, m->c1);
	probe__mcoll_flush(m->coll);
	lp_debug("malloc: %" PRIu64 " stacks unwound from cached CFI rows, %"
		 PRIu64 " by libunwind", m->uw.fast, m->uw.slow);
	if (m->uw.check)
		lp_debug("malloc: unwind check: %" PRIu64 " of %" PRIu64
			 " stacks differ between the two paths", m->uw.differ,
			 m->uw.checked);
	if (!m->o.count_only)
		rc = reconcile(m, err);
	if (rc == 0)
		rc = sample_growth(m, &m->s1, err);
	return rc;
}

/* Kernel memory of a BPF map, as the kernel accounts it (fdinfo). */
static uint64_t
map_memlock(int fd)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	fclose(fp);
	return v;
}

static int64_t
cls_rss(const struct ana_totals *t, int cls)
{
	return (int64_t)t->cls[cls].rss;
}

/* The frame of the allocator function itself: "malloc (libc.so.6)". */
static char *
func_frame(struct probe_malloc *m, const char *func, uint64_t addr)
{
	const char *mod = addr ? inj_addr_module(m->t, addr) : NULL;
	char buf[320];

	snprintf(buf, sizeof(buf), "%s (%s)", func, mod ? mod : "?");
	return xstrdup(buf);
}

/* The report of an ended window; *out is the caller's (see probes.h). */
int
probe_malloc_report(struct probe_malloc *m, size_t top,
		    struct probe_malloc_report **out, struct lp_err *err)
{
	struct probe_malloc_report *r;
	struct probe__mcoll_stats st;
	uint64_t c[LPM_NCOUNTERS];
	struct rusage ru;
	uint64_t table_slots = 1024;

	if (m->state != MW_DONE)
		return lp_err_set(err, LP_EINVAL, "malloc: end the window "
				  "before the report");
	r = xcalloc(1, sizeof(*r));
	r->pid = m->pid;
	r->count_only = m->o.count_only;
	r->seconds = (double)(m->t1 - m->t0) / 1e9;
	r->sample = m->o.sample;
	r->stack_bytes = m->o.stack_bytes;
	r->group_frames = m->o.group_frames;
	snprintf(r->allocator, sizeof(r->allocator), "%s", m->allocator);
	for (int i = 0; i < LPM_NCOUNTERS; i++)
		c[i] = m->c1[i] - m->c0[i];
	for (int k = 0; k < LPM_NKINDS; k++) {
		r->calls[k] = c[LPM_C_CALLS + k];
		if (k == LPM_FREE)
			r->calls_free += r->calls[k];
		else
			r->calls_alloc += r->calls[k];
	}
	probe__mcoll_stats(m->coll, &st);
	r->recorded = m->got_allocs;
	r->raw_outstanding = st.outstanding;
	r->raw_outstanding_bytes = st.bytes;
	r->outstanding = st.outstanding * m->o.sample;
	r->outstanding_bytes = st.bytes * m->o.sample;
	r->freed = r->recorded > st.outstanding ?
		   r->recorded - st.outstanding : 0;
	r->unwound = st.unwound;
	r->unwind_short = st.unwind_short;
	r->distinct_stacks = st.distinct_stacks;
	r->stack_overflow = st.stack_overflow;
	r->alloc_drops = c[LPM_C_ALLOC_DROPS];
	r->alloc_drop_bytes = c[LPM_C_ALLOC_DROP_BYTES];
	r->free_drops = c[LPM_C_FREE_DROPS];
	r->free_repaired = m->free_repaired;
	r->live_full = c[LPM_C_LIVE_FULL];
	r->inflight_full = c[LPM_C_INFLIGHT_FULL];
	r->nested = c[LPM_C_NESTED];
	r->stack_short = c[LPM_C_STACK_SHORT];
	r->stack_fail = c[LPM_C_STACK_FAIL];
	r->heap_growth = cls_rss(&m->s1, ANA_MAP_HEAP) -
			 cls_rss(&m->s0, ANA_MAP_HEAP);
	r->arena_growth = cls_rss(&m->s1, ANA_MAP_ARENA) -
			  cls_rss(&m->s0, ANA_MAP_ARENA);
	r->anon_growth = cls_rss(&m->s1, ANA_MAP_ANON) -
			 cls_rss(&m->s0, ANA_MAP_ANON);
	r->growth = r->heap_growth + r->arena_growth + r->anon_growth;
	r->explained = r->growth > 0 ?
		       (double)r->outstanding_bytes / (double)r->growth : -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		r->rss_peak = (uint64_t)ru.ru_maxrss * 1024;
	r->bpf_bytes = map_memlock(bpf_map__fd(m->skel->maps.live)) +
		       map_memlock(bpf_map__fd(m->skel->maps.events)) +
		       map_memlock(bpf_map__fd(m->skel->maps.inflight)) +
		       map_memlock(bpf_map__fd(m->skel->maps.counters));
	/*
	 * The bounds.  Ours: the FIFO, the outstanding table at its
	 * largest (and its predecessor while it grows), the stack tables,
	 * the code and row caches, and the ring buffer, mapped twice (RSS
	 * counts it twice); not counted: symbol tables of the target's
	 * files.  The kernel's: the ring buffer, the pointer table (about
	 * 96 bytes an entry with its bucket) and the per-thread table.
	 */
	while (table_slots * 7 < (uint64_t)m->o.max_outstanding * 10)
		table_slots *= 2;
	r->bound_bytes = m->o.pending_bytes +
			 table_slots * sizeof(struct ptr_ent) * 3 / 2 +
			 (uint64_t)MAX_STACKS * (sizeof(struct stack_ent) + 8) +
			 (uint64_t)MAX_POOL * 8 +
			 TMEM_PAGES * sizeof(struct tpage) +
			 ROWS * sizeof(struct row_slot) +
			 2ull * m->o.ring_bytes;
	r->bpf_bound_bytes = m->o.ring_bytes +
			     (uint64_t)m->o.max_outstanding * 96 +
			     (uint64_t)LPM_MAX_THREADS * 96;
	if (!m->o.count_only) {
		int64_t g = r->growth;

		r->nsites = probe__mcoll_sites(m->coll, m->o.group_frames, top,
					       m->o.sample, &r->sites,
					       &r->total_sites);
		inj_refresh_maps(m->t, NULL);
		for (size_t i = 0; i < r->nsites; i++) {
			struct probe_malloc_site *s = &r->sites[i];
			char buf[512];
			int kind = 0;

			while (kind < LPM_NKINDS &&
			       strcmp(func_names[kind], s->func))
				kind++;
			s->addrs[0] = kind < LPM_NKINDS ?
				      m->func_addr[kind] : 0;
			s->frames[0] = func_frame(m, s->func, s->addrs[0]);
			for (size_t j = 1; j < s->nframes; j++) {
				inj_symbolize(m->t, s->addrs[j] - 1, buf,
					      sizeof(buf));
				s->frames[j] = xstrdup(buf);
			}
			s->share = g > 0 ? (double)s->bytes / (double)g : -1;
		}
	}
	*out = r;
	return 0;
}

/* Free a report.  NULL is a no-op. */
void
probe_malloc_report_free(struct probe_malloc_report *r)
{
	if (!r)
		return;
	probe__sites_free(r->sites, r->nsites);
	free(r);
}

/*
 * Stop recording, join the collector, detach entry probes before return
 * probes, free everything.  NULL is a no-op.
 */
void
probe_malloc_stop(struct probe_malloc *m)
{
	if (!m)
		return;
	if (m->skel && m->skel->bss)
		set_tracking(m, false, false);
	if (m->thread_on) {
		atomic_store(&m->stop, 1);
		pthread_join(m->thread, NULL);
	}
	/* entry probes (free last attached) go first, return probes last */
	while (m->nlinks > 0)
		bpf_link__destroy(m->links[--m->nlinks]);
	ring_buffer__free(m->rb);
	malloc_bpf__destroy(m->skel);
	probe__mcoll_free(m->coll);
	uw_release(&m->uw);
	inj_close(m->t);
	free(m);
}
