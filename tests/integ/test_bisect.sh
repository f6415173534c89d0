# bisect finds the leaking step among 8 (native, Ruby-object), a pair that
# leaks only together, reports "no step leaks", leaves a raising step out,
# and stays within its trial bound at n = 32.
. "$(dirname "$0")/lib.sh"
STEPS=$(cd "$(dirname "$0")/steps" && pwd)

start_target worker.rb
pid=$TARGET_PID

bisect() {	# bisect STEPFILE EXIT: runs with --json into $OUT
	local f=$1 code=$2; shift 2
	expect_exit "$code" "$LP" bisect "$pid" --steps "$STEPS/$f" \
		--times 2000 --batch 200 --json "$@"
	echo "$f: culprits $(json_get "$OUT" 'j["culprits"].map { |c| c["steps"].join("+") + " " + c["verdict"]["kind"] }.inspect') in $(json_get "$OUT" 'j["trial_count"]') trials"
	target_ok "$pid"
}
culprits() { json_get "$OUT" 'j["culprits"].map { |c| c["steps"].join("+") }.join(" ")'; }

bisect native8.rb 0
[ "$(culprits)" = step05 ] || fail "native8: culprits '$(culprits)'"
[ "$(json_get "$OUT" 'j["culprits"][0]["verdict"]["kind"]')" = "native leak" ] || fail "native8 kind"

bisect ruby8.rb 0
[ "$(culprits)" = step02 ] || fail "ruby8: culprits '$(culprits)'"
[ "$(json_get "$OUT" 'j["culprits"][0]["verdict"]["kind"]')" = "ruby-object leak" ] || fail "ruby8 kind"

bisect pair8.rb 0
[ "$(culprits)" = "step01+step06" ] || fail "pair8: culprits '$(culprits)'"

bisect none8.rb 0
[ "$(culprits)" = "" ] || fail "none8: culprits '$(culprits)'"

bisect raise8.rb 0
[ "$(culprits)" = step03 ] || fail "raise8: culprits '$(culprits)'"
[ "$(json_get "$OUT" 'j["left_out"][0]["step"]')" = step06 ] || fail "raise8: step06 not left out"
grep -q 'broken step' <<<"$OUT" || fail "raise8: error not reported"

# Trial bound: one culprit among 32 needs about 2*log2(32) + 3 trials,
# far fewer than the 32 of a one-by-one search.
bisect native32.rb 0
[ "$(culprits)" = step29 ] || fail "native32: culprits '$(culprits)'"
trials=$(json_get "$OUT" 'j["trial_count"]')
[ "$trials" -le 13 ] || fail "native32: $trials trials, bound is 13"

# --fail-on-growth exit status; text output names the culprit
bisect native8.rb 1 --fail-on-growth 100
expect_exit 0 "$LP" bisect "$pid" --steps "$STEPS/native8.rb" --times 2000 --batch 200
grep -q '^culprit: step05: native leak' <<<"$OUT" || fail "text output: $OUT"
grep -q 'trials for 8 steps' <<<"$OUT" || fail "text output: $OUT"

# bad steps files
printf 'x = 1\n# step: a\nnil\n' >"$T/pre.rb"
expect_exit 2 "$LP" bisect "$pid" --steps "$T/pre.rb"
grep -q 'code before the first' <<<"$ERR" || fail "$ERR"
printf '# step: a\nnil\n# step: a\nnil\n' >"$T/dup.rb"
expect_exit 2 "$LP" bisect "$pid" --steps "$T/dup.rb"
grep -q 'appears twice' <<<"$ERR" || fail "$ERR"
printf '# nothing here\n' >"$T/empty.rb"
expect_exit 2 "$LP" bisect "$pid" --steps "$T/empty.rb"
grep -q 'has no steps' <<<"$ERR" || fail "$ERR"
[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
echo ok
