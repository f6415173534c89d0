/*
 * Unit tests for injector/elfsym.c and injector/symbols.c: ELF loading,
 * load bias, lookup by name and by address, debug files, the module
 * index of live processes (ourselves and fixture children), and the
 * unwinder on a stopped child.
 *
 * The fixture ELF files are built by the Makefile into
 * $(BUILD)/fixtures/elf, found here next to this binary
 * ($(BUILD)/tests/test_elfsym); LP_ELF_FIXTURES overrides the directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "injector/injector_int.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Link address of section .lp_known: ELFFIX_KNOWN in the Makefile. */
#define KNOWN_ADDR	((uint64_t)0x800000)
#define KNOWN_SIZE	6	/* known.h: LP_KNOWN_SIZE */
#define KNOWN_GAP	26	/* int3 bytes after it, in no symbol */
#define PIE_BUILD_ID	"0123456789abcdef0123456789abcdef01234567"
#define STRIPPED_BUILD_ID "fedcba9876543210fedcba9876543210fedcba98"

static char fixdir[1024];

struct fixtures {
	struct elf_file *pie, *nopie, *stat, *static_pie, *shared;
	struct elf_file *stripped, *debug;
};

static void
fx_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", fixdir, name);
}

static struct elf_file *
fx_open(const char *name)
{
	char path[PATH_MAX + 64];
	struct lp_err err = { 0 };
	struct elf_file *f;

	fx_path(path, sizeof(path), name);
	f = elf__open(path, &err);
	if (!f)
		fail_msg("fixture %s: %s", path, err.msg);
	return f;
}

static int
group_setup(void **state)
{
	struct fixtures *fx = calloc(1, sizeof(*fx));
	const char *env = getenv("LP_ELF_FIXTURES");
	char exe[PATH_MAX];
	ssize_t n;

	if (env) {
		snprintf(fixdir, sizeof(fixdir), "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			return -1;
		exe[n] = '\0';
		/* $(BUILD)/tests/test_elfsym -> $(BUILD)/fixtures/elf */
		snprintf(fixdir, sizeof(fixdir), "%s/../fixtures/elf",
			 dirname(exe));
	}
	fx->pie = fx_open("pie");
	fx->nopie = fx_open("nopie");
	fx->stat = fx_open("static");
	fx->static_pie = fx_open("static-pie");
	fx->shared = fx_open("shared.so");
	fx->stripped = fx_open("stripped");
	fx->debug = fx_open("stripped.debug");
	*state = fx;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixtures *fx = *state;

	if (!fx)
		return 0;
	elf__free(fx->pie);
	elf__free(fx->nopie);
	elf__free(fx->stat);
	elf__free(fx->static_pie);
	elf__free(fx->shared);
	elf__free(fx->stripped);
	elf__free(fx->debug);
	free(fx);
	return 0;
}

/* ---- helpers: a target struct without inj_open, fixture children ---- */

/* inj_open() refuses our own pid; the symbol code only needs these. */
static struct inj_target *
fake_target(pid_t pid)
{
	struct inj_target *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->pid = pid;
	t->memfd = -1;
	snprintf(t->root, sizeof(t->root), "/proc/%d/root", (int)pid);
	return t;
}

static void
fake_free(struct inj_target *t)
{
	for (size_t i = 0; i < t->nmods; i++) {
		elf__free(t->mods[i].elf);
		free(t->mods[i].path);
	}
	free(t->mods);
	inj__free_maps(t->maps, t->nmaps);
	free(t);
}

static struct inj_target *
self_target(void)
{
	struct inj_target *t = fake_target(getpid());
	struct lp_err err = { 0 };

	if (inj_refresh_maps(t, &err) < 0)
		fail_msg("refresh self: %s", err.msg);
	return t;
}

struct child {
	pid_t pid;
	FILE *out;
	int nsym;
	struct {
		char name[32];
		uint64_t addr;
	} sym[16];
};

/*
 * Start a fixture program with "pause": it prints "name address" lines,
 * then "ready N" from lp_inner just before it waits in pause().
 */
static void
child_start_path(struct child *c, const char *path)
{
	char line[256];
	bool ready = false;
	int fds[2];

	memset(c, 0, sizeof(*c));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		execl(path, path, "pause", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	c->out = fdopen(fds[0], "r");
	assert_non_null(c->out);
	while (fgets(line, sizeof(line), c->out)) {
		char name[32];
		void *p;

		if (!strncmp(line, "ready", 5)) {
			ready = true;
			break;
		}
		if (sscanf(line, "%31s %p", name, &p) == 2 && c->nsym < 16) {
			snprintf(c->sym[c->nsym].name, 32, "%s", name);
			c->sym[c->nsym++].addr = (uint64_t)(uintptr_t)p;
		}
	}
	if (!ready)
		fail_msg("fixture %s did not start", path);
}

static void
child_start(struct child *c, const char *fixture)
{
	char path[PATH_MAX + 64];

	fx_path(path, sizeof(path), fixture);
	child_start_path(c, path);
}

static uint64_t
child_sym(const struct child *c, const char *name)
{
	for (int i = 0; i < c->nsym; i++)
		if (!strcmp(c->sym[i].name, name))
			return c->sym[i].addr;
	fail_msg("fixture did not print %s", name);
	return 0;
}

static void
child_stop(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	fclose(c->out);
}

static struct inj_module *
module_named(struct inj_target *t, const char *base)
{
	for (size_t i = 0; i < t->nmods; i++)
		if (!strcmp(t->mods[i].base, base))
			return &t->mods[i];
	fail_msg("no module %s", base);
	return NULL;
}

/* ---- elf__open --------------------------------------------------------- */

static void
test_elf_open_pie(void **state)
{
	struct fixtures *fx = *state;
	struct elf_file *f = fx->pie;

	assert_int_equal(f->e_type, ET_DYN);
	assert_string_equal(f->build_id, PIE_BUILD_ID);
	assert_true(f->nsegs >= 4);
	assert_true(f->ndyn > 0);	/* -rdynamic */
	assert_true(f->ntab > f->ndyn);
	assert_true(f->text_size > 0);
	assert_true(f->text_vaddr >= f->lo_vaddr);
	assert_true(f->eh_fde_count > 0);
	assert_true(f->eh_table_vaddr > f->eh_hdr_vaddr);
	assert_true(f->hi_vaddr > KNOWN_ADDR);
	assert_null(f->debuglink);
	/* by-address index is sorted and holds no size-0 entry */
	for (size_t i = 0; i < f->nby_addr; i++) {
		assert_true(f->by_addr[i]->size > 0);
		if (i)
			assert_true(f->by_addr[i - 1]->value <
				    f->by_addr[i]->value);
	}
}

static void
test_elf_open_types(void **state)
{
	struct fixtures *fx = *state;

	assert_int_equal(fx->nopie->e_type, ET_EXEC);
	assert_int_equal(fx->stat->e_type, ET_EXEC);
	assert_int_equal(fx->static_pie->e_type, ET_DYN);
	assert_int_equal(fx->shared->e_type, ET_DYN);
	/* a static executable has no .dynsym worth the name, but .symtab */
	assert_true(fx->stat->ntab > 100);
	/* ... and no .eh_frame_hdr: the search table is built locally */
	assert_int_equal(fx->stat->eh_fde_count, 0);
	assert_true(fx->stat->eh_local_n > 100);
	assert_true(fx->static_pie->eh_fde_count > 100);
	assert_int_equal(fx->static_pie->eh_local_n, 0);
	assert_true(fx->nopie->segs[0].vaddr >= 0x400000);
}

static void
test_elf_open_rejects_non_elf(void **state)
{
	char path[PATH_MAX + 64], tmp[] = "/tmp/lp-elfsym-XXXXXX";
	struct lp_err err = { 0 };
	unsigned char head[80];
	int fd, src;

	(void)state;
	/* a text file: rejected on its magic */
	snprintf(path, sizeof(path), "%s/../../tests/fixtures/elf/known.h",
		 fixdir);
	if (access(path, R_OK) < 0)
		snprintf(path, sizeof(path), "tests/fixtures/elf/known.h");
	assert_null(elf__open(path, &err));
	assert_int_equal(err.code, LP_EPARSE);
	assert_non_null(strstr(err.msg, "not an ELF file"));

	/* a directory */
	lp_err_clear(&err);
	assert_null(elf__open("/", &err));
	assert_int_equal(err.code, LP_EPARSE);

	/* a missing file */
	lp_err_clear(&err);
	assert_null(elf__open("/nonexistent/lp-file", &err));
	assert_int_equal(err.code, LP_EIO);
	assert_int_equal(err.sys_errno, ENOENT);

	/* a character device is not opened as a file */
	lp_err_clear(&err);
	assert_null(elf__open("/dev/zero", &err));
	assert_int_equal(err.code, LP_EPARSE);

	/* a truncated ELF: a valid header whose tables lie past EOF */
	fx_path(path, sizeof(path), "pie");
	src = open(path, O_RDONLY);
	assert_true(src >= 0);
	assert_int_equal(read(src, head, sizeof(head)), sizeof(head));
	close(src);
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, head, sizeof(head)), sizeof(head));
	close(fd);
	lp_err_clear(&err);
	assert_null(elf__open(tmp, &err));
	assert_int_equal(err.code, LP_EPARSE);

	/* a 32-bit ELF header */
	head[EI_CLASS] = ELFCLASS32;
	fd = open(tmp, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, head, sizeof(head)), sizeof(head));
	close(fd);
	lp_err_clear(&err);
	assert_null(elf__open(tmp, &err));
	assert_int_equal(err.code, LP_EPARSE);
	unlink(tmp);

	elf__free(NULL);
}

