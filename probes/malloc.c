/*
 * Native malloc sites: which C code path still holds the bytes that grew.
 *
 * The BPF program (malloc.bpf.c) sends one record per allocation made in
 * the window, with the caller's registers and a raw copy of its stack,
 * and one per free of such an allocation.  Here:
 *
 *   ring buffer --> collector thread --> waiting FIFO (raw records)
 *                                           |  pushed out, or at the end
 *                                           v
 *                      unwind (cached CFI rows; libunwind) --> intern
 *                                           |
 *                                           v
 *                      outstanding table: ptr -> size, stack id, tid
 *
 * A free that finds its record still waiting cancels it: short-lived
 * allocations, most of them, are never unwound.  Memory is bounded by
 * the FIFO's size, the outstanding table (24 bytes a slot) and the table
 * of distinct stacks.  At the end, the kernel's own table of outstanding
 * pointers is the reference: a free whose record was lost (ring buffer
 * full) is repaired from it.
 *
 * Unwinding needs no ptrace: the registers and stack come from the
 * record, and code and .eh_frame_hdr/.eh_frame are read from
 * /proc/PID/mem (they are read-only mappings of the target's files).
 * The rule of each address is computed once from .eh_frame and cached;
 * libunwind (generic, custom accessors over the same record) takes the
 * frames outside that fast subset, and checks it when
 * LEAKPROBE_UNWIND_CHECK is set.  Frames are return addresses; they are
 * symbolized as address - 1.
 */
#include "probes/probes.h"
#include "probes/malloc_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "probes/malloc_bpf.h"
#include "probes/malloc.skel.h"

#define DEF_STACK_BYTES		4096
#define DEF_GROUP_FRAMES	8
#define DEF_MAX_OUTSTANDING	(2u << 20)
#define DEF_PENDING_BYTES	(8ull << 20)
#define DEF_RING_BYTES		(32u << 20)
#define POLL_MS			5

const char *const probe__func_names[LPM_NKINDS] = {
	[LPM_MALLOC] = "malloc",
	[LPM_CALLOC] = "calloc",
	[LPM_REALLOC] = "realloc",
	[LPM_MEMALIGN] = "memalign",
	[LPM_VALLOC] = "valloc",
	[LPM_PVALLOC] = "pvalloc",
	[LPM_POSIX_MEMALIGN] = "posix_memalign",
	[LPM_FREE] = "free",
};

/* Static name of allocator function i (enum lpm_kind order). */
const char *
probe_malloc_func(int i)
{
	return i >= 0 && i < LPM_NKINDS ? probe__func_names[i] : "?";
}

/* ---- BPF: checks, load, attach ----------------------------------------- */

#ifndef CAP_PERFMON
#define CAP_PERFMON	38
#endif
#ifndef CAP_BPF
#define CAP_BPF		39
#endif

struct probe_malloc {
	pid_t pid;
	struct probe_malloc_opts o;
	struct inj_target *t;
	struct malloc_bpf *skel;
	struct bpf_link *links[2 * LPM_NKINDS + 2];
	int nlinks;		/* destroyed in reverse order */
	struct ring_buffer *rb;
	struct unwinder uw;
	struct probe__mcoll *coll;
	pthread_t thread;
	bool thread_on;
	atomic_int stop;
	int thread_err;		/* errno of a failed ring buffer poll */
	uint64_t got_allocs, got_frees;	/* records consumed */
	uint64_t func_addr[LPM_NKINDS];
	char allocator[256];
	enum { MW_READY, MW_OPEN, MW_DONE } state;
	uint64_t t0, t1;	/* window, monotonic ns */
	double wall0;		/* window start, seconds since the epoch */
	struct ana_totals s0, s1;
	uint64_t free_repaired, kernel_only;
	uint64_t c0[LPM_NCOUNTERS];	/* counters when the window opened */
	uint64_t c1[LPM_NCOUNTERS];	/* and when it ended */
	int ncpus;
};

/* The last warning libbpf printed, for error messages (main thread). */
static char bpf_last_msg[200];

static int
libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *buf = NULL;
	size_t n;

	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (level == LIBBPF_WARN && !strchr(buf, '\n'))
		snprintf(bpf_last_msg, sizeof(bpf_last_msg), "%s",
			 strncmp(buf, "libbpf: ", 8) ? buf : buf + 8);
	if (lp_verbose >= 2 || (lp_verbose >= 1 && level == LIBBPF_WARN))
		lp_debug("%s", buf);
	free(buf);
	return 0;
}

