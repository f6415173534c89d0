# bench/bisect_noise: 20 runs of tests/integ/test_bisect_noise.sh's case
# (one step leaking 64 B per call among 12 on a noisy target, three steps
# keeping an object now and then): phantom culprits (goal 0) and the most
# trials of a run (goal <= 2*log2(12) + 4 = 11).  BISECT_NOISE_RUNS=N.
set -u
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${BISECT_NOISE_RUNS:-20}
t0=$(date +%s)
out=$(LEAKPROBE=${LEAKPROBE:?} RUBY=${RUBY:-ruby} BISECT_NOISE_RUNS=$RUNS \
	bash "$here/../tests/integ/test_bisect_noise.sh" 2>&1)
rc=$?
t1=$(date +%s)
runs=$(grep -c '^run [0-9]*: culprits' <<<"$out")
wrong=$(grep '^run [0-9]*: culprits' <<<"$out" | grep -vc "culprits 'step07'")
most=$(grep -o 'in [0-9]* trials' <<<"$out" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }')
printf '\nbisect, 12 steps (one leaks 64 B per call), noisy target, 10,000 calls per trial\n'
printf '  runs %d of %d, phantom or wrong culprits %d (goal 0), most trials %d (goal <= 11), %d s\n' \
	"$runs" "$RUNS" "$wrong" "$most" $((t1 - t0))
[ $rc = 0 ] || { echo "$out" | tail -n 5; exit 1; }
