# bench/startup: what leakprobe costs before it does anything.  `leakprobe
# --version` against /bin/true (fork + exec + exit, the floor), in turn,
# in the same run; and what the dynamic linker does at start.
set -u
LP=${LEAKPROBE:?}
RUNS=${STARTUP_RUNS:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

us() { echo "$1 $2" | awk '{ printf "%d\n", ($2 - $1) * 1e6 }'; }
pct() { sort -g "$1" | awk -v p="$2" '{ a[NR] = $1 } END {
	i = int((NR - 1) * p / 100 + 0.5) + 1; print a[i] }'; }

: >"$tmp/true"; : >"$tmp/lp"
for i in $(seq "$RUNS"); do	# in turn, so drift hits both alike
	t0=$EPOCHREALTIME; /bin/true; t1=$EPOCHREALTIME
	us $t0 $t1 >>"$tmp/true"
	t0=$EPOCHREALTIME; "$LP" --version >/dev/null; t1=$EPOCHREALTIME
	us $t0 $t1 >>"$tmp/lp"
done
t50=$(pct "$tmp/true" 50); l50=$(pct "$tmp/lp" 50)
printf '\nstart-up, %d runs each, in turn\n' "$RUNS"
printf '  %-36s %8s us (p90 %s us)\n' "/bin/true (fork+exec+exit)" "$t50" "$(pct "$tmp/true" 90)"
printf '  %-36s %8s us (p90 %s us)\n' "leakprobe --version" "$l50" "$(pct "$tmp/lp" 90)"
printf '  %-36s %8s us over /bin/true (%.2fx)\n' "leakprobe's own start-up" \
	"$((l50 - t50))" "$(echo "$l50 / $t50" | bc -l)"
LD_DEBUG=statistics "$LP" --version 2>&1 >/dev/null |
	awk '/number of relocations:/ { r = $NF } /relative relocations:/ { rr = $NF }
	     /total startup time in dynamic loader/ { c = $(NF-1) }
	     END { printf "  dynamic linker: %s cycles, %s relocations, %s relative\n", c, r, rr }'
echo "  libraries loaded at start: $(ldd "$LP" | grep -c '=>')" \
	"(capstone, libbpf, libunwind, libmicrohttpd and libprotobuf-c only" \
	"by the commands that need them)"
lazy=$(ldd "$LP" | awk '/libcapstone|libbpf|libunwind|libmicrohttpd|libprotobuf-c/ { printf " %s", $1 }')
[ -z "$lazy" ] || echo "  WARNING: linked, though meant to be loaded on use:$lazy"
