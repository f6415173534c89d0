#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

volatile int lp_stop_signal;

uint64_t
lp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
lp_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool
lp_sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000ull),
		.tv_nsec = (long)(deadline_ns % 1000000000ull),
	};
	int rc;

	while (!lp_stop_signal) {
		rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		if (rc == 0)
			return !lp_stop_signal;
		if (rc != EINTR)
			return false;
	}
	return false;
}

void
lp_iso8601(uint64_t wall_ns, char *buf, size_t len)
{
	time_t sec = (time_t)(wall_ns / 1000000000ull);
	unsigned ms = (unsigned)((wall_ns / 1000000ull) % 1000);
	struct tm tm;
	char date[32], zone[8];

	localtime_r(&sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, len, "%s.%03u%s", date, ms, zone);
}

void
lp_stamp(uint64_t wall_ns, char *buf, size_t len)
{
	time_t sec = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;

	localtime_r(&sec, &tm);
	strftime(buf, len, "%Y%m%dT%H%M%S", &tm);
}

void
lp_human_bytes(double bytes, int want_sign, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = fabs(bytes);
	const char *sign = bytes < 0 ? "-" : (want_sign ? "+" : "");
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%s%.0f B", sign, v);
	else
		snprintf(buf, len, "%s%.*f %s", sign, v < 10 ? 2 : 1, v,
			 unit[u]);
}

ssize_t
lp_read_file(const char *path, char **buf, size_t *cap, struct lp_err *err)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				  "open '%s'", path);
	for (;;) {
		if (*cap - len < 4096 || !*buf)
			*buf = xgrow(*buf, cap, len + 65536, 1);
		n = read(fd, *buf + len, *cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			lp_err_sys(err, lp_errno_code(errno, LP_EIO),
				   "read '%s'", path);
			close(fd);
			return -(err ? err->code : LP_EIO);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	(*buf)[len] = '\0';
	return (ssize_t)len;
}

int
lp_parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 0x3fffffff)
		return -LP_EINVAL;
	*out = (pid_t)v;
	return 0;
}

int
lp_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s == '-' || *s == '\0')
		return -LP_EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -LP_EINVAL;
	/* Accept size suffixes k, M, G (binary), without overflow. */
	{
		int shift = 0;

		switch (*end) {
		case 'k': case 'K':
			shift = 10; end++; break;
		case 'm': case 'M':
			shift = 20; end++; break;
		case 'g': case 'G':
			shift = 30; end++; break;
		}
		if (shift && v > (~0ull >> shift))
			return -LP_EINVAL;
		v <<= shift;
	}
	if (*end == 'i' && end[-1] != *s)
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -LP_EINVAL;
	*out = v;
	return 0;
}

int
lp_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v <= 0 || v > 1e7)
		return -LP_EINVAL;
	if (*end == 's' && end[1] == '\0')
		end++;
	else if (*end == 'm' && end[1] == 's' && end[2] == '\0') {
		v /= 1000;
		end += 2;
	} else if (*end == 'm' && end[1] == '\0') {
		v *= 60;
		end++;
	} else if (*end == 'h' && end[1] == '\0') {
		v *= 3600;
		end++;
	}
	if (*end)
		return -LP_EINVAL;
	*out = v;
	return 0;
}
