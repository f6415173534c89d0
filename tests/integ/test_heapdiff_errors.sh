#!/bin/bash
# heapdiff on bad input: one-line errors "leakprobe: heapdiff: ...", exit 2
# for usage (options, argument count, a file with no objects, --why without
# sites or on a pipe), 6 for a dump that cannot be read; malformed lines
# are a warning on stderr, not an error; --help lists every option.
. "$(dirname "$0")/lib.sh"
FIX=$(cd "$(dirname "$0")/../fixtures/heapdump" && pwd)

one_line_error() {
	local code=$1 re=$2; shift 2
	expect_exit "$code" "$@"
	[ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "not one line from $*: $ERR"
	grep -q "^leakprobe: heapdiff: " <<<"$ERR" || fail "no 'leakprobe: heapdiff:' prefix: $ERR"
	grep -Eq -- "$re" <<<"$ERR" || fail "error for $* does not match '$re': $ERR"
}

A="$FIX/reuse.1.json" B="$FIX/reuse.2.json" C="$FIX/reuse.3.json"
one_line_error 2 "give two or three heap dumps \(OLD NEW \[LATER\]\), not 1" "$LP" heapdiff "$A"
one_line_error 2 "not 4" "$LP" heapdiff "$A" "$B" "$C" "$C"
one_line_error 2 "not 0" "$LP" heapdiff
one_line_error 2 "bad --by 'file': give site, method, class or type" "$LP" heapdiff "$A" "$B" --by file
one_line_error 2 "bad --top 'ten'" "$LP" heapdiff "$A" "$B" --top ten
one_line_error 2 "bad --why 'x.rb': give a site as FILE:LINE" "$LP" heapdiff "$A" "$B" --why x.rb
one_line_error 2 "bad --fail-on-count '0'" "$LP" heapdiff "$A" "$B" --fail-on-count 0
one_line_error 2 "bad --threads '99'" "$LP" heapdiff "$A" "$B" --threads 99
one_line_error 2 "unknown option '--frobnicate'" "$LP" heapdiff "$A" "$B" --frobnicate
one_line_error 2 "option '--top' needs a value" "$LP" heapdiff "$A" "$B" --top
one_line_error 6 "open '.*/missing.json': No such file or directory" "$LP" heapdiff "$A" "$T/missing.json"
one_line_error 6 "read '.*': is a directory" "$LP" heapdiff "$A" "$T"
printf 'hello\nworld\n' >"$T/text.txt"
expect_exit 2 "$LP" heapdiff "$A" "$T/text.txt"
grep -q "warning: '.*text.txt': 2 malformed lines skipped (first: line 1: not a JSON object)" <<<"$ERR" ||
	fail "no warning for a text file: $ERR"
grep -q "no objects in '.*text.txt': give a heap dump written by ObjectSpace.dump_all" <<<"$ERR" ||
	fail "no error for a text file: $ERR"
: >"$T/empty.json"
one_line_error 2 "no objects in '.*empty.json'" "$LP" heapdiff "$T/empty.json" "$B"
chmod 000 "$T/text.txt"
if [ "$(id -u)" != 0 ]; then
	one_line_error 6 "open '.*text.txt': Permission denied" "$LP" heapdiff "$A" "$T/text.txt"
fi
# --why needs sites, and a regular file to read twice
U1="$FIX/untraced.1.json" U2="$FIX/untraced.2.json"
one_line_error 2 "--why needs allocation sites, and '.*untraced.2.json' has no allocation info" \
	"$LP" heapdiff "$U1" "$U2" --why x.rb:1
one_line_error 2 "--why reads '.*' twice: give a regular file, not a pipe" \
	"$LP" heapdiff "$A" <(cat "$B") --why new.rb:2

# malformed lines: warned about, counted, not fatal; the rest is used
H="$FIX/hostile.1.json"
expect_exit 0 "$LP" heapdiff "$H" "$H"
[ "$(grep -c "malformed lines skipped (first: line 6: not a JSON object)" <<<"$ERR")" = 2 ] ||
	fail "hostile: warnings: $ERR"
grep -q "11 malformed lines" <<<"$ERR" || fail "hostile: count: $ERR"
expect_exit 0 "$LP" heapdiff "$H" "$H" --json
[ "$(json_get "$OUT" 'j["dumps"][0]["malformed_lines"]')" = 11 ] || fail "hostile json: $OUT"
[ "$(json_get "$OUT" 'j["dumps"][1]["first_malformed_line"]')" = 6 ] || fail "hostile json: $OUT"

# the output is clean text even when a dump names files with control bytes
expect_exit 0 "$LP" heapdiff "$FIX/escapes.1.json" "$FIX/escapes.2.json"
grep -q 'ctl??.*\.rb:2' <<<"$OUT" || fail "control bytes not replaced: $OUT"
[ "$(printf '%s' "$OUT" | tr -d '\n\t' | LC_ALL=C grep -c '[[:cntrl:]]')" = 0 ] ||
	fail "control bytes in the output: $OUT"
expect_exit 0 "$LP" heapdiff "$FIX/escapes.1.json" "$FIX/escapes.2.json" --json
[ "$(json_get "$OUT" 'j["rows"][0]["file"]')" = 'dir/café "q".rb' ] || fail "escapes json: $OUT"

# stdout unwritable: exit 6
if [ -w /dev/full ]; then
	"$LP" heapdiff "$A" "$B" --json >/dev/full 2>"$T/err"; rc=$?
	[ $rc = 6 ] || fail "stdout on /dev/full: exit $rc, want 6"
	grep -q "writing to standard output" "$T/err" || fail "/dev/full: $(cat "$T/err")"
fi

expect_exit 0 "$LP" heapdiff --help
for o in --top --by --why --json --fail-on-count --fail-on-bytes --threads OLD NEW LATER; do
	grep -q -- "$o" <<<"$OUT" || fail "--help does not mention $o"
done
expect_exit 0 "$LP" help heapdiff
grep -q "usage: leakprobe heapdiff" <<<"$OUT" || fail "help heapdiff: $OUT"
echo ok
