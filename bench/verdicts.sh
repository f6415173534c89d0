# bench/verdicts: how often `attach` cries wolf, and how often it finds a
# real leak, on a quiet target (main thread asleep: tests/integ/targets/
# leaks.rb) and a noisy one (threads allocating and freeing Ruby objects
# and malloc'd memory all the time: noisy_worker.rb, two workers, ~20,000
# short-lived objects a second), 10,000 calls per run.
#  - Snippets that do not leak (strings, hashes, JSON round trips, `require`
#    of a loaded feature, a cache that fills during warm-up and stops), in
#    turn, VERDICT_RUNS runs per target (default 200): how many would exit
#    1 under --fail-on-growth 32 (goal 0) and how many get any leak verdict
#    at the default floor (goal <= 1 %).
#  - Leaks of 16, 32 and 64 B per call, native (Fiddle.malloc, never freed),
#    Ruby-held growth (an Array that grows) and new Ruby objects retained,
#    VERDICT_LEAK_RUNS runs per cell (default VERDICT_RUNS / 5), each cell
#    on a fresh target: the share that gets a leak verdict of the right
#    kind (goal >= 95 % at 32 B).
# Each non-leaking run is made twice: with the default floor (any leak
# verdict?) and with --fail-on-growth 32 (exit 1?).
#   VERDICT_RUNS=20 for a quick run.
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
RUNS=${VERDICT_RUNS:-200}
LRUNS=${VERDICT_LEAK_RUNS:-$(( (RUNS + 4) / 5 ))}
TIMES=${VERDICT_TIMES:-10000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lp-verdicts.XXXXXX") || exit 1
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT

# The targets of the integration tests, with json loaded for the
# snippets: leaks.rb (quiet) and noisy_worker.rb (noisy).
TARGETS=$(cd "$(dirname "$0")/../tests/integ/targets" && pwd)

start() {	# start quiet|noisy: sets TPID once the target says "ready"
	local script=leaks.rb line=""
	[ "$1" = noisy ] && script=noisy_worker.rb
	rm -f "$tmp/ready"
	mkfifo "$tmp/ready" || exit 1
	LP_READY_FD=3 "$RUBY" -rjson "$TARGETS/$script" 3>"$tmp/ready" \
		>/dev/null 2>"$tmp/target.err" &
	TPID=$!
	pids="$pids $TPID"
	read -r line <"$tmp/ready"
	[ "$line" = ready ] || { echo "target $script did not start: $(cat "$tmp/target.err")" >&2; exit 1; }
}

# One run: prints "KIND NATIVE_LO RUBY_LO" (or "error RC").
one() {
	local rc
	"$LP" attach "$TPID" --eval "$1" --times "$TIMES" --json \
		>"$tmp/out" 2>"$tmp/err"; rc=$?
	if [ $rc -ne 0 ]; then echo "error $rc"; return; fi
	"$RUBY" -rjson -e 'v = JSON.parse(File.read(ARGV[0]))["verdict"]
		puts [v["kind"].tr(" ", "_"), v["native_bytes_per_call"]["lo"],
		      v["ruby_bytes_per_call"]["lo"]].join(" ")' "$tmp/out"
}

summary() {
	"$RUBY" -rjson -e 'puts JSON.parse(File.read(ARGV[0]))["verdict"]["summary"]' "$tmp/out"
}

NOLEAK=(
	'"x" * 100 + "y"'
	'{ a: 1, b: [1, 2], c: "s" }.to_a'
	'JSON.parse(JSON.generate({ "a" => [1, 2, "x"], "b" => { "c" => nil } }))'
	'require "json"'
	'($lp_cache ||= {})[rand(64)] ||= "v" * 200'
)
# a 32-byte chunk every other call, every call, a 64-byte chunk
NATIVE16='Fiddle.malloc(24) if ($lp_n = ($lp_n || 0) + 1).odd?'
NATIVE32='Fiddle.malloc(24)'
NATIVE64='Fiddle.malloc(56)'
# objects that exist grow: an Array's buffer, 8 B per element (in steps:
# it is reallocated 1.5 times larger when full)
GROW16='($lp_a16 ||= []).push(1, 2)'
GROW32='($lp_a32 ||= []).push(1, 2, 3, 4)'
GROW64='($lp_a64 ||= []).push(1, 2, 3, 4, 5, 6, 7, 8)'
# new objects retained: a 40 B slot and 8 B of the Array that holds it,
# every third call, two of three, every call
OBJ16='(($lp_o16 ||= []) << Object.new) if ($lp_c16 = ($lp_c16 || 0) + 1) % 3 == 0'
OBJ32='(($lp_o32 ||= []) << Object.new) if ($lp_c32 = ($lp_c32 || 0) + 1) % 3 != 0'
OBJ64='($lp_o64 ||= []) << Object.new'

results="$tmp/results"
: >"$results"
stop() {
	kill -9 "$TPID" 2>/dev/null
	wait "$TPID" 2>/dev/null
}

for mode in quiet noisy; do
	start "$mode"
	fp=0 any=0 err=0
	for i in $(seq 0 $((RUNS - 1))); do
		s=${NOLEAK[$((i % ${#NOLEAK[@]}))]}
		set -- $(one "$s")
		case $1 in
		error) err=$((err + 1));;
		native_leak|ruby-object_leak|ruby-held_growth)
			any=$((any + 1))
			echo "  $mode: leak verdict for '$s': $(summary)" >&2;;
		esac
		# the same snippet again under --fail-on-growth 32: exit 1?
		"$LP" attach "$TPID" --eval "$s" --times "$TIMES" \
			--fail-on-growth 32 --json >"$tmp/out32" 2>/dev/null
		if [ $? = 1 ]; then
			fp=$((fp + 1))
			echo "  $mode: exit 1 under --fail-on-growth 32 for '$s'" >&2
		fi
	done
	echo "$mode non-leaking $RUNS $fp $any $err" >>"$results"
	stop
	for kind in native grow obj; do
		for size in 16 32 64; do
			# a fresh target per cell: the free memory that earlier
			# runs' garbage left in the helper's malloc arena would
			# hold a native leak without any rss growth
			start "$mode"
			var=$(echo "$kind$size" | tr a-z A-Z)
			s=${!var}
			hit=0 err=0
			for _ in $(seq "$LRUNS"); do
				set -- $(one "$s")
				case "$kind:$1" in
				*:error) err=$((err + 1));;
				native:native_leak) hit=$((hit + 1));;
				grow:ruby-held_growth|obj:ruby-object_leak)
					hit=$((hit + 1));;
				*) echo "  $mode: $kind $size B/call missed: $(summary)" >&2;;
				esac
			done
			echo "$mode $kind-$size $LRUNS $hit - $err" >>"$results"
			stop
		done
	done
