#!/bin/bash
# watch on a Ruby process that leaks natively (Fiddle.malloc, never freed):
# the growth shows in [heap] (main thread) and in a malloc arena (worker
# thread), --smaps-diff names the mappings that grew, and when the target
# exits watch reports it once and exits 0.
. "$(dirname "$0")/lib.sh"

# CSV columns: 1 time 2 pid 3 comm 4 rss 5 pss 6 uss 7 heap_rss 8 heap_size
# 9 arena_rss 10 anon_rss 11 swap 12 event
col() { printf '%s\n' "$1" | cut -d, -f"$2"; }
ms_of() { date -d "$1" +%s%3N; }

mkfifo "$T/cmd" "$T/ack" "$T/rows"
start_target leaky_fiddle.rb "$T/cmd" "$T/ack"
pid=$TARGET_PID

"$LP" watch --interval 0.05 --smaps-diff "$pid" >"$T/rows" 2>"$T/watch.err" &
wpid=$!
exec 4<"$T/rows"
read -r -t 60 -u 4 header || fail "no header from watch"
[ "$header" = "time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss,swap,event" ] ||
	fail "unexpected header: $header"
# The first row was sampled before the leak: no leak was asked for yet.
read -r -t 60 -u 4 before || fail "no first row"
[ "$(col "$before" 2)" = "$pid" ] || fail "first row is not for pid $pid: $before"

echo "leak 16384" >"$T/cmd"           # 16 MiB in each thread
read -r -t 120 ack <"$T/ack" || fail "target did not acknowledge the leak"
[ "$ack" = leaked ] || fail "target said '$ack'"
ack_ms=$(date +%s%3N)

# The first row whose sample time is after the acknowledgement.
after=""
while read -r -t 60 -u 4 line; do
	[ "$(col "$line" 12)" = "" ] || fail "unexpected event row before exit: $line"
	if [ "$(ms_of "$(col "$line" 1)")" -gt "$ack_ms" ]; then after=$line; break; fi
done
[ -n "$after" ] || fail "no row sampled after the leak"

mib=$((1024 * 1024))
dheap=$(( $(col "$after" 7) - $(col "$before" 7) ))
darena=$(( $(col "$after" 9) - $(col "$before" 9) ))
drss=$(( $(col "$after" 4) - $(col "$before" 4) ))
echo "growth: heap $dheap arena $darena rss $drss"
[ "$dheap" -ge $((14 * mib)) ] || fail "[heap] grew only $dheap bytes (16 MiB leaked)"
[ "$darena" -ge $((14 * mib)) ] || fail "arena grew only $darena bytes (16 MiB leaked)"
[ "$drss" -ge $((28 * mib)) ] || fail "rss grew only $drss bytes (32 MiB leaked)"
# The heap's size follows its resident growth.
[ $(( $(col "$after" 8) - $(col "$before" 8) )) -ge $((14 * mib)) ] ||
	fail "[heap] Size did not grow"

# The target exits; watch writes one exit row and ends on its own.
echo exit >"$T/cmd"
rest=$(timeout 60 cat <&4)
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc: $(cat "$T/watch.err")"
nexit=$(printf '%s\n' "$rest" | grep -c ",exit$")
[ "$nexit" -eq 1 ] || fail "expected one exit row, got $nexit: $rest"
printf '%s\n' "$rest" | tail -n 1 | grep -q "^[^,]*,$pid,[^,]*,0,0,0,0,0,0,0,0,exit$" ||
	fail "last row is not pid $pid's exit row: $rest"
[ "$(grep -c "pid $pid (.*) exited" "$T/watch.err")" -eq 1 ] ||
	fail "exit not reported exactly once on stderr: $(cat "$T/watch.err")"
# Summary at the end: first -> last, growth per hour.
grep -q "first -> last" "$T/watch.err" || fail "no summary: $(cat "$T/watch.err")"
grep -q "heap+arena+anon .* +[0-9.]* [KMGT]iB/h" "$T/watch.err" ||
	fail "no growth per hour in the summary: $(cat "$T/watch.err")"
# --smaps-diff (to stderr, rows being on stdout): [heap] grew.
grep -q "pid $pid (.*): [0-9]* mappings\? changed" "$T/watch.err" ||
	fail "no smaps diff header: $(cat "$T/watch.err")"
grep -q "grew .*\[heap\]" "$T/watch.err" || fail "smaps diff does not show [heap] growing"
grep -q "grew .*<arena>" "$T/watch.err" || fail "smaps diff does not show the arena growing"
echo "ok"