/*
 * Say exactly what is missing when BPF cannot be used: capabilities,
 * uprobe support, the program type or the ring buffer.
 */
static int
check_bpf(struct lp_err *err)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0
	};
	struct __user_cap_data_struct d[2];
	int r;

	if (syscall(SYS_capget, &h, d) == 0) {
		uint64_t eff = d[0].effective |
			       (uint64_t)d[1].effective << 32;
		bool bpf = eff >> CAP_BPF & 1, perf = eff >> CAP_PERFMON & 1;

		if (!(eff >> CAP_SYS_ADMIN & 1) && !(bpf && perf))
			return lp_err_set(err, LP_EBPF, "malloc tracing needs "
					  "BPF, and leakprobe lacks %s%s%s "
					  "(run it as root, or give it "
					  "cap_bpf,cap_perfmon and "
					  "cap_sys_ptrace)",
					  bpf ? "" : "CAP_BPF",
					  !bpf && !perf ? " and " : "",
					  perf ? "" : "CAP_PERFMON");
	}
	/* no sysfs at all (a chroot that mounted only /proc) says nothing
	 * about the kernel */
	if (access("/sys/kernel", F_OK))
		return lp_err_set(err, LP_EBPF, "/sys is not mounted here (a "
				  "chroot?), and malloc tracing finds the "
				  "kernel's uprobe support there: mount -t "
				  "sysfs sysfs /sys");
	if (access("/sys/bus/event_source/devices/uprobe/type", F_OK) &&
	    access("/sys/kernel/tracing/uprobe_events", F_OK) &&
	    access("/sys/kernel/debug/tracing/uprobe_events", F_OK))
		return lp_err_set(err, LP_EBPF, "this kernel has no uprobes "
				  "(CONFIG_UPROBE_EVENTS): neither "
				  "/sys/bus/event_source/devices/uprobe nor "
				  "tracefs uprobe_events exists");
	r = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, NULL);
	if (r <= 0)
		return lp_err_set(err, LP_EBPF, "the kernel refuses BPF "
				  "tracing programs%s%s (CONFIG_BPF_SYSCALL, "
				  "CONFIG_BPF_EVENTS; check kernel lockdown "
				  "and kernel.unprivileged_bpf_disabled)",
				  r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
	r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
	if (r <= 0)
		return lp_err_set(err, LP_EBPF, "the kernel has no BPF ring "
				  "buffer (Linux 5.8 or later is needed)");
	return 0;
}

/* Where an allocator function is mapped: the attach path and offset. */
struct fn_site {
	char path[PATH_MAX + 64];
	uint64_t off;
};

static int
locate(struct probe_malloc *m, const struct mline *l, size_t n,
       const char *mod, uint64_t addr, struct fn_site *out)
{
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		if (addr < l[i].start || addr >= l[i].end || !l[i].path ||
		    strcmp(l[i].path, mod))
			continue;
		out->off = addr - l[i].start + l[i].off;
		/* the file as the target sees it (containers), or the
		 * mapping itself when it was deleted or replaced */
		snprintf(out->path, sizeof(out->path), "/proc/%d/root%s",
			 (int)m->pid, l[i].path);
		if (stat(out->path, &st) < 0 || st.st_ino != l[i].ino)
			snprintf(out->path, sizeof(out->path),
				 "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
				 (int)m->pid, l[i].start, l[i].end);
		return 0;
	}
	return -1;
}

static struct bpf_program *
entry_prog(struct malloc_bpf *sk, int kind)
{
	switch (kind) {
	case LPM_MALLOC:
		return sk->progs.lpm_malloc;
	case LPM_CALLOC:
		return sk->progs.lpm_calloc;
	case LPM_REALLOC:
		return sk->progs.lpm_realloc;
	case LPM_MEMALIGN:
		return sk->progs.lpm_memalign;
	case LPM_VALLOC:
		return sk->progs.lpm_valloc;
	case LPM_PVALLOC:
		return sk->progs.lpm_pvalloc;
	case LPM_POSIX_MEMALIGN:
		return sk->progs.lpm_posix_ma;
	default:
		return sk->progs.lpm_free;
	}
}

