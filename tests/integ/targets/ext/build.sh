# Sourced by tests/integ/test_malloc*.sh after lib.sh:
#   build_leakext: compile leakext.c with the headers of $RUBY (Debian's
#   ruby-dev) into $T/leakext.so and set LEAKEXT to its path.
build_leakext() {
	local src cfg
	src="$(dirname "${BASH_SOURCE[0]}")/leakext.c"
	cfg=$("$RUBY" -e 'c = RbConfig::CONFIG
		puts c["rubyhdrdir"], c["rubyarchhdrdir"], c["libdir"],
		     c["LIBRUBYARG_SHARED"]') || fail "cannot ask $RUBY for RbConfig"
	local hdr arch libdir libs
	{ read -r hdr; read -r arch; read -r libdir; read -r libs; } <<<"$cfg"
	[ -f "$hdr/ruby.h" ] || skip "no Ruby headers in $hdr (install ruby-dev)"
	LEAKEXT="$T/leakext.so"
	# shellcheck disable=SC2086
	${CC:-cc} -O1 -g -fPIC -shared -Wall -Werror -I"$hdr" -I"$arch" \
		-o "$LEAKEXT" "$src" -L"$libdir" $libs ||
		fail "cannot build the test extension $src"
}
