# leakprobe report: one HTML page from the files of real runs (a watch
# CSV, attach --json with --malloc-sites and --retained, heapdiff --json,
# malloc --json)
# that loads nothing from anywhere, rendered by a real browser (Debian's
# chromium, headless): its DOM holds the verdict, the tables and the
# flame graph, and a screenshot is a PNG.  Inputs carrying markup (a file
# name, Ruby sites, native frame names) show as text: no element of
# theirs reaches the DOM.
. "$(dirname "$0")/lib.sh"
. "$TARGETS_DIR/ext/helpers.sh"
need_bpf
CHROMIUM=$(command -v chromium || command -v chromium-browser) ||
	skip "chromium (Debian chromium) not found"

browser() {	# browser ARGS... URL: headless, offline, no profile of ours left
	timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
		--no-first-run --disable-background-networking \
		--disable-component-update --disable-sync \
		--user-data-dir="$T/chromium" "$@" 2>"$T/chromium.err"
}

start_target leaks.rb
pid=$TARGET_PID
"$LP" watch "$pid" --interval 0.1 --count 40 -o "$T/w.csv" >/dev/null 2>&1 &
wpid=$!
expect_exit 0 "$LP" attach "$pid" --json --malloc-sites --retained \
	--eval 'Fiddle.malloc(256); $retained << "r" * 40' --times 3000 --batch 300
printf '%s\n' "$OUT" >"$T/a.json"
expect_exit 0 "$LP" malloc "$pid" --json --eval 'Fiddle.malloc(128)' \
	--times 2000 --batch 200
printf '%s\n' "$OUT" >"$T/m.json"
wait "$wpid" || fail "watch failed"
target_ok "$pid"
mkdir -p "$T/r"
"$RUBY" "$TARGETS_DIR/retainer.rb" "$T/r" retain none 500 >"$T/r.out" 2>&1 ||
	fail "retainer.rb failed: $(cat "$T/r.out")"
expect_exit 0 "$LP" heapdiff "$T"/r/{old,new,later}.json --json
printf '%s\n' "$OUT" >"$T/h.json"

# hostile inputs: markup in a file name, in Ruby sites, in frame names
EVIL='<img src=x onerror=alert(1)>'
cp "$T/w.csv" "$T/$EVIL.csv"
"$RUBY" -rjson -e '
	h = JSON.parse(File.read(ARGV[0]))
	h["rows"][0]["method"] = "<script>document.title=\"pwned\"</script>"
	h["rows"][0]["class"] = "</td></tr></table><iframe srcdoc=x>"
	File.write(ARGV[1], JSON.generate(h))
	m = JSON.parse(File.read(ARGV[2]))
	f = m["sites"][0]["frames"][1]
	f["function"] = "</text></svg><script>alert(2)</script>"
	f["name"] = "<style>body{display:none}</style>"
	File.write(ARGV[3], JSON.generate(m))' \
	"$T/h.json" "$T/h-evil.json" "$T/m.json" "$T/m-evil.json" ||
	fail "cannot write the hostile inputs"

expect_exit 0 "$LP" report "$T/$EVIL.csv" "$T/a.json" "$T/h-evil.json" \
	"$T/m-evil.json" -o "$T/report.html" --title 'leak hunt & co'
html="$T/report.html"
[ -s "$html" ] || fail "no page written"
# self-contained: nothing to fetch (the SVG namespace is a name, not a
# fetch), no script at all
grep -qi '<script' "$html" && fail "a script element in the page"
grep -Eio '(src|href)="|url\(|@import|<link|<iframe|<img' "$html" &&
	fail "the page refers to something outside itself"
grep -Eo 'https?://[^"]*' "$html" | grep -vx 'http://www.w3.org/2000/svg' &&
	fail "the page names a URL"

# the browser's DOM
browser --dump-dom "file://$html" >"$T/dom.html" ||
	fail "chromium --dump-dom failed: $(tail -5 "$T/chromium.err")"
dom="$T/dom.html"
[ -s "$dom" ] || fail "empty DOM: $(tail -5 "$T/chromium.err")"
grep -q '<title>leak hunt &amp; co</title>' "$dom" || fail "title: $(grep -o '<title>.*</title>' "$dom")"
kind=$(json_get "$(cat "$T/a.json")" 'j["verdict"]["kind"]')
case $kind in *leak) ;; *) fail "attach found no leak: $kind";; esac
grep -q "<div class=\"verdict leak\">$kind</div>" "$dom" ||
	fail "no verdict '$kind' in the DOM"
grep -q '95 % interval' "$dom" || fail "no interval in the DOM"
for id in verdict retained memory heapdiff native; do
	grep -q "<section id=\"$id\">" "$dom" || fail "no $id section in the DOM"
done
# tables: the retained site and the malloc sites, with their numbers
grep -q '<td class="n">500</td>' "$dom" || fail "no retained row of 500 objects"
grep -q '<td class="n">3000</td><td class="n">[^<]*</td><td><code>(leakprobe snippet' "$dom" ||
	fail "no row of the 3000 strings the snippet retained"
grep -q 'retainer\.rb:[0-9]' "$dom" || fail "no retaining site in the DOM"
grep -q 'fiddle\.so+0x' "$dom" || fail "no fiddle.so frame in the DOM"
# the flame graph: frames drawn with their names, the memory plot's lines
nflame=$(grep -o '<g class="f">' "$dom" | wc -l)
[ "$nflame" -ge 5 ] || fail "flame graph has $nflame frames"
grep -q '<polyline' "$dom" || fail "no plot line in the DOM"
# hostile strings are text: escaped, and no element of theirs exists
grep -qi '<script' "$dom" && fail "a script element reached the DOM"
grep -qi '<iframe\|<img\|<style>body' "$dom" && fail "injected markup reached the DOM"
grep -q '&lt;script&gt;document.title' "$dom" || fail "the hostile method is not shown as text"
grep -q '&lt;img src=x onerror=alert(1)&gt;' "$dom" || fail "the hostile file name is not shown as text"
grep -q '&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;' "$dom" || fail "the hostile frame is not shown as text"

# a screenshot, to look at
browser --window-size=1280,2400 --screenshot="$T/report.png" "file://$html" ||
	fail "chromium --screenshot failed: $(tail -5 "$T/chromium.err")"
[ -s "$T/report.png" ] || fail "no screenshot"
[ "$(head -c 8 "$T/report.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
	fail "the screenshot is not a PNG"
[ "$(stat -c %s "$T/report.png")" -gt 20000 ] || fail "the screenshot is blank"
[ -n "${LEAKPROBE_KEEP_SCREENSHOT:-}" ] && cp "$T/report.png" "$LEAKPROBE_KEEP_SCREENSHOT"

# any subset; errors
expect_exit 0 "$LP" report "$T/h.json" -o -
grep -q '<section id="heapdiff">' <<<"$OUT" || fail "heapdiff alone: $OUT"
grep -q '<section id="verdict">' <<<"$OUT" && fail "a verdict from nowhere"
echo 'not, a, leakprobe, file' >"$T/other.csv"
expect_exit 2 "$LP" report "$T/other.csv" -o "$T/x.html"
grep -q "none of" <<<"$ERR" || fail "message: $ERR"
expect_exit 2 "$LP" report "$T/h.json"
expect_exit 6 "$LP" report "$T/missing.json" -o "$T/x.html"
expect_exit 6 "$LP" report "$T/h.json" -o "$T/no/dir/x.html"
echo ok
