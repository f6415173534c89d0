/*
 * The modules of a target: /proc/PID/maps parsed and grouped by file,
 * each ELF file opened once (through /proc/PID/root, or
 * /proc/PID/map_files when the file was deleted or replaced) and its
 * tables loaded on first need, its load bias, and the symbol services
 * built on them: lookup by name, symbolization of addresses, and the
 * `syscall` instruction used by inj_syscall().
 */
#include "injector/injector_int.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xalloc.h"

#define DELETED_SUFFIX " (deleted)"

/* ---- /proc/PID/maps parser ------------------------------------------- */

static int
parse_hex(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	int n = 0;

	for (;; p++, n++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (n == 16)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (!n)
		return -1;
	*pp = p;
	*out = v;
	return 0;
}

static int
parse_dec(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*pp = p;
	*out = v;
	return 0;
}

static int
expect(const char **pp, char c)
{
	if (**pp != c)
		return -1;
	(*pp)++;
	return 0;
}

/*
 * One line: "start-end perms offset major:minor inode   path".  The
 * path is everything after the inode and its padding, spaces included;
 * it is empty for anonymous memory.
 */
static int
parse_line(const char *p, const char *eol, struct inj_map *m)
{
	uint64_t major, minor;

	if (parse_hex(&p, &m->start) < 0 || expect(&p, '-') < 0 ||
	    parse_hex(&p, &m->end) < 0 || expect(&p, ' ') < 0)
		return -1;
	for (int i = 0; i < 4; i++, p++) {
		if (!strchr("rwxsp-", *p) || !*p)
			return -1;
		m->perms[i] = *p;
	}
	m->perms[4] = '\0';
	if (expect(&p, ' ') < 0 || parse_hex(&p, &m->offset) < 0 ||
	    expect(&p, ' ') < 0 || parse_hex(&p, &major) < 0 ||
	    expect(&p, ':') < 0 || parse_hex(&p, &minor) < 0 ||
	    expect(&p, ' ') < 0 || parse_dec(&p, &m->inode) < 0)
		return -1;
	if (p < eol && *p != ' ')
		return -1;
	if (m->end <= m->start || major > 0xfff || minor > 0xfffff)
		return -1;
	m->dev = makedev((unsigned)major, (unsigned)minor);
	while (p < eol && *p == ' ')
		p++;
	m->path = p < eol ? xstrndup(p, (size_t)(eol - p)) : NULL;
	return 0;
}

/*
 * Parse the text of /proc/PID/maps.  *out (owned by the caller, freed with
 * inj__free_maps) gets one entry per line, in file order (ascending
 * addresses).  Returns 0 or -LP_EPARSE naming the first bad line.
 */
int
inj__parse_maps(const char *text, struct inj_map **out, size_t *n,
		struct lp_err *err)
{
	struct inj_map *maps = NULL;
	size_t cap = 0, cnt = 0, line = 0;
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		struct inj_map m = { 0 };

		if (!eol)
			eol = p + strlen(p);
		line++;
		if (eol == p) {
			p = *eol ? eol + 1 : eol;
			continue;
		}
		if (parse_line(p, eol, &m) < 0) {
			inj__free_maps(maps, cnt);
			return lp_err_set(err, LP_EPARSE, "maps: malformed "
					  "line %zu: '%.*s'", line,
					  (int)(eol - p > 80 ? 80 : eol - p),
					  p);
		}
		maps = xgrow(maps, &cap, cnt + 1, sizeof(*maps));
		maps[cnt++] = m;
		p = *eol ? eol + 1 : eol;
	}
	*out = maps;
	*n = cnt;
	return 0;
}

/* Free an array from inj__parse_maps().  NULL is a no-op. */
void
inj__free_maps(struct inj_map *m, size_t n)
{
	if (!m)
		return;
	for (size_t i = 0; i < n; i++)
		free(m[i].path);
	free(m);
}

/* ---- modules ----------------------------------------------------------- */

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/*
 * Open the ELF file behind a module: its program headers only (load
 * bias, span, unwind tables); symbol tables and debug files load on
 * first lookup (elfsym.c).  Through /proc/PID/root first, so a
 * container's files are the ones opened, when that path still names the
 * mapped inode; otherwise (deleted, replaced by an upgrade, or not
 * reachable) through /proc/PID/map_files/START-END of one of its
 * mappings, which needs CAP_SYS_ADMIN.
 */
