# The Pathname-leak example: where the real app does not leak by its own
# RSS (bug #14372 fixed, as in 2.5+) check.sh exits 0; where it does (the
# bug, 2.3/2.4) it exits 1.  The stand-in with the same shape leaks
# natively (exit 1) everywhere.
. "$(dirname "$0")/lib.sh"
EX=$(cd "$(dirname "$0")/../../examples/pathname-leak" && pwd)
truth=$("$RUBY" -C "$EX" "$(cd "$(dirname "$0")/../rubies" && pwd)/pathname-truth.rb" app.rb 30000)
awk -v t="$truth" 'BEGIN { exit !(t != "" && t + 0 == t) }' || fail "pathname-truth.rb: $truth"
old=$(awk -v t="$truth" 'BEGIN { print (t >= 48) ? 1 : 0 }')
echo "app.rb by its own RSS: $truth B per call"

LEAKPROBE=$LP expect_exit "$([ "$old" = 1 ] && echo 1 || echo 0)" "$EX/check.sh" app.rb
tail -n 1 <<<"$OUT"
grep -q "$([ "$old" = 1 ] && echo '^native leak' || echo '^no leak')" <<<"$OUT" || fail "app: $OUT"

LEAKPROBE=$LP expect_exit 1 "$EX/check.sh" standin.rb
tail -n 1 <<<"$OUT"
grep -q '^native leak' <<<"$OUT" || fail "standin: $OUT"
pgrep -f "$EX/" >/dev/null && fail "example app left running"
echo ok
