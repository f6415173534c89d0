/*
 * Grouping the outstanding allocations of the collector into sites: by
 * allocator function and innermost K frames, largest first, with their
 * bytes, counts, distinct stacks and threads.
 */
#include "probes/malloc_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/malloc_bpf.h"

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
		h = probe__stack_hash(e->kind, st->pool + e->off, kl);
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
		s->func = r->kind < LPM_NKINDS ? probe__func_names[r->kind] :
			  "(too many distinct stacks)";
		s->nframes = kl + 1;
		s->addrs = xcalloc(kl + 1, sizeof(*s->addrs));
		s->frames = xcalloc(kl + 1, sizeof(*s->frames));
		s->funcs = xcalloc(kl + 1, sizeof(*s->funcs));
		s->mods = xcalloc(kl + 1, sizeof(*s->mods));
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
		for (size_t j = 0; s[i].funcs && j < s[i].nframes; j++)
			free(s[i].funcs[j]);
		free(s[i].frames);
		free(s[i].funcs);
		free(s[i].mods);
		free(s[i].addrs);
	}
	free(s);
}
