# Objects that already exist and grow (an Array, a Hash, a String never
# emptied) are Ruby-held growth, not native leaks, run after run: their
# buffers fill capacity reserved earlier page by page while the capacity
# stays, so Ruby-held bytes must count what is used.  A malloc'd chunk
# that no Ruby object accounts for stays native; garbage is no leak.
. "$(dirname "$0")/lib.sh"

# verdict PID EXPECTED_KIND SNIPPET: one attach of 10,000 calls (the
# defaults otherwise); leaves the JSON in $OUT
verdict() {
	local pid=$1 want=$2 kind
	expect_exit 0 "$LP" attach "$pid" --json --eval "$3" --times 10000
	kind=$(json_get "$OUT" 'j["verdict"]["kind"]')
	echo "$3 -> $kind: $(json_get "$OUT" 'j["verdict"]["summary"]')"
	[ "$kind" = "$want" ] || fail "expected '$want', got '$kind' for $3"
	target_ok "$pid"
}

# held SNIPPET TYPE BYTES_PER_CALL: four runs on one fresh target, each
# ruby-held growth of about BYTES_PER_CALL, TYPE named with its bytes
# before and after.  The later runs are the ones capacity misled: the
# buffer is big, and most runs fill capacity reserved by an earlier one.
held() {
	local s=$1 type=$2 want=$3 pid got rb before after
	start_target leaks.rb
	pid=$TARGET_PID
	for _ in 1 2 3 4; do
		verdict "$pid" "ruby-held growth" "$s"
		got=$(json_get "$OUT" 'j["verdict"]["ruby_grows"]["type"]')
		[ "$got" = "$type" ] || fail "$s: grows '$got', want '$type'"
		before=$(json_get "$OUT" 'j["verdict"]["ruby_grows"]["before"]')
		after=$(json_get "$OUT" 'j["verdict"]["ruby_grows"]["after"]')
		# 10,000 calls of BYTES_PER_CALL, at least half of them
		[ "$((after - before))" -ge "$((want * 5000))" ] ||
			fail "$s: $type $before -> $after B, want +$((want * 10000))"
		grep -q "mostly $type ([0-9.]* [KM]iB -> [0-9.]* [KM]iB)" <<<"$OUT" ||
			fail "$s: summary names no $type with its bytes: $OUT"
		# the one object that grows, by its class, bytes before and after
		got=$(json_get "$OUT" 'g = j["verdict"]["ruby_grower"]; "#{g["class"]} #{g["after"] - g["before"]}"')
		[ "${got% *}" = "$type" ] || fail "$s: the grower is '$got', want $type"
		[ "${got#* }" -ge "$((want * 5000))" ] || fail "$s: the $type grew ${got#* } B, want +$((want * 10000))"
		grep -q "; one $type grew [0-9.]* [KM]iB -> [0-9.]* [KM]iB" <<<"$OUT" ||
			fail "$s: summary names no single $type: $OUT"
		rb=$(json_get "$OUT" 'j["verdict"]["ruby_bytes_per_call"]["slope"]')
		awk -v s="$rb" -v w="$want" 'BEGIN { exit !(s >= w / 2 && s <= 3 * w) }' ||
			fail "$s: Ruby-held $rb B per call, want about $want"
	done
	kill -9 "$pid"
}

held '($lp_a ||= []) << 1' Array 8
# With --retained (allocations traced from the start of the run), the
# site of an object born in the run is named: here, the snippet.
start_target leaks.rb
expect_exit 0 "$LP" attach "$TARGET_PID" --json --retained --eval '($lp_r ||= []) << 1' --times 10000
site=$(json_get "$OUT" 'j["verdict"]["ruby_grower"]["site"]')
[ "$site" = "(leakprobe snippet 0):1" ] || fail "--retained: grower site '$site': $OUT"
# a site is the target's text: a control character in it is shown as '?',
# and the verdict stays one line
expect_exit 0 "$LP" attach "$TARGET_PID" --retained --times 10000 \
	--eval '($lp_q ||= eval("[]", nil, "x\ny.rb", 1)) << 1'
grep -q '^ruby-held growth: .*; one Array grew .* (allocated at x?y.rb:1)' <<<"$OUT" ||
	fail "--retained: site with a newline: $OUT"
kill -9 "$TARGET_PID"
held '($lp_h ||= {})[rand] = 1' Hash 24
held '($lp_s ||= +"") << "x" * 32' String 32

start_target leaks.rb
pid=$TARGET_PID
for _ in 1 2 3; do
	verdict "$pid" "native leak" 'Fiddle.malloc(24)'
	rb=$(json_get "$OUT" 'j["verdict"]["native_bytes_per_call"]["lo"]')
	awk -v s="$rb" 'BEGIN { exit !(s >= 16) }' || fail "native lower bound $rb B per call, want >= 16"
done
verdict "$pid" "no leak" '"x" * 100 + "y"'
verdict "$pid" "no leak" '{ a: 1, b: [1, 2], c: "s" }.to_a'
echo ok
