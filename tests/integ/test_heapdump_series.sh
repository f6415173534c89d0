#!/bin/bash
# heapdump --every: timestamped dumps of a live target until --count, a
# signal or the target's exit; --keep bounds the files; --gzip dumps are
# read back; a full disk ends the series with exit 6 and the dumps before
# it intact.  heapdiff --series: the growing site grows in every interval,
# the steady one does not.
. "$(dirname "$0")/lib.sh"

site_line() { grep -n "$1" "$TARGETS_DIR/series.rb" | cut -d: -f1; }
grow_line=$(site_line GROWING-SITE)
steady_line=$(site_line STEADY-SITE)
# every line of a dump is a JSON object (gzip'd or not)
dump_ok() {
	local f=$1
	case $f in *.gz) gzip -t "$f" || return 1; gzip -dc "$f";; *) cat "$f";; esac |
		"$RUBY" -rjson -e 'n = 0; STDIN.each_line { |l| JSON.parse(l); n += 1 }
			abort "only #{n} lines" if n < 1000'
}
# series_json DIR: heapdiff --series DIR --json, checked to exit 0
series_json() {
	expect_exit 0 "$LP" heapdiff --series "$1" --json
	echo "$OUT"
}
group() {	# group JSON LINE EXPR: EXPR on the group of series.rb:LINE
	json_get "$1" "g = j['groups'].find { |x| x['file'].to_s.end_with?('series.rb') && x['line'] == $2 }; g && ($3)"
}

mkfifo "$T/cmd"
start_target series.rb "$T/cmd"
pid=$TARGET_PID

# ---- a series of 5, then the analysis --------------------------------
mkdir "$T/d"
expect_exit 0 "$LP" heapdump "$pid" --every 1s --count 5 --dir "$T/d" --trace-allocations
[ "$(ls "$T/d" | wc -l)" = 5 ] || fail "want 5 dumps: $(ls "$T/d")"
[ "$(grep -c '^'"$T/d"'/heap-'"$pid"'-[0-9]\{8\}T[0-9]\{6\}Z.json: ' <<<"$OUT")" = 5 ] ||
	fail "one line per dump wanted: $OUT"
