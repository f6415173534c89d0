# Writes three heap dumps (ObjectSpace.dump_all) of itself, for heapdiff's
# tests (with allocation tracing on, unless notrace):
#   ruby retainer.rb DIR MODE COMPACT [COUNT [notrace]]
#   MODE     retain: COUNT strings born between OLD and NEW are kept alive
#            (held by a Holder, through an Array) until LATER;
#            control: the same strings are made and dropped
#   COMPACT  none, before-new (GC.compact after OLD, before the strings
#            are made) or before-later (GC.compact between NEW and LATER,
#            which moves the retained strings)
#   notrace  dumps without ObjectSpace.trace_object_allocations (no sites)
# Writes DIR/old.json, DIR/new.json, DIR/later.json and DIR/site (the
# "file:line" that allocates the strings).  Every code path runs once
# before OLD, so that OLD already holds its inline caches.  Exits 3 when
# this Ruby has no GC.compact.
require "objspace"

dir, mode, compact, count, trace = ARGV[0], ARGV[1], ARGV[2], Integer(ARGV[3] || 1000), ARGV[4]
abort "usage: retainer.rb DIR retain|control none|before-new|before-later [N [notrace]]" unless
  dir && %w[retain control].include?(mode) && %w[none before-new before-later].include?(compact) &&
  [nil, "notrace"].include?(trace)
if compact != "none" && !GC.respond_to?(:compact)
  warn "retainer.rb: this Ruby has no GC.compact"
  exit 3
end

class Holder
  def initialize
    @items = []
  end

  def keep(s)
    @items << s
  end
end

def make_strings(n, holder)
  n.times do |i|
    s = "retained string number #{i} " * 2
    holder.keep(s) if holder
  end
  nil
end

def churn(n)
  n.times { |i| [i.to_s, { i => i.to_s }] }
  nil
end

# The files are opened before OLD: a File made between the dumps would
# show up as an object born in the window (closed but not yet freed).
def dump(io)
  ObjectSpace.dump_all(output: io)
  io.close
  nil
end

def settle
  3.times { GC.start(full_mark: true, immediate_sweep: true) }
end

SITE_LINE = File.readlines(__FILE__).index { |l| l.include?('"retained string number') } + 1
File.write(File.join(dir, "site"), "#{File.basename(__FILE__)}:#{SITE_LINE}\n")

ObjectSpace.trace_object_allocations_start unless trace == "notrace"
# warm up every path below (inline caches, method entries, ...)
$holder = mode == "retain" ? Holder.new : nil
make_strings(3, nil)
make_strings(3, Holder.new)
churn(100)
dump(File.open(File::NULL, "w"))
GC.compact if compact != "none"
$out = %w[old new later].to_h { |n| [n, File.open(File.join(dir, "#{n}.json"), "w")] }
$out.each_value { |io| io.sync = true; io.write("") }
settle

dump($out["old"])
settle
GC.compact if compact == "before-new"
make_strings(count, $holder)
churn(2000)
settle
dump($out["new"])
settle
churn(2000)
GC.compact if compact == "before-later"
settle
dump($out["later"])
