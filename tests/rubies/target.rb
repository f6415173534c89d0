# Target for tests/rubies/check-attach.sh: loads what the snippets need;
# then another thread, the last to hold the GVL, says ready and ends while
# the main thread idles.  LP_IDLE: "read" (a blocking read on a pipe, the
# default: every Ruby interrupts it for a job) or "sleep".
require "fiddle"
$retained = []
def retain_string
  $retained << ("r" * 40)
end
ready = IO.new(3)
Thread.new do
  sleep 0.1
  ready.puts "ready #{RUBY_VERSION}"
  ready.close
end
case ENV["LP_IDLE"] || "read"
when "sleep" then sleep
when "read"
  idle, _writer = IO.pipe
  idle.read
else abort "target.rb: LP_IDLE is read or sleep, not #{ENV["LP_IDLE"]}"
end
