# bisect on a noisy target (threads allocating and freeing all the time):
# one step leaks 64 B per call among 12, three others keep a Ruby object
# now and then (0.015 objects, 0.6 B per call together: the phantom
# "only together" culprit of a verdict that counted objects, not bytes).
# Each run names exactly the leaking step, within 2*log2(12) + 4 = 11
# trials.  BISECT_NOISE_RUNS runs of 10,000 calls per trial (default 5;
# bench/bisect_noise runs 20).
. "$(dirname "$0")/lib.sh"
STEPS=$(cd "$(dirname "$0")/steps" && pwd)
RUNS=${BISECT_NOISE_RUNS:-5}

start_target noisy_worker.rb
pid=$TARGET_PID
for i in $(seq "$RUNS"); do
	# exit 1: the culprit is over --fail-on-growth
	expect_exit 1 "$LP" bisect "$pid" --steps "$STEPS/noisy12.rb" \
		--times 10000 --fail-on-growth 32 --json
	c=$(json_get "$OUT" 'j["culprits"].map { |c| c["steps"].join("+") }.join(" ")')
	t=$(json_get "$OUT" 'j["trial_count"]')
	echo "run $i: culprits '$c' in $t trials"
	[ "$c" = step07 ] || fail "run $i: culprits '$c', want step07: $(json_get "$OUT" 'j["trials"].map { |t| "#{t["steps"]}: #{t["kind"]} #{t["bytes_per_call"].round}" }.join("; ")')"
	[ "$t" -le 11 ] || fail "run $i: $t trials, bound 2*log2(12)+4 = 11"
	target_ok "$pid"
done
echo ok