/* ---- lookup by name ---------------------------------------------------- */

static void
check_known(struct elf_file *f, const char *name)
{
	const struct elf_sym *s;

	assert_int_equal(elf__lookup(f, name, &s), 0);
	assert_int_equal(s->value, KNOWN_ADDR);
	assert_int_equal(s->size, KNOWN_SIZE);
	assert_int_equal(s->type, STT_FUNC);
	assert_int_equal(s->bind, STB_GLOBAL);
	assert_string_equal(elf__sym_name(f, s), name);
}

static void
test_lookup_known_address_and_size(void **state)
{
	struct fixtures *fx = *state;

	check_known(fx->pie, "lp_known_func");
	check_known(fx->nopie, "lp_known_func");
	check_known(fx->stat, "lp_known_func");
	check_known(fx->static_pie, "lp_known_func");
	check_known(fx->shared, "lp_lib_known");
	check_known(fx->stripped, "lp_known_func");
}

static void
test_lookup_dynsym_then_symtab(void **state)
{
	struct fixtures *fx = *state;
	const struct elf_sym *s, *t;

	/* exported: found in .dynsym first */
	assert_int_equal(elf__lookup(fx->pie, "lp_outer", &s), 0);
	assert_int_equal(s->from_symtab, 0);
	assert_int_equal(elf__lookup_table(fx->pie, "lp_outer", true, &t), 0);
	assert_int_equal(t->from_symtab, 1);
	assert_int_equal(s->value, t->value);
	assert_int_equal(s->size, t->size);
	/* static: only in .symtab */
	assert_int_equal(elf__lookup_table(fx->pie, "lp_static_func", false,
					   &s), -LP_ENOSYM);
	assert_int_equal(elf__lookup(fx->pie, "lp_static_func", &s), 0);
	assert_int_equal(s->from_symtab, 1);
	assert_int_equal(s->bind, STB_LOCAL);
	assert_int_equal(s->type, STT_FUNC);
	assert_true(s->size > 0);
	/* objects */
	assert_int_equal(elf__lookup(fx->pie, "lp_object", &s), 0);
	assert_int_equal(s->type, STT_OBJECT);
	assert_int_equal(s->size, 64);
	assert_int_equal(elf__lookup(fx->shared, "lp_lib_object", &s), 0);
	assert_int_equal(s->size, 32);
	/* imports are not definitions */
	assert_int_equal(elf__lookup(fx->pie, "printf", &s), -LP_ENOSYM);
	assert_int_equal(elf__lookup(fx->pie, "lp_nonexistent", &s),
			 -LP_ENOSYM);
	/* a name is matched whole, not as a prefix */
	assert_int_equal(elf__lookup(fx->pie, "lp_out", &s), -LP_ENOSYM);
}

static void
test_lookup_stripped_has_dynsym_only(void **state)
{
	struct fixtures *fx = *state;
	const struct elf_sym *s, *d;

	assert_int_equal(fx->stripped->ntab, 0);
	assert_null(fx->stripped->tab);
	assert_true(fx->stripped->ndyn > 0);
	assert_string_equal(fx->stripped->build_id, STRIPPED_BUILD_ID);
	assert_string_equal(fx->stripped->debuglink, "stripped.debug");
	assert_int_equal(elf__lookup(fx->stripped, "lp_outer", &s), 0);
	assert_int_equal(s->from_symtab, 0);
	assert_int_equal(elf__lookup(fx->stripped, "lp_static_func", &s),
			 -LP_ENOSYM);
	/* the debug file has the .symtab, at the same link addresses */
	assert_int_equal(fx->debug->e_type, ET_DYN);
	assert_string_equal(fx->debug->build_id, STRIPPED_BUILD_ID);
	assert_int_equal(elf__lookup(fx->debug, "lp_static_func", &d), 0);
	/* by address, the stripped file knows nothing there */
	assert_null(elf__find_addr(fx->stripped, d->value + 1));
	assert_int_equal(elf__lookup(fx->debug, "lp_outer", &d), 0);
	assert_int_equal(elf__lookup(fx->stripped, "lp_outer", &s), 0);
	assert_int_equal(s->value, d->value);
}

/* ---- lookup by address ------------------------------------------------- */

static void
test_find_addr_within_st_size(void **state)
{
	struct fixtures *fx = *state;
	struct elf_file *files[] = { fx->pie, fx->nopie, fx->stat,
				     fx->stripped };
	const struct elf_sym *s;

	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		struct elf_file *f = files[i];

		s = elf__find_addr(f, KNOWN_ADDR);
		assert_non_null(s);
		assert_string_equal(elf__sym_name(f, s), "lp_known_func");
		s = elf__find_addr(f, KNOWN_ADDR + KNOWN_SIZE - 1);
		assert_non_null(s);
		assert_int_equal(s->value, KNOWN_ADDR);
		/* past st_size: the nearest symbol is not named */
		assert_null(elf__find_addr(f, KNOWN_ADDR + KNOWN_SIZE));
		assert_null(elf__find_addr(f, KNOWN_ADDR + KNOWN_SIZE +
					   KNOWN_GAP - 1));
		assert_null(elf__find_addr(f, KNOWN_ADDR - 1 + 0x100000));
		assert_null(elf__find_addr(f, 0));
	}
	/* a static function, by .symtab */
	assert_int_equal(elf__lookup(fx->pie, "lp_static_func", &s), 0);
	assert_ptr_equal(elf__find_addr(fx->pie, s->value + s->size - 1), s);
	/* an object */
	assert_int_equal(elf__lookup(fx->shared, "lp_lib_object", &s), 0);
	assert_string_equal(elf__sym_name(fx->shared,
					  elf__find_addr(fx->shared,
							 s->value + 31)),
			    "lp_lib_object");
}

static void
test_find_addr_prefers_symtab_name(void **state)
{
	struct fixtures *fx = *state;
	const struct elf_sym *s;

	/* lp_outer is in both tables: the .symtab entry names it */
	assert_int_equal(elf__lookup(fx->pie, "lp_outer", &s), 0);
	s = elf__find_addr(fx->pie, s->value + 4);
	assert_non_null(s);
	assert_int_equal(s->from_symtab, 1);
	assert_string_equal(elf__sym_name(fx->pie, s), "lp_outer");
	/* without .symtab the .dynsym entry does */
	assert_int_equal(elf__lookup(fx->stripped, "lp_outer", &s), 0);
	s = elf__find_addr(fx->stripped, s->value + 4);
	assert_non_null(s);
	assert_int_equal(s->from_symtab, 0);
}

/* ---- debug files ------------------------------------------------------- */

static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	in = open(from, O_RDONLY);
	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static void
mkdirs(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(tmp, 0755);
		*p = '/';
	}
	mkdir(tmp, 0755);
}

static void
rm_rf(const char *path)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static void
test_debug_by_build_id(void **state)
{
	char root[] = "/tmp/lp-debugroot-XXXXXX";
	char dir[1024], dst[PATH_MAX], src[PATH_MAX];
	const struct elf_sym *s, *d;
	struct elf_file *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/usr/lib/debug/.build-id/%.2s", root,
		 STRIPPED_BUILD_ID);
	mkdirs(dir);
	snprintf(dst, sizeof(dst), "%s/%s.debug", dir, STRIPPED_BUILD_ID + 2);
	fx_path(src, sizeof(src), "stripped.debug");
	copy_file(src, dst);

	f = fx_open("stripped");
	assert_int_equal(f->ntab, 0);
	elf__load_debug(f, root);
	assert_true(f->has_debug);
	assert_true(f->ntab > 0);
	/* lookups by address now see the static function */
	assert_int_equal(elf__lookup(f, "lp_static_func", &d), 0);
	s = elf__find_addr(f, d->value + 2);
	assert_non_null(s);
	assert_string_equal(elf__sym_name(f, s), "lp_static_func");
	elf__free(f);

	/* nothing installed: nothing changes */
	f = fx_open("stripped");
	elf__load_debug(f, "/nonexistent");
	assert_false(f->has_debug);
	assert_int_equal(f->ntab, 0);
	elf__free(f);
	rm_rf(root);
}

static void
test_debug_by_debuglink(void **state)
{
	char root[] = "/tmp/lp-debugroot-XXXXXX";
	char dir[1024], dst[PATH_MAX], src[PATH_MAX];
	struct elf_file *f;
	const struct elf_sym *s;

	(void)state;
	assert_non_null(mkdtemp(root));
	/* the file at /opt/fx/stripped inside root, its debug file under
	 * /usr/lib/debug/opt/fx/ */
	snprintf(dir, sizeof(dir), "%s/opt/fx", root);
	mkdirs(dir);
	snprintf(dst, sizeof(dst), "%s/stripped", dir);
	fx_path(src, sizeof(src), "stripped");
	copy_file(src, dst);
	snprintf(dir, sizeof(dir), "%s/usr/lib/debug/opt/fx", root);
	mkdirs(dir);
	snprintf(dst, sizeof(dst), "%s/stripped.debug", dir);
	fx_path(src, sizeof(src), "stripped.debug");
	copy_file(src, dst);

	snprintf(dst, sizeof(dst), "%s/opt/fx/stripped", root);
	f = elf__open(dst, NULL);
	assert_non_null(f);
	elf__load_debug(f, root);
	assert_true(f->has_debug);
	assert_int_equal(elf__lookup(f, "lp_static_func", &s), 0);
	elf__free(f);

	/* a debug file of another build (other build-id) is refused */
	snprintf(dst, sizeof(dst), "%s/usr/lib/debug/opt/fx/stripped.debug",
		 root);
	fx_path(src, sizeof(src), "pie");
	copy_file(src, dst);
	snprintf(dst, sizeof(dst), "%s/opt/fx/stripped", root);
	f = elf__open(dst, NULL);
	assert_non_null(f);
	elf__load_debug(f, root);
	assert_false(f->has_debug);
	assert_int_equal(f->ntab, 0);
	elf__free(f);
	rm_rf(root);
}

