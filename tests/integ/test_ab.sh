# ab tells a leaking snippet from a non-leaking one, and reports no
# difference for two non-leaking ones.
. "$(dirname "$0")/lib.sh"

start_target worker.rb
pid=$TARGET_PID

expect_exit 0 "$LP" ab "$pid" --a 'Fiddle.malloc(256)' --b '"x" * 256' \
	--times 10000 --rounds 10 --json
echo "$(json_get "$OUT" 'j["result"]'): A $(json_get "$OUT" 'j["a"]["summary"]')"
[ "$(json_get "$OUT" 'j["result"]')" = "A leaks" ] || fail "expected A leaks"
[ "$(json_get "$OUT" 'j["difference"]["significant"]')" = true ] || fail "no difference"
awk -v d="$(json_get "$OUT" 'j["difference"]["bytes_per_call"]')" \
	'BEGIN { exit !(d >= 192 && d <= 320) }' || fail "difference not about 256"
target_ok "$pid"

expect_exit 0 "$LP" ab "$pid" --a '"x" * 256' --b '[1, 2].sum' \
	--times 10000 --rounds 10 --json
[ "$(json_get "$OUT" 'j["result"]')" = "neither leaks" ] || fail "expected neither: $OUT"
[ "$(json_get "$OUT" 'j["difference"]["significant"]')" = false ] || fail "false difference"

# B side leaking, text output, and --fail-on-growth applying to either side
expect_exit 1 "$LP" ab "$pid" --a 'nil' --b 'Fiddle.malloc(256)' \
	--times 10000 --rounds 10 --fail-on-growth 100
grep -q 'B leaks' <<<"$OUT" || fail "text: $OUT"
grep -q '^A - B: ' <<<"$OUT" || fail "text: $OUT"

expect_exit 2 "$LP" ab "$pid" --a nil
grep -q 'missing --b' <<<"$ERR" || fail "$ERR"
expect_exit 5 "$LP" ab "$pid" --a nil --b 'raise "no"'
grep -q 'snippet B raised RuntimeError: no' <<<"$ERR" || fail "$ERR"
target_ok "$pid"
[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
echo ok
