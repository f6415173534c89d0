/*
 * analysis/heapwhy.c: one shortest reference chain from a GC root to an
 * object of an allocation site, in one heap dump (heapdiff --why).  Unlike
 * the digests of heapdump.c this needs the whole graph: memory grows with
 * the dump's objects and references.
 */
#include "analysis/analysis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "analysis/analysis_int.h"

enum { WF_ROOT = 1, WF_TARGET = 2 };

struct why_acc {
	const char *buf;	/* the whole dump */
	const char *file;	/* site wanted (unescaped) */
	size_t file_len;
	int64_t line, after, upto;
	uint64_t *addr, *off, *es;	/* per node: address, line offset,
					 * first edge */
	uint8_t *flag;
	size_t n, cap;
	uint64_t *edge;		/* referenced addresses */
	size_t ne, ecap;
	struct hd_tab cls;	/* [addr] -> [offset of the name << 16 |
				 * kind] */
	uint64_t candidates, objects;
	bool oom;
};

/* Does the escaped file span name `want` (whole, or a /-suffix)? */
static bool
file_matches(const char *raw, size_t n, const char *want, size_t wl)
{
	char *u = NULL;
	const char *s = raw;
	bool ok;

	if (memchr(raw, '\\', n)) {
		u = ana__hd_json_unescape(raw, n);
		if (!u)
			return false;
		s = u;
		n = strlen(u);
	}
	ok = n == wl ? !memcmp(s, want, wl)
		     : n > wl && s[n - wl - 1] == '/' &&
		       !memcmp(s + n - wl, want, wl);
	free(u);
	return ok;
}

/* Room for one more node in every per-node array. */
static bool
why_grow(struct why_acc *w)
{
	size_t c = w->cap ? w->cap * 2 : 4096;
	void *p;

	if (w->n < w->cap)
		return true;
	if (!(p = realloc(w->addr, c * sizeof(*w->addr))))
		return false;
	w->addr = p;
	if (!(p = realloc(w->off, c * sizeof(*w->off))))
		return false;
	w->off = p;
	if (!(p = realloc(w->es, (c + 1) * sizeof(*w->es))))
		return false;
	w->es = p;
	if (!(p = realloc(w->flag, c)))
		return false;
	w->flag = p;
	w->cap = c;
	return true;
}

static void
why_line(struct why_acc *w, const char *p, const char *e)
{
	struct hd_rec r;
	uint8_t flag = 0;
	const char *q, *re;

	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (skip_ws(p, e) == e || ana__hd_parse(p, e, &r, true) ||
	    !(r.have & HD_TYPE))
		return;
	if (span_is(r.type, r.type_len, "ROOT")) {
		flag = WF_ROOT;
		r.addr = 0;
	} else {
		w->objects++;
		if (!(r.have & HD_ADDR))
			return;	/* nobody can refer to it */
		if ((r.have & (HD_GEN | HD_FILE | HD_LINE)) ==
		    (HD_GEN | HD_FILE | HD_LINE) && r.line == w->line &&
		    r.gen > w->after && r.gen <= w->upto &&
		    file_matches(r.file, r.file_len, w->file, w->file_len)) {
			flag = WF_TARGET;
			w->candidates++;
		}
		if (span_is(r.type, r.type_len, "CLASS") ||
		    span_is(r.type, r.type_len, "MODULE")) {
			uint64_t *v = ana__hd_tab_add(&w->cls, &r.addr);

			if (!v) {
				w->oom = true;
				return;
			}
			if (r.have & HD_NAME)
				v[0] = (uint64_t)(r.name - w->buf) << 16 |
				       CN_NAME;
			else if (r.have & HD_REAL)
				v[0] = (uint64_t)(r.real - w->buf) << 16 |
				       CN_REAL;
			else
				v[0] = CN_ANON;
		}
	}
	if (!why_grow(w)) {
		w->oom = true;
		return;
	}
	w->addr[w->n] = r.addr;
	w->off[w->n] = (uint64_t)(p - w->buf);
	w->es[w->n] = w->ne;
	w->flag[w->n] = flag;
	w->n++;
	if (!(r.have & HD_REFS))
		return;
	for (q = r.refs, re = r.refs + r.refs_len; q < re;) {
		uint64_t a;
		const char *s = memchr(q, '"', (size_t)(re - q)), *t;

		if (!s)
			break;
		t = take_addr(s, re, &a);
		if (!t) {
			t = str_close(s + 1, re);
			q = t ? t + 1 : re;
			continue;
		}
		q = t;
		if (!ana__hd_grow((void **)&w->edge, &w->ecap, w->ne + 1,
			  sizeof(*w->edge))) {
			w->oom = true;
			return;
		}
		w->edge[w->ne++] = a;
	}
}

