# leakprobe malloc on a C extension built now: the function that leaks
# is named in the top site with the right byte count; the one that
# allocates and frees appears nowhere.  Then the same with several Ruby
# threads allocating all the time, the leak made in several threads
# through different outer stacks (grouped by the innermost frames).
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/build.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf
build_leakext

check_leak_site() {	# check_leak_site EXPECTED_BYTES
	local want=$1 bytes names
	bytes=$(site_get "$OUT" 'top["bytes"]')
	names=$(site_get "$OUT" 'names')
	echo "top site: $bytes bytes (want $want)"; echo "$names" | head -4
	grep -q '^lp_ext_leak_bytes+0x[0-9a-f]* (leakext.so)$' <<<"$names" ||
		fail "lp_ext_leak_bytes not in the top site: $names"
	[ "$(site_get "$OUT" 'top["function"]')" = malloc ] || fail "not malloc"
	awk -v b="$bytes" -v w="$want" 'BEGIN { exit !(b >= w * 0.9 && b <= w * 1.1) }' ||
		fail "top site holds $bytes bytes, not $want +- 10 %"
	if grep -q lp_ext_churn_bytes <<<"$OUT"; then
		fail "the freeing function shows up in a site: $OUT"
	fi
	[ "$(json_get "$OUT" 'j["losses"]["alloc_drops"] + j["losses"]["free_drops"]')" = 0 ] ||
		fail "records lost: $(json_get "$OUT" 'j["losses"]')"
}

# One thread: 3000 calls, 1000 bytes leaked and 2000 churned per call.
start_target ext/target.rb "$LEAKEXT"
pid=$TARGET_PID
expect_exit 0 "$LP" malloc "$pid" --json \
	--eval 'LeakExt.leak(1000); LeakExt.churn(2000)' --times 3000
check_leak_site 3000000
[ "$(json_get "$OUT" 'j["measured_calls"]')" = 3000 ] || fail "measured calls"
[ "$(json_get "$OUT" 'j["sites"][0]["count"]')" = 3000 ] || fail "count"
[ "$(json_get "$OUT" 'j["sites"][0]["threads"]')" = 1 ] || fail "threads"
# the window's growth is there, and the stacks explain most of it
expl=$(json_get "$OUT" 'j["explained"]')
awk -v e="$expl" 'BEGIN { exit !(e >= 0.7) }' || fail "explained only $expl"
target_ok "$pid"

# Text output names the site too.
expect_exit 0 "$LP" malloc "$pid" --eval 'LeakExt.leak(512)' --times 500 --top 3
grep -q '^#1 .* in 500 allocations, 512 B per call' <<<"$OUT" || fail "text: $OUT"
grep -q '^    lp_ext_leak_bytes+' <<<"$OUT" || fail "text frames: $OUT"
grep -q '^losses: none$' <<<"$OUT" || fail "text losses: $OUT"

# Several Ruby threads allocating (4 workers churning); the leak is made
# in 3 threads per call, at nesting depths 0, 1 and 2 (different outer
# C frames), and grouped into one site by its innermost 4 frames.
start_target ext/target.rb "$LEAKEXT" 4
pid=$TARGET_PID
expect_exit 0 "$LP" malloc "$pid" --json --frames 4 \
	--eval 'leak_in_threads(3, 1000)' --times 200 --batch 20
check_leak_site 600000
[ "$(json_get "$OUT" 'j["sites"][0]["threads"] >= 3')" = true ] ||
	fail "leak from 3 threads at once counted in $(json_get "$OUT" 'j["sites"][0]["threads"]') threads"
[ "$(json_get "$OUT" 'j["sites"][0]["stacks"] >= 3')" = true ] ||
	fail "3 outer stacks expected in the top site, got $(json_get "$OUT" 'j["sites"][0]["stacks"]')"
# the workers' own allocations are traced too (the calls are many more
# than the snippet's), yet none of them is outstanding
[ "$(json_get "$OUT" 'j["calls"]["free"] > 10000')" = true ] || fail "workers not traced"
target_ok "$pid"

# The fast unwinder (cached CFI rows) against libunwind on every stack of
# this busy, multi-threaded target, the full 16 KiB of stack each.
LEAKPROBE_UNWIND_CHECK=1 expect_exit 0 "$LP" -v -v malloc "$pid" --duration 1 \
	--stack-bytes 16384
line=$(grep 'unwind check:' <<<"$ERR") || fail "no unwind check: $ERR"
echo "$line"
grep -q 'check: 0 of [1-9][0-9]* stacks differ' <<<"$line" ||
	fail "the fast unwinder and libunwind disagree: $line"

# --sample: counts and bytes are scaled estimates; the site still wins.
expect_exit 0 "$LP" malloc "$pid" --json --frames 4 --sample 4 \
	--eval 'leak_in_threads(3, 1000)' --times 400 --batch 40
[ "$(json_get "$OUT" 'j["options"]["sample"]')" = 4 ] || fail "sample not reported"
grep -q lp_ext_leak_bytes <<<"$(site_get "$OUT" 'names')" || fail "sampled: no site"
bytes=$(site_get "$OUT" 'top["bytes"]')
awk -v b="$bytes" 'BEGIN { exit !(b >= 1200000 * 0.6 && b <= 1200000 * 1.4) }' ||
	fail "sampled estimate $bytes too far from 1200000"
target_ok "$pid"
echo ok
