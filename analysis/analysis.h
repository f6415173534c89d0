#ifndef LP_ANALYSIS_H
#define LP_ANALYSIS_H

/*
 * analysis/: pure code on buffers and files it is given.  smaps parsing,
 * classification and diffing; watch time series (CSV/JSONL); growth
 * statistics and leak verdicts.  No /proc, no ptrace.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/err.h"

/* ---- smaps.c ------------------------------------------------------- */

enum ana_map_class {
	ANA_MAP_HEAP,		/* [heap]: glibc main arena (brk) */
	ANA_MAP_ARENA,		/* other glibc malloc arenas (64 MiB aligned
				 * anon + PROT_NONE tail) */
	ANA_MAP_ANON,		/* other anonymous memory (Ruby heap pages,
				 * large mmap'd mallocs, thread stacks) */
	ANA_MAP_FILE,		/* file-backed */
	ANA_MAP_STACK,		/* [stack] (main thread) */
	ANA_MAP_SPECIAL,	/* [vvar], [vdso], [vsyscall], ... */
	ANA_MAP_NCLASS
};

/* Well-known per-mapping fields, in kB as the kernel prints them. */
enum ana_field_id {
	ANA_F_SIZE,
	ANA_F_KERNELPAGESIZE,
	ANA_F_MMUPAGESIZE,
	ANA_F_RSS,
	ANA_F_PSS,
	ANA_F_PSS_DIRTY,
	ANA_F_SHARED_CLEAN,
	ANA_F_SHARED_DIRTY,
	ANA_F_PRIVATE_CLEAN,
	ANA_F_PRIVATE_DIRTY,
	ANA_F_REFERENCED,
	ANA_F_ANONYMOUS,
	ANA_F_SWAP,
	ANA_F_SWAPPSS,
	ANA_F_LOCKED,
	ANA_F_NKNOWN
};

/* A field the parser does not know by name (kept so nothing is lost). */
struct ana_extra_field {
	const char *name;	/* points into the snapshot buffer */
	uint32_t name_len;
	uint64_t value;		/* numeric value as printed (kB for sizes) */
};

struct ana_mapping {
	uint64_t start, end;	/* [start, end) */
	uint64_t offset;
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	char perms[5];		/* "rw-p" */
	bool deleted;		/* name ended in " (deleted)" */
	enum ana_map_class cls;
	const char *name;	/* NOT NUL-terminated; into snapshot buffer */
	uint32_t name_len;	/* 0 for anonymous */
	uint64_t kb[ANA_F_NKNOWN];	/* known fields, kB; 0 when absent */
	uint32_t present;	/* bit i set when field i was printed */
	const char *vmflags;	/* "rd wr mr ..." into buffer, or NULL */
	uint32_t vmflags_len;
	uint32_t extra_first;	/* index into ana_smaps.extra */
	uint32_t extra_count;
};

struct ana_class_totals {
	uint64_t size, rss, pss, private_dirty, swap;	/* bytes */
};

struct ana_totals {
	struct ana_class_totals cls[ANA_MAP_NCLASS];
	uint64_t rss, pss, uss, swap, size;	/* bytes, whole process */
};

/*
 * A parsed snapshot.  It owns one text buffer that is reused from one
 * parse to the next, so sampling repeatedly allocates nothing once warm.
 */
struct ana_smaps {
	char *buf;
	size_t len, cap;
	struct ana_mapping *maps;
	size_t nmaps, maps_cap;
	struct ana_extra_field *extra;
	size_t nextra, extra_cap;
	bool rollup;		/* parsed from smaps_rollup */
	struct ana_totals totals;	/* filled by ana_smaps_parse() */
};

void ana_smaps_init(struct ana_smaps *s);
void ana_smaps_release(struct ana_smaps *s);

/*
 * Buffer to read the file into: returns s->buf grown to at least
 * `need` bytes.  Callers read into it and then call ana_smaps_parse_buf().
 */
char *ana_smaps_reserve(struct ana_smaps *s, size_t need);

/*
 * Parse s->buf[0..len) (smaps or smaps_rollup format), classify mappings
 * and compute totals.  Tolerates unknown/missing fields and a truncated
 * last line; returns 0, or -LP_EPARSE with err filled when a header line
 * is malformed.  The buffer must have one spare byte after len.
 */
int ana_smaps_parse_buf(struct ana_smaps *s, size_t len, struct lp_err *err);
/* Convenience: copy `len` bytes of text in and parse them. */
int ana_smaps_parse(struct ana_smaps *s, const char *text, size_t len,
		    struct lp_err *err);

