/*
 * The pure parts of malloc tracing: the collector (a free cancels a
 * waiting record without an unwind, survivors are unwound once, the
 * FIFO stays bounded), stack interning and grouping, the reconciliation
 * with the kernel's table, the .eh_frame_hdr header and the DWARF CFI
 * interpreter of the fast unwinder.  A fake unwinder reads the frames
 * from the record's stack bytes and counts its calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/malloc_bpf.h"
#include "probes/probes.h"

#define STACK_BYTES 256

struct fake {
	uint64_t calls;
	uint64_t last_ptr;
};

/* Frames are the record's stack words; frame 0 is ev->ip. */
static int
fake_unwind(void *arg, const struct lpm_alloc_ev *ev, uint64_t *frames,
	    int max, bool *truncated)
{
	struct fake *f = arg;
	int n = 0;

	f->calls++;
	f->last_ptr = ev->ptr;
	frames[n++] = ev->ip;
	for (uint32_t o = 0; o + 8 <= ev->stack_len && n < max; o += 8)
		memcpy(&frames[n++], ev->stack + o, 8);
	*truncated = false;
	return n;
}

/* A record: ptr, size, tid, kind and up to 8 frames after ip. */
static struct lpm_alloc_ev *
rec(uint64_t ptr, uint64_t size, uint32_t tid, uint32_t kind, uint64_t ip,
    const uint64_t *frames, int n)
{
	static union {
		struct lpm_alloc_ev ev;
		uint8_t b[sizeof(struct lpm_alloc_ev) + STACK_BYTES];
	} u;

	memset(&u, 0, sizeof(u));
	u.ev.type = LPM_EV_ALLOC;
	u.ev.ptr = ptr;
	u.ev.size = size;
	u.ev.tid = tid;
	u.ev.kind = kind;
	u.ev.ip = ip;
	u.ev.sp = 0x7ffd0000;
	u.ev.stack_len = (uint32_t)n * 8;
	memcpy(u.ev.stack, frames, (size_t)n * 8);
	return &u.ev;
}

static const uint64_t path_a[] = { 0x1000, 0x2000, 0x3000, 0x4000 };
static const uint64_t path_b[] = { 0x1000, 0x2000, 0x3000, 0x5000 };
static const uint64_t path_c[] = { 0x9000, 0x2000 };

static void
test_mcoll_freed_while_waiting_not_unwound(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;

	(void)state;
	for (uint64_t i = 1; i <= 100; i++) {
		probe__mcoll_alloc(c, rec(i * 16, 32, 1, LPM_MALLOC, 0xa0,
					  path_a, 4));
		probe__mcoll_forget(c, i * 16);
	}
	probe__mcoll_forget(c, 0xdead0);	/* unknown: ignored */
	probe__mcoll_flush(c);
	probe__mcoll_stats(c, &st);
	assert_int_equal(f.calls, 0);
	assert_int_equal(st.outstanding, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.freed_waiting, 100);
	probe__mcoll_free(c);
}

static void
test_mcoll_survivors_unwound_once(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;

	(void)state;
	probe__mcoll_alloc(c, rec(0x100, 10, 1, LPM_MALLOC, 0xa0, path_a, 4));
	probe__mcoll_alloc(c, rec(0x200, 20, 1, LPM_MALLOC, 0xa0, path_a, 4));
	probe__mcoll_alloc(c, rec(0x300, 30, 1, LPM_MALLOC, 0xa0, path_a, 4));
	probe__mcoll_forget(c, 0x200);
	probe__mcoll_flush(c);
	probe__mcoll_flush(c);	/* nothing left to unwind */
	probe__mcoll_stats(c, &st);
	assert_int_equal(f.calls, 2);
	assert_int_equal(st.outstanding, 2);
	assert_int_equal(st.bytes, 40);
	assert_int_equal(st.unwound, 2);
	assert_int_equal(st.distinct_stacks, 1);
	/* a free after the unwind removes it from the outstanding table */
	probe__mcoll_forget(c, 0x100);
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, 1);
	assert_int_equal(st.bytes, 30);
	assert_int_equal(st.freed_unwound, 1);
	probe__mcoll_free(c);
}

