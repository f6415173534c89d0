/*
 * bench/heapdiff: run a command a few times and report its best wall time,
 * the CPU time of that run and the peak resident memory of all runs, read
 * from wait4(2) (no /usr/bin/time needed).  Used by bench/heapdiff.sh to
 * time `leakprobe heapdiff` and the baseline on the same files.
 *
 *   heapdiff RUNS COMMAND [ARGS...]
 *
 * Prints one line: "wall_s user_s sys_s maxrss_kib exit_status".  The
 * command's stdout goes to /dev/null; its stderr is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
tv(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	double best = -1, best_user = 0, best_sys = 0;
	long maxrss = 0;
	int runs, status = 0;

	if (argc < 3 || (runs = atoi(argv[1])) < 1) {
		fprintf(stderr, "usage: heapdiff RUNS COMMAND [ARGS...]\n");
		return 2;
	}
	for (int i = 0; i < runs; i++) {
		struct rusage ru;
		double t0 = now(), t;
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0)
				dup2(fd, 1);
			execvp(argv[2], argv + 2);
			fprintf(stderr, "heapdiff: exec %s: %s\n", argv[2],
				strerror(errno));
			_exit(127);
		}
		while (wait4(pid, &status, 0, &ru) < 0)
			if (errno != EINTR) {
				perror("wait4");
				return 1;
			}
		t = now() - t0;
		if (ru.ru_maxrss > maxrss)
			maxrss = ru.ru_maxrss;
		if (best < 0 || t < best) {
			best = t;
			best_user = tv(&ru.ru_utime);
			best_sys = tv(&ru.ru_stime);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			break;
	}
	printf("%.3f %.3f %.3f %ld %d\n", best, best_user, best_sys, maxrss,
	       WIFEXITED(status) ? WEXITSTATUS(status)
				 : 128 + WTERMSIG(status));
	return 0;
}
