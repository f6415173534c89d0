/*
 * Growth across a series of heap dumps (see analysis.h, heapseries.c).
 *
 * Each dump goes through the public heap-dump API: a digest that counts
 * every object with allocation info per site (sites after generation -1),
 * then ana_hd_diff_compute against an empty dump (every traced object is
 * "born after" it) for the counts per site, and the one-dump diff for the
 * counts per type and class.  Both are kept; ana_hs_finish uses the sites
 * when every dump had allocation info.  gzip'd dumps are inflated with
 * zlib and streamed into the digest.
 */
#include "analysis/analysis.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define GZ_CHUNK	(1u << 20)

struct hs_tab {
	struct ana_hs_group *g;
	size_t n, cap;
	size_t *slot;		/* index + 1; 0: empty */
	size_t nslots;
};

struct hs_priv {
	struct hs_tab site, cls;
	struct ana_hd_digest *empty;	/* ended, no objects */
	size_t cap;			/* per-group array capacity (dumps) */
};

static uint64_t
hs_hash(const char *a, const char *b, int64_t line)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *p = a ? a : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *p = b ? b : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (h ^ (uint64_t)line) * 1099511628211ull;
}

static bool
str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int
tab_rehash(struct hs_tab *t, size_t nslots, bool sites)
{
	size_t *slot = calloc(nslots, sizeof(*slot));

	if (!slot)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		const struct ana_hs_group *g = &t->g[i];
		uint64_t h = sites ? hs_hash(g->file, NULL, g->line)
				   : hs_hash(g->type, g->cls, -1);
		size_t j = h & (nslots - 1);

		while (slot[j])
			j = (j + 1) & (nslots - 1);
		slot[j] = i + 1;
	}
	free(t->slot);
	t->slot = slot;
	t->nslots = nslots;
	return 0;
}

/*
 * The group of key (file, line) for sites or (type, cls) for classes,
 * created with zero counts when new.  NULL when out of memory.
 */
static struct ana_hs_group *
tab_get(struct hs_priv *pv, struct hs_tab *t, bool sites, const char *file,
	int64_t line, const char *type, const char *cls)
{
	uint64_t h = sites ? hs_hash(file, NULL, line) : hs_hash(type, cls, -1);
	struct ana_hs_group *g;
	size_t j;

	if ((t->n + 1) * 2 > t->nslots &&
	    tab_rehash(t, t->nslots ? t->nslots * 2 : 256, sites) < 0)
		return NULL;
	for (j = h & (t->nslots - 1); t->slot[j]; j = (j + 1) & (t->nslots - 1)) {
		g = &t->g[t->slot[j] - 1];
		if (sites ? (g->line == line && str_eq(g->file, file))
			  : (str_eq(g->type, type) && str_eq(g->cls, cls)))
			return g;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct ana_hs_group *ng = realloc(t->g, cap * sizeof(*ng));

		if (!ng)
			return NULL;
		t->g = ng;
		t->cap = cap;
	}
	g = &t->g[t->n];
	memset(g, 0, sizeof(*g));
	g->line = sites ? line : -1;
	g->count = calloc(pv->cap, sizeof(*g->count));
	g->bytes = calloc(pv->cap, sizeof(*g->bytes));
	g->file = sites && file ? strdup(file) : NULL;
	g->type = type ? strdup(type) : NULL;
	g->cls = cls ? strdup(cls) : NULL;
	if (!g->count || !g->bytes || (sites && file && !g->file) ||
	    (type && !g->type) || (cls && !g->cls)) {
		free(g->count);
		free(g->bytes);
		free(g->file);
		free(g->type);
		free(g->cls);
		return NULL;
	}
	t->slot[j] = ++t->n;
	return g;
}

static void
tab_release(struct hs_tab *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->g[i].file);
		free(t->g[i].type);
		free(t->g[i].cls);
		free(t->g[i].count);
		free(t->g[i].bytes);
	}
	free(t->g);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

