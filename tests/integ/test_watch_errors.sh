#!/bin/bash
# watch on bad input: a clear one-line error "leakprobe: watch: ..." that
# names the problem, and the exit code of DESIGN §9 (2 usage, 3 target,
# 6 local i/o).  --help goes to stdout with exit 0.
. "$(dirname "$0")/lib.sh"

# one_line_error CODE REGEX CMD...: exit CODE, one stderr line matching.
one_line_error() {
	local code=$1 re=$2; shift 2
	expect_exit "$code" "$@"
	[ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "not one line from $*: $ERR"
	grep -q "^leakprobe: watch: " <<<"$ERR" || fail "no 'leakprobe: watch:' prefix: $ERR"
	grep -Eq -- "$re" <<<"$ERR" || fail "error for $* does not match '$re': $ERR"
	[ -z "$OUT" ] || fail "stdout not empty on error: $OUT"
}

mkfifo "$T/cmd"
start_target steady.rb "$T/cmd"
pid=$TARGET_PID

# --- usage (2)
one_line_error 2 "bad --interval '0'" "$LP" watch --interval 0 "$pid"
one_line_error 2 "bad --interval '-1'" "$LP" watch --interval -1 "$pid"
one_line_error 2 "bad --interval 'soon'" "$LP" watch --interval soon "$pid"
one_line_error 2 "bad --interval '1x'" "$LP" watch -i 1x "$pid"
one_line_error 2 "bad --interval '0.0001'" "$LP" watch -i 0.0001 "$pid"
one_line_error 2 "--count and --duration" "$LP" watch --count 3 --duration 10 "$pid"
one_line_error 2 "bad --count '0'" "$LP" watch --count 0 "$pid"
one_line_error 2 "bad --duration" "$LP" watch --duration forever "$pid"
one_line_error 2 "unknown --format 'xml'.*csv or jsonl" "$LP" watch --format xml "$pid"
one_line_error 2 "no process given" "$LP" watch --count 1
one_line_error 2 "PIDs or --all, not both" "$LP" watch --all "$pid"
one_line_error 2 "bad PID 'ruby'" "$LP" watch ruby
one_line_error 2 "unknown option '--colour'" "$LP" watch --colour "$pid"
one_line_error 2 "needs a value" "$LP" watch "$pid" --interval

# --- target (3)
sh -c 'exit 0' & dead=$!; wait "$dead"
alive "$dead" && skip "pid $dead reused already"
one_line_error 3 "no such process: $dead" "$LP" watch --count 1 "$dead"
# One bad pid among good ones: nothing is written.
one_line_error 3 "no such process: $dead" "$LP" watch --count 1 -o "$T/never.csv" "$pid" "$dead"
[ ! -e "$T/never.csv" ] || fail "output created before the pids were checked"
if grep -q '^Name:	kthreadd' /proc/2/status 2>/dev/null; then
	one_line_error 3 "kernel thread" "$LP" watch --count 1 2
fi
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	# PID 1's smaps is not readable by nobody: exit 3 with a hint.
	one_line_error 3 "cannot read the memory of pid 1 .*permission denied.*run as root" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$LP" watch --count 1 1
fi

# --- local i/o (6)
one_line_error 6 "cannot open output '/nonexistent/dir/w.csv': No such file" \
	"$LP" watch --count 1 -o /nonexistent/dir/w.csv "$pid"
one_line_error 6 "cannot open output '$T': Is a directory" \
	"$LP" watch --count 1 -o "$T" "$pid"
# Disk full from the first write (header): /dev/full.
one_line_error 6 "writing to '/dev/full': No space left on device" \
	"$LP" watch --count 1 -o /dev/full "$pid"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	# nobody watching its own process, into root's 0644 file: the
	# open fails with EACCES.
	mkfifo "$T/rdy"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		sh -c 'echo ready >&3; exec 3>&-; exec sleep 600' 3>"$T/rdy" &
	mine=$!; _pids="$_pids $mine"
	read -r line <"$T/rdy"	# it runs as nobody now
	[ "$line" = ready ] || fail "nobody's process did not start"
	chmod 755 "$T"; : >"$T/roots.csv"; chmod 644 "$T/roots.csv"
	one_line_error 6 "cannot open output '$T/roots.csv': Permission denied" \
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LP" watch --count 1 -o "$T/roots.csv" "$mine"
	[ ! -s "$T/roots.csv" ] || fail "unwritable file written"
	kill "$mine"
fi

# --- help
expect_exit 0 "$LP" watch --help
for o in --all --interval --count --duration --output --format --smaps-diff; do
	grep -q -- "$o" <<<"$OUT" || fail "--help does not mention $o"
done
[ -z "$ERR" ] || fail "--help wrote to stderr"
alive "$pid" || fail "target died"
echo ok
