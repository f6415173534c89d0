# run (spawn mode): the target is reaped when the measurement succeeds,
# fails, times out, and when leakprobe gets SIGINT; a target that exits
# early or never becomes ready is a clear error.
. "$(dirname "$0")/lib.sh"

tag="lp-run-test-$$"	# a marker in the target's argv, to find leftovers
left() { pgrep -f -- "$tag" | wc -l; }
W="$TARGETS_DIR/worker.rb"

# success, ready file
expect_exit 0 "$LP" run --ready-file "$T/ready" attach --eval nil \
	--times 10 --batch 5 -- "$RUBY" "$W" "$T/ready" "$tag"
grep -q '^measure' <<<"$OUT" || fail "no batches: $OUT"
[ "$(left)" = 0 ] || fail "target left running after success"
[ -e "$T/ready" ] && fail "the ready file was left behind"

# success, idle detection (no readiness option), inferred bisect
printf '# step: a\nnil\n# step: b\n"x" * 10\n' >"$T/steps.rb"
expect_exit 0 "$LP" run --steps "$T/steps.rb" --times 200 -- "$RUBY" "$W" "" "$tag"
grep -q 'no step leaks' <<<"$OUT" || fail "bisect via run: $OUT"
[ "$(left)" = 0 ] || fail "target left running after bisect"

# the measurement's own exit status comes through: a leak under
# --fail-on-growth (1), a raising snippet (5)
expect_exit 1 "$LP" run --ready-file "$T/ready" attach --eval 'Fiddle.malloc(256)' \
	--times 10000 --batch 1000 --fail-on-growth 100 -- "$RUBY" "$W" "$T/ready" "$tag"
[ "$(left)" = 0 ] || fail "target left running after a leak"
expect_exit 5 "$LP" run --ready-file "$T/ready" attach --eval 'raise "x"' \
	-- "$RUBY" "$W" "$T/ready" "$tag"
[ "$(left)" = 0 ] || fail "target left running after a failure"

# a measurement that times out: the main thread never reaches a safe point
expect_exit 4 "$LP" run --ready-after 0.5 attach --eval nil --timeout 1 \
	-- "$RUBY" -e 'require "fiddle"; "x".crypt("$6$rounds=50000000$s")' "$tag"
grep -q 'did not start' <<<"$ERR" || fail "$ERR"
[ "$(left)" = 0 ] || fail "target left running after a timeout"

# early exit, never ready, cannot start
expect_exit 3 "$LP" run --ready-file "$T/never" attach --eval nil -- "$RUBY" -e 'exit 3' "$tag"
grep -q 'exited with status 3 before it was ready' <<<"$ERR" || fail "$ERR"
expect_exit 3 "$LP" run --ready-file "$T/never" --ready-timeout 1 attach --eval nil \
	-- "$RUBY" -e 'sleep' "$tag"
grep -q 'never became ready' <<<"$ERR" || fail "$ERR"
[ "$(left)" = 0 ] || fail "target left running after never being ready"
expect_exit 3 "$LP" run attach --eval nil -- /nonexistent/ruby
grep -q "cannot run '/nonexistent/ruby'" <<<"$ERR" || fail "$ERR"
expect_exit 2 "$LP" run attach --eval nil
grep -q "missing '-- COMMAND'" <<<"$ERR" || fail "$ERR"

# SIGINT to leakprobe in the middle of the measurement
mkfifo "$T/out.fifo"
"$LP" run --ready-file "$T/ready" attach --eval 'sleep 0.01' --times 100000 \
	-- "$RUBY" "$W" "$T/ready" "$tag" >"$T/out.fifo" 2>"$T/run.err" & lp=$!
exec 7<"$T/out.fifo"
read -r _ <&7	# "attached to ...": the measurement is under way
kill -INT "$lp"
cat <&7 >/dev/null
exec 7<&-
wait "$lp"; rc=$?
[ "$rc" = 4 ] || fail "SIGINT: exit $rc: $(cat "$T/run.err")"
[ "$(left)" = 0 ] || fail "target left running after SIGINT"
echo ok
