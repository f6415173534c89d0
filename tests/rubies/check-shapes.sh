#!/bin/bash
# Every shape a real application parks its main thread in (sleep N, sleep,
# loop { sleep 1000 }, join with and without a limit, Queue#pop,
# ConditionVariable#wait with and without a timeout, Mutex#lock, a pipe
# read, IO.select, a busy loop) against one Ruby (see lib.sh):
# tests/rubies/shapes.sh checks both halves, the snippet ran and the
# program's own timing and results are intact.  A Debian chroot is entered
# with chroot(8), the program's files made under its root; a built Ruby
# in a container entry is the same binary as its host entry, where its
# shapes run.
. "$(dirname "$0")/lib.sh"
case $NAME in *-container)
	say "shapes: the same binary's shapes run in entry ${NAME%-container}"
	exit 0;;
esac
if [ "$ROOT" = / ]; then
	# shellcheck disable=SC2086
	LEAKPROBE=$LP bash "$RUBIES_HERE/shapes.sh" $RUBY_CMD >"$T/shapes.log" 2>&1; rc=$?
else
	ruby_in=${RUBY_CMD##* }
	LEAKPROBE=$LP bash "$RUBIES_HERE/shapes.sh" --root "$ROOT" chroot "$ROOT" "$ruby_in" >"$T/shapes.log" 2>&1; rc=$?
fi
sed 's/^/  /' "$T/shapes.log"
[ "$rc" = 0 ] || fail "$(grep '^FAIL' "$T/shapes.log" | head -n 3 | paste -sd';' -)"
say "$(tail -n 1 "$T/shapes.log")"
