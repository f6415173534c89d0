# A page of a dead run that a call may still return into (an address in its
# trampoline on the main thread's stack: here the command of the system()
# the main thread is in, written where the trampoline lives) is never
# rearmed: the run maps a fresh page instead, and
# the old page keeps every byte; it is reclaimed only once nothing on the
# thread's stack points into it.
. "$(dirname "$0")/lib.sh"
"$RUBY" -rfiddle -e 1 2>/dev/null || skip "fiddle missing"

cat >"$T/inflight.rb" <<'EOF2'
require "fiddle"
libc = Fiddle.dlopen(nil)
mmap = Fiddle::Function.new(libc["mmap"], [Fiddle::TYPE_VOIDP,
         Fiddle::TYPE_SIZE_T, Fiddle::TYPE_INT, Fiddle::TYPE_INT,
         Fiddle::TYPE_INT, Fiddle::TYPE_LONG], Fiddle::TYPE_VOIDP)
system = Fiddle::Function.new(libc["system"], [Fiddle::TYPE_VOIDP],
                              Fiddle::TYPE_INT)
hdr = ["LEAKPROBE-JOB-1", 999_999, 0, 2].pack("a16QQL") # state harmless
cmd = "exec sleep 4\0"
page = mmap.call(nil, 4096, 7, 0x21, -1, 0)       # rwx, shared anonymous
page[0, hdr.bytesize] = hdr
page[4096 - 64, cmd.bytesize] = cmd               # the trampoline's place
File.write(ARGV[1], format("%x\n", page.to_i))
File.open(ARGV[0], "w") { |f| f.puts "ready" }
# the page's address stays on the stack for as long as system() runs
system.call(Fiddle::Pointer.new(page.to_i + 4096 - 64))
sleep
EOF2
mkfifo "$T/ready"
"$RUBY" "$T/inflight.rb" "$T/ready" "$T/page" 2>"$T/err" &
pid=$!
_pids="$_pids $pid"
[ "$(cat "$T/ready")" = ready ] || fail "target did not start: $(cat "$T/err")"
page=$((16#$(cat "$T/page")))
for ((i = 0; i < 3000; i++)); do
	[ "$(cut -d' ' -f1 /proc/$pid/task/$pid/syscall 2>/dev/null)" = 61 ] &&
		break
	sleep 0.01
done
snap() {
	dd if="/proc/$pid/mem" iflag=skip_bytes,count_bytes skip="$page" \
		count=4096 status=none | od -An -tx1 | tr -d ' \n'
}
before=$(snap)
[ -n "$before" ] || fail "cannot read the planted page"
"$LP" eval -vv "$pid" '1 + 1' >"$T/out" 2>"$T/log" &
lp=$!
# registered while the thread is still in system(): the page as it was
for ((i = 0; i < 1000; i++)); do
	grep -q 'registered after' "$T/log" && break
	kill -0 "$lp" 2>/dev/null || break
	sleep 0.01
done
grep -q 'registered after' "$T/log" || fail "no registration: $(cat "$T/log")"
[ "$(cut -d' ' -f1 /proc/$pid/task/$pid/syscall)" = 61 ] ||
	fail "the thread left system() too early for this test"
[ "$(snap)" = "$before" ] || fail "the page of a call in flight was rewritten"
grep -q 'still in use: a fresh page' "$T/log" || fail "no fresh page: $(cat "$T/log")"
wait "$lp" || fail "eval failed: $(cat "$T/log")"
grep -q '^2$' "$T/out" || fail "eval: $(cat "$T/out")"
alive "$pid" || fail "target died"
[ "$(tracer_of "$pid")" = 0 ] || fail "target still traced"
[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
# the old page goes once no word on the thread's stack points into its
# trampoline
# (this run or a later one); never more pages than the one planted
[ "$(our_pages "$pid")" -le 1 ] || fail "pages grew: $(our_pages "$pid")"
echo ok
