# Robustness: 200 back-to-back runs; SIGINT/SIGTERM at 50 random instants;
# a second leakprobe on a target being probed.
. "$(dirname "$0")/lib.sh"

start_target leaks.rb
pid=$TARGET_PID

# Warm once: glibc keeps an arena and a thread stack cache after the first
# helper thread; later runs must reuse them, not grow the maps.
"$LP" attach "$pid" --eval nil --times 1 >/dev/null || fail "first run"
before=$(wc -l <"/proc/$pid/maps")
for i in $(seq 200); do
	"$LP" attach "$pid" --eval nil --times 1 -q >/dev/null 2>"$T/err" ||
		fail "run $i failed: $(cat "$T/err")"
done
after=$(wc -l <"/proc/$pid/maps")
echo "maps: $before mappings after the first run, $after after 200 more"
[ "$after" -le "$before" ] || fail "maps grew from $before to $after"
target_ok "$pid"

# Signals at random instants of a run.  Allowed outcomes: finished (0),
# interrupted (4), or killed by the signal before leakprobe installed its
# handlers (130/143: it had not touched the target yet); the target is
# alive, untraced and unchanged each time.
for i in $(seq 50); do
	if [ $((i % 2)) = 0 ]; then sig=INT; else sig=TERM; fi
	"$LP" attach "$pid" --eval '"x" * 64' --times 3000 --batch 100 \
		--warmup 1 >/dev/null 2>"$T/err" & lp=$!
	sleep "0.$(printf '%03d' $((RANDOM % 400)))"
	kill -s "$sig" "$lp" 2>/dev/null
	wait "$lp"; rc=$?
	case $rc in 0|4|130|143) ;; *) fail "trial $i ($sig): exit $rc: $(cat "$T/err")";; esac
	alive "$pid" || fail "trial $i: target died"
	[ "$(tracer_of "$pid")" = 0 ] || fail "trial $i: target left traced"
	# running or sleeping is fine (its main thread may be finishing the
	# job); stopped (T, t) or dead (Z) is not
	st=$(state_of "$pid")
	case $st in R|S|D) ;; *) fail "trial $i: target state $st";; esac
	[ "$(stray_files "$pid")" = 0 ] || fail "trial $i: files left behind"
done
# A page defused by an interrupted run is reclaimed by the next run.
expect_exit 0 "$LP" attach "$pid" --eval nil --times 1
target_ok "$pid"

# A second leakprobe on a target being probed is refused.
mkfifo "$T/lp.out"
# The first one runs until interrupted (minutes of batches), so however
# slowly the second starts, the first still holds the target.
"$LP" attach "$pid" --eval 'sleep 0.01' --times 100000 --batch 10 \
	--no-control >"$T/lp.out" 2>&1 & first=$!
exec 6<"$T/lp.out"
read -r line <&6	# "attached to ...": the first one holds the target
expect_exit 3 "$LP" attach "$pid" --eval nil
grep -q 'already being probed by leakprobe' <<<"$ERR" || fail "$ERR"
kill -INT "$first"
cat <&6 >/dev/null
wait "$first"; rc=$?
[ "$rc" = 4 ] || fail "first run: exit $rc after SIGINT"
exec 6<&-
target_ok "$pid"
expect_exit 0 "$LP" attach "$pid" --eval nil --times 1

# The target dies in the middle of a run: a clear error (3), nothing left.
start_target leaks.rb
p2=$TARGET_PID
mkfifo "$T/lp2.out"
"$LP" attach "$p2" --eval 'sleep 0.01' --times 1000 --batch 10 \
	--no-control >"$T/lp2.out" 2>"$T/lp2.err" & l2=$!
exec 8<"$T/lp2.out"
read -r _ <&8	# "attached to ...": batches are running
kill -9 "$p2"
cat <&8 >/dev/null
exec 8<&-
wait "$l2"; rc=$?
[ "$rc" = 3 ] || fail "target exit: exit $rc: $(cat "$T/lp2.err")"
grep -qE "process $p2 exited|pid $p2: no such process" "$T/lp2.err" || fail "message: $(cat "$T/lp2.err")"
[ "$(stray_files "$p2")" = 0 ] || fail "files left after the target died"

# The target exits by itself in the middle of a run (SIGTERM: Ruby kills
# its threads, the helper's among them, then exits): 3 as well, not a
# helper error.
start_target leaks.rb
p3=$TARGET_PID
mkfifo "$T/lp3.out"
"$LP" attach "$p3" --eval 'sleep 0.01' --times 1000 --batch 10 \
	--no-control >"$T/lp3.out" 2>"$T/lp3.err" & l3=$!
exec 8<"$T/lp3.out"
read -r _ <&8
kill -TERM "$p3"
cat <&8 >/dev/null
exec 8<&-
wait "$l3"; rc=$?
[ "$rc" = 3 ] || fail "target SIGTERM: exit $rc: $(cat "$T/lp3.err")"
grep -qE "process $p3 exited|pid $p3: no such process" "$T/lp3.err" || fail "message: $(cat "$T/lp3.err")"
[ "$(stray_files "$p3")" = 0 ] || fail "files left after the target exited"
echo ok
