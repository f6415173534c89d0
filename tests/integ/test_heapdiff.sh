#!/bin/bash
# heapdiff on dumps written by real Ruby (tests/integ/targets/retainer.rb):
# the retained strings are named at their file:line with the right count,
# with three dumps and with two; a non-retaining control shows nothing
# there; GC.compact between the dumps gives the same answer; --why prints
# a chain from a GC root to one of the strings; dumps without allocation
# tracing give a per class/type diff that says sites need tracing;
# --fail-on-count sets exit 1; pipes work like files.
. "$(dirname "$0")/lib.sh"

N=1000
gen() { # gen NAME MODE COMPACT [notrace]
	mkdir -p "$T/$1"
	"$RUBY" "$TARGETS_DIR/retainer.rb" "$T/$1" "$2" "$3" "$N" ${4:-} \
		>"$T/$1.out" 2>&1
}
gen r retain none || fail "retainer.rb failed: $(cat "$T/r.out")"
SITE=$(cat "$T/r/site")
FILE=${SITE%:*} LINE=${SITE##*:}
[ -n "$FILE" ] && [ "$LINE" -gt 0 ] || fail "bad site '$SITE'"

# json_site JSON: "count bytes" of the row at the retainer's site, or "none"
json_site() {
	"$RUBY" -rjson -e '
		j = JSON.parse(STDIN.read)
		r = j["rows"].find { |x| x["file"].to_s.end_with?("/" + ARGV[0]) && x["line"] == ARGV[1].to_i }
		puts(r ? "#{r["count"]} #{r["type"]} #{r["class"]} #{r["bytes"]}" : "none")' \
		"$FILE" "$LINE" <<<"$1"
}

# --- three dumps: the retained strings, at their line, all of them
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --json
J=$OUT
got=$(json_site "$J")
[ "${got% *}" = "$N STRING String" ] || fail "3 dumps: site row is '$got', want $N STRING String"
[ "$(json_get "$J" 'j["method"]')" = sites ] || fail "method is not sites"
[ "$(json_get "$J" 'j["rows"][0]["line"]')" = "$LINE" ] || fail "the site is not the first row: $J"
[ "$(json_get "$J" 'j["total"]["count"]')" = "$N" ] || fail "total is not $N: $J"
[ "$(json_get "$J" 'j["identity"]')" != "" ] || fail "no identity method in JSON"
# the text says which method and names file:line
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json
grep -q "at an address OLD does not have" <<<"$OUT" || fail "text does not state the method: $OUT"
grep -Eq "^ +$N +.*/$FILE:$LINE +STRING String" <<<"$OUT" || fail "text row missing: $OUT"

# --- two dumps: the same strings are new in NEW
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new}.json --json
got=$(json_site "$OUT")
[ "${got% *}" = "$N STRING String" ] || fail "2 dumps: site row is '$got'"

# --- control: the strings were dropped: nothing at the site, nothing much at all
gen c control none || fail "retainer.rb control failed: $(cat "$T/c.out")"
expect_exit 0 "$LP" heapdiff "$T"/c/{old,new,later}.json --json
[ "$(json_site "$OUT")" = none ] || fail "control shows the site: $OUT"
total=$(json_get "$OUT" 'j["total"]["count"]')
[ "$total" -lt 20 ] || fail "control retains $total objects: $OUT"

# --- GC.compact between the dumps gives the same answer
for mode in before-new before-later; do
	gen "k$mode" retain "$mode"; rc=$?
	if [ $rc = 3 ]; then echo "note: no GC.compact in this Ruby; $mode skipped"; continue; fi
	[ $rc = 0 ] || fail "retainer.rb $mode failed: $(cat "$T/k$mode.out")"
	expect_exit 0 "$LP" heapdiff "$T/k$mode"/{old,new,later}.json --json
	got=$(json_site "$OUT")
	[ "${got% *}" = "$N STRING String" ] || fail "GC.compact $mode: site row is '$got': $OUT"
	# --why still finds who holds them (in NEW when LATER lost their info)
	expect_exit 0 "$LP" heapdiff "$T/k$mode"/{old,new,later}.json --why "$SITE" --json
	[ -n "$(json_get "$OUT" 'j["why"]["chain"][0]["root"]')" ] &&
	[ "$(json_get "$OUT" 'j["why"]["chain"][-1]["line"]')" = "$LINE" ] ||
		fail "GC.compact $mode: --why: $OUT"
done

# --- --why: a chain from a GC root, through the Holder, to a string of the site
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --why "$SITE" --json
J=$OUT
[ "$(json_get "$J" 'j["why"]["candidates"]')" = "$N" ] || fail "why: candidates: $J"
[ -n "$(json_get "$J" 'j["why"]["chain"][0]["root"]')" ] || fail "why: chain does not start at a root: $J"
[ "$(json_get "$J" 'j["why"]["chain"][-1]["line"]')" = "$LINE" ] || fail "why: chain does not end at the site: $J"
[ "$(json_get "$J" 'j["why"]["chain"].any? { |l| l["class"] == "Holder" }')" = true ] || fail "why: no Holder on the chain: $J"
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --why "$SITE"
grep -q "^  ROOT " <<<"$OUT" || fail "why text: no ROOT line: $OUT"
grep -q -- "-> 0x[0-9a-f]* OBJECT Holder" <<<"$OUT" || fail "why text: no Holder: $OUT"
grep -q -- "-> 0x[0-9a-f]* STRING String  (.*$FILE:$LINE" <<<"$OUT" || fail "why text: chain does not end at the site: $OUT"
# with two dumps too
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new}.json --why "$SITE"
grep -q "^  ROOT " <<<"$OUT" || fail "why with 2 dumps: no ROOT line: $OUT"