static struct elf_file *
load_module_elf(struct inj_target *t, const struct inj_module *mod,
		const struct inj_map *m)
{
	char path[PATH_MAX + 80];
	struct elf_file *f = NULL;
	int n;

	if (!mod->deleted) {
		n = snprintf(path, sizeof(path), "%s%s", t->root, mod->path);
		if (n > 0 && (size_t)n < sizeof(path))
			f = elf__open_lazy(path, mod->inode, t->root, NULL);
	}
	if (!f) {
		snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64
			 "-%" PRIx64, (int)t->pid, m->start, m->end);
		f = elf__open_lazy(path, 0, t->root, NULL);
	}
	return f;
}

static void
free_modules(struct inj_module *mods, size_t n)
{
	if (!mods)
		return;
	for (size_t i = 0; i < n; i++) {
		elf__free(mods[i].elf);
		free(mods[i].path);
	}
	free(mods);
}

/* Per-module bookkeeping while grouping mappings. */
struct mod_build {
	size_t low_map;		/* its first mapping */
};

/*
 * Replace t->maps with maps (taking ownership) and rebuild t->mods from
 * them.  Mappings of one file (same dev, inode and path) form a module;
 * a second load of the same file starts a new one.  A module already
 * indexed keeps its ELF with every part loaded so far (or its failure: a
 * file that is not ELF is not opened again); only new files are opened,
 * and only their program headers are read.
 */
void
inj__index_maps(struct inj_target *t, struct inj_map *maps, size_t nmaps)
{
	struct inj_module *mods = NULL;
	struct mod_build *mb = NULL;
	size_t ncap = 0, nmods = 0, nmb_cap = 0;
	size_t *owner = NULL;
	char path[64], exe[PATH_MAX];
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)t->pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	exe[len > 0 ? len : 0] = '\0';

	owner = xcalloc(nmaps, sizeof(*owner));
	for (size_t i = 0; i < nmaps; i++) {
		const struct inj_map *m = &maps[i];
		struct inj_module *mod = NULL;
		size_t k;

		owner[i] = SIZE_MAX;
		if (!m->path || m->path[0] != '/')
			continue;	/* anonymous, [heap], [stack], ... */
		/*
		 * Continue the latest module of this file: adjacent
		 * mappings always (offsets need not grow: the RELRO part of
		 * a RW segment shares a file page with the segment before
		 * it, and the loader's ---p filler between segments keeps
		 * the offset of its initial reservation), later ones unless
		 * they map the file's start again (a second load).
		 */
		for (k = nmods; k > 0; k--) {
			struct inj_module *c = &mods[k - 1];

			if (c->inode == m->inode && c->dev == m->dev &&
			    !strcmp(c->path, m->path)) {
				if (m->start == c->hi ||
				    (m->start > c->hi && m->offset))
					mod = c;
				break;
			}
		}
		if (mod) {
			k--;
			mod->hi = m->end;
		} else {
			mods = xgrow(mods, &ncap, nmods + 1, sizeof(*mods));
			mb = xgrow(mb, &nmb_cap, nmods + 1, sizeof(*mb));
			k = nmods++;
			mod = &mods[k];
			memset(mod, 0, sizeof(*mod));
			mod->path = xstrdup(m->path);
			mod->base = strrchr(mod->path, '/') + 1;
			mod->lo = m->start;
			mod->hi = m->end;
			mod->dev = m->dev;
			mod->inode = m->inode;
			mod->deleted = ends_with(m->path, DELETED_SUFFIX);
			mod->main_exe = exe[0] && !strcmp(exe, m->path);
			mb[k].low_map = i;
		}
		owner[i] = k;
	}

	for (size_t k = 0; k < nmods; k++) {
		struct inj_module *mod = &mods[k];
		const struct inj_map *low = &maps[mb[k].low_map];
		bool reused = false;

		/* an ELF indexed by the previous refresh is taken over */
		for (size_t j = 0; j < t->nmods; j++) {
			struct inj_module *old = &t->mods[j];

			if (old->path && old->inode == mod->inode &&
			    old->dev == mod->dev &&
			    !strcmp(old->path, mod->path)) {
				mod->elf = old->elf;
				old->elf = NULL;
				free(old->path);
				old->path = NULL;
				reused = true;
				break;
			}
		}
		if (!reused)
			mod->elf = load_module_elf(t, mod, low);
		/*
		 * The bias from the module's first mapping: its offset (0 as
		 * a rule) names one PT_LOAD.  A later mapping may not: the
		 * page at a RW segment's p_offset often also holds the end
		 * of the previous segment, and both are mapped read-only.
		 */
		if (!mod->elf || elf__bias(mod->elf, low->start, low->offset,
					   &mod->bias) < 0)
			mod->bias = low->start - low->offset;
	}

	/* .bss: anonymous memory right after a module, inside its span */
	for (size_t i = 1; i < nmaps; i++) {
		struct inj_module *mod;
		uint64_t span_end;

		if (maps[i].path || owner[i - 1] == SIZE_MAX)
			continue;
		mod = &mods[owner[i - 1]];
		if (!mod->elf || maps[i].start != mod->hi)
			continue;
		span_end = (mod->bias + mod->elf->hi_vaddr + 0xfff) & ~0xfffULL;
		if (maps[i].end <= span_end)
			mod->hi = maps[i].end;
	}

	free_modules(t->mods, t->nmods);
	t->mods = mods;
	t->nmods = nmods;
	inj__free_maps(t->maps, t->nmaps);
	t->maps = maps;
	t->nmaps = nmaps;
	free(owner);
	free(mb);
}

