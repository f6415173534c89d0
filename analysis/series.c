/*
 * Watch time series: one row per process per sample, written as CSV (with
 * a header gnuplot reads as is) or JSON lines, loaded back for plots and
 * growth summaries.  Loading tolerates hostile input: a bad line is
 * skipped and counted, never trusted.
 */
#include "analysis/analysis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/util.h"
#include "common/xalloc.h"

/* Column order of both formats; the CSV header lists the same names.
 * The GC.stat columns come last, after event (watch --gc-stat). */
static const char *const metric_names[ANA_NALLMETRICS] = {
	"rss", "pss", "uss", "heap_rss", "heap_size", "arena_rss",
	"anon_rss", "swap",
	"live_slots", "heap_pages", "malloc_increase", "gc_count",
	"major_gc_count", "allocated_objects", "freed_objects",
};

#define CSV_COLUMNS \
	"time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss," \
	"swap,event"
#define CSV_GC_COLUMNS \
	",live_slots,heap_pages,malloc_increase,gc_count,major_gc_count," \
	"allocated_objects,freed_objects"

static const char csv_header[] = CSV_COLUMNS "\n";
static const char csv_header_gc[] = CSV_COLUMNS CSV_GC_COLUMNS "\n";

/* Events a row may carry; rows point at these, never at file text. */
static const char *const event_names[] = { "exit", "noaccess", "new" };

#define MAX_LINE	65536	/* longer lines are not ours: bad row */

static const char *
event_intern(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(event_names) / sizeof(event_names[0]);
	     i++)
		if (strlen(event_names[i]) == len &&
		    !memcmp(event_names[i], s, len))
			return event_names[i];
	return NULL;
}

int
ana_metric_index(const char *name)
{
	for (int i = 0; i < ANA_NALLMETRICS; i++)
		if (!strcmp(metric_names[i], name))
			return i;
	return -1;
}

const char *
ana_metric_name(int idx)
{
	if (idx < 0 || idx >= ANA_NALLMETRICS)
		return NULL;
	return metric_names[idx];
}

bool
ana_metric_is_bytes(int idx)
{
	return idx >= 0 && idx < ANA_NMETRICS;
}

bool
ana_sample_has_metric(const struct ana_sample *s, int idx)
{
	if (idx < 0 || idx >= ANA_NALLMETRICS)
		return false;
	return idx < ANA_NMETRICS ||
	       (s->gc_known & (1u << (idx - ANA_NMETRICS)));
}

/* The field of metric idx, or NULL. */
static uint64_t *
metric_field(struct ana_sample *s, int idx)
{
	switch (idx) {
	case 0: return &s->rss;
	case 1: return &s->pss;
	case 2: return &s->uss;
	case 3: return &s->heap_rss;
	case 4: return &s->heap_size;
	case 5: return &s->arena_rss;
	case 6: return &s->anon_rss;
	case 7: return &s->swap;
	case 8: return &s->live_slots;
	case 9: return &s->heap_pages;
	case 10: return &s->malloc_increase;
	case 11: return &s->gc_count;
	case 12: return &s->major_gc_count;
	case 13: return &s->allocated_objects;
	case 14: return &s->freed_objects;
	default: return NULL;
	}
}

void
ana_sample_set_metric(struct ana_sample *s, int idx, uint64_t v)
{
	uint64_t *f = metric_field(s, idx);

	if (!f)
		return;
	*f = v;
	if (idx >= ANA_NMETRICS)
		s->gc_known |= 1u << (idx - ANA_NMETRICS);
}

uint64_t
ana_sample_metric(const struct ana_sample *s, int idx)
{
	if (!ana_sample_has_metric(s, idx))
		return 0;
	return *metric_field((struct ana_sample *)s, idx);
}

void
ana_sample_from_totals(struct ana_sample *out, const struct ana_totals *t)
{
	out->rss = t->rss;
	out->pss = t->pss;
	out->uss = t->uss;
	out->heap_rss = t->cls[ANA_MAP_HEAP].rss;
	out->heap_size = t->cls[ANA_MAP_HEAP].size;
	out->arena_rss = t->cls[ANA_MAP_ARENA].rss;
	out->anon_rss = t->cls[ANA_MAP_ANON].rss;
	out->swap = t->swap;
}

const char *
ana_csv_header(bool gc)
{
	return gc ? csv_header_gc : csv_header;
}