static void
test_mcoll_fifo_overflow_unwinds_oldest(void **state)
{
	struct fake f = { 0 };
	/* 16 slots at least: a tiny budget */
	struct probe__mcoll *c = probe__mcoll_new(1, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;

	(void)state;
	for (uint64_t i = 1; i <= 16; i++)
		probe__mcoll_alloc(c, rec(i * 16, 8, 1, LPM_MALLOC, 0xa0,
					  path_a, 4));
	assert_int_equal(f.calls, 0);
	probe__mcoll_alloc(c, rec(17 * 16, 8, 1, LPM_MALLOC, 0xa0, path_a,
				  4));
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.last_ptr, 16);	/* the oldest */
	/* a freed slot at the head is dropped without an unwind */
	probe__mcoll_forget(c, 2 * 16);
	probe__mcoll_alloc(c, rec(18 * 16, 8, 1, LPM_MALLOC, 0xa0, path_a,
				  4));
	assert_int_equal(f.calls, 1);
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, 17);
	assert_int_equal(st.bytes, 17 * 8);
	probe__mcoll_free(c);
}

static void
test_mcoll_same_pointer_replaces(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;

	(void)state;
	probe__mcoll_alloc(c, rec(0x100, 10, 1, LPM_MALLOC, 0xa0, path_a, 4));
	probe__mcoll_alloc(c, rec(0x100, 99, 1, LPM_REALLOC, 0xa0, path_b,
				  4));
	probe__mcoll_flush(c);
	/* again once unwound */
	probe__mcoll_alloc(c, rec(0x100, 7, 1, LPM_CALLOC, 0xa0, path_c, 2));
	probe__mcoll_flush(c);
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, 1);
	assert_int_equal(st.bytes, 7);
	assert_int_equal(st.replaced, 1);
	probe__mcoll_free(c);
}

static void
test_sites_group_by_innermost_frames(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe_malloc_site *s;
	size_t n, total;

	(void)state;
	/* A and B differ only in their 5th frame (ip + 4); 3 threads */
	for (uint64_t i = 0; i < 30; i++)
		probe__mcoll_alloc(c, rec(0x10000 + i * 64, 100,
					  (uint32_t)(i % 3 + 1), LPM_MALLOC,
					  0xa0, i & 1 ? path_a : path_b, 4));
	/* C: fewer bytes, same first frame */
	for (uint64_t i = 0; i < 5; i++)
		probe__mcoll_alloc(c, rec(0x90000 + i * 64, 10, 7, LPM_MALLOC,
					  0xa0, path_c, 2));
	/* same frames through calloc: a site of its own */
	probe__mcoll_alloc(c, rec(0xa0000, 1, 7, LPM_CALLOC, 0xa0, path_a,
				  4));

	n = probe__mcoll_sites(c, 4, 10, 1, &s, &total);
	assert_int_equal(total, 3);
	assert_int_equal(n, 3);
	assert_int_equal(s[0].bytes, 3000);
	assert_int_equal(s[0].count, 30);
	assert_int_equal(s[0].stacks, 2);
	assert_int_equal(s[0].threads, 3);
	assert_string_equal(s[0].func, "malloc");
	assert_int_equal(s[0].nframes, 5);	/* allocator + k frames */
	assert_int_equal(s[0].addrs[1], 0xa0);
	assert_int_equal(s[0].addrs[4], 0x3000);
	assert_int_equal(s[1].bytes, 50);
	assert_int_equal(s[1].threads, 1);
	assert_string_equal(s[2].func, "calloc");
	probe__sites_free(s, n);

	/* with all 5 frames, A and B part; top 1; scaled by a sample of 10 */
	n = probe__mcoll_sites(c, 5, 1, 10, &s, &total);
	assert_int_equal(total, 4);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].raw_bytes, 1500);
	assert_int_equal(s[0].bytes, 15000);
	assert_int_equal(s[0].count, 150);
	assert_int_equal(s[0].stacks, 1);
	probe__sites_free(s, n);
	probe__mcoll_free(c);
}

