# bench/attach: 100 runs of `attach --eval nil --times 1` and of `eval PID
# nil` on a sleeping Ruby target: end-to-end wall time and how long the
# main thread was ptrace-stopped (summed over the start's stops); next to
# the same call made by a debugger
# (lldb's `expr`, and gdb's `call` where it works) in the same run.  Goal:
# eval's round trip at least 100x faster than the debugger's.  Then the
# attach runs again with a busy loop on every core ("loaded"), and the
# distribution of the stop next to the idle one.
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
RUNS=${ATTACH_RUNS:-100}
DBG_RUNS=${DEBUGGER_RUNS:-5}
tmp=$(mktemp -d)
hogs=""
trap 'kill -9 $tpid $hogs 2>/dev/null; wait $tpid $hogs 2>/dev/null; rm -rf "$tmp"' EXIT

mkfifo "$tmp/ready"
"$RUBY" -e 'io = IO.new(3); io.puts "ready"; io.close; sleep' 3>"$tmp/ready" &
tpid=$!
read -r _ <"$tmp/ready"

# us T0 T1: microseconds between two $EPOCHREALTIME readings
us() { echo "$1 $2" | awk '{ printf "%d\n", ($2 - $1) * 1e6 }'; }

# percentile FILE P: the P-th percentile of the numbers in FILE
pct() { sort -g "$1" | awk -v p="$2" '{ a[NR] = $1 } END {
	i = int((NR - 1) * p / 100 + 0.5) + 1; print a[i] }'; }

# measure SUFFIX: RUNS runs, figures into $tmp/{wall,stop,held,unmap,kill}SUFFIX
measure() {
	local sfx=$1 i t0 t1
	for f in wall stop held unmap kill back nstops; do : >"$tmp/$f$sfx"; done
	for i in $(seq "$RUNS"); do
		t0=$EPOCHREALTIME	# bash's clock: no fork of date(1)
		"$LP" attach "$tpid" --eval nil --times 1 --json >"$tmp/out" 2>&1 ||
			{ echo "run $i failed: $(cat "$tmp/out")"; exit 1; }
		t1=$EPOCHREALTIME
		us $t0 $t1 >>"$tmp/wall$sfx"
		# back_ms and stops exist since the steps run detached (an
		# older binary has neither: nothing is written for them)
		"$RUBY" -rjson -e 'j = JSON.parse(File.read(ARGV[0]))["timing"]
			%w[stop_ms held_ms unmap_stop_ms kill_window_ms back_ms].zip(ARGV[1..]).each { |k, f|
			  next unless j[k] && j[k] > 0
			  File.write(f, "#{(j[k] * 1000).round(1)}\n", mode: "a") }
			File.write(ARGV[6], "#{j["stops"]}\n", mode: "a") if j["stops"]' \
			"$tmp/out" "$tmp/stop$sfx" "$tmp/held$sfx" "$tmp/unmap$sfx" \
			"$tmp/kill$sfx" "$tmp/back$sfx" "$tmp/nstops$sfx"
	done
}
measure ""

# eval: one call, no GC.start, no warm-up; the value must come back
: >"$tmp/eval"
for i in $(seq "$RUNS"); do
	t0=$EPOCHREALTIME
	"$LP" eval "$tpid" nil >"$tmp/out" 2>&1 ||
		{ echo "eval run $i failed: $(cat "$tmp/out")"; exit 1; }
	t1=$EPOCHREALTIME
	[ "$(cat "$tmp/out")" = nil ] || { echo "eval run $i printed: $(cat "$tmp/out")"; exit 1; }
	us $t0 $t1 >>"$tmp/eval"
done

# dbg_time NAME CMD...: median wall time in us, or "fails".  The call
# evaluates "1", whose VALUE is 3: a run counts only if the debugger
# printed "= 3", the proof that the call returned (gdb goes on to the
# next command after a failed call, so a marker echoed later proves nothing).
dbg_time() {
	local name=$1; shift
	: >"$tmp/$name"
	for i in $(seq "$DBG_RUNS"); do
		t0=$EPOCHREALTIME
		timeout 60 "$@" >"$tmp/$name.out" 2>&1
		t1=$EPOCHREALTIME
		if ! grep -q "= 3\$" "$tmp/$name.out"; then
			grep -m1 -iE "error|couldn't" "$tmp/$name.out" >"$tmp/$name.why"
			echo "fails"
			return
		fi
		us $t0 $t1 >>"$tmp/$name"
	done
	pct "$tmp/$name" 50
}

lldb_bin=$(command -v lldb-16 || command -v lldb || true)
lldb_us=fails; gdb_us=fails
if [ -n "$lldb_bin" ]; then
	lldb_us=$(dbg_time lldb "$lldb_bin" -p "$tpid" --batch \
		-o 'expr (long)rb_eval_string("1")')
fi
if command -v gdb >/dev/null; then
	gdb_us=$(dbg_time gdb gdb -p "$tpid" -batch -nx \
		-ex 'print (long)rb_eval_string("1")')
fi
kill -0 "$tpid" || { echo "target died under a debugger"; exit 1; }

# the same with a busy loop on every core
ncpu=$(nproc)
for i in $(seq "$ncpu"); do
	sh -c 'while :; do :; done' &
	hogs="$hogs $!"