/* ---- load bias --------------------------------------------------------- */

static void
test_bias_debian_libc_layout(void **state)
{
	/* readelf -l of Debian 12's libc.so.6: text at file offset 0x26000 */
	static const struct elf_load_seg libc[] = {
		{ 0x0, 0x25388, 0x0, 0x25388, PF_R },
		{ 0x26000, 0x1550fc, 0x26000, 0x1550fc, PF_R | PF_X },
		{ 0x17c000, 0x52c31, 0x17c000, 0x52c31, PF_R },
		{ 0x1cf8d0, 0x12680, 0x1cf8d0, 0x4f98, PF_R | PF_W },
	};
	const uint64_t base = 0x7f15f9c9e000;
	uint64_t bias;

	(void)state;
	assert_int_equal(elf__bias_segs(libc, 4, base, 0, &bias), 0);
	assert_int_equal(bias, base);
	/* the r-xp mapping: start - p_vaddr would be base + 0x26000 */
	assert_int_equal(elf__bias_segs(libc, 4, base + 0x26000, 0x26000,
					&bias), 0);
	assert_int_equal(bias, base);
	assert_int_equal(elf__bias_segs(libc, 4, base + 0x17c000, 0x17c000,
					&bias), 0);
	assert_int_equal(bias, base);
	/* RW segment: p_offset 0x1cf8d0 is mapped from page 0x1cf000 */
	assert_int_equal(elf__bias_segs(libc, 4, base + 0x1cf000, 0x1cf000,
					&bias), 0);
	assert_int_equal(bias, base);
	/* its RELRO split: a mapping starting inside the segment */
	assert_int_equal(elf__bias_segs(libc, 4, base + 0x1d3000, 0x1d3000,
					&bias), 0);
	assert_int_equal(bias, base);
	/* no PT_LOAD holds this offset */
	assert_int_equal(elf__bias_segs(libc, 4, base + 0x300000, 0x300000,
					&bias), -LP_EINVAL);
}

static void
test_bias_offset_differs_from_vaddr(void **state)
{
	/*
	 * A libruby linked without -z separate-code by an older binutils:
	 * the RW segment's p_vaddr is p_offset + 0x200000, and its first
	 * file page also holds the end of the text segment.
	 */
	static const struct elf_load_seg ruby[] = {
		{ 0x0, 0x2b0a00, 0x0, 0x2b0a00, PF_R | PF_X },
		{ 0x4b0dd0, 0x1c000, 0x2b0dd0, 0xa000, PF_R | PF_W },
	};
	const uint64_t base = 0x7f0000000000;
	uint64_t bias;

	(void)state;
	assert_int_equal(elf__bias_segs(ruby, 2, base, 0, &bias), 0);
	assert_int_equal(bias, base);
	/* data mapped at base + 0x4b0000 from offset 0x2b0000 */
	assert_int_equal(elf__bias_segs(ruby, 2, base + 0x4b0000, 0x2b0000,
					&bias), 0);
	assert_int_equal(bias, base);
	/* the RELRO split of the data segment */
	assert_int_equal(elf__bias_segs(ruby, 2, base + 0x4b2000, 0x2b2000,
					&bias), 0);
	assert_int_equal(bias, base);
	/* a mapping inside text */
	assert_int_equal(elf__bias_segs(ruby, 2, base + 0x1000, 0x1000,
					&bias), 0);
	assert_int_equal(bias, base);
}

static void
test_bias_exec_is_zero(void **state)
{
	struct fixtures *fx = *state;
	uint64_t bias = 1;

	/* ET_EXEC: mapped at its link addresses */
	assert_int_equal(elf__bias(fx->nopie, fx->nopie->segs[0].vaddr &
				   ~0xfffULL, fx->nopie->segs[0].offset &
				   ~0xfffULL, &bias), 0);
	assert_int_equal(bias, 0);
	assert_int_equal(elf__bias(fx->stat, fx->stat->segs[1].vaddr &
				   ~0xfffULL, fx->stat->segs[1].offset &
				   ~0xfffULL, &bias), 0);
	assert_int_equal(bias, 0);
	/* the known section sits at its own file offset */
	for (size_t i = 0; i < fx->nopie->nsegs; i++) {
		const struct elf_load_seg *s = &fx->nopie->segs[i];

		if (s->vaddr != KNOWN_ADDR)
			continue;
		assert_int_equal(elf__bias(fx->nopie, KNOWN_ADDR, s->offset,
					   &bias), 0);
		assert_int_equal(bias, 0);
	}
}

/* ---- module index of a live process ------------------------------------ */

static void
test_resolve_self_libc_malloc(void **state)
{
	struct inj_target *t = self_target();
	struct lp_err err = { 0 };
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	void *real_malloc, *real_getpid;
	struct inj_module *mod;
	uint64_t addr;
	char buf[128];
	Dl_info di;

	(void)state;
	assert_non_null(libc);
	/* libc's own definitions (ASan interposes malloc in the test) */
	real_malloc = dlsym(libc, "malloc");
	real_getpid = dlsym(libc, "getpid");
	assert_int_equal(inj_lookup(t, "libc.so", "malloc", &addr, &err), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)real_malloc);
	assert_int_equal(inj_lookup(t, "libc.so.6", "getpid", &addr, &err),
			 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)real_getpid);
	assert_int_equal(inj_lookup(t, NULL, "getpid", &addr, &err), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)real_getpid);

	/* the module's bias is the loader's l_addr */
	mod = inj__module_at(t, (uint64_t)(uintptr_t)real_malloc);
	assert_non_null(mod);
	assert_string_equal(mod->base, "libc.so.6");
	assert_non_null(mod->elf);
	assert_int_equal(dladdr(real_malloc, &di), 1);
	assert_int_equal(mod->bias, (uint64_t)(uintptr_t)di.dli_fbase);
	assert_false(mod->main_exe);

	/* by address */
	inj_symbolize(t, (uint64_t)(uintptr_t)real_malloc + 5, buf,
		      sizeof(buf));
	assert_string_equal(buf, "malloc+0x5 (libc.so.6)");
	assert_true(inj_addr_in_symbol(t, (uint64_t)(uintptr_t)real_malloc +
				       5, "malloc"));
	assert_true(inj_addr_in_symbol(t, (uint64_t)(uintptr_t)real_malloc,
				       "__libc_malloc"));
	assert_false(inj_addr_in_symbol(t, (uint64_t)(uintptr_t)real_malloc,
					"free"));
	assert_string_equal(inj_addr_module(t, (uint64_t)(uintptr_t)
					    real_getpid), "libc.so.6");
	assert_non_null(strstr(inj_symbol_module(t, "getpid"), "libc.so.6"));
	dlclose(libc);
	fake_free(t);
}

/* a static function of glibc 2.34+, named only by its .symtab */
#define START_CALL_MAIN "__libc_start_call_main"

static void
test_debug_installed_libc(void **state)
{
	struct inj_target *t = self_target();
	struct inj_module *libc = module_named(t, "libc.so.6");
	const struct elf_sym *s;
	char path[256], buf[160];
	uint64_t addr;

	(void)state;
	/* indexing read its program headers only */
	assert_int_equal(libc->elf->loaded, 0);
	assert_false(libc->elf->has_debug);
	assert_int_equal(libc->elf->ntab, 0);
	assert_null(libc->elf->by_addr);
	assert_int_equal(elf__load(libc->elf, ELF_L_META, NULL), 0);
	assert_true(strlen(libc->elf->build_id) > 2);
	assert_int_equal(libc->elf->ntab, 0);
	snprintf(path, sizeof(path), "/usr/lib/debug/.build-id/%.2s/%s.debug",
		 libc->elf->build_id, libc->elf->build_id + 2);
	if (access(path, R_OK) == 0) {
		/* libc6-dbg: internal functions get their names; a name
		 * no .dynsym has loads the .symtabs, debug files included */
		assert_int_equal(inj_lookup(t, "libc.so", START_CALL_MAIN,
					    &addr, NULL), 0);
		assert_true(libc->elf->has_debug);
		assert_true(libc->elf->loaded & ELF_L_TAB);
		assert_int_equal(elf__load(libc->elf, ELF_L_DYN, NULL), 0);
		assert_true(libc->elf->ntab > libc->elf->ndyn);
		assert_int_equal(elf__lookup(libc->elf, START_CALL_MAIN, &s),
				 0);
		assert_int_equal(s->bind, STB_LOCAL);
		inj_symbolize(t, addr + 1, buf, sizeof(buf));
		assert_string_equal(buf,
				    "__libc_start_call_main+0x1 (libc.so.6)");
		/* versioned .symtab names are stored without "@VER" */
		assert_int_equal(elf__lookup_table(libc->elf,
						   "__libc_start_main", true,
						   &s), 0);
		assert_false(s->hidden);
	} else {
		/* Debian's libc has no .symtab of its own */
		assert_int_equal(inj_lookup(t, "libc.so", START_CALL_MAIN,
					    &addr, NULL), -LP_ENOSYM);
		assert_true(libc->elf->loaded & ELF_L_TAB);
		assert_false(libc->elf->has_debug);
		assert_int_equal(libc->elf->ntab, 0);
	}
	fake_free(t);
}

