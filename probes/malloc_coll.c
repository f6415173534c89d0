/*
 * The collector of native malloc sites (see malloc.c): raw allocation
 * records wait in a bounded FIFO, a free cancels a waiting record
 * without an unwind, records pushed out or still waiting at the end are
 * unwound, their stacks interned, and kept in the table of outstanding
 * allocations.  No BPF here: unit-tested through probes.h.
 */
#include "probes/malloc_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/malloc_bpf.h"

/* ---- pointer table: open addressing, linear probing ------------------- */

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

uint64_t
probe__stack_hash(uint8_t kind, const uint64_t *f, size_t n)
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
	uint64_t h = probe__stack_hash(kind, f, n);
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
