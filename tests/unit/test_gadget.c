/*
 * Unit tests for injector/gadget.c (the capstone search for a `syscall`
 * instruction) and inj__find_syscall() in injector/symbols.c, on
 * hand-made byte sequences, on this machine's libc, and on a statically
 * linked fixture (built by the Makefile into $(BUILD)/fixtures/elf).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "injector/injector_int.h"

#include <capstone/capstone.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BASE 0x7f0000001000ULL

static long
find(const uint8_t *code, size_t len)
{
	return inj__find_syscall_insn(code, len, BASE);
}

static void
test_gadget_syscall_ret(void **state)
{
	/* getpid in glibc: mov $0x27,%eax; syscall; ret */
	static const uint8_t code[] = { 0xb8, 0x27, 0, 0, 0, 0x0f, 0x05, 0xc3 };

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 5);
}

static void
test_gadget_syscall_ret_endbr64(void **state)
{
	/* the same wrapper built with CET: endbr64 first (no disassembler
	 * needed for either form) */
	static const uint8_t code[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0xb8, 0x27, 0,
					0, 0, 0x0f, 0x05, 0xc3 };

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 9);
}

static void
test_gadget_wider_mov_decoded(void **state)
{
	/* movabs $imm64,%rax (REX.W b8, 10 bytes): not the 8-byte wrapper
	 * shape, so the disassembler decides: syscall at 10, not at 5 */
	static const uint8_t code[] = { 0x48, 0xb8, 0x0f, 0x05, 0xc3, 0, 0, 0,
					0, 0, 0x0f, 0x05, 0xc3 };

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 10);
}

static void
test_gadget_skips_bytes_inside_immediate(void **state)
{
	/* mov $0x50f,%eax holds 0f 05 at offset 1; the real one is at 5 */
	static const uint8_t code[] = {
		0xb8, 0x0f, 0x05, 0x00, 0x00,	/* mov $0x50f,%eax */
		0x0f, 0x05,			/* syscall */
		0xc3,				/* ret */
	};

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 5);
}

static void
test_gadget_skips_bytes_inside_displacement(void **state)
{
	static const uint8_t code[] = {
		/* lea 0x50f(%rip),%rax */
		0x48, 0x8d, 0x05, 0x0f, 0x05, 0x00, 0x00,
		0x90,					/* nop */
		0x0f, 0x05,				/* syscall */
		0xc3,
	};

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 8);
}

static void
test_gadget_none_at_a_boundary(void **state)
{
	/* movabs $0x050f050f050f050f,%rax; ret: four fake pairs */
	static const uint8_t code[] = {
		0x48, 0xb8, 0x0f, 0x05, 0x0f, 0x05, 0x0f, 0x05, 0x0f, 0x05,
		0xc3,
	};

	(void)state;
	assert_int_equal(find(code, sizeof(code)), -1);
}

static void
test_gadget_prefers_syscall_then_ret(void **state)
{
	/* syscall(2)-like: the first syscall is followed by a check */
	static const uint8_t code[] = {
		0x0f, 0x05,				/* syscall */
		0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff,	/* cmp $-4095,%rax */
		0x0f, 0x05,				/* syscall */
		0xc3,					/* ret */
	};

	(void)state;
	assert_int_equal(find(code, sizeof(code)), 8);
}

static void
test_gadget_falls_back_without_ret(void **state)
{
	static const uint8_t code[] = {
		0x90, 0x0f, 0x05, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x0f,
		0x05, 0x90, 0xc3,
	};
	/* `ret $8` (c2 08 00) is not a plain ret */
	static const uint8_t code2[] = { 0x0f, 0x05, 0xc2, 0x08, 0x00 };

	(void)state;
	/* the first syscall when none is directly followed by ret */
	assert_int_equal(find(code, sizeof(code)), 1);
	assert_int_equal(find(code2, sizeof(code2)), 0);
}

static void
test_gadget_bad_input(void **state)
{
	/* push %es is invalid in 64-bit mode: decoding stops there */
	static const uint8_t invalid[] = { 0x06, 0x0f, 0x05, 0xc3 };
	/* a truncated mov swallows the pair */
	static const uint8_t truncated[] = { 0xb8, 0x0f, 0x05 };
	static const uint8_t half[] = { 0x0f };

	(void)state;
	assert_int_equal(find(NULL, 0), -1);
	assert_int_equal(find(invalid, 0), -1);
	assert_int_equal(find(invalid, sizeof(invalid)), -1);
	assert_int_equal(find(truncated, sizeof(truncated)), -1);
	assert_int_equal(find(half, sizeof(half)), -1);
}

/* ---- on real code ------------------------------------------------------ */

static struct inj_target *
fake_target(pid_t pid)
{
	struct inj_target *t = calloc(1, sizeof(*t));
	struct lp_err err = { 0 };

	assert_non_null(t);
	t->pid = pid;
	t->memfd = -1;
	snprintf(t->root, sizeof(t->root), "/proc/%d/root", (int)pid);
	if (inj_refresh_maps(t, &err) < 0)
		fail_msg("refresh %d: %s", (int)pid, err.msg);
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

/* Is off an instruction boundary of code, decoding from its start? */
static bool
at_boundary(const uint8_t *code, size_t len, uint64_t addr, uint64_t off)
{
	const uint8_t *p = code;
	uint64_t a = addr;
	bool hit = false;
	cs_insn *insn;
	csh h;

	assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_64, &h), CS_ERR_OK);
	insn = cs_malloc(h);
	while (cs_disasm_iter(h, &p, &len, &a, insn))
		if (insn->address == addr + off)
			hit = true;
	cs_free(insn, 1);
	cs_close(&h);
	return hit;
}

