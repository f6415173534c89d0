# leakprobe: one non-recursive Makefile.
#
#   make            build ./leakprobe
#   make check      unit + integration tests, then again under ASan/UBSan
#   make bench      benchmarks (print figures against a baseline)
#   make demo       attach to a demo Ruby process that leaks
#   make deps       install missing Debian packages (root) or print the command

VERSION  := 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
RUBY     ?= ruby
BUILD    ?= build

CC       ?= cc
CFLAGS   ?= -O2 -g
PKGS     := libelf libunwind-ptrace capstone jansson libbpf
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

LP_CFLAGS = -Wall -Wextra -Werror -std=gnu11 -MMD -MP -D_GNU_SOURCE \
	    -DLP_VERSION='"$(VERSION)"' -I. $(PKG_CFLAGS) $(SANFLAGS)
LP_LDLIBS = $(PKG_LIBS) -lm -lpthread

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS := $(wildcard common/*.c analysis/*.c injector/*.c probes/*.c)
CLI_SRCS := $(wildcard cli/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
LIBLP    := $(BUILD)/libleakprobe.a

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

ifeq ($(BUILD),build)
BIN := leakprobe
else
BIN := $(BUILD)/leakprobe
endif

# ---- BPF: malloc tracing (probes/malloc.bpf.c) -----------------------------
# clang builds the BPF object from source against the UAPI headers only
# (struct pt_regs of a uprobe is ABI: no vmlinux.h, no kernel headers, no
# kernel BTF), and bpftool turns it into a skeleton header that embeds the
# object; probes/malloc.c includes it from $(BUILD)/probes.  The user's
# CFLAGS and the sanitizers do not apply to BPF code.
CLANG    ?= clang
BPFTOOL  ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
BPF_MULTIARCH := $(or $(shell $(CC) -print-multiarch 2>/dev/null),x86_64-linux-gnu)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -I. \
	      -I/usr/include/$(BPF_MULTIARCH)
LIB_SRCS := $(filter-out %.bpf.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/probes/malloc.bpf.o: probes/malloc.bpf.c probes/malloc_bpf.h
	@mkdir -p $(dir $@)
	@echo "  BPF     $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c -o $@ $<

$(BUILD)/probes/malloc.skel.h: $(BUILD)/probes/malloc.bpf.o
	@echo "  GENSKEL $@"
	$(Q)$(BPFTOOL) gen skeleton $< name malloc_bpf >$@.tmp && mv $@.tmp $@

$(BUILD)/probes/malloc.o: $(BUILD)/probes/malloc.skel.h
$(BUILD)/probes/malloc.o: LP_CFLAGS += -I$(BUILD)
# ---- end of BPF -------------------------------------------------------------

.PHONY: all check check-rubies unit integ mancheck bench bench-bins demo deps install \
	uninstall faulttest \
	clean check-san
.DEFAULT_GOAL := all

all: $(BIN)

$(BIN): $(CLI_OBJS) $(LIBLP)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) $(LIBLP) \
		$(LP_LDLIBS) $(LDLIBS)

$(LIBLP): $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(LP_CFLAGS) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

# Unit tests: one cmocka binary per module.  A test may ask for extra link
# flags (e.g. -Wl,--wrap=ptrace) in tests/unit/test_X.ldflags.
$(BUILD)/tests/%: tests/unit/%.c $(LIBLP)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(LP_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< \
		$(shell cat tests/unit/$*.ldflags 2>/dev/null) \
		$(LIBLP) $(CMOCKA_LIBS) $(LP_LDLIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIBLP)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(LP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBLP) \
		$(LP_LDLIBS) $(LDLIBS)

# ---- ELF fixtures for the injector's symbol tests (test_elfsym, test_gadget)
# One program (tests/fixtures/elf/fixture.c) linked as PIE, non-PIE, static,
# static-pie and stripped (with a separate debug file), and a shared
# library (libfix.c).  Each links section .lp_known (known.h) at
# ELFFIX_KNOWN, so the tests know a symbol's exact address and size.  The
# tests find these files in $(BUILD)/fixtures/elf, next to their own
# binaries.  The user's CFLAGS are not applied: the tests rely on -O0
# frames and calls.
ELFFIX_SRC   := tests/fixtures/elf
ELFFIX_DIR   := $(BUILD)/fixtures/elf
ELFFIX_KNOWN := 0x800000
ELFFIX_CC     = $(CC) -O0 -fno-omit-frame-pointer -I$(ELFFIX_SRC) \
		-Wl,--section-start=.lp_known=$(ELFFIX_KNOWN)
ELFFIX_DEPS  := $(ELFFIX_SRC)/fixture.c $(ELFFIX_SRC)/known.h
ELFFIX       := $(addprefix $(ELFFIX_DIR)/,pie nopie static static-pie \
		shared.so stripped stripped.debug)
OBJCOPY      ?= objcopy
STRIP        ?= strip

$(ELFFIX_DIR)/pie: $(ELFFIX_DEPS)
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -fPIE -pie -rdynamic \
		-Wl,--build-id=0x0123456789abcdef0123456789abcdef01234567 \
		-o $@ $<

$(ELFFIX_DIR)/nopie: $(ELFFIX_DEPS)
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -fno-pie -no-pie -o $@ $<

$(ELFFIX_DIR)/static: $(ELFFIX_DEPS)
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -static -o $@ $<

$(ELFFIX_DIR)/static-pie: $(ELFFIX_DEPS)
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -fPIE -static-pie -o $@ $<

$(ELFFIX_DIR)/shared.so: $(ELFFIX_SRC)/libfix.c $(ELFFIX_SRC)/known.h
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -fPIC -shared -o $@ $<

# stripped: .symtab removed, .dynsym kept (-rdynamic); its .symtab lives in
# stripped.debug, reachable by build-id and by .gnu_debuglink
$(ELFFIX_DIR)/stripped.full: $(ELFFIX_DEPS)
	@mkdir -p $(dir $@)
	@echo "  FIXTURE $@"
	$(Q)$(ELFFIX_CC) -fPIE -pie -rdynamic \
		-Wl,--build-id=0xfedcba9876543210fedcba9876543210fedcba98 \
		-o $@ $<

$(ELFFIX_DIR)/stripped.debug: $(ELFFIX_DIR)/stripped.full
	@echo "  FIXTURE $@"
	$(Q)$(OBJCOPY) --only-keep-debug $< $@

$(ELFFIX_DIR)/stripped: $(ELFFIX_DIR)/stripped.full \
			$(ELFFIX_DIR)/stripped.debug
	@echo "  FIXTURE $@"
	$(Q)$(STRIP) --strip-all -o $@ $<
	$(Q)$(OBJCOPY) --add-gnu-debuglink=$(ELFFIX_DIR)/stripped.debug $@

$(BUILD)/tests/test_elfsym $(BUILD)/tests/test_gadget: $(ELFFIX)
# ---- end of ELF fixtures ---------------------------------------------------

deps:
	$(Q)scripts/install-deps

unit: $(UNIT_BINS)
	$(Q)tests/run-unit $(UNIT_BINS)

integ: $(BIN)
	$(Q)LEAKPROBE=$(abspath $(BIN)) RUBY=$(RUBY) tests/integ/run

mancheck:
	$(Q)tests/mancheck man/leakprobe.1

# SIGKILL of leakprobe at 1,000 instants of attach (make check runs 120):
# every target must live on, untraced, with at most one page and one
# directory of ours.  A few minutes of both cores.
faulttest: $(BIN)
	$(Q)LEAKPROBE=$(abspath $(BIN)) RUBY=$(RUBY) LP_KILL9_COUNT=$${LP_KILL9_COUNT:-1000} \
		TESTS=kill9 tests/integ/run

# The whole suite once with the normal build, the checks against other
# Rubies (Debian chroots, see tests/rubies/run), then unit + integration
# tests again with AddressSanitizer and UBSan.
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory mancheck
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory integ
	$(Q)$(MAKE) --no-print-directory check-rubies
	$(Q)$(MAKE) --no-print-directory check-san

# (as root only: tests/rubies/run skips itself otherwise, and must not
# make a non-root `make check` fail over debootstrap)
check-rubies: $(BIN)
	$(Q)[ "$$(id -u)" != 0 ] || scripts/install-deps --rubies
	$(Q)LEAKPROBE=$(abspath $(BIN)) tests/rubies/run

check-san:
	$(Q)$(MAKE) --no-print-directory BUILD=build-san SAN=1 unit integ

bench:
	$(Q)scripts/install-deps --bench
	$(Q)$(MAKE) --no-print-directory all bench-bins
	$(Q)LEAKPROBE=$(abspath $(BIN)) RUBY=$(RUBY) BENCH_BIN=$(abspath $(BUILD)/bench) bench/run

bench-bins: $(BENCH_BINS)

# deps first, then a sub-make: pkg-config flags are read when make starts,
# so the build must start after the packages are there.
demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)LEAKPROBE=$(abspath $(BIN)) RUBY=$(RUBY) scripts/demo

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/leakprobe
	install -m 0644 man/leakprobe.1 $(DESTDIR)$(MANDIR)/man1/leakprobe.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/leakprobe $(DESTDIR)$(MANDIR)/man1/leakprobe.1

clean:
	rm -rf build build-san leakprobe

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
