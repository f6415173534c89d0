#!/bin/bash
# watch --openmetrics FILE and --listen ADDR:PORT, checked by Prometheus's
# own tools: promtool lints the file and both HTTP formats, and a real
# Prometheus (own config and storage, random port) scrapes watch --listen;
# its query API must return the series with the values /proc shows.  The
# growth-rate gauge rises for a leaking target and not for a steady one;
# a process that exits leaves the output.
. "$(dirname "$0")/lib.sh"

for t in promtool prometheus curl; do
	command -v "$t" >/dev/null 2>&1 ||
		skip "$t not installed (scripts/install-deps installs it)"
done

mib=$((1024 * 1024))
# value of a sample line "NAME{...pid="PID"...} V" in a metrics text
mval() {	# mval FILE NAME PID
	awk -v n="$2" -v p="pid=\"$3\"" 'index($1, n "{") == 1 && index($1, p) { print $2; exit }' "$1"
}
rollup_rss() { awk '/^Rss:/ { print $2 * 1024; exit }' "/proc/$1/smaps_rollup"; }
starttime_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $20 }'; }
# |a - b| <= b * pct / 100
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= b * p / 100) }'; }
# poll_until SECONDS CMD...: run CMD until it succeeds, at most SECONDS
poll_until() {
	local end=$(($(date +%s) + $1)); shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# ---- --openmetrics FILE -------------------------------------------------
mkfifo "$T/cmd" "$T/ack" "$T/scmd"
start_target leaky_fiddle.rb "$T/cmd" "$T/ack"
leaky=$TARGET_PID
start_target steady.rb "$T/scmd"
steady=$TARGET_PID
mkdir "$T/textfile"
prom=$T/textfile/leakprobe.prom

"$LP" watch --interval 0.1 --rate-window 6 --openmetrics "$prom" \
	"$leaky" "$steady" >"$T/w1.out" 2>"$T/w1.err" &
w1=$!
_pids="$_pids $w1"
has_rate() { [ -f "$prom" ] && grep -q "^leakprobe_heap_growth_bytes_per_second{pid=\"$1\"" "$prom"; }
poll_until 30 has_rate "$leaky" || fail "no growth rate for $leaky in $prom: $(cat "$T/w1.err")"
cp "$prom" "$T/snap.prom"
promtool check metrics <"$T/snap.prom" || fail "promtool rejects the --openmetrics file"
[ -s "$T/w1.out" ] && fail "rows on stdout with --openmetrics and no -o: $(head -3 "$T/w1.out")"
tail -n 1 "$T/snap.prom" | grep -qx '# EOF' || fail "file does not end in # EOF"
grep -q '^# UNIT leakprobe_rss_bytes bytes$' "$T/snap.prom" || fail "no # UNIT line"
st=$(starttime_of "$leaky")
grep -q "^leakprobe_rss_bytes{pid=\"$leaky\",comm=\"ruby\",starttime=\"$st\"} " "$T/snap.prom" ||
	fail "labels pid/comm/starttime wrong: $(grep '^leakprobe_rss_bytes' "$T/snap.prom")"
rss=$(mval "$T/snap.prom" leakprobe_rss_bytes "$leaky")
now=$(rollup_rss "$leaky")
echo "file: rss $rss, /proc says $now"
within "$rss" "$now" 5 || fail "rss $rss is not /proc's $now (5 %)"

# A leak of 2 x 16 MiB: for the 6 s after it ends, the window still holds
# it, so the rate is at least 32 MiB / 6 s, or the leak's own pace when it
# took longer.  256 KiB/s: far above the steady target, far below that.
echo "leak 16384" >"$T/cmd"
read -r -t 120 ack <"$T/ack" || fail "target did not acknowledge the leak"
rate_over() {
	local r
	cp "$prom" "$T/snap.prom" 2>/dev/null || return 1
	r=$(mval "$T/snap.prom" leakprobe_heap_growth_bytes_per_second "$1")
	[ -n "$r" ] && awk -v r="$r" -v m="$2" 'BEGIN { exit !(r > m) }'
}
poll_until 5 rate_over "$leaky" $((256 * 1024)) ||
	fail "growth rate of the leaking target stayed low: $(grep growth "$prom")"
srate=$(mval "$T/snap.prom" leakprobe_heap_growth_bytes_per_second "$steady")
echo "rates: leaking $(mval "$T/snap.prom" leakprobe_heap_growth_bytes_per_second "$leaky"), steady $srate"
[ -n "$srate" ] || fail "no rate for the steady target"
awk -v r="$srate" -v m=$((256 * 1024)) 'BEGIN { exit !(r < m) }' ||
	fail "steady target's rate $srate looks like a leak"

# The steady target exits: its series leave the file, the other stays.
echo exit >"$T/scmd"
gone() { cp "$prom" "$T/snap.prom" && ! grep -q "pid=\"$steady\"" "$T/snap.prom"; }
poll_until 20 gone || fail "exited pid $steady still in the file"
grep -q "^leakprobe_rss_bytes{pid=\"$leaky\"" "$T/snap.prom" || fail "live pid $leaky left the file"
grep -q '^leakprobe_watch_processes 1$' "$T/snap.prom" || fail "process count not 1"
kill -INT "$w1"
wait "$w1"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc after SIGINT: $(cat "$T/w1.err")"
[ "$(ls "$T/textfile")" = leakprobe.prom ] || fail "temporary files left: $(ls "$T/textfile")"

# A command name with a quote, a backslash, a newline and a stray UTF-8
# byte: escaped, or '?', in the label, and promtool still accepts the file.
mkfifo "$T/odd.ready"
"$RUBY" -rfiddle -e 'f = Fiddle::Function.new(Fiddle::Handle::DEFAULT["prctl"],
	[Fiddle::TYPE_INT, Fiddle::TYPE_VOIDP, Fiddle::TYPE_LONG, Fiddle::TYPE_LONG,
	 Fiddle::TYPE_LONG], Fiddle::TYPE_INT)
	f.call(15, "we\"ird\\x\n\xC3".b, 0, 0, 0)
	File.write(ARGV[0], "ready\n"); sleep' "$T/odd.ready" &
