# A Ruby whose sleep is a condition-variable wait no signal ends (2.4,
# 2.5): with its symbols, the main thread asleep in `sleep` (untimed) is
# woken in place and the snippet runs, the sleep goes on; stripped (no
# rb_threadptr_interrupt anywhere), leakprobe does not gamble: exit 4 at
# once with the "cannot wake" message naming the missing symbol, and the
# target untouched (same maps, no files, not traced, still asleep, the
# snippet never ran).  Needs a prepared Ruby 2.4/2.5 build
# (tests/rubies/build); skipped without one.
. "$(dirname "$0")/lib.sh"

RDIR=${LP_RUBIES_DIR:-/var/cache/leakprobe-rubies}
OLD=""
for r in "$RDIR"/ruby-2.4.*/bin/ruby "$RDIR"/ruby-2.5.*/bin/ruby; do
	[ -x "$r" ] && nm -a "$r" 2>/dev/null | grep -q ' t rb_threadptr_interrupt$' &&
		{ OLD=$r; break; }
done
[ -n "$OLD" ] || skip "no Ruby 2.4/2.5 with symbols in $RDIR (tests/rubies/build 2.4.3)"
command -v strip >/dev/null || skip "strip (binutils) missing"
cp "$OLD" "$T/ruby-stripped"
strip --strip-all "$T/ruby-stripped"
nm "$T/ruby-stripped" 2>&1 | grep -q 'no symbols' || fail "strip left a symbol table"

cat >"$T/app.rb" <<'EOF'
# trap USR1: say whether the snippet ran, then sleep on (untimed)
out = ARGV[0]
trap("USR1") { File.write(out, "usr1 #{$lp_ran.inspect}\n") }
File.open(ARGV[1], "w") { |f| f.puts "ready" }
sleep
File.write(out, "sleep returned\n")
EOF

# start RUBY: the app asleep; sets PID
start() {
	rm -f "$T/app.out" "$T/ready"
	mkfifo "$T/ready"
	"$1" "$T/app.rb" "$T/app.out" "$T/ready" 2>"$T/app.err" &
	PID=$!
	_pids="$_pids $PID"
	[ "$(cat "$T/ready")" = ready ] || fail "app did not start: $(cat "$T/app.err")"
	for ((i = 0; i < 3000; i++)); do
		[ "$(awk '{ print $3 }' /proc/$PID/task/$PID/stat)" = S ] && return
		sleep 0.01
	done
	fail "app's main thread never slept"
}

# usr1 PID: the trap's report (the app goes on sleeping after it)
usr1() {
	rm -f "$T/app.out"
	kill -USR1 "$1"
	for ((i = 0; i < 3000; i++)); do	# a busy machine: up to 30 s
		[ -s "$T/app.out" ] && break
		sleep 0.01
	done
	cat "$T/app.out"
}

# 1. with symbols: woken in place, the snippet runs, sleep goes on
start "$OLD"
expect_exit 0 "$LP" attach "$PID" --eval '$lp_ran = 1' --times 20 --batch 10 \
	--warmup 1 --timeout 20
grep -q '^measure' <<<"$OUT" || fail "no batches: $OUT"
[ "$(usr1 "$PID")" = "usr1 1" ] || fail "snippet did not run: $(cat "$T/app.out")"
[ "$(awk '{ print $3 }' /proc/$PID/task/$PID/stat)" = S ] || fail "sleep ended"
kill "$PID"

# 2. stripped: refused before anything is done
start "$T/ruby-stripped"
maps=$(cat /proc/$PID/maps)
expect_exit 4 "$LP" attach "$PID" --eval '$lp_ran = 1' --times 20 --batch 10 \
	--warmup 1 --timeout 20
grep -q 'cannot wake the main thread' <<<"$ERR" || fail "not the cannot-wake error: $ERR"
grep -q 'rb_threadptr_interrupt' <<<"$ERR" || fail "missing symbol not named: $ERR"
grep -q 'untimed pthread_cond_wait' <<<"$ERR" || fail "the wait not named: $ERR"
grep -q 'did not start within' <<<"$ERR" && fail "waited for the timeout: $ERR"
[ "$(wc -l <<<"$ERR")" = 1 ] || fail "more than one line: $ERR"
[ "$(cat /proc/$PID/maps)" = "$maps" ] || fail "the target's mappings changed"
grep -q '^TracerPid:[[:space:]]*0$' /proc/$PID/status || fail "still traced"
ls -d /tmp/leakprobe."$PID".* 2>/dev/null && fail "files left behind"
[ "$(usr1 "$PID")" = "usr1 nil" ] || fail "the snippet ran or the app broke: $(cat "$T/app.out")"
[ "$(awk '{ print $3 }' /proc/$PID/task/$PID/stat)" = S ] || fail "sleep ended"
[ -s "$T/app.err" ] && fail "app stderr: $(cat "$T/app.err")"
echo ok
