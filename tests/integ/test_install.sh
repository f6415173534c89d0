# make install (DESTDIR-aware): the binary, the man page where man finds
# it, the bash completion where bash-completion loads it; make uninstall
# removes all three.  The README's `man ./man/leakprobe.1` renders.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v make >/dev/null || skip "make not found"
command -v man >/dev/null || skip "man not found (scripts/install-deps installs man-db)"
D=$T/dest

# -o: use the binary under test as it is, never rebuild it here
make -s -C "$ROOT" install DESTDIR="$D" PREFIX=/usr/local BIN="$LP" -o "$LP" \
	>"$T/make.out" 2>&1 || fail "make install: $(cat "$T/make.out")"
[ -x "$D/usr/local/bin/leakprobe" ] || fail "no binary"
cmp -s "$LP" "$D/usr/local/bin/leakprobe" || fail "binary differs"
page=$D/usr/local/share/man/man1/leakprobe.1
[ -f "$page" ] || fail "no man page"
comp=$D/usr/local/share/bash-completion/completions/leakprobe
[ -f "$comp" ] || fail "no bash completion"
# no build path or DESTDIR compiled or written into anything installed
grep -q "$D" "$page" "$comp" && fail "DESTDIR inside an installed file"

# man finds the page by name on that MANPATH and renders it
found=$(MANPATH=$D/usr/local/share/man man -w leakprobe 2>&1) || fail "man -w: $found"
[ "$found" = "$page" ] || fail "man -w found '$found'"
MANPATH=$D/usr/local/share/man man leakprobe 2>/dev/null | grep -q 'leakprobe eval' ||
	fail "man leakprobe does not render the page"
man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "man -l"
# the README's way, by path (works even where dpkg excludes /usr/share/man)
(cd "$ROOT" && man ./man/leakprobe.1 2>/dev/null) | grep -q '^NAME' || fail "man ./man/leakprobe.1"

# a slim Debian image (dpkg excludes /usr/share/man and /usr/share/groff):
# man cannot render there, the README's mandoc command can
if command -v mandoc >/dev/null && command -v unshare >/dev/null &&
   unshare -m true 2>/dev/null; then
	unshare -m sh -c 'mount -t tmpfs none /usr/share/groff &&
		mount -t tmpfs none /usr/share/man &&
		cd "$1" && mandoc -a man/leakprobe.1' _ "$ROOT" >"$T/slim" 2>&1 ||
		fail "mandoc in a slim image: $(head -3 "$T/slim")"
	grep -q 'leakprobe eval' "$T/slim" || fail "mandoc output: $(head -3 "$T/slim")"
	grep -q 'mandoc -a man/leakprobe.1' "$ROOT/README.md" || fail "README lost the mandoc command"
fi

# the installed completion works when sourced
r=$(bash -c '. "$1"; COMP_WORDS=("$2" ev); COMP_CWORD=1; _leakprobe; echo "${COMPREPLY[*]}"' \
	_ "$comp" "$D/usr/local/bin/leakprobe")
[ "$r" = eval ] || fail "installed completion: '$r'"

make -s -C "$ROOT" uninstall DESTDIR="$D" PREFIX=/usr/local >"$T/make.out" 2>&1 ||
	fail "make uninstall: $(cat "$T/make.out")"
[ -e "$D/usr/local/bin/leakprobe" ] && fail "binary left"
[ -e "$page" ] && fail "man page left"
[ -e "$comp" ] && fail "completion left"
echo ok
