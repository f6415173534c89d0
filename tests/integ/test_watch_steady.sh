#!/bin/bash
# watch on a busy Ruby process that does not leak shows no growth, and
# --count ends the watch on its own after exactly that many samples.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/cmd"
start_target steady.rb "$T/cmd"
pid=$TARGET_PID

expect_exit 0 "$LP" watch --count 10 --interval 0.1 "$pid"
[ "$(printf '%s\n' "$OUT" | head -n 1)" = "time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss,swap,event" ] ||
	fail "no CSV header: $OUT"
rows=$(printf '%s\n' "$OUT" | tail -n +2)
[ "$(printf '%s\n' "$rows" | wc -l)" -eq 10 ] || fail "expected 10 rows: $OUT"
printf '%s\n' "$rows" | awk -F, -v pid="$pid" '
	$2 != pid || NF != 12 || $12 != "" { print "bad row: " $0; bad = 1 }
	$4 == 0 || $7 == 0 { print "zero rss/heap: " $0; bad = 1 }
	END { exit bad }' || fail "malformed rows"
alive "$pid" || fail "target died"

# heap+arena+anon and rss stay flat within 2 MiB (page-granular noise of
# a process that allocates and frees all the time).
printf '%s\n' "$rows" | awk -F, '
	{ h = $7 + $9 + $10; r = $4
	  if (NR == 1 || h < hmin) hmin = h; if (h > hmax) hmax = h
	  if (NR == 1 || r < rmin) rmin = r; if (r > rmax) rmax = r }
	END { printf "heap+arena+anon spread %d, rss spread %d\n", hmax - hmin, rmax - rmin
	      exit !(hmax - hmin < 2097152 && rmax - rmin < 2097152) }' ||
	fail "steady target shows growth: $rows"

# The summary says so too: +0 or a few KiB, no MiB.
grep -q "first -> last" <<<"$ERR" || fail "no summary: $ERR"
grep "heap+arena+anon" <<<"$ERR" | grep -q "[+-][0-9.]* MiB  " &&
	fail "summary reports MiB growth for a steady process: $ERR"

# --duration ends on its own too: samples at 0, 0.1, 0.2, 0.3 s (fewer
# only if sampling overran the schedule on a loaded machine).
expect_exit 0 "$LP" watch --duration 0.3 --interval 0.1 "$pid"
n=$(printf '%s\n' "$OUT" | grep -c "^[^,]*,$pid,")
[ "$n" -ge 1 ] && [ "$n" -le 4 ] || fail "--duration 0.3 --interval 0.1 gave $n rows"

# SIGTERM ends an open-ended watch cleanly: exit 0, whole rows, summary.
mkfifo "$T/rows"
"$LP" watch --interval 0.05 "$pid" >"$T/rows" 2>"$T/err" &
wpid=$!
exec 4<"$T/rows"
for i in 1 2 3; do read -r -t 60 -u 4 line || fail "no row $i"; done
kill -TERM "$wpid"
timeout 60 cat <&4 >"$T/rest"
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc on SIGTERM: $(cat "$T/err")"
awk -F, 'NF != 12 { bad = 1 } END { exit bad }' "$T/rest" || fail "torn rows after SIGTERM"
grep -q "first -> last" "$T/err" || fail "no summary after SIGTERM: $(cat "$T/err")"
alive "$pid" || fail "target died"
echo ok