grep -q "5 dumps of $pid" <<<"$ERR" || fail "no end note: $ERR"
grep -q "allocation tracing is now ON" <<<"$ERR" || fail "no tracing note: $ERR"
for f in "$T"/d/*; do dump_ok "$f" || fail "dump $f does not parse"; done
j=$(series_json "$T/d")
[ "$(json_get "$j" 'j["intervals"]')" = 4 ] || fail "intervals: $j"
[ "$(json_get "$j" 'j["by"]')" = site ] || fail "not by site"
g=$(group "$j" "$grow_line" '"#{g["every_interval"]} #{g["grew_intervals"]} #{g["last"] > g["first"]} #{g["per_interval"] > 0}"')
echo "growing site: $g"
[ "$g" = "true 4 true true" ] || fail "growing site series.rb:$grow_line: '$g'"
s=$(group "$j" "$steady_line" '"#{g["every_interval"]} #{g["counts"].min} #{g["counts"].max}"')
echo "steady site: $s"
set -- $s
[ "${1:-}" = false ] || fail "steady site series.rb:$steady_line listed as growing: '$s'"
[ "${2:-0}" -ge 300 ] || fail "steady site has too few objects: '$s'"
# the text output lists the growing site under "growing in every interval"
expect_exit 0 "$LP" heapdiff --series "$T/d"
sed -n '/^growing in every interval/,/^$/p' <<<"$OUT" | grep -q "series.rb:$grow_line " ||
	fail "text output: $OUT"
sed -n '/^growing in every interval/,/^$/p' <<<"$OUT" | grep -q "series.rb:$steady_line " &&
	fail "steady site in the growing list: $OUT"

# ---- --keep, --gzip; --keep touches only this process's dumps ------------
mkdir "$T/g"
touch "$T/g/heap-999999-20000101T000000Z.json"
expect_exit 0 "$LP" heapdump "$pid" --every 1 --count 4 --keep 2 --gzip --dir "$T/g"
[ "$(ls "$T/g" | grep -c "^heap-$pid-.*\.json\.gz$")" = 2 ] || fail "--keep 2 left: $(ls "$T/g")"
[ -e "$T/g/heap-999999-20000101T000000Z.json" ] || fail "--keep removed another process's file"
expect_exit 2 "$LP" heapdiff --series "$T/g"
grep -q "holds dumps of processes" <<<"$ERR" || fail "mixed processes: $ERR"
rm "$T/g/heap-999999-20000101T000000Z.json"
for f in "$T"/g/*; do dump_ok "$f" || fail "gzip dump $f does not parse"; done
j=$(series_json "$T/g")
[ "$(group "$j" "$grow_line" 'g["every_interval"]')" = true ] || fail "gzip series: $j"
# a truncated gzip dump is an error, not a shorter dump
mkdir "$T/trunc"
for f in "$T"/g/*; do cp "$f" "$T/trunc/"; done
last=$(ls "$T/trunc" | tail -n 1)
truncate -s $(( $(stat -c %s "$T/trunc/$last") / 2 )) "$T/trunc/$last"
expect_exit 6 "$LP" heapdiff --series "$T/trunc"
grep -q "gzip data: unexpected end of file" <<<"$ERR" || fail "truncated gzip: $ERR"
expect_exit 2 "$LP" heapdiff --series "$T/nothing"
mkdir "$T/one" && cp "$T/g/$(ls "$T/g" | head -1)" "$T/one/"
expect_exit 2 "$LP" heapdiff --series "$T/one"
grep -q "at least two" <<<"$ERR" || fail "one dump: $ERR"

# ---- usage errors ------------------------------------------------------
expect_exit 2 "$LP" heapdump "$pid" --every 0.5
expect_exit 2 "$LP" heapdump "$pid" --count 3
expect_exit 2 "$LP" heapdump "$pid" --every 1m -o x.json
expect_exit 2 "$LP" heapdump "$pid" --every 1m --dir "$T/no/such"

# ---- SIGINT ends the series; no partial file ----------------------------
mkdir "$T/s"
mkfifo "$T/s.out"
"$LP" heapdump "$pid" --every 1 --dir "$T/s" >"$T/s.out" 2>"$T/s.err" &
hp=$!
_pids="$_pids $hp"
exec 4<"$T/s.out"
read -r -t 120 -u 4 first || fail "no first dump: $(cat "$T/s.err")"
kill -INT "$hp"
cat <&4 >/dev/null
wait "$hp"; rc=$?
[ "$rc" = 0 ] || fail "SIGINT: exit $rc: $(cat "$T/s.err")"
ls "$T/s" | grep -q partial && fail "partial file left: $(ls "$T/s")"
for f in "$T"/s/*; do dump_ok "$f" || fail "dump $f after SIGINT does not parse"; done

# ---- SIGINT during a dump: abandoned, no partial file, target unharmed ----
mkfifo "$T/big.ready"
"$RUBY" -e '$big = Array.new(400_000) { |i| "big string #{i}" }
	File.write(ARGV[0], "ready\n"); sleep' "$T/big.ready" &
big=$!
_pids="$_pids $big"
read -r -t 60 line <"$T/big.ready" || fail "big target did not start"
mkdir "$T/i"
"$LP" heapdump "$big" --every 1 --dir "$T/i" >"$T/i.out" 2>"$T/i.err" &
hp=$!
_pids="$_pids $hp"
# a dump in progress: its file has data (the job ran and the helper
# streams; a signal before that finds the job pending, and the defused
# page then stays for the next run, by design)
partial() {
	local f
	for f in "$T"/i/*.partial; do [ -s "$f" ] && return 0; done
	return 1
}
end=$(($(date +%s) + 60))
until partial; do
	[ "$(date +%s)" -lt "$end" ] || fail "no dump in progress seen: $(cat "$T/i.err")"
	sleep 0.005
done
kill -INT "$hp"
wait "$hp"; rc=$?
[ "$rc" = 0 ] || fail "SIGINT during a dump: exit $rc: $(cat "$T/i.err")"
ls "$T/i" | grep -q partial && fail "partial file left: $(ls "$T/i")"
if grep -q "abandoned" "$T/i.err"; then
	echo "SIGINT during a dump: abandoned, $(ls "$T/i" | wc -l) files"
else
	# the dump ended between our look and the signal: whole then
	for f in "$T"/i/*; do dump_ok "$f" || fail "dump $f does not parse"; done
fi
target_ok "$big"

# ---- the target exits: the series ends, exit 0 ---------------------------
mkdir "$T/x"
mkfifo "$T/x.out"
"$LP" heapdump "$pid" --every 1 --dir "$T/x" >"$T/x.out" 2>"$T/x.err" &
hp=$!
_pids="$_pids $hp"
exec 5<"$T/x.out"
read -r -t 120 -u 5 first || fail "no first dump: $(cat "$T/x.err")"
echo exit >"$T/cmd"
cat <&5 >/dev/null
wait "$hp"; rc=$?
[ "$rc" = 0 ] || fail "target exit: exit $rc: $(cat "$T/x.err")"
grep -q "the process exited" "$T/x.err" || fail "no exit note: $(cat "$T/x.err")"
ls "$T/x" | grep -q partial && fail "partial file left: $(ls "$T/x")"

# ---- full disk: exit 6, the dumps before it whole ------------------------
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
	mkfifo "$T/cmd2"
	start_target series.rb "$T/cmd2"
	pid2=$TARGET_PID
	size=$(stat -c %s "$(ls -d "$T"/d/* | head -1)")
	mkdir "$T/mnt"
	# room for about two dumps
	kib=$(( size * 5 / 2 / 1024 ))
	unshare -m bash -c '
		mount -t tmpfs -o size=${4}k lp-test "$1/mnt" || exit 77
		"$2" heapdump "$3" --every 1 --count 20 --dir "$1/mnt" \
			--trace-allocations >"$1/full.out" 2>"$1/full.err"
		echo $? >"$1/full.rc"
		mkdir "$1/full" && cp "$1"/mnt/* "$1/full/" 2>/dev/null
		ls -a "$1/mnt" >"$1/full.ls"
	' _ "$T" "$LP" "$pid2" "$kib"
	[ -f "$T/full.rc" ] || fail "tmpfs run did not finish"
	rc=$(cat "$T/full.rc")
	[ "$rc" = 6 ] || fail "full disk: exit $rc: $(cat "$T/full.err")"
	grep -q "No space left on device" "$T/full.err" || fail "unclear error: $(cat "$T/full.err")"
	grep -q partial "$T/full.ls" && fail "partial file left on the full disk"
	n=$(ls "$T/full" | wc -l)
	[ "$n" -ge 1 ] || fail "no dump written before the disk filled"
	echo "full disk: $n dumps kept, $(tail -n 1 "$T/full.err")"
	for f in "$T"/full/*; do dump_ok "$f" || fail "dump $f before the full disk does not parse"; done
	target_ok "$pid2"
fi
echo ok
