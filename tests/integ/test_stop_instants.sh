# leakprobe SIGSTOPped (which it cannot catch) at each instant N of an
# attach (LEAKPROBE_TEST_STOP_AT=N: after each ptrace request, wait and
# remote write of the injection, and when a step is seen done), for
# N = 1, 2, ... until a run completes without stopping.  At each instant
# the target's main thread is either free and keeps writing its
# heartbeat (lines written after leakprobe stopped arrive: the real
# signal), or held in a ptrace stop of ours (state "t" in /proc, tracer
# leakprobe) -- which may only happen at the few instants of one stop
# (seize, interrupt, the stop seen, frame and registers written: at
# most 8 in a row), never while a step runs: a design that watched its
# steps would hold the thread for the whole injection.  Then SIGCONT: the
# run completes (exit 0), the target is alive, untraced, and has no page
# of ours left.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/beat"
exec 5<>"$T/beat"	# held open both ways: the target never sees EOF
start_target heartbeat.rb "$T/beat"
pid=$TARGET_PID

state_of() { sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1; }
main_state() { state_of "$pid/task/$pid"; }

# beat_after T: read heartbeat lines until one was written after T
# (bash realtime); 1 when none comes within 5 s (a failure bound)
beat_after() {
	local t=$1 seq ts
	while read -r -t 5 seq ts <&5; do
		awk -v a="$ts" -v b="$t" 'BEGIN { exit !(a > b + 0.02) }' &&
			return 0
	done
	return 1
}

held=0 free=0 n=0 done_at=0 run=0 maxrun=0
for n in $(seq 1 400); do
	LEAKPROBE_TEST_STOP_AT=$n "$LP" attach "$pid" --eval nil --times 1 \
		--timeout 20 >"$T/out.$n" 2>&1 &
	lpid=$!
	# wait for leakprobe to be stopped, or to finish (then every
	# instant has been covered)
	st=""
	for _ in $(seq 1 5000); do
		st=$(state_of "$lpid")
		[ "$st" = T ] || [ -z "$st" ] || [ "$st" = Z ] && break
		sleep 0.001
	done
	if [ "$st" != T ]; then
		wait "$lpid"; rc=$?
		[ $rc -eq 0 ] || fail "run without a stop exited $rc: $(cat "$T/out.$n")"
		done_at=$n
		break
	fi
	t=$EPOCHREALTIME
	if [ "$(main_state)" = t ]; then
		# held: only inside a stop, and leakprobe is its tracer
		grep -q "^TracerPid:[[:space:]]*$lpid\$" "/proc/$pid/status" ||
			fail "instant $n: main thread in a ptrace stop, not ours"
		held=$((held + 1)) run=$((run + 1))
		[ $run -gt $maxrun ] && maxrun=$run
		echo "instant $n: inside a stop (main thread held)"
	else
		beat_after "$t" ||
			fail "instant $n: leakprobe stopped, the main thread (state $(main_state)) wrote no heartbeat"
		free=$((free + 1)) run=0
	fi
	kill -CONT "$lpid"
	wait "$lpid"; rc=$?
	[ $rc -eq 0 ] || fail "instant $n: after SIGCONT leakprobe exited $rc: $(cat "$T/out.$n")"
	alive "$pid" || fail "instant $n: target died"
	beat_after "$EPOCHREALTIME" || fail "instant $n: no heartbeat after the run"
	grep -q "^TracerPid:[[:space:]]*0\$" "/proc/$pid/status" ||
		fail "instant $n: target still traced"
done
[ "$done_at" -gt 20 ] || fail "only $done_at instants: the hook did not cover the injection"
[ $maxrun -le 8 ] || fail "main thread held at $maxrun instants in a row"
[ $free -ge 8 ] || fail "free at only $free instants"
grep -c rwxs "/proc/$pid/maps" | grep -qx 0 || fail "a code page was left"
echo "stopped at each of $((done_at - 1)) instants: main thread free at $free, held inside a stop at $held (at most $maxrun in a row)"
