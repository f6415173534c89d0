/*
 * Watch files (CSV or JSON lines) as plot and report read them:
 * ana_series_read() from a memory stream (ana_series_load() opens the
 * file and calls it), the per-process growth summaries, and
 * ana_series_detect() on the first line (as watch --append does).  Every
 * row read is written back with ana_sample_format() in the file's format
 * and read again: what watch writes, plot must read, to the same rows
 * (written again, the same text).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The series as watch writes it (header for CSV, then every row). */
static char *
write_series(const struct ana_series *s, size_t *len)
{
	char *out = NULL, row[4096];
	FILE *w = open_memstream(&out, len);

	if (!w)
		abort();
	if (s->fmt == ANA_FMT_CSV)
		fputs(ana_csv_header(s->gc), w);
	for (size_t i = 0; i < s->n; i++) {
		int l = ana_sample_format(&s->rows[i], s->fmt, s->gc, row,
					  sizeof(row));

		if (l < 0 || (size_t)l >= sizeof(row))
			abort();
		fwrite(row, 1, (size_t)l, w);
	}
	fclose(w);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ana_series s, again;
	struct ana_growth_summary *g = NULL;
	struct lp_err err;
	const uint8_t *nl = memchr(data, '\n', size);
	enum ana_format fmt;
	bool gc;
	char *out = NULL;
	size_t outlen = 0, bad = 0, n;
	FILE *fp;

	(void)ana_series_detect((const char *)data,
				nl ? (size_t)(nl - data) : size, &fmt, &gc);
	if (!size || !(fp = fmemopen((void *)data, size, "r")))
		return 0;
	lp_err_clear(&err);
	if (ana_series_read(&s, fp, "fuzz", &bad, &err) < 0) {
		fclose(fp);
		return 0;
	}
	fclose(fp);
	n = ana_series_growth(&s, &g);
	free(g);
	(void)n;

	out = write_series(&s, &outlen);
	if (s.n) {
		char *out2;
		size_t outlen2;

		fp = fmemopen(out, outlen, "r");
		if (!fp || ana_series_read(&again, fp, "again", &bad, &err) < 0)
			abort();
		fclose(fp);
		if (again.n != s.n || bad)
			abort();
		out2 = write_series(&again, &outlen2);
		if (outlen2 != outlen || memcmp(out, out2, outlen))
			abort();
		free(out2);
		ana_series_release(&again);
	}
	free(out);
	ana_series_release(&s);
	return 0;
}