static void
test_resolve_self_main_exe(void **state)
{
	struct inj_target *t = self_target();
	struct inj_module *mod;
	uint64_t addr;
	int nexe = 0;

	(void)state;
	for (size_t i = 0; i < t->nmods; i++)
		nexe += t->mods[i].main_exe;
	assert_int_equal(nexe, 1);
	mod = inj__module_at(t,
			     (uint64_t)(uintptr_t)test_resolve_self_main_exe);
	assert_non_null(mod);
	assert_true(mod->main_exe);
	assert_string_equal(mod->base, "test_elfsym");
	/* a static function of this test, through our .symtab */
	assert_int_equal(inj_lookup(t, "test_elfsym", "fake_target", &addr,
				    NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)fake_target);
	fake_free(t);
}

static void
test_resolve_shared_library(void **state)
{
	char path[PATH_MAX + 64], buf[128], want[128];
	struct inj_target *t;
	struct inj_module *mod;
	void *h, *fn, *known, *obj;
	const struct elf_sym *s;
	uint64_t addr, stat_addr;

	(void)state;
	fx_path(path, sizeof(path), "shared.so");
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	fn = dlsym(h, "lp_lib_func");
	known = dlsym(h, "lp_lib_known");
	obj = dlsym(h, "lp_lib_object");
	t = self_target();
	assert_int_equal(inj_lookup(t, "shared.so", "lp_lib_func", &addr,
				    NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)fn);
	assert_int_equal(inj_lookup(t, "shared", "lp_lib_known", &addr, NULL),
			 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)known);
	assert_int_equal(inj_lookup(t, NULL, "lp_lib_object", &addr, NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)obj);
	mod = module_named(t, "shared.so");
	assert_int_equal(mod->bias + KNOWN_ADDR, (uint64_t)(uintptr_t)known);
	/* the module filter is a basename prefix */
	assert_int_equal(inj_lookup(t, "libc.so", "lp_lib_func", &addr, NULL),
			 -LP_ENOSYM);

	/* a static function, through .symtab */
	assert_int_equal(inj_lookup(t, "shared.so", "lp_lib_static",
				    &stat_addr, NULL), 0);
	assert_int_equal(elf__lookup(mod->elf, "lp_lib_static", &s), 0);
	assert_int_equal(stat_addr, mod->bias + s->value);
	inj_symbolize(t, stat_addr + 2, buf, sizeof(buf));
	assert_string_equal(buf, "lp_lib_static+0x2 (shared.so)");
	/* inside the known function, then in the gap after its st_size */
	inj_symbolize(t, (uint64_t)(uintptr_t)known + 5, buf, sizeof(buf));
	assert_string_equal(buf, "lp_lib_known+0x5 (shared.so)");
	inj_symbolize(t, (uint64_t)(uintptr_t)known + KNOWN_SIZE, buf,
		      sizeof(buf));
	snprintf(want, sizeof(want), "shared.so+0x%" PRIx64,
		 KNOWN_ADDR + KNOWN_SIZE);
	assert_string_equal(buf, want);
	/* an object */
	inj_symbolize(t, (uint64_t)(uintptr_t)obj + 31, buf, sizeof(buf));
	assert_string_equal(buf, "lp_lib_object+0x1f (shared.so)");
	fake_free(t);
	dlclose(h);
}

/*
 * Resolve the names a fixture child printed, through its /proc.  path is
 * the program to run (NULL: the fixture of that name); has_symtab says
 * whether .symtab, or a debug file, is there to find lp_static_func.
 */
static void
check_child_path(const char *path, const char *fixture, bool exec,
		 bool has_symtab)
{
	struct lp_err err = { 0 };
	static const char *const names[] = {
		"lp_outer", "lp_middle", "lp_inner", "lp_known_func",
		"lp_object", "main",
	};
	char buf[160], want[160];
	struct inj_target *t;
	struct inj_module *mod;
	struct child c;
	uint64_t addr, known, stat;

	if (path)
		child_start_path(&c, path);
	else
		child_start(&c, fixture);
	t = fake_target(c.pid);
	assert_int_equal(inj_refresh_maps(t, &err), 0);
	known = child_sym(&c, "lp_known_func");
	mod = inj__module_at(t, known);
	assert_non_null(mod);
	assert_string_equal(mod->base, fixture);
	assert_true(mod->main_exe);
	assert_non_null(mod->elf);
	assert_int_equal(mod->bias, exec ? 0 : known - KNOWN_ADDR);

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (!has_symtab && !strcmp(names[i], "main"))
			continue;	/* not exported */
		lp_err_clear(&err);
		if (inj_lookup(t, fixture, names[i], &addr, &err) < 0)
			fail_msg("%s: %s", fixture, err.msg);
		assert_int_equal(addr, child_sym(&c, names[i]));
	}
	stat = child_sym(&c, "lp_static_func");
	if (has_symtab) {
		assert_int_equal(inj_lookup(t, NULL, "lp_static_func", &addr,
					    NULL), 0);
		assert_int_equal(addr, stat);
		inj_symbolize(t, stat + 1, buf, sizeof(buf));
		snprintf(want, sizeof(want), "lp_static_func+0x1 (%s)",
			 fixture);
		assert_string_equal(buf, want);
	} else {
		lp_err_clear(&err);
		assert_int_equal(inj_lookup(t, NULL, "lp_static_func", &addr,
					    &err), -LP_ENOSYM);
		assert_int_equal(err.code, LP_ENOSYM);
		assert_non_null(strstr(err.msg, "'lp_static_func'"));
		/* never the nearest exported name */
		inj_symbolize(t, stat + 1, buf, sizeof(buf));
		snprintf(want, sizeof(want), "%s+0x%" PRIx64, fixture,
			 stat + 1 - mod->bias);
		assert_string_equal(buf, want);
	}
	inj_symbolize(t, known + 3, buf, sizeof(buf));
	snprintf(want, sizeof(want), "lp_known_func+0x3 (%s)", fixture);
	assert_string_equal(buf, want);
	inj_symbolize(t, known + KNOWN_SIZE + 1, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s+0x%" PRIx64, fixture,
		 KNOWN_ADDR + KNOWN_SIZE + 1);
	assert_string_equal(buf, want);
	fake_free(t);
	child_stop(&c);
}

static void
check_child(const char *fixture, bool exec, bool has_symtab)
{
	check_child_path(NULL, fixture, exec, has_symtab);
}

static void
test_resolve_child_pie(void **state)
{
	(void)state;
	check_child("pie", false, true);
}

static void
test_resolve_child_nopie(void **state)
{
	(void)state;
	check_child("nopie", true, true);
}

static void
test_resolve_child_static(void **state)
{
	(void)state;
	check_child("static", true, true);
	check_child("static-pie", false, true);
}

static void
test_resolve_child_stripped(void **state)
{
	char dir[] = "/tmp/lp-stripped-XXXXXX";
	char src[PATH_MAX], dst[PATH_MAX];

	(void)state;
	/* beside its stripped.debug: the .gnu_debuglink finds it */
	check_child("stripped", false, true);
	/* alone: .dynsym only */
	assert_non_null(mkdtemp(dir));
	snprintf(dst, sizeof(dst), "%s/stripped", dir);
	fx_path(src, sizeof(src), "stripped");
	copy_file(src, dst);
	assert_int_equal(chmod(dst, 0755), 0);
	check_child_path(dst, "stripped", false, false);
	rm_rf(dir);
}

static void
test_resolve_deleted_file(void **state)
{
	char src[PATH_MAX + 64], copy[] = "/tmp/lp-deleted-XXXXXX";
	char buf[160];
	struct inj_target *t;
	struct inj_module *mod;
	struct child c;
	uint64_t addr;
	int fd;

	(void)state;
	/* the kernel opens /proc/PID/map_files/ only with CAP_SYS_ADMIN */
	if (geteuid() != 0) {
		fprintf(stderr, "test_resolve_deleted_file: skipped: "
			"/proc/PID/map_files needs root\n");
		skip();
	}
	/* run a copy of the fixture, then delete the file */
	fx_path(src, sizeof(src), "pie");
	fd = mkstemp(copy);
	assert_true(fd >= 0);
	close(fd);
	copy_file(src, copy);
	assert_int_equal(chmod(copy, 0755), 0);
	child_start_path(&c, copy);
	assert_int_equal(unlink(copy), 0);
	t = fake_target(c.pid);
	assert_int_equal(inj_refresh_maps(t, NULL), 0);
	mod = inj__module_at(t, child_sym(&c, "lp_outer"));
	assert_non_null(mod);
	assert_true(mod->deleted);
	assert_non_null(strstr(mod->path, " (deleted)"));
	/* loaded through /proc/PID/map_files */
	assert_non_null(mod->elf);
	assert_non_null(strstr(mod->elf->path, "/map_files/"));
	assert_int_equal(inj_lookup(t, NULL, "lp_static_func", &addr, NULL),
			 0);
	assert_int_equal(addr, child_sym(&c, "lp_static_func"));
	inj_symbolize(t, addr, buf, sizeof(buf));
	assert_non_null(strstr(buf, "lp_static_func+0x0 ("));
	fake_free(t);
	child_stop(&c);
}

