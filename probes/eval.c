/*
 * The safe-point eval session: register a postponed job that starts a
 * helper thread in the target, then drive that thread over two FIFOs.
 *
 *   leakprobe                                 target
 *   ---------                                 ------
 *   lock: abstract socket @leakprobe/PID-START
 *   mkdtemp TMP/leakprobe.PID.XXXXXX (0700, target's uid)
 *     helper.rb snippet.N.rb res(fifo) ack(fifo)
 *   open res O_RDONLY|O_NONBLOCK
 *   open ack O_RDWR|O_NONBLOCK  (we are its writer from the start, so the
 *                                helper sees EOF whenever we go away)
 *   stop main thread ~0.1 ms:
 *     code page  <- header + bootstrap
 *     rb_postponed_job_register_one(0, rb_eval_string, page+64)
 *       or preregister + trigger
 *   detach; wake with SIGVTALRM/SIGCHLD if it does not start
 *                                             job (trap ctx): Thread.new
 *                                             helper: load helper.rb
 *                                             open res, ack; compile
 *   <- {"hello":...}
 *   unlink every file, rmdir; stop ~0.1 ms: munmap page
 *   -> "run measure 0 100 1"                  100 calls, GC.start
 *   <- {"kind":...,"calls":100,"gc":{...}}
 *   ...
 *   -> "stop" / close                         helper ends (EOF/EPIPE)
 */
#include "probes/probes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define PAGE_SIZE_	4096
#define HDR_SIZE	64
#define PAGE_MAGIC	"LEAKPROBE-JOB-1"	/* 15 chars + NUL = 16 */
#define STATE_ARMED	1
#define STATE_HARMLESS	2
/* the injector's call trampoline, at the end of the page (INJ_TRAMP_SIZE
 * bytes): the page is mapped rwx, shared (see register_job) */
#define TRAMP_OFF	(PAGE_SIZE_ - 64)
#define PAGE_PROT	(PROT_READ | PROT_WRITE | PROT_EXEC)

/* Header at the start of our code page in the target. */
struct page_hdr {
	char magic[16];
	uint64_t owner_pid;
	uint64_t written_ns;
	uint32_t state;
	uint32_t pad;
	char reserved[HDR_SIZE - 40];
};

struct probe_session {
	struct inj_target *t;
	struct probe_ruby ruby;
	double timeout;
	int lock_fd;
	char lock_path[128];
	char dir[256];		/* our path to the channel directory */
	char tdir[256];		/* the same directory as the target sees it */
	int nfiles;		/* snippet files written */
	int res_fd, ack_fd, dump_fd, alive_fd;
	uint64_t page;		/* code page in the target, 0 when none */
	uint64_t page_inode;	/* its inode in the maps: what makes it ours */
	bool page_reused;
	uint64_t page_hint;	/* where a dead run recorded its page */
	bool page_fresh;	/* the stale page found was never armed */
	uint64_t page_spare;	/* a never armed page of a dead run, to unmap */
	uint64_t spare_inode;
	uint64_t page_at;	/* where a new page goes (on record first) */
	bool page_rwx;		/* s->page is mapped rwx (a page retired
				 * by an earlier run is read-only) */
	bool page_armed;	/* s->page held a bootstrap, or was reused */
	uint64_t armed_here;	/* the page this session armed (no call of
				 * a dead run can be in flight in it) */
	bool keep_record;	/* a page may exist that nobody else knows
				 * of: the channel directory keeps its
				 * record for the next run */
	uint64_t extra[8];	/* more pages of dead runs: reclaimed once
				 * our job has run */
	uint64_t extra_inode[8];
	int nextra;
	char *inbuf;
	size_t inlen, incap;
	uint64_t stop_ns, held_ns, dirty_ns, unmap_stop_ns, start_ns;
	uint64_t back_ns;	/* first stop .. thread seen back, 0: unseen */
	unsigned nstops;	/* stops of the start (wake ones included) */
	bool in_syscall;	/* main thread was blocked in a syscall */
	long syscall_nr;	/* which one, or -1 */
	uint64_t marked;	/* Ruby <= 2.7: the current-thread global when
				 * the job (or the last no-op job) was marked */
	bool woke_marked;	/* the registration woke the main thread in
				 * place, the job marked on it: it runs
				 * without more wake rounds soon */
	bool cond_wait;		/* the main thread was seen in a condition-
				 * variable wait of Ruby's (wake.c) */
	bool ignore_stop;	/* grace period after SIGINT: see start */
	bool gcstat;		/* helper turned into a GC.stat reporter */
	bool helper_seen;	/* the helper opened its end of the channel */
	bool eval_only;		/* its helper evaluates once and ends */
	bool busy;		/* an eval timed out: the helper still runs
				 * it, so the end does not wait for it */
	char bye[256];		/* the helper's last word: why it ended */
};

/* ---- lock ------------------------------------------------------------ */

/*
 * One leakprobe per target: an abstract unix socket named after the
 * target's pid and start time (so a reused pid is another name).  The
 * kernel releases it when we exit, however we exit, and it is no file:
 * a SIGKILLed leakprobe leaves nothing behind.  The holder listens, so a
 * second leakprobe can ask who holds it (SO_PEERCRED).
 */
static int
take_lock(struct probe_session *s, struct lp_err *err)
{
	const struct inj_procinfo *pi = inj_info(s->t);
	struct sockaddr_un sa;
	socklen_t len;
	int fd, n;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
		     "leakprobe/%d-%" PRIu64, (int)pi->pid, pi->start_time);
	snprintf(s->lock_path, sizeof(s->lock_path), "@%s", sa.sun_path + 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  (size_t)n);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lp_err_sys(err, LP_EIO, "lock: socket");
	if (bind(fd, (struct sockaddr *)&sa, len) == 0 && listen(fd, 4) == 0) {
		s->lock_fd = fd;
		return 0;
	}
	if (errno != EADDRINUSE) {
		lp_err_sys(err, LP_EIO, "lock '%s'", s->lock_path);
		close(fd);
		return -LP_EIO;
	}
	close(fd);
	{
		struct ucred cred = { 0, 0, 0 };
		socklen_t cl = sizeof(cred);
		char who[32] = "?";

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
			snprintf(who, sizeof(who), "%d", (int)cred.pid);
		if (fd >= 0)
			close(fd);
		return lp_err_set(err, LP_EBUSY, "process %d is already being "
				  "probed by leakprobe (pid %s); wait for it "
				  "to finish", (int)pi->pid, who);
	}
}

static void
drop_lock(struct probe_session *s)
{
	if (s->lock_fd < 0)
		return;
	close(s->lock_fd);
	s->lock_fd = -1;
}

/* ---- channel directory ---------------------------------------------- */

static int
write_file(struct probe_session *s, const char *name, const char *data,
	   size_t len, struct lp_err *err)
{
	const struct inj_procinfo *pi = inj_info(s->t);
	char path[600];
	size_t off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return lp_err_sys(err, LP_EIO, "create '%s'", path);
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			lp_err_sys(err, LP_EIO, "write '%s'", path);
			close(fd);
			return -LP_EIO;
		}
		off += (size_t)n;
	}
	if (geteuid() != pi->euid && fchown(fd, pi->euid, pi->egid) < 0) {
		lp_err_sys(err, LP_EPERM, "chown '%s'", path);
		close(fd);
		return -LP_EPERM;
	}
	close(fd);
	return 0;
}

static int
make_fifo(struct probe_session *s, const char *name, struct lp_err *err)
{
	const struct inj_procinfo *pi = inj_info(s->t);
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	if (mkfifo(path, 0600) < 0)
		return lp_err_sys(err, LP_EIO, "mkfifo '%s'", path);
	if (geteuid() != pi->euid && chown(path, pi->euid, pi->egid) < 0)
		return lp_err_sys(err, LP_EPERM, "chown '%s'", path);
	return 0;
}

/* Remove every file we put in the directory, and the directory (but for
 * the page record when a page may exist that only it names). */
static void
remove_dir(struct probe_session *s)
{
	char path[600];
	DIR *d;
	struct dirent *de;

	if (!s->dir[0])
		return;
	d = opendir(s->dir);
	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' ||
			    (s->keep_record && !strcmp(de->d_name, "page")))
				continue;
			snprintf(path, sizeof(path), "%s/%s", s->dir,
				 de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	/* with the record kept, the next run takes the directory over */
	if (!s->keep_record)
		rmdir(s->dir);
	s->dir[0] = '\0';
}

/*
 * Record in the channel directory where our page is (or is about to be):
 * written aside and renamed, so that a record always exists from the
 * first moment until the directory goes.
 */
static int
record_page(struct probe_session *s, uint64_t addr)
{
	char rec[32], from[600], to[600];

	snprintf(rec, sizeof(rec), "%" PRIx64 "\n", addr);
	snprintf(from, sizeof(from), "%s/page.new", s->dir);
	snprintf(to, sizeof(to), "%s/page", s->dir);
	unlink(from);
	if (write_file(s, "page.new", rec, strlen(rec), NULL) < 0 ||
	    rename(from, to) < 0)
		return -LP_EIO;
	return 0;
}

/*
 * Channel directories of dead runs on this target (we hold the lock, so
 * their leakprobe is gone: a SIGKILL before it could remove them).  The
 * first is taken over: renamed to a fresh name (atomically: at every
 * instant exactly one directory of ours exists, and a job of the dead run
 * that starts late no longer finds its helper there), emptied but for its
 * page record, which becomes ours.  Any others are removed.  Only
 * directories owned by the target's user or by us count.  Returns true
 * when one was taken over (s->dir is then set).
 */
static bool
take_stale_dirs(struct probe_session *s, const char *root)
{
	const struct inj_procinfo *pi = inj_info(s->t);
	char path[128], prefix[48], name[64];
	struct dirent *de;
	bool taken = false;
	size_t pl;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", root);
	pl = (size_t)snprintf(prefix, sizeof(prefix), "leakprobe.%d.",
			      (int)pi->pid);
	d = opendir(path);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		struct dirent *e;
		struct stat st;
		uint8_t rnd[6];
		bool mine = false;
		DIR *sd;
		int fd;

		if (strncmp(de->d_name, prefix, pl) ||
		    (taken && !strcmp(de->d_name, name)))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    (st.st_uid != pi->euid && st.st_uid != geteuid())) {
			close(fd);
			continue;
		}
		if (!taken) {
			static const char az[] = "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

			if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
				memset(rnd, (int)getpid(), sizeof(rnd));
			snprintf(name, sizeof(name), "%s%c%c%c%c%c%c", prefix,
				 az[rnd[0] % 62], az[rnd[1] % 62],
				 az[rnd[2] % 62], az[rnd[3] % 62],
				 az[rnd[4] % 62], az[rnd[5] % 62]);
			if (renameat2(dirfd(d), de->d_name, dirfd(d), name,
				      RENAME_NOREPLACE) == 0) {
				taken = mine = true;
				lp_debug("took over the channel directory %s "
					 "of a dead run", de->d_name);
				snprintf(s->dir, sizeof(s->dir), "%s/%s", path,
					 name);
				(void)fchmod(fd, 0700);
			}
		}
		sd = fdopendir(fd);
		if (!sd) {
			close(fd);
			continue;
		}
		while ((e = readdir(sd))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (mine && !strcmp(e->d_name, "page") &&
			    !s->page_hint) {
				char buf[32];
				int pf = openat(dirfd(sd), "page", O_RDONLY |
						O_NOFOLLOW | O_CLOEXEC);
				ssize_t n = pf >= 0 ?
					read(pf, buf, sizeof(buf) - 1) : -1;

				if (pf >= 0)
					close(pf);
				if (n > 0) {
					buf[n] = '\0';
					s->page_hint = strtoull(buf, NULL, 16);
					continue;	/* kept */
				}
			}
			unlinkat(dirfd(sd), e->d_name, 0);
		}
		closedir(sd);
		if (!mine)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	return taken;
}

