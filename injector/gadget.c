/*
 * Finding a `syscall` instruction with capstone.  The bytes 0f 05 also
 * occur inside other instructions (immediates, displacements, ModRM
 * bytes); jumping there would execute garbage after the syscall, so the
 * function is decoded from its first byte and only whole instructions
 * count.
 */
#include "injector/injector_int.h"

#include <capstone/capstone.h>

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
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -1;
	insn = cs_malloc(h);
	if (!insn) {
		cs_close(&h);
		return -1;
	}
	while (cs_disasm_iter(h, &p, &left, &a, insn)) {
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
	cs_free(insn, 1);
	cs_close(&h);
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

	if (!code || len < 9 || cs_open(CS_ARCH_X86, CS_MODE_64, &h) !=
	    CS_ERR_OK)
		return false;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_OFF);
	insn = cs_malloc(h);
	if (insn && cs_disasm_iter(h, &p, &left, &a, insn) &&
	    insn->id == X86_INS_MOV && insn->size == 7 &&
	    cs_disasm_iter(h, &p, &left, &a, insn) &&
	    insn->id == X86_INS_SYSCALL && insn->address == addr + 7)
		ok = true;
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return ok;
}
