/*
 * Opening a target: validation from /proc and the bookkeeping that does
 * not need ptrace.
 */
#include "injector/injector_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xalloc.h"

static uint64_t
parse_hex_mask(const char *s)
{
	return strtoull(s, NULL, 16);
}

/* True when the space-separated list p holds the word w. */
static bool
has_word(const char *p, const char *w)
{
	size_t n = strlen(w);

	while (*p) {
		size_t len = strcspn(p, " \t");

		if (len == n && !strncmp(p, w, n))
			return true;
		p += len;
		p += strspn(p, " \t");
	}
	return false;
}

/*
 * Parse the text of /proc/PID/status (modified in place; NUL-terminated)
 * into out, which the caller zeroed.  Returns 0, or -LP_EINVAL when it is
 * a thread of another process.
 */
int
inj__parse_status(char *buf, pid_t pid, struct inj_procinfo *out,
		  struct lp_err *err)
{
	char *line, *save = NULL, *p;
	int rc = 0;

	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		p = strchr(line, ':');
		if (!p)
			continue;
		*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (!strcmp(line, "Name"))
			snprintf(out->comm, sizeof(out->comm), "%s", p);
		else if (!strcmp(line, "State"))
			out->state = *p;
		else if (!strcmp(line, "Tgid") && atoi(p) != (int)pid)
			rc = lp_err_set(err, LP_EINVAL,
					"%d is a thread of process %d; give "
					"the process id", (int)pid, atoi(p));
		else if (!strcmp(line, "TracerPid"))
			out->tracer = (pid_t)atoi(p);
		else if (!strcmp(line, "Uid"))
			sscanf(p, "%u %u", &out->uid, &out->euid);
		else if (!strcmp(line, "Gid"))
			sscanf(p, "%u %u", &out->gid, &out->egid);
		else if (!strcmp(line, "Threads"))
			out->threads = atoi(p);
		else if (!strcmp(line, "SigBlk"))
			out->sig_blocked = parse_hex_mask(p);
		else if (!strcmp(line, "SigIgn"))
			out->sig_ignored = parse_hex_mask(p);
		else if (!strcmp(line, "SigCgt"))
			out->sig_caught = parse_hex_mask(p);
		else if (!strcmp(line, "x86_Thread_features"))
			out->shstk = has_word(p, "shstk");
	}
	return rc;
}

/*
 * The start time from the text of /proc/PID/stat (NUL-terminated):
 * field 22, counted after the last ')' (the command name may hold any
 * character).  Returns 0 when it cannot be read.
 */
uint64_t
inj__parse_stat_start(const char *buf)
{
	unsigned long long st = 0;
	const char *p = strrchr(buf, ')');
	int field = 2;

	if (!p)
		return 0;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22 && sscanf(p, "%llu", &st) == 1)
		return st;
	return 0;
}

int
inj_read_procinfo(pid_t pid, struct inj_procinfo *out, struct lp_err *err)
{
	char path[64], *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	n = lp_read_file(path, &buf, &cap, NULL);
	if (n < 0) {
		free(buf);
		if (n == -LP_EPERM)
			return lp_err_set(err, LP_EPERM,
					  "cannot read '%s'", path);
		return lp_err_set(err, LP_ENOPROC, "no process with pid %d",
				  (int)pid);
	}
	rc = inj__parse_status(buf, pid, out, err);
	if (rc)
		goto out;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = lp_read_file(path, &buf, &cap, NULL);
	if (n > 0)
		out->start_time = inj__parse_stat_start(buf);
	if (out->tracer > 0) {
		char comm_path[64];
		FILE *fp;

		snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm",
			 (int)out->tracer);
		fp = fopen(comm_path, "re");
		if (fp) {
			if (fgets(out->tracer_comm, sizeof(out->tracer_comm),
				  fp))
				out->tracer_comm[strcspn(out->tracer_comm,
							 "\n")] = '\0';
			fclose(fp);
		}
	}
out:
	free(buf);
	return rc;
}