done

printf '\nverdicts, %s calls per run (attach defaults: 10 batches, controls)\n' "$TIMES"
printf '  %-6s %-22s %5s %18s %18s %6s\n' target case runs \
	"exit 1 @32 (goal 0)" "leak verdict" errors
while read -r mode what n fp any err; do
	if [ "$what" = non-leaking ]; then
		pct=$(awk -v a="$any" -v n="$n" 'BEGIN { printf "%.1f", n ? 100 * a / n : 0 }')
		printf '  %-6s %-22s %5d %18d %11d (%s %%) %6d   goal <= 1 %%\n' \
			"$mode" "no leak (5 snippets)" "$n" "$fp" "$any" "$pct" "$err"
	else
		pct=$(awk -v a="$fp" -v n="$n" 'BEGIN { printf "%.1f", n ? 100 * a / n : 0 }')
		goal=""
		[ "${what#*-}" = 32 ] && goal="   goal >= 95 %"
		case ${what%-*} in
		native) label="native";;
		grow) label="ruby-held growth";;
		*) label="ruby-object";;
		esac
		printf '  %-6s %-22s %5d %18s %11d (%s %%) %6d%s\n' "$mode" \
			"$label ${what#*-} B" "$n" - "$fp" "$pct" \
			"$err" "$goal"
	fi
done <"$results"
