/*
 * Stack profiles in the formats that profilers' tools read.
 *
 * pprof: profile.proto (the pprof project's published schema, in
 * analysis/profile.proto) encoded by protobuf-c from C generated at build
 * time, gzip'd by zlib.  Strings, functions and locations are interned:
 *
 *   Sample.location_id[] --> Location (address, mapping) --> Line
 *        value[]: objects, bytes               |
 *                                              v
 *                              Function (name, file) --> string_table
 *
 * Folded stacks: "root;caller;leaf 1234\n", the input of flamegraph.pl
 * and speedscope.  The flame graph is drawn here as plain SVG: no
 * script, no font or image from outside, every name escaped.
 */
#include "analysis/analysis.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "analysis/profile.pb-c.h"
#include "common/xalloc.h"

/* ---- interning --------------------------------------------------------- */

/* Open-addressing table of keys (strings) to 1-based ids. */
struct itab {
	char **keys;		/* by id - 1 */
	size_t n, kcap;
	uint32_t *slots;	/* id, 0 = empty */
	size_t cap;		/* power of two */
};

static uint64_t
fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

static void
itab_release(struct itab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* Id of key (1-based), added when new; *added tells which. */
static uint32_t
itab_id(struct itab *t, const char *key, bool *added)
{
	size_t i;

	if (added)
		*added = false;
	if ((t->n + 1) * 10 >= t->cap * 7) {
		size_t ncap = t->cap ? t->cap * 2 : 256;
		uint32_t *ns = xcalloc(ncap, sizeof(*ns));

		for (size_t k = 0; k < t->n; k++) {
			const char *s = t->keys[k];

			for (i = fnv(s, strlen(s)) & (ncap - 1); ns[i];
			     i = (i + 1) & (ncap - 1))
				;
			ns[i] = (uint32_t)(k + 1);
		}
		free(t->slots);
		t->slots = ns;
		t->cap = ncap;
	}
	for (i = fnv(key, strlen(key)) & (t->cap - 1); t->slots[i];
	     i = (i + 1) & (t->cap - 1))
		if (!strcmp(t->keys[t->slots[i] - 1], key))
			return t->slots[i];
	t->keys = xgrow(t->keys, &t->kcap, t->n + 1, sizeof(*t->keys));
	t->keys[t->n++] = xstrdup(key);
	t->slots[i] = (uint32_t)t->n;
	if (added)
		*added = true;
	return (uint32_t)t->n;
}

/* ---- pprof ------------------------------------------------------------- */

struct pbuild {
	struct itab str;	/* string_table: id - 1 is the index */
	struct itab fn;		/* functions: "name\nfile" */
	struct itab loc;	/* locations: "addr\nmap\nfunc id\nline" */
	Perftools__Profiles__Function **fns;
	size_t fcap;
	Perftools__Profiles__Location **locs;
	size_t lcap;
};

static int64_t
str_ix(struct pbuild *b, const char *s)
{
	return (int64_t)itab_id(&b->str, s ? s : "", NULL) - 1;
}

static uint64_t
func_id(struct pbuild *b, const struct ana_prof_frame *f)
{
	char *key;
	bool added;
	uint32_t id;

	if (asprintf(&key, "%s\n%s", f->func, f->file ? f->file : "") < 0)
		abort();
	id = itab_id(&b->fn, key, &added);
	free(key);
	if (added) {
		Perftools__Profiles__Function *fn = xcalloc(1, sizeof(*fn));

		perftools__profiles__function__init(fn);
		fn->id = id;
		fn->name = str_ix(b, f->func);
		fn->system_name = fn->name;
		fn->filename = f->file ? str_ix(b, f->file) : 0;
		b->fns = xgrow(b->fns, &b->fcap, id, sizeof(*b->fns));
		b->fns[id - 1] = fn;
	}
	return id;
}

static uint64_t
loc_id(struct pbuild *b, const struct ana_prof_frame *f, size_t nmaps)
{
	uint64_t fid = func_id(b, f);
	bool mapped = f->map >= 0 && (size_t)f->map < nmaps;
	char key[96];
	bool added;
	uint32_t id;

	snprintf(key, sizeof(key), "%" PRIx64 "\n%d\n%" PRIu64 "\n%" PRId64,
		 f->addr, mapped ? f->map : -1, fid, f->line);
	id = itab_id(&b->loc, key, &added);
	if (added) {
		Perftools__Profiles__Location *l = xcalloc(1, sizeof(*l));
		Perftools__Profiles__Line *ln = xcalloc(1, sizeof(*ln));

		perftools__profiles__location__init(l);
		perftools__profiles__line__init(ln);
		l->id = id;
		l->mapping_id = mapped ? (uint64_t)f->map + 1 : 0;
		l->address = f->addr;
		ln->function_id = fid;
		ln->line = f->line;
		l->n_line = 1;
		l->line = xcalloc(1, sizeof(*l->line));
		l->line[0] = ln;
		b->locs = xgrow(b->locs, &b->lcap, id, sizeof(*b->locs));
		b->locs[id - 1] = l;
	}
	return id;
}

/* gzip (RFC 1952) of in into *out (malloc'd). */
static int
gzip_buf(const uint8_t *in, size_t len, uint8_t **out, size_t *olen,
	 struct lp_err *err)
{
	z_stream z;
	size_t cap;
	uint8_t *buf;
	int zr;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return lp_err_set(err, LP_ENOMEM, "pprof: zlib: deflateInit2 "
				  "failed");
	cap = deflateBound(&z, len) + 32;
	buf = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	zr = deflate(&z, Z_FINISH);
	*olen = cap - z.avail_out;
	deflateEnd(&z);
	if (zr != Z_STREAM_END) {
		free(buf);
		return lp_err_set(err, LP_ENOMEM, "pprof: zlib: deflate "
				  "failed (%d)", zr);
	}
	*out = buf;
	return 0;
}

/* See analysis.h. */
int
ana_prof_pprof(const struct ana_prof *p, uint8_t **out, size_t *len,
	       struct lp_err *err)
{
	Perftools__Profiles__Profile pr = PERFTOOLS__PROFILES__PROFILE__INIT;
	Perftools__Profiles__ValueType vt[2], per;
	Perftools__Profiles__ValueType *vtp[2] = { &vt[0], &vt[1] };
	Perftools__Profiles__Mapping *maps = NULL, **mapp = NULL;
	Perftools__Profiles__Sample *smp = NULL, **smpp = NULL;
	const char *kind = p->kind ? p->kind : "inuse";
	struct pbuild b;
	char name[64];
	int64_t *cmt = NULL;
	uint8_t *raw = NULL;
	size_t rlen;
	int rc;

	if (ana_pprof_load(err) < 0)
		return -LP_ENOTOOL;
	memset(&b, 0, sizeof(b));
	str_ix(&b, "");		/* string_table[0] is "" */
	for (int i = 0; i < 2; i++)
		perftools__profiles__value_type__init(&vt[i]);
	snprintf(name, sizeof(name), "%s_objects", kind);
	vt[0].type = str_ix(&b, name);
	vt[0].unit = str_ix(&b, "count");
	snprintf(name, sizeof(name), "%s_space", kind);
	vt[1].type = str_ix(&b, name);
	vt[1].unit = str_ix(&b, "bytes");
	pr.n_sample_type = 2;
	pr.sample_type = vtp;
	pr.default_sample_type = vt[1].type;

	if (p->nmaps) {
		maps = xcalloc(p->nmaps, sizeof(*maps));
		mapp = xcalloc(p->nmaps, sizeof(*mapp));
	}
	for (size_t i = 0; i < p->nmaps; i++) {
		const struct ana_prof_map *m = &p->maps[i];

		perftools__profiles__mapping__init(&maps[i]);
		maps[i].id = i + 1;
		maps[i].memory_start = m->start;
		maps[i].memory_limit = m->limit;
		maps[i].file_offset = m->offset;
		maps[i].filename = str_ix(&b, m->file);
		maps[i].build_id = m->build_id && m->build_id[0] ?
				   str_ix(&b, m->build_id) : 0;
		maps[i].has_functions = true;
		mapp[i] = &maps[i];
	}
	pr.n_mapping = p->nmaps;
	pr.mapping = mapp;

	if (p->nstacks) {
		smp = xcalloc(p->nstacks, sizeof(*smp));
		smpp = xcalloc(p->nstacks, sizeof(*smpp));
	}
	for (size_t i = 0; i < p->nstacks; i++) {
		const struct ana_prof_stack *s = &p->stacks[i];

		perftools__profiles__sample__init(&smp[i]);
		smp[i].n_location_id = s->nframes;
		smp[i].location_id = xcalloc(s->nframes ? s->nframes : 1,
					     sizeof(uint64_t));
		for (size_t j = 0; j < s->nframes; j++)
			smp[i].location_id[j] = loc_id(&b, &s->frames[j],
						       p->nmaps);
		smp[i].n_value = 2;
		smp[i].value = xcalloc(2, sizeof(int64_t));
		smp[i].value[0] = s->count;
		smp[i].value[1] = s->bytes;
		smpp[i] = &smp[i];
	}
	pr.n_sample = p->nstacks;
	pr.sample = smpp;
	pr.n_location = b.loc.n;
	pr.location = b.locs;
	pr.n_function = b.fn.n;
	pr.function = b.fns;

	perftools__profiles__value_type__init(&per);
	per.type = str_ix(&b, "allocations");
	per.unit = str_ix(&b, "count");
	pr.period_type = &per;
	pr.period = p->period > 0 ? p->period : 1;
	pr.time_nanos = p->time_ns;
	pr.duration_nanos = p->duration_ns;
	if (p->ncomments) {
		cmt = xcalloc(p->ncomments, sizeof(*cmt));
		for (size_t i = 0; i < p->ncomments; i++)
			cmt[i] = str_ix(&b, p->comments[i]);
	}
	pr.n_comment = p->ncomments;
	pr.comment = cmt;
	/* last: every string is interned by now */
	pr.n_string_table = b.str.n;
	pr.string_table = b.str.keys;

	rlen = perftools__profiles__profile__get_packed_size(&pr);
	raw = xmalloc(rlen ? rlen : 1);
	perftools__profiles__profile__pack(&pr, raw);
	rc = gzip_buf(raw, rlen, out, len, err);

	free(raw);
	free(cmt);
	for (size_t i = 0; i < p->nstacks; i++) {
		free(smp[i].location_id);
		free(smp[i].value);
	}
	free(smp);
	free(smpp);
	free(maps);
	free(mapp);
	for (size_t i = 0; i < b.loc.n; i++) {
		free(b.locs[i]->line[0]);
		free(b.locs[i]->line);
		free(b.locs[i]);
	}
	free(b.locs);
	for (size_t i = 0; i < b.fn.n; i++)
		free(b.fns[i]);
	free(b.fns);
	itab_release(&b.loc);
	itab_release(&b.fn);
	itab_release(&b.str);
	return rc;
}

/* ---- folded stacks ----------------------------------------------------- */

/* See analysis.h. */
void
ana_prof_frame_name(const struct ana_prof_frame *f, char *buf, size_t len)
{
	size_t i;

	if (!len)
		return;
	snprintf(buf, len, "%s", f->func ? f->func : "?");
	for (i = 0; buf[i]; i++)
		if (buf[i] == ';' || (unsigned char)buf[i] < 0x20 ||
		    buf[i] == 0x7f)
			buf[i] = '_';
	if (!i)
		snprintf(buf, len, "?");
}

/* See analysis.h. */
int
ana_prof_folded(const struct ana_prof *p, FILE *fp)
{
	char name[1024];

	for (size_t i = 0; i < p->nstacks; i++) {
		const struct ana_prof_stack *s = &p->stacks[i];

		if (!s->nframes)
			continue;
		for (size_t j = s->nframes; j-- > 0;) {
			ana_prof_frame_name(&s->frames[j], name, sizeof(name));
			fputs(name, fp);
			if (j)
				fputc(';', fp);
		}
		fprintf(fp, " %" PRId64 "\n", s->bytes);
	}
	return ferror(fp) ? -LP_EIO : 0;
}

/* ---- HTML/XML escaping ------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/* See analysis.h. */
void
ana_html_escape(FILE *fp, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");

	while (*s) {
		size_t n;

		switch (*s) {
		case '&':
			fputs("&amp;", fp);
			break;
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			if ((*s < 0x20 && *s != '\t' && *s != '\n') ||
			    *s == 0x7f) {
				fputs("\xef\xbf\xbd", fp);
				break;
			}
			n = utf8_len(s);
			if (!n) {
				fputs("\xef\xbf\xbd", fp);
				break;
			}
			fwrite(s, 1, n, fp);
			s += n;
			continue;
		}
		s++;
	}
}

/* ---- flame graph ------------------------------------------------------- */

struct fnode {
	char *name;
	int64_t bytes;
	struct fnode *kids;	/* first child */
	struct fnode *next;	/* next sibling */
};

static struct fnode *
fnode_child(struct fnode *n, const char *name)
{
	struct fnode **pp = &n->kids;

	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return *pp;
	*pp = xcalloc(1, sizeof(**pp));
	(*pp)->name = xstrdup(name);
	return *pp;
}

static void
fnode_free(struct fnode *n)
{
	while (n) {
		struct fnode *next = n->next;

		fnode_free(n->kids);
		free(n->name);
		free(n);
		n = next;
	}
}

static int
fnode_depth(const struct fnode *n)
{
	int d = 0;

	for (const struct fnode *k = n->kids; k; k = k->next) {
		int kd = fnode_depth(k);

		if (kd > d)
			d = kd;
	}
	return d + 1;
}

/* Widest first, so the biggest path starts at the left. */
static void
fnode_sort(struct fnode *n)
{
	struct fnode *sorted = NULL;

	while (n->kids) {
		struct fnode *k = n->kids, **pp;

		n->kids = k->next;
		for (pp = &sorted; *pp && (*pp)->bytes >= k->bytes;
		     pp = &(*pp)->next)
			;
		k->next = *pp;
		*pp = k;
	}
	n->kids = sorted;
	for (struct fnode *k = n->kids; k; k = k->next)
		fnode_sort(k);
}

#define FLAME_ROW	18
#define FLAME_CHAR	7.0	/* width of a 12px monospace character */

static void
flame_color(const char *name, char *buf, size_t len)
{
	uint64_t h = fnv(name, strlen(name));

	/* warm colours, as flame graphs of native code are drawn */
	snprintf(buf, len, "rgb(%d,%d,%d)", 205 + (int)(h % 50),
		 80 + (int)((h >> 8) % 130), 40 + (int)((h >> 16) % 50));
}

static void
flame_draw(FILE *fp, const struct fnode *n, double x, int depth,
	   int height, double scale, int64_t total)
{
	double w = (double)n->bytes * scale;
	double y = (double)(height - (depth + 1) * FLAME_ROW);
	char color[32];
	size_t fit;

	if (w < 0.5)
		return;
	flame_color(n->name, color, sizeof(color));
	fputs("<g class=\"f\"><title>", fp);
	ana_html_escape(fp, n->name);
	fprintf(fp, " (%" PRId64 " bytes, %.1f%%)</title>", n->bytes,
		total > 0 ? 100.0 * (double)n->bytes / (double)total : 0.0);
	fprintf(fp, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" "
		"height=\"%d\" rx=\"2\" fill=\"%s\"/>", x, y, w, FLAME_ROW - 1,
		color);
	fit = w > 3 * FLAME_CHAR ? (size_t)((w - 6) / FLAME_CHAR) : 0;
	if (fit >= 3) {
		size_t len = strlen(n->name);
		char *label = xstrdup(n->name);

		if (len > fit) {
			/* cut at a character boundary, then mark it */
			size_t cut = fit - 2;

			while (cut > 0 && ((unsigned char)label[cut] & 0xc0) ==
					  0x80)
				cut--;
			memcpy(label + cut, "..", 3);
		}
		fprintf(fp, "<text x=\"%.1f\" y=\"%.0f\">", x + 3,
			y + FLAME_ROW - 5);
		ana_html_escape(fp, label);
		fputs("</text>", fp);
		free(label);
	}
	fputs("</g>\n", fp);
	for (const struct fnode *k = n->kids; k; k = k->next) {
		flame_draw(fp, k, x, depth + 1, height, scale, total);
		x += (double)k->bytes * scale;
	}
}

/* See analysis.h. */
int
ana_prof_flame_svg(const struct ana_prof *p, FILE *fp, int width)
{
	struct fnode root = { .name = "all" };
	char name[1024];
	int depth, height;

	for (size_t i = 0; i < p->nstacks; i++) {
		const struct ana_prof_stack *s = &p->stacks[i];
		struct fnode *n = &root;

		if (s->bytes <= 0)
			continue;
		root.bytes += s->bytes;
		for (size_t j = s->nframes; j-- > 0;) {
			ana_prof_frame_name(&s->frames[j], name, sizeof(name));
			n = fnode_child(n, name);
			n->bytes += s->bytes;
		}
	}
	fnode_sort(&root);
	depth = fnode_depth(&root);
	height = depth * FLAME_ROW + 4;
	fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
		"class=\"flame\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"monospace\" "
		"font-size=\"12\">\n", width, height, width, height);
	fputs("<style>.f text{fill:#222;pointer-events:none}"
	      ".f:hover rect{stroke:#000;stroke-width:1}</style>\n", fp);
	if (root.bytes > 0) {
		root.name = "all";
		flame_draw(fp, &root, 0, 0, height, (double)width /
			   (double)root.bytes, root.bytes);
	}
	fputs("</svg>\n", fp);
	fnode_free(root.kids);
	return ferror(fp) ? -LP_EIO : 0;
}
