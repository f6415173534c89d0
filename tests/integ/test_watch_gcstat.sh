#!/bin/bash
# watch --gc-stat: GC.stat columns from a helper thread in a real Ruby
# target.  The values are plausible, fresh reports keep coming, appends
# keep one kind of header, plot draws the counts, and the helper thread
# is gone after every end of the watch: --count, SIGINT, SIGKILL of
# leakprobe, the target exiting.  Non-Ruby targets and --all are refused.
# Waits are bounded polls for a state change (thread count), no sleeps.
. "$(dirname "$0")/lib.sh"

H="time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss,swap,event"
G="live_slots,heap_pages,malloc_increase,gc_count,major_gc_count,allocated_objects,freed_objects"

threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }

# wait_threads PID N: until PID has N threads (at most 60 s: the helper
# ends within one interval of leakprobe going away, and Ruby keeps an
# ended thread's native thread for a few seconds).
wait_threads() {
	local i
	for i in $(seq 1200); do
		[ "$(threads_of "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	fail "pid $1 has $(threads_of "$1") threads, expected $2 again: the GC.stat helper did not end"
}

# check_csv FILE PID: every row of PID has all 19 columns and plausible
# GC.stat values; gc_count never goes down.
check_csv() {
	awk -F, -v pid="$2" '
		NR == 1 { next }
		$2 != pid { next }
		{
			n++
			if (NF != 19) { print "columns: " $0; bad = 1; next }
			if ($13 <= 1000) { print "live_slots: " $0; bad = 1 }
			if ($14 <= 0) { print "heap_pages: " $0; bad = 1 }
			if ($17 > $16) { print "major > count: " $0; bad = 1 }
			if ($19 > $18) { print "freed > allocated: " $0; bad = 1 }
			if ($16 < last) { print "gc_count went down: " $0; bad = 1 }
			last = $16
		}
		END { if (!n) print "no rows"; exit bad || !n }' "$1" ||
		fail "bad GC.stat rows in $1"
}

start_target leaks.rb
pid=$TARGET_PID
base=$(threads_of "$pid")
echo "threads before any session: $base"

# --- usage and target errors: nothing starts in the target
expect_exit 2 "$LP" watch --gc-stat --all --count 1
grep -q "^leakprobe: watch: --gc-stat needs the PIDs of Ruby processes, not --all" <<<"$ERR" ||
	fail "message: $ERR"
sleep 600 & sl=$!
_pids="$_pids $sl"
expect_exit 3 "$LP" watch --gc-stat --count 1 "$sl"
[ "$(wc -l <<<"$ERR")" -eq 1 ] || fail "not one line: $ERR"
grep -q "^leakprobe: watch: process $sl (.*) is not a Ruby (MRI) process" <<<"$ERR" ||
	fail "message: $ERR"
# A Ruby and a non-Ruby pid: refused at the start, no file, and the
# session already started in the Ruby one is ended.
expect_exit 3 "$LP" watch --gc-stat --count 1 -o "$T/mixed.csv" "$pid" "$sl"
[ ! -e "$T/mixed.csv" ] || fail "output created although the watch was refused"
wait_threads "$pid" "$base"
target_ok "$pid"
kill "$sl"

# --- a watch by count: columns, values, thread and files gone after
expect_exit 0 "$LP" watch --gc-stat --count 5 --interval 0.1 -o "$T/g.csv" "$pid"
[ "$(head -n 1 "$T/g.csv")" = "$H,$G" ] || fail "header: $(head -n 1 "$T/g.csv")"
[ "$(grep -c "^[^,]*,$pid," "$T/g.csv")" -eq 5 ] || fail "expected 5 rows: $(cat "$T/g.csv")"
check_csv "$T/g.csv" "$pid"
grep -q "live_slots .* -> .*GC" <<<"$ERR" || fail "no GC line in the summary: $ERR"
wait_threads "$pid" "$base"
target_ok "$pid"

# Appending: same columns only; the other kind is refused before anything
# starts in the target (its thread count does not move) and the file is
# left as it was.
expect_exit 0 "$LP" watch --gc-stat --count 2 --interval 0.1 -o "$T/g.csv" "$pid"
[ "$(grep -c '^time,' "$T/g.csv")" -eq 1 ] || fail "header repeated"
[ "$(grep -c "^[^,]*,$pid," "$T/g.csv")" -eq 7 ] || fail "expected 7 rows"
check_csv "$T/g.csv" "$pid"
wait_threads "$pid" "$base"
cp "$T/g.csv" "$T/g.orig"
expect_exit 2 "$LP" watch --count 1 -o "$T/g.csv" "$pid"
grep -q "holds rows with GC.stat columns; add --gc-stat" <<<"$ERR" || fail "message: $ERR"
cmp -s "$T/g.csv" "$T/g.orig" || fail "refused file modified"
expect_exit 0 "$LP" watch --count 2 --interval 0.1 -o "$T/p.csv" "$pid"
cp "$T/p.csv" "$T/p.orig"
expect_exit 2 "$LP" watch --gc-stat --count 1 -o "$T/p.csv" "$pid"
grep -q "holds rows without GC.stat columns; drop --gc-stat" <<<"$ERR" || fail "message: $ERR"
[ "$(threads_of "$pid")" = "$base" ] || fail "a helper started although the output was refused"
cmp -s "$T/p.csv" "$T/p.orig" || fail "refused file modified"
target_ok "$pid"

# JSON lines carry the same fields.
expect_exit 0 "$LP" watch --gc-stat --count 3 --interval 0.1 -o "$T/g.jsonl" "$pid"
"$RUBY" -rjson -e '
	ARGF.each_line do |l|
		r = JSON.parse(l)
		%w[live_slots heap_pages malloc_increase gc_count major_gc_count
		   allocated_objects freed_objects].each { |k| r[k].is_a?(Integer) or abort("#{k}: #{l}") }
		r["live_slots"] > 1000 or abort(l)
	end' "$T/g.jsonl" || fail "bad JSON lines: $(cat "$T/g.jsonl")"
[ "$(wc -l <"$T/g.jsonl")" -eq 3 ] || fail "expected 3 JSON lines"
wait_threads "$pid" "$base"

# plot reads the GC columns: counts on a 'count' axis, not in MiB; with
# memory too, on a second axis.  A file without them is refused.
expect_exit 0 "$LP" plot "$T/g.csv" --metric live_slots,gc_count -o "$T/c.svg"
grep -q ">count<" "$T/c.svg" || fail "no 'count' axis label"
grep -q ">MiB<" "$T/c.svg" && fail "counts drawn against a MiB axis"
expect_exit 0 "$LP" plot "$T/g.jsonl" -m rss -m allocated_objects -o "$T/m.svg"
grep -q ">count<" "$T/m.svg" && grep -q ">MiB<" "$T/m.svg" || fail "mixed plot lacks an axis"
expect_exit 2 "$LP" plot "$T/p.csv" --metric live_slots -o "$T/x.svg"
grep -q "has no live_slots values (no GC.stat columns); record them with 'leakprobe watch --gc-stat PID'" <<<"$ERR" ||
	fail "message: $ERR"
[ ! -e "$T/x.svg" ] || fail "image written for a refused plot"

# --- SIGINT mid-watch: read rows until a fresh report has come in (the
# helper allocates for each one), then stop.
mkfifo "$T/rows"
"$LP" watch --gc-stat --interval 0.05 "$pid" >"$T/rows" 2>"$T/err" & wpid=$!
exec 4<"$T/rows"
read -r -t 60 -u 4 line || fail "no header: $(cat "$T/err")"
read -r -t 60 -u 4 first || fail "no first row: $(cat "$T/err")"
[ "$(threads_of "$pid")" -gt "$base" ] || fail "no helper thread in the target during the watch"
fresh=0
for i in $(seq 1200); do
	read -r -t 60 -u 4 row || fail "watch stopped: $(cat "$T/err")"
	if [ "$(cut -d, -f18 <<<"$row")" != "$(cut -d, -f18 <<<"$first")" ]; then
		fresh=1
		break
	fi
done
[ "$fresh" = 1 ] || fail "GC.stat never changed in 1200 rows"
kill -INT "$wpid"
cat <&4 >/dev/null
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc after SIGINT: $(cat "$T/err")"
wait_threads "$pid" "$base"
target_ok "$pid"

# --- SIGKILL of leakprobe mid-watch: the helper sees EPIPE and ends.
"$LP" watch --gc-stat --interval 0.05 "$pid" >"$T/rows" 2>"$T/err" & wpid=$!
exec 4<"$T/rows"
read -r -t 60 -u 4 line && read -r -t 60 -u 4 line || fail "no rows: $(cat "$T/err")"
[ "$(threads_of "$pid")" -gt "$base" ] || fail "no helper thread in the target during the watch"
kill -9 "$wpid"
wait "$wpid" 2>/dev/null
exec 4<&-
wait_threads "$pid" "$base"
alive "$pid" || fail "target died"
[ "$(tracer_of "$pid")" = 0 ] || fail "target left traced"
[ "$(our_pages "$pid")" = 0 ] || fail "target maps a leakprobe page"
[ -z "$(ls -d /tmp/leakprobe."$pid".* 2>/dev/null)" ] || fail "channel directory left behind"
# The lock file of the killed run stays (flock is released by the kernel);
# the next run takes it over and removes it.
expect_exit 0 "$LP" watch --gc-stat --count 1 "$pid"
wait_threads "$pid" "$base"
target_ok "$pid"

# --- a target exits mid-watch: one exit row with empty GC columns, no
# warning about its reporter, the other process goes on.
mkfifo "$T/cmd"
start_target steady.rb "$T/cmd"; p2=$TARGET_PID
"$LP" watch --gc-stat --interval 0.05 "$pid" "$p2" >"$T/rows" 2>"$T/err" & wpid=$!
exec 4<"$T/rows"
read -r -t 60 -u 4 line || fail "no header: $(cat "$T/err")"
[ "$line" = "$H,$G" ] || fail "header: $line"
for i in 1 2 3 4; do
	read -r -t 60 -u 4 line || fail "no row $i: $(cat "$T/err")"
	printf '%s\n' "$line" >>"$T/all"
done
echo exit >"$T/cmd"
seen_exit=0 after=0
while [ "$after" -lt 3 ]; do
	read -r -t 60 -u 4 line || fail "watch stopped early: $(cat "$T/err")"
	printf '%s\n' "$line" >>"$T/all"
	if [ "$(cut -d, -f2 <<<"$line")" = "$p2" ]; then
		case $line in *,exit,,,,,,,) seen_exit=1;; *,exit,*) fail "exit row with GC values: $line";; esac
	elif [ "$seen_exit" = 1 ]; then
		after=$((after + 1))
	fi
done
kill -INT "$wpid"
cat <&4 >>"$T/all"
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc: $(cat "$T/err")"
grep -q "pid $p2 (.*) exited" "$T/err" || fail "no exit line: $(cat "$T/err")"
grep -q "reporter thread ended" "$T/err" && fail "reporter warning for an exit: $(cat "$T/err")"
(echo "$H,$G"; cat "$T/all") | grep -v ',exit,' >"$T/all.csv"
check_csv "$T/all.csv" "$pid"
check_csv "$T/all.csv" "$p2"
wait_threads "$pid" "$base"
target_ok "$pid"
[ "$(stray_files "$p2")" = 0 ] || fail "files of the exited target left behind"
echo ok
