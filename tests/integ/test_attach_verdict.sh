# Verdicts on real leaks and real non-leaks in a live ruby process.
. "$(dirname "$0")/lib.sh"

start_target leaks.rb
pid=$TARGET_PID

verdict() {	# verdict EXPECTED_KIND EXIT ARGS...
	local want=$1 code=$2; shift 2
	expect_exit "$code" "$LP" attach "$pid" --json "$@"
	local kind
	kind=$(json_get "$OUT" 'j["verdict"]["kind"]')
	echo "$* -> $kind: $(json_get "$OUT" 'j["verdict"]["summary"]')"
	[ "$kind" = "$want" ] || fail "expected '$want', got '$kind' for $*"
	target_ok "$pid"
}

# Controls: garbage only; a cache that only grows while warming up.
verdict "no leak" 0 --eval '"x" * 100' --times 20000 --batch 2000
verdict "no leak" 0 --eval 'cached_lookup' --times 20000 --batch 2000 --warmup 3

# Native stand-in leak: 256 bytes per call, never freed.
verdict "native leak" 0 --eval 'Fiddle.malloc(256)' --times 20000 --batch 2000
slope=$(json_get "$OUT" 'j["verdict"]["bytes_per_call"]["slope"]')
awk -v s="$slope" 'BEGIN { exit !(s >= 192 && s <= 320) }' ||
	fail "native slope $slope not within 25 % of 256"
[ "$(json_get "$OUT" 'j["target"]["pid"]')" = "$pid" ] || fail "json target pid"

# A quiet leak: 40 bytes per call (a 48-byte chunk).
verdict "native leak" 0 --eval 'Fiddle.malloc(40)' --times 40000 --batch 4000

# Ruby-object leak: retained strings.
verdict "ruby-object leak" 0 --eval 'retain_string' --times 20000 --batch 2000


# Objects that exist grow: an Array and a Hash that are never emptied
# hold their growth in their own buffers (no new live objects); that is
# Ruby-held, not native, and the type is named.
verdict "ruby-held growth" 0 --eval '($lp_a ||= []) << 1' --times 20000 --batch 2000
grep -q "mostly Array" <<<"$OUT" || fail "array growth: type not named: $OUT"
rb=$(json_get "$OUT" 'j["verdict"]["ruby_bytes_per_call"]["slope"]')
awk -v s="$rb" 'BEGIN { exit !(s >= 6 && s <= 20) }' || fail "array: Ruby-held $rb B per call, want 8-16"
verdict "ruby-held growth" 0 --eval '($lp_h ||= {})[rand] = 1' --times 20000 --batch 2000
grep -q "mostly Hash" <<<"$OUT" || fail "hash growth: type not named: $OUT"

# One retained object per ~70 calls (0.6 B per call) is no leak under
# --fail-on-growth 32, whatever the live-slot count says.
verdict "no leak" 0 --eval '($lp_r ||= []) << "r" if rand < 0.015' --times 20000 --batch 2000 --fail-on-growth 32

# --fail-on-growth exit codes.
verdict "native leak" 1 --eval 'Fiddle.malloc(256)' --times 20000 --batch 2000 --fail-on-growth 100
# The floor is the same for every kind: 256 B per call is not a leak
# under --fail-on-growth 100k.
verdict "no leak" 0 --eval 'Fiddle.malloc(256)' --times 20000 --batch 2000 --fail-on-growth 100k
grep -q "below the 102400 B floor" <<<"$OUT" || fail "100k: the floor is not stated: $OUT"
verdict "no leak" 0 --eval '"x" * 100' --times 20000 --batch 2000 --fail-on-growth 100
# One batch cannot decide: inconclusive is 7 under --fail-on-growth.
verdict "inconclusive" 7 --eval 'nil' --times 1 --fail-on-growth 100

# Text output carries the verdict line.
expect_exit 0 "$LP" attach "$pid" --eval 'Fiddle.malloc(256)' --times 10000 --batch 1000
grep -q '^native leak: +' <<<"$OUT" || fail "no verdict line: $OUT"
[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
echo ok
