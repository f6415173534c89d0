/*
 * ELF files as the injector reads a mapped file: the input is written to
 * a memfd and opened through its /proc/self/fd path, so the production
 * path runs (elf__open_lazy: pread of the headers, .eh_frame_hdr or the
 * table built from .eh_frame; elf__load: libelf's section walk, build-id
 * and debuglink, .dynsym/.symtab, the DT_GNU_HASH bloom filter, the
 * by-address index).  Then lookups by name and by address, the load bias
 * and reads through the PT_LOADs.  A debug file is looked for under a
 * directory that does not exist.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "injector/injector_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

static void
look(struct elf_file *f, const char *name)
{
	const struct elf_sym *s;

	(void)elf__may_define(f, name);
	if (elf__lookup(f, name, &s) == 0) {
		if (strcmp(elf__sym_name(f, s), name))
			abort();
		(void)elf__find_addr(f, s->value);
	}
	if (elf__lookup_table(f, name, true, &s) == 0)
		(void)elf__sym_name(f, s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_file *f;
	struct lp_err err;
	uint8_t buf[64];
	uint64_t bias;

	if (fd < 0) {
		fd = memfd_create("lp-fuzz-elf", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	lp_err_clear(&err);
	f = elf__open_lazy(path, 0, "/nonexistent-leakprobe-fuzz", &err);
	if (!f)
		return 0;
	(void)elf__may_define(f, "malloc");	/* the bloom filter alone */
	(void)elf__load(f, ELF_L_ADDR | ELF_L_BLOOM, &err);
	if (strlen(f->build_id) > 40)
		abort();
	look(f, "malloc");
	look(f, "rb_postponed_job_register_one");
	look(f, "main");
	/* names the file defines: some, in both tables */
	for (size_t i = 0; i < f->ndyn && i < 8; i++) {
		char name[256];

		snprintf(name, sizeof(name), "%s",
			 elf__sym_name(f, &f->dyn[i]));
		look(f, name);
	}
	for (size_t i = 0; i < f->ntab && i < 8; i++) {
		char name[256];

		snprintf(name, sizeof(name), "%s",
			 elf__sym_name(f, &f->tab[i]));
		look(f, name);
	}
	for (size_t i = 0; i < f->nby_addr && i < 16; i++) {
		const struct elf_sym *s = f->by_addr[i];

		(void)elf__find_addr(f, s->value);
		(void)elf__find_addr(f, s->value + s->size - 1);
	}
	(void)elf__find_addr(f, f->lo_vaddr);
	(void)elf__find_addr(f, f->hi_vaddr - 1);
	for (size_t i = 0; i < f->nsegs && i < 4; i++) {
		(void)elf__bias(f, 0x7f0000000000ull + f->segs[i].offset,
				f->segs[i].offset, &bias);
		(void)elf__read(f, f->segs[i].vaddr, buf, sizeof(buf), NULL);
		(void)elf__read(f, f->segs[i].vaddr + f->segs[i].filesz - 8,
				buf, sizeof(buf), NULL);
	}
	(void)elf__read(f, f->text_vaddr, buf, sizeof(buf), NULL);
	if (f->eh_fde_count)
		(void)elf__read(f, f->eh_table_vaddr, buf, 8, NULL);
	for (size_t i = 0; i < f->eh_local_n; i++)
		(void)f->eh_local[2 * i];
	elf__free(f);
	return 0;
}