static void
test_sites_many_threads_capped(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe_malloc_site *s;
	size_t n, total;

	(void)state;
	for (uint32_t t = 1; t <= 40; t++)
		probe__mcoll_alloc(c, rec(0x1000 + t * 64, 1, t, LPM_MALLOC,
					  0xa0, path_a, 4));
	n = probe__mcoll_sites(c, 8, 10, 1, &s, &total);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].threads, 17);	/* more than 16 */
	probe__sites_free(s, n);
	probe__mcoll_free(c);
}

static void
test_sites_empty(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe_malloc_site *s;
	size_t n, total = 99;

	(void)state;
	n = probe__mcoll_sites(c, 8, 10, 1, &s, &total);
	assert_int_equal(n, 0);
	assert_int_equal(total, 0);
	probe__sites_free(s, n);
	probe__mcoll_free(c);
}

static void
test_stack_table_bound(void **state)
{
	struct fake f = { 0 };
	/* room for 4 distinct stacks; the rest share id 0 */
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 4,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;
	struct probe_malloc_site *s;
	size_t n, total;

	(void)state;
	for (uint64_t i = 0; i < 20; i++) {
		uint64_t fr[2] = { 0x5000 + i, 0x6000 };

		probe__mcoll_alloc(c, rec(0x1000 + i * 64, 10, 1, LPM_MALLOC,
					  0xa0, fr, 2));
	}
	probe__mcoll_flush(c);
	probe__mcoll_stats(c, &st);
	assert_true(st.distinct_stacks <= 5);
	assert_int_equal(st.stack_overflow, 20 - st.distinct_stacks);
	assert_int_equal(st.bytes, 200);	/* nothing lost in totals */
	n = probe__mcoll_sites(c, 8, 100, 1, &s, &total);
	assert_string_equal(s[0].func, "(too many distinct stacks)");
	probe__sites_free(s, n);
	probe__mcoll_free(c);
}

static void
test_mark_sweep_repairs_lost_frees(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(1 << 20, STACK_BYTES, 1000,
						  fake_unwind, &f);
	struct probe__mcoll_stats st;

	(void)state;
	for (uint64_t i = 1; i <= 1000; i++)
		probe__mcoll_alloc(c, rec(i * 32, 4, 1, LPM_MALLOC, 0xa0,
					  path_a, 4));
	/* the kernel still holds the odd ones, and one we never saw */
	for (uint64_t i = 1; i <= 1000; i += 2)
		assert_true(probe__mcoll_mark(c, i * 32));
	assert_false(probe__mcoll_mark(c, 0xfffff0));
	assert_int_equal(probe__mcoll_sweep(c), 500);
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, 500);
	assert_int_equal(st.bytes, 2000);
	/* marks were cleared: a second sweep without marks drops all */
	assert_int_equal(probe__mcoll_sweep(c), 500);
	probe__mcoll_free(c);
}

/* A model check: random allocations and frees, totals must agree. */
static void
test_mcoll_matches_model(void **state)
{
	struct fake f = { 0 };
	struct probe__mcoll *c = probe__mcoll_new(64 << 10, STACK_BYTES,
						  1000, fake_unwind, &f);
	enum { N = 4096 };
	static uint64_t live[N];
	struct probe__mcoll_stats st;
	uint64_t bytes = 0, count = 0, x = 42;

	(void)state;
	memset(live, 0, sizeof(live));
	for (int step = 0; step < 200000; step++) {
		uint64_t slot;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		slot = x % N;
		if (live[slot]) {
			probe__mcoll_forget(c, (slot + 1) * 64);
			bytes -= live[slot];
			count--;
			live[slot] = 0;
		} else {
			live[slot] = x % 1000 + 1;
			probe__mcoll_alloc(c, rec((slot + 1) * 64, live[slot],
						  1, LPM_MALLOC, 0xa0, path_a,
						  4));
			bytes += live[slot];
			count++;
		}
	}
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, count);
	assert_int_equal(st.bytes, bytes);
	probe__mcoll_flush(c);
	probe__mcoll_stats(c, &st);
	assert_int_equal(st.outstanding, count);
	assert_int_equal(st.bytes, bytes);
	assert_true(f.calls < 200000 / 2);	/* only survivors unwound */
	probe__mcoll_free(c);
}