/*
 * Re-read /proc/PID/maps and rebuild the module index (inj__index_maps).
 * No symbol table is loaded here: lookups load what they need.
 * Returns 0, -LP_ENOPROC when the process is gone, or -LP_EPARSE.
 *
 * Inside a stop, the maps read just before it (inj_attach) stand: the
 * thread is not held for a read (60-100 us).  A stop holds the main
 * thread only; the other threads map and unmap whenever they like, so a
 * read inside the stop would be no more current for them, and a step's
 * outcome is read afresh once the thread has run it.
 */
int
inj_refresh_maps(struct inj_target *t, struct lp_err *err)
{
	if (t->maps_snap && t->attached)
		return 0;
	return inj__read_maps(t, err);
}

/* The read itself, whatever the stop. */
int
inj__read_maps(struct inj_target *t, struct lp_err *err)
{
	struct lp_err lerr = { 0 };
	struct inj_map *maps = NULL;
	size_t nmaps = 0, cap = 0;
	char path[64], *buf = NULL;
	ssize_t len;
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)t->pid);
	len = lp_read_file(path, &buf, &cap, &lerr);
	if (len < 0) {
		rc = lp_err_set(err, lerr.sys_errno == ENOENT ||
				lerr.sys_errno == ESRCH ? LP_ENOPROC :
				lerr.code, "%s", lerr.msg);
		goto out;
	}
	rc = inj__parse_maps(buf, &maps, &nmaps, err);
	if (rc < 0)
		goto out;
	inj__index_maps(t, maps, nmaps);
out:
	free(buf);
	return rc;
}

/*
 * The module mapping addr (its mappings and its .bss), or NULL.  t->mods
 * is in ascending address order.
 */