struct inj_target *
inj_open(pid_t pid, struct lp_err *err)
{
	struct inj_target *t;

	if (pid == getpid()) {
		lp_err_set(err, LP_ESELF, "pid %d is leakprobe itself",
			   (int)pid);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->pid = pid;
	t->memfd = -1;
	snprintf(t->root, sizeof(t->root), "/proc/%d/root", (int)pid);
	if (inj_read_procinfo(pid, &t->info, err) < 0)
		goto fail;
	if (t->info.state == 'Z' || t->info.state == 'X') {
		lp_err_set(err, LP_EZOMBIE, "process %d (%s) is a zombie: it "
			   "has exited and waits for its parent to reap it",
			   (int)pid, t->info.comm);
		goto fail;
	}
	/* the tracer first: a traced process shows stopped ('t') while its
	 * tracer looks at it, and the tracer is what the user must remove */
	if (t->info.tracer > 0) {
		lp_err_set(err, LP_ETRACED, "process %d (%s) is already "
			   "traced by pid %d (%s)", (int)pid, t->info.comm,
			   (int)t->info.tracer,
			   t->info.tracer_comm[0] ? t->info.tracer_comm : "?");
		goto fail;
	}
	if (t->info.state == 'T' || t->info.state == 't') {
		/* stopped by a signal, and no tracer: nothing to detach */
		lp_err_set(err, LP_EUNSAFE, "process %d (%s) is stopped; "
			   "resume it with 'kill -CONT %d'", (int)pid,
			   t->info.comm, (int)pid);
		goto fail;
	}
	if (inj_refresh_maps(t, err) < 0) {
		struct inj_procinfo pi;

		/* it was there a moment ago (its status read): it exited */
		if (inj_read_procinfo(pid, &pi, NULL) < 0 || pi.state == 'Z' ||
		    pi.state == 'X') {
			lp_err_clear(err);
			lp_err_set(err, LP_EEXITED, "process %d exited",
				   (int)pid);
		}
		goto fail;
	}
	return t;
fail:
	inj_close(t);
	return NULL;
}

void
inj_close(struct inj_target *t)
{
	if (!t)
		return;
	inj_detach(t, NULL);
	/* a late stop must not outlive us holding the thread: wait a
	 * little for it (leakprobe's exit lets it go in any case) */
	for (int i = 0; i < 100 && inj__release_stuck(t) < 0; i++)
		usleep(1000);
	for (size_t i = 0; i < t->nmods; i++) {
		elf__free(t->mods[i].elf);
		free(t->mods[i].path);
	}
	free(t->mods);
	inj__free_maps(t->maps, t->nmaps);
	if (t->memfd >= 0)
		close(t->memfd);
	free(t->xstate);
	free(t);
}

const struct inj_procinfo *
inj_info(const struct inj_target *t)
{
	return &t->info;
}

int
inj_refresh_info(struct inj_target *t, struct lp_err *err)
{
	struct inj_procinfo pi;
	int rc;

	rc = inj_read_procinfo(t->pid, &pi, err);
	if (rc == 0)
		t->info = pi;
	return rc;
}

/* /proc/PID/mem, opened on first use: the fallback for process_vm_*. */
static int
memfd(struct inj_target *t, struct lp_err *err)
{
	char path[64];

	if (t->memfd >= 0)
		return t->memfd;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->pid);
	t->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (t->memfd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EFAULT),
				  "open '%s'", path);
	return t->memfd;
}

int
inj_read(struct inj_target *t, uint64_t addr, void *buf, size_t len,
	 struct lp_err *err)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n;
	int fd;

	n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && errno != ENOSYS && errno != EPERM && errno != EFAULT)
		return lp_err_sys(err, lp_errno_code(errno, LP_EFAULT),
				  "read %zu bytes at 0x%" PRIx64 " in pid %d",
				  len, addr, (int)t->pid);
	fd = memfd(t, err);
	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, (off_t)addr);
	if (n != (ssize_t)len)
		return lp_err_sys(err, LP_EFAULT,
				  "read %zu bytes at 0x%" PRIx64 " in pid %d",
				  len, addr, (int)t->pid);
	return 0;
}

int
inj_write(struct inj_target *t, uint64_t addr, const void *buf, size_t len,
	  struct lp_err *err)
{
	struct iovec local = { (void *)buf, len }, remote = { (void *)addr, len };
	ssize_t n;
	int fd;

	n = process_vm_writev(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* process_vm_writev refuses read-only pages; /proc/PID/mem does not
	 * (it is how a debugger writes), but we only write our own pages
	 * and the dead stack below the red zone. */
	fd = memfd(t, err);
	if (fd < 0)
		return fd;
	n = pwrite(fd, buf, len, (off_t)addr);
	if (n != (ssize_t)len)
		return lp_err_sys(err, LP_EFAULT,
				  "write %zu bytes at 0x%" PRIx64 " in pid %d",
				  len, addr, (int)t->pid);
	return 0;
}

int
inj_read_string(struct inj_target *t, uint64_t addr, char *buf, size_t len,
		struct lp_err *err)
{
	size_t got = 0, chunk;
	int rc;

