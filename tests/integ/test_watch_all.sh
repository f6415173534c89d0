#!/bin/bash
# watch --all: every process on the host but kernel threads (and itself);
# picks up a process started mid-watch ("new" row), marks one that exits
# ("exit" row), ends cleanly on SIGINT with a summary.  Run as nobody, it
# notes once that it cannot read the others' processes.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/cmd1" "$T/cmd2" "$T/rows"
start_target steady.rb "$T/cmd1"; p1=$TARGET_PID

"$LP" watch --all --interval 0.1 >"$T/rows" 2>"$T/err" &
wpid=$!
exec 4<"$T/rows"
read -r -t 60 -u 4 header || fail "no header"
# read_until REGEX: read rows (kept in $T/all) until one matches.
read_until() {
	local line
	while read -r -t 60 -u 4 line; do
		printf '%s\n' "$line" >>"$T/all"
		[[ $line =~ $1 ]] && return 0
	done
	fail "no row matching '$1' (watch: $(cat "$T/err"))"
}
read_until "^[^,]*,$p1,"

start_target steady.rb "$T/cmd2"; p2=$TARGET_PID
read_until "^[^,]*,$p2,.*,new$"
echo exit >"$T/cmd2"
read_until "^[^,]*,$p2,.*,exit$"
# One more row of p1 after p2 is gone: watching goes on.
read_until "^[^,]*,$p1,.*,$"

kill -INT "$wpid"
timeout 60 cat <&4 >>"$T/all"
exec 4<&-
wait "$wpid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch --all exited $rc after SIGINT: $(cat "$T/err")"
grep -q "first -> last sample, fastest growing first" "$T/err" || fail "no summary: $(cat "$T/err")"

[ "$(grep -c "^[^,]*,$p2,.*,new$" "$T/all")" -eq 1 ] || fail "p2 not marked new exactly once"
[ "$(grep -c "^[^,]*,$p2,.*,exit$" "$T/all")" -eq 1 ] || fail "p2 exit not marked exactly once"
awk -F, -v p="$p2" '$2 == p && gone { bad = 1 } $2 == p && $12 == "exit" { gone = 1 }
	END { exit bad }' "$T/all" || fail "p2 has rows after its exit"
grep -q "^[^,]*,$wpid," "$T/all" && fail "watch --all lists itself"
# No kernel threads: none is a child of kthreadd (pid 2), nor pid 2 itself.
npids=0
for p in $(cut -d, -f2 "$T/all" | sort -un); do
	npids=$((npids + 1))
	[ "$p" -ne 2 ] || fail "kthreadd listed"
	# Read once: a process listed may exit between two reads.
	st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
	ppid=$(sed 's/.*) //' <<<"$st" | cut -d' ' -f2)
	[ "$ppid" -ne 2 ] || fail "kernel thread $p ($(sed 's/^[^(]*(\(.*\)) .*/\1/' <<<"$st")) listed"
done
cut -d, -f3 "$T/all" | grep -Eq '^(kworker|ksoftirqd|kthreadd|migration|rcu_)' &&
	fail "kernel thread names in the rows"
[ "$npids" -ge 3 ] || fail "only $npids processes seen"
# Every data row has memory in it.
awk -F, '$12 == "" && ($4 == 0 || NF != 12) { print; bad = 1 } END { exit bad }' "$T/all" ||
	fail "malformed --all rows"

# As nobody: the other users' processes are unreadable; one note.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	expect_exit 0 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LP" watch --all --count 3 --interval 0.05
	[ "$(grep -c "note: cannot read [0-9]* process" <<<"$ERR")" -eq 1 ] ||
		fail "expected one note about unreadable processes: $ERR"
	grep -q "^[^,]*,$p1," <<<"$OUT" && fail "nobody read root's process $p1"
fi
echo ok