static void
test_gadget_libc_functions_from_file(void **state)
{
	struct inj_target *t = fake_target(getpid());
	static const char *const names[] = { "getpid", "getppid", "syscall" };
	struct inj_module *libc = NULL;

	(void)state;
	for (size_t i = 0; i < t->nmods; i++)
		if (!strncmp(t->mods[i].base, "libc.so", 7))
			libc = &t->mods[i];
	assert_non_null(libc);
	assert_non_null(libc->elf);
	for (size_t i = 0; i < 3; i++) {
		const struct elf_sym *s;
		uint8_t code[4096];
		long off;

		assert_int_equal(elf__lookup(libc->elf, names[i], &s), 0);
		assert_true(s->size > 0 && s->size <= sizeof(code));
		assert_int_equal(elf__read(libc->elf, s->value, code, s->size,
					   NULL), 0);
		/* the file's bytes are the mapped bytes */
		assert_memory_equal(code, (void *)(uintptr_t)(libc->bias +
							     s->value),
				    s->size);
		off = inj__find_syscall_insn(code, s->size,
					     libc->bias + s->value);
		assert_true(off >= 0);
		assert_int_equal(code[off], 0x0f);
		assert_int_equal(code[off + 1], 0x05);
		assert_true(at_boundary(code, s->size, libc->bias + s->value,
					(uint64_t)off));
		if (i < 2)	/* bare wrappers: syscall; ret */
			assert_int_equal(code[off + 2], 0xc3);
	}
	fake_free(t);
}

/*
 * Run `syscall; ret` at addr with rax = nr, as inj_syscall() will in the
 * target.  The call's return address must not land in our red zone.
 */
static long
call_gadget(uint64_t addr, long nr)
{
	long ret;

	__asm__ volatile("sub $256, %%rsp\n\t"
			 "call *%[g]\n\t"
			 "add $256, %%rsp"
			 : "=a"(ret)
			 : "a"(nr), [g] "r"(addr)
			 : "rcx", "r11", "memory", "cc");
	return ret;
}

static void
test_gadget_find_syscall_self(void **state)
{
	struct inj_target *t = fake_target(getpid());
	struct lp_err err = { 0 };
	const uint8_t *p;

	(void)state;
	assert_int_equal(inj__find_syscall(t, &err), 0);
	assert_true(t->syscall_insn != 0);
	p = (const uint8_t *)(uintptr_t)t->syscall_insn;
	assert_int_equal(p[0], 0x0f);
	assert_int_equal(p[1], 0x05);
	assert_int_equal(p[2], 0xc3);
	assert_string_equal(inj_addr_module(t, t->syscall_insn), "libc.so.6");
	assert_true(inj_addr_in_symbol(t, t->syscall_insn, "getpid"));
	/* it is a working syscall; ret */
	assert_int_equal(call_gadget(t->syscall_insn, SYS_getpid), getpid());
	assert_int_equal(call_gadget(t->syscall_insn, SYS_gettid),
			 syscall(SYS_gettid));
	fake_free(t);
}

static void
test_gadget_find_syscall_static_child(void **state)
{
	char path[PATH_MAX + 64], exe[PATH_MAX], line[128];
	struct inj_target *t;
	uint8_t bytes[3];
	int fds[2], memfd;
	FILE *out;
	pid_t pid;
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/../fixtures/elf/static", dirname(exe));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		execl(path, path, "pause", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	out = fdopen(fds[0], "r");
	while (fgets(line, sizeof(line), out) && strncmp(line, "ready", 5))
		;
	t = fake_target(pid);
	/* no libc.so: the executable's own copy of getpid */
	assert_int_equal(inj__find_syscall(t, NULL), 0);
	assert_string_equal(inj_addr_module(t, t->syscall_insn), "static");
	assert_true(inj_addr_in_symbol(t, t->syscall_insn, "getpid"));
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	memfd = open(path, O_RDONLY);
	assert_true(memfd >= 0);
	assert_int_equal(pread(memfd, bytes, 3, (off_t)t->syscall_insn), 3);
	close(memfd);
	assert_int_equal(bytes[0], 0x0f);
	assert_int_equal(bytes[1], 0x05);
	assert_int_equal(bytes[2], 0xc3);
	fake_free(t);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fclose(out);
}

static void
test_gadget_find_syscall_nothing_mapped(void **state)
{
	struct inj_target *t = calloc(1, sizeof(*t));
	struct lp_err err = { 0 };

	(void)state;
	t->pid = 4242;
	assert_int_equal(inj__find_syscall(t, &err), -LP_EINJECT);
	assert_int_equal(err.code, LP_EINJECT);
	assert_non_null(strstr(err.msg, "no syscall instruction"));
	assert_int_equal(t->syscall_insn, 0);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gadget_syscall_ret),
		cmocka_unit_test(test_gadget_syscall_ret_endbr64),
		cmocka_unit_test(test_gadget_wider_mov_decoded),
		cmocka_unit_test(test_gadget_skips_bytes_inside_immediate),
		cmocka_unit_test(test_gadget_skips_bytes_inside_displacement),
		cmocka_unit_test(test_gadget_none_at_a_boundary),
		cmocka_unit_test(test_gadget_prefers_syscall_then_ret),
		cmocka_unit_test(test_gadget_falls_back_without_ret),
		cmocka_unit_test(test_gadget_bad_input),
		cmocka_unit_test(test_gadget_libc_functions_from_file),
		cmocka_unit_test(test_gadget_find_syscall_self),
		cmocka_unit_test(test_gadget_find_syscall_static_child),
		cmocka_unit_test(test_gadget_find_syscall_nothing_mapped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
