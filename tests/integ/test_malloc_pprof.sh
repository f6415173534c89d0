# Malloc sites where people read stacks: --format pprof is read by the
# real pprof (Debian's golang-go: `go tool pprof`), whose top entry and
# byte/object counts match leakprobe's own report of the same run (a
# Fiddle.malloc leak of a known size); --format folded parses line by
# line and sums to the report's total; attach --malloc-sites writes the
# same; bad combinations are usage errors.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf
command -v go >/dev/null 2>&1 || skip "go tool pprof (Debian golang-go) not found"
# pprof offline: its own cache and home in our temp dir, no network
export GOCACHE="$T/gocache" HOME="$T/home" GOPROXY=off GOFLAGS=
mkdir -p "$HOME"
pp() { go tool pprof -symbolize=none "$@" 2>&1; }

start_target leaks.rb
pid=$TARGET_PID

expect_exit 0 "$LP" malloc "$pid" --json --format pprof -o "$T/m.pb.gz" \
	--eval 'Fiddle.malloc(256)' --times 4000 --batch 400
doc=$OUT
[ -s "$T/m.pb.gz" ] || fail "no profile written"
gzip -t "$T/m.pb.gz" || fail "the profile is not gzip'd"
total=$(json_get "$doc" 'j["outstanding"]["bytes"]')
objs=$(json_get "$doc" 'j["outstanding"]["count"]')
# the sites on the Fiddle path, from the JSON report of the same run
fid=$(json_get "$doc" 'j["sites"].select { |s| s["frames"].any? { |f| f["name"] =~ /fiddle\.so/ } }.sum { |s| s["bytes"] }')
fidn=$(json_get "$doc" 'j["sites"].select { |s| s["frames"].any? { |f| f["name"] =~ /fiddle\.so/ } }.sum { |s| s["count"] }')
leaf=$(json_get "$doc" 'j["sites"].find { |s| s["frames"].any? { |f| f["name"] =~ /fiddle\.so/ } }["function"]')
echo "report: $total bytes in $objs allocations; fiddle path $fid bytes, $fidn allocations, leaf $leaf"
awk -v b="$fid" 'BEGIN { exit !(b >= 1024000 * 0.9 && b <= 1024000 * 1.1) }' ||
	fail "the Fiddle sites hold $fid bytes, not 1024000 +- 10 %"

top=$(pp -top -unit=B "$T/m.pb.gz") || fail "pprof failed: $top"
echo "$top" | head -14
grep -q "^Type: inuse_space" <<<"$top" || fail "default sample type: $top"
grep -q "Total samples = ${total}B" <<<"$top" ||
	fail "pprof's total is not the report's $total bytes: $top"
# the top entry under the Fiddle path: the allocator function, holding
# exactly the bytes the report gives that path
ftop=$(pp -top -unit=B -focus='fiddle\.so' "$T/m.pb.gz")
first=$(awk '/flat%/ { getline; print; exit }' <<<"$ftop")
echo "pprof top entry (focus fiddle.so): $first"
read -r flat _ _ _ _ name <<<"$first"
[ "$flat" = "${fid}B" ] || fail "pprof's top entry holds $flat, the report ${fid}B"
[ "$name" = "$leaf" ] || fail "pprof's top entry is '$name', the report's '$leaf'"
grep -q 'fiddle\.so+0x' <<<"$ftop" || fail "no fiddle.so frame: $ftop"
# objects: the other sample type
otop=$(pp -top -sample_index=inuse_objects -focus='fiddle\.so' "$T/m.pb.gz")
grep -q "^Type: inuse_objects" <<<"$otop" || fail "no inuse_objects: $otop"
first=$(awk '/flat%/ { getline; print; exit }' <<<"$otop")
read -r flat _ <<<"$first"
[ "$flat" = "$fidn" ] || fail "pprof: $flat objects, the report $fidn: $otop"
grep -q "Total samples = $objs\$" <<<"$otop" ||
	grep -q "Total samples = $objs " <<<"$otop" ||
	fail "pprof's object total is not the report's $objs: $otop"
