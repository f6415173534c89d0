/*
 * The smaps sampler: reads /proc/PID/{smaps,smaps_rollup,maps,pagemap,stat}
 * from outside the target (no observer effect) and hands the text to the
 * parser in analysis/.
 */
#include "probes/probes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define PF_EXITING_FLAG	0x00000004ul	/* include/linux/sched.h */
#define PF_KTHREAD_FLAG	0x00200000ul

/*
 * lp_read_file reports a missing file as an i/o error; under /proc a
 * missing file means the process is gone.  Re-code that, keeping the
 * message.
 */
static ssize_t
read_proc(pid_t pid, const char *path, char **buf, size_t *cap,
	  struct lp_err *err)
{
	struct lp_err e = { 0 };
	ssize_t n;

	n = lp_read_file(path, buf, cap, &e);
	if (n >= 0)
		return n;
	if (e.sys_errno == ENOENT || e.sys_errno == ESRCH)
		return lp_err_set(err, LP_ENOPROC, "pid %d: no such process",
				  (int)pid);
	if (e.code == LP_EPERM)
		return lp_err_set(err, LP_EPERM,
				  "cannot read '%s': permission denied", path);
	return lp_err_set(err, e.code, "%s", e.msg);
}

int
probe_smaps_read(pid_t pid, bool rollup, struct ana_smaps *s,
		 struct lp_err *err)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid,
		 rollup ? "smaps_rollup" : "smaps");
	n = read_proc(pid, path, &s->buf, &s->cap, err);
	if (n < 0)
		return (int)n;
	/*
	 * A zombie (and a kernel thread) has no mm: the file is empty.  Its
	 * memory is gone, so to a sampler it has exited.
	 */
	if (n == 0)
		return lp_err_set(err, LP_ENOPROC,
				  "pid %d has no memory (exited or kernel "
				  "thread)", (int)pid);
	return ana_smaps_parse_buf(s, (size_t)n, err);
}

void
probe_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	size_t n;
	FILE *fp;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return;
	if (fgets(buf, (int)len, fp)) {
		n = strlen(buf);
		if (n && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
	}
	fclose(fp);
}

int
probe_proc_stat(pid_t pid, struct probe_proc *out, struct lp_err *err)
{
	char path[64], buf[1024], *lp, *rp, *tok, *save = NULL;
	unsigned long long v;
	ssize_t n;
	int fd, i;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return lp_err_set(err, LP_ENOPROC,
					  "pid %d: no such process", (int)pid);
		return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				  "open '%s'", path);
	}
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return lp_err_set(err, LP_ENOPROC, "pid %d: no such process",
				  (int)pid);
	buf[n] = '\0';
	/* "pid (comm) state ppid ..."; comm may itself hold ") ". */
	lp = strchr(buf, '(');
	rp = strrchr(buf, ')');
	if (!lp || !rp || rp < lp || rp[1] != ' ')
		return lp_err_set(err, LP_EPARSE, "malformed '%s'", path);
	snprintf(out->comm, sizeof(out->comm), "%.*s",
		 (int)(rp - lp - 1), lp + 1);
	/* Fields after comm, counted from 3 as in proc(5). */
	for (i = 3, tok = strtok_r(rp + 2, " ", &save); tok && i <= 22;
	     i++, tok = strtok_r(NULL, " ", &save)) {
		if (i == 3) {
			out->state = tok[0];
			continue;
		}
		if (i != 4 && i != 9 && i != 22)
			continue;
		errno = 0;
		v = strtoull(tok, NULL, 10);
		if (errno)
			return lp_err_set(err, LP_EPARSE, "malformed '%s'",
					  path);
		if (i == 4)
			out->ppid = (pid_t)v;
		else if (i == 9)
			out->flags = (unsigned long)v;
		else
			out->starttime = v;
	}
	if (i <= 22)
		return lp_err_set(err, LP_EPARSE, "short '%s'", path);
	return 0;
}

bool
probe_proc_alive(pid_t pid)
{
	struct probe_proc p;

	return probe_proc_stat(pid, &p, NULL) == 0 && p.state != 'Z' &&
	       p.state != 'X' && !(p.flags & PF_EXITING_FLAG);
}

bool
probe_is_kthread(const struct probe_proc *p)
{
	return (p->flags & PF_KTHREAD_FLAG) || p->pid == 2 || p->ppid == 2;
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

ssize_t
probe_list_pids(pid_t **pids, size_t *cap, struct lp_err *err)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return lp_err_sys(err, LP_EIO, "open '/proc'");
	while ((de = readdir(d))) {
		pid_t pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    lp_parse_pid(de->d_name, &pid) < 0)
			continue;
		*pids = xgrow(*pids, cap, n + 1, sizeof(**pids));
		(*pids)[n++] = pid;
	}
	closedir(d);
	if (n > 1)
		qsort(*pids, n, sizeof(**pids), cmp_pid);
	return (ssize_t)n;
}

