# A small worker in the shape of the ManageIQ leak (ruby bug #14372):
# a Pathname sits in $LOAD_PATH, and the work loop `require`s features
# that are already loaded.  On Ruby 2.3/2.4 every such `require` leaked
# native memory (the expanded load path was rebuilt and never freed);
# Ruby 2.5 fixed it.  Usage: ruby app.rb [READY_FILE]
require "pathname"
require "set"
require "json"

$LOAD_PATH.unshift(Pathname.new(__dir__).join("lib"))

def work
  require "set"      # already loaded: a feature lookup, nothing more
  require "json"
end

work
File.write(ARGV[0], "") if ARGV[0]   # ready: leakprobe may attach
# Idle between jobs the way a worker does: a sleep loop.  (On Ruby 2.3 to
# 2.5 the sleep waits on a condition variable that no signal ends;
# leakprobe wakes it in place, and the sleep goes on: leakprobe(1), "How
# attach works".)
loop { sleep 60 }