/* ---- writing ------------------------------------------------------- */

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), 0 if
 * it is not one (overlong, surrogate, truncated). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * A process may name itself anything (prctl PR_SET_NAME): keep valid
 * UTF-8 and printable ASCII, turn control bytes and broken sequences into
 * '?', so a row is always one line of valid text.
 */
static void
comm_clean(const char *in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strnlen(in, sizeof(((struct ana_sample *)0)->comm));
	size_t i = 0, o = 0, l;

	while (i < n && o + 1 < outlen) {
		l = utf8_len(s + i, n - i);
		if (l == 1 && (s[i] < 0x20 || s[i] == 0x7f))
			l = 0;
		if (l == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + l >= outlen)
			break;
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
}

/* Append printf output at *pos; false when it does not fit. */
static bool
put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool
put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *pos)
		return false;
	*pos += (size_t)n;
	return true;
}

static bool
put_csv_comm(char *buf, size_t len, size_t *pos, const char *comm)
{
	bool quote = strpbrk(comm, ",\"") || comm[0] == ' ' ||
		     (comm[0] && comm[strlen(comm) - 1] == ' ');

	if (!quote)
		return put(buf, len, pos, "%s", comm);
	if (!put(buf, len, pos, "\""))
		return false;
	for (const char *p = comm; *p; p++)
		if (!put(buf, len, pos, *p == '"' ? "\"\"" : "%c", *p))
			return false;
	return put(buf, len, pos, "\"");
}

static bool
put_json_str(char *buf, size_t len, size_t *pos, const char *s)
{
	if (!put(buf, len, pos, "\""))
		return false;
	for (; *s; s++) {
		bool ok;

		if (*s == '"' || *s == '\\')
			ok = put(buf, len, pos, "\\%c", *s);
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			ok = put(buf, len, pos, "\\u%04x", (unsigned char)*s);
		else
			ok = put(buf, len, pos, "%c", *s);
		if (!ok)
			return false;
	}
	return put(buf, len, pos, "\"");
}

int
ana_sample_format(const struct ana_sample *s, enum ana_format fmt, bool gc,
		  char *buf, size_t len)
{
	char ts[40], comm[sizeof(s->comm) * 2];
	size_t pos = 0;
	bool ok;

	lp_iso8601(s->wall_ns, ts, sizeof(ts));
	comm_clean(s->comm, comm, sizeof(comm));
	if (fmt == ANA_FMT_CSV) {
		ok = put(buf, len, &pos, "%s,%d,", ts, (int)s->pid) &&
		     put_csv_comm(buf, len, &pos, comm);
		for (int i = 0; ok && i < ANA_NMETRICS; i++)
			ok = put(buf, len, &pos, ",%llu", (unsigned long long)
				 ana_sample_metric(s, i));
		ok = ok && put(buf, len, &pos, ",%s",
			       s->event ? s->event : "");
		for (int i = ANA_NMETRICS; ok && gc && i < ANA_NALLMETRICS;
		     i++) {
			if (ana_sample_has_metric(s, i))
				ok = put(buf, len, &pos, ",%llu",
					 (unsigned long long)
					 ana_sample_metric(s, i));
			else
				ok = put(buf, len, &pos, ",");
		}
		ok = ok && put(buf, len, &pos, "\n");
	} else {
		ok = put(buf, len, &pos, "{\"time\":\"%s\",\"pid\":%d,"
			 "\"comm\":", ts, (int)s->pid) &&
		     put_json_str(buf, len, &pos, comm);
		for (int i = 0; ok && i < ANA_NMETRICS; i++)
			ok = put(buf, len, &pos, ",\"%s\":%llu",
				 metric_names[i], (unsigned long long)
				 ana_sample_metric(s, i));
		for (int i = ANA_NMETRICS; ok && gc && i < ANA_NALLMETRICS;
		     i++)
			if (ana_sample_has_metric(s, i))
				ok = put(buf, len, &pos, ",\"%s\":%llu",
					 metric_names[i], (unsigned long long)
					 ana_sample_metric(s, i));
		if (ok && s->event)
			ok = put(buf, len, &pos, ",\"event\":") &&
			     put_json_str(buf, len, &pos, s->event);
		ok = ok && put(buf, len, &pos, "}\n");
	}
	return ok ? (int)pos : -1;
}

