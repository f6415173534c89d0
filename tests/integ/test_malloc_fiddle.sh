# The native stand-in leak (Fiddle.malloc, never freed): the malloc
# sites name the Fiddle path, through `leakprobe malloc --eval` and
# through `leakprobe attach --malloc-sites`.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf

start_target leaks.rb
pid=$TARGET_PID

check_fiddle() {	# check_fiddle JSON EXPECTED_BYTES
	local doc=$1 want=$2 names bytes
	names=$(site_get "$doc" 'names')
	bytes=$(site_get "$doc" 'top["bytes"]')
	echo "top site: $bytes bytes"; echo "$names" | head -4
	grep -q '(fiddle\.so)$\|^fiddle\.so+0x' <<<"$names" ||
		fail "the Fiddle path is not in the top site: $names"
	grep -q 'libruby' <<<"$names" || fail "no Ruby frames: $names"
	awk -v b="$bytes" -v w="$want" 'BEGIN { exit !(b >= w * 0.9 && b <= w * 1.1) }' ||
		fail "top site holds $bytes bytes, not $want +- 10 %"
}

expect_exit 0 "$LP" malloc "$pid" --json --eval 'Fiddle.malloc(256)' \
	--times 4000 --batch 400
check_fiddle "$OUT" 1024000
# the smaps growth of the window is the leak: the stacks explain it
expl=$(json_get "$OUT" 'j["explained"]')
awk -v e="$expl" 'BEGIN { exit !(e >= 0.8 && e <= 1.2) }' ||
	fail "stacks explain $expl of the growth"
target_ok "$pid"

# attach --malloc-sites: the same tracing inside a leak verdict run
expect_exit 0 "$LP" attach "$pid" --json --malloc-sites \
	--eval 'Fiddle.malloc(256)' --times 4000 --batch 400
[ "$(json_get "$OUT" 'j["verdict"]["kind"]')" = "native leak" ] ||
	fail "verdict: $(json_get "$OUT" 'j["verdict"]["kind"]')"
sites=$(json_get "$OUT" 'JSON.generate(j["malloc_sites"])')
check_fiddle "$sites" 1024000
expect_exit 0 "$LP" attach "$pid" --malloc-sites \
	--eval 'Fiddle.malloc(256)' --times 2000 --batch 200
grep -q 'fiddle\.so' <<<"$OUT" || fail "attach text output: $OUT"
target_ok "$pid"
echo ok
