#!/bin/bash
# The Pathname-leak example (examples/pathname-leak), unchanged, against one
# Ruby (see lib.sh).  What leakprobe must say comes from the process
# itself, never from the version: pathname-truth.rb measures the app's own
# resident growth per `work` call.  A Ruby whose app leaks (bug #14372,
# 2.3/2.4) must give exit 1, a native leak within 25 % of that growth; one
# whose app does not must give exit 0, and the stand-in exit 1 there
# (native, 256 B per call within 25 %).
# On the host, check.sh itself runs (`leakprobe run`); in a container the
# app starts there and leakprobe attaches with check.sh's arguments.
. "$(dirname "$0")/lib.sh"
EX=$RUBIES_HERE/../../examples/pathname-leak
install_app "$EX" "$RUBIES_HERE/pathname-truth.rb"
D=$APP/pathname-leak
# shellcheck disable=SC2086
truth=$($RUBY_CMD -C "$D" "$APP/pathname-truth.rb" app.rb 30000 2>&1 | tail -n 1)
awk -v t="$truth" 'BEGIN { exit !(t + 0 == t) }' 2>/dev/null || fail "pathname-truth.rb: $truth"
if awk -v t="$truth" 'BEGIN { exit !(t >= 48) }'; then
	apps="app.rb:1:$truth"
elif awk -v t="$truth" 'BEGIN { exit !(t < 16) }'; then
	apps="app.rb:0:- standin.rb:1:256"
else
	fail "app.rb grows $truth B per call by its own RSS: neither a leak nor none"
fi
say "app.rb by its own RSS: $truth B per call"

# check APP WANT BYTES: the verdict on APP; its exit status WANT and, when
# it leaks, BYTES per call within 25 %
check() {
	local a=$1 want=$2 bytes=$3 k n
	if [ "$ROOT" = / ]; then
		OUT=$(LEAKPROBE=$LP RUBY="$RUBY_CMD" "$HOSTAPP/pathname-leak/check.sh" "$a" 2>&1); rc=$?
		[ "$rc" = "$want" ] || fail "check.sh $a: exit $rc, not $want: $OUT"
		pgrep -f "$HOSTAPP/pathname-leak/" >/dev/null && fail "check.sh left $a running"
	else
		mkfifo "$HOSTAPP/tmp/ready"
		# shellcheck disable=SC2086
		$RUBY_CMD -C "$D" "$a" "$APP/tmp/ready" >"$T/target.out" 2>&1 &
		local l=$!
		_launchers="$_launchers $l"
		timeout 60 cat "$HOSTAPP/tmp/ready" >/dev/null ||
			fail "$a not ready: $(tail -n 5 "$T/target.out")"
		rm -f "$HOSTAPP/tmp/ready"
		TPID=$(descend "$l"); _targets="$_targets $TPID"
		lp_reach "$want" "$TPID" attach "$TPID" --eval work --times 20000 \
			--batch 1000 --warmup 6 --fail-on-growth 32
		target_unharmed "$TPID" "$a"
		kill -9 "$TPID" "$l" 2>/dev/null; wait "$l" 2>/dev/null
	fi
	k=$(tail -n 1 <<<"$OUT")
	if [ "$want" = 1 ]; then
		case $k in "native leak: +"*) ;; *) fail "$a: $k";; esac
		n=$(sed -n 's/^native leak: +\([0-9.]*\) B per call.*/\1/p' <<<"$k")
		within "$n" "$bytes" 25 || fail "$a: $n B per call, not $bytes +- 25 %: $k"
	fi
	# exit 0 is the contract where the app does not leak (no leak, or
	# growth below the 32 B threshold: the line says which)
	say "pathname-leak $a: exit $want: $(cut -c1-70 <<<"$k")"
}
for x in $apps; do
	IFS=: read -r a want bytes <<<"$x"
	check "$a" "$want" "$bytes"
done
