# Sourced by tests/integ/test_malloc*.sh after lib.sh: what the malloc
# tests share.

# BPF needs root (CAP_BPF + CAP_PERFMON); CI runs as root, where a skip
# counts as a failure.
need_bpf() {
	[ "$(id -u)" = 0 ] || skip "malloc tracing needs root (BPF)"
	# a container's root (Docker's default) lacks CAP_SYS_ADMIN: the
	# kernel then refuses uprobe perf events (EPERM, seen with CAP_BPF
	# and CAP_PERFMON still there)
	local eff
	eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
	[ $(( 16#$eff >> 21 & 1 )) = 1 ] ||
		skip "no CAP_SYS_ADMIN here (a container?): the kernel refuses uprobe perf events without it"
}

# libc_addr PID SYMBOL: runtime address of a libc function in PID.
libc_addr() {
	local pid=$1 sym=$2 path base val
	read -r base path < <(awk '$6 ~ /\/libc\.so\.6$/ && $3 == "00000000" {
		split($1, r, "-"); print r[1], $6; exit }' "/proc/$pid/maps")
	[ -n "$path" ] || fail "no libc mapping in $pid"
	val=$(nm -D --defined-only "/proc/$pid/root$path" |
		awk -v s="$sym" '$3 == s || $3 == s "@@GLIBC_2.2.5" { print $1; exit }')
	[ -n "$val" ] || fail "no $sym in $path"
	echo $((16#$base + 16#$val))
}

# first_byte PID ADDR: the byte at ADDR in PID's memory, as two hex digits.
first_byte() {
	dd if="/proc/$1/mem" iflag=skip_bytes,count_bytes skip="$2" count=1 \
		status=none 2>/dev/null | od -An -tx1 | tr -d ' \n'
}

# wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds.
wait_until() {
	local n=$(( $1 * 50 )); shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.02
		n=$((n - 1))
	done
	return 1
}

# BPF program ids held by process PID: its file descriptors' fdinfo.
bpf_prog_ids() {
	cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ { print $2 }' | sort -u
}

# records_sent LP_PID: allocation records the BPF program of that
# leakprobe has sent so far (its `counters` map, slot LPM_C_ALLOCS = 8).
records_sent() {
	local id
	for id in $(cat /proc/"$1"/fdinfo/* 2>/dev/null |
		    awk '/^map_id:/ { print $2 }' | sort -u); do
		bpftool map show id "$id" 2>/dev/null | grep -q ' name counters ' ||
			continue
		bpftool map lookup id "$id" key 8 0 0 0 -j 2>/dev/null |
			"$RUBY" -rjson -e 'puts JSON.parse(STDIN.read)["formatted"]["values"].sum { |v| v["value"] }'
		return
	done
	echo 0
}

# site_get JSON EXPR: like json_get, with `top` the first site (or nil)
# and `names` its frame names joined by newlines.
site_get() {
	"$RUBY" -rjson -e 'j = JSON.parse(STDIN.read); top = j["sites"][0]
		names = top ? top["frames"].map { |f| f["name"] }.join("\n") : ""
		puts(eval(ARGV[0]))' "$2" <<<"$1"
}
