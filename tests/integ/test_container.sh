# A target in a container: its own mount and PID namespaces (it is PID 1
# there) and a chroot whose /usr is a read-only bind mount of ours, so the
# paths in its maps are not paths leakprobe can open as they stand, and its
# /tmp is not ours.  attach (verdict), heapdump and malloc must work, and
# leave nothing in the container's /tmp nor in the target.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/helpers.sh"

[ "$(id -u)" = 0 ] || skip "needs root for namespaces and chroot"
# PID namespace too where the kernel allows it (as containers do)
if unshare -m -p -f true 2>/dev/null; then
	ns="-m -p -f"
elif unshare -m true 2>/dev/null; then
	ns="-m -f"; echo "note: no PID namespace here; mount namespace and chroot only"
else
	skip "cannot create a mount namespace"
fi

root=$T/root
mkdir -p "$root/usr" "$root/tmp" "$root/proc" "$root/app"
for l in bin lib lib64; do ln -s "usr/$l" "$root/$l"; done
cp "$TARGETS_DIR/leaks.rb" "$TARGETS_DIR/ready.rb" "$root/app/"
# The bind mount lives only in the private mount namespace (and is
# read-only there): the host's view of $root/usr stays an empty directory,
# so removing $T can never reach /usr.
cat >"$T/enter.sh" <<EOF
set -e
mount --make-rprivate /
mount --bind /usr "$root/usr"
mount -o remount,bind,ro "$root/usr"
mount -t proc proc "$root/proc"
exec chroot "$root" /usr/bin/ruby3.1 /app/leaks.rb
EOF
ruby_bin=$(readlink -f "$(command -v "$RUBY")")
[ "$ruby_bin" = /usr/bin/ruby3.1 ] ||
	sed -i "s|/usr/bin/ruby3.1|$ruby_bin|" "$T/enter.sh"

mkfifo "$T/ready"
LP_READY_FD=3 unshare $ns bash "$T/enter.sh" 3>"$T/ready" \
	>"$T/target.out" 2>"$T/target.err" &
upid=$!
_pids="$_pids $upid"
read -r line <"$T/ready" || true
[ "$line" = ready ] || fail "container target not ready: $(cat "$T/target.err")"
pid=$(pgrep -P "$upid")
[ -n "$pid" ] || fail "no target process under unshare $upid"
_pids="$pid $_pids"	# SIGKILL to the namespace's PID 1 ends it
mountpoint -q "$root/usr" && fail "the bind mount leaked into our namespace"
case $ns in *-p*)
	[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status")" = 1 ] ||
		fail "target is not PID 1 of its namespace";;
esac
# seen from a chroot of our own, the path goes on past our root: match
# the container's part only
grep -q "$root/usr/" "/proc/$pid/maps" ||
	fail "maps do not show the container's paths: $(head -3 "/proc/$pid/maps")"

ls_tmp() { ls -A "$root/tmp" | wc -l; }

expect_exit 0 "$LP" attach "$pid" --json --eval 'Fiddle.malloc(256)' \
	--times 4000 --batch 400
[ "$(json_get "$OUT" 'j["verdict"]["kind"]')" = "native leak" ] ||
	fail "verdict: $(json_get "$OUT" 'j["verdict"]')"
slope=$(json_get "$OUT" 'j["verdict"]["bytes_per_call"]["slope"]')
awk -v s="$slope" 'BEGIN { exit !(s >= 192 && s <= 320) }' ||
	fail "slope $slope not 256 +- 25 %"
target_ok "$pid"
[ "$(ls_tmp)" = 0 ] || fail "left in the container's /tmp: $(ls -A "$root/tmp")"

expect_exit 0 "$LP" heapdump "$pid" -o "$T/heap.json"
n=$(grep -c '"type":"STRING"' "$T/heap.json")
[ "$n" -gt 1000 ] || fail "dump has $n strings"
target_ok "$pid"
[ "$(ls_tmp)" = 0 ] || fail "left in the container's /tmp: $(ls -A "$root/tmp")"

# malloc: the uprobes go on the container's libc, reached through
# /proc/PID/root; the Fiddle path must be named.
expect_exit 0 "$LP" malloc "$pid" --json --eval 'Fiddle.malloc(300)' \
	--times 2000 --batch 200
names=$(site_get "$OUT" 'names')
grep -q 'fiddle\.so' <<<"$names" || fail "Fiddle path not in the top site: $names"
bytes=$(site_get "$OUT" 'top["bytes"]')
awk -v b="$bytes" 'BEGIN { exit !(b >= 540000 && b <= 660000) }' ||
	fail "top site holds $bytes bytes, not 600000 +- 10 %"
target_ok "$pid"
[ "$(ls_tmp)" = 0 ] || fail "left in the container's /tmp: $(ls -A "$root/tmp")"
echo ok
