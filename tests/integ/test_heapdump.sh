# heapdump from live processes (sleeping, busy, multi-threaded), allocation
# tracing on/off exactly as asked, attach --retained naming the retaining
# line, nothing left on the target's side.
. "$(dirname "$0")/lib.sh"

tracing_on() {	# exit 5 from the snippet means tracing is on in $1
	"$LP" attach "$1" --times 1 -q \
		--eval 'raise "tracing on" if defined?(ObjectSpace.allocation_sourcefile) && ObjectSpace.allocation_sourcefile(Object.new)' \
		>/dev/null 2>&1
	[ $? = 5 ]
}

check_dump() {	# check_dump FILE PID
	[ -s "$1" ] || fail "no dump in $1"
	[ ! -e "$1.partial" ] || fail "partial file left"
	"$RUBY" -rjson -e 'n = 0; File.foreach(ARGV[0]) { |l| JSON.parse(l); n += 1 }
		abort "only #{n} lines" if n < 1000' "$1" || fail "dump does not parse"
	grep -q '"type":"ROOT"' "$1" || fail "no ROOT lines"
	target_ok "$2"
	ls /proc/"$2"/cwd/heap-*.json >/dev/null 2>&1 && fail "target wrote a file"
	return 0
}

# sleeping
start_target leaks.rb
pid=$TARGET_PID
expect_exit 0 "$LP" heapdump "$pid" -o "$T/sleep.json"
grep -q "objects" <<<"$OUT" || fail "no summary: $OUT"
check_dump "$T/sleep.json" "$pid"
tracing_on "$pid" && fail "tracing on after a plain heapdump"

# tracing: on when asked (and said so), off again with --stop-tracing
expect_exit 0 "$LP" heapdump "$pid" -o "$T/t1.json" --trace-allocations
grep -q 'allocation tracing is now ON' <<<"$ERR" || fail "no tracing note: $ERR"
tracing_on "$pid" || fail "tracing not on after --trace-allocations"
expect_exit 0 "$LP" heapdump "$pid" -o "$T/t2.json" --stop-tracing --json
[ "$(json_get "$OUT" 'j["traced"] > 0')" = true ] || fail "no traced objects: $OUT"
tracing_on "$pid" && fail "tracing still on after --stop-tracing"

# attach --retained: retain_string keeps one String per call (leaks.rb)
line=$(grep -n 'retained << ' "$TARGETS_DIR/leaks.rb" | cut -d: -f1)
mkdir "$T/keep"
expect_exit 0 "$LP" attach "$pid" --eval retain_string --times 3000 --batch 300 \
	--retained --keep-dumps "$T/keep" --json
site=$(json_get "$OUT" 's = j["retained"]["sites"][0]; "#{File.basename(s["file"])}:#{s["line"]} #{s["count"]} #{s["class"]}"')
echo "retained top site: $site"
[ "$site" = "leaks.rb:$line 3000 String" ] || fail "retained site '$site', want leaks.rb:$line 3000 String"
[ "$(ls "$T/keep" | wc -l)" = 3 ] || fail "--keep-dumps kept $(ls "$T/keep")"
tracing_on "$pid" && fail "tracing left on after --retained"
expect_exit 0 "$LP" attach "$pid" --eval '"x" * 100' --times 3000 --batch 300 --retained --json
n=$(json_get "$OUT" 'j["retained"]["sites"].sum { |s| s["count"] }')
[ "$n" -lt 100 ] || fail "control retained $n objects: $OUT"
expect_exit 0 "$LP" attach "$pid" --eval retain_string --times 2000 --retained
grep -q "String .*leaks.rb:$line" <<<"$OUT" || fail "text output: $OUT"
target_ok "$pid"

# attach --retained on a target whose threads allocate all the time: their
# objects in flight at the dump after the run are gone by the next one
# (the three-dump rule) and are not listed; how many were dropped is said
start_target churn.rb
cpid=$TARGET_PID
churn_line=$(grep -n 'inflight << ' "$TARGETS_DIR/churn.rb" | cut -d: -f1)
expect_exit 0 "$LP" attach "$cpid" --eval '"x" * 10' --times 3000 --batch 300 --retained --json
n=$(json_get "$OUT" 'j["retained"]["sites"].select { |s| s["file"].to_s.end_with?("churn.rb") }.sum { |s| s["count"] }')
d=$(json_get "$OUT" 'j["retained"]["dropped"]')
echo "churn: $n in-flight objects listed, $d dropped"
[ "$n" -lt 50 ] || fail "churn: $n of the workers' in-flight objects listed as retained: $OUT"
[ "$d" -gt 100 ] || fail "churn: dropped is $d, want the workers' in-flight objects: $OUT"
# and what the snippet really retains is still there, counted exactly
expect_exit 0 "$LP" attach "$cpid" --eval '($lp_keep ||= []) << ("k" * 40)' --times 3000 --batch 300 --retained --json
k=$(json_get "$OUT" 'j["retained"]["sites"].select { |s| s["file"].to_s.include?("leakprobe snippet") }.map { |s| "#{s["count"]} #{s["class"]}" }.join(",")')
[ "$k" = "3000 String" ] || fail "churn: the snippet's strings: '$k': $OUT"
target_ok "$cpid"

# errors: unwritable output
expect_exit 6 "$LP" heapdump "$pid" -o /proc/version/x.json
target_ok "$pid"

# busy and multi-threaded targets
for mode in busy join; do
	mkfifo "$T/go.$mode"
	start_target blocked.rb "$mode" "$T/out.$mode" "$T/go.$mode"
	p=$TARGET_PID
	expect_exit 0 "$LP" heapdump "$p" -o "$T/$mode.json"
	check_dump "$T/$mode.json" "$p"
	echo hello >"$T/go.$mode"
	wait "$p" || fail "$mode target exited with $?"
	grep -q locals-ok "$T/out.$mode" || fail "$mode target broken"
done
echo ok
