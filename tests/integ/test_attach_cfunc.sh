# The main thread is in one long C call that never checks interrupts: the
# job cannot start.  attach must time out cleanly, print the native stack,
# leave the pending job harmless, and a later run must reclaim the page.
. "$(dirname "$0")/lib.sh"

fifo="$T/go"; out="$T/out"
mkfifo "$fifo"
start_target blocked.rb cfunc "$out" "$fifo"
pid=$TARGET_PID
expect_exit 4 "$LP" attach "$pid" --eval 'nil' --times 1 --timeout 1
grep -q 'did not start' <<<"$ERR" || fail "no timeout message: $ERR"
grep -q 'libcrypt' <<<"$ERR" || fail "no native stack naming libcrypt: $ERR"
grep -q '#0 ' <<<"$ERR" || fail "no frames: $ERR"
grep -q "never checks Ruby's interrupts" <<<"$ERR" || fail "the busy C call not named: $ERR"
alive "$pid" || fail "target died"
[ "$(tracer_of "$pid")" = 0 ] || fail "still traced"
[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
# The page stays mapped (the job still points at it) and is harmless.
[ "$(our_pages "$pid")" -le 1 ] || fail "more than one page left"

# Opening the FIFO returns once the C call is over and the target waits
# in read(); now the stale job has run or is pending: both must be fine.
exec 5>"$fifo"
expect_exit 0 "$LP" attach "$pid" --eval 'nil' --times 10 --batch 5
target_ok "$pid"
echo hello >&5
exec 5>&-
wait "$pid" || fail "target exited with $?"
grep -q 'cfunc done locals-ok' "$out" || fail "target's work broken: $(cat "$out")"
echo ok