odd=$!
_pids="$_pids $odd"
read -r -t 60 line <"$T/odd.ready" || fail "odd-named process did not start"
expect_exit 0 "$LP" watch --count 1 --openmetrics "$T/odd.prom" "$odd"
promtool check metrics <"$T/odd.prom" || fail "promtool rejects an odd command name"
grep -qF "leakprobe_rss_bytes{pid=\"$odd\",comm=\"we\\\"ird\\\\x\\n?\"," "$T/odd.prom" ||
	fail "label not escaped: $(grep '^leakprobe_rss_bytes' "$T/odd.prom")"

# ---- --listen: promtool on both formats, then a real Prometheus ----------
start_target leaks.rb
pid=$TARGET_PID
mkfifo "$T/werr"
"$LP" watch --interval 0.2 --gc-stat --listen 127.0.0.1:0 "$pid" \
	>"$T/w2.out" 2>"$T/werr" &
w2=$!
_pids="$_pids $w2"
exec 4<"$T/werr"
read -r -t 60 -u 4 line || fail "watch --listen said nothing"
addr=$(sed -n 's|^leakprobe: watch: serving metrics on http://\(127.0.0.1:[0-9]*\)/metrics$|\1|p' <<<"$line")
[ -n "$addr" ] || fail "no address in '$line'"
cat <&4 >"$T/w2.err" &
have_gc() {
	curl -sf "http://$addr/metrics" >"$T/text" &&
		grep -q "^leakprobe_ruby_gc_total{pid=\"$pid\"" "$T/text"
}
poll_until 30 have_gc || fail "no GC counters served: $(cat "$T/text")"
promtool check metrics <"$T/text" || fail "promtool rejects the 0.0.4 text"
grep -q '^# TYPE leakprobe_ruby_gc_total counter$' "$T/text" || fail "0.0.4 counter TYPE"
grep -q '^# UNIT' "$T/text" && fail "# UNIT in the 0.0.4 text"
curl -sf -D "$T/hdr" -H 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' \
	"http://$addr/metrics" >"$T/om" || fail "OpenMetrics request failed"
