#!/bin/bash
# A watched process that exits mid-watch is reported once (one exit row,
# one stderr line); watch goes on with the other and exits 0 when none is
# left.  The targets exit when the test writes to their FIFO, after watch
# has printed rows: no sleeps.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/cmd1" "$T/cmd2" "$T/rows"
start_target steady.rb "$T/cmd1"; p1=$TARGET_PID
start_target steady.rb "$T/cmd2"; p2=$TARGET_PID

"$LP" watch --interval 0.05 --format jsonl "$p1" "$p2" >"$T/rows" 2>"$T/err" &
wpid=$!
exec 4<"$T/rows"
pid_of() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$1"; }

# Two rows of each before p1 goes.
for i in 1 2 3 4; do
	read -r -t 60 -u 4 line || fail "watch printed no row $i"
	printf '%s\n' "$line" >>"$T/all"
done
grep -q "\"pid\":$p1," "$T/all" && grep -q "\"pid\":$p2," "$T/all" || fail "not both pids: $(cat "$T/all")"
echo exit >"$T/cmd1"

# Read until p1's exit row, then until p2 has three more rows.
seen_exit=0 after=0
while [ "$after" -lt 3 ]; do
	read -r -t 60 -u 4 line || fail "watch stopped early: $(cat "$T/err")"
	printf '%s\n' "$line" >>"$T/all"
	if [ "$(pid_of "$line")" = "$p1" ]; then
		[ "$seen_exit" -eq 0 ] || fail "row for $p1 after its exit: $line"
		case $line in *'"event":"exit"'*) seen_exit=1;; esac
	elif [ "$seen_exit" -eq 1 ]; then
		after=$((after + 1))
	fi
done
alive "$wpid" || fail "watch ended with p2 still running"

echo exit >"$T/cmd2"
timeout 60 cat <&4 >>"$T/all"
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc: $(cat "$T/err")"

for p in "$p1" "$p2"; do
	n=$(grep -c "\"pid\":$p,.*\"event\":\"exit\"" "$T/all")
	[ "$n" -eq 1 ] || fail "pid $p: $n exit rows"
	n=$(grep -c "pid $p (.*) exited" "$T/err")
	[ "$n" -eq 1 ] || fail "pid $p: $n exit lines on stderr: $(cat "$T/err")"
done
# Every line is one JSON object (jq-free check with ruby's JSON).
"$RUBY" -rjson -e 'ARGF.each_line { |l| JSON.parse(l).is_a?(Hash) or abort("not an object: #{l}") }' "$T/all" ||
	fail "malformed JSON lines"
# The summary marks both as exited.
[ "$(grep -c ", exited$" "$T/err")" -eq 2 ] || fail "summary: $(cat "$T/err")"
echo ok
