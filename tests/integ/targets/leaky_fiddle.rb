# A native leak: memory from Fiddle.malloc, written so that it is resident,
# and never freed.  The main thread's leak lands in [heap] (glibc's main
# arena), the worker thread's in that thread's own malloc arena.
#
#   leaky_fiddle.rb CMD_FIFO ACK_FIFO
#     Driven by the test, no sleeps: each line "leak KIB" on CMD_FIFO leaks
#     KIB in the main thread and KIB in the worker, then "leaked" is written
#     to ACK_FIFO; "exit" exits.
#   leaky_fiddle.rb --auto KIB SECONDS MAX_MIB
#     For the demo: leak KIB (main) + KIB (worker) every SECONDS until
#     MAX_MIB in all, then keep running; exits on SIGTERM/SIGINT.
require_relative "ready"
require "fiddle"

CHUNK = 4096                      # well under the mmap threshold (128 KiB)
FILL = ("\xA5".b * CHUNK).freeze

def leak(kib)
  (kib * 1024 / CHUNK).times do
    addr = Fiddle.malloc(CHUNK)
    Fiddle::Pointer.new(addr, CHUNK)[0, CHUNK] = FILL
  end
end

jobs = Queue.new
done = Queue.new
Thread.new do
  loop do
    leak(jobs.pop)
    done.push(true)
  end
end
# The worker's first malloc creates its arena: do it before "ready", so
# the first sample already has the arena and growth is the leak alone.
jobs.push(4)
done.pop

both = lambda do |kib|
  jobs.push(kib)
  leak(kib)
  done.pop
end

if ARGV[0] == "--auto"
  kib, secs, max_mib = Integer(ARGV[1]), Float(ARGV[2]), Integer(ARGV[3])
  lp_ready
  total = 0
  loop do
    if total + 2 * kib <= max_mib * 1024
      both.call(kib)
      total += 2 * kib
    end
    sleep secs
  end
end

# r+ opens a FIFO without waiting for a writer and never sees EOF.
cmd = File.open(ARGV.fetch(0), "r+")
ack = File.open(ARGV.fetch(1), "r+")
ack.sync = true
lp_ready
while (line = cmd.gets)
  word, arg = line.split
  case word
  when "leak"
    both.call(Integer(arg))
    ack.puts "leaked"
  when "exit"
    exit 0
  else
    warn "leaky_fiddle: unknown command #{line.inspect}"
  end
end
