# SIGKILL of leakprobe at random instants spread over the whole injection
# (the stop, the mmap, the call, the munmap, the second stop), against
# multithreaded targets with the main thread asleep and busy, on an idle
# machine and with a busy loop on each core (see kill9.rb for the
# instants and the checks).  LP_KILL9_COUNT kills (default 120; `make
# faulttest` runs 1000).
. "$(dirname "$0")/lib.sh"

n=${LP_KILL9_COUNT:-120}
"$RUBY" "$(dirname "$0")/kill9.rb" "$LP" "$n" "$TARGETS_DIR/threads.rb" "$T" ||
	fail "SIGKILL fault test failed"