const char *ana_map_class_name(enum ana_map_class c);
const char *ana_field_name(enum ana_field_id f);
/* Value of a field by its smaps name (known or extra), in kB; -1 absent. */
int64_t ana_mapping_field(const struct ana_smaps *s,
			  const struct ana_mapping *m, const char *name);

enum ana_change_kind { ANA_APPEARED, ANA_VANISHED, ANA_GREW, ANA_SHRANK };

struct ana_map_change {
	enum ana_change_kind kind;
	const struct ana_mapping *old, *new;	/* one may be NULL */
	int64_t d_size, d_rss, d_private_dirty, d_swap;	/* bytes */
};

/*
 * Diff two snapshots mapping by mapping (matched on start address and
 * name).  Only changes with |delta| >= min_bytes in Size or Rss (or
 * appearance/disappearance) are returned.  *out is malloc'd (caller
 * frees); returns the count.
 */
size_t ana_smaps_diff(const struct ana_smaps *old, const struct ana_smaps *new,
		      uint64_t min_bytes, struct ana_map_change **out);
/* Print a readable diff (one line per change, sorted by |d_rss|). */
void ana_smaps_diff_print(FILE *fp, const struct ana_map_change *c, size_t n);

/* ---- series.c: watch rows ------------------------------------------ */

struct ana_sample {
	uint64_t wall_ns;	/* CLOCK_REALTIME */
	pid_t pid;
	char comm[32];
	uint64_t rss, pss, uss;		/* bytes */
	uint64_t heap_rss, heap_size;	/* [heap] */
	uint64_t arena_rss;		/* other glibc arenas */
	uint64_t anon_rss;		/* other anonymous */
	uint64_t swap;
	/* GC.stat of a Ruby process (watch --gc-stat), counts: */
	uint64_t live_slots;		/* heap_live_slots */
	uint64_t heap_pages;		/* heap_allocated_pages */
	uint64_t malloc_increase;	/* malloc_increase_bytes */
	uint64_t gc_count, major_gc_count;
	uint64_t allocated_objects;	/* total_allocated_objects */
	uint64_t freed_objects;		/* total_freed_objects */
	unsigned gc_known;	/* bit (idx - ANA_NMETRICS) per GC value set */
	const char *event;	/* NULL, "exit", "noaccess", "new" */
};

enum ana_format { ANA_FMT_CSV, ANA_FMT_JSONL };

/* Fill a sample's memory columns from parsed totals. */
void ana_sample_from_totals(struct ana_sample *out, const struct ana_totals *t);
/*
 * CSV header line (with newline); with gc, the GC.stat columns follow
 * the others: live_slots heap_pages malloc_increase gc_count
 * major_gc_count allocated_objects freed_objects.
 */
const char *ana_csv_header(bool gc);
/*
 * Format one row into buf (with newline); returns length or -1.  With
 * gc, the row has the GC.stat columns too: in CSV always (empty for a
 * value not known), in JSON lines the known ones.
 */
int ana_sample_format(const struct ana_sample *s, enum ana_format fmt,
		      bool gc, char *buf, size_t len);

/* A watch file loaded for plotting/summaries. */
struct ana_series {
	struct ana_sample *rows;
	size_t n, cap;
	enum ana_format fmt;
	bool gc;	/* GC.stat columns in the header, or in any JSON row */
};
/* Parse a watch file (CSV or JSONL, detected); rows with bad syntax are
 * skipped and counted in *bad (may be NULL). */
int ana_series_load(struct ana_series *s, const char *path, size_t *bad,
		    struct lp_err *err);
/* The same from an open stream (not closed); path names it in errors. */
int ana_series_read(struct ana_series *s, FILE *fp, const char *path,
		    size_t *bad, struct lp_err *err);
void ana_series_release(struct ana_series *s);

/*
 * Metrics usable in plot --metric.  Indices 0 .. ANA_NMETRICS-1 are the
 * memory columns, in bytes, in every row: rss pss uss heap_rss heap_size
 * arena_rss anon_rss swap.  Then ANA_NGCMETRICS GC.stat counts, known
 * only in rows of watch --gc-stat (gc_known): live_slots heap_pages
 * malloc_increase gc_count major_gc_count allocated_objects
 * freed_objects (malloc_increase is bytes but drawn as a count).
 * ana_metric_index returns -1 when unknown; ana_sample_metric 0 for an
 * unknown index or value.
 */