static int
attach_one(struct probe_malloc *m, struct bpf_program *prog, bool ret,
	   const struct fn_site *fs, const char *name, struct lp_err *err)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = ret);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, m->pid, fs->path,
					       fs->off, &uo);
	if (!link) {
		int e = errno;

		/* the target may exit while the probes go in */
		if (!probe_proc_alive(m->pid))
			return lp_err_set(err, LP_EEXITED, "process %d exited",
					  (int)m->pid);
		return lp_err_set(err, LP_EBPF, "attaching a %s to %s in '%s'"
				  ": %s%s%s", ret ? "uretprobe" : "uprobe",
				  name, fs->path, strerror(e),
				  bpf_last_msg[0] ? "; " : "", bpf_last_msg);
	}
	m->links[m->nlinks++] = link;
	return 0;
}

/*
 * Find each function in the module that serves it (libc, or an
 * allocator linked in or preloaded), and attach: every return probe
 * first, then the entry probes, free last, so that no call we saw enter
 * can return unseen.  memalign and aligned_alloc share an address in
 * glibc: one address gets one probe.
 */
static int
attach_all(struct probe_malloc *m, struct lp_err *err)
{
	static const struct {
		const char *name;
		int kind;
		bool required;
	} fns[] = {
		{ "malloc", LPM_MALLOC, true },
		{ "calloc", LPM_CALLOC, false },
		{ "realloc", LPM_REALLOC, false },
		{ "memalign", LPM_MEMALIGN, false },
		{ "aligned_alloc", LPM_MEMALIGN, false },
		{ "valloc", LPM_VALLOC, false },
		{ "pvalloc", LPM_PVALLOC, false },
		{ "posix_memalign", LPM_POSIX_MEMALIGN, false },
		{ "free", LPM_FREE, true },
	};
	enum { NF = sizeof(fns) / sizeof(fns[0]) };
	struct fn_site fs[NF];
	uint64_t addr[NF];
	bool use[NF];
	struct mline *l = NULL;
	size_t n = 0;
	int rc;

	rc = probe__read_maps(m->pid, &l, &n, err);
	if (rc < 0)
		return rc;
	for (int i = 0; i < NF; i++) {
		const char *mod = inj_symbol_module(m->t, fns[i].name);
		const char *base;

		use[i] = false;
		if (!mod || !(base = strrchr(mod, '/')) ||
		    inj_lookup(m->t, base + 1, fns[i].name, &addr[i],
			       NULL) < 0 ||
		    locate(m, l, n, mod, addr[i], &fs[i]) < 0) {
			if (!fns[i].required)
				continue;
			rc = lp_err_set(err, LP_ENOSYM, "malloc: process %d "
					"maps no '%s' (is it statically "
					"linked without symbols?)", (int)m->pid,
					fns[i].name);
			goto out;
		}
		use[i] = true;
		for (int j = 0; j < i; j++)
			if (use[j] && addr[j] == addr[i])
				use[i] = false;
		if (use[i] && !m->func_addr[fns[i].kind])
			m->func_addr[fns[i].kind] = addr[i];
		if (fns[i].kind == LPM_MALLOC)
			snprintf(m->allocator, sizeof(m->allocator), "%s", mod);
		lp_debug("malloc: %s at %#" PRIx64 " in %s (offset %#" PRIx64
			 ")%s", fns[i].name, addr[i], mod, fs[i].off,
			 use[i] ? "" : ", same address as before");
	}
	for (int pass = 0; pass < 3 && rc == 0; pass++) {
		for (int i = 0; i < NF && rc == 0; i++) {
			bool is_free = fns[i].kind == LPM_FREE;

			if (!use[i] || (pass == 2) != is_free)
				continue;
			if (pass == 0)
				rc = attach_one(m, m->skel->progs.lpm_ret, true,
						&fs[i], fns[i].name, err);
			else
				rc = attach_one(m, entry_prog(m->skel,
							      fns[i].kind),
						false, &fs[i], fns[i].name,
						err);
		}
	}
out:
	probe__mlines_free(l, n);
	return rc;
}

