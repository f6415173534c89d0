#!/bin/bash
# heapdiff's grown objects on dumps written by real Ruby
# (tests/integ/targets/grower.rb): an Array, a Hash, a String and 40,000
# small arrays of one line grow across three dumps, one Array shrinks and
# one stays the same.  Exactly the growing ones of the target's file are
# listed, with the memsize Ruby itself gave for each (ObjectSpace.memsize_of
# right before each dump), with three dumps and with two; --top cuts the
# list, not the count; --no-grown leaves the section out; without
# allocation tracing they are still found by address.
. "$(dirname "$0")/lib.sh"

N=40000
mkdir -p "$T/g" "$T/u"
"$RUBY" "$TARGETS_DIR/grower.rb" "$T/g" "$N" >"$T/g.out" 2>&1 ||
	fail "grower.rb failed: $(cat "$T/g.out")"

# check JSON EXPECT NDUMPS [notrace]: the grown objects of the heapdiff JSON
# on stdin against Ruby's own memsizes.  Prints "ok COUNT" or what differs.
check() {
	"$RUBY" -rjson -e '
		j = JSON.parse(STDIN.read)["grown"]
		e = JSON.parse(File.read(ARGV[0]))
		n, notrace = Integer(ARGV[1]), ARGV[2] == "notrace"
		# addresses as numbers (some Rubies write them zero-padded)
		e.each_value { |v| v["memsize"] = v["memsize"].first(n); v["address"] = v["address"].to_i(16) }
		j["objects"].each { |o| o["address"] = o["address"].to_i(16) }
		want = e.select { |_, v| v["memsize"][-1] > v["memsize"][0] }
		by_addr = Hash[e.map { |k, v| [v["address"], k] }]
		# the objects of the target: by file, or (no tracing) by address
		mine = j["objects"].select { |o|
			notrace ? by_addr.key?(o["address"]) : o["file"].to_s.end_with?("/grower.rb") }
		got = Hash[mine.map { |o| [o["address"], o["memsize"]] }]
		errs = []
		want.each { |k, v| errs << "#{k} #{v} listed as #{got[v["address"]].inspect}" if got[v["address"]] != v["memsize"] }
		(got.keys - want.values.map { |v| v["address"] }).each { |a|
			errs << "#{by_addr[a] || a} listed, #{got[a]}, but did not grow" }
		mine.each { |o|
			errs << "#{o["address"]}: growth #{o["growth"]}" if o["growth"] != o["memsize"][-1] - o["memsize"][0]
			errs << "#{o["address"]}: file #{o["file"].inspect} without tracing" if notrace && o["file"] }
		g = j["objects"].map { |o| o["growth"] }
		errs << "not sorted by growth" unless g == g.sort.reverse
		errs << "count #{j["count"]} < #{want.size}" if j["count"] < want.size
		puts(errs.empty? ? "ok #{want.size}" : errs.first(5).join("; "))' "$1" "$2" ${3:-}
}

# the scenario itself is what it claims to be (Ruby says so)
got=$("$RUBY" -rjson -e '
	e = JSON.parse(File.read(ARGV[0]))
	g = ->(k) { m = e[k]["memsize"]; m[0] < m[1] && m[1] < m[2] }
	ok = %w[array hash string many0].all?(&g) &&
		e["shrink"]["memsize"][2] < e["shrink"]["memsize"][0] &&
		e["steady"]["memsize"].uniq.size == 1
	puts(ok ? "ok" : e.first(5).inspect)' "$T/g/expect.json")
[ "$got" = ok ] || fail "grower.rb: the objects did not change as planned: $got"

# --- three dumps: every grown object of the target, exact memsizes
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new,later}.json --top 0 --json
J=$OUT
got=$(check "$T/g/expect.json" 3 <<<"$J")
[ "$got" = "ok $((N + 3))" ] || fail "3 dumps: $got"
[ "$(json_get "$J" 'j["grown"]["objects"].select { |o| o["file"].to_s.end_with?("/grower.rb") }.group_by { |o| o["line"] }.values.map(&:size).max')" = "$N" ] ||
	fail "3 dumps: the $N arrays are not all at one line"
total=$(json_get "$J" 'j["grown"]["count"]')
[ "$(json_get "$J" 'j["grown"]["objects"].size')" = "$total" ] || fail "--top 0 does not list all $total"
[ "$(json_get "$J" 'j["grown"]["bytes"] == j["grown"]["objects"].sum { |o| o["growth"] }')" = true ] ||
	fail "grown bytes is not the sum of the growths"

# --- --top 2: two objects, the largest growths; the count stays
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new,later}.json --top 2 --json
[ "$(json_get "$OUT" 'j["grown"]["objects"].size')" = 2 ] || fail "--top 2: $(json_get "$OUT" 'j["grown"]')"
[ "$(json_get "$OUT" 'j["grown"]["count"]')" = "$total" ] || fail "--top 2 changed the count"
[ "$(json_get "$OUT" 'j["grown"]["objects"].map { |o| o["address"] }')" = \
  "$(json_get "$J" 'j["grown"]["objects"].first(2).map { |o| o["address"] }')" ] || fail "--top 2 is not the top 2"

# --- text: the section, the three named objects at their lines, the cut
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new,later}.json
grep -q "^grown objects: .*: $total objects" <<<"$OUT" || fail "text: no grown objects line: $OUT"
for t in "STRING String" "HASH Hash" "ARRAY Array"; do
	grep -Eq "^ *\+.* 0x[0-9a-f]+ +$t +.*grower\.rb:[0-9]+" <<<"$OUT" || fail "text: no $t row: $OUT"
done
grep -q "^(top 20 of $total; --top 0 for all)" <<<"$OUT" || fail "text: no top line: $OUT"

# --- two dumps: grown between OLD and NEW
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new}.json --top 0 --json
got=$(check "$T/g/expect.json" 2 <<<"$OUT")
[ "$got" = "ok $((N + 3))" ] || fail "2 dumps: $got"

# --- --no-grown: no section
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new,later}.json --no-grown --json
[ "$(json_get "$OUT" 'j["grown"].nil?')" = true ] || fail "--no-grown: grown is there"
expect_exit 0 "$LP" heapdiff "$T"/g/{old,new,later}.json --no-grown
! grep -q "grown objects" <<<"$OUT" || fail "--no-grown: text has the section"

# --- no allocation tracing: found by address, type and class
"$RUBY" "$TARGETS_DIR/grower.rb" "$T/u" 2000 notrace >"$T/u.out" 2>&1 ||
	fail "grower.rb notrace failed: $(cat "$T/u.out")"
expect_exit 0 "$LP" heapdiff "$T"/u/{old,new,later}.json --top 0 --json
got=$(check "$T/u/expect.json" 3 notrace <<<"$OUT")
[ "$got" = "ok 2003" ] || fail "no tracing: $got"
echo "ok"
