# bench/rubies: per Ruby of the matrix and per shape the main thread is
# parked in, RUNS (20) runs of `attach --eval nil --times 1 --json`: job
# start latency (registered -> the helper's hello, start_ms) and how long
# the main thread was stopped (stop_ms: every stop of the start, the
# inspection of its wait included), p50 and p99; then the time to a
# verdict on the Pathname leak (examples/pathname-leak/app.rb's `work`,
# 5000 calls, --fail-on-growth 32) with the app idle in
# `loop { sleep 1000 }` instead of its blocking read.  The host's ruby is
# the baseline, measured in the same run.
#
# Rubies: $RUBY, the prepared builds in $LP_RUBIES_DIR/ruby-*/bin/ruby
# (tests/rubies/build), and as root the Debian chroots bullseye and trixie
# there (tests/rubies/run makes them).  BENCH_SHAPES and RUNS override.
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
RUNS=${RUNS:-20}
RDIR=${LP_RUBIES_DIR:-/var/cache/leakprobe-rubies}
SHAPES=${BENCH_SHAPES:-loop_sleep sleep_forever join queue cv mutex read}
HERE=$(cd "$(dirname "$0")" && pwd)
SHAPES_RB=$HERE/../tests/rubies/shapes.rb
APP=$HERE/../examples/pathname-leak/app.rb
tpid=""
work=""
trap '[ -n "$tpid" ] && kill -9 $tpid 2>/dev/null; wait 2>/dev/null; [ -n "$work" ] && rm -rf "$work"' EXIT

# percentile FILE P
pct() { sort -g "$1" | awk -v p="$2" '{ a[NR] = $1 } END {
	if (!NR) { print "-"; exit } i = int((NR - 1) * p / 100 + 0.5) + 1; printf "%.2f\n", a[i] }'; }
jnum() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p" "$2" | head -n 1; }
main_state() { awk '{ print $3 }' "/proc/$1/task/$1/stat" 2>/dev/null; }

# setup ROOT: a work directory the ruby sees at $DIR (under ROOT)
setup() {
	mkdir -p "$1/tmp"
	work=$(mktemp -d "$1/tmp/lp-bench.XXXXXX")
	chmod 755 "$work"
	DIR=${work#"$1"}
	cp "$SHAPES_RB" "$work/"
	# Ruby 2.3/2.4 leak only when the app is started by a relative path
	# and the Pathname's path is too long for an embedded string
	mkdir -p "$work/pathname-leak-example/lib"
	sed 's/^jobs\.read$/loop { sleep 1000 }/' "$APP" >"$work/pathname-leak-example/app.rb"
	grep -q 'loop { sleep 1000 }' "$work/pathname-leak-example/app.rb" || { echo "app.rb changed: adapt bench/rubies"; exit 1; }
}

# one_ruby NAME ROOT CMD...: every shape, then the verdict
one_ruby() {
	local name=$1 root=$2 s i f ok
	shift 2
	setup "$root"
	for s in $SHAPES; do
		mkdir "$work/$s"; mkfifo "$work/$s/go" "$work/$s/ready"
		(cd / && exec "$@" "$DIR/shapes.rb" "$s" "$DIR/$s") >/dev/null 2>"$work/$s/err" &
		tpid=$!
		read -r _ <"$work/$s/ready"
		for ((i = 0; i < 500; i++)); do [ "$(main_state $tpid)" = S ] && break; sleep 0.01; done
		: >"$work/start"; : >"$work/stop"; ok=0
		for ((i = 0; i < RUNS; i++)); do
			"$LP" attach "$tpid" --eval nil --times 1 --json --timeout 10 \
				>"$work/out" 2>"$work/lperr" || continue
			ok=$((ok + 1))
			jnum start_ms "$work/out" >>"$work/start"
			jnum stop_ms "$work/out" >>"$work/stop"
		done
		printf '%-8s %-14s %3d/%-3d %9s %9s %9s %9s\n' "$name" "$s" $ok "$RUNS" \
			"$(pct "$work/start" 50)" "$(pct "$work/start" 99)" \
			"$(pct "$work/stop" 50)" "$(pct "$work/stop" 99)"
		[ $ok = "$RUNS" ] || echo "         failed: $(head -n 1 "$work/lperr")"
		kill -9 $tpid 2>/dev/null; wait $tpid 2>/dev/null; tpid=""
	done
	# time to a verdict on the Pathname leak, the app asleep
	local app="$work/pathname-leak-example"
	(cd / && exec "$@" -C "$DIR/pathname-leak-example" app.rb "$DIR/ready") >/dev/null 2>"$app/err" &
	tpid=$!
	for ((i = 0; i < 3000; i++)); do [ -e "$work/ready" ] && break; sleep 0.01; done
	for ((i = 0; i < 500; i++)); do [ "$(main_state $tpid)" = S ] && break; sleep 0.01; done
	local t0=$EPOCHREALTIME rc
	"$LP" attach "$tpid" --eval work --times 5000 --batch 500 --fail-on-growth 32 \
		--timeout 30 >"$work/vout" 2>"$work/verr"
	rc=$?
	local t1=$EPOCHREALTIME
	VERDICTS="$VERDICTS$(printf '%-8s %6.2f s  exit %d  %s' "$name" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" $rc \
		"$(grep -m1 -E 'leak|inconclusive' "$work/vout" "$work/verr" | sed 's/^[^:]*://' | cut -c1-90)")
"
	kill -9 $tpid 2>/dev/null; wait $tpid 2>/dev/null; tpid=""
	rm -rf "$work"; work=""
}

VERDICTS=""
echo "job start and main-thread stop in ms, $RUNS runs per shape (p50, p99)"
printf '%-8s %-14s %7s %9s %9s %9s %9s\n' ruby shape ok "start p50" "start p99" "stop p50" "stop p99"
one_ruby "$("$RUBY" -e 'print RUBY_VERSION')" "" "$RUBY"
for r in "$RDIR"/ruby-*/bin/ruby; do
	[ -x "$r" ] && [ -f "${r%/bin/ruby}/.leakprobe-ok" ] || continue
	one_ruby "$("$r" -e 'print RUBY_VERSION')" "" "$r"
done
if [ "$(id -u)" = 0 ]; then
	for c in bullseye trixie; do
		[ -x "$RDIR/$c/usr/bin/ruby" ] && [ -f "$RDIR/$c/.leakprobe-ok" ] || continue
		one_ruby "$(chroot "$RDIR/$c" /usr/bin/ruby -e 'print RUBY_VERSION')" \
			"$RDIR/$c" chroot "$RDIR/$c" /usr/bin/ruby
	done
fi
echo
echo "time to a verdict: Pathname leak (app.rb's work, 5000 calls, --fail-on-growth 32), app in loop { sleep 1000 }"
printf '%s' "$VERDICTS"