done
measure .load
kill -9 $hogs 2>/dev/null; wait $hogs 2>/dev/null; hogs=""

w50=$(pct "$tmp/wall" 50); w99=$(pct "$tmp/wall" 99)
printf '\nattach --eval nil --times 1, %d runs on a sleeping ruby (%s)\n' \
	"$RUNS" "$("$RUBY" -e 'print RUBY_VERSION')"
printf '  %-40s %10s %10s\n' "" "median" "p99"
t0=$EPOCHREALTIME; /bin/true; t1=$EPOCHREALTIME
printf '  %-40s %8.2f ms\n' "(fork+exec of /bin/true, for scale)" \
	"$(echo "$(us $t0 $t1) / 1000" | bc -l)"
printf '  %-40s %8.2f ms %8.2f ms\n' "end to end (wall)" \
	"$(echo "$w50 / 1000" | bc -l)" "$(echo "$w99 / 1000" | bc -l)"
e50=$(pct "$tmp/eval" 50); e99=$(pct "$tmp/eval" 99)
printf '  %-40s %8.2f ms %8.2f ms\n' "eval PID nil, end to end (wall)" \
	"$(echo "$e50 / 1000" | bc -l)" "$(echo "$e99 / 1000" | bc -l)"
printf '  %-40s %8.1f us %8.1f us\n' "main thread stopped (stops summed)" \
	"$(pct "$tmp/stop" 50)" "$(pct "$tmp/stop" 99)"
printf '  %-40s %8.1f us %8.1f us\n' "  of which held after the stop" \
	"$(pct "$tmp/held" 50)" "$(pct "$tmp/held" 99)"
if [ -s "$tmp/nstops" ]; then
	printf '  %-40s %8s    %8s\n' "  stops per start" \
		"$(pct "$tmp/nstops" 50)" "$(pct "$tmp/nstops" 99)"
fi
printf '  %-40s %8.1f us %8.1f us\n' "a step's registers live" \
	"$(pct "$tmp/kill" 50)" "$(pct "$tmp/kill" 99)"
if [ -s "$tmp/back" ]; then
	printf '  %-40s %8.1f us %8.1f us   (%d of %d runs seen)\n' \
		"first stop .. thread back in its code" \
		"$(pct "$tmp/back" 50)" "$(pct "$tmp/back" 99)" \
		"$(wc -l <"$tmp/back")" "$RUNS"
fi
printf '  %-40s %8.1f us %8.1f us\n' "unmap stop (the code page)" \
	"$(pct "$tmp/unmap" 50)" "$(pct "$tmp/unmap" 99)"
echo "  other threads stopped: never (only tid == pid is seized)"
for d in lldb gdb; do
	v=${d}_us; v=${!v}
	if [ "$v" = fails ]; then
		printf '  %-40s %s\n' "$d call of rb_eval_string" \
			"fails here: $(cat "$tmp/$d.why" 2>/dev/null)"
	else
		printf '  %-40s %8.2f ms   (attach --times 1 is %.0fx faster, eval %.0fx: goal 100x)\n' \
			"$d call of rb_eval_string (median)" \
			"$(echo "$v / 1000" | bc -l)" "$(echo "$v / $w50" | bc -l)" \
			"$(echo "$v / $e50" | bc -l)"
	fi
done

# the stop under load, next to idle: "stop" is the time the main thread
# spent ptrace-stopped, summed over the start's stops (each step runs
# detached between them); "first stop..back" the time until it was seen
# back in its own code (an upper bound, polled)
printf '\nmain thread stopped, idle vs %d busy loops (%d runs each), us\n' \
	"$ncpu" "$RUNS"
printf '  %-26s %9s %9s %9s %9s %9s\n' "" p50 p90 p99 max "end-to-end p50"
for sfx in "" .load; do
	[ -z "$sfx" ] && name=idle || name=loaded
	printf '  %-26s %9s %9s %9s %9s %9.2f ms\n' "$name: stop" \
		"$(pct "$tmp/stop$sfx" 50)" "$(pct "$tmp/stop$sfx" 90)" \
		"$(pct "$tmp/stop$sfx" 99)" "$(pct "$tmp/stop$sfx" 100)" \
		"$(echo "$(pct "$tmp/wall$sfx" 50) / 1000" | bc -l)"
	printf '  %-26s %9s %9s %9s %9s\n' "$name: held after the stop" \
		"$(pct "$tmp/held$sfx" 50)" "$(pct "$tmp/held$sfx" 90)" \
		"$(pct "$tmp/held$sfx" 99)" "$(pct "$tmp/held$sfx" 100)"
	printf '  %-26s %9s %9s %9s %9s\n' "$name: unmap stop" \
		"$(pct "$tmp/unmap$sfx" 50)" "$(pct "$tmp/unmap$sfx" 90)" \
		"$(pct "$tmp/unmap$sfx" 99)" "$(pct "$tmp/unmap$sfx" 100)"
	if [ -s "$tmp/back$sfx" ]; then
		printf '  %-26s %9s %9s %9s %9s\n' "$name: first stop..back" \
			"$(pct "$tmp/back$sfx" 50)" "$(pct "$tmp/back$sfx" 90)" \
			"$(pct "$tmp/back$sfx" 99)" "$(pct "$tmp/back$sfx" 100)"
	fi
done
