# A target that is not there as leakprobe starts: one that exits (SIGKILL)
# at random instants of leakprobe's start gets "process N exited" (or was
# killed, a zombie, or no such process: exit 3), never a reason that
# blames something else
# (no syscall instruction, the channel directory, ptrace permissions, not
# Ruby); a SIGSTOPped target is told to resume it, not to detach a tracer
# that does not exist.
. "$(dirname "$0")/lib.sh"

for i in $(seq ${LP_DYING_RUNS:-30}); do
	start_target leaks.rb
	pid=$TARGET_PID
	"$LP" attach "$pid" --eval nil --times 50 >/dev/null 2>"$T/err" & lp=$!
	# 0-30 ms: open, detection, channel, registration, the first batches
	sleep "0.0$(printf '%02d' $((RANDOM % 30)))"
	kill -9 "$pid"
	wait "$lp"; rc=$?
	err=$(cat "$T/err")
	case $rc in
	0) ;;	# done before the kill
	3) grep -qE "process $pid (exited|was killed by signal 9)|process $pid \(ruby\) is a zombie|no process with pid $pid|pid $pid: no such process" <<<"$err" ||
		fail "run $i: exit 3 with the wrong reason: $err";;
	*) fail "run $i: exit $rc: $err";;
	esac
	wait "$pid" 2>/dev/null
done

start_target leaks.rb
pid=$TARGET_PID
kill -STOP "$pid"
expect_exit 3 "$LP" attach "$pid" --eval nil
grep -q "is stopped; resume it with 'kill -CONT $pid'" <<<"$ERR" || fail "$ERR"
grep -q "tracer" <<<"$ERR" && fail "a stopped target is not traced: $ERR"
kill -CONT "$pid"
expect_exit 0 "$LP" attach "$pid" --eval nil --times 1
target_ok "$pid"
