# Libraries that only some commands load (dlopen on first use, not linked):
# with libmicrohttpd and libprotobuf-c made unreadable in a private mount
# namespace, leakprobe still starts and watches, while watch --listen and
# --format pprof fail at once with one line naming the library and the
# package to install (exit 4), before the target is touched.  A binary
# that linked them would not start at all there.
. "$(dirname "$0")/lib.sh"
command -v unshare >/dev/null 2>&1 && unshare -m true 2>/dev/null ||
	skip "no mount namespaces (unshare -m)"

# the file the dynamic linker finds for a soname pattern
lib_path() { ldconfig -p | awk -v re="^$1\$" '$1 ~ re { print $NF; exit }'; }
mhd=$(lib_path 'libmicrohttpd\.so\.[0-9]+')
pbc=$(lib_path 'libprotobuf-c\.so\.[0-9]+')
[ -n "$mhd" ] && [ -n "$pbc" ] || fail "libmicrohttpd ($mhd) or libprotobuf-c ($pbc) not installed"

# without LIB...: run a command where those libraries read as empty files
without() {
	local libs=()
	while [ "$1" != -- ]; do libs+=("$1"); shift; done
	shift
	unshare -m sh -c 'n=$1; shift
		while [ "$n" -gt 0 ]; do
			mount --bind /dev/null "$1" || exit 99; shift; n=$((n - 1))
		done
		exec "$@"' _ "${#libs[@]}" "${libs[@]}" "$@"
}

start_target leaks.rb
pid=$TARGET_PID

# the namespace does hide them (else this test proves nothing)
expect_exit 0 without "$mhd" "$pbc" -- sh -c '! test -s "$1" && ! test -s "$2"' _ "$mhd" "$pbc"

expect_exit 0 without "$mhd" "$pbc" -- "$LP" --version
grep -q '^leakprobe ' <<<"$OUT" || fail "--version printed '$OUT'"
expect_exit 0 without "$mhd" "$pbc" -- "$LP" watch --count 1 --interval 0.1 "$pid"

one_line() {
	[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "more than one line: $ERR"
}

expect_exit 4 without "$mhd" -- "$LP" watch --listen 127.0.0.1:0 --count 1 "$pid"
one_line
grep -q '^leakprobe: watch: cannot load libmicrohttpd for --listen: .*(install libmicrohttpd12)$' <<<"$ERR" ||
	fail "missing libmicrohttpd: $ERR"

expect_exit 4 without "$pbc" -- "$LP" malloc "$pid" --format pprof -o "$T/m.pb.gz"
one_line
grep -q '^leakprobe: malloc: cannot load libprotobuf-c for --format pprof: .*(install libprotobuf-c1)$' <<<"$ERR" ||
	fail "missing libprotobuf-c: $ERR"
[ -e "$T/m.pb.gz" ] && fail "a profile was written without libprotobuf-c"
expect_exit 4 without "$pbc" -- "$LP" heapdiff --format pprof -o "$T/h.pb.gz" "$T/a" "$T/b"
grep -q 'install libprotobuf-c1' <<<"$ERR" || fail "heapdiff without libprotobuf-c: $ERR"

target_ok "$pid"
echo "ok: --version and watch without them; --listen and pprof say what to install"