# --- thresholds
expect_exit 1 "$LP" heapdiff "$T"/r/{old,new,later}.json --fail-on-count $N
grep -q "$FILE:$LINE.*$N >= --fail-on-count $N" <<<"$ERR" || fail "--fail-on-count message: $ERR"
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --fail-on-count $((N + 1))
expect_exit 1 "$LP" heapdiff "$T"/r/{old,new,later}.json --fail-on-bytes 1000

# --- grouping
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --by class --json
[ "$(json_get "$OUT" 'j["rows"][0]["class"]')" = String ] || fail "--by class: $OUT"
[ "$(json_get "$OUT" 'j["rows"][0]["count"]')" = "$N" ] || fail "--by class count: $OUT"
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --by type --top 1
grep -Eq "^ +$N .* STRING" <<<"$OUT" || fail "--by type: $OUT"

# --- exact counts: `keep << ("kept-" * 6).dup` right after OLD (no GC in
# between: the first objects share OLD's newest generation and are told
# from OLD's by address); String#* and the copy of #dup are one line, one
# row; the count is every object LATER has from that line
mkdir -p "$T/x"
cat >"$T/x/keep.rb" <<'EOF'
require "objspace"
def dump(path)
  GC.start
  File.open(path, "w") { |f| ObjectSpace.dump_all(output: f) }
end
ObjectSpace.trace_object_allocations_start
keep = []
dump(ARGV[0] + "/old.json")
20000.times { keep << ("kept-" * 6).dup }
dump(ARGV[0] + "/new.json")
dump(ARGV[0] + "/later.json")
$keep = keep
EOF
"$RUBY" "$T/x/keep.rb" "$T/x" || fail "keep.rb failed"
want=$(grep -c '"file":"[^"]*keep.rb", "line":9,' "$T/x/later.json")
[ "$want" -ge 20000 ] || fail "keep.rb: LATER has $want objects from line 9, want >= 20000"
expect_exit 0 "$LP" heapdiff "$T"/x/{old,new,later}.json --json
got=$("$RUBY" -rjson -e 'j = JSON.parse(STDIN.read)
	r = j["rows"].select { |x| x["file"].to_s.end_with?("keep.rb") && x["line"] == 9 }
	puts "#{r.size} #{r.map { |x| x["count"] }.sum} #{j["same_generation_by_address"]}"' <<<"$OUT")
set -- $got
[ "$1" = 1 ] || fail "keep.rb: $1 rows for line 9, want one: $OUT"
[ "$2" = "$want" ] || fail "keep.rb: line 9 retains $2, want $want: $OUT"
[ "$3" -gt 0 ] || fail "keep.rb: no object of OLD's newest generation was told by address: $OUT"
# --by method splits the line again, and adds up to the same
expect_exit 0 "$LP" heapdiff "$T"/x/{old,new,later}.json --json --by method --top 0
got=$("$RUBY" -rjson -e 'j = JSON.parse(STDIN.read)
	r = j["rows"].select { |x| x["file"].to_s.end_with?("keep.rb") && x["line"] == 9 }
	puts "#{r.size} #{r.map { |x| x["count"] }.sum}"' <<<"$OUT")
set -- $got
[ "$1" -ge 2 ] && [ "$2" = "$want" ] || fail "keep.rb --by method: $got: $OUT"

# --- pipes are streamed and give the same document
expect_exit 0 "$LP" heapdiff <(cat "$T/r/old.json") <(cat "$T/r/new.json") <(cat "$T/r/later.json") --json
[ "$(json_site "$OUT")" = "$(json_site "$J")" ] || fail "pipes differ from files: $OUT"

# --- no allocation tracing: per class/type growth, with the note
gen u retain none notrace || fail "retainer.rb notrace failed: $(cat "$T/u.out")"
expect_exit 0 "$LP" heapdiff "$T"/u/{old,new,later}.json
grep -q "allocation sites are unknown: sites need the dumps taken while tracing" <<<"$OUT" ||
	fail "untraced: no note that sites need tracing: $OUT"
expect_exit 0 "$LP" heapdiff "$T"/u/{old,new,later}.json --json
[ "$(json_get "$OUT" 'j["method"]')" = classes ] || fail "untraced: method: $OUT"
grew=$(json_get "$OUT" '(j["rows"].find { |r| r["type"] == "STRING" && r["class"] == "String" } || {})["count"]')
[ -n "$grew" ] && [ "$grew" -ge "$N" ] && [ "$grew" -lt $((N + 200)) ] ||
	fail "untraced: STRING String grew by '$grew', want about $N: $OUT"
echo ok