static void
why_scan(void *arg, const char *p, const char *e)
{
	struct why_acc *w = arg;

	while (p < e && !w->oom) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		const char *le = nl ? nl : e;

		why_line(w, p, le);
		p = le + 1;
	}
}

static void
why_acc_release(struct why_acc *w)
{
	free(w->addr);
	free(w->off);
	free(w->es);
	free(w->flag);
	free(w->edge);
	ana__hd_tab_release(&w->cls);
}

void
ana_hd_chain_release(struct ana_hd_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->links[i].type);
		free(c->links[i].root);
		free(c->links[i].cls);
		free(c->links[i].file);
		free(c->links[i].method);
	}
	free(c->links);
	memset(c, 0, sizeof(*c));
}

int
ana_hd_site_parse(const char *s, char **file, int64_t *line)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long long v;

	if (!colon || colon == s || !colon[1])
		return -LP_EINVAL;
	errno = 0;
	v = strtoll(colon + 1, &end, 10);
	if (errno || *end || v < 0)
		return -LP_EINVAL;
	*file = strndup(s, (size_t)(colon - s));
	if (!*file)
		return -LP_ENOMEM;
	*line = v;
	return 0;
}

/* Fill one link from the line of node i. */
static int
why_link(struct why_acc *acc, unsigned nacc, const char *buf, size_t len,
	 uint64_t off, struct ana_hd_link *l)
{
	const char *p = buf + off, *e = memchr(p, '\n', len - off);
	struct hd_rec r;

	if (!e)
		e = buf + len;
	memset(l, 0, sizeof(*l));
	l->line = l->gen = -1;
	if (ana__hd_parse(p, e, &r, false))
		return -1;	/* it parsed during the scan */
	l->type = ana__hd_json_unescape(r.type, r.type_len);
	if (!l->type)
		return -1;
	if (span_is(r.type, r.type_len, "ROOT")) {
		l->root = (r.have & HD_ROOT) ?
			  ana__hd_json_unescape(r.root, r.root_len) :
			  strdup("");
		return l->root ? 0 : -1;
	}
	l->address = r.addr;
	if (r.have & HD_CLASS) {
		for (unsigned i = 0; i < nacc && !l->cls; i++) {
			uint64_t *v = ana__hd_tab_find(&acc[i].cls, &r.cls);
			const char *cp, *ce;

			if (!v)
				continue;
			if ((v[0] & 0xffff) == CN_ANON) {
				l->cls = strdup("(anonymous)");
				break;
			}
			/* the name's span: re-read its string */
			cp = buf + (v[0] >> 16);
			ce = str_close(cp, buf + len);
			l->cls = ana__hd_json_unescape(cp, ce ?
						       (size_t)(ce - cp) : 0);
		}
		if (!l->cls)
			l->cls = strdup("(unknown)");
		if (!l->cls)
			return -1;
	}
	if (r.have & HD_FILE) {
		l->file = ana__hd_json_unescape(r.file, r.file_len);
		if (!l->file)
			return -1;
	}
	if (r.have & HD_METHOD) {
		l->method = ana__hd_json_unescape(r.method, r.method_len);
		if (!l->method)
			return -1;
	}
	if (r.have & HD_LINE)
		l->line = r.line;
	if (r.have & HD_GEN)
		l->gen = r.gen;
	return 0;
}