/*
 * The directory must be visible at the same path to us and to the target:
 * we create it through /proc/PID/root, so a target in a container (own
 * mount namespace or chroot) sees it as /tmp/leakprobe.PID.XXXXXX.
 */
static int
make_channel(struct probe_session *s, const struct probe_opts *o,
	     struct lp_err *err)
{
	const struct inj_procinfo *pi = inj_info(s->t);
	struct stat ours, theirs;
	char name[32], root[64];
	char *tail;
	int rc;

	snprintf(root, sizeof(root), "/proc/%d/root", (int)pi->pid);
	if (stat("/", &ours) == 0 && stat(root, &theirs) == 0 &&
	    ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino) {
		/* same root; a plain /tmp only in the same mount namespace
		 * (systemd's PrivateTmp= gives the target its own /tmp) */
		char ns[64];

		snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", (int)pi->pid);
		if (stat("/proc/self/ns/mnt", &ours) == 0 &&
		    stat(ns, &theirs) == 0 && ours.st_ino == theirs.st_ino &&
		    ours.st_dev == theirs.st_dev)
			root[0] = '\0';
	}
	snprintf(s->dir, sizeof(s->dir), "%s/tmp/leakprobe.%d.XXXXXX", root,
		 (int)pi->pid);
	if (!take_stale_dirs(s, root) && !mkdtemp(s->dir)) {
		rc = lp_err_sys(err, errno == EACCES ? LP_EPERM : LP_EIO,
				"create the result channel directory '%s'",
				s->dir);
		s->dir[0] = '\0';
		return rc;
	}
	tail = strrchr(s->dir, '/');
	snprintf(s->tdir, sizeof(s->tdir), "/tmp%s", tail);
	if (geteuid() != pi->euid && chown(s->dir, pi->euid, pi->egid) < 0)
		return lp_err_sys(err, LP_EPERM, "chown '%s'", s->dir);

	if ((rc = make_fifo(s, "res", err)) < 0 ||
	    (rc = make_fifo(s, "ack", err)) < 0 ||
	    (rc = make_fifo(s, "alive", err)) < 0 ||
	    (o->dump_channel && (rc = make_fifo(s, "dump", err)) < 0))
		return rc;
	for (size_t i = 0; i < o->nsnippets; i++) {
		snprintf(name, sizeof(name), "snippet.%zu.rb", i);
		rc = write_file(s, name, o->snippets[i].code,
				o->snippets[i].len, err);
		if (rc < 0)
			return rc;
	}
	{
		size_t hl;
		char *helper = probe__helper_for(o->eval != NULL, &hl);

		rc = write_file(s, "helper.rb", helper, hl, err);
		free(helper);
	}
	if (rc < 0)
		return rc;
	if (o->eval) {
		char args[96];
		int n = snprintf(args, sizeof(args), "%d %s %" PRIu64 "\n",
				 o->eval->idx, o->eval->json ? "json" :
				 "inspect", o->eval->max_bytes);

		rc = write_file(s, "eval", args, (size_t)n, err);
		if (rc < 0)
			return rc;
	}
	{
		char path[600];

		snprintf(path, sizeof(path), "%s/res", s->dir);
		s->res_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (s->res_fd < 0)
			return lp_err_sys(err, LP_EIO, "open '%s'", path);
		snprintf(path, sizeof(path), "%s/ack", s->dir);
		s->ack_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (s->ack_fd < 0)
			return lp_err_sys(err, LP_EIO, "open '%s'", path);
		/* never written: the helper's watchdog sees EOF when we go */
		snprintf(path, sizeof(path), "%s/alive", s->dir);
		s->alive_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (s->alive_fd < 0)
			return lp_err_sys(err, LP_EIO, "open '%s'", path);
		if (o->dump_channel) {
			snprintf(path, sizeof(path), "%s/dump", s->dir);
			s->dump_fd = open(path, O_RDONLY | O_NONBLOCK |
					  O_CLOEXEC);
			if (s->dump_fd < 0)
				return lp_err_sys(err, LP_EIO, "open '%s'",
						  path);
		}
	}
	(void)name;
	return 0;
}

/* ---- the code page --------------------------------------------------- */

/*
 * A page left by an earlier run that timed out (its job may still be
 * pending, pointing at it): reuse it, so that the pending job, if it ever
 * runs, runs *our* bootstrap, and so that pages never accumulate.
 */
static uint64_t
find_stale_page(struct probe_session *s)
{
	/* rwx in use, read-only once retired, rw- from older versions */
	static const char *const perms[] = { "rwxs", "r--s", "rw-s" };
	static const struct page_hdr zero;
	uint64_t cand[64], found = 0, unarmed = 0;
	bool found_rwx = false;
	struct page_hdr h;
	size_t n;

	s->nextra = 0;
	/* the maps were read by inj_open() a moment ago */
	for (size_t p = 0; p < sizeof(perms) / sizeof(perms[0]); p++) {
		n = inj_anon_maps(s->t, PAGE_SIZE_, perms[p], cand, 64);
		for (size_t i = 0; i < n; i++) {
			if (inj_read(s->t, cand[i], &h, sizeof(h), NULL) < 0)
				continue;
			/* mapped by a run that died before it wrote the
			 * header: the address it recorded says it is ours,
			 * and no job can point at a page never armed */
			if (p == 0 && cand[i] == s->page_hint &&
			    !memcmp(&h, &zero, sizeof(h))) {
				unarmed = cand[i];
				continue;
			}
			/*
			 * Armed or retired by an earlier run: we hold the
			 * lock, so no other leakprobe probes this target and
			 * its owner is gone (its pid may live on in another
			 * process: not checked).  A job it registered may
			 * still be pending and point at it: reuse it, never
			 * unmap it now.  Any more are reclaimed once our
			 * job has run (unmap_page).
			 */
			if (memcmp(h.magic, PAGE_MAGIC, sizeof(PAGE_MAGIC)) ||
			    (h.state != STATE_HARMLESS &&
			     h.state != STATE_ARMED))
				continue;
			if (!found) {
				found = cand[i];
				found_rwx = p == 0;
			} else if (s->nextra < (int)(sizeof(s->extra) /
						     sizeof(s->extra[0]))) {
				s->extra_inode[s->nextra] = inj_page_inode(
					s->t, cand[i], PAGE_SIZE_);
				s->extra[s->nextra++] = cand[i];
			}
		}
	}
	s->spare_inode = unarmed ? inj_page_inode(s->t, unarmed, PAGE_SIZE_) :
			 0;
	if (found) {
		s->page_inode = inj_page_inode(s->t, found, PAGE_SIZE_);
		s->page_spare = unarmed;	/* unmapped in our stop */
		s->page_rwx = found_rwx;
		s->page_armed = true;
		return found;
	}
	s->page_fresh = unarmed != 0;
	s->page_rwx = unarmed != 0;
	s->page_inode = s->spare_inode;
	s->spare_inode = 0;
	return unarmed;
}

/*
 * Is page still the mapping we know (exactly there, its size, shared
 * anonymous, its inode)?  Else it is the target's now (ours went away and
 * something refilled the range): never write, protect or unmap it.
 */
static bool
still_ours(struct probe_session *s, uint64_t page, uint64_t inode)
{
	if (inj_page_is(s->t, page, PAGE_SIZE_, inode))
		return true;
	lp_debug("page 0x%" PRIx64 " is not ours any more: left alone", page);
	return false;
}

static int
write_page(struct probe_session *s, uint32_t state, const char *code,
	   struct lp_err *err)
{
	char buf[PAGE_SIZE_];
	struct page_hdr *h = (struct page_hdr *)buf;
	size_t n = strlen(code);
	int rc;

	if (HDR_SIZE + n + 1 > sizeof(buf))
		return lp_err_set(err, LP_EINVAL, "bootstrap too long");
	if (!still_ours(s, s->page, s->page_inode))
		return lp_err_set(err, LP_EINJECT, "the code page at 0x%"
				  PRIx64 " in process %d is gone", s->page,
				  (int)inj_info(s->t)->pid);
	memset(buf, 0, HDR_SIZE);
	memcpy(h->magic, PAGE_MAGIC, sizeof(PAGE_MAGIC));
	h->owner_pid = (uint64_t)getpid();
	h->written_ns = lp_wall_ns();
	h->state = state;
	memcpy(buf + HDR_SIZE, code, n + 1);
	/* Code first, header last: a reader never sees a header that
	 * promises code not yet written. */
	rc = inj_write(s->t, s->page + HDR_SIZE, buf + HDR_SIZE, n + 1, err);
	if (rc == 0)
		rc = inj_write(s->t, s->page, buf, HDR_SIZE, err);
	return rc;
}

/* A page of ours that is never armed and may outlive us (a dead run's
 * spare we could not unmap) carries our header, so that any later run
 * knows it for ours without a record.  No stop: process_vm_writev. */
static void
stamp_page(struct probe_session *s, uint64_t page, uint64_t inode)
{
	uint64_t keep = s->page, keep_inode = s->page_inode;

	s->page = page;
	s->page_inode = inode;
	if (write_page(s, STATE_HARMLESS, "nil", NULL) < 0)
		lp_debug("could not mark page 0x%" PRIx64, page);
	s->page = keep;
	s->page_inode = keep_inode;
}

static int stop_safely(struct probe_session *s, struct lp_err *err);

/* Each step runs detached: the thread is stopped again (safely) for the
 * next one.  0, or <0 when it cannot be. */
static int
need_stop(struct probe_session *s, struct lp_err *err)
{
	return inj_attached(s->t) ? 0 : stop_safely(s, err);
}

