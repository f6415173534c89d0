#ifndef LP_INJECTOR_INT_H
#define LP_INJECTOR_INT_H

#include "injector/injector.h"

#include <signal.h>
#include <sys/user.h>

/* ---- elfsym.c --------------------------------------------------------
 * Symbol tables of one ELF file, loaded with libelf, part by part on
 * first need (a target maps ~50 files, and most are never asked about).
 */
struct elf_sym {
	uint64_t value;		/* st_value (link-time address) */
	uint64_t size;
	uint32_t name;		/* offset into strtab */
	uint8_t type;		/* STT_FUNC, STT_OBJECT, ... */
	uint8_t from_symtab;	/* 1 from .symtab/debug file, 0 .dynsym */
	uint8_t bind;		/* STB_LOCAL, STB_GLOBAL, STB_WEAK */
	uint8_t hidden;		/* non-default symbol version (foo@VER) */
};

struct elf_load_seg {		/* one PT_LOAD */
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;		/* PF_R | PF_W | PF_X */
};

/*
 * Parts of an elf_file loaded on demand (elf__load).  The program
 * headers (PT_LOADs, span, unwind tables) are always there.
 */
enum {
	ELF_L_BLOOM = 1 << 0,	/* DT_GNU_HASH bloom filter of .dynsym */
	ELF_L_META = 1 << 1,	/* build-id, .gnu_debuglink, .text */
	ELF_L_DYN = 1 << 2,	/* .dynsym (and META) */
	ELF_L_TAB = 1 << 3,	/* .symtab, or a debug file's (and META) */
	ELF_L_ADDR = 1 << 4,	/* by_addr (and DYN, TAB) */
};

struct elf_file {
	char *path;		/* path opened (may be via /proc/PID/root) */
	uint64_t dev, ino;	/* identity of that file when first opened */
	char *debug_root;	/* where ELF_L_TAB looks for a debug file
				 * ("" our namespace), NULL: never */
	unsigned loaded;	/* ELF_L_* parts tried (loaded or failed) */
	uint16_t e_type;	/* ET_EXEC or ET_DYN */
	struct elf_load_seg *segs;
	size_t nsegs;
	uint64_t dyn_offset, dyn_filesz;	/* PT_DYNAMIC in the file */
	/* by-name lookup: .dynsym entries first, then .symtab */
	struct elf_sym *dyn, *tab;
	size_t ndyn, ntab;
	char *dynstr, *tabstr;	/* owned copies of the string tables */
	size_t dynstr_len, tabstr_len;
	/* DT_GNU_HASH bloom filter (ELF_L_BLOOM): a name it rejects is
	 * not defined in .dynsym; bloom_words 0 when absent */
	uint64_t *bloom;
	uint32_t bloom_words, bloom_shift;
	/* by-address: both tables merged, sorted by value (functions and
	 * objects with size > 0) */
	struct elf_sym **by_addr;
	size_t nby_addr;
	char build_id[41];	/* hex, "" when none */
	uint64_t text_vaddr, text_size, text_offset;	/* .text */
	uint64_t lo_vaddr, hi_vaddr;	/* span of the PT_LOADs */
	/* .eh_frame_hdr binary search table (PT_GNU_EH_FRAME), for the
	 * unwinder; eh_fde_count is 0 when absent or not understood */
	uint64_t eh_hdr_vaddr, eh_table_vaddr, eh_fde_count;
	/* without .eh_frame_hdr (static non-PIE executables): the same
	 * table built from .eh_frame, pairs of int32 (initial location, FDE)
	 * relative to eh_frame_vaddr, sorted; eh_local_n entries */
	int32_t *eh_local;
	size_t eh_local_n;
	uint64_t eh_frame_vaddr;
	char *debuglink;	/* .gnu_debuglink file name, or NULL */
	uint32_t debuglink_crc;
	bool has_debug;		/* a separate debug file was merged */
};

/*
 * Open an ELF file and read its program headers only (segments, span,
 * unwind tables); the rest loads on first use.  ino, when non-zero, is
 * the inode the file must have (else -LP_EINVAL).  debug_root is where
 * a debug file is looked for when .symtab is needed (NULL: never).
 * NULL with err filled when it is not a usable ELF.
 */
struct elf_file *elf__open_lazy(const char *path, uint64_t ino,
				const char *debug_root, struct lp_err *err);
/* elf__open_lazy() and load everything but a debug file at once. */
struct elf_file *elf__open(const char *path, struct lp_err *err);
void elf__free(struct elf_file *f);
/* Load the ELF_L_* parts in `what` not tried yet.  A part that fails
 * stays empty and is not tried again.  0 or the first error. */