static int
load_bpf(struct probe_malloc *m, struct lp_err *err)
{
	int r;

	libbpf_set_print(libbpf_print);
	bpf_last_msg[0] = '\0';
	m->skel = malloc_bpf__open();
	if (!m->skel)
		return lp_err_set(err, LP_EBPF, "opening the BPF object: %s",
				  strerror(errno));
	m->skel->rodata->target_tgid = (__u32)m->pid;
	m->skel->rodata->stack_bytes = m->o.stack_bytes;
	m->skel->rodata->sample_n = m->o.sample;
	m->skel->rodata->count_only = m->o.count_only;
	m->skel->rodata->wake_bytes = m->o.ring_bytes / 4;
	if (bpf_map__set_max_entries(m->skel->maps.live,
				     m->o.max_outstanding) < 0 ||
	    bpf_map__set_max_entries(m->skel->maps.events,
				     m->o.ring_bytes) < 0)
		return lp_err_set(err, LP_EBPF, "sizing the BPF maps failed");
	r = malloc_bpf__load(m->skel);
	if (r < 0)
		return lp_err_set(err, LP_EBPF, "loading the BPF program into "
				  "the kernel: %s%s%s", strerror(-r),
				  bpf_last_msg[0] ? "; " : "", bpf_last_msg);
	m->ncpus = libbpf_num_possible_cpus();
	if (m->ncpus <= 0)
		return lp_err_set(err, LP_EBPF, "cannot count the possible "
				  "CPUs");
	return 0;
}

static int
on_event(void *ctx, void *data, size_t len)
{
	struct probe_malloc *m = ctx;
	const struct lpm_free_ev *f = data;

	if (len >= sizeof(struct lpm_alloc_ev) && f->type == LPM_EV_ALLOC) {
		const struct lpm_alloc_ev *ev = data;

		if (ev->stack_len <= len - sizeof(*ev) &&
		    ev->kind < LPM_NKINDS) {
			m->got_allocs++;
			probe__mcoll_alloc(m->coll, ev);
		}
	} else if (len >= sizeof(*f) && f->type == LPM_EV_FREE) {
		m->got_frees++;
		probe__mcoll_forget(m->coll, f->ptr);
	}
	return 0;
}

static void *
collector_main(void *arg)
{
	struct probe_malloc *m = arg;

	/* records are sent without a wakeup until the ring is a quarter
	 * full: the poll's timeout is the usual pace */
	while (!atomic_load(&m->stop)) {
		int n = ring_buffer__poll(m->rb, POLL_MS);

		if (n >= 0)
			n = ring_buffer__consume(m->rb);
		if (n < 0 && n != -EINTR) {
			m->thread_err = -n;
			break;
		}
	}
	return NULL;
}

static void
read_counters(struct probe_malloc *m, uint64_t out[LPM_NCOUNTERS])
{
	int fd = bpf_map__fd(m->skel->maps.counters);
	uint64_t *v = xcalloc((size_t)m->ncpus, sizeof(*v));

	for (uint32_t i = 0; i < LPM_NCOUNTERS; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, v) == 0)
			for (int c = 0; c < m->ncpus; c++)
				out[i] += v[c];
	}
	free(v);
}

/*
 * Check BPF, open the target, load and attach (see probes.h).  The
 * handle owns everything; probe_malloc_stop() undoes it all.
 */
struct probe_malloc *
probe_malloc_start(pid_t pid, const struct probe_malloc_opts *opts,
		   struct lp_err *err)
{
	struct probe_malloc *m;

	/* loaded with dlopen (see bpf_lib.c, injector/unwind_lib.c): a
	 * missing library is an error here, before anything is touched */
	if (probe__bpf_load(err) < 0 || inj_unwind_load(err) < 0)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->pid = pid;
	m->uw.mem.fd = -1;
	if (opts)
		m->o = *opts;
	if (!m->o.stack_bytes)
		m->o.stack_bytes = DEF_STACK_BYTES;
	if (!m->o.sample)
		m->o.sample = 1;
	if (!m->o.group_frames)
		m->o.group_frames = DEF_GROUP_FRAMES;
	if (!m->o.max_outstanding)
		m->o.max_outstanding = DEF_MAX_OUTSTANDING;
	if (!m->o.pending_bytes)
		m->o.pending_bytes = DEF_PENDING_BYTES;
	if (!m->o.ring_bytes)
		m->o.ring_bytes = DEF_RING_BYTES;