static void
test_refresh_keeps_loaded_files(void **state)
{
	char path[PATH_MAX + 64];
	struct inj_target *t = self_target();
	struct elf_file *libc_elf;
	size_t nmods;
	uint64_t addr;
	void *h;

	(void)state;
	libc_elf = module_named(t, "libc.so.6")->elf;
	assert_non_null(libc_elf);
	nmods = t->nmods;
	assert_int_equal(inj_lookup(t, NULL, "lp_lib_func", &addr, NULL),
			 -LP_ENOSYM);
	assert_true(libc_elf->loaded & ELF_L_TAB);
	fx_path(path, sizeof(path), "shared.so");
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	assert_int_equal(inj_refresh_maps(t, NULL), 0);
	/* the same libc index with what it loaded, one new module that
	 * loaded nothing yet */
	assert_ptr_equal(module_named(t, "libc.so.6")->elf, libc_elf);
	assert_true(libc_elf->loaded & ELF_L_TAB);
	assert_int_equal(module_named(t, "shared.so")->elf->loaded, 0);
	assert_int_equal(t->nmods, nmods + 1);
	assert_int_equal(inj_lookup(t, NULL, "lp_lib_func", &addr, NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)dlsym(h, "lp_lib_func"));
	dlclose(h);
	assert_int_equal(inj_refresh_maps(t, NULL), 0);
	assert_int_equal(t->nmods, nmods);
	assert_ptr_equal(module_named(t, "libc.so.6")->elf, libc_elf);
	fake_free(t);
}

static void
test_refresh_gone_process(void **state)
{
	struct lp_err err = { 0 };
	struct inj_target *t;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	t = fake_target(pid);
	assert_int_equal(inj_refresh_maps(t, &err), -LP_ENOPROC);
	assert_int_equal(err.code, LP_ENOPROC);
	assert_int_equal(t->nmods, 0);
	fake_free(t);
}

static void
test_index_groups_synthetic_maps(void **state)
{
	/*
	 * The pie fixture's maps as the loader makes them: the R segment
	 * and the RELRO part of the RW segment both come from offset
	 * 0x2000.  One module; its bias from the offset-0 mapping.
	 */
	struct inj_target *t = fake_target(getpid());
	char path[PATH_MAX + 64], text[4096], buf[128];
	const uint64_t b = 0x558fc9228000;
	struct inj_map *maps;
	struct stat st;
	size_t n;

	(void)state;
	fx_path(path, sizeof(path), "pie");
	assert_non_null(realpath(path, buf));
	assert_int_equal(stat(buf, &st), 0);
	snprintf(text, sizeof(text),
		 "%" PRIx64 "-%" PRIx64 " r--p 00000000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " r-xp 00001000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " r--p 00002000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " r--p 00002000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " rw-p 00003000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " r-xp 00004000 fe:00 %lu %s\n"
		 "%" PRIx64 "-%" PRIx64 " rw-p 00000000 00:00 0 [heap]\n"
		 "7f0000000000-7f0000001000 r--p 00000000 fe:00 %lu %s\n"
		 "7f0000001000-7f0000002000 r-xp 00001000 fe:00 %lu %s\n",
		 b, b + 0x1000, (unsigned long)st.st_ino, buf,
		 b + 0x1000, b + 0x2000, (unsigned long)st.st_ino, buf,
		 b + 0x2000, b + 0x3000, (unsigned long)st.st_ino, buf,
		 b + 0x3000, b + 0x4000, (unsigned long)st.st_ino, buf,
		 b + 0x4000, b + 0x5000, (unsigned long)st.st_ino, buf,
		 b + KNOWN_ADDR, b + KNOWN_ADDR + 0x1000,
		 (unsigned long)st.st_ino, buf,
		 b + 0x10000000, b + 0x10021000,
		 (unsigned long)st.st_ino, buf,
		 (unsigned long)st.st_ino, buf);
	assert_int_equal(inj__parse_maps(text, &maps, &n, NULL), 0);
	assert_int_equal(n, 9);
	inj__index_maps(t, maps, n);
	/* a second load of the same file is a second module */
	assert_int_equal(t->nmods, 2);
	assert_int_equal(t->mods[0].lo, b);
	assert_int_equal(t->mods[0].hi, b + KNOWN_ADDR + 0x1000);
	assert_int_equal(t->mods[0].bias, b);
	assert_non_null(t->mods[0].elf);
	assert_int_equal(t->mods[1].bias, 0x7f0000000000);
	assert_ptr_equal(inj__module_at(t, b + 0x3800), &t->mods[0]);
	assert_null(inj__module_at(t, b + 0x10000000));	/* [heap] */
	assert_null(inj__module_at(t, b - 1));
	assert_ptr_equal(inj__module_at(t, 0x7f0000001fff), &t->mods[1]);
	assert_null(inj__module_at(t, 0x7f0000002000));
	inj_symbolize(t, b + KNOWN_ADDR + 2, buf, sizeof(buf));
	assert_string_equal(buf, "lp_known_func+0x2 (pie)");
	inj_symbolize(t, b + 0x10000010, buf, sizeof(buf));
	assert_string_equal(buf, "0x558fd9228010");
	fake_free(t);
}

static void
test_lookup_errors(void **state)
{
	struct inj_target *t = self_target();
	struct lp_err err = { 0 };
	const struct elf_sym *s;
	struct inj_module *libc;
	uint64_t addr = 0;
	bool hidden_seen = false;

	(void)state;
	assert_int_equal(inj_lookup(t, NULL, "lp_no_such_symbol", &addr,
				    &err), -LP_ENOSYM);
	assert_int_equal(err.code, LP_ENOSYM);
	assert_non_null(strstr(err.msg, "'lp_no_such_symbol'"));
	assert_false(inj_has_symbol(t, "lp_no_such_symbol"));
	assert_null(inj_symbol_module(t, "lp_no_such_symbol"));

	/* IFUNC resolvers exist but are refused as call targets */
	lp_err_clear(&err);
	assert_true(inj_has_symbol(t, "strlen"));
	assert_int_equal(inj_lookup(t, "libc.so", "strlen", &addr, &err),
			 -LP_ENOSYM);
	assert_non_null(strstr(err.msg, "IFUNC"));

	/* memcpy@@GLIBC_2.14 (default, IFUNC) over memcpy@GLIBC_2.2.5 */
	libc = module_named(t, "libc.so.6");
	assert_int_equal(elf__lookup(libc->elf, "memcpy", &s), 0);
	assert_false(s->hidden);
	for (size_t i = 0; i < libc->elf->ndyn; i++)
		if (!strcmp(elf__sym_name(libc->elf, &libc->elf->dyn[i]),
			    "memcpy") && libc->elf->dyn[i].hidden)
			hidden_seen = true;
	assert_true(hidden_seen);

	/* first error wins */
	assert_int_equal(inj_lookup(t, NULL, "lp_other_missing", &addr,
				    &err), -LP_ENOSYM);
	assert_non_null(strstr(err.msg, "strlen"));
	fake_free(t);
}

static void
test_symbolize_edges(void **state)
{
	struct inj_target *t = self_target();
	char buf[64];

	(void)state;
	inj_symbolize(t, 0x10, buf, sizeof(buf));
	assert_string_equal(buf, "0x10");
	assert_null(inj_addr_module(t, 0x10));
	assert_false(inj_addr_in_symbol(t, 0x10, "malloc"));
	/* truncation keeps a terminated string */
	inj_symbolize(t, (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "getpid"),
		      buf, 4);
	assert_int_equal(strlen(buf), 3);
	inj_symbolize(t, 0x10, NULL, 0);
	fake_free(t);
}

/* ---- lazy loading ------------------------------------------------------ */

static struct inj_module *
module_prefixed(struct inj_target *t, const char *prefix)
{
	for (size_t i = 0; i < t->nmods; i++)
		if (!strncmp(t->mods[i].base, prefix, strlen(prefix)))
			return &t->mods[i];
	fail_msg("no module %s*", prefix);
	return NULL;
}

/* No module has any of the parts in `parts` loaded, but `except`. */
static void
assert_none_loaded(struct inj_target *t, unsigned parts,
		   const struct inj_module *except)
{
	for (size_t i = 0; i < t->nmods; i++) {
		const struct inj_module *mod = &t->mods[i];

		if (!mod->elf || mod == except)
			continue;
		if (mod->elf->loaded & parts)
			fail_msg("%s: parts 0x%x loaded", mod->base,
				 mod->elf->loaded & parts);
	}
}

/* A module whose .dynsym was loaded for names[] let them through its
 * bloom filter: nothing else loads a .dynsym. */
static void
assert_dyn_only_if_maybe(struct inj_target *t, const char *const *names,
			 size_t n, const struct inj_module *except)
{
	for (size_t i = 0; i < t->nmods; i++) {
		struct inj_module *mod = &t->mods[i];
		bool maybe = false;

		if (!mod->elf || mod == except ||
		    !(mod->elf->loaded & ELF_L_DYN))
			continue;
		for (size_t k = 0; k < n; k++)
			maybe |= elf__may_define(mod->elf, names[k]);
		if (!maybe)
			fail_msg("%s: .dynsym loaded though its bloom filter "
				 "rejects every name asked", mod->base);
	}
}