static int
remote_mprotect(struct probe_session *s, uint64_t page, uint64_t inode,
		int prot, struct lp_err *err)
{
	int rc = need_stop(s, err);

	if (rc == 0 && !still_ours(s, page, inode))
		return lp_err_set(err, LP_EINJECT, "the code page at 0x%"
				  PRIx64 " in process %d is gone", page,
				  (int)inj_info(s->t)->pid);

	return rc < 0 ? rc : inj_mprotect(s->t, page, PAGE_SIZE_, prot, err);
}

/*
 * Does the stopped main thread's stack hold an address in page's
 * trampoline: the return address of a call through it that never
 * finished (ours or a dead run's), or the rip of a step in it that a
 * signal handler interrupted (saved in the handler's signal frame)?  Only
 * the trampoline counts: a stale copy of the job's data pointer (the
 * page's header) in a frame above would keep an idle page for good.
 * Read from the stack pointer up, 64 KiB at most; unreadable counts as
 * yes.
 */
static bool
page_on_stack(struct probe_session *s, uint64_t page)
{
	uint64_t sp = inj_stopped_sp(s->t), buf[512];

	for (uint64_t a = sp & ~(uint64_t)7; a < sp + 65536;
	     a += sizeof(buf)) {
		size_t len = sizeof(buf);

		if ((a & ~(uint64_t)4095) != ((a + len - 1) & ~(uint64_t)4095))
			len = 4096 - (a & 4095);	/* to a page end */
		if (inj_read(s->t, a, buf, len, NULL) < 0)
			return a == (sp & ~(uint64_t)7);
		for (size_t i = 0; i < len / 8; i++)
			if (buf[i] - (page + TRAMP_OFF) < INJ_TRAMP_SIZE)
				return true;
		a -= sizeof(buf) - len;
	}
	return false;
}

/* In a stop: no call (ours that timed out, or a dead run's) can still
 * return into page, and the thread does not run in it (a dead run's step
 * left to the thread: the trampoline after its call, or its syscall). */
static bool
page_idle(struct probe_session *s, uint64_t page)
{
	if (inj_page_pinned(s->t, page) ||
	    inj_stopped_ip(s->t) - page < PAGE_SIZE_)
		return false;
	/*
	 * The page this session armed (a dead run's calls were ruled out
	 * before): the injector pins it while a call of ours may still
	 * return into it.  Its stack scan would find the return
	 * addresses our finished calls left below the thread's stack
	 * pointer, stale, once the thread runs deeper (waiting for the GVL
	 * behind a heap dump, say).  The scan is for calls of dead runs.
	 */
	if (page && page == s->armed_here)
		return true;
	return !page_on_stack(s, page);
}

/*
 * Turn a possibly still pending job into a no-op; the page stays mapped
 * (the job still points at it) and is marked for reclaim by a later run.
 * The header and "nil" need no stop (process_vm_writev).  Then, in a stop
 * (the one we are in, or one of its own), the page becomes read-only:
 * all a pending job does is read it.  Unless a call of ours that did not
 * finish may still return into its trampoline: then it stays rwx.
 */
static void
retire_page(struct probe_session *s)
{
	bool ours_stop = false;

	if (!s->page)
		return;
	if (!still_ours(s, s->page, s->page_inode)) {
		/* gone, and the range refilled by the target: forget it */
		inj_use_page(s->t, 0, TRAMP_OFF);
		s->page = 0;
		return;
	}
	if (write_page(s, STATE_HARMLESS, "nil", NULL) < 0)
		lp_debug("could not defuse code page 0x%" PRIx64, s->page);
	if (!inj_page_pinned(s->t, s->page) && s->page_rwx) {
		if (!inj_attached(s->t) && inj_attach(s->t, NULL) == 0)
			ours_stop = true;
		if (inj_attached(s->t) && page_idle(s, s->page) &&
		    remote_mprotect(s, s->page, s->page_inode, PROT_READ,
				    NULL) == 0)
			s->page_rwx = false;
		if (ours_stop)
			inj_detach(s->t, NULL);
	}
	lp_debug("code page 0x%" PRIx64 " retired, %s", s->page,
		 s->page_rwx ? "still rwx (a call may return into it)" :
		 "read-only");
	inj_use_page(s->t, 0, TRAMP_OFF);	/* no more calls through it */
	s->page = 0;
}

/* The page at `at` (on record: ours, or a dead run's) is a blank rwx
 * shared page: an mmap of ours that did not end in our hands made it.
 * Take it as s->page. */
static bool
adopt_page(struct probe_session *s, uint64_t at)
{
	static const struct page_hdr zero;
	uint64_t cand[64];
	struct page_hdr h;
	size_t n = inj_anon_maps(s->t, PAGE_SIZE_, "rwxs", cand, 64);

	for (size_t i = 0; i < n; i++)
		if (cand[i] == at &&
		    inj_read(s->t, at, &h, sizeof(h), NULL) == 0 &&
		    !memcmp(&h, &zero, sizeof(h))) {
			s->page = at;
			s->page_inode = inj_page_inode(s->t, at, PAGE_SIZE_);
			s->page_rwx = true;
			s->keep_record = false;
			return true;
		}
	return false;
}

/*
 * In a stop: make s->page a mapped rwx page of ours and the injector's
 * code page.  A new page goes only where the channel directory already
 * says (s->page_at, recorded before): if the gap was taken since we read
 * the maps, another gap is recorded first, then mapped; never an address
 * the kernel chooses, which a kill before the next record would leave
 * unrecognisable.  A dead run's spare page goes in the same stop.
 */
static int
ensure_page(struct probe_session *s, struct lp_err *err)
{
	struct inj_target *t = s->t;
	uint64_t at;
	int rc;

	/*
	 * A dead run's page that a call of that run may still return into
	 * (its trampoline after the call, or a step in it under a signal
	 * handler): rearming its trampoline would clear the completion word
	 * and result under that call, whose tail then overwrites ours.  It
	 * stays as it is (reclaimed once idle, by us or a later run); a
	 * fresh page goes to a new gap, on record first.
	 */
	if (s->page && s->page_reused && need_stop(s, NULL) == 0 &&
	    !page_idle(s, s->page)) {
		lp_debug("page 0x%" PRIx64 " of a dead run is still in use: "
			 "a fresh page instead", s->page);
		if (s->nextra < (int)(sizeof(s->extra) / sizeof(s->extra[0]))) {
			s->extra_inode[s->nextra] = s->page_inode;
			s->extra[s->nextra++] = s->page;
		}
		s->page = 0;
		s->page_reused = false;
		s->page_armed = false;
		if (inj_refresh_maps(t, NULL) < 0 ||
		    inj_free_gap(t, PAGE_SIZE_, &at) < 0)
			return lp_err_set(err, LP_EINJECT, "no free range for "
					  "the code page in process %d",
					  (int)inj_info(t)->pid);
		if (record_page(s, at) < 0)
			return lp_err_sys(err, LP_EIO, "record the code page "
					  "in '%s'", s->dir);
		s->page_at = at;
	}
	if (s->page && !s->page_rwx) {
		/* retired read-only by an earlier run */
		rc = remote_mprotect(s, s->page, s->page_inode, PAGE_PROT,
				     err);
		if (rc < 0)
			return rc;
		s->page_rwx = true;
	}
	for (int tries = 0; !s->page; tries++) {
		struct lp_err e = { 0 };
		uint64_t at = s->page_at;
		uint8_t b;

		if (!at)
			return lp_err_set(err, LP_EINJECT, "no free range for "
					  "the code page in process %d",
					  (int)inj_info(t)->pid);
		/* a step that failed ran detached: stop again */
		if ((rc = need_stop(s, err)) < 0)
			return rc;
		rc = inj_mmap_at(t, at, PAGE_SIZE_, PAGE_PROT, &s->page, &e);
		if (rc == 0) {
			s->page_inode = inj_mmap_inode(t);
			s->page_rwx = true;
			s->keep_record = false;	/* we know where it is */
			break;
		}
		s->page = 0;
		if (e.sys_errno != EEXIST) {
			/* a step left to the thread that was not seen over
			 * may still map it (or did, after all): only the
			 * record knows it then.  A step refused before it
			 * ran leaves nothing. */
			if (inj_step_settled(t) != 1 ||
			    inj_read(t, at, &b, 1, NULL) == 0)
				s->keep_record = true;
			return lp_err_set(err, e.code ? e.code : LP_EINJECT,
					  "%s", e.msg);
		}
		if (tries >= 3 || inj_refresh_maps(t, NULL) < 0)
			return lp_err_set(err, e.code, "%s", e.msg);
		/* an earlier mmap of ours that did not end in our hands,
		 * ours or a dead run's (whose thread ran it only after our
		 * maps were read) */
		if ((s->keep_record || at == s->page_hint) &&
		    adopt_page(s, at))
			break;
		if (inj_free_gap(t, PAGE_SIZE_, &at) < 0 ||
		    record_page(s, at) < 0)
			return lp_err_set(err, e.code, "%s", e.msg);
		lp_debug("the gap at 0x%" PRIx64 " was taken: 0x%" PRIx64,
			 s->page_at, at);
		s->page_at = at;
	}
	inj_use_page(t, s->page, TRAMP_OFF);
	if (s->page_spare && !still_ours(s, s->page_spare, s->spare_inode))
		s->page_spare = 0;
	if (s->page_spare && need_stop(s, NULL) == 0 &&
	    still_ours(s, s->page_spare, s->spare_inode)) {
		/* never armed by its run, but a call of that run may be in
		 * flight through it (killed before the header was written):
		 * then it is marked ours and left for a later reclaim */
		if (!page_idle(s, s->page_spare)) {
			stamp_page(s, s->page_spare, s->spare_inode);
			if (s->nextra < (int)(sizeof(s->extra) /
					      sizeof(s->extra[0]))) {
				s->extra_inode[s->nextra] = s->spare_inode;
				s->extra[s->nextra++] = s->page_spare;
			}
			s->page_spare = 0;
			record_page(s, s->page);
		} else if (inj_munmap(t, s->page_spare, PAGE_SIZE_,
				      NULL) == 0) {
			s->page_spare = 0;
			record_page(s, s->page);
		}
	}
	return 0;
}

static const char *const unsafe_funcs[] = {
	"malloc", "free", "calloc", "realloc", "memalign", "posix_memalign",
	"aligned_alloc", "valloc", "pvalloc", "malloc_trim", "mallinfo",
	"mallinfo2", "malloc_usable_size", "reallocarray", "__libc_malloc",
	"__libc_free", "__libc_calloc", "__libc_realloc", NULL
};

/*
 * Is the stopped main thread at a point where our call could deadlock?
 * The registration itself takes no lock, but the TLS lookup behind
 * GET_EC() may reach __tls_get_addr, which can malloc: refuse while the
 * thread is inside the allocator or the dynamic linker.
 */