	if (m->o.stack_bytes > LPM_MAX_STACK || m->o.stack_bytes % 8 ||
	    m->o.group_frames > MAX_FRAMES ||
	    (m->o.ring_bytes & (m->o.ring_bytes - 1)) ||
	    m->o.ring_bytes < PAGE_4K) {
		lp_err_set(err, LP_EINVAL, "malloc: bad tracing options");
		goto fail;
	}
	if (check_bpf(err) < 0)
		goto fail;
	m->t = inj_open(pid, err);
	if (!m->t)
		goto fail;
	if (load_bpf(m, err) < 0 || attach_all(m, err) < 0 ||
	    probe__uw_init(&m->uw, pid, err) < 0)
		goto fail;
	m->coll = probe__mcoll_new(m->o.pending_bytes, m->o.stack_bytes,
				   MAX_STACKS, probe__uw_unwind, &m->uw);
	m->rb = ring_buffer__new(bpf_map__fd(m->skel->maps.events), on_event,
				 m, NULL);
	if (!m->rb) {
		lp_err_set(err, LP_EBPF, "opening the BPF ring buffer: %s",
			   strerror(errno));
		goto fail;
	}
	return m;
fail:
	probe_malloc_stop(m);
	return NULL;
}

static void
set_tracking(struct probe_malloc *m, bool allocs, bool frees)
{
	/* frees before allocs when starting, allocs first when stopping */
	if (frees) {
		__atomic_store_n(&m->skel->bss->track_frees, 1,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&m->skel->bss->track_allocs, allocs,
				 __ATOMIC_SEQ_CST);
	} else {
		__atomic_store_n(&m->skel->bss->track_allocs, allocs,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&m->skel->bss->track_frees, 0,
				 __ATOMIC_SEQ_CST);
	}
}

static int
sample_growth(struct probe_malloc *m, struct ana_totals *out,
	      struct lp_err *err)
{
	struct ana_smaps sm;
	int rc;

	ana_smaps_init(&sm);
	rc = probe_smaps_read(m->pid, false, &sm, err);
	if (rc == 0)
		*out = sm.totals;
	ana_smaps_release(&sm);
	return rc;
}

/* Sample smaps, start the collector thread, turn recording on. */
int
probe_malloc_window_begin(struct probe_malloc *m, struct lp_err *err)
{
	sigset_t all, old;
	struct timespec wall;
	int rc;

	if (m->state != MW_READY)
		return lp_err_set(err, LP_EINVAL, "malloc: the window was "
				  "already opened");
	rc = sample_growth(m, &m->s0, err);
	if (rc < 0)
		return rc;
	/* the collector thread takes no signals: the caller's waits must
	 * see SIGINT/SIGTERM as EINTR */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&m->thread, NULL, collector_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return lp_err_set(err, LP_ENOMEM, "malloc: cannot start the "
				  "collector thread: %s", strerror(rc));
	m->thread_on = true;
	/* calls made before the window (warm-up) are not its calls */
	read_counters(m, m->c0);
	m->t0 = lp_mono_ns();
	clock_gettime(CLOCK_REALTIME, &wall);
	m->wall0 = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
	m->state = MW_OPEN;
	set_tracking(m, true, true);
	return 0;
}

/* Stop recording allocations; frees still count. */
void
probe_malloc_pause(struct probe_malloc *m)
{
	if (m && m->state == MW_OPEN)
		set_tracking(m, false, true);
}

/* Record allocations again after probe_malloc_pause(). */
void
probe_malloc_resume(struct probe_malloc *m)
{
	if (m && m->state == MW_OPEN)
		set_tracking(m, true, true);
}

/*
 * The kernel's table of outstanding pointers is the reference at the
 * end: a free whose record was lost still removed its pointer there.
 * Entries it confirms are marked in place (no second table: memory
 * stays within the bound), the others are dropped.
 */