static void
test_lazy_open_child(void **state)
{
	static const char *const asked[] = { "lp_outer", "getpid" };
	struct lp_err err = { 0 };
	struct inj_module *exe, *libc;
	struct inj_target *t;
	struct child c;
	uint64_t addr, getpid_addr;
	char buf[160];

	(void)state;
	child_start(&c, "pie");
	t = inj_open(c.pid, &err);
	if (!t)
		fail_msg("inj_open: %s", err.msg);
	exe = module_prefixed(t, "pie");
	libc = module_prefixed(t, "libc.so");
	/* opening read program headers only: no table, no debug file */
	for (size_t i = 0; i < t->nmods; i++) {
		const struct elf_file *f = t->mods[i].elf;

		if (!f)
			continue;
		assert_int_equal(f->loaded, 0);
		assert_true(f->nsegs > 0);
		assert_int_equal(f->ndyn + f->ntab + f->nby_addr, 0);
		assert_false(f->has_debug);
	}
	/* the unwinder's table is there already */
	assert_true(libc->elf->eh_fde_count > 0);
	assert_int_equal(exe->bias, child_sym(&c, "lp_known_func") -
			 KNOWN_ADDR);

	/* the executable comes first in search order: nothing else is
	 * opened, and its .symtab is not needed */
	assert_int_equal(inj_lookup(t, NULL, "lp_outer", &addr, &err), 0);
	assert_int_equal(addr, child_sym(&c, "lp_outer"));
	assert_true(exe->elf->loaded & ELF_L_DYN);
	assert_false(exe->elf->loaded & ELF_L_TAB);
	assert_none_loaded(t, ~0u, exe);

	/* libc's .dynsym, and only the bloom filter of the others */
	assert_int_equal(inj_lookup(t, NULL, "getpid", &getpid_addr, &err),
			 0);
	assert_true(libc->elf->loaded & ELF_L_DYN);
	assert_true(libc->elf->bloom_words > 0);
	assert_none_loaded(t, ELF_L_TAB | ELF_L_ADDR, NULL);
	assert_dyn_only_if_maybe(t, asked, 2, exe);
	assert_true(inj_addr_in_symbol(t, getpid_addr + 1, "getpid"));
	assert_true(inj_addr_in_symbol(t, addr, "lp_outer"));
	assert_none_loaded(t, ELF_L_TAB | ELF_L_ADDR, NULL);

	/* by address: that module's .symtab (or debug file) and index */
	inj_symbolize(t, getpid_addr + 1, buf, sizeof(buf));
	assert_string_equal(buf, "getpid+0x1 (libc.so.6)");
	assert_true(libc->elf->loaded & ELF_L_ADDR);
	assert_true(libc->elf->loaded & ELF_L_TAB);
	assert_none_loaded(t, ELF_L_TAB | ELF_L_ADDR, libc);

	/* a name in no .dynsym: .symtabs in search order, the
	 * executable's first */
	assert_int_equal(inj_lookup(t, NULL, "lp_static_func", &addr, &err),
			 0);
	assert_int_equal(addr, child_sym(&c, "lp_static_func"));
	assert_true(exe->elf->loaded & ELF_L_TAB);
	for (size_t i = 0; i < t->nmods; i++) {
		const struct inj_module *mod = &t->mods[i];

		if (mod->elf && mod != exe && mod != libc)
			assert_false(mod->elf->loaded & ELF_L_TAB);
	}
	/* a name defined nowhere: every .symtab was searched */
	assert_int_equal(inj_lookup(t, NULL, "lp_absent", &addr, &err),
			 -LP_ENOSYM);
	for (size_t i = 0; i < t->nmods; i++)
		if (t->mods[i].elf)
			assert_true(t->mods[i].elf->loaded & ELF_L_TAB);
	assert_false(exe->elf->loaded & ELF_L_ADDR);
	inj_close(t);
	child_stop(&c);
}

/* Every defined .dynsym name passes the file's bloom filter. */
static void
check_bloom_complete(struct elf_file *f)
{
	assert_int_equal(elf__load(f, ELF_L_DYN, NULL), 0);
	for (size_t i = 0; i < f->ndyn; i++) {
		const char *name = elf__sym_name(f, &f->dyn[i]);

		if (!elf__may_define(f, name))
			fail_msg("%s: bloom filter rejects '%s'", f->path,
				 name);
	}
}

static void
test_bloom_filter(void **state)
{
	struct fixtures *fx = *state;
	struct inj_target *t = self_target();
	struct inj_module *libc = module_named(t, "libc.so.6");
	const struct elf_sym *s;
	int with_bloom = 0, rejected = 0;
	char name[64];

	check_bloom_complete(fx->pie);
	check_bloom_complete(fx->shared);
	check_bloom_complete(fx->stripped);
	for (size_t i = 0; i < t->nmods; i++) {
		if (!t->mods[i].elf)
			continue;
		check_bloom_complete(t->mods[i].elf);
		with_bloom += t->mods[i].elf->bloom_words > 0;
	}
	assert_true(with_bloom >= 2);	/* libc and ld.so at least */
	assert_true(libc->elf->bloom_words > 0);
	/* it rejects most absent names (libc's filter lets ~10% through;
	 * a broken one would let them all) */
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "lp_absent_%d", i);
		rejected += !elf__may_define(libc->elf, name);
		assert_int_equal(elf__lookup_table(libc->elf, name, false,
						   &s), -LP_ENOSYM);
	}
	assert_true(rejected >= 150);
	/* a static executable has no DT_GNU_HASH: nothing is rejected */
	assert_true(elf__may_define(fx->stat, "lp_absent"));
	assert_int_equal(fx->stat->bloom_words, 0);
	fake_free(t);
}

/* A copy of fixture `name` in a new temporary file. */
static void
fx_copy(const char *name, char *tmp)
{
	char src[PATH_MAX + 64];
	int fd;

	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	close(fd);
	fx_path(src, sizeof(src), name);
	copy_file(src, tmp);
}

static void
patch_file(const char *path, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* File offset of the first section of type `type`, by libelf. */
static uint64_t
section_offset(const char *path, uint32_t type)
{
	Elf_Scn *scn = NULL;
	uint64_t off = 0;
	Elf *e;
	int fd;

	assert_true(elf_version(EV_CURRENT) != EV_NONE);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == type) {
			off = sh.sh_offset;
			break;
		}
	}
	elf_end(e);
	close(fd);
	assert_true(off > 0);
	return off;
}

static void
test_bloom_hostile_header(void **state)
{
	char tmp[] = "/tmp/lp-bloom-XXXXXX";
	const struct elf_sym *s;
	struct elf_file *f;
	uint32_t v;
	uint64_t off;

	(void)state;
	/* bloom_size not a power of two: the filter is not used, and
	 * lookups still work */
	fx_copy("shared.so", tmp);
	off = section_offset(tmp, SHT_GNU_HASH);
	v = 3;
	patch_file(tmp, off + 8, &v, sizeof(v));
	f = elf__open_lazy(tmp, 0, NULL, NULL);
	assert_non_null(f);
	assert_true(elf__may_define(f, "lp_absent"));
	assert_int_equal(f->bloom_words, 0);
	assert_int_equal(elf__lookup(f, "lp_lib_func", &s), 0);
	elf__free(f);
	/* a huge bloom_size (past the end of the file) */
	v = 1u << 30;
	patch_file(tmp, off + 8, &v, sizeof(v));
	f = elf__open_lazy(tmp, 0, NULL, NULL);
	assert_non_null(f);
	assert_true(elf__may_define(f, "lp_absent"));
	assert_int_equal(elf__lookup(f, "lp_lib_func", &s), 0);
	elf__free(f);
	/* a shift out of range */
	v = 1;
	patch_file(tmp, off + 8, &v, sizeof(v));
	v = 200;
	patch_file(tmp, off + 12, &v, sizeof(v));
	f = elf__open_lazy(tmp, 0, NULL, NULL);
	assert_non_null(f);
	assert_true(elf__may_define(f, "lp_absent"));
	elf__free(f);
	/* ... or past the 32-bit hash (found by tests/fuzz/fuzz_elf.c, its
	 * input kept in the corpus as bloom-shift-61): no filter, and no
	 * shift of a uint32_t by 32 or more */
	for (v = 32; v < 64; v += 29) {
		patch_file(tmp, off + 12, &v, sizeof(v));
		f = elf__open_lazy(tmp, 0, NULL, NULL);
		assert_non_null(f);
		assert_true(elf__may_define(f, "lp_absent"));
		assert_int_equal(f->bloom_words, 0);
		elf__free(f);
	}
	v = 31;		/* the largest a 32-bit hash allows */
	patch_file(tmp, off + 12, &v, sizeof(v));
	f = elf__open_lazy(tmp, 0, NULL, NULL);
	assert_non_null(f);
	(void)elf__may_define(f, "lp_absent");
	assert_int_equal(f->bloom_words, 1);
	elf__free(f);
	unlink(tmp);
}

static void
check_open_refused(const char *path, const char *what)
{
	struct lp_err err = { 0 };

	assert_null(elf__open_lazy(path, 0, NULL, &err));
	assert_int_equal(err.code, LP_EPARSE);
	if (!strstr(err.msg, what))
		fail_msg("'%s' does not say '%s'", err.msg, what);
}

