# A multithreaded target for the SIGKILL fault test: worker threads that
# allocate all the time, and a main thread that sleeps or runs Ruby code.
# Usage: threads.rb sleep|busy [THREADS]
require_relative "ready"
mode = ARGV[0] || "sleep"
(ARGV[1] || 6).to_i.times do
  Thread.new do
    loop do
      a = Array.new(64) { "x" * 48 }
      a.clear
      sleep 0.0005
    end
  end
end
lp_ready
if mode == "busy"
  n = 0
  loop { n += "y".dup.size }
else
  loop { sleep 1 }
end
