# heapdiff --format pprof and folded on dumps written by real Ruby
# (targets/retainer.rb): go tool pprof (Debian golang-go) reads the
# profile and its top entry is the retaining site with the objects and
# bytes of heapdiff's JSON; folded lines parse and sum to the JSON total;
# formats that need sites refuse --by class.
. "$(dirname "$0")/lib.sh"
command -v go >/dev/null 2>&1 || skip "go tool pprof (Debian golang-go) not found"
export GOCACHE="$T/gocache" HOME="$T/home" GOPROXY=off GOFLAGS=
mkdir -p "$HOME"
pp() { go tool pprof -symbolize=none "$@" 2>&1; }

N=1000
mkdir -p "$T/r"
"$RUBY" "$TARGETS_DIR/retainer.rb" "$T/r" retain none "$N" >"$T/r.out" 2>&1 ||
	fail "retainer.rb failed: $(cat "$T/r.out")"
SITE=$(cat "$T/r/site")
FILE=${SITE%:*} LINE=${SITE##*:}

expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --json \
	--format pprof -o "$T/h.pb.gz"
J=$OUT
bytes=$(json_get "$J" 'j["rows"][0]["bytes"]')
count=$(json_get "$J" 'j["rows"][0]["count"]')
file=$(json_get "$J" 'j["rows"][0]["file"]')
total=$(json_get "$J" 'j["total"]["bytes"]')
[ "$count" = "$N" ] || fail "the retaining site is not the first row: $J"
top=$(pp -top -unit=B "$T/h.pb.gz") || fail "pprof: $top"
echo "$top" | head -12
grep -q "^Type: retained_space" <<<"$top" || fail "sample type: $top"
grep -q "% of ${total}B total\$" <<<"$top" ||
	fail "pprof's total is not heapdiff's $total bytes: $top"
first=$(awk '/flat%/ { getline; print; exit }' <<<"$top")
read -r flat _ _ _ _ name <<<"$first"
[ "$flat" = "${bytes}B" ] || fail "pprof's top entry holds $flat, heapdiff ${bytes}B"
[ "$name" = "$file:$LINE" ] || fail "pprof's top entry is '$name', not $file:$LINE"
otop=$(pp -top -sample_index=retained_objects "$T/h.pb.gz")
first=$(awk '/flat%/ { getline; print; exit }' <<<"$otop")
read -r flat _ _ _ _ name <<<"$first"
[ "$flat" = "$N" ] && [ "$name" = "$file:$LINE" ] ||
	fail "retained_objects top entry: $first"
# the line number reaches pprof's line table
pp -traces "$T/h.pb.gz" | grep -q "$file:$LINE" || fail "no trace names the site"

# folded, on stdout: "method;file:line bytes" lines summing to the total
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --format folded
bad=$(grep -cvE '^[^ ;][^;]*(;[^;]+)* [0-9]+$' <<<"$OUT")
[ "$bad" = 0 ] || fail "malformed folded lines: $OUT"
sum=$(awk '{ s += $NF } END { print s }' <<<"$OUT")
[ "$sum" = "$total" ] || fail "folded sums to $sum, heapdiff's total is $total"
line=$(grep -F "$file:$LINE " <<<"$OUT") || fail "no folded line for the site: $OUT"
[ "${line##* }" = "$bytes" ] || fail "folded site line: $line"

# the formats are per site
expect_exit 2 "$LP" heapdiff "$T"/r/{old,new}.json --by class --format pprof -o "$T/x"
grep -q "by allocation site" <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" heapdiff "$T"/r/{old,new}.json --format flame
echo ok
