#!/bin/bash
# Application-shaped targets (tests/rubies/apps) against one Ruby (see
# lib.sh): a Puma-like server (main thread joins the server thread, a pool
# on Queue#pop), a Sidekiq-like process (main thread in IO.select on a
# self-pipe, workers on a queue), a cron-like worker (`loop { work; sleep
# 60 }`), and a pre-fork master with forked workers (attached at a worker
# and at the master).  For each: a native leak of 256 B per call is found
# within 25 %, a clean snippet gives "no leak", and SIGINT/SIGTERM to
# leakprobe at 20 random instants leave the target alive, untraced and
# working.  A shape whose main thread waits where today's leakprobe
# cannot wake it (a futex: sleep, join, Queue#pop on Ruby <= 2.5) is
# reported as needing the wake path (exit 75 when no shape failed).
. "$(dirname "$0")/lib.sh"
install_app "$RUBIES_HERE"/apps/*.rb

# shape NAME FILE WHERE: WHERE is "main" (the process started) or
# "worker" (its first child process)
shape() {
	local name=$1 file=$2 where=$3 pid tasks0
	_targets="" _launchers=""
	trap 'for p in $_targets; do pkill -9 -P "$p" 2>/dev/null; done
	      for p in $_targets $_launchers; do kill -9 "$p" 2>/dev/null; done' EXIT
	start_target "$file"
	pid=$TPID
	if [ "$where" = worker ]; then
		pid=$(pgrep -P "$TPID" | head -n 1)
		[ -n "$pid" ] || fail "$name: no worker process under $TPID"
		_targets="$_targets $pid"
	fi
	tasks0=$(threads_of "$pid")
	NAME="$RUBY_NAME $name"
	lp_reach 0 "$pid" attach "$pid" --eval nil --times 1 --timeout 10
	verdict "$pid" "native leak" 256 'Fiddle.malloc(256)'
	verdict "$pid" "no leak" - '"x" * 256'
	signal_trials "$pid" 20 '"x" * 64'
	target_unharmed "$pid" "after the runs"
	settle "$pid" "$tasks0" || fail "$(threads_of "$pid") threads after the runs, $tasks0 before"
	say "native $VERDICT_BYTES B per call (256), no-leak control right, 20 interrupted runs: unharmed"
}

fails=0 wakes=0
for s in puma:puma.rb:main sidekiq:sidekiq.rb:main cron:cron.rb:main \
	prefork-master:prefork.rb:main prefork-worker:prefork.rb:worker; do
	IFS=: read -r name file where <<<"$s"
	( shape "$name" "$file" "$where" ); rc=$?
	case $rc in
		0) ;;
		75) wakes=$((wakes + 1));;
		*) fails=$((fails + 1));;
	esac
done
[ "$fails" = 0 ] || { echo "FAIL: $RUBY_NAME: $fails application shape(s) failed"; exit 1; }
[ "$wakes" = 0 ] || { echo "NEEDS-WAKE: $RUBY_NAME: $wakes shape(s) need the wake path"; exit 75; }
