#!/bin/bash
# smaps sampling cost: leakprobe's full smaps and smaps_rollup samples, a
# plain read of the file (the kernel's share) and the parse alone, against
# `pmap -X PID` measured in the same run, at ~1,000 and ~10,000 mappings.
# Extra arguments go to the benchmark (--samples N --pmap-runs N --maps N,N).
: "${BENCH_BIN:?}"
bin="$BENCH_BIN/smaps"
if [ ! -x "$bin" ]; then
	echo "smaps: $bin not built (run 'make bench')" >&2
	exit 1
fi
command -v pmap >/dev/null 2>&1 ||
	echo "smaps: pmap not found (procps); the pmap -X baseline is skipped"
exec "$bin" "$@"