static bool
unsafe_point(struct probe_session *s)
{
	uint64_t ip = inj_stopped_ip(s->t);
	const char *mod = inj_addr_module(s->t, ip);
	char name[256];
	size_t n;

	if (mod && !strncmp(mod, "ld-", 3))
		return true;
	/* One by-address lookup (binary search), then compare names:
	 * "malloc+0x12 (libc.so.6)" or "malloc@@GLIBC_2.2.5+0x12 ...". */
	inj_symbolize(s->t, ip, name, sizeof(name));
	n = strcspn(name, "+@ ");
	for (int i = 0; unsafe_funcs[i]; i++)
		if (strlen(unsafe_funcs[i]) == n &&
		    !strncmp(name, unsafe_funcs[i], n))
			return true;
	return false;
}

/*
 * State letter and voluntary context switches of the main thread, from
 * /proc/PID/task/PID/status, read into *buf (grown as needed).  0, or -1
 * when it cannot be read.
 */
static int
main_sched(pid_t pid, char **buf, size_t *cap, char *state, long *vcs)
{
	static const char st[] = "\nState:\t";
	static const char vc[] = "\nvoluntary_ctxt_switches:\t";
	char path[64], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid,
		 (int)pid);
	if (lp_read_file(path, buf, cap, NULL) <= 0 ||
	    !(p = strstr(*buf, st)))
		return -1;
	*state = p[sizeof(st) - 1];
	if (!(p = strstr(*buf, vc)))
		return -1;
	*vcs = strtol(p + sizeof(vc) - 1, NULL, 10);
	return 0;
}

static int stop_safely(struct probe_session *s, struct lp_err *err);

/*
 * While the main thread is stopped: if it waits on a condition variable
 * of Ruby's that no signal ends, wake it in place (wake.c).  1 when woken
 * (at detach), 0 when nothing applied.
 */
static int
wake_in_stop(struct probe_session *s, struct probe_wait *w)
{
	long nr = inj_stopped_syscall(s->t);

	/* the 3.3+ scheduler's waits end with SIGCHLD (wake()) */
	if ((nr != SYS_futex && nr != SYS_restart_syscall) ||
	    s->ruby.wake_chld)
		return 0;
	w->max_frames = 6;
	probe__wait_inspect(s->t, &s->ruby, w);
	if (w->from_ruby && (w->kind == PROBE_WAIT_COND ||
			     w->kind == PROBE_WAIT_COND_TIMED))
		s->cond_wait = true;
	return probe__wake_in_stop(s->t, &s->ruby, w, NULL) > 0;
}

/*
 * When the main thread waits on a futex: stop it, wake it in place if
 * that applies, detach.  1 when woken; *vcs then holds its voluntary
 * context switches as counted while it was stopped.  With only_marking,
 * the wake is for the current-thread global only (pre_wake): none when
 * the global already names the main thread (2 then).
 */
static int
wake_stopped(struct probe_session *s, long *vcs, bool only_marking)
{
	pid_t pid = probe_session_pid(s);
	long nr = probe__main_syscall(pid);
	struct probe_wait w;
	char st, *buf = NULL;
	size_t cap = 0;
	int woke;

	if (nr != SYS_futex && nr != SYS_restart_syscall)
		return 0;
	if (stop_safely(s, NULL) < 0)
		return 0;
	/* the pre-wake's calls (which thread is current, the in-place
	 * wake) need the code page: map it in this stop already */
	if (only_marking && ensure_page(s, NULL) < 0)
		lp_debug("pre-wake: no code page, no calls");
	/* (its mmap ran detached) */
	if (!inj_attached(s->t) && stop_safely(s, NULL) < 0)
		return 0;
	if (only_marking && probe__main_is_current(s->t, &s->ruby) == 1) {
		lp_debug("pre-wake: the main thread is current already");
		inj_detach(s->t, NULL);
		return 2;
	}
	/* asking for the main thread may have been a call (detached) */
	if (!inj_attached(s->t) && stop_safely(s, NULL) < 0)
		return 0;
	woke = wake_in_stop(s, &w);
	if (woke && main_sched(pid, &buf, &cap, &st, vcs) < 0)
		*vcs = -1;
	free(buf);
	inj_detach(s->t, NULL);
	return woke;
}

/*
 * A Ruby without rb_threadptr_interrupt (stripped) whose main thread
 * sleeps in an untimed condition-variable wait cannot be woken: refuse
 * before anything is registered.  A wait for the GVL looks the same for
 * a moment, so it must outlast Ruby's own wake signal and 150 ms, on the
 * same futex, with no other thread running (one that could hold the
 * GVL), before we say so.
 */
static int
check_wakeable(struct probe_session *s, struct lp_err *err)
{
	pid_t pid = probe_session_pid(s);
	struct probe_wait w, w2;
	char st, *buf = NULL;
	size_t cap = 0;
	long v;
	int rc = 0;

	if (s->ruby.threadptr_interrupt || s->ruby.wake_chld ||
	    (probe__main_syscall(pid) != SYS_futex &&
	     probe__main_syscall(pid) != SYS_restart_syscall) ||
	    main_sched(pid, &buf, &cap, &st, &v) < 0 || st != 'S')
		goto out;
	for (int i = 0; i < 4; i++) {
		if (i) {
			struct timespec ts = { 0, 50000000 };

			if (s->ruby.wake_vtalrm)
				syscall(SYS_tgkill, pid, pid, SIGVTALRM);
			nanosleep(&ts, NULL);
		}
		if (lp_stop_signal)
			goto out;
		rc = stop_safely(s, err);
		if (rc < 0)
			goto out;
		memset(&w2, 0, sizeof(w2));
		w2.max_frames = 6;
		if (inj_stopped_syscall(s->t) == SYS_futex ||
		    inj_stopped_syscall(s->t) == SYS_restart_syscall)
			probe__wait_inspect(s->t, &s->ruby, &w2);
		inj_detach(s->t, NULL);
		if (!probe__wait_unwakeable(&s->ruby, &w2) ||
		    (i && w2.uaddr != w.uaddr) || probe__other_thread_runs(pid))
			goto out;
		w = w2;
	}
	rc = probe__wake_refuse(&s->ruby, &w, pid, err);
out:
	free(buf);
	return rc;
}

/*
 * Where the current thread is a process global (Ruby up to 2.7, see
 * ruby.c), register_one marks the thread that last took the GVL.  With
 * the main thread asleep that may be a thread that has ended since: the
 * job would then never run, and its flag would be set in a thread
 * structure that may already be freed.  A main thread asleep in Ruby's
 * blocking wait takes the GVL back when Ruby's own unblocking signal
 * (SIGVTALRM) interrupts it, or, where its sleep is a condition-variable
 * wait no signal ends, when it is woken in place (wake.c; not needed
 * when the global names it already), which makes the global name it (or
 * a live thread that took the GVL after it) again; it then goes back to
 * sleep, its sleep not cut short.  So wake it first, and wait (up to
 * 50 ms) until it has run and blocked again: its voluntary context
 * switches move.
 */
static void
pre_wake(struct probe_session *s)
{
	pid_t pid = probe_session_pid(s);
	uint64_t t0 = lp_mono_ns();
	char st, *buf = NULL;
	size_t cap = 0;
	long v0, v;

	/*
	 * Where the global's symbol is gone (a stripped Ruby up to 2.7: it
	 * is a local symbol before 2.5), register_one marks it all the same:
	 * a main thread in a futex wait is woken in place first too, in
	 * case it is a condition-variable sleep; nothing else is done.
	 */
	bool blind = !s->ruby.cur_global;

	if ((blind && (!s->ruby.register_one ||
		       (probe__main_syscall(pid) != SYS_futex &&
			probe__main_syscall(pid) != SYS_restart_syscall))) ||
	    !s->ruby.wake_vtalrm ||
	    main_sched(pid, &buf, &cap, &st, &v0) < 0 || st != 'S')
		goto out;
	if (getenv("LEAKPROBE_TEST_NO_PREWAKE")) {	/* tests/rubies: kick */
		lp_debug("pre-wake: skipped (LEAKPROBE_TEST_NO_PREWAKE)");
		goto out;
	}
	/* A condition-variable sleep no signal ends is woken in place;
	 * else Ruby's own wake signal does it. */
	switch (wake_stopped(s, &v0, true)) {
	case 2:
		goto out;
	case 1:
		break;
	default:
		if (blind || main_sched(pid, &buf, &cap, &st, &v0) < 0)
			goto out;
		syscall(SYS_tgkill, pid, pid, SIGVTALRM);
		break;
	}
	while (lp_mono_ns() - t0 < 50000000ull && !lp_stop_signal) {
		struct timespec ts = { 0, 100000 };

		if (main_sched(pid, &buf, &cap, &st, &v) < 0)
			goto out;
		if (v != v0 && st == 'S') {
			lp_debug("pre-wake: the main thread ran and slept "
				 "again after %.3f ms",
				 (lp_mono_ns() - t0) / 1e6);
			goto out;
		}
		nanosleep(&ts, NULL);
	}
	lp_debug("pre-wake: the main thread did not run within 50 ms");
out:
	free(buf);
}

/*
 * Stop the main thread where calling into the target is safe: not inside
 * the allocator or the dynamic linker (else let it run 1 ms and retry).
 */
