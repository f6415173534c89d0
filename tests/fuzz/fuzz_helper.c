/*
 * The helper thread's messages as the session reads them from the result
 * channel: the bytes arrive in pieces (size from the first byte), are cut
 * into lines by probe__next_line(), a {"bye":...} line is kept by
 * probe__take_bye(), every other line is parsed by probe__parse_msg(): the
 * first as the hello, the next ones as batch results, and each line also
 * as a GC.stat report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/probes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *inbuf = NULL, *line = NULL, bye[64] = "";
	size_t incap = 0, inlen = 0, linecap = 0, piece, nmsg = 0;
	struct probe_hello hello;
	struct probe_result res;
	struct probe_gc gc;
	struct lp_err err;
	json_t *msg;

	if (size < 1)
		return 0;
	piece = 1 + data[0] % 97;
	data++;
	size--;
	for (size_t o = 0; o < size; o += piece) {
		size_t n = size - o < piece ? size - o : piece;

		inbuf = realloc(inbuf, incap = inlen + n);
		if (!inbuf)
			abort();
		memcpy(inbuf + inlen, data + o, n);
		inlen += n;
		while (probe__next_line(inbuf, &inlen, &line, &linecap)) {
			if (strlen(line) >= linecap)
				abort();
			(void)probe__parse_gcstat(line, &gc);
			if (probe__take_bye(line, bye, sizeof(bye))) {
				if (strlen(bye) >= sizeof(bye))
					abort();
				continue;
			}
			lp_err_clear(&err);
			if (probe__parse_msg(line, &msg, &err) < 0)
				continue;
			if (nmsg++ == 0) {
				memset(&hello, 0, sizeof(hello));
				hello.first_bad = -1;
				(void)probe__parse_hello(msg, &hello);
				if (hello.nbad < 0 || hello.nbad > 64)
					abort();
			} else {
				memset(&res, 0, sizeof(res));
				probe__parse_run(msg, &res);
			}
			json_decref(msg);
		}
		if (inlen > size)
			abort();
	}
	free(inbuf);
	free(line);
	return 0;
}
