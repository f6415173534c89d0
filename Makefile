# leakprobe: one non-recursive Makefile.
#
#   make            build ./leakprobe
#   make check      unit + integration tests, then again under ASan/UBSan
#   make bench      benchmarks (print figures against a baseline)
#   make fuzz       run every libFuzzer harness for FUZZ_TIME s (tests/fuzz)
#   make demo       attach to a demo Ruby process that leaks
#   make deps       install missing Debian packages (root) or print the command

VERSION  := 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
COMPDIR  ?= $(PREFIX)/share/bash-completion/completions
RUBY     ?= ruby
BUILD    ?= build

CC       ?= cc
CFLAGS   ?= -O2 -g
PKGS     := libelf libunwind-ptrace capstone jansson libbpf libmicrohttpd \
	    libprotobuf-c zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Linked: libelf, jansson and zlib.  Loaded with dlopen() by the commands
# that need them, so that no other command pays for loading and relocating
# them at start: capstone (injector/gadget.c; 77k relocations, 0.7 ms),
# libbpf (probes/bpf_lib.c), libunwind (injector/unwind_lib.c),
# libmicrohttpd (cli/mhd_lib.c: watch --listen; it brings gnutls and eight
# more) and libprotobuf-c (analysis/pbc_lib.c: --format pprof): those two
# linked cost 1.4 ms and 168 page faults at every start.  zlib stays
# linked: libelf needs it (DT_NEEDED), so it is loaded at start anyway.
LAZY_PKGS  := capstone libbpf libunwind-ptrace libmicrohttpd libprotobuf-c
PKG_LIBS   := $(shell pkg-config --libs $(filter-out $(LAZY_PKGS),$(PKGS)) \
		2>/dev/null)
LAZY_LIBS  := $(shell pkg-config --libs $(LAZY_PKGS) 2>/dev/null)
# soname LIB: the SONAME of lib$(LIB).so (the -dev symlink), or $(2)
soname = $(or $(shell objdump -p "$$(pkg-config --variable=libdir \
	$(1) 2>/dev/null)/lib$(2).so" 2>/dev/null | \
	awk '/SONAME/ { print $$2 }'),$(3))
CAPSTONE_SONAME := $(call soname,capstone,capstone,libcapstone.so.4)
BPF_SONAME      := $(call soname,libbpf,bpf,libbpf.so.1)
UNWIND_SONAME   := $(call soname,libunwind-ptrace,unwind-generic,\
		   libunwind-x86_64.so.8)
UNWIND_PTRACE_SONAME := $(call soname,libunwind-ptrace,unwind-ptrace,\
			libunwind-ptrace.so.0)
MHD_SONAME      := $(call soname,libmicrohttpd,microhttpd,\
		   libmicrohttpd.so.12)
PBC_SONAME      := $(call soname,libprotobuf-c,protobuf-c,libprotobuf-c.so.1)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

LP_CFLAGS = -Wall -Wextra -Werror -std=gnu11 -MMD -MP -D_GNU_SOURCE \
	    -DLP_VERSION='"$(VERSION)"' -I. $(PKG_CFLAGS) $(SANFLAGS)
LP_LDLIBS = -Wl,--as-needed $(PKG_LIBS) -lm -lpthread -ldl

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

# ---- pprof: profile.proto (analysis/profile.proto) -------------------------
# protoc-c generates the C encoder of pprof's published schema into
# $(BUILD)/analysis; analysis/stacks.c includes it from there.  Generated
# code is compiled without -Werror (its style is not ours).  Its calls into
# libprotobuf-c go to the stubs of analysis/pbc_lib.c (unit tests too).
PROTOC_C ?= protoc-c
PROTO_PKGS := libprotobuf-c zlib
PROTO_GEN := $(BUILD)/analysis/profile.pb-c.c $(BUILD)/analysis/profile.pb-c.h
LIB_OBJS += $(BUILD)/analysis/profile.pb-c.o

$(BUILD)/analysis/profile.pb-c.h: $(BUILD)/analysis/profile.pb-c.c
$(BUILD)/analysis/profile.pb-c.c: analysis/profile.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC  $@"
	$(Q)$(PROTOC_C) --c_out=$(BUILD)/analysis -Ianalysis $<