int elf__load(struct elf_file *f, unsigned what, struct lp_err *err);
/* False when the DT_GNU_HASH bloom filter proves name is not defined in
 * .dynsym (loads only the filter); true when it may be, or no filter. */
bool elf__may_define(struct elf_file *f, const char *name);
/* Look up by name: .dynsym then .symtab.  0 or -LP_ENOSYM. */
int elf__lookup(struct elf_file *f, const char *name,
		const struct elf_sym **out);
/* Symbol whose [value, value+size) holds vaddr, or NULL. */
const struct elf_sym *elf__find_addr(struct elf_file *f, uint64_t vaddr);
const char *elf__sym_name(const struct elf_file *f, const struct elf_sym *s);
/*
 * Load bias of a mapping of this file: the PT_LOAD holding file offset
 * `map_off` gives bias = map_start - (seg.vaddr + (map_off - seg.offset)).
 * Returns 0 or -LP_EINVAL when no PT_LOAD holds the offset.
 */
int elf__bias(const struct elf_file *f, uint64_t map_start, uint64_t map_off,
	      uint64_t *bias);
/* Attach debug symbols from /usr/lib/debug/.build-id or .gnu_debuglink
 * when installed (merged into .symtab); quietly does nothing otherwise. */
void elf__load_debug(struct elf_file *f, const char *root);
/* Look up by name in one table only (.symtab when symtab, else .dynsym);
 * prefers the default version of a versioned name.  0 or -LP_ENOSYM. */
int elf__lookup_table(struct elf_file *f, const char *name, bool symtab,
		      const struct elf_sym **out);
/* Read len bytes at link-time address vaddr from the file (through its
 * PT_LOAD), e.g. code to disassemble.  0 or -LP_EFAULT/-LP_EIO. */
int elf__read(const struct elf_file *f, uint64_t vaddr, void *buf,
	      size_t len, struct lp_err *err);
/* Same as elf__bias, using the segment table only (unit tests). */
int elf__bias_segs(const struct elf_load_seg *segs, size_t nsegs,
		   uint64_t map_start, uint64_t map_off, uint64_t *bias);

/* ---- symbols.c -------------------------------------------------------
 * /proc/PID/maps and the modules (mapped ELF files) of a target.
 */
struct inj_map {
	uint64_t start, end, offset, inode;
	uint64_t dev;		/* makedev(major, minor) */
	char perms[5];
	char *path;		/* NULL for anonymous */
};

struct inj_module {
	char *path;		/* as shown in maps */
	const char *base;	/* basename of path */
	uint64_t lo, hi;	/* lowest/highest address of its mappings */
	uint64_t bias;		/* load bias */
	uint64_t dev, inode;
	struct elf_file *elf;	/* NULL when it could not be loaded */
	bool main_exe;		/* the file of /proc/PID/exe */
	bool deleted;		/* path ends in " (deleted)" */
};

int inj__parse_maps(const char *text, struct inj_map **out, size_t *n,
		    struct lp_err *err);
void inj__free_maps(struct inj_map *m, size_t n);
/* Replace t->maps by maps (ownership taken) and rebuild t->mods, keeping
 * the ELF files already loaded (inj_refresh_maps without the read). */
int inj__read_maps(struct inj_target *t, struct lp_err *err);
void inj__index_maps(struct inj_target *t, struct inj_map *maps,
		     size_t nmaps);
/*
 * Is the mapping at `at` the one our shared anonymous mmap made: starting
 * exactly at `at`, `len` bytes, permissions exactly `prot` shared,
 * "/dev/zero (deleted)", an inode none of the `nbefore` inodes seen just
 * before the mmap?  1 (its inode in *inode) or 0: a mapping of the
 * target's, never ours to touch.
 */
int inj__own_map(const struct inj_map *maps, size_t n, uint64_t at,
		 uint64_t len, int prot, const uint64_t *before,
		 size_t nbefore, uint64_t *inode);
/* "rwxs" and the like: the maps' permissions of a shared mapping. */
void inj__prot_perms(int prot, char perms[5]);

/* ---- target.c --------------------------------------------------------
 * The text of /proc/PID/status (NUL-terminated, modified in place) into
 * out (zeroed by the caller): 0, or -LP_EINVAL for a thread of another
 * process.  The start time (field 22) from the text of /proc/PID/stat, 0
 * when it cannot be read.
 */
int inj__parse_status(char *buf, pid_t pid, struct inj_procinfo *out,
		      struct lp_err *err);
