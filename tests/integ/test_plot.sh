#!/bin/bash
# plot draws a watch file with gnuplot: an SVG that parses as XML and
# holds every series, a PNG (checked by its signature), a default name
# derived from the input and the range, and nothing else left behind.
. "$(dirname "$0")/lib.sh"
command -v gnuplot >/dev/null || skip "gnuplot not installed (package gnuplot-nox)"
command -v xmllint >/dev/null || skip "xmllint not installed (package libxml2-utils)"

mkfifo "$T/cmd" "$T/ack" "$T/scmd"
start_target leaky_fiddle.rb "$T/cmd" "$T/ack"; leaky=$TARGET_PID
start_target steady.rb "$T/scmd"; steady=$TARGET_PID
mkdir "$T/d"

# A watch file that grows step by step: one sample, leak, one sample...
for i in 1 2 3 4 5; do
	expect_exit 0 "$LP" watch --count 1 -o "$T/d/mem.csv" "$leaky" "$steady"
	echo "leak 2048" >"$T/cmd"
	read -r -t 60 ack <"$T/ack" && [ "$ack" = leaked ] || fail "no ack"
done
[ "$(wc -l <"$T/d/mem.csv")" -eq 11 ] || fail "watch file: $(cat "$T/d/mem.csv")"

# Default: next to the input, FILE minus extension + .svg; rss of both.
expect_exit 0 "$LP" plot "$T/d/mem.csv"
[ "$OUT" = "wrote $T/d/mem.svg (2 series, 10 points)" ] || fail "stdout: $OUT"
[ -s "$T/d/mem.svg" ] || fail "no SVG"
xmllint --noout "$T/d/mem.svg" || fail "SVG does not parse as XML"
for p in "$leaky" "$steady"; do
	grep -q "pid $p ruby rss" "$T/d/mem.svg" || fail "no series for pid $p in the SVG"
done
grep -q "local time" "$T/d/mem.svg" || fail "no time axis label"
grep -q "MiB" "$T/d/mem.svg" || fail "no MiB axis label"
grep -q "$(hostname)" "$T/d/mem.svg" || fail "no host in the title"

# One process: where the memory went (rss, heap, arena, anon) by default.
expect_exit 0 "$LP" plot "$T/d/mem.csv" --pid "$leaky" -o "$T/d/one.svg"
xmllint --noout "$T/d/one.svg" || fail "SVG does not parse"
for m in rss heap_rss arena_rss anon_rss; do
	grep -q "pid $leaky ruby $m<" "$T/d/one.svg" || fail "no $m series"
done
grep -q "pid $steady" "$T/d/one.svg" && fail "--pid $leaky drew pid $steady"

# PNG with chosen metrics and pids.
expect_exit 0 "$LP" plot "$T/d/mem.csv" -o "$T/d/mem.png" --metric heap_rss,arena_rss \
	--metric swap -p "$leaky" --pid "$steady"
[ "$OUT" = "wrote $T/d/mem.png (6 series, 30 points)" ] || fail "stdout: $OUT"
[ "$(head -c 8 "$T/d/mem.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
	fail "not a PNG"

# The same pid twice is drawn once.
expect_exit 0 "$LP" plot "$T/d/mem.csv" -o "$T/d/one.svg" --pid "$leaky,$leaky" --pid "$leaky"
[ "$OUT" = "wrote $T/d/one.svg (4 series, 20 points)" ] || fail "stdout: $OUT"

# A range: default name carries it; only the samples inside are drawn.
# Lines 2k and 2k+1 hold sample k (leaky's row, then steady's).
t2=$(sed -n 4p "$T/d/mem.csv" | cut -d, -f1)    # sample 2, first row
t4=$(sed -n 9p "$T/d/mem.csv" | cut -d, -f1)    # sample 4, last row
expect_exit 0 "$LP" plot "$T/d/mem.csv" --from "$t2" --to "$t4"
s2=$(date -d "$t2" +%Y%m%dT%H%M%S); s4=$(date -d "$t4" +%Y%m%dT%H%M%S)
[ "$OUT" = "wrote $T/d/mem_from_${s2}_to_${s4}.svg (2 series, 6 points)" ] || fail "stdout: $OUT"
xmllint --noout "$T/d/mem_from_${s2}_to_${s4}.svg" || fail "ranged SVG does not parse"
t4=$(sed -n 8p "$T/d/mem.csv" | cut -d, -f1)    # sample 4, first row
s4=$(date -d "$t4" +%Y%m%dT%H%M%S)
expect_exit 0 "$LP" plot "$T/d/mem.csv" --from "$t4"
[ "$OUT" = "wrote $T/d/mem_from_${s4}.svg (2 series, 4 points)" ] || fail "stdout: $OUT"

# JSON lines work the same.
expect_exit 0 "$LP" watch --count 2 --interval 0.05 -o "$T/d/j.jsonl" "$leaky"
expect_exit 0 "$LP" plot "$T/d/j.jsonl"
xmllint --noout "$T/d/j.svg" || fail "SVG from JSONL does not parse"
grep -q "pid $leaky ruby heap_rss" "$T/d/j.svg" || fail "no series from JSONL"

# Nothing but the outputs is left.
left=$(cd "$T/d" && ls -A | sort | tr '\n' ' ')
want=$(printf '%s\n' j.jsonl j.svg mem.csv mem.png mem.svg "mem_from_${s2}_to_${s4}.svg" \
	"mem_from_${s4}.svg" one.svg | sort | tr '\n' ' ')
[ "$left" = "$want" ] || fail "files left: $left (want $want)"
echo ok
