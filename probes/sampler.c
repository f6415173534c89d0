#include "probes/probes.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

int
probe_smaps_read(pid_t pid, bool rollup, struct ana_smaps *s,
		 struct lp_err *err)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid,
		 rollup ? "smaps_rollup" : "smaps");
	n = lp_read_file(path, &s->buf, &s->cap, err);
	if (n < 0)
		return (int)n;
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
