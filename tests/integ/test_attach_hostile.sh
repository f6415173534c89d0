# Hostile conditions around a run (others are in test_attach_robust.sh and
# test_attach_errors.sh): the target stopped by someone else, two
# leakprobes started at the same instant, strace -f on the target, a main
# thread that blocks the wake signals, a target out of file descriptors,
# a full /tmp in the target's mount namespace.  Each: leakprobe's exit
# status and message, and the target unharmed.
. "$(dirname "$0")/lib.sh"

# --- SIGSTOP by someone else --------------------------------------------
start_target leaks.rb
pid=$TARGET_PID
kill -STOP "$pid"
for _ in $(seq 500); do [ "$(state_of "$pid")" = T ] && break; sleep 0.01; done
expect_exit 3 timeout 60 "$LP" attach "$pid" --eval nil --times 1 --timeout 3
grep -q "is stopped; resume it with 'kill -CONT $pid'" <<<"$ERR" || fail "stopped: $ERR"
grep -q 'tracer' <<<"$ERR" && fail "stopped, not traced: $ERR"
[ "$(state_of "$pid")" = T ] || fail "target no longer stopped: $(state_of "$pid")"
[ "$(tracer_of "$pid")" = 0 ] || fail "target left traced"
kill -CONT "$pid"
# stopped while leakprobe waits for a batch: it gives up at its timeout
# (timeout 60 only catches a hang), leaves the target stopped and untraced
mkfifo "$T/o"
"$LP" attach "$pid" --eval 'sleep 0.01' --times 100000 --batch 10 \
	--no-control --timeout 3 >"$T/o" 2>"$T/e" & l=$!
exec 6<"$T/o"
read -r _ <&6	# "attached to ...": batches are running
kill -STOP "$pid"
cat <&6 >/dev/null; exec 6<&-
wait "$l"; rc=$?
[ "$rc" = 4 ] || fail "stopped mid-run: exit $rc: $(cat "$T/e")"
grep -q 'timed out after 3.0 s' "$T/e" || fail "stopped mid-run: $(cat "$T/e")"
[ "$(state_of "$pid")" = T ] || fail "target no longer stopped after the run"
[ "$(tracer_of "$pid")" = 0 ] || fail "target left traced"
kill -CONT "$pid"
expect_exit 0 "$LP" attach "$pid" --eval nil --times 1
target_ok "$pid"
# stopped between two stops of leakprobe's start (leakprobe itself held
# at an instant where the main thread is free: LEAKPROBE_TEST_STOP_AT):
# its next stop is the group stop, never taken for its own; it lets go,
# says so (exit 3), and the target stays stopped, untraced
main_state() { state_of "$pid/task/$pid"; }
tested=0
for n in $(seq 1 40); do
	LEAKPROBE_TEST_STOP_AT=$n "$LP" attach "$pid" --eval nil --times 1 \
		--timeout 5 >"$T/mid" 2>&1 & l=$!
	st=""
	for _ in $(seq 1 5000); do
		st=$(state_of "$l")
		[ "$st" = T ] || [ -z "$st" ] || [ "$st" = Z ] && break
		sleep 0.001
	done
	[ "$st" = T ] || fail "leakprobe did not stop at instant $n: $(cat "$T/mid")"
	if [ "$(main_state)" = t ]; then	# held: not this instant
		kill -CONT "$l"; wait "$l"
		continue
	fi
	kill -STOP "$pid"
	for _ in $(seq 500); do [ "$(state_of "$pid")" = T ] && break; sleep 0.01; done
	kill -CONT "$l"
	wait "$l"; rc=$?
	[ "$rc" = 3 ] || fail "SIGSTOP at instant $n: exit $rc: $(cat "$T/mid")"
	grep -q "is stopped (SIGSTOP); resume it with 'kill -CONT $pid'" "$T/mid" ||
		fail "SIGSTOP at instant $n: $(cat "$T/mid")"
	[ "$(state_of "$pid")" = T ] || fail "target resumed at instant $n"
	[ "$(tracer_of "$pid")" = 0 ] || fail "target left traced at instant $n"
	kill -CONT "$pid"
	tested=1
	break
done
[ $tested = 1 ] || fail "no instant with the main thread free"
expect_exit 0 "$LP" attach "$pid" --eval nil --times 1
target_ok "$pid"

# --- two leakprobes at the same instant ----------------------------------
# both wait on one FIFO and exec together when a line each arrives (the
# FIFO is held open here, so a reader that opens late still finds its
# line): exactly one runs
mkfifo "$T/go"
exec 7<>"$T/go"
for i in 1 2; do
	bash -c 'read -r _ <"$1"; exec "$2" attach "$3" --eval nil --times 200 --batch 20' \
		x "$T/go" "$LP" "$pid" >"$T/two.$i" 2>&1 &
	eval "two$i=\$!"
done
# shellcheck disable=SC2154
while ! [ -e "/proc/$two1" ] || ! [ -e "/proc/$two2" ]; do :; done
printf 'go\ngo\n' >&7
wait "$two1"; r1=$?
wait "$two2"; r2=$?
exec 7>&-
case "$r1 $r2" in
	"0 3"|"3 0") ;;
	*) fail "two at once: exits $r1 and $r2: $(cat "$T/two.1" "$T/two.2")";;