static int
reconcile(struct probe_malloc *m, struct lp_err *err)
{
	int fd = bpf_map__fd(m->skel->maps.live);
	const uint32_t chunk = 8192;
	uint64_t *keys = xcalloc(chunk, sizeof(*keys));
	uint64_t *vals = xcalloc(chunk, sizeof(*vals));
	__u64 in = 0, out = 0;
	bool first = true, batch = true;
	int rc = 0;

	m->kernel_only = 0;
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		__u32 cnt = chunk;
		int r;

		r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys,
					 vals, &cnt, &bo);
		if (r < 0 && first && errno != ENOENT) {
			batch = false;
			break;
		}
		for (__u32 i = 0; i < cnt; i++)
			if (!probe__mcoll_mark(m->coll, keys[i]))
				m->kernel_only++;
		if (r < 0) {
			if (errno != ENOENT)
				rc = lp_err_sys(err, LP_EBPF, "malloc: reading "
						"the kernel's table");
			break;
		}
		in = out;
		first = false;
	}
	if (!batch) {
		/* kernels without batch lookups for hash maps */
		__u64 k, next;
		void *prev = NULL;

		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			if (!probe__mcoll_mark(m->coll, next))
				m->kernel_only++;
			k = next;
			prev = &k;
		}
	}
	if (rc == 0)
		m->free_repaired = probe__mcoll_sweep(m->coll);
	if (m->kernel_only)
		lp_debug("malloc: %" PRIu64 " pointers in the kernel's table "
			 "without a record", m->kernel_only);
	free(keys);
	free(vals);
	return rc;
}

/*
 * Turn recording off, stop the collector, drain what the programs sent,
 * unwind the survivors, reconcile, sample smaps.  0 or LP_E*.
 */
int
probe_malloc_window_end(struct probe_malloc *m, struct lp_err *err)
{
	uint64_t c[LPM_NCOUNTERS];
	int rc = 0;

	if (m->state != MW_OPEN)
		return lp_err_set(err, LP_EINVAL, "malloc: no window is open");
	set_tracking(m, false, false);
	m->t1 = lp_mono_ns();
	m->state = MW_DONE;
	atomic_store(&m->stop, 1);
	pthread_join(m->thread, NULL);
	m->thread_on = false;
	if (m->thread_err)
		return lp_err_set(err, LP_EBPF, "malloc: reading the ring "
				  "buffer: %s", strerror(m->thread_err));
	/*
	 * A program that saw tracking on just before we turned it off may
	 * still be committing its record: drain until we consumed what
	 * the programs counted as sent (bounded: 100 ms).
	 */
	for (int i = 0; i < 100 && !m->o.count_only; i++) {
		struct timespec ts = { 0, 1000000 };

		ring_buffer__consume(m->rb);
		read_counters(m, c);
		if (m->got_allocs >= c[LPM_C_ALLOCS] &&
		    m->got_frees >= c[LPM_C_FREES])
			break;
		nanosleep(&ts, NULL);
	}
	read_counters(m, m->c1);
	probe__mcoll_flush(m->coll);
	lp_debug("malloc: %" PRIu64 " stacks unwound from cached CFI rows, %"
		 PRIu64 " by libunwind", m->uw.fast, m->uw.slow);
	if (m->uw.check)
		lp_debug("malloc: unwind check: %" PRIu64 " of %" PRIu64
			 " stacks differ between the two paths", m->uw.differ,
			 m->uw.checked);
	if (!m->o.count_only)
		rc = reconcile(m, err);
	if (rc == 0)
		rc = sample_growth(m, &m->s1, err);
	return rc;
}

/* Kernel memory of a BPF map, as the kernel accounts it (fdinfo). */
static uint64_t
map_memlock(int fd)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	fclose(fp);
	return v;
}

static int64_t
cls_rss(const struct ana_totals *t, int cls)
{
	return (int64_t)t->cls[cls].rss;
}

/* The frame of the allocator function itself: "malloc (libc.so.6)". */
static char *
func_frame(struct probe_malloc *m, const char *func, uint64_t addr)
{
	const char *mod = addr ? inj_addr_module(m->t, addr) : NULL;
	char buf[320];

	snprintf(buf, sizeof(buf), "%s (%s)", func, mod ? mod : "?");
	return xstrdup(buf);
}

/* Index of the module described by ai in r->mods, added when new. */
static size_t
add_module(struct probe_malloc_report *r, const struct inj_addr_info *ai)
{
	struct probe_malloc_module *pm;
	size_t k;

	for (k = 0; k < r->nmods; k++)
		if (r->mods[k].lo == ai->lo && !strcmp(r->mods[k].path,
						       ai->path))
			return k;
	r->mods = xrealloc(r->mods, (r->nmods + 1) * sizeof(*r->mods));
	pm = &r->mods[r->nmods++];
	pm->path = xstrdup(ai->path);
	pm->lo = ai->lo;
	pm->hi = ai->hi;
	pm->file_off = ai->file_off;
	snprintf(pm->build_id, sizeof(pm->build_id), "%s", ai->build_id);
	return k;
}