/* ---- .eh_frame_hdr ---------------------------------------------------- */

static void
test_eh_frame_hdr_parse(void **state)
{
	/* version 1, eh_frame_ptr pcrel|sdata4, count udata4, table
	 * datarel|sdata4; 3 entries */
	const uint8_t b[] = { 1, 0x1b, 0x03, 0x3b, 0x10, 0, 0, 0, 3, 0, 0, 0 };
	uint64_t table = 0, count = 0;

	(void)state;
	assert_int_equal(probe__eh_frame_hdr(b, sizeof(b), 0x1000, &table,
					     &count), 0);
	assert_int_equal(table, 0x100c);
	assert_int_equal(count, 3);
}

static void
test_eh_frame_hdr_hostile(void **state)
{
	const uint8_t bad_version[] = { 2, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 1, 0,
					0, 0 };
	const uint8_t unsorted[] = { 1, 0x1b, 0x03, 0xff, 0, 0, 0, 0, 1, 0, 0,
				     0 };
	const uint8_t short_[] = { 1, 0x1b, 0x03, 0x3b, 0, 0 };
	const uint8_t zero[] = { 1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 0, 0, 0, 0 };
	const uint8_t huge[] = { 1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 0xff, 0xff,
				 0xff, 0x7f };
	const uint8_t neg[] = { 1, 0x1b, 0x0b, 0x3b, 0, 0, 0, 0, 0xff, 0xff,
				0xff, 0xff };
	uint64_t t, n;

	(void)state;
	assert_int_equal(probe__eh_frame_hdr(bad_version, sizeof(bad_version),
					     0, &t, &n), -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(unsorted, sizeof(unsorted), 0,
					     &t, &n), -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(short_, sizeof(short_), 0, &t,
					     &n), -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(zero, sizeof(zero), 0, &t, &n),
			 -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(huge, sizeof(huge), 0, &t, &n),
			 -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(neg, sizeof(neg), 0, &t, &n),
			 -LP_EPARSE);
	assert_int_equal(probe__eh_frame_hdr(NULL, 0, 0, &t, &n), -LP_EPARSE);
}

/* ---- DWARF CFI --------------------------------------------------------- */

/* gcc's x86-64 CIE: def_cfa rsp+8; RA (16) at cfa-8 */
static const uint8_t cie_ins[] = { 0x0c, 0x07, 0x08, 0x90, 0x01 };

static struct probe__cfa_row
row_at(const uint8_t *fde, size_t len, uint64_t pc)
{
	struct probe__cfa_row r;

	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), fde, len,
					 1, -8, 16, 0x1000, pc, &r), 0);
	return r;
}

