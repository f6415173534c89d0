# Target for the malloc-site tests: loads the C extension built by the
# test (tests/integ/targets/ext/leakext.c) and waits.
#
#   target.rb SO_PATH [THREADS [CMD_FIFO ACK_FIFO]]
#
# THREADS workers allocate all the time: LeakExt.churn and Ruby strings,
# freed at once or by the GC (noise that must not show up as a site).
# With the FIFOs, the main thread answers "ping" with "pong" and exits
# on "exit"; otherwise it sleeps.
require_relative "../ready"
require ARGV.fetch(0)

# Run the block k levels deep in C frames (Array#each), so that threads
# reach the same leak through different outer stacks.
def nest(k, &blk)
  k.zero? ? blk.call : [1].each { nest(k - 1, &blk) }
end

# Leak n bytes in each of `threads` threads at once, at nesting 0, 1, 2...
$gate = Queue.new
def leak_in_threads(threads, n)
  ts = threads.times.map do |d|
    Thread.new(d) do |k|
      $gate.pop
      nest(k) { LeakExt.leak(n) }
    end
  end
  threads.times { $gate << 1 }
  ts.each(&:join)
end

Integer(ARGV[1] || 0).times do |i|
  Thread.new do
    loop do
      50.times do |j|
        LeakExt.churn(200 + i + j)
        s = "w" * (100 + j)
        s << "x" * 64
      end
      sleep 0.001
    end
  end
end

if ARGV[2]
  cmd = File.open(ARGV[2], "r+")
  ack = File.open(ARGV.fetch(3), "r+")
  ack.sync = true
  lp_ready
  while (line = cmd.gets)
    case line.strip
    when "ping" then ack.puts "pong"
    when "exit" then exit 0
    end
  end
else
  lp_ready
  sleep
end
