# A target for heap-dump series, with allocation tracing on from the start:
# one allocation site keeps growing (a worker keeps 20 more strings every
# 20 ms), one is steady (300 strings made once and kept), one only makes
# garbage (strings dropped at once).
#   series.rb CMD_FIFO
#     "exit" on CMD_FIFO exits.
# The test finds the lines of the sites by their markers.
#
# (A site that only makes garbage is not asserted on: dump_all streams into
# a pipe and lets other threads run while it writes, so the objects they
# allocate meanwhile are in the dump, more of them the longer the dump.)
require_relative "ready"
require "objspace"

ObjectSpace.trace_object_allocations_start
$kept = []
$steady = Array.new(300) { |i| "steady #{i}" }   # STEADY-SITE

def grow
  20.times { |i| $kept << "kept string #{i}" }   # GROWING-SITE
end

def churn
  200.times { |i| _s = "garbage #{i}" }          # GARBAGE-SITE
end

Thread.new do
  loop do
    grow
    churn
    sleep 0.02
  end
end

cmd = File.open(ARGV.fetch(0), "r+")
lp_ready
while (line = cmd.gets)
  exit 0 if line.strip == "exit"
end
