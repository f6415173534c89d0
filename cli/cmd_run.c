/*
 * leakprobe run [run options] [attach|ab|bisect] [options] -- COMMAND...
 *
 * Spawn mode for CI: start the target, wait until it is ready, run the
 * measurement on it, stop it, and exit with the measurement's status.
 * The target is reaped on every path; if leakprobe itself is killed the
 * kernel kills the target too (PR_SET_PDEATHSIG).
 */
#include "cli/cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/exit.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static const char run_usage[] =
"usage: leakprobe run [run options] [attach|ab|bisect] [their options]\n"
"                     -- COMMAND [ARGS...]\n"
"\n"
"Start COMMAND (a Ruby process), wait until it is ready, run attach, ab or\n"
"bisect on it, stop it and exit with the measurement's status.  Without a\n"
"command word, --steps means bisect, --a/--b mean ab, otherwise attach.\n"
"The target's stdout and stderr go to leakprobe's stderr (or --target-log).\n"
"\n"
"  --ready-file PATH     ready once PATH exists (the target creates it;\n"
"                        leakprobe removes it before and after)\n"
"  --ready-after SEC     ready SEC seconds after the start\n"
"                        (default: ready once the main thread has been\n"
"                        idle in a blocking call for 0.3 s)\n"
"  --ready-timeout SEC   give up waiting after SEC (default 60): exit 3\n"
"  --stop-timeout SEC    after SIGTERM, wait SEC before SIGKILL (default 5)\n"
"  --target-log FILE     write the target's stdout/stderr to FILE\n"
"  -h, --help            this help\n"
"\n"
"Example (CI):\n"
"  leakprobe run --ready-file /tmp/app.ready attach \\\n"
"      --eval 'require \"set\"' --times 5000 --fail-on-growth 16 \\\n"
"      -- ruby app.rb\n";

struct run_opts {
	const char *ready_file;
	double ready_after, ready_timeout, stop_timeout;
	const char *target_log;
	const char *sub;
	char **margv;		/* measurement argv (sub, options, PID) */
	int margc;
	char **cmd;		/* the target command */
};

static bool
takes_arg(const char *a)
{
	return !strcmp(a, "--ready-file") || !strcmp(a, "--ready-after") ||
	       !strcmp(a, "--ready-timeout") || !strcmp(a, "--stop-timeout") ||
	       !strcmp(a, "--target-log");
}

static int
parse(int argc, char **argv, struct run_opts *o)
{
	int dd = -1, k = 1;

	o->ready_timeout = 60;
	o->stop_timeout = 5;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dd = i;
			break;
		}
	for (int i = 1; i < (dd < 0 ? argc : dd); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(run_usage, stdout);
			return -1;
		}
	if (dd < 0 || dd == argc - 1) {
		cli_error("run", "missing '-- COMMAND' to start; see "
			  "'leakprobe run --help'");
		return EXIT_USAGE;
	}
	o->cmd = argv + dd + 1;
	o->margv = xcalloc((size_t)dd + 2, sizeof(char *));
	o->margc = 1;	/* slot 0: the sub-command */
	for (k = 1; k < dd; k++) {
		const char *a = argv[k];

		if (takes_arg(a)) {
			double *d = NULL;

			if (k + 1 >= dd) {
				cli_error("run", "%s needs a value", a);
				return EXIT_USAGE;
			}
			if (!strcmp(a, "--ready-file"))
				o->ready_file = argv[++k];
			else if (!strcmp(a, "--target-log"))
				o->target_log = argv[++k];
			else {
				d = !strcmp(a, "--ready-after") ? &o->ready_after :
				    !strcmp(a, "--ready-timeout") ?
				    &o->ready_timeout : &o->stop_timeout;
				if (lp_parse_seconds(argv[++k], d) < 0) {
					cli_error("run", "%s wants seconds > 0, "
						  "not '%s'", a, argv[k]);
					return EXIT_USAGE;
				}
			}
			continue;
		}
		if (o->margc == 1 && !o->sub &&
		    (!strcmp(a, "attach") || !strcmp(a, "ab") ||
		     !strcmp(a, "bisect"))) {
			o->sub = a;
			continue;
		}
		if (!o->sub && (!strcmp(a, "--steps") || !strcmp(a, "-s")))
			o->sub = "bisect";
		if (!o->sub && (!strncmp(a, "--a", 3) || !strncmp(a, "--b", 3)))
			o->sub = "ab";
		o->margv[o->margc++] = argv[k];
	}
	if (!o->sub)
		o->sub = "attach";
	if (o->ready_file && o->ready_after > 0) {
		cli_error("run", "give --ready-file or --ready-after, not both");
		return EXIT_USAGE;
	}
	o->margv[0] = (char *)o->sub;
	return EXIT_OK;
}

/* Wait up to `ms`, returning early when the child exits (returns 1). */
static int
nap(pid_t child, int ms, int *status)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	if (waitpid(child, status, WNOHANG) == child)
		return 1;
	nanosleep(&ts, NULL);
	return waitpid(child, status, WNOHANG) == child;
}

static bool
cpu_and_state(pid_t pid, unsigned long long *cpu, char *state)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", state, &ut, &st) != 3)
		return false;
	*cpu = ut + st;
	return true;
}

/* Is the process a Ruby yet (after the exec of a wrapper shell)? */
static bool
maps_ruby(pid_t pid)
{
	char path[64], line[512];
	bool yes = false;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	while (!yes && fgets(line, sizeof(line), fp))
		yes = strstr(line, "libruby") || strstr(line, "/ruby");
	fclose(fp);
	return yes;
}