/* ---- fast path: smaps_rollup + maps + pagemap ---------------------- */

#define PM_PRESENT	(1ull << 63)
#define PM_SWAPPED	(1ull << 62)
#define PM_CHUNK	8192	/* pagemap entries per pread: 64 KiB */

#define PM_PFN_MASK	((1ull << 55) - 1)
/*
 * pagemap costs 8 bytes per page of address space, present or not: a
 * sanitizer's shadow (14 TiB rw-p, almost all unpopulated) is 3.7 billion
 * entries, 460,000 reads and some 40 s.  smaps walks only the page tables
 * that exist (50 ms for the same process).  Above this many pages in the
 * writable tracked ranges (2 GiB at 4 KiB pages: 64 reads, about a
 * millisecond), a sample reads the full smaps instead.
 */
#define PM_MAX_PAGES	(64ull * PM_CHUNK)

struct probe_fast {
	struct ana_smaps rollup, maps, full;
	uint64_t *pm;
	long page;
	uint64_t zero_pfn;	/* the shared zero page, 0 when unknown */
	uint64_t max_pages;
	struct probe_fast_stats st;
};

/*
 * Anonymous memory that was only read maps the kernel's shared zero
 * page: pagemap says "present", smaps' Rss (rightly) does not count it.
 * Learn its page frame number from a page of our own that we only read
 * (PFNs are visible with CAP_SYS_ADMIN; without, they read as 0 and
 * such pages are counted, an over-estimate that the man page notes).
 */
static uint64_t
zero_pfn(long pg)
{
	volatile char *p;
	uint64_t e = 0;
	int fd;

	p = mmap(NULL, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p /
			  (uintptr_t)pg * sizeof(e))) != sizeof(e))
			e = 0;
		close(fd);
	}
	munmap((void *)p, (size_t)pg);
	return e & (1ull << 63) ? e & PM_PFN_MASK : 0;
}

struct probe_fast *
probe_fast_new(void)
{
	struct probe_fast *f = xcalloc(1, sizeof(*f));

	ana_smaps_init(&f->rollup);
	ana_smaps_init(&f->maps);
	ana_smaps_init(&f->full);
	f->max_pages = PM_MAX_PAGES;
	f->pm = xmalloc(PM_CHUNK * sizeof(*f->pm));
	f->page = sysconf(_SC_PAGESIZE);
	if (f->page <= 0)
		f->page = 4096;
	f->zero_pfn = zero_pfn(f->page);
	return f;
}

void
probe_fast_free(struct probe_fast *f)
{
	if (!f)
		return;
	ana_smaps_release(&f->rollup);
	ana_smaps_release(&f->maps);
	ana_smaps_release(&f->full);
	free(f->pm);
	free(f);
}

void
probe_fast_set_max_pages(struct probe_fast *f, uint64_t pages)
{
	f->max_pages = pages;
}

void
probe_fast_stats(const struct probe_fast *f, struct probe_fast_stats *out)
{
	*out = f->st;
}

static bool
tracked(const struct ana_mapping *m)
{
	return m->cls == ANA_MAP_HEAP || m->cls == ANA_MAP_ARENA ||
	       m->cls == ANA_MAP_ANON;
}

/* Count present and swapped pages of [start, end) from pagemap. */
static int
pagemap_count(struct probe_fast *f, int fd, pid_t pid, uint64_t start,
	      uint64_t end, uint64_t *present, uint64_t *swapped,
	      struct lp_err *err)
{
	uint64_t pg = (uint64_t)f->page;
	uint64_t first = start / pg, last = (end + pg - 1) / pg;

	while (first < last) {
		size_t want = last - first > PM_CHUNK ? PM_CHUNK :
			      (size_t)(last - first);
		ssize_t n = pread(fd, f->pm, want * sizeof(*f->pm),
				  (off_t)(first * sizeof(*f->pm)));

		f->st.pagemap_reads++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno == ESRCH)
				return lp_err_set(err, LP_ENOPROC,
						  "pid %d: no such process",
						  (int)pid);
			return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
					  "read '/proc/%d/pagemap'", (int)pid);
		}
		n /= (ssize_t)sizeof(*f->pm);
		for (ssize_t i = 0; i < n; i++) {
			if (f->pm[i] & PM_PRESENT) {
				if (f->zero_pfn &&
				    (f->pm[i] & PM_PFN_MASK) == f->zero_pfn)
					continue;
				(*present)++;
			}
			else if (f->pm[i] & PM_SWAPPED)
				(*swapped)++;
		}
		first += (uint64_t)n;
	}
	return 0;
}

