#!/bin/bash
# attach, heapdump and malloc against one Ruby (see lib.sh for the
# environment): the thread that last held the GVL has ended; 20 runs back
# to back; SIGINT/SIGTERM at 20 random instants; native, Ruby-object and
# no-leak verdicts; a streamed heap dump; malloc sites on the allocator
# that serves malloc; nothing left behind.
. "$(dirname "$0")/lib.sh"
install_app "$RUBIES_HERE/target.rb"
start_target target.rb
pid=$TPID
# the thread that said ready ends: wait until its task is gone
n=$(threads_of "$pid")
for _ in $(seq 250); do
	[ "$(threads_of "$pid")" -lt "$n" ] && break
	sleep 0.02
done
say "pid $pid ($(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status") in its namespace), main thread idle in $LP_IDLE"
tasks0=$(threads_of "$pid")

# 1. The thread that last held the GVL has ended (where the current thread
# is a process global, it names that thread): without the pre-wake, so
# that the no-op job alone must bring the job to the main thread.
LEAKPROBE_TEST_NO_PREWAKE=1 lp_reach 0 "$pid" attach "$pid" --eval nil --times 1 --timeout 5 -vv
if grep -q 'current thread global' <<<"$OUT"; then
	grep -q 'kick: done' <<<"$OUT" || fail "the job started without the no-op job: $OUT"
fi
# 1b. A main thread in an untimed condition-variable sleep (Ruby <= 2.5,
# with rb_threadptr_interrupt) is woken in place by the pre-wake, in its
# own stop (the code page is mapped there), not only in the
# registration's: the pre-wake's call shows before the page is ready.
lp_reach 0 "$pid" attach "$pid" --eval nil --times 1 --timeout 5 -vv
if grep -q 'current thread global' <<<"$OUT" &&
	grep -q 'untimed condition-variable wait (0)' <<<"$OUT"; then
	sed -n '1,/page ready/p' <<<"$OUT" | grep -q 'untimed condition-variable wait (0)' ||
		fail "the pre-wake did not wake the untimed wait in place: $OUT"
	say "pre-wake: the untimed condition-variable sleep woken in its own stop"
fi
# 2. verdicts
verdict "$pid" "native leak" 256 'Fiddle.malloc(256)'
say "native leak: $VERDICT_BYTES B per call (256 allocated); api $(jget 'j["target"]["api"]')"
verdict "$pid" "ruby-object leak" - 'retain_string'
verdict "$pid" "no leak" - '"x" * 256'
say "Ruby-object leak and no-leak control: right"
# 3. heap dump, streamed out of the container
lp 0 heapdump "$pid" -o "$T/heap.json"
n=$(grep -c '"type":"STRING"' "$T/heap.json")
[ "$n" -gt 1000 ] || fail "heap dump has $n strings"
say "heapdump: $(wc -l <"$T/heap.json") objects"
# 3b. eval: a value, a JSON value and an exception from inside
lp 0 eval "$pid" 'RUBY_VERSION'
[ "$OUT" = "\"$VERSION\"" ] || fail "eval RUBY_VERSION printed $OUT"
lp 0 eval "$pid" --json '{ "n" => [1, nil] }'
[ "$(jget 'j["result"]')" = '{"n"=>[1, nil]}' ] || fail "eval --json: $OUT"
lp 5 eval "$pid" 'raise ArgumentError, "nope"'
grep -q 'raised ArgumentError: nope' <<<"$OUT" || fail "eval raise: $OUT"
say "eval: value, JSON and exception"
# 4. malloc sites: the probes on the allocator that serves malloc
# (where the machine cannot trace with BPF, e.g. a chroot without /sys,
# leakprobe says why: noted, and a failure under CI=true)
OUT=$("$LP" malloc "$pid" --json --eval 'Fiddle.malloc(300)' --times 2000 --batch 200 2>&1); rc=$?
if [ "$rc" = 4 ] && grep -q 'uprobe\|uretprobe\|perf event\|BPF\|/sys is not mounted' <<<"$OUT" && [ "${CI:-}" != true ]; then
	say "note: malloc sites not checked: $(tail -n 1 <<<"$OUT" | cut -c1-150)"
else
	[ "$rc" = 0 ] || fail "exit $rc, not 0: leakprobe malloc: $OUT"
	case $(jget 'j["allocator"]') in
		*/libc[.-]*) ;;
		*) fail "malloc traced in $(jget 'j["allocator"]'), not libc";;
	esac
	jget 'j["sites"][0]["frames"].map { |f| f["name"] }.join(" ")' | grep -q 'fiddle\.so' ||
		fail "the Fiddle path is not the top site: $(jget 'j["sites"][0]')"
	n=$(jget 'j["sites"][0]["bytes"]')
	[ "$n" -ge 540000 ] && [ "$n" -le 660000 ] || fail "top site holds $n bytes, not 600000 +- 10 %"
	say "malloc: top site $n bytes through $(jget 'j["allocator"]')"
fi
# 5. 20 runs back to back, each leaving its own ended helper behind, then
# SIGINT/SIGTERM at 20 random instants.  After the verdicts: measured
# after them, a 256 B leak once came out at 129 B per call (2.4.3, a
# loaded machine; memory the interrupted runs freed, reused by the leak?)
for i in $(seq 20); do
	lp 0 attach "$pid" --eval nil --times 1 --timeout 5
done
signal_trials "$pid" 20 '"x" * 64'
say "21 runs, then 20 interrupted at random instants: target unharmed"
# 6. nothing left behind: no file, no tracer, no extra thread
target_unharmed "$pid" "after the runs"
settle "$pid" "$tasks0" || fail "$(threads_of "$pid") threads after the runs, $tasks0 before"
if [ "$ROOT" != / ]; then
	n=$(ls -A "/proc/$pid/root/tmp" | wc -l)
	[ "$n" = 0 ] || fail "left in the container's /tmp: $(ls -A "/proc/$pid/root/tmp")"
else
	n=$(ls -d /tmp/leakprobe."$pid".* 2>/dev/null | wc -l)
	[ "$n" = 0 ] || fail "left in /tmp: $(ls -d /tmp/leakprobe."$pid".*)"
fi