/* Room for one more dump in every per-dump array. */
static int
grow_dumps(struct ana_hs *s, struct hs_priv *pv)
{
	struct hs_tab *tabs[2] = { &pv->site, &pv->cls };
	size_t cap;
	void *p;

	if (s->ndumps < pv->cap)
		return 0;
	cap = pv->cap ? pv->cap * 2 : 8;
	if (!(p = realloc(s->objects, cap * sizeof(*s->objects))))
		return -1;
	s->objects = p;
	if (!(p = realloc(s->traced, cap * sizeof(*s->traced))))
		return -1;
	s->traced = p;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < tabs[k]->n; i++) {
			struct ana_hs_group *g = &tabs[k]->g[i];

			if (!(p = realloc(g->count, cap * sizeof(*g->count))))
				return -1;
			g->count = p;
			if (!(p = realloc(g->bytes, cap * sizeof(*g->bytes))))
				return -1;
			g->bytes = p;
			memset(g->count + pv->cap, 0,
			       (cap - pv->cap) * sizeof(*g->count));
			memset(g->bytes + pv->cap, 0,
			       (cap - pv->cap) * sizeof(*g->bytes));
		}
	pv->cap = cap;
	return 0;
}

int
ana_hs_init(struct ana_hs *s, struct lp_err *err)
{
	struct hs_priv *pv;

	memset(s, 0, sizeof(*s));
	pv = calloc(1, sizeof(*pv));
	if (!pv)
		return lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
	pv->empty = ana_hd_digest_new(ANA_HD_NO_SITES);
	if (!pv->empty || ana_hd_digest_end(pv->empty, err) < 0) {
		ana_hd_digest_free(pv->empty);
		free(pv);
		return lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
	}
	s->priv = pv;
	return 0;
}

void
ana_hs_release(struct ana_hs *s)
{
	struct hs_priv *pv = s->priv;

	if (pv) {
		tab_release(&pv->site);
		tab_release(&pv->cls);
		ana_hd_digest_free(pv->empty);
		free(pv);
	}
	for (size_t i = 0; i < s->ngroups; i++) {
		free(s->groups[i].file);
		free(s->groups[i].type);
		free(s->groups[i].cls);
		free(s->groups[i].count);
		free(s->groups[i].bytes);
	}
	free(s->groups);
	free(s->objects);
	free(s->traced);
	memset(s, 0, sizeof(*s));
}

/* Stream a gzip'd dump into the digest. */
static int
read_gz(struct ana_hd_digest *d, const char *path, struct lp_err *err)
{
	char *buf;
	gzFile gz;
	int n, rc = 0, zerr;

	buf = malloc(GZ_CHUNK);
	if (!buf)
		return lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
	gz = gzopen(path, "rb");
	if (!gz) {
		free(buf);
		return lp_err_sys(err, LP_EIO, "cannot read '%s'", path);
	}
	while ((n = gzread(gz, buf, GZ_CHUNK)) > 0) {
		rc = ana_hd_digest_feed(d, buf, (size_t)n, err);
		if (rc < 0)
			break;
	}
	/* a truncated stream ends with n == 0 and Z_BUF_ERROR */
	if (rc == 0 && (n < 0 || (gzerror(gz, &zerr), zerr != Z_OK))) {
		const char *msg = gzerror(gz, &zerr);
		size_t pl = strlen(path);

		/* zlib puts the path in front of its message */
		if (!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2))
			msg += pl + 2;
		if (zerr == Z_ERRNO)
			rc = lp_err_sys(err, LP_EIO, "reading '%s'", path);
		else
			rc = lp_err_set(err, LP_EIO, "reading '%s': gzip "
					"data: %s", path, msg);
	}
	gzclose(gz);
	free(buf);
	if (rc == 0)
		rc = ana_hd_digest_end(d, err);
	return rc;
}

/* gzip magic at the start of the file? */
static int
is_gzip(const char *path, bool *gz, struct lp_err *err)
{
	unsigned char m[2];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return lp_err_sys(err, LP_EIO, "cannot read '%s'", path);
	n = read(fd, m, 2);
	close(fd);
	*gz = n == 2 && m[0] == 0x1f && m[1] == 0x8b;
	return 0;
}

static int
add_rows(struct ana_hs *s, struct hs_priv *pv, const struct ana_hd_diff *df,
	 bool sites)
{
	size_t k = s->ndumps;

	for (size_t i = 0; i < df->nrows; i++) {
		const struct ana_hd_row *r = &df->rows[i];
		struct ana_hs_group *g;

		g = tab_get(pv, sites ? &pv->site : &pv->cls, sites, r->file,
			    r->line, r->type, r->cls);
		if (!g)
			return -1;
		/* a site's representative type and class: its largest row */
		if (sites && r->count > g->count[k] && r->count > 0 &&
		    !str_eq(g->type, r->type)) {
			char *t = r->type ? strdup(r->type) : NULL;
			char *c = r->cls ? strdup(r->cls) : NULL;

			if ((r->type && !t) || (r->cls && !c)) {
				free(t);
				free(c);
				return -1;
			}
			free(g->type);
			free(g->cls);
			g->type = t;
			g->cls = c;
		}
		g->count[k] += r->count;
		g->bytes[k] += r->bytes;
	}
	return 0;
}

