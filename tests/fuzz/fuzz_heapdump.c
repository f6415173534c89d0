/*
 * ObjectSpace.dump_all heap dumps as heapdiff reads them.  The input is
 * one to three dumps (OLD, NEW, LATER) separated by lines "---".  Each is
 * digested as heapdiff does, the first both from a buffer and streamed in
 * pieces of a size taken from the input (the two must agree), then
 * diffed by site, class or type, and a --why chain is searched in the
 * last dump for the site of its first allocation ("FILE:LINE" parsed by
 * ana_hd_site_parse from the first object that has one, else "x.rb:5").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
find_sep(const char *p, const char *end)
{
	for (const char *q = p; q + 3 <= end; ) {
		if ((q == p || q[-1] == '\n') && !memcmp(q, "---", 3) &&
		    (q + 3 == end || q[3] == '\n'))
			return q;
		q = memchr(q, '\n', (size_t)(end - q));
		if (!q)
			break;
		q++;
	}
	return NULL;
}

/* "file":"F", "line":N from the first line that has both (bounded: the
 * text is not NUL-terminated) */
static void
first_site(const char *p, size_t len, char *out, size_t outlen)
{
	const char *end = p + len;
	const char *f = memmem(p, len, "\"file\":\"", 8);
	const char *l = memmem(p, len, "\"line\":", 7);
	const char *e;
	long v = 0;

	snprintf(out, outlen, "x.rb:5");
	if (!f || !l)
		return;
	f += 8;
	for (e = f; e < end && *e != '"' && *e != '\n'; e++)
		;
	for (l += 7; l < end && *l >= '0' && *l <= '9' && v < 1000000; l++)
		v = v * 10 + (*l - '0');
	snprintf(out, outlen, "%.*s:%ld", (int)(e - f), f, v);
}

static void
same_stats(const struct ana_hd_stats *a, const struct ana_hd_stats *b)
{
	if (a->bytes != b->bytes || a->lines != b->lines ||
	    a->objects != b->objects || a->roots != b->roots ||
	    a->traced != b->traced || a->memsize != b->memsize ||
	    a->bad != b->bad || a->first_bad != b->first_bad ||
	    a->max_gen != b->max_gen)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *end = in + size;
	const char *part[3];
	size_t plen[3], n = 0, piece;
	struct ana_hd_digest *dg[3] = { 0 }, *streamed = NULL;
	struct ana_hd_diff diff;
	struct ana_hd_chain chain;
	struct lp_err err;
	char site[256], *file = NULL;
	int64_t line;
	char *copy;

	if (size < 1)
		return 0;
	piece = 1 + data[0] % 61;
	/* a copy of exact size: the parser must not read past the end */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	in = copy;
	end = copy + size;
	while (n < 3) {
		const char *sep = n < 2 ? find_sep(in, end) : NULL;

		part[n] = in;
		plen[n] = (size_t)((sep ? sep : end) - in);
		n++;
		if (!sep)
			break;
		in = sep + 3 < end ? sep + 4 : end;
	}
	lp_err_clear(&err);
	for (size_t i = 0; i < n; i++) {
		dg[i] = ana_hd_digest_new(i == 0 ? ANA_HD_NO_SITES :
			ana_hd_digest_stats(dg[0])->max_gen);
		if (!dg[i])
			goto out;
		/* grown objects (the top cut from the input's first byte) */
		if (n >= 2 && (i ? ana_hd_digest_follow(dg[i], dg[0],
				i == 2 ? dg[1] : NULL, i == n - 1,
				data[0] % 4) :
				ana_hd_digest_keep_sizes(dg[0])) < 0)
			goto out;
		if (ana_hd_digest_buf(dg[i], part[i], plen[i], 1, &err) < 0)
			goto out;
	}
	/* streamed in pieces: the same figures */
	streamed = ana_hd_digest_new(ANA_HD_NO_SITES);
	if (!streamed)
		goto out;
	for (size_t o = 0; o < plen[0]; o += piece)
		if (ana_hd_digest_feed(streamed, part[0] + o,
				       plen[0] - o < piece ? plen[0] - o : piece,
				       &err) < 0)
			goto out;
	if (ana_hd_digest_end(streamed, &err) < 0)
		goto out;
	same_stats(ana_hd_digest_stats(dg[0]), ana_hd_digest_stats(streamed));

	memset(&diff, 0, sizeof(diff));
	if (ana_hd_diff_compute(dg, n, (enum ana_hd_by)(data[0] % 3), &diff,
				&err) == 0) {
		first_site(part[n - 1], plen[n - 1], site, sizeof(site));
		if (ana_hd_site_parse(site, &file, &line) == 0) {
			memset(&chain, 0, sizeof(chain));
			if (ana_hd_why_buf(part[n - 1], plen[n - 1], file,
					   line, diff.after_gen, diff.upto_gen,
					   1, &chain, &err) == 0)
				ana_hd_chain_release(&chain);
			free(file);
		}
		ana_hd_diff_release(&diff);
	}
out:
	for (size_t i = 0; i < 3; i++)
		ana_hd_digest_free(dg[i]);
	ana_hd_digest_free(streamed);
	free(copy);
	return 0;
}