static void
test_open_hostile_program_headers(void **state)
{
	char tmp[] = "/tmp/lp-phdr-XXXXXX";
	struct elf_file *f, *ref;
	Elf64_Ehdr eh;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	int fd;

	(void)state;
	fx_copy("pie", tmp);
	fd = open(tmp, O_RDONLY);
	assert_int_equal(read(fd, &eh, sizeof(eh)), sizeof(eh));
	close(fd);
	ref = fx_open("pie");

	v16 = 32;	/* e_phentsize */
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phentsize), &v16, 2);
	check_open_refused(tmp, "program headers");
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phentsize), &eh.e_phentsize,
		   2);
	v64 = 1ULL << 40;	/* e_phoff past the end */
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phoff), &v64, 8);
	check_open_refused(tmp, "program headers");
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phoff), &eh.e_phoff, 8);
	v16 = 0;	/* no program header */
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phnum), &v16, 2);
	check_open_refused(tmp, "program headers");

	/* PN_XNUM: the count is in section 0's sh_info */
	v16 = PN_XNUM;
	patch_file(tmp, offsetof(Elf64_Ehdr, e_phnum), &v16, 2);
	v32 = eh.e_phnum;
	patch_file(tmp, eh.e_shoff + offsetof(Elf64_Shdr, sh_info), &v32, 4);
	f = elf__open_lazy(tmp, 0, NULL, NULL);
	assert_non_null(f);
	assert_int_equal(f->nsegs, ref->nsegs);
	assert_int_equal(f->hi_vaddr, ref->hi_vaddr);
	elf__free(f);
	v32 = 100000;	/* ... too many */
	patch_file(tmp, eh.e_shoff + offsetof(Elf64_Shdr, sh_info), &v32, 4);
	check_open_refused(tmp, "program headers");
	v64 = 1ULL << 40;	/* ... section 0 past the end */
	patch_file(tmp, offsetof(Elf64_Ehdr, e_shoff), &v64, 8);
	check_open_refused(tmp, "section header 0");
	elf__free(ref);
	unlink(tmp);
}

/* A section of a fixture copy: its header's file offset, the header. */
struct shdr_at {
	uint64_t hdr_off;
	size_t ndx;
	GElf_Shdr sh;
};

static void
find_shdr(const char *path, const char *name, struct shdr_at *out)
{
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	size_t shstrndx;
	bool found = false;
	Elf *e;
	int fd;

	assert_true(elf_version(EV_CURRENT) != EV_NONE);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	assert_non_null(gelf_getehdr(e, &eh));
	assert_int_equal(elf_getshdrstrndx(e, &shstrndx), 0);
	while (!found && (scn = elf_nextscn(e, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, &out->sh))
			continue;
		n = elf_strptr(e, shstrndx, out->sh.sh_name);
		if (n && !strcmp(n, name)) {
			out->ndx = elf_ndxscn(scn);
			out->hdr_off = eh.e_shoff + out->ndx * sizeof(Elf64_Shdr);
			found = true;
		}
	}
	elf_end(e);
	close(fd);
	if (!found)
		fail_msg("no section %s in %s", name, path);
}

/* Open and load every part, as a target's module would be. */
static struct elf_file *
open_all(const char *path)
{
	struct elf_file *f = elf__open_lazy(path, 0, "/nonexistent-lp", NULL);

	assert_non_null(f);
	elf__load(f, ELF_L_ADDR | ELF_L_BLOOM, NULL);
	return f;
}

/* Every name of a table lies in its string table, NUL-terminated. */
static void
check_names(const struct elf_file *f)
{
	for (size_t i = 0; i < f->ndyn; i++)
		assert_true(strlen(elf__sym_name(f, &f->dyn[i])) <
			    f->dynstr_len);
	for (size_t i = 0; i < f->ntab; i++)
		assert_true(strlen(elf__sym_name(f, &f->tab[i])) <
			    f->tabstr_len);
}

#define SH_FIELD(at, field) ((at).hdr_off + offsetof(Elf64_Shdr, field))

/*
 * Hostile section headers and contents (a mapped file may be anything):
 * nothing crashes, a part libelf refuses stays empty, the rest loads.
 * The inputs of the fuzz harness tests/fuzz/fuzz_elf.c cover more.
 */
static void
test_hostile_sections(void **state)
{
	char tmp[] = "/tmp/lp-hostile-XXXXXX";
	struct shdr_at dynsym, symtab, strtab, text;
	const struct elf_sym *s;
	struct elf_file *f;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	char c;

	(void)state;
	fx_copy("pie", tmp);
	find_shdr(tmp, ".dynsym", &dynsym);
	find_shdr(tmp, ".symtab", &symtab);
	find_shdr(tmp, ".strtab", &strtab);
	find_shdr(tmp, ".text", &text);

	/* .dynsym's sh_size far past the end: libelf refuses its data */
	v64 = 1ULL << 40;
	patch_file(tmp, SH_FIELD(dynsym, sh_size), &v64, 8);
	f = open_all(tmp);
	assert_int_equal(f->ndyn, 0);
	assert_true(f->ntab > 0);
	assert_int_equal(elf__lookup(f, "main", &s), 0);
	elf__free(f);
	patch_file(tmp, SH_FIELD(dynsym, sh_size), &dynsym.sh.sh_size, 8);

	/* .symtab's sh_link out of range: no string table, no .symtab */
	v32 = 0xfff0;
	patch_file(tmp, SH_FIELD(symtab, sh_link), &v32, 4);
	f = open_all(tmp);
	assert_int_equal(f->ntab, 0);
	assert_true(f->ndyn > 0);
	assert_int_equal(elf__lookup(f, "main", &s), 0);	/* -rdynamic */
	elf__free(f);

	/* ... its strings in .symtab itself (names without NUL) */
	v32 = (uint32_t)symtab.ndx;
	patch_file(tmp, SH_FIELD(symtab, sh_link), &v32, 4);
	f = open_all(tmp);
	check_names(f);
	elf__free(f);
	patch_file(tmp, SH_FIELD(symtab, sh_link), &symtab.sh.sh_link, 4);

	/* .strtab without its final NUL: the last name ends at the end */
	c = 'X';
	patch_file(tmp, strtab.sh.sh_offset + strtab.sh.sh_size - 1, &c, 1);
	f = open_all(tmp);
	assert_true(f->ntab > 0);
	check_names(f);
	assert_int_equal(elf__lookup(f, "main", &s), 0);
	elf__free(f);
	c = '\0';
	patch_file(tmp, strtab.sh.sh_offset + strtab.sh.sh_size - 1, &c, 1);

	/* .symtab overlapping .text: whatever the bytes say, no crash */
	patch_file(tmp, SH_FIELD(symtab, sh_offset), &text.sh.sh_offset, 8);
	f = open_all(tmp);
	check_names(f);
	(void)elf__find_addr(f, text.sh.sh_addr);
	elf__free(f);
	patch_file(tmp, SH_FIELD(symtab, sh_offset), &symtab.sh.sh_offset, 8);

	/* the section name table's index out of range: no names (.text,
	 * .gnu_debuglink), the tables are found by type */
	v16 = 0xfff0;
	patch_file(tmp, offsetof(Elf64_Ehdr, e_shstrndx), &v16, 2);
	f = open_all(tmp);
	assert_true(f->ntab > 0);
	assert_int_equal(f->text_size, 0);
	assert_int_equal(elf__lookup(f, "main", &s), 0);
	elf__free(f);
	unlink(tmp);
}

/* Build-id notes with sizes past the note: no build-id, no crash. */
static void
test_hostile_build_id(void **state)
{
	char tmp[] = "/tmp/lp-buildid-XXXXXX";
	struct shdr_at note;
	struct elf_file *f;
	uint32_t v32, old_name, old_desc;

	(void)state;
	fx_copy("pie", tmp);
	find_shdr(tmp, ".note.gnu.build-id", &note);
	f = open_all(tmp);
	assert_string_equal(f->build_id, PIE_BUILD_ID);
	elf__free(f);
	/* Elf64_Nhdr: n_namesz, n_descsz, n_type, then "GNU\0", desc */
	{
		int fd = open(tmp, O_RDONLY);

		assert_int_equal(pread(fd, &old_name, 4,
				       (off_t)note.sh.sh_offset), 4);
		assert_int_equal(pread(fd, &old_desc, 4,
				       (off_t)note.sh.sh_offset + 4), 4);
		close(fd);
	}
	v32 = 0xfffffff0;
	patch_file(tmp, note.sh.sh_offset + 4, &v32, 4);
	f = open_all(tmp);
	assert_string_equal(f->build_id, "");
	elf__free(f);
	v32 = 64;	/* past the section, inside the file */
	patch_file(tmp, note.sh.sh_offset + 4, &v32, 4);
	f = open_all(tmp);
	assert_true(strlen(f->build_id) <= 40);
	elf__free(f);
	patch_file(tmp, note.sh.sh_offset + 4, &old_desc, 4);
	v32 = 0xfffffff0;
	patch_file(tmp, note.sh.sh_offset, &v32, 4);
	f = open_all(tmp);
	assert_string_equal(f->build_id, "");
	elf__free(f);
	patch_file(tmp, note.sh.sh_offset, &old_name, 4);
	f = open_all(tmp);
	assert_string_equal(f->build_id, PIE_BUILD_ID);
	elf__free(f);
	unlink(tmp);
}

/* .eh_frame_hdr whose fde_count runs past the segment: not used, the
 * table is built from .eh_frame instead. */
static void
test_hostile_eh_frame_hdr(void **state)
{
	char tmp[] = "/tmp/lp-ehhdr-XXXXXX";
	struct shdr_at hdr;
	struct elf_file *f;
	uint32_t v32;

	(void)state;
	fx_copy("pie", tmp);
	find_shdr(tmp, ".eh_frame_hdr", &hdr);
	f = open_all(tmp);
	assert_true(f->eh_fde_count > 0);
	assert_int_equal(f->eh_local_n, 0);
	elf__free(f);
	/* version, 3 encodings, eh_frame_ptr (sdata4), then fde_count */
	v32 = 0x7fffffff;
	patch_file(tmp, hdr.sh.sh_offset + 8, &v32, 4);
	f = open_all(tmp);
	assert_int_equal(f->eh_fde_count, 0);
	assert_true(f->eh_local_n > 0);
	elf__free(f);
	unlink(tmp);
}