#define ANA_NMETRICS 8
#define ANA_NGCMETRICS 7
#define ANA_NALLMETRICS (ANA_NMETRICS + ANA_NGCMETRICS)
int ana_metric_index(const char *name);
const char *ana_metric_name(int idx);
uint64_t ana_sample_metric(const struct ana_sample *s, int idx);
/* Is idx a memory metric in bytes (plotted in MiB)? */
bool ana_metric_is_bytes(int idx);
/* Does the row carry that metric (memory: always; GC: when known)? */
bool ana_sample_has_metric(const struct ana_sample *s, int idx);
/* Set a metric; a GC one becomes known. */
void ana_sample_set_metric(struct ana_sample *s, int idx, uint64_t v);

/* Growth summary of one pid from first to last sample. */
struct ana_growth_summary {
	pid_t pid;
	char comm[32];
	uint64_t first_ns, last_ns;
	uint64_t first_rss, last_rss;
	uint64_t first_heap, last_heap;	/* heap_rss + arena_rss + anon_rss */
	double rss_per_hour;		/* bytes/hour */
	double heap_per_hour;
	bool exited;
};

/*
 * Growth of one process from its first to its last sample.  heap is
 * heap_rss + arena_rss + anon_rss; rates are bytes per hour (0 when the
 * samples are less than 1 ms apart).
 */
void ana_growth_from(const struct ana_sample *first,
		     const struct ana_sample *last, bool exited,
		     struct ana_growth_summary *out);
/*
 * One summary per process of a loaded series, in order of first
 * appearance.  An "exit" row ends a process, so a reused pid starts a new
 * summary.  *out is malloc'd (caller frees, NULL when 0); returns count.
 */
size_t ana_series_growth(const struct ana_series *s,
			 struct ana_growth_summary **out);
/*
 * Recognise the first line of an existing watch file (without newline):
 * a CSV header as watch writes it, or a JSONL row.  Sets *fmt and *gc
 * (may be NULL): the header has the GC.stat columns, or the JSON row GC
 * fields.  Returns 0 or -LP_EPARSE.
 */
int ana_series_detect(const char *line, size_t len, enum ana_format *fmt,
		      bool *gc);
/*
 * Parse a time: ISO-8601 as watch writes it (2026-11-21T12:00:00.123+0100;
 * ms, offset and seconds optional, 'T' or ' '; no offset = local time),
 * a date alone (local midnight), or "HH:MM[:SS]" meaning that local time
 * on the local day of ref_ns.  Returns 0 or -LP_EINVAL.
 */
int ana_parse_time(const char *s, uint64_t ref_ns, uint64_t *out_ns);

/* ---- steps.c: the steps file of bisect ----------------------------- */

#define ANA_MAX_STEPS 64

struct ana_step {
	char *name;		/* malloc'd */
	char *code;		/* malloc'd, NUL-terminated; may hold NULs */
	size_t len;
};

/*
 * Cut text[0..len) (NUL-terminated: text[len] is written) into steps,
 * each started by a line '# step: NAME' (blank and '#' lines may come
 * first).  file names the file in messages.  *nsteps is the count of
 * steps filled, also on error (release them).  Returns 0, or -LP_EPARSE
 * for no steps, more than ANA_MAX_STEPS, an empty or repeated name, or
 * code before the first step.
 */
int ana_steps_parse(const char *file, char *text, size_t len,
		    struct ana_step *steps, int *nsteps, struct lp_err *err);
void ana_steps_release(struct ana_step *steps, int n);

/* ---- growth.c: statistics and verdict ------------------------------ */

/* Ruby types whose bytes are measured: String, Array, Hash, Object,
 * Data (C extension objects), Struct */
#define ANA_RB_NTYPES 6

/*
 * One measured batch of `attach`: cumulative calls done and memory/GC
 * figures read after the batch's GC.start.  control=true marks a no-op
 * control batch (interleaved to cancel the worker's own drift).
 */
struct ana_batch {
	uint64_t calls;		/* calls in this batch */
	bool warmup;
	bool control;
	uint64_t heap_rss, arena_rss, anon_rss, rss;	/* bytes, after batch */
	uint64_t heap_size, arena_size, anon_size;
	int64_t live_slots;	/* GC.stat heap_live_slots after batch */
	int64_t total_allocated, total_freed;
	int64_t malloc_increase;
	int64_t gc_count, major_gc_count;
	int64_t rb_bytes;	/* bytes held by Ruby objects (slots and
				 * their buffers) after the GC; -1: not
				 * measured */
	int64_t rb_types[ANA_RB_NTYPES];	/* of it, per type (see
						 * ana_rb_type_name) */
	/* the big String/Array/Hash that grew most in this batch: object
	 * id (0: none), bytes in use before and after, class, allocation
	 * site ("" when unknown) */
	int64_t grew_id, grew_before, grew_after;
	char grew_class[64];
	char grew_site[160];
	double seconds;		/* duration of the batch */
};