grep -qi '^Content-Type: application/openmetrics-text; version=1.0.0' "$T/hdr" ||
	fail "no OpenMetrics content type: $(cat "$T/hdr")"
grep -q '^# TYPE leakprobe_ruby_gc counter$' "$T/om" || fail "OpenMetrics counter family"
grep -q "^leakprobe_ruby_gc_total{pid=\"$pid\"" "$T/om" || fail "OpenMetrics counter sample"
tail -n 1 "$T/om" | grep -qx '# EOF' || fail "OpenMetrics text does not end in # EOF"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/nope")
[ "$code" = 404 ] || fail "unknown path gave $code"

# errors: a bad address (2), one in use (6), an unwritable file (6)
expect_exit 2 "$LP" watch --listen 127.0.0.1 --count 1 "$pid"
grep -q "bad --listen '127.0.0.1': give HOST:PORT" <<<"$ERR" || fail "bad address: $ERR"
expect_exit 2 "$LP" watch --listen :99999 --count 1 "$pid"
expect_exit 6 "$LP" watch --listen "$addr" --count 1 "$pid"
grep -q "cannot listen on '$addr': Address already in use" <<<"$ERR" || fail "address in use: $ERR"
expect_exit 6 "$LP" watch --openmetrics "$T/no/such/dir/x.prom" --count 1 "$pid"
grep -q "cannot write '$T/no/such/dir/x.prom\.[0-9]*\.tmp'" <<<"$ERR" || fail "unwritable file: $ERR"

# Prometheus: free port, own config and storage, 1 s scrapes.
pport=$("$RUBY" -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close')
mkdir "$T/prom"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: leakprobe
    static_configs:
      - targets: ['$addr']
EOF
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
	--web.listen-address="127.0.0.1:$pport" >"$T/prom/log" 2>&1 &
ppid=$!
_pids="$_pids $ppid"
api="http://127.0.0.1:$pport/api/v1"
query() { curl -sf --data-urlencode "query=$1" "$api/query"; }
ready() { curl -sf "http://127.0.0.1:$pport/-/ready" >/dev/null; }
poll_until 60 ready || fail "prometheus did not start: $(tail -5 "$T/prom/log")"
scraped() {
	query "leakprobe_rss_bytes{pid=\"$pid\"}" >"$T/q" &&
		[ "$(json_get "$(cat "$T/q")" 'j["data"]["result"].size')" = 1 ]
}
poll_until 60 scraped || fail "series never appeared in prometheus: $(cat "$T/q"); $(tail -5 "$T/prom/log")"
now=$(rollup_rss "$pid")
got=$(json_get "$(cat "$T/q")" 'j["data"]["result"][0]["value"][1]')
lbl=$(json_get "$(cat "$T/q")" 'm = j["data"]["result"][0]["metric"]; "#{m["comm"]} #{m["starttime"]} #{m["job"]}"')
echo "prometheus: rss $got, /proc says $now; labels $lbl"
within "$got" "$now" 5 || fail "prometheus has rss $got, /proc $now"
[ "$lbl" = "ruby $(starttime_of "$pid") leakprobe" ] || fail "labels: $lbl"
q=$(query "up{job=\"leakprobe\"}")
[ "$(json_get "$q" 'j["data"]["result"][0]["value"][1]')" = 1 ] || fail "scrape not up: $q"
gcq() { q=$(query "leakprobe_ruby_gc_total{pid=\"$pid\"}") && [ "$(json_get "$q" 'j["data"]["result"].size')" = 1 ]; }
poll_until 30 gcq || fail "no GC counter in prometheus: $q"
# The unit reaches Prometheus only through the OpenMetrics parser.
meta=$(curl -sf "$api/metadata?metric=leakprobe_rss_bytes")
[ "$(json_get "$meta" 'j["data"]["leakprobe_rss_bytes"][0]["unit"]')" = bytes ] ||
	fail "prometheus did not read the OpenMetrics unit: $meta"

kill -TERM "$w2"
wait "$w2"; rc=$?
[ "$rc" -eq 0 ] || fail "watch --listen exited $rc after SIGTERM"
target_ok "$pid"
echo ok
