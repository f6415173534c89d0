# A busy process that does not leak: a worker thread keeps allocating and
# freeing (native buffers and Ruby strings), so malloc and the GC stay
# active, but memory reaches a plateau during warm-up and stays there.
#
#   steady.rb CMD_FIFO
#     "exit" on CMD_FIFO exits (so a test can end it mid-watch).
require_relative "ready"
require "fiddle"

def churn
  200.times do
    a = Fiddle.malloc(4096)
    Fiddle::Pointer.new(a, 4096)[0, 4096] = "s" * 4096
    Fiddle.free(a)
    _s = "y" * 1000
  end
end

# One worker does the warm-up and then goes on churning, so its malloc
# arena exists (and has its working size) before the test samples.
warm = Queue.new
Thread.new do
  500.times { churn }
  warm.push(true)
  loop do
    churn
    sleep 0.005
  end
end
warm.pop
GC.start

cmd = File.open(ARGV.fetch(0), "r+")
lp_ready
while (line = cmd.gets)
  exit 0 if line.strip == "exit"
end
