#!/bin/bash
# heapdiff throughput and memory: a real Ruby writes three heap dumps
# (OLD, NEW, LATER; ObjectSpace.dump_all with allocation tracing on) of
# ~50 MB and of ~250 MB each; `leakprobe heapdiff OLD NEW LATER` and
# `heapy diff OLD NEW LATER` (Debian package ruby-heapy) run on the same
# files, from the page cache, in the same run.  Without heapy, the
# baseline is a straightforward Ruby JSON-lines diff (JSON.parse per line,
# addresses in hashes: what heapy does).  Prints MB/s, peak RSS and the
# ratios, against the goals: >= 1.5 GB/s, >= 45x the baseline, <= 0.05 GB
# of RAM per GB of input.  leakprobe runs with its grown objects section
# (the default) and without it (--no-grown), and, given another leakprobe
# binary in HEAPDIFF_BASE_LP (e.g. one built from main), that one too, runs
# interleaved so that a busy machine weighs on each alike; CPU time is
# shown apart from wall time (a loaded machine stretches the wall).
#   HEAPDIFF_SIZES="50 250"  MB per dump    HEAPDIFF_RUNS=3  best of N
#   HEAPDIFF_BASE_LP=/path/to/leakprobe      compare with it
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
RUNNER=${BENCH_BIN:?}/heapdiff
SIZES=${HEAPDIFF_SIZES:-50 250}
RUNS=${HEAPDIFF_RUNS:-3}
BASE_LP=${HEAPDIFF_BASE_LP:-}
if [ ! -x "$RUNNER" ]; then
	echo "heapdiff: $RUNNER not built (run 'make bench')" >&2
	exit 1
