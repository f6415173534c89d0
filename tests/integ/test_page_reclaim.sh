# The code page's life across runs: a page left by a run whose job never
# started is retired read-only (r--s: a pending job only reads it), the
# next run reuses it, and pages of ours left by older runs (rw-s, rwxs)
# are reclaimed once a job has run: after the run no page of ours is left,
# and a shared page of the target's own (no magic) is never touched.
. "$(dirname "$0")/lib.sh"
"$RUBY" -rfiddle -e 1 2>/dev/null || skip "fiddle missing"

cat >"$T/pages.rb" <<'EOF2'
require "fiddle"
libc = Fiddle.dlopen(nil)
mmap = Fiddle::Function.new(libc["mmap"], [Fiddle::TYPE_VOIDP,
         Fiddle::TYPE_SIZE_T, Fiddle::TYPE_INT, Fiddle::TYPE_INT,
         Fiddle::TYPE_INT, Fiddle::TYPE_LONG], Fiddle::TYPE_VOIDP)
system = Fiddle::Function.new(libc["system"], [Fiddle::TYPE_VOIDP],
                              Fiddle::TYPE_INT)
# PROT_READ|PROT_WRITE(|PROT_EXEC), MAP_SHARED|MAP_ANONYMOUS
page = ->(prot) { mmap.call(nil, 4096, prot, 0x21, -1, 0) }
hdr = ["LEAKPROBE-JOB-1", 999_999, 0, 2].pack("a16QQL") # state harmless
hdr += "\0" * (64 - hdr.bytesize) + "nil\0"
[3, 3, 7].each { |prot| page.(prot)[0, hdr.bytesize] = hdr }  # older runs
own = page.(7)
own[0, 8] = "OWNPAGE!"                                       # the target's
File.write(ARGV[1], format("%x\n", own.to_i))
File.open(ARGV[0], "w") { |f| f.puts "ready" }
system.call("exec sleep 4")   # a C call: no job can start in it
sleep
EOF2
mkfifo "$T/ready"
"$RUBY" "$T/pages.rb" "$T/ready" "$T/own" 2>"$T/err" &
pid=$!
_pids="$_pids $pid"
[ "$(cat "$T/ready")" = ready ] || fail "target did not start: $(cat "$T/err")"
own=$(cat "$T/own")
[ "$(our_pages "$pid")" = 3 ] || fail "planted pages: $(our_pages "$pid")"
for ((i = 0; i < 3000; i++)); do
	[ "$(cut -d' ' -f1 /proc/$pid/task/$pid/syscall 2>/dev/null)" = 61 ] &&
		break
	sleep 0.01
done

# 1. the job cannot start: the page it points at stays, read-only
expect_exit 4 "$LP" attach "$pid" --eval nil --times 1 --timeout 1
grep -q 'did not start within' <<<"$ERR" || fail "no timeout: $ERR"
alive "$pid" || fail "target died"
[ "$(our_pages "$pid" rwxs)" = 0 ] || fail "a retired page stayed rwx"
[ "$(our_pages "$pid" r--s)" = 1 ] || fail "no read-only retired page"
[ "$(our_pages "$pid")" = 3 ] || fail "pages grew: $(our_pages "$pid")"

# 2. once the C call is over, a run reuses it and reclaims the others
for ((i = 0; i < 1000; i++)); do
	[ "$(cut -d' ' -f1 /proc/$pid/task/$pid/syscall 2>/dev/null)" = 61 ] ||
		break
	sleep 0.01
done
expect_exit 0 "$LP" eval "$pid" '1 + 1'
grep -q '^2$' <<<"$OUT" || fail "eval: $OUT $ERR"
target_ok "$pid"
grep -q "^$own-" /proc/$pid/maps || fail "the target's own page is gone"
echo ok
