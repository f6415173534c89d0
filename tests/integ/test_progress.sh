# What a terminal user sees: on a terminal (script(1) gives one), attach,
# bisect and heapdump rewrite one progress line on stderr with \r, clear
# it, and end with the result, with no per-batch table; with -v, or with
# stdout not a terminal, the table appears under a one-line legend and no
# progress line is drawn.
. "$(dirname "$0")/lib.sh"
command -v script >/dev/null || skip "script (util-linux) not found"

start_target leaks.rb
pid=$TARGET_PID
CR=$'\r'
CLR=$'\r\033[K'
printf '# step: a\nnil\n# step: b\n[1].map { |x| x }\n' >"$T/steps.rb"

# on_tty FILE CMD...: run CMD on a pseudo-terminal (stdout and stderr),
# everything it wrote into FILE; its exit status
on_tty() {
	local f=$1; shift
	script -qec "$(printf '%q ' "$@")" /dev/null </dev/null >"$f"
}

# ---- not a terminal: the table under its legend, no progress line
expect_exit 0 "$LP" attach "$pid" --eval nil --times 200
grep -q '^# kind ' <<<"$OUT" || fail "no legend: $OUT"
[ "$(grep -n '^# kind ' <<<"$OUT" | cut -d: -f1)" -lt "$(grep -n '^\(warmup\|measure\)' <<<"$OUT" | head -1 | cut -d: -f1)" ] ||
	fail "legend not above the table: $OUT"
[ "$(grep -c '^# kind ' <<<"$OUT")" = 1 ] || fail "legend twice: $OUT"
grep -q '^measure ' <<<"$OUT" || fail "no table: $OUT"
grep -q "$CR" "$T/out" "$T/err" && fail "progress line in a file: $(cat -A "$T/err")"
tail -n 1 <<<"$OUT" | grep -q 'no leak\|leak\|inconclusive' || fail "verdict not last: $OUT"

expect_exit 0 "$LP" bisect "$pid" --steps "$T/steps.rb" --times 200
grep -q '^# trial ' <<<"$OUT" || fail "bisect: no legend: $OUT"
grep -q '^trial  1: ' <<<"$OUT" || fail "bisect: no trial lines: $OUT"
grep -q "$CR" "$T/err" && fail "bisect: progress line in a file"

expect_exit 0 "$LP" heapdump "$pid" -o "$T/h.json"
grep -q "$CR" "$T/err" && fail "heapdump: progress line in a file"
grep -q '^heap dump of ' <<<"$OUT" || fail "heapdump: $OUT"

# ---- a terminal: the progress line, cleared, then the verdict; no table
on_tty "$T/tty" "$LP" attach "$pid" --eval '$t ||= []; $t << "x"' --times 2000 ||
	fail "attach on a terminal: $(cat -A "$T/tty")"
grep -q "${CR}attach $pid: .* of 2000 calls" "$T/tty" || fail "no progress line: $(cat -A "$T/tty")"
grep -q '# kind\|^measure \|^warmup ' "$T/tty" && fail "table on a terminal: $(cat -A "$T/tty")"
# the last progress line is cleared, and the verdict follows it
all=$(cat "$T/tty")
last=${all##*"$CLR"}
grep -q 'leak' <<<"$last" || fail "verdict not after the cleared line: $(cat -A "$T/tty")"
grep -q "attach $pid:" <<<"$last" && fail "a progress line after the verdict: $(cat -A "$T/tty")"

on_tty "$T/tty" "$LP" bisect "$pid" --steps "$T/steps.rb" --times 200 ||
	fail "bisect on a terminal: $(cat -A "$T/tty")"
grep -q "${CR}bisect $pid: trial 1 (a, b\|${CR}bisect $pid: trial 1 (a" "$T/tty" ||
	fail "bisect: no progress line: $(cat -A "$T/tty")"
grep -q '^trial  1:\|# trial' "$T/tty" && fail "bisect: table on a terminal: $(cat -A "$T/tty")"
grep -q 'no step leaks' "$T/tty" || fail "bisect: no result: $(cat -A "$T/tty")"

on_tty "$T/tty" "$LP" heapdump "$pid" -o "$T/h2.json" ||
	fail "heapdump on a terminal: $(cat -A "$T/tty")"
grep -q "${CR}heapdump $pid: .* received" "$T/tty" || fail "heapdump: no progress: $(cat -A "$T/tty")"
grep -qF "${CLR}heap dump of $pid" "$T/tty" || fail "heapdump: not cleared before the result: $(cat -A "$T/tty")"

# ---- -v on a terminal: the table, no progress line
on_tty "$T/tty" "$LP" attach "$pid" --eval nil --times 200 -v ||
	fail "attach -v: $(cat -A "$T/tty")"
grep -q '^# kind ' "$T/tty" || fail "-v: no legend: $(cat -A "$T/tty")"
grep -q '^measure ' "$T/tty" || fail "-v: no table: $(cat -A "$T/tty")"
grep -q "${CR}attach $pid:" "$T/tty" && fail "-v: progress line too: $(cat -A "$T/tty")"

target_ok "$pid"
echo ok
