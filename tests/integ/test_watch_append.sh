#!/bin/bash
# watch -o appends to an existing file of the same format (no second
# header), refuses a file of another format or a foreign file (exit 2,
# file untouched), and keeps a torn last row on a line of its own.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/cmd"
start_target steady.rb "$T/cmd"
pid=$TARGET_PID
H="time,pid,comm,rss,pss,uss,heap_rss,heap_size,arena_rss,anon_rss,swap,event"

expect_exit 0 "$LP" watch --count 2 --interval 0.05 -o "$T/w.csv" "$pid"
[ -z "$OUT" ] || fail "rows went to stdout with -o: $OUT"
expect_exit 0 "$LP" watch --count 3 --interval 0.05 --output "$T/w.csv" "$pid"
[ "$(head -n 1 "$T/w.csv")" = "$H" ] || fail "no header first"
[ "$(grep -c '^time,' "$T/w.csv")" -eq 1 ] || fail "header duplicated: $(cat "$T/w.csv")"
[ "$(grep -c "^[^,]*,$pid," "$T/w.csv")" -eq 5 ] || fail "expected 5 rows: $(cat "$T/w.csv")"

# JSON lines, chosen by the extension, appended the same way.
expect_exit 0 "$LP" watch --count 2 --interval 0.05 -o "$T/w.jsonl" "$pid"
expect_exit 0 "$LP" watch --count 2 --interval 0.05 -o "$T/w.jsonl" --format jsonl "$pid"
[ "$(wc -l <"$T/w.jsonl")" -eq 4 ] || fail "expected 4 JSON lines: $(cat "$T/w.jsonl")"
"$RUBY" -rjson -e 'ARGF.each_line { |l| JSON.parse(l)["rss"] > 0 or abort(l) }' "$T/w.jsonl" ||
	fail "bad JSON lines"

# Another format or a foreign file: refuse, touch nothing.
cp "$T/w.csv" "$T/w.csv.orig"; cp "$T/w.jsonl" "$T/w.jsonl.orig"
expect_exit 2 "$LP" watch --count 1 --format jsonl -o "$T/w.csv" "$pid"
grep -q "^leakprobe: watch: .*holds csv rows, not jsonl" <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" watch --count 1 --format csv -o "$T/w.jsonl" "$pid"
grep -q "holds jsonl rows, not csv" <<<"$ERR" || fail "message: $ERR"
cmp -s "$T/w.csv" "$T/w.csv.orig" && cmp -s "$T/w.jsonl" "$T/w.jsonl.orig" ||
	fail "a refused file was modified"
printf 'name,value\nx,1\n' >"$T/other.csv"
expect_exit 2 "$LP" watch --count 1 -o "$T/other.csv" "$pid"
grep -q "exists and is not a leakprobe watch file" <<<"$ERR" || fail "message: $ERR"
[ "$(cat "$T/other.csv")" = "$(printf 'name,value\nx,1')" ] || fail "foreign file modified"
[ "$(wc -l <<<"$ERR")" -eq 1 ] || fail "error is not one line: $ERR"

# A row torn by a crash stays one (bad) line; new rows start on their own.
printf '2026-11-22T00:00:00.000+0000,%s,ru' "$pid" >>"$T/w.csv"
expect_exit 0 "$LP" watch --count 1 -o "$T/w.csv" "$pid"
[ "$(tail -n 2 "$T/w.csv" | head -n 1)" = "2026-11-22T00:00:00.000+0000,$pid,ru" ] ||
	fail "torn row glued to the next: $(tail -n 2 "$T/w.csv")"
tail -n 1 "$T/w.csv" | awk -F, -v pid="$pid" 'NF != 12 || $2 != pid { exit 1 }' ||
	fail "row after the torn one is not whole: $(tail -n 1 "$T/w.csv")"
[ "$(grep -c '^time,' "$T/w.csv")" -eq 1 ] || fail "header duplicated after torn row"

# An empty existing file gets the header.
: >"$T/empty.csv"
expect_exit 0 "$LP" watch --count 1 -o "$T/empty.csv" "$pid"
[ "$(head -n 1 "$T/empty.csv")" = "$H" ] || fail "empty file got no header"
echo ok
