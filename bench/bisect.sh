# bench/bisect: wall time and trials of `bisect` for n = 8, 16, 32 steps
# with one native culprit, next to the n trials a one-by-one search needs
# (and its time, estimated from the measured time per trial).
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'kill -9 $tpid 2>/dev/null; wait $tpid 2>/dev/null; rm -rf "$tmp"' EXIT

mkfifo "$tmp/ready"
LP_READY_FD=3 "$RUBY" "$here/../tests/integ/targets/worker.rb" 3>"$tmp/ready" &
tpid=$!
read -r _ <"$tmp/ready"

printf '\nbisect, one culprit (Fiddle.malloc(256)), --times 2000 per trial\n'
printf '  %4s %8s %10s %12s %14s %16s\n' n trials "wall (s)" "s/trial" \
	"one-by-one" "one-by-one est."
for n in 8 16 32; do
	t0=$(date +%s%N)
	"$LP" bisect "$tpid" --steps "$here/steps/steps$n.rb" --times 2000 \
		--batch 200 --json >"$tmp/out" || { echo "bisect n=$n failed"; exit 1; }
	t1=$(date +%s%N)
	"$RUBY" -rjson -e '
		j = JSON.parse(File.read(ARGV[0]))
		n = ARGV[1].to_i; secs = (ARGV[2].to_i - ARGV[3].to_i) / 1e9
		t = j["trial_count"]
		c = j["culprits"].map { |x| x["steps"].join("+") }.join(",")
		printf("  %4d %8d %10.2f %12.3f %11d tr %14.2f s   culprit %s\n",
		       n, t, secs, secs / t, n, secs / t * n, c)' \
		"$tmp/out" "$n" "$t1" "$t0"
done
