# The main thread parked in every shape a real application parks it in
# (sleep N, sleep, loop { sleep 1000 }, Thread#join with and without a
# limit, Queue#pop, ConditionVariable#wait with and without a timeout,
# Mutex#lock, a pipe read, IO.select, a busy loop): the snippet runs and
# the program's own timing and results are intact.  tests/rubies/shapes.sh
# does the work, against $RUBY; tests/rubies/run (check-shapes.sh) runs it
# against every Ruby of the matrix: Ruby 2.4-2.5 sleep on a condition
# variable no signal ends, 2.6+ in ppoll, 3.3+ on the new scheduler's
# futex.
. "$(dirname "$0")/lib.sh"

SH="$(dirname "$0")/../rubies/shapes.sh"
r=$(command -v "$RUBY")
LEAKPROBE=$LP bash "$SH" "$r" || fail "shapes failed with $r"
echo ok
