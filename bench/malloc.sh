# bench/malloc: cost of `leakprobe malloc` on a malloc-heavy Ruby loop
# (require of an already loaded feature with a Pathname in $LOAD_PATH).  Measured
# in the same run, on the same target: iterations per second without
# tracing, with uprobes that only count (--count-only: the floor any
# uprobe tracer pays), with full tracing, and with --sample 10; then the
# memory leakprobe used while 1M allocations were outstanding.
#
# Goals: full tracing <= 5x slowdown and within 1.5x of the counting
# floor; <= 200 MB for 1M outstanding allocations.
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
SECS=${MALLOC_BENCH_SECS:-3}
ROUNDS=${MALLOC_BENCH_ROUNDS:-3}
STACKS=${MALLOC_BENCH_STACKS:-}	# e.g. "1024 8192": other --stack-bytes
tmp=$(mktemp -d)
tpid=""
trap '[ -n "$tpid" ] && kill -9 $tpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

if [ "$(id -u)" != 0 ]; then
	echo "bench malloc: needs root (BPF); skipped"
	exit 0
fi

# The loop prints "iterations wall-seconds" about every 50 ms.
cat >"$tmp/loop.rb" <<'EOF'
require "set"
require "pathname"
# A Pathname in $LOAD_PATH makes every require of a loaded feature expand
# the load path again: the path of ruby bug #14372, without its leak.
$LOAD_PATH.unshift Pathname.new("/nonexistent")
io = IO.new(3); io.puts "ready"; io.close
$stdout.sync = true
n = 0
last = 0.0
loop do
  200.times { require "set" }
  n += 200
  now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  if now - last >= 0.05
    puts "#{n} #{Time.now.to_f}"
    last = now
  end
end
EOF
mkfifo "$tmp/ready"
"$RUBY" "$tmp/loop.rb" 3>"$tmp/ready" >"$tmp/rate" &
tpid=$!
read -r _ <"$tmp/ready"
sleep 1

now() { date +%s.%N; }

# rate T0 T1: iterations per second between wall times T0 and T1
rate() {
	awk -v a="$1" -v b="$2" '
		$2 >= a && !n0 { n0 = $1; t0 = $2 }
		$2 <= b { n1 = $1; t1 = $2 }
		END { if (t1 > t0) printf "%.0f", (n1 - n0) / (t1 - t0); else print 0 }' "$tmp/rate"
}

# phase NAME none|trace [leakprobe malloc options]: iterations/s over
# SECS seconds, with leakprobe tracing for "trace" (given a second to
# attach first).  Appends to $tmp/NAME.rates.
phase() {
	local name=$1 mode=$2; shift 2
	local lp="" t0 t1
	if [ "$mode" = trace ]; then
		"$LP" malloc "$tpid" --duration $((SECS + 2)) --json "$@" \
			>"$tmp/$name.json" 2>"$tmp/$name.err" &
		lp=$!
		sleep 1		# attach
	fi
	t0=$(now); sleep "$SECS"; t1=$(now)
	if [ -n "$lp" ]; then
		wait "$lp" || { echo "leakprobe failed: $(cat "$tmp/$name.err")"; exit 1; }
	fi
	rate "$t0" "$t1" >>"$tmp/$name.rates"; echo >>"$tmp/$name.rates"
}

for r in $(seq "$ROUNDS"); do
	phase base none
	phase count trace --count-only
	phase full trace
	phase sample10 trace --sample 10
	for sb in $STACKS; do
		phase "sb$sb" trace --stack-bytes "$sb"
	done
done

# best of the rounds: the VM's noise only ever slows a phase down
best() { sort -g "$tmp/$1.rates" | tail -n 1; }
base=$(best base); count=$(best count); full=$(best full)
jget() { "$RUBY" -rjson -e 'j = JSON.parse(File.read(ARGV[0])); puts(eval(ARGV[1]))' "$@"; }

printf "%-28s %12s %10s\n" "malloc-heavy loop" "iter/s" "slowdown"
printf "%-28s %12s %10s\n" "no tracing (baseline)" "$base" "1.00x"
for p in count full sample10; do
	v=$(best $p)
	case $p in
	count) label="uprobes, count only (floor)";;
	full) label="full tracing";;
	sample10) label="full tracing, --sample 10";;
	esac
	awk -v b="$base" -v v="$v" -v l="$label" 'BEGIN {
		printf "%-28s %12d %9.2fx\n", l, v, v ? b / v : 0 }'
done
awk -v c="$count" -v f="$full" 'BEGIN {
	printf "full tracing vs counting floor: %.2fx (goal <= 1.5x)\n", f ? c / f : 0 }'
awk -v b="$base" -v f="$full" 'BEGIN {
	printf "full tracing slowdown: %.2fx (goal <= 5x)\n", f ? b / f : 0 }'
for sb in $STACKS; do
	awk -v b="$base" -v v="$(best "sb$sb")" -v s="$sb" 'BEGIN {
		printf "full tracing, --stack-bytes %5d: %d iter/s, %.2fx\n", s, v, v ? b / v : 0 }'
done
echo "full tracing: $(jget "$tmp/full.json" '"#{j["recorded"]} allocations recorded, #{j["cost"]["unwound"]} unwound, losses #{j["losses"].select { |_, v| v > 0 }}, leakprobe peak RSS #{j["cost"]["rss_peak"] >> 20} MiB, BPF maps #{j["cost"]["bpf_bytes"] >> 20} MiB"')"

# Memory with 1M outstanding allocations (1M strings of 100 bytes, each
# a malloc of 101 bytes, kept alive by the target).
"$LP" malloc "$tpid" --json --times 1 --warmup 0 --max-outstanding 4M \
	--eval '$keep = Array.new(1_000_000) { "x" * 100 }' \
	>"$tmp/mem.json" 2>"$tmp/mem.err" ||
	{ echo "1M run failed: $(cat "$tmp/mem.err")"; exit 1; }
jget "$tmp/mem.json" 'c = j["cost"]; o = j["outstanding"]
	"1M outstanding: #{o["count"]} allocations outstanding (#{o["bytes"] >> 20} MiB), " \
	"leakprobe peak RSS #{c["rss_peak"] >> 20} MiB (goal <= 200 MB), " \
	"BPF maps #{c["bpf_bytes"] >> 20} MiB, unwound #{c["unwound"]}, " \
	"#{(j["seconds"]).round(2)} s window"'
