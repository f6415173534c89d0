# The Pathname-leak example: on this Ruby (bug #14372 fixed in 2.5) the
# real app shows no leak (exit 0); the stand-in with the same shape leaks
# natively (exit 1).  On Ruby 2.3/2.4 the real app exits 1.
. "$(dirname "$0")/lib.sh"
EX=$(cd "$(dirname "$0")/../../examples/pathname-leak" && pwd)
old=$("$RUBY" -e 'print(Gem::Version.new(RUBY_VERSION) < Gem::Version.new("2.5") ? 1 : 0)')

LEAKPROBE=$LP expect_exit "$([ "$old" = 1 ] && echo 1 || echo 0)" "$EX/check.sh" app.rb
tail -n 1 <<<"$OUT"
grep -q "$([ "$old" = 1 ] && echo '^native leak' || echo '^no leak')" <<<"$OUT" || fail "app: $OUT"

LEAKPROBE=$LP expect_exit 1 "$EX/check.sh" standin.rb
tail -n 1 <<<"$OUT"
grep -q '^native leak' <<<"$OUT" || fail "standin: $OUT"
pgrep -f "$EX/" >/dev/null && fail "example app left running"
echo ok