static int
stop_safely(struct probe_session *s, struct lp_err *err)
{
	struct inj_target *t = s->t;
	uint64_t t0 = lp_mono_ns();
	int rc;

	for (int tries = 0;; tries++) {
		if (lp_stop_signal)
			return lp_err_set(err, LP_EINTR, "interrupted");
		rc = inj_attach(t, err);
		if (rc < 0)
			return rc;
		lp_debug("stopped after %.3f ms in syscall %ld",
			 (lp_mono_ns() - t0) / 1e6, inj_stopped_syscall(t));
		if (!unsafe_point(s))
			return 0;
		inj_detach(t, NULL);
		if (tries >= 500)
			return lp_err_set(err, LP_EINJECT, "the main thread of "
					  "%d stays inside the allocator or "
					  "the dynamic linker; try again",
					  (int)inj_info(t)->pid);
		{
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * Where the current thread is a process global, the job's mark may still
 * have gone to another thread: one that held the GVL when the main thread
 * woke and ended before its next interrupt check.  A flush runs every
 * pending job whichever thread does it, so a second job that does nothing
 * (ruby_xfree(NULL)) marks the thread that is current now, after the wake
 * rounds made it the main thread, without ever starting a second helper:
 * register_one keeps one pending job per function and marks the current
 * thread either way.  Best effort: a failure here only means one more
 * wake round.
 */
static bool
kick(struct probe_session *s)
{
	uint64_t args[3] = { 0, s->ruby.xfree, 0 }, ret = 0, now = 0;
	int rc;

	if (!s->ruby.xfree || !s->ruby.register_one)
		return false;
	/* Where the global has no symbol (stripped), it cannot be compared:
	 * kick only a main thread seen in a condition-variable sleep, which
	 * the kick's stop wakes in place (3.0+ mark the calling thread). */
	if (!s->ruby.cur_global && !s->cond_wait)
		return false;
	/* Only when another thread is current than the one marked: else
	 * the mark would go to the same place, for one more stop. */
	if (s->ruby.cur_global &&
	    (inj_read(s->t, s->ruby.cur_global, &now, sizeof(now), NULL) < 0 ||
	     now == s->marked)) {
		lp_debug("kick: skipped, the marked thread is still current");
		return false;
	}
	if (!s->page || stop_safely(s, NULL) < 0)
		return false;
	if (!s->ruby.cur_global ||
	    inj_read(s->t, s->ruby.cur_global, &s->marked, sizeof(s->marked),
		     NULL) < 0)
		s->marked = now;
	rc = inj_call(s->t, s->ruby.register_one, args, 3, &ret, 1000, NULL);
	/* the call ran detached: a new stop to wake a sleep in place */
	if (rc == 0 && s->cond_wait && stop_safely(s, NULL) == 0) {
		struct probe_wait w;

		wake_in_stop(s, &w);
	}
	inj_detach(s->t, NULL);
	lp_debug("kick: %s (register_one returned %d)",
		 rc < 0 ? "failed" : "done", (int)ret);
	return true;
}

/*
 * Stop the main thread at a safe point, write the page, register the job,
 * restore and detach.  The main thread is stopped only here (and, on a
 * Ruby whose current thread is a global, in kick()).
 */
static int
register_job(struct probe_session *s, struct lp_err *err)
{
	struct inj_target *t = s->t;
	char boot[1024];
	uint64_t ret = 0, args[3], t0, at = 0, stops0, held0, dirty0;
	unsigned nstops0;
	bool maybe = false;
	int rc;

	char helper[300];

	snprintf(helper, sizeof(helper), "%s/helper.rb", s->tdir);
	if (probe__bootstrap(boot, sizeof(boot), helper) < 0)
		return lp_err_set(err, LP_EINVAL, "channel path too long");
	rc = inj_prepare(t, err);
	if (rc < 0)
		return rc;
	/* every stop from here on counts, wake inspections included */
	stops0 = inj_stop_total_ns(t);
	held0 = inj_held_total_ns(t);
	dirty0 = inj_last_dirty_ns(t);
	nstops0 = inj_stops(t);
	s->page = find_stale_page(s);
	s->page_reused = s->page != 0 && !s->page_fresh;
	if (!s->ruby.wake_chld && (probe__main_syscall(probe_session_pid(s)) ==
				   SYS_futex || probe__main_syscall(
				   probe_session_pid(s)) == SYS_restart_syscall))
		probe__wait_prepare(t, &s->ruby);
	rc = check_wakeable(s, err);
	if (rc < 0)
		return rc;
	/*
	 * A new page goes where we say, and we say it first in the channel
	 * directory: if we are killed after the mmap but before the page
	 * carries our header, the next run still knows it for ours.
	 */
	if (s->page_spare)
		;	/* its record stays until it is unmapped */
	else if (s->page)
		record_page(s, s->page);
	else if (inj_free_gap(t, PAGE_SIZE_, &at) < 0)
		return lp_err_set(err, LP_EINJECT, "no free range for the code "
				  "page in process %d", (int)inj_info(t)->pid);
	else if (record_page(s, at) < 0)
		return lp_err_sys(err, LP_EIO, "record the code page in '%s'",
				  s->dir);
	s->page_at = at;
	pre_wake(s);
	t0 = lp_mono_ns();
	rc = stop_safely(s, err);
	if (rc < 0)
		return rc;
	s->syscall_nr = inj_stopped_syscall(t);
	s->in_syscall = s->syscall_nr >= 0;
	if (s->ruby.cur_global &&
	    inj_read(t, s->ruby.cur_global, &s->marked, sizeof(s->marked),
		     NULL) < 0)
		s->marked = 0;
	/*
	 * One page, shared (never merged with a neighbour: see inj_mmap),
	 * readable, writable (process_vm_writev writes it without a stop)
	 * and executable (the call trampoline): one remote mmap and one
	 * munmap per run, the fewest injected steps.  It holds our code only
	 * from registration until the job has run (a few ms), and a page
	 * left behind after a timeout holds "nil", read-only (retire_page).
	 */
	/*
	 * A run killed just after it let the thread go with its mmap left
	 * the step to the thread: its page (the address it recorded) may
	 * have appeared only now (the stop above waited until the thread
	 * was out of that step).  Reuse it rather than leave it behind
	 * (not needed when the pre-wake mapped ours: its mmap went to the
	 * address on record, and adopted a page found there).
	 */
	if (s->page_hint && s->page != s->page_hint && !s->page_spare &&
	    (!s->page || s->page_reused)) {
		uint8_t b;

		if (inj_read(t, s->page_hint, &b, 1, NULL) == 0 &&
		    inj_refresh_maps(t, NULL) == 0 &&
		    (s->page = find_stale_page(s)) != 0) {
			s->page_reused = !s->page_fresh;
			/* a page without a header is ours only by the
			 * record (an armed one has its magic) */
			record_page(s, s->page_spare ? s->page_spare :
				    s->page);
			lp_debug("page 0x%" PRIx64 " of a killed run appeared",
				 s->page_hint);
		}
	}
	rc = ensure_page(s, err);
	if (rc < 0)
		goto out;
	lp_debug("page ready after %.3f ms", (lp_mono_ns() - t0) / 1e6);
	s->page_armed = true;	/* from the first byte written */
	s->armed_here = s->page;
	rc = write_page(s, STATE_ARMED, boot, err);
	if (rc < 0)
		goto out;
	args[0] = 0;
	args[1] = s->ruby.eval_string;
	args[2] = s->page + HDR_SIZE;
	/* From here until a definite "not registered", a job may point at
	 * the page: it must never be unmapped then, only defused. */
	maybe = true;
	if (s->ruby.preregister) {
		if ((rc = stop_safely(s, err)) < 0)
			goto out;
		rc = inj_call(t, s->ruby.preregister, args, 3, &ret, 1000, err);
		if (rc < 0)
			goto out;
		if ((uint32_t)ret == UINT32_MAX) {
			maybe = false;
			rc = lp_err_set(err, LP_EINJECT, "the target's "
					"postponed-job table is full");
			goto out;
		}
		args[0] = (uint32_t)ret;
		if ((rc = stop_safely(s, err)) < 0)
			goto out;
		rc = inj_call(t, s->ruby.trigger, args, 1, &ret, 1000, err);
		if (rc < 0)
			goto out;
	} else {
		if ((rc = stop_safely(s, err)) < 0)
			goto out;
		rc = inj_call(t, s->ruby.register_one, args, 3, &ret, 1000,
			      err);
		if (rc < 0)
			goto out;
		/* 1 registered; 2 a job for rb_eval_string is already
		 * pending and our data was dropped; 0 table full. */
		if ((int)ret == 2 && !s->page_reused) {
			maybe = false;	/* our data was dropped */
			rc = lp_err_set(err, LP_EBUSY, "another rb_eval_string "
					"job is already pending in process %d;"
					" try again later", (int)inj_info(t)->pid);
			goto out;
		}
		if ((int)ret == 0) {
			maybe = false;
			rc = lp_err_set(err, LP_EINJECT, "the target's "
					"postponed-job buffer is full");
			goto out;
		}
		/* ret 2 with a reused page: the pending job is the stale
		 * one, which now points at our fresh bootstrap. */
	}
	/* Registered: a sleep no signal ends is woken now, in this stop.
	 * Each wake returns a Mutex#sleep early on Ruby 2.4-2.5: when the
	 * job is marked on the main thread, no other is needed soon. */
	if (!s->ruby.wake_chld && (s->syscall_nr == SYS_futex ||
				   s->syscall_nr == SYS_restart_syscall) &&
	    stop_safely(s, NULL) == 0) {
		struct probe_wait w;

		s->woke_marked = wake_in_stop(s, &w) && s->ruby.cur_global &&
				 probe__main_is_current(t, &s->ruby) == 1;
	}
out:
	lp_debug("registered after %.3f ms", (lp_mono_ns() - t0) / 1e6);
	if (rc < 0 && s->page) {
		/* Nothing registered (or registration unknown): a fresh page
		 * can go; a reused one may still be referenced. */
		if (!s->page_reused && !maybe &&
		    (inj_attached(t) || stop_safely(s, NULL) == 0) &&
		    still_ours(s, s->page, s->page_inode) &&
		    inj_munmap(t, s->page, PAGE_SIZE_, NULL) == 0)
			s->page = 0;
		else
			retire_page(s);
	}
	rc = inj_detach(t, rc < 0 ? NULL : err) < 0 && rc == 0 ? -LP_EINJECT :
	     rc;
	/* every stop of the start, summed (the thread runs between them) */
	s->stop_ns = inj_stop_total_ns(t) - stops0;
	s->held_ns = inj_held_total_ns(t) - held0;
	s->dirty_ns = inj_last_dirty_ns(t) - dirty0;
	s->nstops = inj_stops(t) - nstops0;
	/* until the thread is seen back in its own code: an upper bound,
	 * polled without a stop (0 when it runs and cannot be seen) */
	for (long ns = 10000; !inj_step_settled(t) &&
	     lp_mono_ns() - t0 < 20000000ull; ns = ns < 1000000 ? ns * 2 : ns) {
		struct timespec ts = { 0, ns };

		nanosleep(&ts, NULL);
	}
	s->back_ns = inj_step_settled(t) ? lp_mono_ns() - t0 : 0;
	return rc;
}

/*
 * Once the helper said hello, the job has run: the page can go, and so
 * can the pages of dead runs found beside the one we reused (no job points
 * at them now: at most one rb_eval_string job is ever pending, and it was
 * ours), but for one a dead run's call may still return into.
 */
static void
unmap_page(struct probe_session *s)
{
	if (!s->page && !s->nextra)
		return;
	uint64_t t0 = inj_stop_total_ns(s->t);

	/* each munmap runs detached: a stop of its own for each, which
	 * also tells whether a call may still return into that page */
	if (s->page && inj_attach(s->t, NULL) == 0 && page_idle(s, s->page) &&
	    still_ours(s, s->page, s->page_inode) &&
	    inj_munmap(s->t, s->page, PAGE_SIZE_, NULL) == 0)
		s->page = 0;
	for (int i = 0; i < s->nextra; i++) {
		if (inj_attach(s->t, NULL) < 0)
			break;
		if (!page_idle(s, s->extra[i]) ||
		    !still_ours(s, s->extra[i], s->extra_inode[i]))
			continue;
		if (inj_munmap(s->t, s->extra[i], PAGE_SIZE_, NULL) == 0)
			lp_debug("reclaimed page 0x%" PRIx64 " of a dead run",
				 s->extra[i]);
	}
	s->nextra = 0;
	inj_detach(s->t, NULL);
	s->unmap_stop_ns = inj_stop_total_ns(s->t) - t0;
	if (s->page)
		retire_page(s);
}

/*
 * On a failed start: no page of ours is left that a later run could not
 * recognise.  A page never armed is unmapped (or marked), a dead run's
 * spare we did not get to unmap is marked, an armed one is retired.
 */
static void
leave_pages(struct probe_session *s)
{
	if (s->page_spare) {
		stamp_page(s, s->page_spare, s->spare_inode);
		s->page_spare = 0;
	}
	if (!s->page)
		return;
	if (!s->page_armed && !inj_page_pinned(s->t, s->page)) {
		uint64_t page = s->page;

		s->nextra = 0;
		unmap_page(s);	/* retires it when it cannot */
		if (!s->page && page)
			lp_debug("unarmed page 0x%" PRIx64 " done", page);
	}
	retire_page(s);
}

/* ---- reading lines from the helper ---------------------------------- */

static void
wake(struct probe_session *s, int round)
{
	pid_t pid = probe_session_pid(s);

	/* From the second round: mark the main thread again where needed;
	 * a sleep no signal ends is woken in place (by kick's stop, or by
	 * one of its own). */
	if (round > 0 && !kick(s) && s->cond_wait) {
		long v;

		wake_stopped(s, &v, false);
	}
	/* Thread-directed to the main thread, which runs the job. */
	if (s->ruby.wake_vtalrm)
		syscall(SYS_tgkill, pid, pid, SIGVTALRM);
	/* SIGCHLD only when SIGVTALRM did not do: the application may trap
	 * it.  A main thread waiting on a futex (the 3.3+ scheduler's sleep,
	 * Queue#pop, Thread#join) is not woken by SIGVTALRM at all; a timed
	 * futex wait, once our stop has interrupted it, restarts as
	 * restart_syscall (Ruby's IO waits use ppoll, which restarts as
	 * itself). */
	if (s->ruby.wake_chld &&
	    (round > 0 || s->syscall_nr == SYS_futex ||
	     s->syscall_nr == SYS_restart_syscall))
		syscall(SYS_tgkill, pid, pid, SIGCHLD);
	lp_debug("wake round %d", round);
}

/*
 * Read one line from the helper into *line (NUL-terminated, valid until
 * the next call).  `waking` sends wake signals while waiting for the
 * job to start.
 */
/* Pass what the dump FIFO holds to the sink; 1 at EOF, -1 sink error. */
static int
drain_dump(struct probe_session *s, probe_sink_fn sink, void *arg)
{
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(s->dump_fd, buf, sizeof(buf));
		if (n > 0) {
			if (sink(buf, (size_t)n, arg) < 0)
				return -1;
			continue;
		}
		if (n == 0)
			return 1;
		return errno == EAGAIN || errno == EINTR ? 0 : 1;
	}
}

static int
read_line_sink(struct probe_session *s, char **line, bool waking,
	       probe_sink_fn sink, void *arg, bool *sink_failed,
	       struct lp_err *err);

static int
read_line(struct probe_session *s, char **line, bool waking,
	  struct lp_err *err)
{
	return read_line_sink(s, line, waking, NULL, NULL, NULL, err);
}

bool
probe__take_bye(const char *line, char *bye, size_t byelen)
{
	static const char tag[] = "{\"bye\":\"";
	size_t n;

	if (!(line = strstr(line, tag)))
		return false;
	line += sizeof(tag) - 1;
	n = strcspn(line, "\"");
	snprintf(bye, byelen, "%.*s", (int)n, line);
	return true;
}

bool
probe__next_line(char *buf, size_t *len, char **line, size_t *linecap)
{
	char *nl = *len ? memchr(buf, '\n', *len) : NULL;
	size_t l;

	if (!nl)
		return false;
	l = (size_t)(nl - buf);
	*line = xgrow(*line, linecap, l + 1, 1);
	memcpy(*line, buf, l);
	(*line)[l] = '\0';
	memmove(buf, nl + 1, *len - l - 1);
	*len -= l + 1;
	return true;
}

/*
 * The result channel reached EOF.  A helper that ends says why first.
 * A target killed from outside closes the channel as it exits, without
 * a word; one that exits by itself (exit, SIGTERM) kills its threads
 * first, and the helper says "killed" as it would after Thread#kill.
 * In those two cases give the exit up to 2 s to show (pidfd: readable
 * once the process is gone) before blaming the helper.
 */
static int
helper_gone(struct probe_session *s, struct lp_err *err)
{
	pid_t pid = probe_session_pid(s);
	bool killed = !s->bye[0] || !strcmp(s->bye, "killed");
	int fd;

	if (killed && probe_proc_alive(pid) &&
	    (fd = (int)syscall(SYS_pidfd_open, pid, 0)) >= 0) {
		struct pollfd p = { fd, POLLIN, 0 };

		while (poll(&p, 1, 2000) < 0 && errno == EINTR &&
		       !lp_stop_signal)
			;
		close(fd);
	}
	if (!probe_proc_alive(pid))
		return lp_err_set(err, LP_EEXITED, "process %d exited",
				  (int)pid);
	if (killed)
		return lp_err_set(err, LP_EINJECT, "the helper thread in "
				  "process %d was killed (did the snippet "
				  "kill its thread, or is the process "
				  "shutting down?)", (int)pid);
	return lp_err_set(err, LP_EINJECT, "the helper thread in process %d "
			  "ended: %s", (int)pid, s->bye);
}

static int
read_line_sink(struct probe_session *s, char **line, bool waking,
	       probe_sink_fn sink, void *arg, bool *sink_failed,
	       struct lp_err *err)
{
	uint64_t start = lp_mono_ns();
	uint64_t deadline = start + (uint64_t)(s->timeout * 1e9);
	/*
	 * A main thread blocked in a syscall cannot see the job until it is
	 * woken, and the wake signal is the one Ruby's own timer thread
	 * sends to deliver interrupts: wake at once.  A thread running
	 * Ruby code checks interrupts within a few ms by itself.
	 */
	uint64_t next_wake = start + (s->in_syscall ? 0 : 3000000);
	int round = 0;
	static char *out;
	static size_t outcap;

	for (;;) {
		if (probe__next_line(s->inbuf, &s->inlen, &out, &outcap)) {
			if (probe__take_bye(out, s->bye, sizeof(s->bye)))
				continue;
			*line = out;
			return 0;
		}
		uint64_t now = lp_mono_ns();
		if (lp_stop_signal && !s->ignore_stop)
			return lp_err_set(err, LP_EINTR, "interrupted by signal"
					  " %d", (int)lp_stop_signal);
		if (now >= deadline)
			return lp_err_set(err, LP_ETIMEDOUT, "timed out after "
					  "%.1f s", s->timeout);
		if (waking && now >= next_wake) {
			wake(s, round++);
			next_wake = now + (round < 2 && !s->woke_marked ?
					   30000000ull : 1000000000ull);
		}
		uint64_t until = deadline;
		if (waking && next_wake < until)
			until = next_wake;
		int ms = (int)((until - now) / 1000000) + 1;
		if (ms > 100)
			ms = 100;	/* look at the target now and then */
		struct pollfd p[2] = { { s->res_fd, POLLIN, 0 },
					{ s->dump_fd, POLLIN, 0 } };
		int np = sink && s->dump_fd >= 0 ? 2 : 1;
		int r = poll(p, (nfds_t)np, ms);

		if (r < 0 && errno != EINTR)
			return lp_err_sys(err, LP_EIO, "poll");
		if (r > 0 && np == 2 && p[1].revents) {
			/* A sink that fails (disk full) closes the dump end:
			 * the helper's dump_all then fails with EPIPE and
			 * reports it, instead of blocking forever. */
			if (drain_dump(s, sink, arg) != 0) {
				close(s->dump_fd);
				s->dump_fd = -1;
				if (sink_failed)
					*sink_failed = true;
			}
			if (!p[0].revents)
				continue;
		}
		if (r <= 0) {
			if (!probe_proc_alive(probe_session_pid(s)))
				return lp_err_set(err, LP_EEXITED, "process "
						  "%d exited",
						  (int)probe_session_pid(s));
			continue;
		}
		s->inbuf = xgrow(s->inbuf, &s->incap, s->inlen + 65536, 1);
		ssize_t n = read(s->res_fd, s->inbuf + s->inlen,
				 s->incap - s->inlen);
		if (n > 0) {
			s->inlen += (size_t)n;
			s->helper_seen = true;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return lp_err_sys(err, LP_EIO, "read result channel");
		/* EOF: the helper closed its end */
		return helper_gone(s, err);
	}
}

/* An integer member; a real one is truncated (within int64_t); -1 when
 * missing, of another type or out of range. */
static int64_t
jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	double d;

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d >= -0x1p63 && d < 0x1p63)	/* NaN fails both */
			return (int64_t)d;
	}
	return -1;
}

