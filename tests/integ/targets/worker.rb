# A worker-like target for ab/bisect/run tests: it loads what the steps
# need, then idles in `sleep` between jobs.  Usage: worker.rb [READY_FILE]
require_relative "ready"
require "fiddle"
$kept = []
$flag = false
# Leaks only when both halves of a pair run: one arms, the other leaks
# (and disarms) -- neither leaks alone.
def arm_flag
  $flag = true
end
def leak_if_armed
  Fiddle.malloc(256) if $flag
  $flag = false
end
File.write(ARGV[0], "") if ARGV[0] && !ARGV[0].empty?
lp_ready
sleep