enum ana_verdict_kind {
	ANA_NO_LEAK,
	ANA_NATIVE_LEAK,	/* malloc'd memory no Ruby object holds */
	ANA_RUBY_LEAK,		/* new Ruby objects retained */
	ANA_INCONCLUSIVE,
	ANA_RUBY_GROWTH		/* Ruby objects that exist grow (buffers
				 * of Arrays, Hashes, Strings) */
};

/* A leak of any kind. */
#define ANA_VERDICT_IS_LEAK(k) \
	((k) == ANA_NATIVE_LEAK || (k) == ANA_RUBY_LEAK || \
	 (k) == ANA_RUBY_GROWTH)

struct ana_estimate {
	double slope;		/* per call */
	double lo, hi;		/* 95 % interval */
	size_t n;		/* batches used */
};

struct ana_verdict {
	enum ana_verdict_kind kind;
	struct ana_estimate mem;	/* bytes/call: heap+arena+anon (net of
					 * control when controls exist); robust,
					 * or mem_mean when memory moves in
					 * recurring large steps */
	struct ana_estimate heap, arena, anon;	/* where it went */
	struct ana_estimate slots;	/* live slots/call */
	struct ana_estimate mem_mean;	/* plain mean (sum of net deltas /
					 * sum of calls): cross-check of mem */
	struct ana_estimate mem_late;	/* native over the second half of
					 * the measured batches only */
	struct ana_estimate ruby;	/* bytes/call held by Ruby objects
					 * (slots and buffers) */
	struct ana_estimate ruby_late;	/* ruby, second half only */
	struct ana_estimate native;	/* bytes/call: mem - ruby, or the
					 * plain mean when memory moves in
					 * recurring large steps */
	struct ana_estimate leak;	/* the bytes/call of the kind found
					 * (native or ruby); zero otherwise */
	double ruby_levels;		/* bytes/call: Ruby-held level after
					 * the last measured batch less before
					 * the first, over the measured calls */
	struct ana_estimate ruby_rest;	/* ruby without the measured batch
					 * that grew most */
	bool rb_measured;		/* ruby from the objects' sizes (else
					 * from live slots, 40 B each) */
	int rb_type;			/* type holding most of ruby's
					 * growth (ana_rb_type_name), -1 */
	double rb_type_bpc;		/* its growth, bytes/call */
	int64_t rb_type_before, rb_type_after;	/* its bytes around the
						 * measured batches */
	int rb_rest_type;		/* the same without the measured batch
					 * whose Ruby-held bytes grew most */
	double rb_rest_bpc;
	int64_t rb_rest_before, rb_rest_after;
	/* the one object that grew most over the measured batches (the
	 * measured batches' biggest growers, net of none): grower_id 0 when
	 * none did */
	int64_t grower_id, grower_before, grower_after;
	char grower_class[64];
	char grower_site[160];
	double leak_floor;		/* bytes/call: a leak of any kind
					 * needs its lower bound >= it */
	size_t controls;		/* control batches used (0: none) */
	double mem_floor;		/* bytes/call: no leak needs native.hi
					 * and ruby.hi below it */
	double total_growth;		/* bytes over measured batches */
	uint64_t measured_calls;
	double slot_margin;		/* slots/call: a lower bound above it
					 * is a ruby-object leak */
	uint64_t more_calls_needed;	/* for inconclusive; 0 otherwise */
	char summary[384];		/* one-line human verdict */
};

/* Verdict thresholds (see growth.c for the reasoning). */
#define ANA_VERDICT_MEM_FLOOR	16.0	/* bytes/call */
#define ANA_VERDICT_LEAK_FLOOR	4.0	/* bytes/call, without
					 * --fail-on-growth */
#define ANA_VERDICT_SLOT_MARGIN	0.01	/* live slots/call */
#define ANA_VERDICT_MIN_BATCHES	5	/* per group, to decide at all */

/*
 * Fit per-batch deltas of the measured (non-warm-up) batches and decide.
 * Deterministic (fixed bootstrap seed).  Returns 0, -LP_ENOMEM, or
 * -LP_EINVAL when there are not even two measured batches (kind is then
 * INCONCLUSIVE and summary says why).
 */
int ana_verdict_compute(const struct ana_batch *b, size_t n,
			struct ana_verdict *out);