struct inj_module *
inj__module_at(struct inj_target *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nmods;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->mods[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* a module in a gap of its predecessor's span cannot exist, but a
	 * double-mapped file may interleave: look two back */
	for (size_t i = lo, k = 0; i > 0 && k < 2; i--, k++)
		if (addr >= t->mods[i - 1].lo && addr < t->mods[i - 1].hi)
			return &t->mods[i - 1];
	return NULL;
}

/* ---- lookup by name ---------------------------------------------------- */

/* glibc's dynamic linker; musl's ld-musl-*.so.1 is its libc as well */
static bool
is_rtld(const struct inj_module *mod)
{
	return (!strncmp(mod->base, "ld-", 3) &&
		strncmp(mod->base, "ld-musl", 7)) ||
	       !strncmp(mod->base, "ld64.", 5);
}

/*
 * Modules in the order the dynamic linker searches them, approximately:
 * the executable, then the others from the highest address down (ld.so
 * maps preloaded and needed libraries top-down in load order), the
 * dynamic linker itself last: it comes after the libraries in the global
 * scope, and older glibc's (2.31 in Debian 11) exports a minimal malloc,
 * calloc, realloc and free of its own that only serve before libc is
 * relocated.
 */
static size_t *
search_order(const struct inj_target *t)
{
	size_t *order = xcalloc(t->nmods, sizeof(*order));
	size_t n = 0;

	for (size_t i = 0; i < t->nmods; i++)
		if (t->mods[i].main_exe)
			order[n++] = i;
	for (int rtld = 0; rtld < 2; rtld++)
		for (size_t i = t->nmods; i > 0; i--)
			if (!t->mods[i - 1].main_exe &&
			    is_rtld(&t->mods[i - 1]) == rtld)
				order[n++] = i - 1;
	return order;
}

static bool
module_matches(const struct inj_module *mod, const char *module)
{
	return !module || !strncmp(mod->base, module, strlen(module));
}

/*
 * .dynsym of every module in search order, then .symtab of every one.
 * Each module's DT_GNU_HASH bloom filter rejects most names without
 * loading its .dynsym; .symtabs (and debug files) are loaded only for a
 * name no .dynsym defines.
 */
static struct inj_module *
find_symbol(struct inj_target *t, const char *module, const char *name,
	    const struct elf_sym **out)
{
	struct inj_module *found = NULL;
	size_t *order = search_order(t);

	for (int pass = 0; pass < 2 && !found; pass++) {
		for (size_t k = 0; k < t->nmods && !found; k++) {
			struct inj_module *mod = &t->mods[order[k]];

			if (mod->elf && module_matches(mod, module) &&
			    elf__lookup_table(mod->elf, name, pass == 1,
					      out) == 0)
				found = mod;
		}
	}
	free(order);
	return found;
}

/*
 * IFUNC symbols (memcpy, strlen, ...) are resolvers: their st_value is
 * the function that picks an implementation, not the implementation, so
 * they are refused as call targets.
 */
int
inj_lookup(struct inj_target *t, const char *module, const char *name,
	   uint64_t *addr, struct lp_err *err)
{
	const struct elf_sym *s;
	struct inj_module *mod;

	mod = find_symbol(t, module, name, &s);
	if (!mod)
		return lp_err_set(err, LP_ENOSYM, "symbol '%s' not found in %s "
				  "of process %d", name,
				  module ? module : "the mapped ELF files",
				  (int)t->pid);
	if (s->type == STT_GNU_IFUNC)
		return lp_err_set(err, LP_ENOSYM, "symbol '%s' in '%s' is an "
				  "IFUNC resolver, not a callable function",
				  name, mod->base);
	*addr = mod->bias + s->value;
	return 0;
}

/* Whether any module defines name (IFUNC resolvers included). */
bool
inj_has_symbol(struct inj_target *t, const char *name)
{
	const struct elf_sym *s;

	return find_symbol(t, NULL, name, &s) != NULL;
}

/* Path (owned by t, valid until the next refresh) of the module that
 * inj_lookup() would take name from, or NULL. */
const char *
inj_symbol_module(struct inj_target *t, const char *name)
{
	const struct elf_sym *s;
	struct inj_module *mod = find_symbol(t, NULL, name, &s);

	return mod ? mod->path : NULL;
}

/* ---- by address -------------------------------------------------------- */

/*
 * Offsets printed after a module name ("libruby.so.3.1+0x1a2b3") are
 * addr - bias, i.e. the link-time virtual address that readelf, objdump
 * and addr2line use.  For a file that could not be loaded the bias is
 * taken from its lowest-offset mapping (start - offset).  The first
 * address of a module loads its tables, debug file and index.
 */
void
inj_symbolize(struct inj_target *t, uint64_t addr, char *buf, size_t len)
{
	struct inj_module *mod;
	const struct elf_sym *s = NULL;

	if (!buf || !len)
		return;
	mod = inj__module_at(t, addr);
	if (!mod) {
		snprintf(buf, len, "0x%" PRIx64, addr);
		return;
	}
	if (mod->elf)
		s = elf__find_addr(mod->elf, addr - mod->bias);
	if (s)
		snprintf(buf, len, "%s+0x%" PRIx64 " (%s)",
			 elf__sym_name(mod->elf, s),
			 addr - mod->bias - s->value, mod->base);
	else
		snprintf(buf, len, "%s+0x%" PRIx64, mod->base,
			 addr - mod->bias);
}

/* Whether addr lies within the st_size of a symbol `name` of the module
 * mapping addr (any alias of the function counts).  .dynsym first: its
 * .symtab is loaded only when that does not settle it. */
bool
inj_addr_in_symbol(struct inj_target *t, uint64_t addr, const char *name)
{
	struct inj_module *mod = inj__module_at(t, addr);
	const struct elf_sym *s;

	if (!mod || !mod->elf)
		return false;
	for (int pass = 0; pass < 2; pass++)
		if (elf__lookup_table(mod->elf, name, pass == 1, &s) == 0 &&
		    addr - mod->bias - s->value < s->size)
			return true;
	return false;
}

/* Basename (owned by t) of the module mapping addr, or NULL. */
const char *
inj_addr_module(struct inj_target *t, uint64_t addr)
{
	struct inj_module *mod = inj__module_at(t, addr);

	return mod ? mod->base : NULL;
}

static void
module_info(struct inj_target *t, struct inj_module *mod,
	    struct inj_addr_info *out)
{
	out->path = mod->path;
	out->base = mod->base;
	out->lo = mod->lo;
	out->hi = mod->hi;
	for (size_t i = 0; i < t->nmaps; i++)
		if (t->maps[i].start == mod->lo) {
			out->file_off = t->maps[i].offset;
			break;
		}
	if (mod->elf) {
		elf__load(mod->elf, ELF_L_META, NULL);
		out->build_id = mod->elf->build_id;
	}
}

/* The main executable's module; see injector.h. */
int
inj_main_info(struct inj_target *t, struct inj_addr_info *out)
{
	memset(out, 0, sizeof(*out));
	out->build_id = "";
	for (size_t i = 0; i < t->nmods; i++)
		if (t->mods[i].main_exe) {
			module_info(t, &t->mods[i], out);
			return 0;
		}
	return -LP_ENOSYM;
}

/* Module, build-id and symbol of addr; see injector.h. */
int
inj_addr_info(struct inj_target *t, uint64_t addr, struct inj_addr_info *out)
{
	struct inj_module *mod = inj__module_at(t, addr);
	const struct elf_sym *s = NULL;

	memset(out, 0, sizeof(*out));
	out->build_id = "";
	if (!mod)
		return -LP_ENOSYM;
	module_info(t, mod, out);
	if (mod->elf)
		s = elf__find_addr(mod->elf, addr - mod->bias);
	if (s) {
		out->sym = elf__sym_name(mod->elf, s);
		out->sym_off = addr - mod->bias - s->value;
	}
	return 0;
}

/* ---- the syscall instruction ------------------------------------------ */

/*
 * libc functions that are a bare system call: `mov $nr, %eax; syscall;
 * ret` in glibc; `syscall(2)` itself comes last (its syscall is followed
 * by an error check, not ret).
 */
static const char *const syscall_funcs[] = {
	"getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"sched_yield", "syscall",
};

static bool
is_libc(const struct inj_module *mod)
{
	return !strncmp(mod->base, "libc.so", 7) ||
	       !strncmp(mod->base, "libc-", 5) ||
	       !strncmp(mod->base, "ld-musl", 7);
}

static bool
addr_executable(const struct inj_target *t, uint64_t addr)
{
	for (size_t i = 0; i < t->nmaps; i++)
		if (addr >= t->maps[i].start && addr < t->maps[i].end)
			return t->maps[i].perms[2] == 'x';
	return false;
}

/*
 * Find a `syscall` instruction in libc's text (in the executable when it
 * is linked statically) at a real instruction boundary, preferably
 * followed by `ret`, and store its runtime address in t->syscall_insn.
 * The code is read from the file, never written.  The functions are all
 * in libc's .dynsym; that module's by-address index is built too (see
 * below).  0 or -LP_EINJECT.
 */
int
inj__find_syscall(struct inj_target *t, struct lp_err *err)
{
	struct inj_module *mod;
	uint64_t fallback = 0;

	/* libc first, then any module (static executables) */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < t->nmods; k++) {
			mod = &t->mods[k];
			if (!mod->elf || is_libc(mod) != (pass == 0))
				continue;
			for (size_t i = 0; i < sizeof(syscall_funcs) /
			     sizeof(*syscall_funcs); i++) {
				const struct elf_sym *s;
				uint8_t code[4096];
				uint64_t fn;
				long off;

				if (elf__lookup(mod->elf, syscall_funcs[i],
						&s) < 0 ||
				    (s->type != STT_FUNC) || !s->size ||
				    s->size > sizeof(code) ||
				    elf__read(mod->elf, s->value, code,
					      s->size, NULL) < 0)
					continue;
				fn = mod->bias + s->value;
				off = inj__find_syscall_insn(code, s->size,
							     fn);
				if (off < 0 ||
				    !addr_executable(t, fn + (uint64_t)off))
					continue;
				if ((size_t)off + 2 < s->size &&
				    code[off + 2] == 0xc3) {
					t->syscall_insn = fn + (uint64_t)off;
					goto found;
				}
				if (!fallback)
					fallback = fn + (uint64_t)off;
			}
		}
		if (fallback)
			break;
	}
	if (!fallback && inj__disasm_error())
		return lp_err_set(err, LP_EINJECT, "cannot load the "
				  "disassembler: %s (install libcapstone4)",
				  inj__disasm_error());
	if (!fallback)
		return lp_err_set(err, LP_EINJECT, "no syscall instruction "
				  "found in the libc of process %d (is it "
				  "linked against glibc?)", (int)t->pid);
	t->syscall_insn = fallback;
