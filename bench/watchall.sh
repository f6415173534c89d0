#!/bin/bash
# One watch --all sweep over a fleet: WATCHALL_IDLE (50) idle Ruby targets
# and WATCHALL_SPARSE (1) Ruby targets holding a WATCHALL_SPARSE_GIB (1024)
# GiB MAP_NORESERVE mapping with 16 MiB written (a sanitizer's shadow is
# 14 TiB).  Per process: the fast sample as watch --all takes it, the same
# with pagemap always (the sampler before the 2 GiB limit, baseline in the
# same run) and the full smaps read.  Extra arguments go to the benchmark
# (--runs N --before-runs N).
set -u
: "${BENCH_BIN:?}"
RUBY=${RUBY:-ruby}
bin="$BENCH_BIN/watchall"
if [ ! -x "$bin" ]; then
	echo "watchall: $bin not built (run 'make bench')" >&2
	exit 1
fi
NIDLE=${WATCHALL_IDLE:-50}
NSPARSE=${WATCHALL_SPARSE:-1}
GIB=${WATCHALL_SPARSE_GIB:-1024}
targets=$(cd "$(dirname "$0")/../tests/integ/targets" && pwd)
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

# start CMD...: run a target that writes "ready" on fd 3, wait for it.
start() {
	local fifo="$tmp/ready.$RANDOM$RANDOM"
	mkfifo "$fifo"
	LP_READY_FD=3 "$@" 3>"$fifo" >/dev/null 2>"$tmp/err" &
	pids="$pids $!"
	read -r line <"$fifo"
	rm -f "$fifo"
	[ "$line" = ready ] || { echo "watchall: target did not start: $(cat "$tmp/err")"; exit 1; }
	last=$!
}

idle="" sparse=""
for _ in $(seq "$NIDLE"); do
	start "$RUBY" -e 'io = IO.new(3); io.puts "ready"; io.close; sleep'
	idle="$idle $last"
done
mkfifo "$tmp/cmd"
for _ in $(seq "$NSPARSE"); do
	start "$RUBY" "$targets/sparse.rb" "$tmp/cmd" "$GIB" 16
	sparse="$sparse $last"
done
# shellcheck disable=SC2086
"$bin" "$@" $idle sparse $sparse
