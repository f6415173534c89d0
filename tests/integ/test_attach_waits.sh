# attach while the main thread waits in different ways: the snippet runs,
# the target survives, and its own work is intact afterwards.
. "$(dirname "$0")/lib.sh"

run_mode() {
	local mode=$1 fifo="$T/go.$1" out="$T/out.$1"
	mkfifo "$fifo"
	start_target blocked.rb "$mode" "$out" "$fifo"
	local pid=$TARGET_PID
	expect_exit 0 "$LP" attach "$pid" --eval '[1, 2].sum' --times 40 \
		--batch 10 --warmup 1 --timeout 20
	grep -q '^measure' <<<"$OUT" || fail "$mode: no batch lines: $OUT"
	target_ok "$pid"
	[ "$mode" = sleep ] || echo hello >"$fifo"
	wait "$pid" || fail "$mode: target exited with $?: $(cat "$T/target.err")"
	cat "$out"
	grep -q "locals-ok" "$out" || fail "$mode: target's locals changed"
	case $mode in
	sleep)	awk '{ exit !($2 >= 6.0) }' "$out" || fail "sleep was cut short: $(cat "$out")";;
	read)	grep -q '^read hello' "$out" || fail "read lost its data";;
	select)	grep -q '^select hello' "$out" || fail "select lost its data";;
	queue)	grep -q '^queue hello' "$out" || fail "queue lost its data";;
	join)	grep -q '^join done' "$out" || fail "join broken";;
	busy)	grep -q '^busy true' "$out" || fail "busy loop broken";;
	esac
	[ "$(stray_files "$pid")" = 0 ] || fail "$mode: files left behind"
}

for m in sleep read select queue join busy; do
	run_mode "$m"
done
echo ok