/*
 * The same with leak_floor bytes/call (--fail-on-growth) instead of
 * ANA_VERDICT_LEAK_FLOOR: every kind of leak needs the lower bound of
 * its bytes/call at or above it.
 */
int ana_verdict_compute_floor(const struct ana_batch *b, size_t n,
			      double leak_floor, struct ana_verdict *out);
const char *ana_rb_type_name(int k);
const char *ana_verdict_name(enum ana_verdict_kind k);

/* ---- heapdump.c: ObjectSpace.dump_all heap dumps ------------------- */

/*
 * A digest is what leakprobe keeps of one heap dump (one JSON object per
 * line, as ObjectSpace.dump_all writes it), read once and never held in
 * memory: per-dump counts, the highest allocation generation, object
 * counts per type/class, and per allocation site the objects born after
 * a given generation.  Its memory grows with the number of classes and
 * allocation sites (times generations and sizes), not with objects.
 *
 * Typical use (heapdiff OLD NEW [LATER]):
 *	old = ana_hd_digest_new(ANA_HD_NO_SITES);   scan OLD
 *	after = ana_hd_digest_stats(old)->max_gen;
 *	new = ana_hd_digest_new(after);            scan NEW (and LATER)
 *	ana_hd_diff_compute((digests), n, by, &diff, err);
 * A dump is scanned from a file (mmap, several threads), from a buffer,
 * or streamed in pieces of any size (feed/end), e.g. from a pipe.
 */
struct ana_hd_digest;

/* sites_after_gen for a digest that only needs counts (the OLD dump) */
#define ANA_HD_NO_SITES INT64_MAX

struct ana_hd_stats {
	uint64_t bytes;		/* input bytes */
	uint64_t lines;		/* lines, blank ones included */
	uint64_t objects;	/* object lines (ROOT lines excluded) */
	uint64_t roots;		/* ROOT lines */
	uint64_t traced;	/* objects with allocation info (generation) */
	uint64_t memsize;	/* sum of "memsize" over objects */
	uint64_t same_gen;	/* objects whose generation equals
				 * sites_after_gen, found in the older
				 * dump by address (or, without its
				 * addresses, whose birth before or after
				 * it cannot be told) */
	uint64_t same_gen_new;	/* objects of that generation born after
				 * the older dump: their address is not in
				 * it (see ana_hd_digest_use_old) */
	uint64_t bad;		/* malformed lines, skipped */
	uint64_t first_bad;	/* 1-based line number of the first, or 0 */
	const char *first_bad_why;	/* static text, "" when none */
	int64_t max_gen;	/* highest generation; -1 when none */
};

/*
 * New empty digest.  Objects with a generation above sites_after_gen are
 * counted per allocation site (ANA_HD_NO_SITES: none).  Returns NULL
 * only when out of memory.
 */
struct ana_hd_digest *ana_hd_digest_new(int64_t sites_after_gen);
void ana_hd_digest_free(struct ana_hd_digest *d);
/*
 * Streaming: feed the dump in pieces of any size, in order, then call
 * ana_hd_digest_end().  buf is only read during the call.  Malformed
 * lines are counted, never fatal.  Return 0, or -LP_ENOMEM / -LP_EINVAL
 * (fed after end) with err filled.
 */
int ana_hd_digest_feed(struct ana_hd_digest *d, const char *buf, size_t len,
		       struct lp_err *err);
int ana_hd_digest_end(struct ana_hd_digest *d, struct lp_err *err);
/*
 * Whole dump in memory: split at line boundaries and scanned by nthreads
 * threads (0: one per CPU, at most 8).  Ends the digest.
 */
int ana_hd_digest_buf(struct ana_hd_digest *d, const char *buf, size_t len,
		      unsigned nthreads, struct lp_err *err);
/*
 * A dump file: mmap'd and scanned like ana_hd_digest_buf (pages already
 * read are dropped, so resident memory stays small); pipes and other
 * unmappable files are streamed.  -LP_EIO when it cannot be read.
 */
int ana_hd_digest_file(struct ana_hd_digest *d, const char *path,
		       unsigned nthreads, struct lp_err *err);
const struct ana_hd_stats *ana_hd_digest_stats(const struct ana_hd_digest *d);
/*
 * Before d (built for sites after OLD's highest generation) is fed: let
 * it tell the objects of OLD's highest generation from those born after
 * OLD by address.  Within one generation no GC ran and no slot was freed,
 * so such an object whose address OLD does not have is new.  old (OLD's
 * digest, ended, built with ANA_HD_NO_SITES) must outlive the scan of
 * d.  Returns 0 or -LP_EINVAL.
 */
