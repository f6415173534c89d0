# Writes three heap dumps (ObjectSpace.dump_all) of itself for heapdiff's
# grown objects, and what Ruby itself says of the objects in them:
#   ruby grower.rb DIR [COUNT [notrace]]
# Between the dumps an Array, a Hash and a String grow, COUNT small
# arrays made at one line grow, one Array shrinks and one stays as it is.
# Writes DIR/old.json, DIR/new.json, DIR/later.json and DIR/expect.json:
# per object (name => address and ObjectSpace.memsize_of at each dump),
# taken right before each dump.  With notrace, no allocation tracing.
require "objspace"
require "json"

dir, count, trace = ARGV[0], Integer(ARGV[1] || 40_000), ARGV[2]
abort "usage: grower.rb DIR [COUNT [notrace]]" unless dir && [nil, "notrace"].include?(trace)

# bookkeeping, made before tracing starts and sized up front: it must not
# be taken for the objects under test
$rec = {}
$files = Hash[%w[old new later].map { |n| [n, File.open(File.join(dir, "#{n}.json"), "w")] }]
$files.each_value { |io| io.sync = true; io.write("") }
def address(o)
  JSON.parse(ObjectSpace.dump(o))["address"]
end

def record(objs)
  objs.each do |name, o|
    r = ($rec[name] ||= { "address" => address(o), "memsize" => [] })
    raise "#{name} moved" unless r["address"] == address(o)
    r["memsize"] << ObjectSpace.memsize_of(o)
  end
end

def dump(name, objs)
  3.times { GC.start(full_mark: true, immediate_sweep: true) }
  record(objs)
  ObjectSpace.dump_all(output: $files[name])
  $files[name].close
end

ObjectSpace.trace_object_allocations_start unless trace == "notrace"
$arr = []
$hash = {}
$str = +"s" * 100
$shrink = Array.new(5000, 0)
$steady = Array.new(300, 0)
$many = Array.new(count) { [] }
objs = { "array" => $arr, "hash" => $hash, "string" => $str,
         "shrink" => $shrink, "steady" => $steady }
$many.each_with_index { |a, i| objs["many#{i}"] = a }

dump("old", objs)
200.times { |i| $arr << i }
100.times { |i| $hash[i] = i }
$str << "t" * 5_000
$shrink.replace([1])
$many.each { |a| 10.times { |i| a << i } }
dump("new", objs)
2000.times { |i| $arr << i }
1000.times { |i| $hash[-i - 1] = i }
$str << "u" * 50_000
$many.each { |a| 20.times { |i| a << i } }
dump("later", objs)
File.write(File.join(dir, "expect.json"), JSON.generate($rec))