# mappings: file names and the build-ids of the files themselves
raw=$(pp -raw "$T/m.pb.gz")
libc=$(awk '$6 ~ /\/libc\.so\.6$/ { print $6; exit }' "/proc/$pid/maps")
want=$(readelf -n "/proc/$pid/root$libc" | awk '/Build ID:/ { print $3; exit }')
[ -n "$want" ] || fail "no build-id in $libc"
grep -qE "^[0-9]+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ $libc $want " <<<"$raw" ||
	fail "mapping of $libc with build-id $want missing: $(sed -n '/^Mappings/,$p' <<<"$raw")"
grep -q "^Duration: " <<<"$raw" || fail "no duration: $raw"
# mapping[0] is the main binary, as pprof expects
exe=$(readlink "/proc/$pid/exe")
grep -q "^File: ${exe##*/}\$" <<<"$top" || fail "pprof's File is not ${exe##*/}: $top"
target_ok "$pid"

# folded: every line is "frame;frame;... BYTES", the sum is the total
expect_exit 0 "$LP" malloc "$pid" --json --format folded -o "$T/m.folded" \
	--eval 'Fiddle.malloc(256)' --times 2000 --batch 200
total=$(json_get "$OUT" 'j["outstanding"]["bytes"]')
[ -s "$T/m.folded" ] || fail "no folded file"
bad=$(grep -cvE '^[^ ;][^;]*(;[^;]+)* [0-9]+$' "$T/m.folded")
[ "$bad" = 0 ] || fail "$bad malformed folded lines: $(head -3 "$T/m.folded")"
sum=$(awk '{ s += $NF } END { print s }' "$T/m.folded")
[ "$sum" = "$total" ] || fail "folded lines sum to $sum, the report says $total"
fline=$(grep 'fiddle\.so' "$T/m.folded" | sort -t' ' -k2 -n | tail -1)
fb=${fline##* }
awk -v b="$fb" 'BEGIN { exit !(b >= 512000 * 0.9 && b <= 512000 * 1.1) }' ||
	fail "the Fiddle stack holds $fb bytes: $fline"
# root first: the leaf (allocator function) is the last frame
leafname=${fline% *}; leafname=${leafname##*;}
case $leafname in malloc|calloc|realloc|posix_memalign|memalign|valloc|pvalloc|aligned_alloc) ;;
*) fail "the folded stack does not end in the allocator: $fline";; esac

# folded on stdout: nothing else there
expect_exit 0 "$LP" malloc "$pid" --format folded \
	--eval 'Fiddle.malloc(64)' --times 500 --batch 100
[ -n "$OUT" ] || fail "no folded output on stdout"
bad=$(grep -cvE '^[^ ;][^;]*(;[^;]+)* [0-9]+$' <<<"$OUT")
[ "$bad" = 0 ] || fail "stdout holds more than folded lines: $OUT"

# attach --malloc-sites: the same profile beside the verdict
expect_exit 0 "$LP" attach "$pid" --json --format pprof -o "$T/a.pb.gz" \
	--eval 'Fiddle.malloc(256)' --times 2000 --batch 200
total=$(json_get "$OUT" 'j["malloc_sites"]["outstanding"]["bytes"]')
top=$(pp -top -unit=B "$T/a.pb.gz")
grep -q "Total samples = ${total}B" <<<"$top" ||
	fail "attach: pprof's total is not the report's $total: $top"
target_ok "$pid"

# usage errors, before anything is traced
expect_exit 2 "$LP" malloc "$pid" --format svg --duration 1
grep -q "text, json, pprof or folded" <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" malloc "$pid" --json --format folded --duration 1
expect_exit 2 "$LP" malloc "$pid" --count-only --format pprof -o "$T/x" --duration 1
expect_exit 2 "$LP" attach "$pid" --format pprof --eval 1
grep -q -- "-o FILE" <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" attach "$pid" --format text -o "$T/x" --eval 1
expect_exit 6 "$LP" malloc "$pid" --format pprof -o "$T/no/such/dir/p" \
	--eval 'Fiddle.malloc(1)' --times 10 --batch 10
grep -q "cannot write" <<<"$ERR" || fail "message: $ERR"
target_ok "$pid"
echo ok