int ana_hd_digest_use_old(struct ana_hd_digest *d,
			  const struct ana_hd_digest *old);

/*
 * Grown objects: the objects alive in every dump at one address, with the
 * same type, class and generation, whose memsize is larger in the last
 * dump than in OLD.  Before OLD is fed, ana_hd_digest_keep_sizes(old)
 * keeps every object's address and memsize (9 bytes an object); before
 * each later dump is fed, ana_hd_digest_follow(d, old, mid, last, top):
 * the middle one of three dumps with last false and mid NULL, the last
 * one with last true and mid the middle one's digest (NULL with two
 * dumps).  old (and mid) must outlive d.  The last digest keeps the top
 * objects by growth (0: all), and counts every grown object.  Without
 * allocation info an object is known by address, type and class only: a
 * slot reused by a new object of the same type and class looks the same.
 * Return 0 or -LP_EINVAL (wrong order) / -LP_ENOMEM.
 */
int ana_hd_digest_keep_sizes(struct ana_hd_digest *old);
int ana_hd_digest_follow(struct ana_hd_digest *d,
			 const struct ana_hd_digest *old,
			 const struct ana_hd_digest *mid, bool last,
			 size_t top);

/* SITE: file:line (methods, types and classes listed); METHOD: file,
 * line, method, type and class */
enum ana_hd_by { ANA_HD_BY_SITE, ANA_HD_BY_CLASS, ANA_HD_BY_TYPE,
		 ANA_HD_BY_METHOD };
enum ana_hd_method {
	ANA_HD_SITES,		/* generations + allocation sites */
	ANA_HD_CLASSES		/* no allocation info: type/class counts */
};

/* One line of the result.  Strings are UTF-8, unescaped, owned by the
 * diff.  Fields that do not apply to the grouping are NULL / -1. */
struct ana_hd_row {
	char *file;		/* by site: allocation file */
	int64_t line;		/* by site: allocation line */
	char *method;		/* by site: method ("" when none); the
				 * methods of the line, most objects
				 * first, joined by ", " */
	char *type;		/* by site or type: "STRING", ...; by site
				 * the line's types, joined the same way */
	char *cls;		/* by site or class: class name, or
				 * "(anonymous)" / "(unknown)"; by site
				 * the line's classes, joined */
	uint64_t count, bytes;	/* SITES: retained objects and their
				 * memsize (in the last dump); CLASSES:
				 * growth (see ana_hd_diff) */
	uint64_t by_shape;	/* SITES, 3 dumps: part of count found by
				 * type, class and size after the objects
				 * lost their allocation info */
	uint64_t sites;		/* SITES: sites merged into this row */
	uint64_t n_count[3], n_bytes[3];	/* CLASSES: per dump */
};

/* A grown object (see ana_hd_digest_follow); strings as in rows. */
struct ana_hd_grown {
	uint64_t address;
	char *type;		/* "ARRAY", ... */
	char *cls;		/* class name, "(anonymous)", "(unknown)" or
				 * "" (none) */
	char *file, *method;	/* NULL without allocation info */
	int64_t line, gen;	/* -1 without allocation info */
	uint64_t memsize[3];	/* in each dump, oldest first */
	uint64_t growth;	/* memsize in the last dump - in OLD */
};

struct ana_hd_diff {
	enum ana_hd_method method;
	enum ana_hd_by by;
	size_t ndumps;
	int64_t after_gen;	/* born after: OLD's highest generation */
	int64_t upto_gen;	/* 3 dumps: and no later than NEW's; else
				 * INT64_MAX */
	struct ana_hd_row *rows;	/* by bytes, then count, descending */
	size_t nrows;
	uint64_t total_count, total_bytes;	/* over all rows */
	uint64_t by_shape;	/* total of rows' by_shape */
	uint64_t candidates;	/* 3 dumps: NEW's objects born in the window */
	uint64_t lost_info;	/* growth of objects without allocation info
				 * between the last two dumps (GC.compact on
				 * Ruby 3.1 drops it for moved objects) */
	uint64_t same_gen_new;	/* NEW's objects born in OLD's newest
				 * generation after OLD, told by address,
				 * counted */
	uint64_t same_gen;	/* NEW's objects born in OLD's newest
				 * generation that cannot be told from
				 * OLD's (no addresses of OLD): not
				 * counted */
	bool grown_on;		/* the last digest followed OLD */
	struct ana_hd_grown *grown;	/* largest growth first, then by
					 * address; the top asked for */
	size_t ngrown;
	uint64_t grown_count, grown_bytes;	/* every grown object and
						 * the sum of growths */
};

