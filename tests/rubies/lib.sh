# Sourced by every tests/rubies/check-*.sh.  tests/rubies/run runs each
# check script once per Ruby of the matrix with:
#   LEAKPROBE  the leakprobe binary
#   RUBY_CMD   the command that starts this Ruby (words), e.g.
#              /var/cache/leakprobe-rubies/ruby-2.4.3/bin/ruby, or
#              ".../tests/rubies/enter ROOT /usr/bin/ruby" (a container: the
#              ruby process is then a descendant of the one started)
#   ROOT       the target's root directory as seen from here (/ on the host)
#   APP        a directory for the check's files, as the target names it;
#              "$ROOT$APP" from here.  Its tmp/ is the target's scratch.
#   VERSION    the Ruby's version, for messages only: decide nothing by it
#   RUBY_NAME  the matrix entry (e.g. 2.4.3, 2.4.3-container, trixie)
#   LP_IDLE    how the targets' main threads idle between jobs: sleep (the
#              default) or read (a blocking pipe read)
# A check script exits 0 (passed), 77 after a line "SKIP: why", 75 after a
# line "NEEDS-WAKE: what" (a shape only the wake path can reach: not a
# pass), anything else after "FAIL: why".
set -u
: "${LEAKPROBE:?}" "${RUBY_CMD:?}" "${ROOT:?}" "${APP:?}" "${VERSION:?}"
LP=$LEAKPROBE
LP_IDLE=${LP_IDLE:-sleep}
export LP_IDLE
RUBIES_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME=${RUBY_NAME:-$VERSION}
T=$(mktemp -d /tmp/lp-rcheck.XXXXXX)
HOSTAPP=$ROOT$APP
[ "$ROOT" = / ] && HOSTAPP=$APP
_launchers=""
_targets=""

# Only the script's own shell cleans up: a background job forked from it
# carries its traps until it execs, and a signal meant for that job must
# not run them there.
_cleanup() {
	[ "$BASHPID" = "$$" ] || exit 1
	local p
	# a target's own children (a pre-fork master's workers) first
	for p in $_targets; do pkill -9 -P "$p" 2>/dev/null; done
	for p in $_targets $_launchers; do kill -9 "$p" 2>/dev/null; done
	for p in $_launchers; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $NAME (ruby $VERSION): $*"; exit 1; }
skip() { echo "SKIP: $NAME: $*"; exit 77; }
say() { echo "  $NAME: $*"; }

# install FILE...: copy files into the check's directory
install_app() { mkdir -p "$HOSTAPP/tmp" && chmod 1777 "$HOSTAPP/tmp" && cp -r "$@" "$HOSTAPP/"; }

# descend PID: the process that runs Ruby under a launcher (unshare,
# chroot, a shell), or PID itself
descend() {
	local p=$1 c
	while :; do
		case $(cat "/proc/$p/comm" 2>/dev/null) in
			unshare|chroot|bash|sh|enter) ;;
			*) break;;
		esac
		c=$(pgrep -P "$p" | head -n 1)
		[ -n "$c" ] || break
		p=$c
	done
	echo "$p"
}

# start_target FILE [ARGS...]: start $APP/FILE with this Ruby; it writes
# "ready ..." on fd 3 (a FIFO: a real signal, no sleep).  Sets TPID (the
# Ruby process as seen from here), READY (the rest of its ready line).
start_target() {
	local f=$1 line=""; shift
	mkfifo "$T/ready"
	# shellcheck disable=SC2086
	$RUBY_CMD "$APP/$f" "$@" 3>"$T/ready" >"$T/target.out" 2>&1 &
	local l=$!
	_launchers="$_launchers $l"
	read -t 60 -r line READY <"$T/ready"; rm -f "$T/ready"
	[ "$line" = ready ] || fail "$f not ready: $(tail -n 5 "$T/target.out")"
	TPID=$(descend "$l")
	_targets="$_targets $TPID"
}

tracer_of() { awk '/^TracerPid:/ {print $2}' "/proc/$1/status"; }
state_of() { awk '/^State:/ {print $2}' "/proc/$1/status"; }
threads_of() { ls "/proc/$1/task" | wc -l; }

# the main thread's system call right now (its number, or "running")
main_syscall() { cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null; }

# lp WANT_EXIT ARGS...: leakprobe ARGS; stdout+stderr in $OUT
lp() {
	OUT=$("$LP" "${@:2}" 2>&1); local rc=$?
	[ "$rc" = "$1" ] || fail "exit $rc, not $1: leakprobe ${*:2}: $OUT"
}