/* Is line (len bytes, no newline) one of the headers watch writes? */
static bool
is_header(const char *line, size_t len, bool *gc)
{
	if (len == sizeof(csv_header) - 2 && !memcmp(line, csv_header, len)) {
		*gc = false;
		return true;
	}
	if (len == sizeof(csv_header_gc) - 2 &&
	    !memcmp(line, csv_header_gc, len)) {
		*gc = true;
		return true;
	}
	return false;
}

int
ana_series_detect(const char *line, size_t len, enum ana_format *fmt,
		  bool *gc)
{
	static const char jsonl_start[] = "{\"time\":\"";
	bool g = false;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (is_header(line, len, &g)) {
		*fmt = ANA_FMT_CSV;
	} else if (len > sizeof(jsonl_start) - 1 && line[len - 1] == '}' &&
		   !memcmp(line, jsonl_start, sizeof(jsonl_start) - 1)) {
		*fmt = ANA_FMT_JSONL;
		g = memmem(line, len, ",\"live_slots\":", 14) != NULL;
	} else {
		return -LP_EPARSE;
	}
	if (gc)
		*gc = g;
	return 0;
}

/* ---- time ---------------------------------------------------------- */

/* Exactly n digits at *p (advanced); -1 when not. */
static int
digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

/* HH:MM[:SS[.fff]] at *p; fills tm and ns. */
static int
parse_clock(const char **p, struct tm *tm, uint64_t *ns)
{
	const char *s = *p;
	uint64_t scale = 100000000;

	tm->tm_hour = digits(&s, 2);
	if (tm->tm_hour < 0 || tm->tm_hour > 23 || *s++ != ':')
		return -1;
	tm->tm_min = digits(&s, 2);
	if (tm->tm_min < 0 || tm->tm_min > 59)
		return -1;
	tm->tm_sec = 0;
	*ns = 0;
	if (*s == ':') {
		s++;
		tm->tm_sec = digits(&s, 2);
		if (tm->tm_sec < 0 || tm->tm_sec > 60)
			return -1;
		if (*s == '.' || *s == ',') {
			s++;
			if (*s < '0' || *s > '9')
				return -1;
			for (; *s >= '0' && *s <= '9'; s++) {
				*ns += (uint64_t)(*s - '0') * scale;
				scale /= 10;
			}
		}
	}
	*p = s;
	return 0;
}

static int
to_ns(time_t t, uint64_t frac, uint64_t *out)
{
	if (t < 0)
		return -LP_EINVAL;
	*out = (uint64_t)t * 1000000000ull + frac;
	return 0;
}

int
ana_parse_time(const char *s, uint64_t ref_ns, uint64_t *out_ns)
{
	struct tm tm, chk;
	uint64_t frac = 0;
	int off_sign = 0, oh, om = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) >= 4 && s[2] == ':') {
		/* Clock time on the local day of ref_ns. */
		time_t ref = (time_t)(ref_ns / 1000000000ull);

		localtime_r(&ref, &tm);
		if (parse_clock(&s, &tm, &frac) < 0 || *s)
			return -LP_EINVAL;
		tm.tm_isdst = -1;
		t = mktime(&tm);
		return t == (time_t)-1 ? -LP_EINVAL : to_ns(t, frac, out_ns);
	}
	tm.tm_year = digits(&s, 4);
	if (tm.tm_year < 1970 || *s++ != '-')
		return -LP_EINVAL;
	tm.tm_mon = digits(&s, 2);
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || *s++ != '-')
		return -LP_EINVAL;
	tm.tm_mday = digits(&s, 2);
	if (tm.tm_mday < 1 || tm.tm_mday > 31)
		return -LP_EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if (*s == 'T' || *s == ' ') {
		s++;
		if (parse_clock(&s, &tm, &frac) < 0)
			return -LP_EINVAL;
		if (*s == 'Z') {
			s++;
			off_sign = 1;
			oh = 0;
		} else if (*s == '+' || *s == '-') {
			off_sign = *s++ == '+' ? 1 : -1;
			oh = digits(&s, 2);
			if (*s == ':')
				s++;
			if (*s)
				om = digits(&s, 2);
			if (oh < 0 || oh > 23 || om < 0 || om > 59)
				return -LP_EINVAL;
		}
	}
	if (*s)
		return -LP_EINVAL;
	chk = tm;
	if (off_sign) {
		t = timegm(&tm);
		if (t == (time_t)-1)
			return -LP_EINVAL;
		t -= off_sign * (oh * 3600 + om * 60);
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (t == (time_t)-1)
			return -LP_EINVAL;
	}
	/* Reject dates the calendar does not have (Feb 30 normalises). */
	if (tm.tm_mday != chk.tm_mday || tm.tm_mon != chk.tm_mon)
		return -LP_EINVAL;
	return to_ns(t, frac, out_ns);
}

