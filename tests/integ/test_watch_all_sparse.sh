#!/bin/bash
# watch --all with a process holding a huge sparse mapping (like a
# sanitizer's 14 TiB shadow): that process is read from its full smaps,
# not pagemap (8 bytes per page of address space, populated or not: tens
# of seconds for a shadow), and its written memory is counted; a process
# with a mapping under the limit (2 GiB) still goes through pagemap.
# --count 1 is one sweep and one row per process.  The -vv debug lines
# say which path each process took and what each sweep read.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/cmd1" "$T/cmd2"
start_target sparse.rb "$T/cmd1" 64 16; big=$TARGET_PID
start_target sparse.rb "$T/cmd2" 1 16; small=$TARGET_PID

expect_exit 0 "$LP" -v -v watch --all --count 1
sweeps=$(grep -c "debug: watch: sweep [0-9]*:" <<<"$ERR")
[ "$sweeps" -eq 1 ] || fail "--count 1 made $sweeps sweeps: $ERR"
grep -q "debug: watch: sweep 1: [0-9]* processes sampled in .*, [1-9][0-9]* pagemap reads, [1-9][0-9]* by full smaps" <<<"$ERR" ||
	fail "sweep line without pagemap reads and full smaps reads: $ERR"
grep -q "debug: sampler: pid $big: [0-9]* pages in writable anonymous ranges (over [0-9]*): full smaps" <<<"$ERR" ||
	fail "the 64 GiB sparse process was not read from its full smaps: $ERR"
grep -q "debug: sampler: pid $small:" <<<"$ERR" &&
	fail "the 1 GiB process left pagemap: $ERR"
for p in "$big" "$small"; do
	rows=$(grep -c "^[^,]*,$p," <<<"$OUT")
	[ "$rows" -eq 1 ] || fail "pid $p has $rows rows after one sweep: $OUT"
	# Column 10 is anon_rss: the 16 MiB written must be in it.
	anon=$(grep "^[^,]*,$p," <<<"$OUT" | cut -d, -f10)
	[ "$anon" -ge $((16 << 20)) ] || fail "pid $p: anon_rss $anon < 16 MiB written"
done
echo exit >"$T/cmd1"
echo exit >"$T/cmd2"
echo ok