# lp_reach WANT_EXIT PID ARGS...: as lp, but a job that never starts
# (exit 4) while the main thread waits in a futex (a condition-variable
# sleep, join or Queue#pop of Ruby <= 2.5) is reported as a shape that
# needs the wake path: exit 75, counted apart, never as a pass.
lp_reach() {
	local want=$1 pid=$2; shift 2
	OUT=$("$LP" "$@" 2>&1); local rc=$?
	# futex (202), or restart_syscall (219): a timed futex wait that a
	# signal interrupted goes on there
	if [ "$rc" = 4 ] && [ "$want" != 4 ]; then
		case $(main_syscall "$pid") in 202|219)
			echo "NEEDS-WAKE: $NAME (ruby $VERSION): the main thread waits in a futex ($(grep -o '[a-z_]*sleep[a-z_]*\|[a-z_]*join[a-z_]*\|queue_[a-z_]*\|rb_queue_pop[a-z_]*' <<<"$OUT" | head -n 3 | paste -sd' ' -)) and the job never started"
			exit 75;;
		esac
	fi
	[ "$rc" = "$want" ] || fail "exit $rc, not $want: leakprobe $*: $OUT"
}

jget() { ruby -rjson -e 'j = JSON.parse(STDIN.read); puts(eval(ARGV[0]))' "$1" <<<"$OUT"; }

# within VALUE WANT PCT: VALUE is WANT +- PCT %
within() {
	awk -v v="$1" -v w="$2" -v p="$3" 'BEGIN { exit !(v >= w * (1 - p / 100) && v <= w * (1 + p / 100)) }'
}

# verdict PID KIND BYTES EVAL [ARGS...]: attach with EVAL gives KIND and
# (when BYTES is not "-") BYTES per call within 25 %
verdict() {
	local pid=$1 kind=$2 bytes=$3 ev=$4 k n; shift 4
	lp_reach 0 "$pid" attach "$pid" --json --eval "$ev" --times 4000 --batch 400 "$@"
	k=$(jget 'j["verdict"]["kind"]')
	# inconclusive: what a user does, once: more calls, more warm-up
	if [ "$k" = inconclusive ]; then
		say "$ev: inconclusive at 4,000 calls ($(jget 'j["verdict"]["summary"]' | cut -c1-60)); again with 8,000"
		lp_reach 0 "$pid" attach "$pid" --json --eval "$ev" --times 8000 --batch 400 --warmup 4 "$@"
		k=$(jget 'j["verdict"]["kind"]')
	fi
	[ "$k" = "$kind" ] || fail "$ev: verdict $k, not $kind: $(jget 'j["verdict"]')"
	[ "$bytes" = - ] && return 0
	n=$(jget 'j["verdict"]["bytes_per_call"]["slope"]')
	within "$n" "$bytes" 25 || fail "$ev: $n B per call, not $bytes +- 25 %"
	VERDICT_BYTES=$n
}

# target_unharmed PID WHAT: alive, untraced, running or sleeping
target_unharmed() {
	kill -0 "$1" 2>/dev/null || fail "$2: target died: $(tail -n 5 "$T/target.out")"
	[ "$(tracer_of "$1")" = 0 ] || fail "$2: target left traced"
	case $(state_of "$1") in R|S|D) ;; *) fail "$2: target stopped or dead ($(state_of "$1"))";; esac
}

# signal_trials PID N EVAL: SIGINT/SIGTERM to leakprobe at N random
# instants within its first 60 ms (registration, wake rounds, the no-op
# job, the first batches); the target stays alive, untraced, running.
# leakprobe is signalled only once it runs (its /proc exe is leakprobe):
# before its exec the job is still a copy of this shell.
signal_trials() {
	local pid=$1 n=$2 ev=$3 i rc lpp exe
	exe=$(readlink -f "$LP")
	for i in $(seq "$n"); do
		"$LP" attach "$pid" --eval "$ev" --times 400 --batch 20 \
			>/dev/null 2>"$T/err" &
		lpp=$!
		for _ in $(seq 500); do
			[ "$(readlink "/proc/$lpp/exe" 2>/dev/null)" = "$exe" ] && break
			kill -0 "$lpp" 2>/dev/null || break
			sleep 0.002
		done
		sleep "$(printf '0.%03d' $((RANDOM % 60)))"
		if [ $((i % 2)) = 0 ]; then kill -INT "$lpp"; else kill -TERM "$lpp"; fi 2>/dev/null
		wait "$lpp"; rc=$?
		case $rc in 0|4|130|143) ;; *) fail "signal trial $i: exit $rc: $(cat "$T/err")";; esac
		target_unharmed "$pid" "signal trial $i"
	done
	lp 0 attach "$pid" --eval nil --times 1 --timeout 10
}

# settle PID N: wait (up to 5 s) until PID has N threads again
settle() {
	for _ in $(seq 250); do
		[ "$(threads_of "$1")" = "$2" ] && return 0
		sleep 0.02
	done
	return 1
}
