/*
 * Finding a `syscall` instruction with capstone.  The bytes 0f 05 also
 * occur inside other instructions (immediates, displacements, ModRM
 * bytes); jumping there would execute garbage after the syscall, so the
 * function is decoded from its first byte and only whole instructions
 * count.
 *
 * libcapstone is loaded with dlopen() on first use, not linked: its
 * tables carry some 77,000 relocations and cost about 0.7 ms (375 page
 * faults) at every start of leakprobe, while only the commands that
 * inject need it.
 */
#include "injector/injector_int.h"

#include <capstone/capstone.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#ifndef LP_CAPSTONE_SONAME
#define LP_CAPSTONE_SONAME "libcapstone.so.4"
#endif

static struct {
	cs_err (*open)(cs_arch, cs_mode, csh *);
	cs_insn *(*malloc)(csh);
	bool (*disasm_iter)(csh, const uint8_t **, size_t *, uint64_t *,
			    cs_insn *);
	void (*free)(cs_insn *, size_t);
	cs_err (*close)(csh *);
	int state;		/* 0 not tried, 1 loaded, -1 failed */
	char why[256];
} cs;

/* Load libcapstone once; 0, or -1 with cs.why set. */
static int
cs_load(void)
{
	void *h;

	if (cs.state)
		return cs.state > 0 ? 0 : -1;
	cs.state = -1;
	h = dlopen(LP_CAPSTONE_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(cs.why, sizeof(cs.why), "%s", dlerror());
		return -1;
	}
	/* POSIX: a function pointer passes through dlsym's void * */
	*(void **)&cs.open = dlsym(h, "cs_open");
	*(void **)&cs.malloc = dlsym(h, "cs_malloc");
	*(void **)&cs.disasm_iter = dlsym(h, "cs_disasm_iter");
	*(void **)&cs.free = dlsym(h, "cs_free");
	*(void **)&cs.close = dlsym(h, "cs_close");
	if (!cs.open || !cs.malloc || !cs.disasm_iter || !cs.free ||
	    !cs.close) {
		snprintf(cs.why, sizeof(cs.why), "%s: a cs_* function is "
			 "missing", LP_CAPSTONE_SONAME);
		dlclose(h);
		return -1;
	}
	cs.state = 1;
	return 0;
}

const char *
inj__disasm_error(void)
{
	return cs.state < 0 ? cs.why : NULL;
}

/*
 * code is the bytes of a function (len bytes, runtime address addr).
 * Returns the offset of a `syscall` instruction followed by `ret` when
 * there is one, else of the first `syscall`, else -1 (also when capstone
 * cannot be opened).  Decoding stops at the first invalid instruction.
 */
long
inj__find_syscall_insn(const uint8_t *code, size_t len, uint64_t addr)
{
	long first = -1, found = -1, prev = -1;
	const uint8_t *p = code;
	uint64_t a = addr;
	size_t left = len;
	cs_insn *insn;
	csh h;

	if (!code || !len)
		return -1;
	/*
	 * glibc's bare syscall wrappers (getpid...) are exactly `mov
	 * $nr,%eax; syscall; ret`, perhaps after an endbr64: decoded from the
	 * function's first byte these bytes can be nothing else (b8 without
	 * a prefix is mov imm32 to a 32-bit register, 5 bytes), so no
	 * disassembler is needed, and none is loaded.
	 */
	{
		static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
		size_t o = len >= 4 && !memcmp(code, endbr64, 4) ? 4 : 0;

		if (len == o + 8 && code[o] == 0xb8 && code[o + 5] == 0x0f &&
		    code[o + 6] == 0x05 && code[o + 7] == 0xc3)
			return (long)o + 5;
	}
	if (cs_load() < 0 || cs.open(CS_ARCH_X86, CS_MODE_64, &h) !=
	    CS_ERR_OK)
		return -1;
	insn = cs.malloc(h);
	if (!insn) {
		cs.close(&h);
		return -1;
	}
	while (cs.disasm_iter(h, &p, &left, &a, insn)) {
		long off = (long)(insn->address - addr);

		if (prev >= 0 && insn->id == X86_INS_RET && insn->size == 1) {
			found = prev;
			break;
		}
		prev = -1;
		if (insn->id == X86_INS_SYSCALL) {
			prev = off;
			if (first < 0)
				first = off;
		}
	}
	cs.free(insn, 1);
	cs.close(&h);
	return found >= 0 ? found : first;
}

/*
 * True when code (runtime address addr) starts with the two whole
 * instructions `mov $15,%rax; syscall` (rt_sigreturn), decoded by
 * capstone.
 */
bool
inj__is_restore_rt(const uint8_t *code, size_t len, uint64_t addr)
{
	const uint8_t *p = code;
	uint64_t a = addr;
	size_t left = len < 16 ? len : 16;
	cs_insn *insn;
	bool ok = false;
	csh h;

	/* capstone is loaded on first use (cs_load); detail is off by
	 * default */
	if (!code || len < 9 || cs_load() < 0 ||
	    cs.open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return false;
	insn = cs.malloc(h);
	if (insn && cs.disasm_iter(h, &p, &left, &a, insn) &&
	    insn->id == X86_INS_MOV && insn->size == 7 &&
	    cs.disasm_iter(h, &p, &left, &a, insn) &&
	    insn->id == X86_INS_SYSCALL && insn->address == addr + 7)
		ok = true;
	if (insn)
		cs.free(insn, 1);
	cs.close(&h);
	return ok;
}