$(BUILD)/analysis/profile.pb-c.o: $(BUILD)/analysis/profile.pb-c.c
	@echo "  CC      $<"
	$(Q)$(CC) -std=gnu11 -I$(BUILD)/analysis $(shell pkg-config --cflags \
		$(PROTO_PKGS) 2>/dev/null) $(SANFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/analysis/stacks.o: $(BUILD)/analysis/profile.pb-c.h
$(BUILD)/analysis/stacks.o: LP_CFLAGS += -I$(BUILD)
$(BUILD)/tests/test_stacks: $(BUILD)/analysis/profile.pb-c.h
$(BUILD)/tests/test_stacks: LP_CFLAGS += -I$(BUILD)
# ---- end of pprof -----------------------------------------------------------

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
# test_gadget checks its answers against capstone directly
$(BUILD)/tests/test_gadget: LP_LDLIBS += $(shell pkg-config --libs capstone)
$(BUILD)/injector/gadget.o: LP_CFLAGS += \
	-DLP_CAPSTONE_SONAME='"$(CAPSTONE_SONAME)"'
$(BUILD)/probes/bpf_lib.o: LP_CFLAGS += -DLP_BPF_SONAME='"$(BPF_SONAME)"'
$(BUILD)/cli/mhd_lib.o: LP_CFLAGS += -DLP_MHD_SONAME='"$(MHD_SONAME)"'
$(BUILD)/analysis/pbc_lib.o: LP_CFLAGS += -DLP_PBC_SONAME='"$(PBC_SONAME)"'
$(BUILD)/injector/unwind_lib.o: LP_CFLAGS += \
	-DLP_UNWIND_SONAME='"$(UNWIND_SONAME)"' \
	-DLP_UNWIND_PTRACE_SONAME='"$(UNWIND_PTRACE_SONAME)"'
# ---- end of ELF fixtures ---------------------------------------------------

# ---- fuzzing: libFuzzer harnesses (tests/fuzz) -----------------------------
# One harness per input kind (tests/fuzz/fuzz_NAME.c), each calling the
# project's own parser; seeds in tests/fuzz/corpus/NAME, dictionaries in
# tests/fuzz/NAME.dict.  `make fuzz` builds them with clang and
# -fsanitize=fuzzer,address,undefined in build-fuzz and runs each for
# FUZZ_TIME seconds (FUZZ=NAME... picks harnesses), printing executions per
# second, coverage and crashes.  `make unit` builds the same harnesses with
# $(CC) and a plain main (tests/fuzz/standalone.c) and runs each once over
# its corpus, so they cannot rot and every seed stays a regression test.
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_TIME    ?= 60
FUZZ         ?= $(FUZZ_NAMES)
FUZZ_CLANG   ?= clang
ifeq ($(SAN),fuzz)
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_MAIN := -fsanitize=fuzzer
else
FUZZ_MAIN := tests/fuzz/standalone.c
endif

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/standalone.c $(LIBLP)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(LP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(FUZZ_MAIN) \
		$(LIBLP) $(LP_LDLIBS) $(LDLIBS)
# fuzz_rollup.c is the smaps harness with its own seeds
$(BUILD)/fuzz/fuzz_rollup: tests/fuzz/fuzz_smaps.c

.PHONY: fuzz fuzz-bins fuzz-regress
fuzz-bins: $(FUZZ_BINS)

fuzz-regress: $(FUZZ_BINS)
	$(Q)tests/fuzz/regress $(FUZZ_BINS)

unit: fuzz-regress

# deps first, then a sub-make (pkg-config flags are read when make starts)
fuzz:
	$(Q)scripts/install-deps --fuzz
	$(Q)$(MAKE) --no-print-directory BUILD=build-fuzz SAN=fuzz \
		CC=$(FUZZ_CLANG) CFLAGS="-O1 -g" fuzz-bins
	$(Q)FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/run build-fuzz/fuzz $(FUZZ)
# ---- end of fuzzing ---------------------------------------------------------

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
# Rubies (tests/rubies/run), then unit + integration tests again with
# AddressSanitizer and UBSan.  Every stage runs even when an earlier one
# failed; tests/check-stages ends with a per-stage summary.
check: deps
	$(Q)MAKE="$(MAKE)" tests/check-stages build=all mancheck=mancheck \
		unit=unit integ=integ rubies=check-rubies san=check-san

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
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(COMPDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/leakprobe
	install -m 0644 man/leakprobe.1 $(DESTDIR)$(MANDIR)/man1/leakprobe.1
	install -m 0644 completions/leakprobe.bash \
		$(DESTDIR)$(COMPDIR)/leakprobe

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/leakprobe $(DESTDIR)$(MANDIR)/man1/leakprobe.1 \
		$(DESTDIR)$(COMPDIR)/leakprobe

clean:
	rm -rf build build-san build-fuzz leakprobe

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