/* .gnu_debuglink without a NUL: no debuglink. */
static void
test_hostile_debuglink(void **state)
{
	char tmp[] = "/tmp/lp-debuglink-XXXXXX";
	struct shdr_at link;
	struct elf_file *f;
	char fill[256];

	(void)state;
	fx_copy("stripped", tmp);
	find_shdr(tmp, ".gnu_debuglink", &link);
	f = open_all(tmp);
	assert_non_null(f->debuglink);
	elf__free(f);
	assert_true(link.sh.sh_size <= sizeof(fill));
	memset(fill, 'A', sizeof(fill));
	patch_file(tmp, link.sh.sh_offset, fill, link.sh.sh_size);
	f = open_all(tmp);
	assert_null(f->debuglink);
	elf__free(f);
	/* a name with a '/' is no debuglink either */
	memcpy(fill, "../x\0\0\0\0", 8);
	patch_file(tmp, link.sh.sh_offset, fill, 8);
	f = open_all(tmp);
	assert_null(f->debuglink);
	elf__free(f);
	unlink(tmp);
}

static void
test_lazy_file_replaced(void **state)
{
	char tmp[] = "/tmp/lp-replaced-XXXXXX", other[PATH_MAX + 64];
	char src[PATH_MAX + 64];
	struct lp_err err = { 0 };
	const struct elf_sym *s;
	struct elf_file *f;
	struct stat st;
	uint8_t code[8];
	uint64_t bias;

	(void)state;
	fx_copy("pie", tmp);
	assert_int_equal(stat(tmp, &st), 0);
	/* the inode is checked when asked */
	assert_null(elf__open_lazy(tmp, st.st_ino + 1, NULL, &err));
	assert_int_equal(err.code, LP_EINVAL);
	f = elf__open_lazy(tmp, st.st_ino, NULL, NULL);
	assert_non_null(f);
	assert_int_equal(f->loaded, 0);
	/* an upgrade replaces the file before anything else is loaded:
	 * nothing is read from the new one */
	snprintf(other, sizeof(other), "%s.new", tmp);
	fx_path(src, sizeof(src), "nopie");
	copy_file(src, other);
	assert_int_equal(rename(other, tmp), 0);
	assert_int_equal(elf__lookup(f, "lp_outer", &s), -LP_ENOSYM);
	assert_int_equal(f->ndyn + f->ntab, 0);
	assert_null(elf__find_addr(f, KNOWN_ADDR));
	lp_err_clear(&err);
	assert_int_equal(elf__read(f, KNOWN_ADDR, code, sizeof(code), &err),
			 -LP_EIO);
	assert_non_null(strstr(err.msg, "replaced"));
	lp_err_clear(&err);
	assert_int_equal(elf__load(f, ELF_L_DYN, &err), 0);	/* tried */
	/* what was read when it was opened still holds */
	assert_int_equal(elf__bias(f, 0x7f0000000000, 0, &bias), 0);
	assert_int_equal(bias, 0x7f0000000000);
	elf__free(f);
	unlink(tmp);
}

/* The by-address index holds one entry per address of every sized
 * symbol, named from .symtab when it has one there. */
static void
test_by_addr_index_complete(void **state)
{
	struct inj_target *t = self_target();
	struct elf_file *f = module_named(t, "libc.so.6")->elf;
	struct elf_sym *tabs[2];
	size_t ns[2];

	(void)state;
	assert_false(f->loaded & ELF_L_ADDR);
	assert_null(elf__find_addr(f, 0));
	assert_true(f->loaded & ELF_L_ADDR);
	for (size_t i = 1; i < f->nby_addr; i++)
		assert_true(f->by_addr[i - 1]->value < f->by_addr[i]->value);
	tabs[0] = f->tab;
	ns[0] = f->ntab;
	tabs[1] = f->dyn;
	ns[1] = f->ndyn;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ns[k]; i++) {
			const struct elf_sym *s = &tabs[k][i], *hit;

			if (!s->size || s->type == STT_NOTYPE)
				continue;
			hit = elf__find_addr(f, s->value);
			assert_non_null(hit);
			assert_int_equal(hit->value, s->value);
			if (s->from_symtab && !hit->from_symtab)
				fail_msg("%s named by .dynsym %s",
					 elf__sym_name(f, s),
					 elf__sym_name(f, hit));
		}
	}
	fake_free(t);
}

/* ---- unwinding a stopped child ---------------------------------------- */

static void
stop_child(pid_t pid)
{
	int st;

	assert_int_equal(ptrace(PTRACE_SEIZE, pid, 0, 0), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, pid, 0, 0), 0);
	assert_int_equal(waitpid(pid, &st, __WALL), pid);
	assert_true(WIFSTOPPED(st));
}

static void
check_unwind(const char *fixture)
{
	static const char *const chain[] = {
		"lp_inner+", "lp_middle+", "lp_outer+", "main+",
	};
	struct lp_err err = { 0 };
	struct inj_target *t;
	char frames[64][160];
	uint64_t ips[64];
	struct child c;
	size_t next = 0;
	int n;

	child_start(&c, fixture);
	stop_child(c.pid);
	t = fake_target(c.pid);
	assert_int_equal(inj_refresh_maps(t, &err), 0);
	t->attached = true;	/* held by us, as inj_attach would */
	n = inj_unwind(t, ips, 64, &err);
	if (n < 0)
		fail_msg("unwind %s: %s", fixture, err.msg);
	/* unwinding needs the unwind tables only, read with the program
	 * headers: no symbol table was loaded */
	for (size_t i = 0; i < t->nmods; i++)
		if (t->mods[i].elf)
			assert_int_equal(t->mods[i].elf->loaded &
					 (ELF_L_DYN | ELF_L_TAB), 0);
	for (int i = 0; i < n; i++) {
		/* return addresses name the caller through ip - 1 */
		inj_symbolize(t, i ? ips[i] - 1 : ips[i], frames[i],
			      sizeof(frames[i]));
		if (next < 4 && !strncmp(frames[i], chain[next],
					 strlen(chain[next])))
			next++;
	}
	if (next < 4) {
		for (int i = 0; i < n; i++)
			print_message("  #%d %s\n", i, frames[i]);
		fail_msg("%s: frame %s missing", fixture, chain[next]);
	}
	/* below main: libc's start code */
	assert_true(n >= 5);
	assert_int_equal(ptrace(PTRACE_DETACH, c.pid, 0, 0), 0);
	/* the bound on frames is respected */
	t->attached = false;
	assert_int_equal(inj_unwind(t, ips, 64, &err), -LP_EINVAL);
	fake_free(t);
	child_stop(&c);
}

static void
test_unwind_child_pie(void **state)
{
	(void)state;
	check_unwind("pie");
}

static void
test_unwind_child_static(void **state)
{
	(void)state;
	check_unwind("static");
}

static void
test_unwind_max_frames(void **state)
{
	struct inj_target *t;
	struct child c;
	uint64_t ips[2];

	(void)state;
	child_start(&c, "pie");
	stop_child(c.pid);
	t = fake_target(c.pid);
	assert_int_equal(inj_refresh_maps(t, NULL), 0);
	t->attached = true;
	assert_int_equal(inj_unwind(t, ips, 2, NULL), 2);
	assert_int_equal(inj_unwind(t, ips, 0, NULL), -LP_EINVAL);
	fake_free(t);
	ptrace(PTRACE_DETACH, c.pid, 0, 0);
	child_stop(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elf_open_pie),
		cmocka_unit_test(test_elf_open_types),
		cmocka_unit_test(test_elf_open_rejects_non_elf),
		cmocka_unit_test(test_lookup_known_address_and_size),
		cmocka_unit_test(test_lookup_dynsym_then_symtab),
		cmocka_unit_test(test_lookup_stripped_has_dynsym_only),
		cmocka_unit_test(test_find_addr_within_st_size),
		cmocka_unit_test(test_find_addr_prefers_symtab_name),
		cmocka_unit_test(test_debug_by_build_id),
		cmocka_unit_test(test_debug_by_debuglink),
		cmocka_unit_test(test_bias_debian_libc_layout),
		cmocka_unit_test(test_bias_offset_differs_from_vaddr),
		cmocka_unit_test(test_bias_exec_is_zero),
		cmocka_unit_test(test_resolve_self_libc_malloc),
		cmocka_unit_test(test_debug_installed_libc),
		cmocka_unit_test(test_resolve_self_main_exe),
		cmocka_unit_test(test_resolve_shared_library),
		cmocka_unit_test(test_resolve_child_pie),
		cmocka_unit_test(test_resolve_child_nopie),
		cmocka_unit_test(test_resolve_child_static),
		cmocka_unit_test(test_resolve_child_stripped),
		cmocka_unit_test(test_resolve_deleted_file),
		cmocka_unit_test(test_refresh_keeps_loaded_files),
		cmocka_unit_test(test_refresh_gone_process),
		cmocka_unit_test(test_index_groups_synthetic_maps),
		cmocka_unit_test(test_lookup_errors),
		cmocka_unit_test(test_symbolize_edges),
		cmocka_unit_test(test_lazy_open_child),
		cmocka_unit_test(test_bloom_filter),
		cmocka_unit_test(test_bloom_hostile_header),
		cmocka_unit_test(test_open_hostile_program_headers),
		cmocka_unit_test(test_hostile_sections),
		cmocka_unit_test(test_hostile_build_id),
		cmocka_unit_test(test_hostile_eh_frame_hdr),
		cmocka_unit_test(test_hostile_debuglink),
		cmocka_unit_test(test_lazy_file_replaced),
		cmocka_unit_test(test_by_addr_index_complete),
		cmocka_unit_test(test_unwind_child_pie),
		cmocka_unit_test(test_unwind_child_static),
		cmocka_unit_test(test_unwind_max_frames),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
