# SIGKILL of leakprobe in the middle of malloc tracing, 6 times (4 with
# --duration, 2 inside a snippet run): the target keeps running and
# answers afterwards, its allocator carries no breakpoint any more, and
# no BPF program of the killed leakprobe is left in the kernel.  Then a
# normal run on the same target works.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/build.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf
command -v bpftool >/dev/null || skip "bpftool not installed"
build_leakext

mkfifo "$T/cmd" "$T/ack"
start_target ext/target.rb "$LEAKEXT" 3 "$T/cmd" "$T/ack"
pid=$TARGET_PID
exec 5<>"$T/cmd" 6<>"$T/ack"
ping() {
	local line=""
	echo ping >&5
	read -r -t 10 line <&6 || true
	[ "$line" = pong ] || fail "target $pid does not answer (got '$line')"
}
ping
malloc_at=$(libc_addr "$pid" malloc)
free_at=$(libc_addr "$pid" free)
orig=$(first_byte "$pid" "$malloc_at")
[ "$orig" != cc ] || fail "malloc already carries a breakpoint"

probed() { [ "$(first_byte "$pid" "$malloc_at")" = cc ]; }
clean() {
	[ "$(first_byte "$pid" "$malloc_at")" = "$orig" ] &&
	[ "$(first_byte "$pid" "$free_at")" != cc ]
}
gone() {
	local id
	for id in $ids; do
		bpftool prog show id "$id" >/dev/null 2>&1 && return 1
	done
	return 0
}

flowing() { [ "$(records_sent "$1")" -gt 100 ]; }

trial() {	# trial N ARGS...
	local n=$1; shift
	"$LP" malloc "$pid" "$@" >"$T/lp.out" 2>"$T/lp.err" &
	local lp=$!
	wait_until 20 probed || fail "trial $n: probes never appeared: $(cat "$T/lp.err")"
	ids=$(bpf_prog_ids "$lp")
	[ -n "$ids" ] || fail "trial $n: no BPF program held by leakprobe $lp"
	# in the middle of tracing: records are flowing (the workers
	# allocate all the time)
	wait_until 20 flowing "$lp" || fail "trial $n: no records sent"
	kill -9 "$lp"
	wait "$lp" 2>/dev/null
	alive "$pid" || fail "trial $n: target died"
	wait_until 10 clean || fail "trial $n: a breakpoint stayed in the target"
	wait_until 10 gone || fail "trial $n: BPF programs $ids still loaded"
	ping
	[ "$(tracer_of "$pid")" = 0 ] || fail "trial $n: target still traced"
	echo "trial $n: killed $lp ($*): target answers, probes and programs gone"
}

for n in 1 2 3 4; do
	trial "$n" --duration 60
done
for n in 5 6; do
	trial "$n" --eval 'LeakExt.churn(100); "x" * 100' --times 100000000 --batch 20000
done

# The killed snippet runs must end: the helper sees its channel close.
# A normal run afterwards works and finds the leak.
expect_exit 0 "$LP" malloc "$pid" --json --eval 'LeakExt.leak(300)' --times 300
[ "$(site_get "$OUT" 'top["bytes"]')" = 90000 ] ||
	fail "run after the kills: $(site_get "$OUT" 'top["bytes"]') bytes"
wait_until 10 clean || fail "breakpoint left after a normal run"
ping
target_ok "$pid"
echo ok