	if (!len)
		return -LP_EINVAL;
	/* Read in chunks that do not cross a page boundary, so a string
	 * near the end of a mapping does not fault the whole read. */
	while (got < len - 1) {
		chunk = 4096 - ((addr + got) & 4095);
		if (chunk > len - 1 - got)
			chunk = len - 1 - got;
		rc = inj_read(t, addr + got, buf + got, chunk, err);
		if (rc < 0)
			return rc;
		if (memchr(buf + got, '\0', chunk))
			return 0;
		got += chunk;
	}
	buf[len - 1] = '\0';
	return 0;
}

size_t
inj_anon_maps(struct inj_target *t, uint64_t size, const char *perms,
	      uint64_t *starts, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nmaps && n < max; i++) {
		const struct inj_map *m = &t->maps[i];

		/* shared anonymous memory shows as "/dev/zero (deleted)";
		 * never a file's mapping */
		if (m->end - m->start == size &&
		    !strcmp(m->perms, perms) &&
		    (!m->path || !strncmp(m->path, "/dev/zero", 9)))
			starts[n++] = m->start;
	}
	return n;
}

/*
 * A free range of len bytes (page multiple) in the target's address space
 * from the last maps refresh, with a free page on either side: in the
 * largest gap above 4 GiB below the mappings under the main stack (never
 * the gap the stack grows into), an eighth of the way up from its low end
 * plus a random number of pages within the next eighth.  The kernel's
 * top-down allocator hands out the top of the highest gap that fits, and
 * the heap grows up from the bottom of the gap above it: both stay far
 * from here.  0 or -LP_ENOMEM.
 */
int
inj_free_gap(struct inj_target *t, size_t len, uint64_t *addr)
{
	uint64_t stack = UINT64_MAX, best = 0, lo_end = 0, span, pages, r = 0;

	for (size_t i = 0; i < t->nmaps; i++)
		if (t->maps[i].path && !strcmp(t->maps[i].path, "[stack]"))
			stack = t->maps[i].start;
	for (size_t i = 1; i < t->nmaps; i++) {
		const struct inj_map *lo = &t->maps[i - 1], *hi = &t->maps[i];

		if (hi->start >= stack || hi->start < lo->end ||
		    lo->end < (1ull << 32))
			continue;
		if (hi->start - lo->end >= len + 2 * 4096ull &&
		    hi->start - lo->end > best) {
			best = hi->start - lo->end;
			lo_end = lo->end;
		}
	}
	if (!best)
		return -LP_ENOMEM;
	/* pages that can hold the range, a free page left on either side */
	span = (best - len - 2 * 4096ull) / 4096;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = lp_mono_ns();
	pages = span / 8 + (span / 8 ? r % (span / 8) : 0);
	*addr = lo_end + 4096 + pages * 4096;
	return 0;
}

/*
 * Is the mapping at `at` the one our mmap(MAP_SHARED | MAP_ANONYMOUS)
 * made?  It starts exactly at `at`, is `len` bytes, has exactly the
 * permissions `prot` (shared), shows as "/dev/zero (deleted)" and has an
 * inode none of the `nbefore` mappings seen before the mmap had (each
 * shared anonymous mapping gets an inode of its own).  Anything else is a
 * mapping of the target's.  1 (its inode in *inode) or 0.
 */
int
inj__own_map(const struct inj_map *maps, size_t n, uint64_t at, uint64_t len,
	     int prot, const uint64_t *before, size_t nbefore,
	     uint64_t *inode)
{
	char perms[5];

	inj__prot_perms(prot, perms);
	for (size_t i = 0; i < n; i++) {
		const struct inj_map *m = &maps[i];

		if (m->start != at)
			continue;
		if (m->end - m->start != len || strcmp(m->perms, perms) ||
		    !m->path || strcmp(m->path, "/dev/zero (deleted)") ||
		    !m->inode)
			return 0;
		for (size_t j = 0; j < nbefore; j++)
			if (before[j] == m->inode)
				return 0;
		*inode = m->inode;
		return 1;
	}
	return 0;
}

/* The maps' permission string of a shared mapping with `prot`. */
void
inj__prot_perms(int prot, char perms[5])
{
	perms[0] = prot & PROT_READ ? 'r' : '-';
	perms[1] = prot & PROT_WRITE ? 'w' : '-';
	perms[2] = prot & PROT_EXEC ? 'x' : '-';
	perms[3] = 's';
	perms[4] = 0;
}
