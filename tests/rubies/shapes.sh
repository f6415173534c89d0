#!/bin/bash
# attach to a Ruby whose main thread waits in each shape a real
# application parks it in, and check both halves: the snippet ran
# (leakprobe exit 0, batch lines, the snippet's global visible to the
# program afterwards) and the program behaved exactly as without
# leakprobe (sleep 3 took >= 3 s and returned 3; join, pop, wait and lock
# returned only after the event the test triggers afterwards, with the
# data it sent; sleep without end still sleeping; nothing on stderr).
#
#   LEAKPROBE=./leakprobe tests/rubies/shapes.sh [--root DIR] RUBY [ARGS...]
#
# RUBY is the command that starts the ruby (a path, or e.g. "chroot DIR
# /usr/bin/ruby"); with --root DIR the files the program uses are made
# under DIR and passed to it by their path inside DIR.  SHAPES="sleep
# join" limits the shapes.  Prints one line per shape; exit 0 when all
# pass.
set -u
: "${LEAKPROBE:?LEAKPROBE must point to the leakprobe binary}"
LP=$LEAKPROBE
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=""
if [ "${1:-}" = --root ]; then ROOT=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: shapes.sh [--root DIR] RUBY [ARGS...]" >&2; exit 2; }
SHAPES=${SHAPES:-sleep sleep_forever loop_sleep join join_limit queue cv cv_timeout mutex read select busy}
SNIPPET='$lp_ran = ($lp_ran || 0) + 1'

mkdir -p "$ROOT/tmp"
IN=$(mktemp -d "$ROOT/tmp/lp-shapes.XXXXXX")	# as we see it
DIR=${IN#"$ROOT"}				# as the program sees it
chmod 755 "$IN"
cp "$HERE/shapes.rb" "$IN/"
pid=""
cleanup() {
	[ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	rm -rf "$IN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0

main_state() { awk '{ print $3 }' "/proc/$1/task/$1/stat" 2>/dev/null; }

# wait_state PID STATE: the main thread reaches STATE (S: it waits),
# polled, at most 30 s (a busy machine); 0 when reached
wait_state() {
	local i
	for ((i = 0; i < 3000; i++)); do
		[ "$(main_state "$1")" = "$2" ] && return 0
		sleep 0.01
	done
	return 1
}

# bad WHY: this shape failed; its program is ended
bad() {
	echo "FAIL $shape: $*"; failed=$((failed + 1))
	[ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""; }
}

one_shape() {
	local shape=$1 line rc t0 t1 out alive spurious
	local d="$IN/$shape"
	shift
	mkdir "$d" && mkfifo "$d/go" "$d/ready"
	(cd / && exec "$@" "$DIR/shapes.rb" "$shape" "$DIR/$shape") \
		>"$d/stdout" 2>"$d/stderr" &
	pid=$!
	line=$(timeout 30 cat "$d/ready")
	[ "$line" = ready ] || { bad "the program did not start: $(cat "$d/stderr")"; return; }
	if [ "$shape" = busy ]; then
		wait_state "$pid" R
	else
		wait_state "$pid" S || { bad "main thread never waited"; return; }
	fi
	t0=$(date +%s.%N)
	"$LP" attach "$pid" --eval "$SNIPPET" --times 40 --batch 10 --warmup 1 \
		--timeout 20 >"$d/lp.out" 2>"$d/lp.err"
	rc=$?
	t1=$(date +%s.%N)
	[ $rc = 0 ] || { bad "leakprobe exit $rc: $(grep -v "^  #" "$d/lp.err" | head -n 3)"; return; }
	grep -q '^measure' "$d/lp.out" || { bad "no batch lines"; return; }
	alive=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)
	[ $alive = yes ] || { bad "the program ended: $(cat "$d/stderr")"; return; }
	# Nothing returned before the event (a finished program says "end").
	# ConditionVariable#wait is Mutex#sleep, which Ruby allows to return
	# early ("can wakeup without explicit Thread#wakeup call"), and on
	# 2.4-2.5 does whenever the thread checks interrupts: counted, and
	# the program's wait loop must still end only with the event.
	spurious=$(grep -c '^wait returned nil' "$d/out")
	case $shape in
	sleep|busy) ;;
	*)	if grep -q '^end' "$d/out" || grep -v '^wait returned nil' "$d/out" | grep -q returned; then
			bad "returned before its event: $(cat "$d/out")"; return
		fi
		[ "$(main_state "$pid")" = S ] || { bad "main thread not waiting any more"; return; }
		;;
	esac
	case $shape in
	sleep_forever|loop_sleep)
		# still asleep after the attach: wait a second and look again
		sleep 1
		[ "$(main_state "$pid")" = S ] && ! grep -q returned "$d/out" ||
			{ bad "woke: $(cat "$d/out")"; return; }
		kill "$pid"; wait "$pid" 2>/dev/null; pid=""
		[ -s "$d/stderr" ] && { bad "stderr: $(cat "$d/stderr")"; return; }
		printf 'PASS %-13s attach %.2f s; still asleep\n' "$shape" \
			"$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
		passed=$((passed + 1))
		return;;
	sleep) ;;
	busy)	touch "$d/stop";;
	*)	echo hello >"$d/go";;
	esac
	timeout 60 tail --pid="$pid" -f /dev/null
	wait "$pid"; rc=$?; pid=""
	out=$(cat "$d/out")
	[ $rc = 0 ] || { bad "the program exited $rc: $(cat "$d/stderr")"; return; }
	[ -s "$d/stderr" ] && { bad "stderr: $(cat "$d/stderr")"; return; }
	grep -q '^ran [1-9]' "$d/out" || { bad "the snippet's global not seen: $out"; return; }
	local want=""
	case $shape in
	# Kernel#sleep returns time(2) seconds elapsed: 3, or 4 when the
	# 3 s straddled four second boundaries
	sleep)	awk '/^slept/ { ok = $2 >= 3.0 && ($4 == 3 || $4 == 4) } END { exit !ok }' "$d/out" ||
			{ bad "sleep 3 cut short: $out"; return; };;
	join|join_limit) want="$shape true false \"hello\"";;
	queue)	want='queue "hello"';;
	cv|cv_timeout) want="$shape \"hello\" waits";;
	mutex)	want='mutex true "hello"';;
	read)	want='read "hello"';;
	select)	want='select 1 "hello"';;
	busy)	want='busy true';;
	esac
	[ -z "$want" ] || grep -qF "$want" "$d/out" || { bad "result '$want' missing: $out"; return; }
	printf 'PASS %-13s attach %.2f s; %s%s\n' "$shape" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		"$(grep -v -e '^ran' -e '^end' -e '^wait returned' "$d/out" | tr '\n' ' ')" \
		"$([ "$spurious" = 0 ] || echo "(woke early $spurious time(s) before the event: Mutex#sleep allows it)")"
	passed=$((passed + 1))
}

echo "shapes: $("$@" -e 'print RUBY_DESCRIPTION')"
for s in $SHAPES; do
	one_shape "$s" "$@"
done
echo "shapes: $passed passed, $failed failed"
[ $failed = 0 ]
