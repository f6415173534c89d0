# A target whose main thread sits in one kind of wait while leakprobe
# attaches.  Usage: blocked.rb MODE OUT FIFO
#   MODE  sleep | read | select | queue | join | busy | cfunc
#   OUT   file the target writes its own result to when it is done
#   FIFO  a named pipe the test writes to when the target may go on
# The test checks OUT afterwards: the target's own work must be intact.
require_relative "ready"
mode, out, fifo = ARGV
marker = "locals-intact-#{$$}"   # a local of the interrupted frame
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
result =
  case mode
  when "sleep"
    lp_ready
    sleep 6   # long enough for a slow attach (sanitizer build, loaded CI)
    format("slept %.3f", Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
  when "read"
    r, w = IO.pipe
    Thread.new { File.open(fifo, "r") { |f| w.write(f.read(5)) } }
    lp_ready
    "read #{r.read(5)}"             # main thread blocked in read on a pipe
  when "select"
    r, w = IO.pipe
    Thread.new { File.open(fifo, "r") { |f| w.write(f.read(5)) } }
    lp_ready
    IO.select([r])
    "select #{r.read_nonblock(5)}"
  when "queue"
    q = Queue.new
    Thread.new { File.open(fifo, "r") { |f| q << f.read(5) } }
    lp_ready
    "queue #{q.pop}"
  when "join"
    stop = false
    workers = 8.times.map do
      Thread.new do
        a = []
        until stop
          a << ("w" * 64)
          a.clear if a.size > 1000
        end
      end
    end
    waiter = Thread.new { File.open(fifo, "r") { |f| f.read(5) }; stop = true }
    lp_ready
    workers.each(&:join)
    waiter.join
    "join done"
  when "busy"
    go = true
    Thread.new { File.open(fifo, "r") { |f| f.read(5) }; go = false }
    lp_ready
    n = 0
    n += 1 while go
    "busy #{n > 0}"
  when "cfunc"
    lp_ready
    # One long C call that holds the GVL and never checks interrupts.
    "x".crypt("$6$rounds=20000000$salt")
    File.open(fifo, "r") { |f| f.read(5) }
    "cfunc done"
  else
    abort "unknown mode #{mode}"
  end
File.write(out, "#{result} #{marker == "locals-intact-#{$$}" ? "locals-ok" : "locals-CHANGED"}\n")
