# leakprobe malloc: usage errors, targets that are gone or not Ruby, BPF
# unusable (capabilities dropped with setpriv), --fail-on-bytes, SIGINT
# ending a --duration window early, a target exiting while traced,
# --count-only, and a snippet that raises.  Exit codes per DESIGN §9.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf

# usage: 2
expect_exit 2 "$LP" malloc
expect_exit 2 "$LP" malloc 1 --bogus
expect_exit 2 "$LP" malloc abc --duration 1
expect_exit 2 "$LP" malloc 1
grep -q 'either --duration SEC or --eval CODE' <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" malloc 1 --duration 1 --eval nil
expect_exit 2 "$LP" malloc 1 --duration 0
expect_exit 2 "$LP" malloc 1 --duration 1 --stack-bytes 100
expect_exit 2 "$LP" malloc 1 --duration 1 --stack-bytes 1001
grep -q 'multiple of 8' <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" malloc 1 --duration 1 --sample 0
expect_exit 2 "$LP" malloc 1 --duration 1 --frames 65
expect_exit 2 "$LP" malloc 1 --duration 1 --max-outstanding 10
expect_exit 2 "$LP" malloc 1 --eval nil --times 0
expect_exit 0 "$LP" malloc --help
grep -q -- '--stack-bytes' <<<"$OUT" || fail "help"

# no such process: 3
true & dead=$!; wait "$dead"
expect_exit 3 "$LP" malloc "$dead" --duration 1
grep -q "no process with pid $dead" <<<"$ERR" || fail "message: $ERR"

# BPF unusable: 4, naming what is missing; the target is not touched
start_target leaks.rb
pid=$TARGET_PID
malloc_at=$(libc_addr "$pid" malloc)
orig=$(first_byte "$pid" "$malloc_at")
expect_exit 4 setpriv --bounding-set=-bpf,-perfmon,-sys_admin \
	--inh-caps=-bpf,-perfmon,-sys_admin -- "$LP" malloc "$pid" --duration 1
grep -q 'lacks CAP_BPF and CAP_PERFMON' <<<"$ERR" || fail "message: $ERR"
grep -q 'run it as root' <<<"$ERR" || fail "no fix in the message: $ERR"
expect_exit 4 setpriv --bounding-set=-bpf,-sys_admin --inh-caps=-bpf,-sys_admin \
	-- "$LP" malloc "$pid" --eval nil
grep -q 'lacks CAP_BPF (' <<<"$ERR" || fail "message: $ERR"
[ "$(first_byte "$pid" "$malloc_at")" = "$orig" ] || fail "target touched"
target_ok "$pid"

# --fail-on-bytes: 1 when a site holds that much, else 0
expect_exit 1 "$LP" malloc "$pid" --eval 'Fiddle.malloc(256)' --times 1000 \
	--fail-on-bytes 100k
expect_exit 0 "$LP" malloc "$pid" --eval 'Fiddle.malloc(256)' --times 1000 \
	--fail-on-bytes 100M

# a snippet that raises: 5, and nothing stays attached
expect_exit 5 "$LP" malloc "$pid" --eval 'raise ArgumentError, "boom"' --times 10
grep -q 'ArgumentError: boom' <<<"$ERR" || fail "message: $ERR"
[ "$(first_byte "$pid" "$malloc_at")" = "$orig" ] || fail "probe left after raise"

# --count-only: calls counted, no records, no sites
expect_exit 0 "$LP" malloc "$pid" --json --count-only \
	--eval '"x" * 1000' --times 2000
[ "$(json_get "$OUT" 'j["count_only"]')" = true ] || fail "count_only"
[ "$(json_get "$OUT" 'j["calls"]["malloc"] >= 2000')" = true ] || fail "calls: $OUT"
[ "$(json_get "$OUT" 'j["sites"].size')" = 0 ] || fail "sites with --count-only"

# SIGINT ends a --duration window early: the report is printed, exit 0
"$LP" malloc "$pid" --duration 120 --json >"$T/int.out" 2>"$T/int.err" &
lp=$!
probed() { [ "$(first_byte "$pid" "$malloc_at")" = cc ]; }
wait_until 20 probed || fail "probes never appeared: $(cat "$T/int.err")"
kill -INT "$lp"
wait "$lp"; rc=$?
[ "$rc" = 0 ] || fail "SIGINT: exit $rc: $(cat "$T/int.err")"
OUT=$(cat "$T/int.out")
[ "$(json_get "$OUT" 'j["interrupted"]')" = true ] || fail "not marked interrupted"
[ "$(json_get "$OUT" 'j["seconds"] < 120')" = true ] || fail "window not cut short"
[ "$(first_byte "$pid" "$malloc_at")" = "$orig" ] || fail "probe left after SIGINT"

# --eval on a process that is not Ruby: 3, nothing left attached
sleep 300 &
spid=$!; _pids="$_pids $spid"
s_malloc=$(libc_addr "$spid" malloc)
s_orig=$(first_byte "$spid" "$s_malloc")
expect_exit 3 "$LP" malloc "$spid" --eval nil
[ "$(first_byte "$spid" "$s_malloc")" = "$s_orig" ] || fail "probe left in sleep"
# --duration works on any process
expect_exit 0 "$LP" malloc "$spid" --duration 0.2 --json
[ "$(json_get "$OUT" 'j["sites"].size')" = 0 ] || fail "sleep has sites?"
alive "$spid" || fail "sleep died"

# the target exits while traced: 3
mkfifo "$T/cmd" "$T/ack"
start_target leaky_fiddle.rb "$T/cmd" "$T/ack"
fpid=$TARGET_PID
exec 5<>"$T/cmd"
f_malloc=$(libc_addr "$fpid" malloc)
"$LP" malloc "$fpid" --duration 120 >"$T/exit.out" 2>"$T/exit.err" &
lp=$!
probed_f() { [ "$(first_byte "$fpid" "$f_malloc")" = cc ]; }
wait_until 20 probed_f || fail "probes never appeared in $fpid"
echo exit >&5
wait "$lp"; rc=$?
[ "$rc" = 3 ] || fail "target exit while traced: exit $rc: $(cat "$T/exit.err")"
grep -q 'exited while it was traced' "$T/exit.err" || fail "message: $(cat "$T/exit.err")"
echo ok
