#!/bin/bash
# Disk full in the middle of a watch: a clear error, exit 6, and the rows
# already written stay whole (a part-row is truncated away).  Uses a tiny
# tmpfs in a private mount namespace, so nothing is left mounted.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
unshare -m true 2>/dev/null || skip "cannot create a mount namespace"

mkfifo "$T/cmd"
start_target steady.rb "$T/cmd"
pid=$TARGET_PID
mkdir "$T/mnt"

# 16 KiB of tmpfs (4 pages); the watch file gets ~two pages of rows.
unshare -m bash -c '
	mount -t tmpfs -o size=16k lp-test "$1/mnt" || exit 77
	head -c 8192 /dev/zero >"$1/mnt/filler" 2>/dev/null
	"$2" watch --interval 0.001 --count 100000 -o "$1/mnt/w.csv" "$3" \
		>"$1/out" 2>"$1/err"
	echo $? >"$1/rc"
	cp "$1/mnt/w.csv" "$1/w.csv"
' _ "$T" "$LP" "$pid"
[ -f "$T/rc" ] || skip "tmpfs mount failed"
rc=$(cat "$T/rc")
[ "$rc" -eq 6 ] || fail "expected exit 6 on a full disk, got $rc: $(cat "$T/err")"
grep -q "^leakprobe: watch: writing to '.*w.csv': No space left on device" "$T/err" ||
	fail "unclear error: $(cat "$T/err")"
[ "$(wc -l <"$T/w.csv")" -gt 10 ] || fail "too few rows before the disk filled: $(cat "$T/w.csv")"
[ "$(tail -c 1 "$T/w.csv" | od -An -c | tr -d ' ')" = '\n' ] || fail "file ends in a part-row"
awk -F, -v pid="$pid" 'NR == 1 { if ($1 != "time") bad = 1; next }
	NF != 12 || $2 != pid || $4 == 0 { print "bad row " NR ": " $0; bad = 1 }
	END { exit bad }' "$T/w.csv" || fail "rows not whole"
echo "rows kept: $(($(wc -l <"$T/w.csv") - 1))"
echo ok