fi
command -v "$RUBY" >/dev/null || { echo "heapdiff: $RUBY not found" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lp-heapdiff.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# The dumps: 300 methods of a generated model file allocate strings,
# arrays, hashes and structs; 90 % of the objects before OLD, then some
# retained and some garbage before NEW, then a few die before LATER.
cat >"$tmp/gen.rb" <<'EOF'
require "objspace"
mb, dir = Integer(ARGV[0]), ARGV[1]
calls = mb * 800
NSITES = 300
Struct.new("Row", :id, :name)
src = (0...NSITES).map { |i|
  "def m#{i}(k, a)\n  a << \"user \#{k} name #{i}\" * (1 + k % 3)\n" \
  "  a << [k, k.to_s, :sym#{i % 50}]\n" \
  "  a << { id: k, tag: \"t#{i}\" } if k % 4 == 0\n" \
  "  a << Struct::Row.new(k, \"r\#{k}\") if k % 7 == 0\nend"
}.join("\n")
Object.class_eval(src, "/srv/app/lib/generated/models/records.rb", 1)
def fill(count, into)
  count.times { |k| send(:"m#{k % NSITES}", k, into) }
end
def dump(path)
  File.open(path, "w") { |f| ObjectSpace.dump_all(output: f) }
end
ObjectSpace.trace_object_allocations_start
$keep = []
fill(calls * 9 / 10, $keep)
GC.start
dump("#{dir}/old.json"); GC.start
fill(calls / 10, $keep)
fill(calls / 10, [])
GC.start
dump("#{dir}/new.json"); GC.start
$keep.pop(calls / 40)
fill(calls / 20, [])
GC.start
dump("#{dir}/later.json")
EOF

# The baseline when heapy is missing: heapy's algorithm, plainly.
cat >"$tmp/baseline.rb" <<'EOF'
require "json"
def each_obj(path)
  File.foreach(path) { |l| yield JSON.parse(l) rescue nil }
end
before, later, diff = {}, {}, Hash.new { |h, k| h[k] = [0, 0] }
each_obj(ARGV[0]) { |o| before[o["address"]] = true }
each_obj(ARGV[2]) { |o| later[o["address"]] = true }
each_obj(ARGV[1]) do |o|
  a = o["address"]
  next if before[a] || !later[a]
  d = diff["#{o["type"]},#{o["file"]},#{o["line"]}"]
  d[0] += 1
  d[1] += o["memsize"] || 0
end
diff.sort_by { |_, v| -v[0] }.each { |k, v| puts "#{v[0]} #{v[1]} #{k}" }
EOF

if command -v heapy >/dev/null 2>&1; then
	base=(heapy diff) base_name="heapy diff"
else
	base=("$RUBY" "$tmp/baseline.rb")
	base_name="ruby JSON.parse diff"
	echo "note: heapy not installed (apt-get install ruby-heapy); baseline is"
	echo "      a straightforward Ruby JSON-lines diff doing heapy's work"
fi
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
     "(a busy machine lowers the wall-clock figures)"
read -r _ _ _ idle _ < <("$RUNNER" 1 "$LP" --version)
echo "an idle leakprobe (--version) has a peak RSS of $((idle / 1024)) MB" \
     "(shared libraries); it is part of the figures below"
if [ -n "$BASE_LP" ] && [ ! -x "$BASE_LP" ]; then
	echo "heapdiff: HEAPDIFF_BASE_LP=$BASE_LP is not executable" >&2
	exit 1
fi
# the leakprobe variants: name, then the command up to the dumps
variants=("leakprobe|$LP heapdiff" "--no-grown|$LP heapdiff --no-grown")
[ -n "$BASE_LP" ] && variants+=("base|$BASE_LP heapdiff")
[ -n "$BASE_LP" ] && echo "base: $BASE_LP"
printf "%-6s %8s | %-10s %9s %9s %8s %9s %9s | %-13s %8s %8s %9s | %7s\n" \
	"dumps" "input" "tool" "wall" "MB/s" "cpu s" "cpu MB/s" "peak RSS" \
	"baseline" "wall" "MB/s" "peak RSS" "speedup"
verdict=""
for mb in $SIZES; do
	d="$tmp/d$mb"
	mkdir -p "$d"
	if ! "$RUBY" "$tmp/gen.rb" "$mb" "$d" >"$tmp/gen.out" 2>&1; then
		echo "heapdiff: generating the dumps failed: $(cat "$tmp/gen.out")" >&2
		exit 1
	fi
	files=("$d/old.json" "$d/new.json" "$d/later.json")
	bytes=$(cat "${files[@]}" | wc -c)	# also warms the page cache
	# best wall (and its CPU time) and the largest peak RSS per variant,
	# the variants taking turns
	declare -A W=() U=() S=() R=()
	for ((run = 0; run < RUNS; run++)); do
		for v in "${variants[@]}"; do
			name=${v%%|*}
			read -ra cmd <<<"${v#*|}"
			read -r w u s rss rc < <("$RUNNER" 1 "${cmd[@]}" "${files[@]}")
			[ "$rc" = 0 ] || { echo "heapdiff: $name heapdiff failed ($rc)" >&2; exit 1; }
			if [ -z "${W[$name]:-}" ] || awk -v a="$w" -v b="${W[$name]}" 'BEGIN { exit !(a < b) }'; then
				W[$name]=$w U[$name]=$u S[$name]=$s
			fi
			[ "${R[$name]:-0}" -ge "$rss" ] || R[$name]=$rss
		done
	done
	read -r bw _ _ brss brc < <("$RUNNER" 1 "${base[@]}" "${files[@]}")
	[ "$brc" = 0 ] || echo "note: $base_name exited $brc"
	for v in "${variants[@]}"; do
		name=${v%%|*}
		line=$(awk -v b="$bytes" -v w="${W[$name]}" -v u="${U[$name]}" \
			   -v s="${S[$name]}" -v r="${R[$name]}" -v bw="$bw" \
			   -v br="$brss" -v n="$mb" -v bn="$base_name" -v t="$name" '
		BEGIN {
			mb = b / 1e6
			printf "3x%-4s %6.0f MB | %-10s %8.3fs %9.0f %8.2f %9.0f %7.1f MB | %-13s %7.1fs %8.1f %6.0f MB | %6.0fx\n",
				n "MB", mb, t, w, mb / w, u + s, mb / (u + s),
				r / 1024, bn, bw, mb / bw, br / 1024, bw / w
			printf "VERDICT %s %.2f %.0f %.4f %.2f %.3f %.3f %d\n", t,
				mb / w / 1000, bw / w,
				(r / 1048576) / (b / 1073741824),
				mb / (u + s) / 1000, w, u + s, r
		}')
		grep -v '^VERDICT' <<<"$line"
		verdict="$verdict$(grep '^VERDICT' <<<"$line")"$'\n'
	done
	last=$(grep -v '^$' <<<"$verdict" | tail -n "${#variants[@]}")
	unset W U S R
	rm -rf "$d"
done
echo "machine after the runs: load average $(cut -d' ' -f1-3 /proc/loadavg)"
# goals, judged on the largest size
read -r _ _ gbs ratio ram cpu_gbs w cpu rss < <(grep ' leakprobe ' <<<"$last")
echo "goals at the largest size: ${gbs} GB/s wall (goal >= 1.5; CPU time alone" \
     "gives ${cpu_gbs} GB/s per busy core), ${ratio}x $base_name (goal >= 45)," \
     "${ram} GB of RAM per GB of input (goal <= 0.05)"
# the grown objects section, and the other binary, against leakprobe
while read -r _ name _ _ ram2 _ w2 cpu2 rss2; do
	[ "$name" = leakprobe ] && continue
	awk -v n="$name" -v w="$w" -v c="$cpu" -v r="$rss" -v w2="$w2" \
	    -v c2="$cpu2" -v r2="$rss2" -v ram2="$ram2" 'BEGIN {
		printf "leakprobe against %s: wall x%.2f, CPU time x%.2f, peak RSS %+.1f MB (%s: %s GB of RAM per GB)\n",
			n, w / w2, c / c2, (r - r2) / 1024, n, ram2 }'
done <<<"$last"
