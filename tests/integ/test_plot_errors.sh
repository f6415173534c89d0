#!/bin/bash
# plot on bad input: one-line errors "leakprobe: plot: ...", exit 2 for
# usage (unknown metric, bad time, no samples), 4 when gnuplot is missing
# or fails, 6 for unreadable input or unwritable output; no file left.
. "$(dirname "$0")/lib.sh"
command -v gnuplot >/dev/null || skip "gnuplot not installed (package gnuplot-nox)"

one_line_error() {
	local code=$1 re=$2; shift 2
	expect_exit "$code" "$@"
	[ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "not one line from $*: $ERR"
	grep -q "^leakprobe: plot: " <<<"$ERR" || fail "no 'leakprobe: plot:' prefix: $ERR"
	grep -Eq -- "$re" <<<"$ERR" || fail "error for $* does not match '$re': $ERR"
}

mkdir "$T/d"
cat >"$T/d/w.csv" <<'CSV'
time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss,swap,event
2026-11-21T12:00:00.000+0000,100,ruby,1048576,1,1,1,1,1,1,0,
2026-11-21T12:00:01.000+0000,100,ruby,2097152,1,1,1,1,1,1,0,
CSV

one_line_error 2 "unknown metric 'heap'; valid: rss pss uss heap_rss heap_size arena_rss anon_rss swap" \
	"$LP" plot "$T/d/w.csv" --metric heap
one_line_error 2 "unknown metric 'bogus'" "$LP" plot "$T/d/w.csv" -m rss,bogus
one_line_error 2 "bad --from 'yesterday'" "$LP" plot "$T/d/w.csv" --from yesterday
one_line_error 2 "bad --to '25:00'" "$LP" plot "$T/d/w.csv" --to 25:00
one_line_error 2 "--from is after --to" "$LP" plot "$T/d/w.csv" \
	--from 2026-11-21T12:00:01Z --to 2026-11-21T12:00:00Z
one_line_error 2 "no samples in '.*w.csv' between" "$LP" plot "$T/d/w.csv" --from 2030-01-01
one_line_error 2 "pid 7 has no samples in '.*w.csv'.*pids there: 100" "$LP" plot "$T/d/w.csv" --pid 7
one_line_error 2 "must end in .svg or .png" "$LP" plot "$T/d/w.csv" -o "$T/d/w.pdf"
one_line_error 2 "no watch file given" "$LP" plot
cp "$T/d/w.csv" "$T/d/x.svg"
one_line_error 2 "output '.*x.svg' is the input file" "$LP" plot "$T/d/x.svg"
cmp -s "$T/d/w.csv" "$T/d/x.svg" || fail "input overwritten"
rm "$T/d/x.svg"
printf 'a,b\n1,2\n' >"$T/d/other.csv"
one_line_error 2 "is not a leakprobe watch file" "$LP" plot "$T/d/other.csv"
one_line_error 6 "open '.*/missing.csv': No such file" "$LP" plot "$T/d/missing.csv"
one_line_error 6 "cannot create '/nonexistent/x.svg'" "$LP" plot "$T/d/w.csv" -o /nonexistent/x.svg

# No gnuplot on PATH: exit 4, naming the package.
one_line_error 4 "gnuplot not found in PATH; install the package gnuplot-nox" \
	env PATH=/nonexistent "$LP" plot "$T/d/w.csv"
# gnuplot failing: exit 4 with its message; the half-made output removed.
mkdir "$T/bin"
printf '#!/bin/sh\ncat >/dev/null\necho "line 9: all gone wrong" >&2\nexit 1\n' >"$T/bin/gnuplot"
chmod +x "$T/bin/gnuplot"
one_line_error 4 "gnuplot failed \(exit 1\): line 9: all gone wrong" \
	env PATH="$T/bin:$PATH" "$LP" plot "$T/d/w.csv"

left=$(cd "$T/d" && ls -A | sort | tr '\n' ' ')
[ "$left" = "other.csv w.csv " ] || fail "files left behind: $left"

# HH:MM[:SS] means that time on the day of the first sample (local time;
# pinned to UTC here, the zone of the rows).
expect_exit 0 env TZ=UTC "$LP" plot "$T/d/w.csv" --from 12:00:00.5 -o "$T/d/hm.svg"
[ "$OUT" = "wrote $T/d/hm.svg (4 series, 4 points)" ] || fail "HH:MM range: $OUT"
rm -f "$T/d/hm.svg"

expect_exit 0 "$LP" plot --help
for o in --output --from --to --metric --pid gnuplot-nox HH:MM; do
	grep -q -- "$o" <<<"$OUT" || fail "--help does not mention $o"
done
echo ok