int
ana_hs_add_file(struct ana_hs *s, const char *path, unsigned nthreads,
		struct lp_err *err)
{
	struct hs_priv *pv = s->priv;
	struct ana_hd_digest *d, *two[2];
	struct ana_hd_diff df;
	const struct ana_hd_stats *st;
	bool gz = false;
	int rc;

	if (grow_dumps(s, pv) < 0)
		return lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
	/* every traced object counted per site: sites after generation -1 */
	d = ana_hd_digest_new(-1);
	if (!d)
		return lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
	rc = is_gzip(path, &gz, err);
	if (rc == 0)
		rc = gz ? read_gz(d, path, err)
			: ana_hd_digest_file(d, path, nthreads, err);
	if (rc < 0)
		goto out;
	st = ana_hd_digest_stats(d);
	s->objects[s->ndumps] = st->objects;
	s->traced[s->ndumps] = st->traced;
	/* per type and class: the one-dump diff */
	rc = ana_hd_diff_compute(&d, 1, ANA_HD_BY_SITE, &df, err);
	if (rc < 0)
		goto out;
	rc = add_rows(s, pv, &df, false);
	ana_hd_diff_release(&df);
	if (rc < 0)
		goto oom;
	/* per site: every traced object is born after an empty dump */
	if (st->traced) {
		two[0] = pv->empty;
		two[1] = d;
		rc = ana_hd_diff_compute(two, 2, ANA_HD_BY_SITE, &df, err);
		if (rc < 0)
			goto out;
		rc = df.method == ANA_HD_SITES ? add_rows(s, pv, &df, true) : 0;
		ana_hd_diff_release(&df);
		if (rc < 0)
			goto oom;
	}
	s->ndumps++;
	goto out;
oom:
	rc = lp_err_set(err, LP_ENOMEM, "heap series: out of memory");
out:
	ana_hd_digest_free(d);
	return rc;
}

static int
cmp_group(const void *pa, const void *pb)
{
	const struct ana_hs_group *a = pa, *b = pb;

	if (a->every != b->every)
		return a->every ? -1 : 1;
	if (a->per_interval != b->per_interval)
		return a->per_interval > b->per_interval ? -1 : 1;
	if (a->grew != b->grew)
		return a->grew > b->grew ? -1 : 1;
	if (a->file && b->file && strcmp(a->file, b->file))
		return strcmp(a->file, b->file);
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->type && b->type && strcmp(a->type, b->type))
		return strcmp(a->type, b->type);
	if (a->cls && b->cls)
		return strcmp(a->cls, b->cls);
	return 0;
}

int
ana_hs_finish(struct ana_hs *s, struct lp_err *err)
{
	struct hs_priv *pv = s->priv;
	struct hs_tab *t;
	bool traced = s->ndumps > 0;
	size_t n = s->ndumps;

	(void)err;
	for (size_t i = 0; i < n; i++)
		if (!s->traced[i])
			traced = false;
	s->method = traced ? ANA_HD_SITES : ANA_HD_CLASSES;
	t = traced ? &pv->site : &pv->cls;
	for (size_t i = 0; i < t->n; i++) {
		struct ana_hs_group *g = &t->g[i];

		g->grew = 0;
		for (size_t k = 0; k + 1 < n; k++)
			if (g->count[k + 1] > g->count[k])
				g->grew++;
		g->every = n >= 2 && g->grew == n - 1;
		g->per_interval = n >= 2 ? ((double)g->count[n - 1] -
					    (double)g->count[0]) /
					   (double)(n - 1) : 0;
	}
	qsort(t->g, t->n, sizeof(*t->g), cmp_group);
	/* hand the chosen table's groups over; the other is freed */
	s->groups = t->g;
	s->ngroups = t->n;
	t->g = NULL;
	t->n = t->cap = 0;
	tab_release(&pv->site);
	tab_release(&pv->cls);
	ana_hd_digest_free(pv->empty);
	free(pv);
	s->priv = NULL;
	return 0;
}
