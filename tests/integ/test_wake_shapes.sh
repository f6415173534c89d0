# The main thread parked in every shape a real application parks it in
# (sleep N, sleep, loop { sleep 1000 }, Thread#join with and without a
# limit, Queue#pop, ConditionVariable#wait with and without a timeout,
# Mutex#lock, a pipe read, IO.select, a busy loop): the snippet runs and
# the program's own timing and results are intact.  tests/rubies/shapes.sh
# does the work, against $RUBY and against every prepared Ruby build
# (tests/rubies/build) found in $LP_RUBIES_DIR: Ruby 2.4-2.5 sleep on a
# condition variable no signal ends, 2.6+ in ppoll, 3.3+ on the new
# scheduler's futex.  The Debian chroots (2.7, 3.3) are run by
# tests/rubies/run.
. "$(dirname "$0")/lib.sh"

RDIR=${LP_RUBIES_DIR:-/var/cache/leakprobe-rubies}
SH="$(dirname "$0")/../rubies/shapes.sh"
rubies=$(command -v "$RUBY")
for r in "$RDIR"/ruby-*/bin/ruby; do
	[ -x "$r" ] && [ -f "${r%/bin/ruby}/.leakprobe-ok" ] && rubies="$rubies $r"
done
failed=""
for r in $rubies; do
	LEAKPROBE=$LP bash "$SH" "$r" || failed="$failed $r"
done
[ -z "$failed" ] || fail "shapes failed with:$failed"
echo ok
