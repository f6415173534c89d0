/*
 * A plain main for the fuzz harnesses, so they build with any compiler:
 * runs LLVMFuzzerTestOneInput once on every file named (a directory: on
 * every file in it).  `make unit` runs each harness over its seed corpus
 * this way; a sanitizer build (SAN=1) checks those inputs too.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!fp) {
		perror(path);
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
	} while (n > 0);
	fclose(fp);
	/* an exact-size copy, so ASan sees a read past the input */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact)
		abort();
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int
main(int argc, char **argv)
{
	int ran = 0, bad = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			struct dirent **ents;
			int n = scandir(argv[i], &ents, NULL, alphasort);

			if (n < 0) {
				perror(argv[i]);
				bad++;
				continue;
			}
			for (int j = 0; j < n; j++) {
				char p[4096];

				if (ents[j]->d_name[0] != '.') {
					snprintf(p, sizeof(p), "%s/%s",
						 argv[i], ents[j]->d_name);
					if (run_file(p) < 0)
						bad++;
					else
						ran++;
				}
				free(ents[j]);
			}
			free(ents);
		} else if (run_file(argv[i]) < 0) {
			bad++;
		} else {
			ran++;
		}
	}
	printf("%s: %d inputs ran\n", argv[0], ran);
	return bad ? 1 : 0;
}