/* Copy a name from the target for a one-line summary: control
 * characters become '?'. */
static void
copy_name(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
	for (; *dst; dst++)
		if ((unsigned char)*dst < 0x20 || *dst == 0x7f)
			*dst = '?';
}

/* "rb_grew": [id, before, after, class, site or null] */
static void
parse_grew(json_t *a, struct probe_gc *out)
{
	json_t *id = json_array_get(a, 0), *b = json_array_get(a, 1);
	json_t *e = json_array_get(a, 2), *c = json_array_get(a, 3);
	json_t *site = json_array_get(a, 4);

	out->grew_id = 0;
	out->grew_class[0] = out->grew_site[0] = '\0';
	if (!json_is_integer(id) || !json_is_integer(b) ||
	    !json_is_integer(e))
		return;
	out->grew_id = (int64_t)json_integer_value(id);
	out->grew_before = (int64_t)json_integer_value(b);
	out->grew_after = (int64_t)json_integer_value(e);
	if (json_is_string(c))
		copy_name(out->grew_class, sizeof(out->grew_class),
			  json_string_value(c));
	if (json_is_string(site))
		copy_name(out->grew_site, sizeof(out->grew_site),
			  json_string_value(site));
}

static void
parse_gc(json_t *g, struct probe_gc *out)
{
	out->live_slots = jint(g, "live_slots");
	out->pages = jint(g, "pages");
	out->allocated = jint(g, "allocated");
	out->freed = jint(g, "freed");
	out->malloc_increase = jint(g, "malloc_increase");
	out->count = jint(g, "count");
	out->major = jint(g, "major");
	out->rb_bytes = jint(g, "rb_bytes");
	for (int i = 0; i < PROBE_RB_NTYPES; i++) {
		json_t *v = json_array_get(json_object_get(g, "rb_types"),
					   (size_t)i);

		out->rb_types[i] = json_is_integer(v) ?
				   (int64_t)json_integer_value(v) : -1;
	}
	parse_grew(json_object_get(g, "rb_grew"), out);
}