esac
# refused by the lock, or, when the first one already holds the main
# thread, by its ptrace: either way the message names leakprobe
grep -qE 'already being probed by leakprobe|already traced by pid [0-9]+ \(leakprobe\) \(another leakprobe is probing it' \
	"$T/two.1" "$T/two.2" || fail "the refused one says: $(cat "$T/two.1" "$T/two.2")"
target_ok "$pid"

# --- strace -f on the target ---------------------------------------------
if command -v strace >/dev/null; then
	strace -f -p "$pid" -o /dev/null 2>/dev/null & st=$!
	for _ in $(seq 500); do [ "$(tracer_of "$pid")" != 0 ] && break; sleep 0.01; done
	expect_exit 3 "$LP" attach "$pid" --eval nil
	grep -q 'already traced by pid .*strace' <<<"$ERR" || fail "strace -f: $ERR"
	kill "$st"; wait "$st" 2>/dev/null
	for _ in $(seq 500); do [ "$(tracer_of "$pid")" = 0 ] && break; sleep 0.01; done
	# strace -f seizing every thread in the middle of a run: the run
	# goes on (its ptrace part is over) and ends normally
	mkfifo "$T/o2"
	"$LP" attach "$pid" --eval 'sleep 0.01' --times 300 --batch 10 \
		--no-control >"$T/o2" 2>"$T/e2" & l=$!
	exec 6<"$T/o2"
	read -r _ <&6
	strace -f -p "$pid" -o /dev/null 2>/dev/null & st=$!
	cat <&6 >/dev/null; exec 6<&-
	wait "$l"; rc=$?
	[ "$rc" = 0 ] || fail "strace -f mid-run: exit $rc: $(cat "$T/e2")"
	kill "$st"; wait "$st" 2>/dev/null
	for _ in $(seq 500); do [ "$(tracer_of "$pid")" = 0 ] && break; sleep 0.01; done
	expect_exit 0 "$LP" attach "$pid" --eval nil --times 1
	target_ok "$pid"
fi

# --- the main thread blocks SIGVTALRM and SIGCHLD -------------------------
# idle in a read, which either signal would interrupt: the job cannot
# start, and the message says why instead of blaming a long C call
start_target sigblock.rb read
sp=$TARGET_PID
grep -q '^SigBlk:.*' "/proc/$sp/status"
expect_exit 4 "$LP" attach "$sp" --eval nil --times 1 --timeout 3
grep -q 'blocks SIGVTALRM and SIGCHLD' <<<"$ERR" || fail "signals blocked: $ERR"
alive "$sp" || fail "target died"
[ "$(tracer_of "$sp")" = 0 ] || fail "target left traced"
[ "$(our_pages "$sp")" -le 1 ] || fail "more than one page of ours left"
[ "$(stray_files "$sp")" = 0 ] || fail "files left behind"
grep -v '^$' "$T/target.err" && fail "the target printed something"

# --- out of file descriptors ----------------------------------------------
start_target nofile.rb
np=$TARGET_PID
expect_exit 4 "$LP" attach "$np" --eval nil --times 1 --timeout 3
grep -q 'file descriptors open and may have 64 (ulimit -n)' <<<"$ERR" || fail "no fds: $ERR"
alive "$np" || fail "target died"
[ "$(tracer_of "$np")" = 0 ] || fail "target left traced"
[ "$(our_pages "$np")" -le 1 ] || fail "more than one page of ours left"
[ "$(stray_files "$np")" = 0 ] || fail "files left behind"
grep -v '^$' "$T/target.err" && fail "the target printed something"

# --- a full /tmp in the target's mount namespace --------------------------
# (a container's small tmpfs; the target's ready FIFO and output are
# opened before /tmp is covered)
if unshare -m true 2>/dev/null; then
	mkfifo "$T/ready"
	# a checkout under /tmp would be covered too: its targets are bound
	# to /mnt first (in that namespace only)
	LP_READY_FD=3 unshare -m bash -c 'mount --make-rprivate / &&
		d=$1 && case $d in /tmp/*) mount --bind "$d" /mnt && d=/mnt;; esac &&
		mount -t tmpfs -o size=256k tmpfs /tmp &&
		{ dd if=/dev/zero of=/tmp/fill bs=4k 2>/dev/null; true; } &&
		exec "$0" "$d/leaks.rb"' "$RUBY" "$TARGETS_DIR" \
		3>"$T/ready" >"$T/target.out" 2>"$T/target.err" &
	fp=$!
	_pids="$_pids $fp"
	read -r line <"$T/ready"
	[ "$line" = ready ] || fail "full-/tmp target not ready: $(cat "$T/target.err")"
	expect_exit 6 "$LP" attach "$fp" --eval nil --times 1
	grep -q "/proc/$fp/root/tmp/.*No space left on device" <<<"$ERR" || fail "full /tmp: $ERR"
	target_ok "$fp"
	[ "$(ls -A "/proc/$fp/root/tmp")" = fill ] || fail "left in its /tmp: $(ls -A "/proc/$fp/root/tmp")"
	rm "/proc/$fp/root/tmp/fill"
	expect_exit 0 "$LP" attach "$fp" --eval nil --times 1
	target_ok "$fp"
else
	echo "note: no mount namespace here: the full-/tmp case is not run"
fi
echo ok