/*
 * Diff n digests (1 to 3: OLD, NEW, LATER; all ended).  With allocation
 * info in NEW (method SITES): the objects of NEW born after OLD's highest
 * generation; with LATER, only those of them still alive in LATER, matched
 * as multisets on (site, generation, type, class), never on addresses.
 * Without allocation info (CLASSES): counts per type/class in each dump
 * and their growth (NEW - OLD; with LATER, min(NEW - OLD, LATER - OLD)).
 * Rows hold every group, sorted.  Returns 0, -LP_EINVAL (digest built for
 * another generation) or -LP_ENOMEM.  Release with ana_hd_diff_release.
 */
int ana_hd_diff_compute(struct ana_hd_digest *const *d, size_t n,
			enum ana_hd_by by, struct ana_hd_diff *out,
			struct lp_err *err);
void ana_hd_diff_release(struct ana_hd_diff *diff);
const char *ana_hd_by_name(enum ana_hd_by by);
/* "site", "method", "class", "type"; returns 0 or -LP_EINVAL */
int ana_hd_by_parse(const char *s, enum ana_hd_by *out);

/* One object on a reference chain (strings owned by the chain). */
struct ana_hd_link {
	uint64_t address;	/* 0 for the root */
	char *type;		/* "ROOT" for the root */
	char *root;		/* root kind ("vm", ...), root only */
	char *cls;		/* class name, NULL when none */
	char *file;		/* NULL without allocation info */
	int64_t line, gen;	/* -1 without allocation info */
	char *method;		/* NULL or "" when none */
};

struct ana_hd_chain {
	struct ana_hd_link *links;	/* links[0] is a GC root, the last
					 * one an object of the site */
	size_t n;			/* 0: no chain found */
	uint64_t candidates;	/* objects of the site in the window */
	uint64_t objects;	/* objects in the dump */
};

/*
 * Split "FILE:LINE" (at the last colon).  *file is malloc'd.  Returns 0
 * or -LP_EINVAL.
 */
int ana_hd_site_parse(const char *s, char **file, int64_t *line);
/*
 * One shortest reference chain from a GC root (ROOT lines) to an object
 * allocated at file:line (file matches whole, or as a '/'-separated
 * suffix) with a generation in (after_gen, upto_gen].  Needs the graph of
 * the whole dump: memory grows with its objects and references.  No
 * chain (out->n == 0) is not an error.  Returns 0, -LP_EIO, -LP_ENOMEM.
 */
int ana_hd_why_buf(const char *buf, size_t len, const char *file,
		   int64_t line, int64_t after_gen, int64_t upto_gen,
		   unsigned nthreads, struct ana_hd_chain *out,
		   struct lp_err *err);
int ana_hd_why_file(const char *path, const char *file, int64_t line,
		    int64_t after_gen, int64_t upto_gen, unsigned nthreads,
		    struct ana_hd_chain *out, struct lp_err *err);
void ana_hd_chain_release(struct ana_hd_chain *c);

/* ---- stacks.c: stack profiles (pprof, folded stacks, flame graph) -- */

/*
 * A set of stacks with the bytes and objects each holds, written in the
 * formats that profilers' tools read: pprof's profile.proto (gzip'd),
 * folded stacks (flamegraph.pl, speedscope) and an SVG flame graph.
 * Nothing here is owned: the caller keeps every string and array.
 */
struct ana_prof_map {
	uint64_t start, limit, offset;	/* span in the process, file offset
					 * at start */
	const char *file;		/* path as mapped */
	const char *build_id;		/* hex, NULL or "" when none */
};

struct ana_prof_frame {
	const char *func;	/* "rb_str_resize", "libfoo.so+0x1a2b", or a
				 * Ruby site's method; never NULL */
	const char *file;	/* source file, or NULL */
	int64_t line;		/* line in file; 0 when unknown */
	uint64_t addr;		/* instruction address; 0 when none */
	int map;		/* index into ana_prof.maps, -1 when none */
};

struct ana_prof_stack {
	const struct ana_prof_frame *frames;	/* leaf first */
	size_t nframes;
	int64_t bytes, count;
};

struct ana_prof {
	const struct ana_prof_stack *stacks;
	size_t nstacks;
	const struct ana_prof_map *maps;
	size_t nmaps;
	const char *kind;	/* sample type prefix: "inuse" gives
				 * inuse_objects/inuse_space */
	int64_t time_ns;	/* start, ns since the epoch; 0 unknown */
	int64_t duration_ns;
	int64_t period;		/* 1 in `period` allocations recorded */
	const char *const *comments;
	size_t ncomments;
};