/* ---- loading ------------------------------------------------------- */

/* Strict unsigned decimal, no sign, no spaces, no overflow. */
static bool
parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool
valid_pid(uint64_t v)
{
	return v >= 1 && v <= 0x3fffffff;
}

static void
series_push(struct ana_series *s, const struct ana_sample *row)
{
	s->rows = xgrow(s->rows, &s->cap, s->n + 1, sizeof(*s->rows));
	s->rows[s->n++] = *row;
}

enum { COL_TIME = ANA_NALLMETRICS, COL_PID, COL_COMM, COL_EVENT, NCOLS };

struct csv_field {
	char *p;
	size_t len;
};

#define MAX_FIELDS	64

/*
 * Split one CSV line in place (RFC 4180 quoting, "" inside quotes).
 * Returns the number of fields, or -1 for an unterminated quote or too
 * many fields.
 */
static int
csv_split(char *line, size_t len, struct csv_field *f)
{
	size_t i = 0;
	int n = 0;

	for (;;) {
		char *out;

		if (n == MAX_FIELDS)
			return -1;
		f[n].p = out = line + i;
		if (i < len && line[i] == '"') {
			i++;
			for (;;) {
				if (i >= len)
					return -1;
				if (line[i] == '"') {
					if (i + 1 < len && line[i + 1] == '"') {
						*out++ = '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				*out++ = line[i++];
			}
			if (i < len && line[i] != ',')
				return -1;
		} else {
			while (i < len && line[i] != ',') {
				if (line[i] == '"')
					return -1;
				*out++ = line[i++];
			}
		}
		f[n].len = (size_t)(out - f[n].p);
		n++;
		if (i >= len)
			return n;
		i++;	/* the comma */
	}
}

static int
csv_column_id(const struct csv_field *f)
{
	static const char *const extra[] = { "time", "pid", "comm", "event" };
	char name[32];
	int i;

	if (f->len >= sizeof(name))
		return -1;
	memcpy(name, f->p, f->len);
	name[f->len] = '\0';
	i = ana_metric_index(name);
	if (i >= 0)
		return i;
	for (i = 0; i < 4; i++)
		if (!strcmp(extra[i], name))
			return COL_TIME + i;
	return -1;
}

/*
 * Map the columns of a header line (split in place) to column ids;
 * sets the flags for the columns seen.  Returns the number of columns
 * or -1.
 */
static int
csv_header_map(char *line, size_t len, int *colmap, bool *have_time,
	       bool *have_pid, bool *gc)
{
	struct csv_field f[MAX_FIELDS];
	int nf = csv_split(line, len, f);

	for (int i = 0; i < nf; i++) {
		colmap[i] = csv_column_id(&f[i]);
		*have_time |= colmap[i] == COL_TIME;
		*have_pid |= colmap[i] == COL_PID;
		*gc |= colmap[i] >= ANA_NMETRICS &&
		       colmap[i] < ANA_NALLMETRICS;
	}
	return nf;
}

/* Parse a field into a NUL-terminated scratch copy. */
static bool
field_str(const struct csv_field *f, char *buf, size_t len)
{
	if (f->len >= len || memchr(f->p, '\0', f->len))
		return false;
	memcpy(buf, f->p, f->len);
	buf[f->len] = '\0';
	return true;
}

/* Copy a name, cut at 31 bytes without splitting a UTF-8 sequence. */
static void
set_comm(struct ana_sample *row, const char *s, size_t len)
{
	if (len >= sizeof(row->comm)) {
		len = sizeof(row->comm) - 1;
		while (len && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(row->comm, s, len);
	row->comm[len] = '\0';
}

static bool
csv_row(char *line, size_t len, const int *colmap, int ncols,
	struct ana_sample *row)
{
	struct csv_field f[MAX_FIELDS];
	char tbuf[64];
	uint64_t v;
	int n;

	n = csv_split(line, len, f);
	if (n != ncols)
		return false;
	memset(row, 0, sizeof(*row));
	for (int i = 0; i < n; i++) {
		int c = colmap[i];

		if (c < 0)
			continue;
		if (c < ANA_NALLMETRICS) {
			/* A GC.stat value may be empty: not known then. */
			if (c >= ANA_NMETRICS && f[i].len == 0)
				continue;
			if (!parse_u64(f[i].p, f[i].len, &v))
				return false;
			ana_sample_set_metric(row, c, v);
		} else if (c == COL_TIME) {
			if (!field_str(&f[i], tbuf, sizeof(tbuf)) ||
			    ana_parse_time(tbuf, 0, &row->wall_ns) < 0)
				return false;
		} else if (c == COL_PID) {
			if (!parse_u64(f[i].p, f[i].len, &v) || !valid_pid(v))
				return false;
			row->pid = (pid_t)v;
		} else if (c == COL_COMM) {
			if (!field_str(&f[i], tbuf, sizeof(tbuf)))
				return false;
			set_comm(row, tbuf, f[i].len);
		} else if (c == COL_EVENT && f[i].len) {
			row->event = event_intern(f[i].p, f[i].len);
			if (!row->event)
				return false;
		}
	}
	return true;
}

static bool
json_u64(json_t *o, const char *key, uint64_t *out, bool required)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return !required;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static bool
jsonl_row(const char *line, size_t len, struct ana_sample *row)
{
	json_t *o, *v;
	uint64_t pid = 0, m;
	bool ok = false;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!o)
		return false;
	memset(row, 0, sizeof(*row));
	if (!json_is_object(o))
		goto out;
	v = json_object_get(o, "time");
	if (!json_is_string(v) ||
	    ana_parse_time(json_string_value(v), 0, &row->wall_ns) < 0)
		goto out;
	if (!json_u64(o, "pid", &pid, true) || !valid_pid(pid))
		goto out;
	row->pid = (pid_t)pid;
	/* Memory keys default to 0 (an exit row has none); a GC.stat key
	 * that is absent or null is not known. */
	for (int i = 0; i < ANA_NALLMETRICS; i++) {
		v = json_object_get(o, metric_names[i]);
		if (!v || (i >= ANA_NMETRICS && json_is_null(v)))
			continue;
		if (!json_u64(o, metric_names[i], &m, true))
			goto out;
		ana_sample_set_metric(row, i, m);
	}
	v = json_object_get(o, "comm");
	if (v) {
		if (!json_is_string(v))
			goto out;
		set_comm(row, json_string_value(v), json_string_length(v));
	}
	v = json_object_get(o, "event");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			goto out;
		row->event = event_intern(json_string_value(v),
					  json_string_length(v));
		if (!row->event)
			goto out;
	}
	ok = true;
out:
	json_decref(o);
	return ok;
}

int
ana_series_load(struct ana_series *s, const char *path, size_t *bad,
		struct lp_err *err)
{
	FILE *fp;
	int rc;

	memset(s, 0, sizeof(*s));
	if (bad)
		*bad = 0;
	fp = fopen(path, "re");
	if (!fp)
		return lp_err_sys(err, LP_EIO, "open '%s'", path);
	rc = ana_series_read(s, fp, path, bad, err);
	fclose(fp);
	return rc;
}

int
ana_series_read(struct ana_series *s, FILE *fp, const char *path,
		size_t *bad, struct lp_err *err)
{
	int colmap[MAX_FIELDS], ncols = 0;
	bool have_header = false, have_time = false, have_pid = false, hgc;
	struct ana_sample row;
	char *line = NULL;
	size_t cap = 0, nbad = 0;
	ssize_t len;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	while ((len = getline(&line, &cap, fp)) >= 0) {
		size_t n = (size_t)len;

		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if (n > MAX_LINE || memchr(line, '\0', n)) {
			nbad++;
			continue;
		}
		if (!have_header) {
			if (line[0] == '{') {
				s->fmt = ANA_FMT_JSONL;
				have_header = true;
			} else {
				int nf = csv_header_map(line, n, colmap,
							&have_time, &have_pid,
							&s->gc);

				if (nf <= 0 || !have_time || !have_pid) {
					rc = lp_err_set(err, LP_EPARSE,
						"'%s' is not a leakprobe "
						"watch file (no 'time,pid,"
						"...' header or JSON lines)",
						path);
					goto out;
				}
				ncols = nf;
				s->fmt = ANA_FMT_CSV;
				have_header = true;
				continue;
			}
		}
		if (s->fmt == ANA_FMT_CSV) {
			/* A repeated header of ours (files concatenated) is
			 * no row; the rows after it follow its columns. */
			if (is_header(line, n, &hgc)) {
				ncols = csv_header_map(line, n, colmap,
						       &have_time, &have_pid,
						       &s->gc);
				continue;
			}
			if (!csv_row(line, n, colmap, ncols, &row)) {
				nbad++;
				continue;
			}
		} else if (!jsonl_row(line, n, &row)) {
			nbad++;
			continue;
		} else if (row.gc_known) {
			s->gc = true;
		}
		series_push(s, &row);
	}
	if (ferror(fp))
		rc = lp_err_sys(err, LP_EIO, "read '%s'", path);
out:
	free(line);
	if (bad)
		*bad = nbad;
	if (rc < 0)
		ana_series_release(s);
	return rc;
}

void
ana_series_release(struct ana_series *s)
{
	if (!s)
		return;
	free(s->rows);
	memset(s, 0, sizeof(*s));
}

/* ---- growth -------------------------------------------------------- */

static uint64_t
heap_of(const struct ana_sample *s)
{
	return s->heap_rss + s->arena_rss + s->anon_rss;
}

void
ana_growth_from(const struct ana_sample *first,
		const struct ana_sample *last, bool exited,
		struct ana_growth_summary *out)
{
	double hours;

	memset(out, 0, sizeof(*out));
	out->pid = first->pid;
	snprintf(out->comm, sizeof(out->comm), "%s",
		 last->comm[0] ? last->comm : first->comm);
	out->first_ns = first->wall_ns;
	out->last_ns = last->wall_ns;
	out->first_rss = first->rss;
	out->last_rss = last->rss;
	out->first_heap = heap_of(first);
	out->last_heap = heap_of(last);
	out->exited = exited;
	if (last->wall_ns <= first->wall_ns + 1000000)
		return;
	hours = (double)(last->wall_ns - first->wall_ns) / 3.6e12;
	out->rss_per_hour = ((double)last->rss - (double)first->rss) / hours;
	out->heap_per_hour = ((double)out->last_heap -
			      (double)out->first_heap) / hours;
}

static int
cmp_pid_then_index(const void *a, const void *b, void *arg)
{
	const struct ana_sample *rows = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;

	if (rows[i].pid != rows[j].pid)
		return rows[i].pid < rows[j].pid ? -1 : 1;
	return i < j ? -1 : i > j;
}

struct seg {
	size_t first_idx;
	struct ana_growth_summary g;
};

static int
cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->first_idx < y->first_idx ? -1 : x->first_idx > y->first_idx;
}

size_t
ana_series_growth(const struct ana_series *s, struct ana_growth_summary **out)
{
	struct seg *segs = NULL;
	size_t *idx, nseg = 0, segcap = 0;

	*out = NULL;
	if (!s->n)
		return 0;
	/* Group rows by pid, keeping file order inside a pid. */
	idx = xmalloc(s->n * sizeof(*idx));
	for (size_t i = 0; i < s->n; i++)
		idx[i] = i;
	qsort_r(idx, s->n, sizeof(*idx), cmp_pid_then_index, s->rows);
	for (size_t i = 0; i < s->n;) {
		const struct ana_sample *first = NULL, *last = NULL;
		size_t first_idx = 0;
		bool exited = false;
		size_t j = i;

		/* One process: rows of this pid up to and including "exit". */
		for (; j < s->n && s->rows[idx[j]].pid == s->rows[idx[i]].pid;
		     j++) {
			const struct ana_sample *r = &s->rows[idx[j]];

			if (r->event && !strcmp(r->event, "exit")) {
				exited = true;
				j++;
				break;
			}
			if (r->event && !strcmp(r->event, "noaccess"))
				continue;
			if (!first) {
				first = r;
				first_idx = idx[j];
			}
			last = r;
		}
		if (first) {
			segs = xgrow(segs, &segcap, nseg + 1, sizeof(*segs));
			segs[nseg].first_idx = first_idx;
			ana_growth_from(first, last, exited, &segs[nseg].g);
			nseg++;
		}
		i = j;
	}
	free(idx);
	if (nseg > 1)
		qsort(segs, nseg, sizeof(*segs), cmp_seg);
	if (nseg) {
		*out = xmalloc(nseg * sizeof(**out));
		for (size_t i = 0; i < nseg; i++)
			(*out)[i] = segs[i].g;
	}
	free(segs);
	return nseg;
}