static void
test_cfi_frame_pointer_prologue(void **state)
{
	/*
	 * push rbp (1 byte); mov rbp, rsp (3 bytes); body; at 0x1020
	 * remember, leave, def_cfa rsp+8, ret; restore at 0x1022.
	 */
	const uint8_t fde[] = {
		0x41,			/* advance 1 */
		0x0e, 0x10,		/* def_cfa_offset 16 */
		0x86, 0x02,		/* rbp at cfa-16 */
		0x43,			/* advance 3 */
		0x0d, 0x06,		/* def_cfa_register rbp */
		0x5c,			/* advance 28 -> 0x1020 */
		0x0a,			/* remember_state */
		0x0c, 0x07, 0x08,	/* def_cfa rsp+8 */
		0xc6,			/* restore rbp */
		0x42,			/* advance 2 -> 0x1022 */
		0x0b,			/* restore_state */
	};
	struct probe__cfa_row r;

	(void)state;
	r = row_at(fde, sizeof(fde), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_OK);
	assert_int_equal(r.cfa_reg, 7);
	assert_int_equal(r.cfa_off, 8);
	assert_int_equal(r.ra_off, -8);
	assert_false(r.rbp_saved);

	r = row_at(fde, sizeof(fde), 0x1001);
	assert_int_equal(r.cfa_reg, 7);
	assert_int_equal(r.cfa_off, 16);
	assert_true(r.rbp_saved);
	assert_int_equal(r.rbp_off, -16);

	r = row_at(fde, sizeof(fde), 0x1010);
	assert_int_equal(r.cfa_reg, 6);
	assert_int_equal(r.cfa_off, 16);

	r = row_at(fde, sizeof(fde), 0x1021);
	assert_int_equal(r.cfa_reg, 7);
	assert_int_equal(r.cfa_off, 8);
	assert_false(r.rbp_saved);

	r = row_at(fde, sizeof(fde), 0x1030);
	assert_int_equal(r.cfa_reg, 6);
	assert_int_equal(r.cfa_off, 16);
	assert_true(r.rbp_saved);
}

static void
test_cfi_large_offsets(void **state)
{
	/* sub rsp, 0x1000 after 4 pushes: advance_loc2, uleb offsets */
	const uint8_t fde[] = {
		0x03, 0x00, 0x01,	/* advance_loc2 256 */
		0x0e, 0xa8, 0x20,	/* def_cfa_offset 4136 */
		0x11, 0x06, 0x7c,	/* offset_extended_sf rbp, sleb -4
					 * times data_align -8: +32 */
	};
	struct probe__cfa_row r;

	(void)state;
	r = row_at(fde, sizeof(fde), 0x10ff);
	assert_int_equal(r.cfa_off, 8);
	r = row_at(fde, sizeof(fde), 0x1100);
	assert_int_equal(r.state, PROBE_ROW_OK);
	assert_int_equal(r.cfa_off, 4136);
	assert_true(r.rbp_saved);
	assert_int_equal(r.rbp_off, 32);
}

static void
test_cfi_outermost_and_hard(void **state)
{
	const uint8_t undef_ra[] = { 0x07, 0x10 };	/* undefined RA */
	const uint8_t expr[] = { 0x0f, 0x02, 0x77, 0x08 };	/* cfa expr */
	const uint8_t rsp_saved[] = { 0x87, 0x01 };	/* rsp at cfa-8 */
	const uint8_t other_cfa[] = { 0x0c, 0x0a, 0x00 };	/* cfa r10 */
	const uint8_t other_reg_expr[] = { 0x10, 0x03, 0x01, 0x00 };
	struct probe__cfa_row r;

	(void)state;
	r = row_at(undef_ra, sizeof(undef_ra), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_OUTER);
	r = row_at(expr, sizeof(expr), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(rsp_saved, sizeof(rsp_saved), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(other_cfa, sizeof(other_cfa), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	/* an expression for rbx does not matter to the fast path */
	r = row_at(other_reg_expr, sizeof(other_reg_expr), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_OK);
	/* an RA column other than 16 is not x86-64's */
	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), undef_ra,
					 sizeof(undef_ra), 1, -8, 15, 0x1000,
					 0x1000, &r), 0);
	assert_int_equal(r.state, PROBE_ROW_HARD);
}

static void
test_cfi_malformed(void **state)
{
	const uint8_t cut_uleb[] = { 0x0e, 0x80 };	/* uleb never ends */
	const uint8_t cut_adv[] = { 0x04, 0x01 };	/* advance_loc4, cut */
	const uint8_t underflow[] = { 0x0b };		/* restore, no state */
	struct probe__cfa_row r;

	(void)state;
	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), cut_uleb,
					 sizeof(cut_uleb), 1, -8, 16, 0x1000,
					 0x1000, &r), -LP_EPARSE);
	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), cut_adv,
					 sizeof(cut_adv), 1, -8, 16, 0x1000,
					 0x1000, &r), -LP_EPARSE);
	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), underflow,
					 sizeof(underflow), 1, -8, 16, 0x1000,
					 0x1000, &r), -LP_EPARSE);
}