static void
parse_error(json_t *e, struct probe_result *out)
{
	json_t *bt = json_object_get(e, "backtrace"), *v;
	size_t i, o = 0;

	out->raised = true;
	snprintf(out->err_class, sizeof(out->err_class), "%s",
		 json_string_value(json_object_get(e, "class")) ?: "?");
	snprintf(out->err_message, sizeof(out->err_message), "%s",
		 json_string_value(json_object_get(e, "message")) ?: "");
	out->err_backtrace[0] = '\0';
	json_array_foreach(bt, i, v) {
		const char *l = json_string_value(v);
		int n;

		if (!l)
			continue;
		n = snprintf(out->err_backtrace + o,
			     sizeof(out->err_backtrace) - o, "%s%s",
			     o ? "\n" : "", l);
		if (n < 0 || (size_t)n >= sizeof(out->err_backtrace) - o)
			break;
		o += (size_t)n;
	}
}

int
probe__parse_msg(const char *line, json_t **out, struct lp_err *err)
{
	json_error_t je;

	*out = json_loads(line, 0, &je);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return lp_err_set(err, LP_EINJECT, "bad message from the "
				  "helper thread: %s", *je.text ? je.text :
				  "not a JSON object");
	}
	return 0;
}

int
probe__parse_hello(json_t *msg, struct probe_hello *hello)
{
	json_t *errs, *e;

	if (jint(msg, "hello") != 1)
		return -1;
	snprintf(hello->ruby, sizeof(hello->ruby), "%s",
		 json_string_value(json_object_get(msg, "ruby")) ?: "?");
	hello->nsnippets = (int)jint(msg, "snippets");
	parse_gc(json_object_get(msg, "gc"), &hello->gc);
	errs = json_object_get(msg, "errors");
	hello->compile_errors = (int)json_array_size(errs);
	for (size_t i = 0; i < json_array_size(errs) && hello->nbad < 64; i++)
		hello->bad_idx[hello->nbad++] =
			(int)jint(json_array_get(errs, i), "snippet");
	if (hello->compile_errors) {
		e = json_array_get(errs, 0);
		hello->first_bad = (int)jint(e, "snippet");
		parse_error(e, &hello->err);
	}
	return 0;
}

void
probe__parse_run(json_t *msg, struct probe_result *out)
{
	json_t *e;

	out->calls = (uint64_t)jint(msg, "calls");
	e = json_object_get(msg, "secs");
	out->seconds = json_is_number(e) ? json_number_value(e) : 0;
	parse_gc(json_object_get(msg, "gc"), &out->gc);
	e = json_object_get(msg, "error");
	if (json_is_object(e))
		parse_error(e, out);
}

bool
probe__parse_gcstat(const char *line, struct probe_gc *out)
{
	json_t *msg = json_loads(line, 0, NULL);
	bool got = false;

	if (msg && jint(msg, "gcstat") == 1) {
		parse_gc(json_object_get(msg, "gc"), out);
		got = true;
	}
	json_decref(msg);
	return got;
}

static int
read_json(struct probe_session *s, json_t **out, bool waking,
	  struct lp_err *err)
{
	char *line = NULL;
	int rc;

	*out = NULL;
	rc = read_line(s, &line, waking, err);
	if (rc < 0)
		return rc;
	return probe__parse_msg(line, out, err);
}

/* ---- session --------------------------------------------------------- */

static char *
native_stack(struct probe_session *s, struct probe_wait *w)
{
	uint64_t ips[32];
	char *out = NULL, sym[256];
	size_t len = 0, cap = 0;
	int n;

	w->what[0] = '\0';
	w->max_frames = 0;
	if (inj_attach(s->t, NULL) < 0)
		return NULL;
	probe__wait_inspect(s->t, &s->ruby, w);
	n = inj_unwind(s->t, ips, 32, NULL);
	for (int i = 0; i < n; i++) {
		/* frames after the first hold return addresses: name the
		 * call instruction, not what follows it */
		inj_symbolize(s->t, i ? ips[i] - 1 : ips[i], sym, sizeof(sym));
		out = xgrow(out, &cap, len + strlen(sym) + 32, 1);
		len += (size_t)sprintf(out + len, "  #%-2d 0x%016" PRIx64
				       " %s\n", i, ips[i], sym);
	}
	inj_detach(s->t, NULL);
	return out;
}

static void
session_free(struct probe_session *s)
{
	if (!s)
		return;
	if (s->res_fd >= 0)
		close(s->res_fd);
	if (s->ack_fd >= 0)
		close(s->ack_fd);
	if (s->dump_fd >= 0)
		close(s->dump_fd);
	if (s->alive_fd >= 0)
		close(s->alive_fd);
	remove_dir(s);
	inj_close(s->t);	/* detaches if still attached */
	drop_lock(s);
	free(s->inbuf);
	free(s);
}

struct probe_session *
probe_session_start(pid_t pid, const struct probe_opts *o,
		    struct probe_hello *hello, char **stack,
		    struct lp_err *err)
{
	struct probe_session *s;
	json_t *msg = NULL;
	uint64_t t0;
	int rc;

	if (stack)
		*stack = NULL;
	memset(hello, 0, sizeof(*hello));
	hello->first_bad = -1;
	s = xcalloc(1, sizeof(*s));
	s->lock_fd = s->res_fd = s->ack_fd = s->dump_fd = s->alive_fd = -1;
	s->timeout = o->timeout > 0 ? o->timeout : 30;
	s->eval_only = o->eval != NULL;
	t0 = lp_mono_ns();
	s->t = inj_open(pid, err);
	if (!s->t)
		goto fail;
	lp_debug("opened target in %.3f ms", (lp_mono_ns() - t0) / 1e6);
	if (probe_ruby_detect(s->t, &s->ruby, err) < 0)
		goto fail;
	lp_debug("detected ruby at %.3f ms", (lp_mono_ns() - t0) / 1e6);
	if (take_lock(s, err) < 0)
		goto fail;
	if (make_channel(s, o, err) < 0)
		goto fail;
	lp_debug("channel ready at %.3f ms", (lp_mono_ns() - t0) / 1e6);
	if (register_job(s, err) < 0)
		goto fail;
	lp_debug("job registered at %.3f ms", (lp_mono_ns() - t0) / 1e6);
	t0 = lp_mono_ns();
	rc = read_json(s, &msg, true, err);
	if (rc == 0 && jint(msg, "started") == 1) {
		/* the job ran and the helper is compiling: stop waking */
		json_decref(msg);
		msg = NULL;
		rc = read_json(s, &msg, false, err);
	}
	if (rc < 0) {
		if (rc == -LP_ETIMEDOUT && s->helper_seen) {
			lp_err_clear(err);
			lp_err_set(err, LP_ETIMEDOUT, "the helper thread in %d "
				   "started but did not finish reading the "
				   "snippets within %.1f s", (int)pid,
				   s->timeout);
		} else if (rc == -LP_ETIMEDOUT) {
			struct probe_wait w;
			char *st = native_stack(s, &w);

			if (stack)
				*stack = st;
			else
				free(st);
			lp_err_clear(err);
			if (w.what[0])
				lp_err_set(err, LP_ETIMEDOUT, "the snippet did "
					   "not start within %.1f s: the main "
					   "thread of %d does not reach a safe "
					   "point: it %s", s->timeout,
					   (int)pid, w.what);
			else
				lp_err_set(err, LP_ETIMEDOUT, "the snippet did "
					   "not start within %.1f s: the main "
					   "thread of %d does not reach a safe "
					   "point", s->timeout, (int)pid);
		}
		if (rc == -LP_EINTR && !s->helper_seen) {
			/*
			 * Interrupted while the job was pending.  It usually
			 * starts within a few ms: give it that long, so the
			 * page can be unmapped instead of left defused.  The
			 * helper then sees EOF and ends at once.
			 */
			double keep = s->timeout;
			json_t *late = NULL;

			s->ignore_stop = true;
			s->timeout = 0.3;
			if (read_json(s, &late, true, NULL) == 0) {
				json_decref(late);
				remove_dir(s);
				unmap_page(s);
			}
			s->timeout = keep;
			s->ignore_stop = false;
		}
		/* Once the helper has written anything, the job has run and
		 * the page is free.  Otherwise the job may still be pending:
		 * defuse the page, and remove the channel so that even a
		 * late start finds nothing. */
		if (s->helper_seen)
			unmap_page(s);
		retire_page(s);
		goto fail;
	}
	s->start_ns = lp_mono_ns() - t0;
	/* Both ends are open: the names are no longer needed. */
	remove_dir(s);
	unmap_page(s);
	if (probe__parse_hello(msg, hello) < 0) {
		lp_err_set(err, LP_EINJECT, "unexpected first message from "
			   "the helper thread");
		goto fail;
	}
	json_decref(msg);
	return s;
fail:
	json_decref(msg);
	if (s->t && probe_proc_alive(pid))
		leave_pages(s);
	/*
	 * A target that died under us makes any step fail in its own way
	 * (no syscall instruction, not Ruby, EPERM, a vanished directory):
	 * the reason is that it exited.
	 */
	if (s->t && !probe_proc_alive(pid) && err &&
	    err->code != LP_EINTR && err->code != LP_ESELF &&
	    err->code != LP_EEXITED) {
		lp_err_clear(err);
		lp_err_set(err, LP_EEXITED, "process %d exited", (int)pid);
	}
	session_free(s);
	return NULL;
}

int
probe_session_run(struct probe_session *s, const int *idx, int nidx,
		  uint64_t n, bool gc, int lane, struct probe_result *out,
		  struct lp_err *err)
{
	char cmd[512];
	size_t o;
	json_t *msg = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (s->eval_only)
		return lp_err_set(err, LP_EINVAL, "the session was started "
				  "for eval only");
	o = (size_t)snprintf(cmd, sizeof(cmd), "run %s ",
			     nidx ? "measure" : "control");
	if (!nidx)
		o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "-");
	for (int i = 0; i < nidx && o < sizeof(cmd) - 64; i++)
		o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%s%d",
				      i ? "," : "", idx[i]);
	o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, " %" PRIu64 " %d %d\n",
			      n, gc ? 1 : 0, lane);
	if (write(s->ack_fd, cmd, o) != (ssize_t)o)
		return lp_err_sys(err, LP_EINJECT, "write to the helper "
				  "thread");
	rc = read_json(s, &msg, false, err);
	if (rc < 0)
		return rc;
	probe__parse_run(msg, out);
	json_decref(msg);
	return 0;
}


static int
send_cmd(struct probe_session *s, const char *cmd, struct lp_err *err)
{
	size_t n = strlen(cmd);

	if (write(s->ack_fd, cmd, n) != (ssize_t)n)
		return lp_err_sys(err, LP_EINJECT, "write to the helper "
				  "thread");
	return 0;
}

/*
 * The raw bytes that follow an eval header: first what read_line() left
 * in the buffer, then straight from the channel, `want` bytes in all,
 * into sink as they come.  Each wait is bounded by the timeout.
 */