/*
 * drop: buf is our own read-only mapping, whose pages may be dropped once
 * scanned (the few lines of the chain are read again from the page cache).
 */
static int
why_run(const char *buf, size_t len, const char *file, int64_t line,
	int64_t after_gen, int64_t upto_gen, unsigned nthreads, bool drop,
	struct ana_hd_chain *out, struct lp_err *err)
{
	struct why_acc acc[HD_MAX_THREADS];
	struct scan_job jobs[HD_MAX_THREADS];
	size_t cut[HD_MAX_THREADS + 1], n = 0, ne = 0, nslots, head, tail;
	uint32_t *slot = NULL, *parent = NULL, *queue = NULL, found = HD_NONE;
	struct why_acc *w;
	unsigned nt;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	memset(acc, 0, sizeof(acc));
	nt = ana__hd_pick_threads(nthreads, len);
	ana__hd_split_lines(buf, len, nt, cut);
	for (unsigned i = 0; i < nt; i++) {
		acc[i].buf = buf;
		acc[i].file = file;
		acc[i].file_len = strlen(file);
		acc[i].line = line;
		acc[i].after = after_gen;
		acc[i].upto = upto_gen;
		if (ana__hd_tab_init(&acc[i].cls, 1, 1) < 0) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			goto out;
		}
		jobs[i].fn = why_scan;
		jobs[i].acc = &acc[i];
		jobs[i].p = buf + cut[i];
		jobs[i].e = buf + cut[i + 1];
		jobs[i].base = buf;
		jobs[i].drop = drop;
	}
	ana__hd_run_jobs(jobs, nt);
	/* one graph: append the other chunks to the first */
	w = &acc[0];
	for (unsigned i = 0; i < nt; i++) {
		if (acc[i].oom) {
			rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of "
					"memory for the reference graph");
			goto out;
		}
		out->candidates += acc[i].candidates;
		out->objects += acc[i].objects;
		n += acc[i].n;
		ne += acc[i].ne;
	}
	if (!n || !out->candidates)
		goto out;
	if (n >= HD_NONE) {
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: too many objects");
		goto out;
	}
	{
		uint64_t *addr = realloc(w->addr, n * sizeof(*addr));
		uint64_t *off = addr ? realloc(w->off, n * sizeof(*off)) : NULL;
		uint64_t *es = off ? realloc(w->es, (n + 1) * sizeof(*es))
				   : NULL;
		uint8_t *flag = es ? realloc(w->flag, n) : NULL;
		uint64_t *edge = flag ? realloc(w->edge, (ne ? ne : 1) *
						sizeof(*edge)) : NULL;

		if (addr)
			w->addr = addr;
		if (off)
			w->off = off;
		if (es)
			w->es = es;
		if (flag)
			w->flag = flag;
		if (!edge) {
			rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of "
					"memory for the reference graph");
			goto out;
		}
		w->edge = edge;
		for (unsigned i = 1; i < nt; i++) {
			struct why_acc *o = &acc[i];

			memcpy(w->addr + w->n, o->addr, o->n * sizeof(*addr));
			memcpy(w->off + w->n, o->off, o->n * sizeof(*off));
			memcpy(w->flag + w->n, o->flag, o->n);
			for (size_t j = 0; j < o->n; j++)
				w->es[w->n + j] = o->es[j] + w->ne;
			memcpy(w->edge + w->ne, o->edge, o->ne * sizeof(*edge));
			w->n += o->n;
			w->ne += o->ne;
		}
		w->es[w->n] = w->ne;
	}
	/* address -> node */
	for (nslots = 64; nslots < 2 * n; nslots *= 2)
		;
	slot = calloc(nslots, sizeof(*slot));
	parent = malloc(n * sizeof(*parent));
	queue = malloc(n * sizeof(*queue));
	if (!slot || !parent || !queue) {
		rc = lp_err_set(err, LP_ENOMEM, "heap dump: out of memory "
				"for the reference graph");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (w->flag[i] & WF_ROOT)
			continue;
		j = hd_mix(0, w->addr[i]) & (nslots - 1);
		while (slot[j] && w->addr[slot[j] - 1] != w->addr[i])
			j = (j + 1) & (nslots - 1);
		if (!slot[j])
			slot[j] = (uint32_t)i + 1;
	}
	/* breadth first from every root: the chain found is a shortest */
	memset(parent, 0xff, n * sizeof(*parent));
	head = tail = 0;
	for (size_t i = 0; i < n; i++)
		if (w->flag[i] & WF_ROOT) {
			parent[i] = (uint32_t)i;
			queue[tail++] = (uint32_t)i;
		}
	while (head < tail && found == HD_NONE) {
		uint32_t u = queue[head++];

		for (uint64_t e = w->es[u]; e < w->es[u + 1]; e++) {
			size_t j = hd_mix(0, w->edge[e]) & (nslots - 1);
			uint32_t v;

			while (slot[j] && w->addr[slot[j] - 1] != w->edge[e])
				j = (j + 1) & (nslots - 1);
			if (!slot[j])
				continue;
			v = slot[j] - 1;
			if (parent[v] != HD_NONE)
				continue;
			parent[v] = u;
			if (w->flag[v] & WF_TARGET) {
				found = v;
				break;
			}
			queue[tail++] = v;
		}
	}
	if (found == HD_NONE)
		goto out;
	{
		size_t depth = 1;

		for (uint32_t v = found; parent[v] != v; v = parent[v])
			depth++;
		out->links = calloc(depth, sizeof(*out->links));
		if (!out->links) {
			rc = lp_err_set(err, LP_ENOMEM,
					"heap dump: out of memory");
			goto out;
		}
		out->n = depth;
		for (uint32_t v = found, k = (uint32_t)depth;; v = parent[v]) {
			if (why_link(acc, nt, buf, len, w->off[v],
				     &out->links[--k]) < 0) {
				rc = lp_err_set(err, LP_ENOMEM,
						"heap dump: out of memory");
				goto out;
			}
			if (parent[v] == v)
				break;
		}
	}
