/*
 * /proc/PID/smaps (and smaps_rollup: fuzz_rollup.c includes this file)
 * as the sampler reads it: ana_smaps_parse_buf() into two snapshots used
 * in turn (each keeps its buffer from one parse to the next), then the
 * diff against the previous snapshot.  Every pointer the
 * parser hands out must lie inside the text it was given, and a fresh
 * snapshot must parse the text to the same totals as a reused one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ana_smaps snap[2];
static bool parsed[2];
static int turn;
static FILE *devnull;

static void
inside(const struct ana_smaps *s, size_t size, const char *p, size_t len)
{
	if (len && (p < s->buf || p + len > s->buf + size))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ana_smaps *s = &snap[turn], *old = &snap[!turn], fresh;
	struct ana_map_change *ch = NULL;
	struct lp_err err;
	char *buf;
	int rc;

	if (!devnull) {
		ana_smaps_init(&snap[0]);
		ana_smaps_init(&snap[1]);
		devnull = fopen("/dev/null", "w");
	}
	lp_err_clear(&err);
	/* as the sampler does: reserve, read into the buffer, parse in
	 * place (the one spare byte after len is the parser's) */
	buf = ana_smaps_reserve(s, size + 1);
	memcpy(buf, data, size);
	parsed[turn] = false;
	rc = ana_smaps_parse_buf(s, size, &err);
	/* a fresh snapshot gives the same result as a reused one */
	ana_smaps_init(&fresh);
	if (ana_smaps_parse(&fresh, (const char *)data, size, &err) != rc ||
	    (rc == 0 && (fresh.nmaps != s->nmaps || fresh.rollup != s->rollup ||
			 memcmp(&fresh.totals, &s->totals,
				sizeof(s->totals)))))
		abort();
	ana_smaps_release(&fresh);
	if (rc < 0)
		return 0;
	for (size_t i = 0; i < s->nmaps; i++) {
		const struct ana_mapping *m = &s->maps[i];

		(void)ana_map_class_name(m->cls);
		inside(s, size, m->name, m->name_len);
		inside(s, size, m->vmflags, m->vmflags_len);
		if (m->extra_count &&
		    m->extra_first + (size_t)m->extra_count > s->nextra)
			abort();
	}
	for (size_t i = 0; i < s->nextra; i++)
		inside(s, size, s->extra[i].name, s->extra[i].name_len);
	if (parsed[!turn]) {
		size_t n = ana_smaps_diff(old, s, 0, &ch);

		ana_smaps_diff_print(devnull, ch, n);
		free(ch);
	}
	parsed[turn] = true;
	turn = !turn;
	return 0;
}