int
probe_sample_fast(struct probe_fast *f, pid_t pid, struct ana_totals *out,
		  struct lp_err *err)
{
	char path[64];
	uint64_t pages;
	ssize_t n;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	f->st.samples++;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	n = read_proc(pid, path, &f->maps.buf, &f->maps.cap, err);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return lp_err_set(err, LP_ENOPROC, "pid %d: no such process",
				  (int)pid);
	/* maps is smaps without the field lines: the parser classifies it
	 * the same way (Size from the range). */
	rc = ana_smaps_parse_buf(&f->maps, (size_t)n, err);
	if (rc < 0)
		return rc;
	pages = 0;
	for (size_t i = 0; i < f->maps.nmaps; i++) {
		const struct ana_mapping *m = &f->maps.maps[i];

		if (tracked(m) && memcmp(m->perms, "---", 3))
			pages += (m->end - m->start) / (uint64_t)f->page;
	}
	if (pages > f->max_pages) {
		lp_debug("sampler: pid %d: %llu pages in writable anonymous "
			 "ranges (over %llu): full smaps, not pagemap",
			 (int)pid, (unsigned long long)pages,
			 (unsigned long long)f->max_pages);
		f->st.full_smaps++;
		rc = probe_smaps_read(pid, false, &f->full, err);
		if (rc == 0)
			*out = f->full.totals;
		return rc;
	}
	rc = probe_smaps_read(pid, true, &f->rollup, err);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return lp_err_set(err, LP_ENOPROC,
					  "pid %d: no such process", (int)pid);
		return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				  "open '%s'", path);
	}
	out->rss = f->rollup.totals.rss;
	out->pss = f->rollup.totals.pss;
	out->uss = f->rollup.totals.uss;
	out->swap = f->rollup.totals.swap;
	/*
	 * One pread of pagemap serves every tracked range that starts within
	 * PM_CHUNK pages of the window's start (processes with many small
	 * anonymous mappings would otherwise cost a syscall each); a range
	 * larger than a window is counted chunk by chunk.
	 */
	uint64_t pg = (uint64_t)f->page, wfirst = 0, wn = 0;

	for (size_t i = 0; i < f->maps.nmaps; i++) {
		const struct ana_mapping *m = &f->maps.maps[i];
		struct ana_class_totals *c;
		uint64_t present = 0, swapped = 0, first, last;

		if (!tracked(m))
			continue;
		c = &out->cls[m->cls];
		c->size += m->end - m->start;
		/* PROT_NONE reservations (arena tails, guard pages) hold no
		 * pages; skipping them saves reading 64 MiB worth each. */
		if (!memcmp(m->perms, "---", 3))
			continue;
		first = m->start / pg;
		last = (m->end + pg - 1) / pg;
		if (last - first > PM_CHUNK) {
			rc = pagemap_count(f, fd, pid, m->start, m->end,
					   &present, &swapped, err);
			if (rc < 0)
				break;
		} else {
			if (first < wfirst || last > wfirst + wn) {
				/* new window: up to the last tracked range
				 * that still fits in PM_CHUNK pages */
				uint64_t wend = last;
				ssize_t n;

				for (size_t j = i + 1; j < f->maps.nmaps; j++) {
					const struct ana_mapping *q =
						&f->maps.maps[j];
					uint64_t qe = (q->end + pg - 1) / pg;

					if (qe - first > PM_CHUNK)
						break;
					if (tracked(q))
						wend = qe;
				}
				do {
					f->st.pagemap_reads++;
					n = pread(fd, f->pm, (wend - first) *
						  sizeof(*f->pm),
						  (off_t)(first *
							  sizeof(*f->pm)));
				} while (n < 0 && errno == EINTR);
				if (n <= 0) {
					rc = n == 0 || errno == ESRCH ?
					     lp_err_set(err, LP_ENOPROC,
							"pid %d: no such process",
							(int)pid) :
					     lp_err_sys(err, lp_errno_code(errno,
							LP_EIO), "read "
							"'/proc/%d/pagemap'",
							(int)pid);
					break;
				}
				wfirst = first;
				wn = (uint64_t)n / sizeof(*f->pm);
				if (last > wfirst + wn)
					last = wfirst + wn;	/* short read */
			}
			for (uint64_t k = first; k < last; k++) {
				uint64_t e = f->pm[k - wfirst];

				if (e & PM_PRESENT) {
					if (!f->zero_pfn ||
					    (e & PM_PFN_MASK) != f->zero_pfn)
						present++;
				}
				else if (e & PM_SWAPPED)
					swapped++;
			}
		}
		c->rss += present * pg;
		c->swap += swapped * pg;
	}
	close(fd);
	return rc;
}