out:
	if (rc)
		ana_hd_chain_release(out);
	free(slot);
	free(parent);
	free(queue);
	for (unsigned i = 0; i < nt; i++)
		why_acc_release(&acc[i]);
	return rc;
}

int
ana_hd_why_buf(const char *buf, size_t len, const char *file, int64_t line,
	       int64_t after_gen, int64_t upto_gen, unsigned nthreads,
	       struct ana_hd_chain *out, struct lp_err *err)
{
	return why_run(buf, len, file, line, after_gen, upto_gen, nthreads,
		       false, out, err);
}

int
ana_hd_why_file(const char *path, const char *file, int64_t line,
		int64_t after_gen, int64_t upto_gen, unsigned nthreads,
		struct ana_hd_chain *out, struct lp_err *err)
{
	struct hd_input in;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = ana__hd_input_open(path, &in, err);
	if (rc < 0)
		return rc;
	if (!in.mapped && in.fd >= 0) {
		struct stat st;

		if (fstat(in.fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size == 0) {
			ana__hd_input_close(&in);
			return 0;	/* empty: no chain */
		}
		ana__hd_input_close(&in);
		return lp_err_set(err, LP_EIO, "read '%s': the reference "
				  "graph needs a regular file (not a pipe)",
				  path);
	}
	rc = why_run(in.p, in.len, file, line, after_gen, upto_gen, nthreads,
		     true, out, err);
	ana__hd_input_close(&in);
	return rc;
}