/*
 * Load libprotobuf-c (dlopen, once; analysis/pbc_lib.c): the commands
 * that write pprof check it before they start, to fail early.  0, or
 * -LP_ENOTOOL naming the library and the package to install.
 */
int ana_pprof_load(struct lp_err *err);
/*
 * pprof's profile.proto, gzip'd: sample types <kind>_objects (count) and
 * <kind>_space (bytes, the default), one sample per stack, locations
 * and functions shared.  *out is malloc'd.  Returns 0, -LP_ENOMEM, or
 * -LP_ENOTOOL when libprotobuf-c is missing (ana_pprof_load).
 */
int ana_prof_pprof(const struct ana_prof *p, uint8_t **out, size_t *len,
		   struct lp_err *err);
/*
 * Folded stacks: one line per stack, frames root first joined by ';',
 * a space, the bytes.  ';' and control characters in names become
 * '_'.  Returns 0, or -LP_EIO when fp failed.
 */
int ana_prof_folded(const struct ana_prof *p, FILE *fp);
/*
 * The folded name of a frame into buf: func, with ';' and control
 * characters replaced.
 */
void ana_prof_frame_name(const struct ana_prof_frame *f, char *buf,
			 size_t len);
/*
 * An SVG flame graph (root at the bottom, width by bytes) of `width`
 * pixels, embeddable in HTML (no script, no external reference; every
 * name escaped).  Returns 0, or -LP_EIO when fp failed.
 */
int ana_prof_flame_svg(const struct ana_prof *p, FILE *fp, int width);
/* Write s with &, <, >, " and ' escaped for HTML/XML text and
 * attributes; invalid UTF-8 and control characters become U+FFFD. */
void ana_html_escape(FILE *fp, const char *s);

/* ---- chart.c: line charts as SVG ------------------------------------ */

struct ana_chart_line {
	const char *label;	/* legend text (escaped when drawn) */
	const double *x, *y;	/* n points, x ascending */
	size_t n;
};

struct ana_chart {
	const char *xlabel, *ylabel;
	bool x_time;		/* x is seconds since the epoch: ticks are
				 * UTC clock times */
	const struct ana_chart_line *lines;
	size_t nlines;
	int width, height;	/* pixels */
};

/*
 * A line chart as plain SVG, embeddable in HTML: axes with round ticks,
 * a grid, one coloured polyline per line and a legend; no script, no
 * external reference.  Returns 0, or -LP_EIO when fp failed.
 */
int ana_chart_svg(const struct ana_chart *c, FILE *fp);
/* ---- heapseries.c: growth across a series of heap dumps ------------- */

/*
 * A series of heap dumps of one process, oldest first (heapdiff
 * --series).  Each dump is read once (plain or gzip'd, told by its first
 * bytes) into a digest and reduced to object counts per group: per
 * allocation site (file:line) when every dump has allocation info, else
 * per type and class.  Memory grows with groups times dumps, not with
 * objects.
 */
struct ana_hs_group {
	char *file;		/* by site: allocation file; else NULL */
	int64_t line;		/* by site; else -1 */
	char *type, *cls;	/* by site: the type and class most objects
				 * of the site have; by class: the group */
	uint64_t *count, *bytes;	/* per dump: live objects, memsize */
	size_t grew;		/* intervals in which count rose */
	bool every;		/* it rose in every interval */
	double per_interval;	/* (last - first) / intervals */
};

struct ana_hs {
	enum ana_hd_method method;	/* SITES or CLASSES, by ana_hs_finish */
	size_t ndumps;
	uint64_t *objects, *traced;	/* per dump */
	struct ana_hs_group *groups;	/* after ana_hs_finish: growing in
					 * every interval first, then by
					 * last - first count, descending */
	size_t ngroups;
	void *priv;			/* the tables, until ana_hs_finish */
};

/* Start an empty series.  Returns 0 or -LP_ENOMEM. */
int ana_hs_init(struct ana_hs *s, struct lp_err *err);
/*
 * Read the next dump of the series from path (gzip'd or not; nthreads as
 * in ana_hd_digest_file).  Returns 0, -LP_EIO (cannot be read, gzip
 * data corrupt or truncated) or -LP_ENOMEM with err.
 */
int ana_hs_add_file(struct ana_hs *s, const char *path, unsigned nthreads,
		    struct lp_err *err);
/* Decide the grouping and compute per-group growth.  Returns 0 or
 * -LP_ENOMEM. */
int ana_hs_finish(struct ana_hs *s, struct lp_err *err);
void ana_hs_release(struct ana_hs *s);

#endif
