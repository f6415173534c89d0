#!/bin/bash
# heapdiff throughput and memory: a real Ruby writes three heap dumps
# (OLD, NEW, LATER; ObjectSpace.dump_all with allocation tracing on) of
# ~50 MB and of ~250 MB each; `leakprobe heapdiff OLD NEW LATER` and
# `heapy diff OLD NEW LATER` (Debian package ruby-heapy) run on the same
# files, from the page cache, in the same run.  Without heapy, the
# baseline is a straightforward Ruby JSON-lines diff (JSON.parse per line,
# addresses in hashes: what heapy does).  Prints MB/s, peak RSS and the
# ratios, against the goals: >= 1.5 GB/s, >= 45x the baseline, <= 0.05 GB
# of RAM per GB of input.
#   HEAPDIFF_SIZES="50 250"  MB per dump    HEAPDIFF_RUNS=3  best of N
set -u
LP=${LEAKPROBE:?}
RUBY=${RUBY:-ruby}
RUNNER=${BENCH_BIN:?}/heapdiff
SIZES=${HEAPDIFF_SIZES:-50 250}
RUNS=${HEAPDIFF_RUNS:-3}
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
printf "%-6s %8s | %-10s %9s %9s %8s %9s | %-13s %8s %8s %9s | %7s\n" \
	"dumps" "input" "tool" "wall" "MB/s" "cpu s" "peak RSS" \
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
	read -r w u s rss rc < <("$RUNNER" "$RUNS" "$LP" heapdiff "${files[@]}")
	[ "$rc" = 0 ] || { echo "heapdiff: leakprobe heapdiff failed ($rc)" >&2; exit 1; }
	read -r bw _ _ brss brc < <("$RUNNER" 1 "${base[@]}" "${files[@]}")
	[ "$brc" = 0 ] || echo "note: $base_name exited $brc"
	line=$(awk -v b="$bytes" -v w="$w" -v u="$u" -v s="$s" -v r="$rss" \
		   -v bw="$bw" -v br="$brss" -v n="$mb" -v bn="$base_name" '
	BEGIN {
		mb = b / 1e6
		printf "3x%-4s %6.0f MB | %-10s %8.3fs %9.0f %8.2f %7.1f MB | %-13s %7.1fs %8.1f %6.0f MB | %6.0fx\n",
			n "MB", mb, "leakprobe", w, mb / w, u + s, r / 1024,
			bn, bw, mb / bw, br / 1024, bw / w
		printf "VERDICT %.2f %.0f %.4f %.2f\n", mb / w / 1000, bw / w,
			(r / 1048576) / (b / 1073741824), mb / (u + s) / 1000
	}')
	grep -v '^VERDICT' <<<"$line"
	verdict="$verdict$(grep '^VERDICT' <<<"$line")"$'\n'
	rm -rf "$d"
done
# goals, judged on the largest size
read -r _ gbs ratio ram cpu_gbs < <(tail -n 2 <<<"$verdict" | head -n 1)
echo "goals at the largest size: ${gbs} GB/s wall (goal >= 1.5; CPU time alone" \
     "gives ${cpu_gbs} GB/s per busy core), ${ratio}x $base_name (goal >= 45)," \
     "${ram} GB of RAM per GB of input (goal <= 0.05)"