found:
	/*
	 * This runs before the thread is stopped (inj_prepare), and a
	 * stopped thread is most often inside a libc syscall wrapper, whose
	 * address the caller names while it holds the thread: build that
	 * module's by-address index (.symtab, debug file) now, not then.
	 */
	mod = inj__module_at(t, t->syscall_insn);
	if (mod && mod->elf)
		elf__load(mod->elf, ELF_L_ADDR, NULL);
	return 0;
}

/* `mov $15,%rax; syscall`: rt_sigreturn, the whole of libc's __restore_rt */
static const uint8_t restore_rt_code[] = {
	0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05
};

/*
 * Find libc's signal return trampoline (__restore_rt: `mov $15,%rax;
 * syscall`), the return address an injected syscall leaves on the stack
 * so that the thread restores itself from our frame.  By symbol when a
 * .symtab or debug file names it, else by its bytes in libc's executable
 * segments at a 16-byte boundary (glibc aligns it so; musl's has a
 * symbol), checked with capstone to be those two whole instructions.
 * 0 or -LP_EINJECT.
 */
int
inj__find_restore_rt(struct inj_target *t, struct lp_err *err)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < t->nmods; k++) {
			struct inj_module *mod = &t->mods[k];
			const struct elf_sym *s;
			uint8_t code[sizeof(restore_rt_code)];

			if (!mod->elf || is_libc(mod) != (pass == 0))
				continue;
			if (elf__load(mod->elf, ELF_L_TAB | ELF_L_DYN,
				      NULL) == 0 &&
			    elf__lookup(mod->elf, "__restore_rt", &s) == 0 &&
			    elf__read(mod->elf, s->value, code, sizeof(code),
				      NULL) == 0 &&
			    !memcmp(code, restore_rt_code, sizeof(code)) &&
			    addr_executable(t, mod->bias + s->value)) {
				t->restore_rt = mod->bias + s->value;
				return 0;
			}
			for (size_t i = 0; i < mod->elf->nsegs; i++) {
				const struct elf_load_seg *g =
					&mod->elf->segs[i];
				uint64_t a;
				uint8_t *buf;

				if (!(g->flags & PF_X) || !g->filesz ||
				    g->filesz > (64u << 20))
					continue;
				buf = malloc(g->filesz);
				if (!buf)
					continue;
				if (elf__read(mod->elf, g->vaddr, buf,
					      g->filesz, NULL) < 0) {
					free(buf);
					continue;
				}
				for (uint64_t o = (16 - (g->vaddr & 15)) & 15;
				     o + sizeof(code) <= g->filesz; o += 16) {
					if (memcmp(buf + o, restore_rt_code,
						   sizeof(code)))
						continue;
					a = mod->bias + g->vaddr + o;
					if (inj__is_restore_rt(buf + o,
							       g->filesz - o,
							       a) &&
					    addr_executable(t, a)) {
						t->restore_rt = a;
						free(buf);
						return 0;
					}
				}
				free(buf);
			}
		}
	}
	return lp_err_set(err, LP_EINJECT, "no signal return trampoline "
			  "(__restore_rt) found in the libc of process %d",
			  (int)t->pid);
}