/*
 * Function name and module of frame j of s, for profiles: the module is
 * added to r->mods when new.  Return addresses are looked up at - 1,
 * like inj_symbolize; frame 0 is the allocator function itself.
 */
static void
frame_module(struct probe_malloc *m, struct probe_malloc_report *r,
	     struct probe_malloc_site *s, size_t j)
{
	struct inj_addr_info ai;
	uint64_t a = s->addrs[j];
	char buf[512];

	s->mods[j] = -1;
	if (j == 0) {
		s->funcs[0] = xstrdup(s->func);
	} else if (inj_addr_info(m->t, a - 1, &ai) < 0) {
		snprintf(buf, sizeof(buf), "0x%" PRIx64, a);
		s->funcs[j] = xstrdup(buf);
		return;
	} else if (ai.sym) {
		s->funcs[j] = xstrdup(ai.sym);
	} else {
		snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, ai.base,
			 a - 1 - ai.lo + ai.file_off);
		s->funcs[j] = xstrdup(buf);
	}
	if (!a || inj_addr_info(m->t, j ? a - 1 : a, &ai) < 0)
		return;
	s->mods[j] = (int)add_module(r, &ai);
}

/* The report of an ended window; *out is the caller's (see probes.h). */
int
probe_malloc_report(struct probe_malloc *m, size_t top,
		    struct probe_malloc_report **out, struct lp_err *err)
{
	struct probe_malloc_report *r;
	struct probe__mcoll_stats st;
	struct inj_addr_info ai;
	uint64_t c[LPM_NCOUNTERS];
	struct rusage ru;
	uint64_t table_slots = 1024;

