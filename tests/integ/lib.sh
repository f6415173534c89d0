# Helpers for integration scripts.  Source it first thing:
#   . "$(dirname "$0")/lib.sh"
# Gives: $LP (leakprobe binary), $RUBY, $T (private temp dir, removed on
# exit), start_target, fail, expect_exit, and reaps every target on exit.
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
TARGETS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/targets" && pwd)
T=$(mktemp -d /tmp/lp-test.XXXXXX)
_pids=""

cleanup() {
	for p in $_pids; do kill -9 "$p" 2>/dev/null; done
	for p in $_pids; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

command -v "$RUBY" >/dev/null 2>&1 || skip "ruby ($RUBY) not found"

# start_target SCRIPT.rb [ARGS...]: start a Ruby target from targets/ and
# wait until it writes "ready" on fd 3 (a FIFO: a real signal, no sleep).
# Sets TARGET_PID.
start_target() {
	local script=$1; shift
	local fifo="$T/ready.$RANDOM"
	mkfifo "$fifo"
	LP_READY_FD=3 "$RUBY" "$TARGETS_DIR/$script" "$@" 3>"$fifo" >"$T/target.out" 2>"$T/target.err" &
	TARGET_PID=$!
	_pids="$_pids $TARGET_PID"
	local line=""
	read -r line <"$fifo" || true
	rm -f "$fifo"
	[ "$line" = ready ] || fail "target $script did not become ready (got '$line'): $(cat "$T/target.err")"
}

# expect_exit CODE CMD...: run CMD, capture stdout/stderr in $OUT/$ERR.
expect_exit() {
	local want=$1; shift
	"$@" >"$T/out" 2>"$T/err"; local rc=$?
	OUT=$(cat "$T/out"); ERR=$(cat "$T/err")
	[ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $*
stdout: $OUT
stderr: $ERR"
}

alive() { kill -0 "$1" 2>/dev/null; }

# Mappings that belong to leakprobe, as a later check of maps residue:
# our code page is anonymous rwx-less and marked; compare maps of the
# target before/after ignoring glibc arenas and thread stacks reuse.
maps_count() { wc -l <"/proc/$1/maps"; }

# Pages of ours left in the target: 4 KiB shared anonymous mappings (rwxs
# in use, r--s once retired, rw-s from older versions) whose first bytes
# carry leakprobe's job-page magic.  Prints their count; PERMS limits it.
our_pages() {
	local pid=$1 want=${2:-} n=0 start end perms rest
	while read -r range perms _ _ inode rest; do
		[ "$perms" = rw-s ] || [ "$perms" = rwxs ] ||
			[ "$perms" = r--s ] || continue
		[ -z "$want" ] || [ "$perms" = "$want" ] || continue
		start=${range%-*}; end=${range#*-}
		[ $((16#$end - 16#$start)) -eq 4096 ] || continue
		if dd if="/proc/$pid/mem" iflag=skip_bytes,count_bytes \
			skip=$((16#$start)) count=15 status=none 2>/dev/null |
			grep -q LEAKPROBE-JOB; then
			n=$((n + 1))
		fi
	done <"/proc/$pid/maps"
	echo $n
}

# Stray files of ours for target PID (all targets without one): channel
# directories in /tmp (the per-target lock is an abstract socket, no file).
stray_files() {
	local p=${1:-*}
	ls -d /tmp/leakprobe."$p".* 2>/dev/null | wc -l
}

tracer_of() { awk '/^TracerPid:/ {print $2}' "/proc/$1/status"; }
state_of() { awk '/^State:/ {print $2}' "/proc/$1/status"; }

# assert the target is alive, untraced, and carries no page of ours
target_ok() {
	local pid=$1
	alive "$pid" || fail "target $pid died"
	[ "$(tracer_of "$pid")" = 0 ] || fail "target $pid still traced"
	[ "$(our_pages "$pid")" = 0 ] || fail "target $pid still maps a leakprobe page"
	[ "$(stray_files "$pid")" = 0 ] || fail "files of target $pid left behind"
}

# json_get JSON EXPR: evaluate a Ruby expression on parsed JSON `j`.
json_get() {
	"$RUBY" -rjson -e 'j = JSON.parse(STDIN.read); puts(eval(ARGV[0]))' "$2" <<<"$1"
}
