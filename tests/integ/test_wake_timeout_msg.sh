# When the job cannot start, the message names where the main thread is,
# read from its native stack: a C call blocked on a pthread mutex that is
# never unlocked (a lock wait, the function that waits named), and a C
# call blocked in a syscall it retries after Ruby's wake signal (system(3)
# in wait4); the target is left alive and untraced.  (A busy C function
# is test_attach_cfunc's case.)
. "$(dirname "$0")/lib.sh"
"$RUBY" -rfiddle -e 1 2>/dev/null || skip "fiddle missing"

cat >"$T/lock.rb" <<'EOF2'
require "fiddle"
lock = Fiddle::Function.new(Fiddle.dlopen(nil)["pthread_mutex_lock"],
                            [Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT)
m = Fiddle::Pointer.malloc(64)
m[0, 64] = "\0" * 64          # PTHREAD_MUTEX_INITIALIZER
lock.call(m)
File.open(ARGV[0], "w") { |f| f.puts "ready" }
lock.call(m)                  # a default mutex locked twice: waits for good
EOF2
mkfifo "$T/ready"
"$RUBY" "$T/lock.rb" "$T/ready" 2>"$T/err" &
pid=$!
_pids="$_pids $pid"
[ "$(cat "$T/ready")" = ready ] || fail "target did not start: $(cat "$T/err")"
for ((i = 0; i < 3000; i++)); do
	[ "$(awk '{ print $3 }' /proc/$pid/task/$pid/stat)" = S ] && break
	sleep 0.01
done
expect_exit 4 "$LP" attach "$pid" --eval nil --times 1 --timeout 1
first=$(head -n 1 <<<"$ERR")
grep -q 'did not start within' <<<"$first" || fail "no timeout message: $ERR"
grep -q 'waits for a lock (futex in [a-z_]*lock[a-z_]*' <<<"$first" ||
	fail "the lock wait not named: $first"
grep -q 'long C call' <<<"$first" && fail "a guess instead of the wait: $first"
alive "$pid" || fail "target died"
grep -q '^TracerPid:[[:space:]]*0$' /proc/$pid/status || fail "still traced"

# system(3) waits for its child in wait4 and retries after EINTR
cat >"$T/system.rb" <<'EOF2'
require "fiddle"
system = Fiddle::Function.new(Fiddle.dlopen(nil)["system"],
                              [Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT)
File.open(ARGV[0], "w") { |f| f.puts "ready" }
system.call("exec sleep 5")
EOF2
mkfifo "$T/ready2"
"$RUBY" "$T/system.rb" "$T/ready2" 2>"$T/err2" &
pid=$!
_pids="$_pids $pid"
[ "$(cat "$T/ready2")" = ready ] || fail "target did not start: $(cat "$T/err2")"
for ((i = 0; i < 3000; i++)); do
	[ "$(cat /proc/$pid/task/$pid/syscall 2>/dev/null | cut -d' ' -f1)" = 61 ] && break
	sleep 0.01
done
expect_exit 4 "$LP" attach "$pid" --eval nil --times 1 --timeout 1
first=$(head -n 1 <<<"$ERR")
grep -q 'is blocked in wait4() (in ' <<<"$first" || fail "the syscall not named: $first"
alive "$pid" || fail "target died"
echo ok