uint64_t inj__parse_stat_start(const char *buf);

/* ---- gadget.c --------------------------------------------------------
 * Find a `syscall` instruction at a real instruction boundary with
 * capstone, walking the instructions of a known function.
 */
/*
 * code is the bytes of a function (len bytes, runtime address addr).
 * Returns the offset of a `syscall` instruction (preferably followed by
 * `ret`), or -1.
 */
long inj__find_syscall_insn(const uint8_t *code, size_t len, uint64_t addr);
/* Why the disassembler (libcapstone, loaded on first use) could not be
 * loaded, or NULL when it was loaded or not yet tried. */
const char *inj__disasm_error(void);
/* True when code starts with the whole instructions `mov $15,%rax;
 * syscall` (libc's __restore_rt). */
bool inj__is_restore_rt(const uint8_t *code, size_t len, uint64_t addr);

/* ---- ptrace.c -------------------------------------------------------- */
/* A step let run detached: through libc's `syscall; ret` (GADGET), the
 * code page's syscall (PAGE), or a call through its trampoline (CALL). */
enum step_kind { STEP_NONE, STEP_GADGET, STEP_PAGE, STEP_CALL };

struct inj_target {
	pid_t pid;
	struct inj_procinfo info;
	struct inj_map *maps;
	size_t nmaps;
	struct inj_module *mods;
	size_t nmods;
	char root[64];		/* "/proc/PID/root" */
	int memfd;		/* /proc/PID/mem, -1 until needed */
	bool attached;		/* seized */
	bool maps_snap;		/* maps read just before this stop */
	bool regs_saved;
	bool regs_dirty;	/* registers differ from the saved ones */
	struct user_regs_struct saved;
	struct user_fpregs_struct saved_fp;
	uint64_t syscall_insn;	/* address of a `syscall` in libc */
	uint64_t restore_rt;	/* libc's __restore_rt (rt_sigreturn) */
	/* The restore frame (see ptrace.c): an rt_sigframe below the red
	 * zone of the stopped thread, built at its first injected step */
	uint64_t frame;		/* address of its pretcode slot, 0: none */
	bool frame_ok;		/* written and current */
	bool pretcode_ok;	/* pretcode slot holds restore_rt */
	uint64_t sigmask;	/* the thread's blocked mask at the stop */
	uint8_t *xstate;	/* NT_X86_XSTATE as read, xstate_len bytes */
	size_t xstate_len;	/* 0: no xsave, the FXSAVE form is used */
	uint64_t code_page;	/* executable page for call trampolines */
	uint32_t tramp_off;	/* trampoline offset in it */
	bool tramp_ok;		/* trampoline written */
	uint64_t mmap_inode;	/* inode of the last mapping inj_mmap made */
	uint64_t pinned_page;	/* a call may still return into it: never
				 * unmapped (inj_page_pinned) */
	long stop_nr;		/* syscall the thread was in, or -1 */
	bool result_set;	/* inj_set_syscall_result() was called */
	bool let_finish;	/* a step timed out: let it end by itself */
	/* the last step let run (until a stop or /proc sees it over) */
	enum step_kind step;
	uint64_t step_frame, step_page, step_tramp;
	uint64_t step_stack_lo, step_stack_hi;	/* the frame's stack */
	bool step_seen;		/* a gadget step's outcome was seen */
	uint64_t stop_start_ns, last_stop_ns;	/* interrupt -> detach */
	uint64_t held_start_ns, last_held_ns;	/* stop seen -> detach */
	uint64_t stop_total_ns, held_total_ns;	/* all stops so far */
	unsigned nstops;
	uint64_t dirty_start_ns, dirty_ns;	/* injected registers live */
	bool gone;		/* target exited under us */
	bool stuck;		/* a stop never came: still seized (see
				 * inj__release_stuck) */
	bool masked;		/* job-control signals blocked while held */
	sigset_t oldmask;
};

int inj__wait_stop(struct inj_target *t, int *status, int timeout_ms,
		   struct lp_err *err);
/* Let go of a thread whose interrupt stop came late: 0, or -1 while it
 * has not come yet. */
int inj__release_stuck(struct inj_target *t);
/* 0 when this kernel honours MAP_FIXED_NOREPLACE, else -LP_EINJECT. */
int inj__check_fixed_noreplace(struct lp_err *err);
int inj__find_syscall(struct inj_target *t, struct lp_err *err);
int inj__find_restore_rt(struct inj_target *t, struct lp_err *err);
struct inj_module *inj__module_at(struct inj_target *t, uint64_t addr);

#endif