static int
read_raw(struct probe_session *s, uint64_t want, probe_sink_fn sink,
	 void *arg, struct lp_err *err)
{
	char buf[65536];
	size_t k = s->inlen < want ? s->inlen : (size_t)want;
	bool sink_ok = true;
	uint64_t deadline;

	if (k) {
		sink_ok = sink(s->inbuf, k, arg) == 0;
		memmove(s->inbuf, s->inbuf + k, s->inlen - k);
		s->inlen -= k;
		want -= k;
	}
	deadline = lp_mono_ns() + (uint64_t)(s->timeout * 1e9);
	while (want) {
		struct pollfd p = { s->res_fd, POLLIN, 0 };
		size_t ask = want < sizeof(buf) ? (size_t)want : sizeof(buf);
		ssize_t n;
		int r;

		if (lp_stop_signal)
			return lp_err_set(err, LP_EINTR, "interrupted by signal"
					  " %d", (int)lp_stop_signal);
		r = poll(&p, 1, 100);
		if (r < 0 && errno != EINTR)
			return lp_err_sys(err, LP_EIO, "poll");
		if (r <= 0) {
			if (!probe_proc_alive(probe_session_pid(s)))
				return lp_err_set(err, LP_EEXITED, "process "
						  "%d exited",
						  (int)probe_session_pid(s));
			if (lp_mono_ns() >= deadline)
				return lp_err_set(err, LP_ETIMEDOUT, "timed "
						  "out after %.1f s",
						  s->timeout);
			continue;
		}
		n = read(s->res_fd, buf, ask);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return lp_err_sys(err, LP_EIO, "read result channel");
		if (n == 0)
			return helper_gone(s, err);
		/* after a sink failure, keep reading: the channel must be
		 * drained for the helper to finish its write */
		if (sink_ok)
			sink_ok = sink(buf, (size_t)n, arg) == 0;
		want -= (uint64_t)n;
		deadline = lp_mono_ns() + (uint64_t)(s->timeout * 1e9);
	}
	return sink_ok ? 0 : lp_err_set(err, LP_EIO, "writing the result "
					"failed");
}

int
probe_session_eval(struct probe_session *s, probe_sink_fn sink, void *arg,
		   struct probe_eval *out, struct lp_err *err)
{
	json_t *msg = NULL, *e;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->cls, sizeof(out->cls), "?");
	if (!s->eval_only)
		return lp_err_set(err, LP_EINVAL, "the session was not "
				  "started for eval");
	/* asked for with the session: the answer follows the hello */
	rc = read_json(s, &msg, false, err);
	if (rc == -LP_ETIMEDOUT)
		s->busy = true;
	if (rc < 0)
		return rc;
	e = json_object_get(msg, "error");
	if (jint(msg, "evaled") != 1) {
		if (!json_is_object(e)) {
			json_decref(msg);
			return lp_err_set(err, LP_EINJECT, "unexpected answer "
					  "from the helper thread");
		}
		parse_error(e, &out->err);
		json_decref(msg);
		return lp_err_set(err, LP_ESNIPPET, "the snippet raised %s: "
				  "%s", out->err.err_class,
				  out->err.err_message);
	}
	snprintf(out->cls, sizeof(out->cls), "%s",
		 json_string_value(json_object_get(msg, "class")) ?: "?");
	out->json = !strcmp(json_string_value(json_object_get(msg,
			    "format")) ?: "", "json");
	out->bytes = (uint64_t)jint(msg, "bytes");
	out->sent = (uint64_t)jint(msg, "sent");
	out->cut = json_is_true(json_object_get(msg, "cut"));
	e = json_object_get(msg, "secs");
	out->seconds = json_is_number(e) ? json_number_value(e) : 0;
	json_decref(msg);
	return read_raw(s, out->sent, sink, arg, err);
}

int
probe_session_trace(struct probe_session *s, bool on, bool persist,
		    int64_t *gc_count, struct lp_err *err)
{
	struct probe_result r;
	struct probe_gc g;
	json_t *msg = NULL, *e;
	int rc;

	if (s->eval_only)
		return lp_err_set(err, LP_EINVAL, "the session was started "
				  "for eval only");
	rc = send_cmd(s, !on ? "trace off\n" : persist ? "trace on persist\n" :
		      "trace on\n", err);
	if (rc == 0)
		rc = read_json(s, &msg, false, err);
	if (rc < 0)
		return rc;
	e = json_object_get(msg, "error");
	if (json_is_object(e)) {
		memset(&r, 0, sizeof(r));
		parse_error(e, &r);
		rc = lp_err_set(err, LP_ESNIPPET, "allocation tracing: %s: %s",
				r.err_class, r.err_message);
	} else if (gc_count) {
		parse_gc(json_object_get(msg, "gc"), &g);
		*gc_count = g.count;
	}
	json_decref(msg);
	return rc;
}

int
probe_session_dump(struct probe_session *s, probe_sink_fn sink, void *arg,
		   double *secs, struct probe_result *res, struct lp_err *err)
{
	bool sink_failed = false;
	json_t *msg = NULL, *e;
	json_error_t je;
	char *line = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	if (s->eval_only)
		return lp_err_set(err, LP_EINVAL, "the session was started "
				  "for eval only");
	if (s->dump_fd < 0)
		return lp_err_set(err, LP_EINVAL, "no dump channel");
	rc = send_cmd(s, "dump\n", err);
	if (rc == 0)
		rc = read_line_sink(s, &line, false, sink, arg, &sink_failed,
				    err);
	if (rc < 0)
		return rc;
	/* dump_all returned before the helper replied: whatever it wrote
	 * is in the pipe now. */
	if (s->dump_fd >= 0 && drain_dump(s, sink, arg) < 0)
		sink_failed = true;
	msg = json_loads(line, 0, &je);
	if (!msg)
		return lp_err_set(err, LP_EINJECT, "bad message from the "
				  "helper thread: %s", je.text);
	e = json_object_get(msg, "error");
	if (json_is_object(e)) {
		parse_error(e, res);
		rc = -LP_ESNIPPET;
	}
	e = json_object_get(msg, "secs");
	if (secs)
		*secs = json_is_number(e) ? json_number_value(e) : 0;
	parse_gc(json_object_get(msg, "gc"), &res->gc);
	json_decref(msg);
	if (sink_failed)
		return lp_err_set(err, LP_EIO, "writing the heap dump failed");
	if (rc == -LP_ESNIPPET)
		return lp_err_set(err, LP_ESNIPPET, "ObjectSpace.dump_all "
				  "raised %s: %s", res->err_class,
				  res->err_message);
	return 0;
}

int
probe_session_gcstat_start(struct probe_session *s, double interval,
			   struct lp_err *err)
{
	char cmd[64];

	if (s->eval_only)
		return lp_err_set(err, LP_EINVAL, "the session was started "
				  "for eval only");
	snprintf(cmd, sizeof(cmd), "gcstat %.3f\n", interval);
	s->gcstat = true;
	return send_cmd(s, cmd, err);
}

int
probe_session_gcstat_poll(struct probe_session *s, struct probe_gc *out,
			  struct lp_err *err)
{
	bool got = false;
	ssize_t n;
	char *line = NULL;
	size_t linecap = 0;

	for (;;) {
		s->inbuf = xgrow(s->inbuf, &s->incap, s->inlen + 65536, 1);
		n = read(s->res_fd, s->inbuf + s->inlen, s->incap - s->inlen);
		if (n > 0) {
			s->inlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return lp_err_set(err, LP_EEXITED, "the GC.stat "
					  "reporter in process %d ended",
					  (int)probe_session_pid(s));
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return lp_err_sys(err, LP_EIO, "read result channel");
		break;
	}
	while (probe__next_line(s->inbuf, &s->inlen, &line, &linecap))
		if (probe__parse_gcstat(line, out))
			got = true;
	free(line);
	return got;
}

void
probe_session_end(struct probe_session *s)
{
	if (!s)
		return;
	/* A helper in the middle of a dump (SIGINT while streaming) blocks
	 * on the full dump FIFO: closing our end makes its write fail with
	 * EPIPE, so it ends now, not after our wait below. */
	if (s->dump_fd >= 0) {
		close(s->dump_fd);
		s->dump_fd = -1;
	}
	if (s->ack_fd >= 0 && write(s->ack_fd, "stop\n", 5) != 5)
		lp_debug("helper already gone");
	/*
	 * Wait (bounded) until the helper has closed its end, i.e. its
	 * thread is done: a run that starts while the previous helper is
	 * still running would get a new thread stack and malloc arena
	 * instead of reusing the cached ones, and the target's maps would
	 * grow run after run.  A GC.stat reporter only notices EPIPE, and a
	 * helper still running an eval that timed out only its watchdog can
	 * end (when we close the channel): neither is waited for, nor is
	 * anything after SIGINT/SIGTERM: a helper inside ObjectSpace.dump_all
	 * writes through stdio, ignores EPIPE and goes on until its dump is
	 * done (seconds); it ends then.
	 */
	if (s->start_ns && !s->gcstat && !s->busy && s->res_fd >= 0 &&
	    !lp_stop_signal) {
		uint64_t t0 = lp_mono_ns(), deadline = t0 + 2000000000ull;
		char buf[4096];

		while (lp_mono_ns() < deadline) {
			struct pollfd p = { s->res_fd, POLLIN, 0 };
			ssize_t n;

			if (poll(&p, 1, 100) < 0 && errno != EINTR)
				break;
			n = read(s->res_fd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EINTR))
				break;
			if (!probe_proc_alive(probe_session_pid(s)))
				break;
		}
		lp_debug("the helper ended %.3f ms after stop",
			 (lp_mono_ns() - t0) / 1e6);
	}
	session_free(s);
}

pid_t
probe_session_pid(const struct probe_session *s)
{
	return inj_info(s->t)->pid;
}

const struct probe_ruby *
probe_session_ruby(const struct probe_session *s)
{
	return &s->ruby;
}

const struct inj_procinfo *
probe_session_info(const struct probe_session *s)
{
	return inj_info(s->t);
}

uint64_t
probe_session_stop_ns(const struct probe_session *s)
{
	return s->stop_ns;
}

uint64_t
probe_session_held_ns(const struct probe_session *s)
{
	return s->held_ns;
}

uint64_t
probe_session_dirty_ns(const struct probe_session *s)
{
	return s->dirty_ns;
}

uint64_t
probe_session_unmap_stop_ns(const struct probe_session *s)
{
	return s->unmap_stop_ns;
}

uint64_t
probe_session_back_ns(const struct probe_session *s)
{
	return s->back_ns;
}

unsigned
probe_session_stops(const struct probe_session *s)
{
	return s->nstops;
}

uint64_t
probe_session_start_ns(const struct probe_session *s)
{
	return s->start_ns;
}