	if (m->state != MW_DONE)
		return lp_err_set(err, LP_EINVAL, "malloc: end the window "
				  "before the report");
	r = xcalloc(1, sizeof(*r));
	r->pid = m->pid;
	r->count_only = m->o.count_only;
	r->seconds = (double)(m->t1 - m->t0) / 1e9;
	r->start_time = m->wall0;
	r->sample = m->o.sample;
	r->stack_bytes = m->o.stack_bytes;
	r->group_frames = m->o.group_frames;
	snprintf(r->allocator, sizeof(r->allocator), "%s", m->allocator);
	for (int i = 0; i < LPM_NCOUNTERS; i++)
		c[i] = m->c1[i] - m->c0[i];
	for (int k = 0; k < LPM_NKINDS; k++) {
		r->calls[k] = c[LPM_C_CALLS + k];
		if (k == LPM_FREE)
			r->calls_free += r->calls[k];
		else
			r->calls_alloc += r->calls[k];
	}
	probe__mcoll_stats(m->coll, &st);
	r->recorded = m->got_allocs;
	r->raw_outstanding = st.outstanding;
	r->raw_outstanding_bytes = st.bytes;
	r->outstanding = st.outstanding * m->o.sample;
	r->outstanding_bytes = st.bytes * m->o.sample;
	r->freed = r->recorded > st.outstanding ?
		   r->recorded - st.outstanding : 0;
	r->unwound = st.unwound;
	r->unwind_short = st.unwind_short;
	r->distinct_stacks = st.distinct_stacks;
	r->stack_overflow = st.stack_overflow;
	r->alloc_drops = c[LPM_C_ALLOC_DROPS];
	r->alloc_drop_bytes = c[LPM_C_ALLOC_DROP_BYTES];
	r->free_drops = c[LPM_C_FREE_DROPS];
	r->free_repaired = m->free_repaired;
	r->live_full = c[LPM_C_LIVE_FULL];
	r->inflight_full = c[LPM_C_INFLIGHT_FULL];
	r->nested = c[LPM_C_NESTED];
	r->stack_short = c[LPM_C_STACK_SHORT];
	r->stack_fail = c[LPM_C_STACK_FAIL];
	r->heap_growth = cls_rss(&m->s1, ANA_MAP_HEAP) -
			 cls_rss(&m->s0, ANA_MAP_HEAP);
	r->arena_growth = cls_rss(&m->s1, ANA_MAP_ARENA) -
			  cls_rss(&m->s0, ANA_MAP_ARENA);
	r->anon_growth = cls_rss(&m->s1, ANA_MAP_ANON) -
			 cls_rss(&m->s0, ANA_MAP_ANON);
	r->growth = r->heap_growth + r->arena_growth + r->anon_growth;
	r->explained = r->growth > 0 ?
		       (double)r->outstanding_bytes / (double)r->growth : -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		r->rss_peak = (uint64_t)ru.ru_maxrss * 1024;
	r->bpf_bytes = map_memlock(bpf_map__fd(m->skel->maps.live)) +
		       map_memlock(bpf_map__fd(m->skel->maps.events)) +
		       map_memlock(bpf_map__fd(m->skel->maps.inflight)) +
		       map_memlock(bpf_map__fd(m->skel->maps.counters));
	/*
	 * The bounds.  Ours: the FIFO, the outstanding table at its
	 * largest (and its predecessor while it grows), the stack tables,
	 * the code and row caches, and the ring buffer, mapped twice (RSS
	 * counts it twice); not counted: symbol tables of the target's
	 * files.  The kernel's: the ring buffer, the pointer table (about
	 * 96 bytes an entry with its bucket) and the per-thread table.
	 */
	while (table_slots * 7 < (uint64_t)m->o.max_outstanding * 10)
		table_slots *= 2;
	r->bound_bytes = m->o.pending_bytes +
			 table_slots * sizeof(struct ptr_ent) * 3 / 2 +
			 (uint64_t)MAX_STACKS * (sizeof(struct stack_ent) + 8) +
			 (uint64_t)MAX_POOL * 8 +
			 TMEM_PAGES * sizeof(struct tpage) +
			 ROWS * sizeof(struct row_slot) +
			 2ull * m->o.ring_bytes;
	r->bpf_bound_bytes = m->o.ring_bytes +
			     (uint64_t)m->o.max_outstanding * 96 +
			     (uint64_t)LPM_MAX_THREADS * 96;
	if (!m->o.count_only) {
		int64_t g = r->growth;

		r->nsites = probe__mcoll_sites(m->coll, m->o.group_frames, top,
					       m->o.sample, &r->sites,
					       &r->total_sites);
		inj_refresh_maps(m->t, NULL);
		/* profiles name the main executable first (pprof's
		 * mapping[0]), whether or not a frame lies in it */
		if (inj_main_info(m->t, &ai) == 0)
			add_module(r, &ai);
		for (size_t i = 0; i < r->nsites; i++) {
			struct probe_malloc_site *s = &r->sites[i];
			char buf[512];
			int kind = 0;

			while (kind < LPM_NKINDS &&
			       strcmp(probe__func_names[kind], s->func))
				kind++;
			s->addrs[0] = kind < LPM_NKINDS ?
				      m->func_addr[kind] : 0;
			s->frames[0] = func_frame(m, s->func, s->addrs[0]);
			for (size_t j = 1; j < s->nframes; j++) {
				inj_symbolize(m->t, s->addrs[j] - 1, buf,
					      sizeof(buf));
				s->frames[j] = xstrdup(buf);
			}
			for (size_t j = 0; j < s->nframes; j++)
				frame_module(m, r, s, j);
			s->share = g > 0 ? (double)s->bytes / (double)g : -1;
		}
	}
	*out = r;
	return 0;
}

/* Free a report.  NULL is a no-op. */
void
probe_malloc_report_free(struct probe_malloc_report *r)
{
	if (!r)
		return;
	probe__sites_free(r->sites, r->nsites);
	for (size_t i = 0; i < r->nmods; i++)
		free(r->mods[i].path);
	free(r->mods);
	free(r);
}

/*
 * Stop recording, join the collector, detach entry probes before return
 * probes, free everything.  NULL is a no-op.
 */
void
probe_malloc_stop(struct probe_malloc *m)
{
	if (!m)
		return;
	if (m->skel && m->skel->bss)
		set_tracking(m, false, false);
	if (m->thread_on) {
		atomic_store(&m->stop, 1);
		pthread_join(m->thread, NULL);
	}
	/* entry probes (free last attached) go first, return probes last */
	while (m->nlinks > 0)
		bpf_link__destroy(m->links[--m->nlinks]);
	ring_buffer__free(m->rb);
	malloc_bpf__destroy(m->skel);
	probe__mcoll_free(m->coll);
	probe__uw_release(&m->uw);
	inj_close(m->t);
	free(m);
}