/*
 * Operands whose offset does not fit (target memory may hold anything):
 * the product with the data alignment used to overflow (undefined
 * behaviour, found by tests/fuzz/fuzz_cfi.c; the input is in its corpus
 * as overflow-offset-sf) and could wrap to a small offset taken as
 * valid.  Now such a row is HARD (the slow path).
 */
static void
test_cfi_offsets_out_of_range(void **state)
{
	/* def_cfa_offset_sf (2^61 + 1): times 8 wraps to 8 */
	const uint8_t sf_wrap[] = { 0x13, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80,
				    0x80, 0x80, 0x20 };
	/* def_cfa_offset 2^64 - 8: was read as -8 */
	const uint8_t u_neg[] = { 0x0e, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff,
				  0xff, 0xff, 0xff, 0x01 };
	/* def_cfa_offset_sf (-2^62, sign bit at shift 63): times -8 */
	const uint8_t sf_big[] = { 0x13, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				   0x80, 0x80, 0x40 };
	/* GNU_negative_offset_extended r16, 2^63 */
	const uint8_t neg_ext[] = { 0x2f, 0x10, 0x80, 0x80, 0x80, 0x80, 0x80,
				    0x80, 0x80, 0x80, 0x80, 0x01 };
	/* offset_extended_sf r16 with a huge factor, as the fuzzer found */
	const uint8_t ext_sf[] = { 0x11, 0x10, 0xfe, 0xff, 0xe4, 0xf2, 0xf9,
				   0xfe, 0xd1, 0xff, 0xbf, 0x00 };
	struct probe__cfa_row r;

	(void)state;
	assert_int_equal(probe__cfi_eval(cie_ins, sizeof(cie_ins), sf_wrap,
					 sizeof(sf_wrap), 1, 8, 16, 0x1000,
					 0x1000, &r), 0);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(u_neg, sizeof(u_neg), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(sf_big, sizeof(sf_big), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(neg_ext, sizeof(neg_ext), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	r = row_at(ext_sf, sizeof(ext_sf), 0x1000);
	assert_int_equal(r.state, PROBE_ROW_HARD);
	/* in range, the same operators still give a row */
	{
		const uint8_t ok[] = { 0x13, 0x7e, 0x2f, 0x10, 0x01 };

		r = row_at(ok, sizeof(ok), 0x1000);
		assert_int_equal(r.state, PROBE_ROW_OK);
		assert_int_equal(r.cfa_off, 16);	/* -2 * -8 */
		assert_int_equal(r.ra_off, 8);		/* -(1 * -8) */
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mcoll_freed_while_waiting_not_unwound),
		cmocka_unit_test(test_mcoll_survivors_unwound_once),
		cmocka_unit_test(test_mcoll_fifo_overflow_unwinds_oldest),
		cmocka_unit_test(test_mcoll_same_pointer_replaces),
		cmocka_unit_test(test_sites_group_by_innermost_frames),
		cmocka_unit_test(test_sites_many_threads_capped),
		cmocka_unit_test(test_sites_empty),
		cmocka_unit_test(test_stack_table_bound),
		cmocka_unit_test(test_mark_sweep_repairs_lost_frees),
		cmocka_unit_test(test_mcoll_matches_model),
		cmocka_unit_test(test_eh_frame_hdr_parse),
		cmocka_unit_test(test_eh_frame_hdr_hostile),
		cmocka_unit_test(test_cfi_frame_pointer_prologue),
		cmocka_unit_test(test_cfi_large_offsets),
		cmocka_unit_test(test_cfi_outermost_and_hard),
		cmocka_unit_test(test_cfi_malformed),
		cmocka_unit_test(test_cfi_offsets_out_of_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