/*
 * 0 ready; EXIT_TARGET when it exited or never got ready (message
 * printed); EXIT_INJECT when interrupted.
 */
static int
wait_ready(const struct run_opts *o, pid_t child, int *status, bool *reaped)
{
	uint64_t start = lp_mono_ns();
	uint64_t limit = (uint64_t)(o->ready_timeout * 1e9);
	unsigned long long cpu = 0, last = ~0ull;
	int idle = 0;
	char st = 0;

	for (;;) {
		if (lp_stop_signal) {
			cli_error("run", "interrupted while waiting for the "
				  "target");
			return EXIT_INJECT;
		}
		if (o->ready_file && access(o->ready_file, F_OK) == 0)
			return 0;
		if (o->ready_after > 0 &&
		    lp_mono_ns() - start >= (uint64_t)(o->ready_after * 1e9))
			return 0;
		if (!o->ready_file && o->ready_after <= 0) {
			/* idle: sleeping, no CPU used, 3 samples in a row */
			if (cpu_and_state(child, &cpu, &st) &&
			    st == 'S' && cpu == last && maps_ruby(child))
				idle++;
			else
				idle = 0;
			last = cpu;
			if (idle >= 3)
				return 0;
		}
		if (lp_mono_ns() - start > limit) {
			cli_error("run", "the target never became ready within "
				  "%.0f s (%s)", o->ready_timeout,
				  o->ready_file ? "no ready file" :
				  "never idle");
			return EXIT_TARGET;
		}
		if (nap(child, o->ready_file ? 10 : 100, status)) {
			*reaped = true;
			if (WIFEXITED(*status))
				cli_error("run", "the target exited with status "
					  "%d before it was ready",
					  WEXITSTATUS(*status));
			else
				cli_error("run", "the target was killed by "
					  "signal %d before it was ready",
					  WTERMSIG(*status));
			return EXIT_TARGET;
		}
	}
}

/* SIGTERM the target's process group, then SIGKILL; always reap. */
static void
stop_target(pid_t child, double stop_timeout)
{
	uint64_t deadline;
	int status;

	if (waitpid(child, &status, WNOHANG) == child)
		goto group;
	kill(-child, SIGTERM);
	kill(child, SIGCONT);	/* a stopped target must see SIGTERM */
	deadline = lp_mono_ns() + (uint64_t)(stop_timeout * 1e9);
	while (lp_mono_ns() < deadline)
		if (nap(child, 20, &status))
			goto group;
	kill(-child, SIGKILL);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
group:
	kill(-child, SIGKILL);	/* anything it left in its group */
}

int
cmd_run(int argc, char **argv)
{
	struct run_opts o;
	char pidbuf[16];
	int rc, status = 0, pipefd[2], err = 0;
	bool reaped = false;
	pid_t child, parent;

	memset(&o, 0, sizeof(o));
	rc = parse(argc, argv, &o);
	if (rc != EXIT_OK) {
		free(o.margv);
		return rc < 0 ? cli_finish_stdout("run", EXIT_OK) : rc;
	}
	if (o.ready_file)
		unlink(o.ready_file);	/* a stale one must not count */
	cli_install_signals();
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		cli_error("run", "pipe: %s", strerror(errno));
		free(o.margv);
		return EXIT_INJECT;
	}
	fflush(stdout);
	fflush(stderr);
	parent = getpid();
	child = fork();
	if (child < 0) {
		cli_error("run", "fork: %s", strerror(errno));
		free(o.margv);
		return EXIT_INJECT;
	}
	if (child == 0) {
		int fd;

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)	/* leakprobe died already */
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (o.target_log) {
			fd = open(o.target_log, O_WRONLY | O_CREAT | O_TRUNC |
				  O_CLOEXEC, 0644);
			if (fd < 0)
				goto child_fail;
			dup2(fd, 1);
			dup2(fd, 2);
		} else {
			dup2(2, 1);	/* keep leakprobe's stdout clean */
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			if (fd != 0)
				close(fd);
		}
		execvp(o.cmd[0], o.cmd);
child_fail:
		err = errno;
		if (write(pipefd[1], &err, sizeof(err)) < 0)
			_exit(127);
		_exit(127);
	}
	setpgid(child, child);
	close(pipefd[1]);
	if (read(pipefd[0], &err, sizeof(err)) == sizeof(err)) {
		close(pipefd[0]);
		waitpid(child, &status, 0);
		cli_error("run", "cannot run '%s': %s", o.cmd[0],
			  strerror(err));
		free(o.margv);
		return EXIT_TARGET;
	}
	close(pipefd[0]);
	lp_debug("run: target %d started", (int)child);

	rc = wait_ready(&o, child, &status, &reaped);
	if (rc == 0) {
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)child);
		o.margv[o.margc++] = pidbuf;
		o.margv[o.margc] = NULL;
		if (!strcmp(o.sub, "ab"))
			rc = cmd_ab(o.margc, o.margv);
		else if (!strcmp(o.sub, "bisect"))
			rc = cmd_bisect(o.margc, o.margv);
		else
			rc = cmd_attach(o.margc, o.margv);
		fflush(stdout);
	} else if (reaped) {
		kill(-child, SIGKILL);	/* what it left in its group */
		goto out;
	}
	stop_target(child, o.stop_timeout);
out:
	if (o.ready_file)
		unlink(o.ready_file);	/* ours to remove, as at the start */
	free(o.margv);
	return rc;
}
