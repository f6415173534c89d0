# A target whose main thread waits in one shape, for tests/rubies/shapes.sh.
#   ruby shapes.rb SHAPE DIR
# DIR holds "go" (a FIFO the test writes to trigger the event) and
# receives "out" (what the program saw: its own timing and results).
# "ready" goes to DIR/ready (a FIFO) just before the main thread waits.
# Runs on every Ruby from 2.4 on: nothing newer than 2.4's API.
shape, dir = ARGV
$stdout.sync = true
out = File.open(File.join(dir, "out"), "w")
out.sync = true
go_path = File.join(dir, "go")
# O_RDWR: opening the FIFO never blocks; a line arrives when the test
# writes one (gets blocks in read(2) until then).
go = -> { File.open(go_path, File::RDWR) }
ready = -> { File.open(File.join(dir, "ready"), "w") { |f| f.puts "ready" } }
now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
report = lambda do |what|
  out.puts what
  out.puts "ran #{$lp_ran.inspect}"	# set by the snippet
  out.puts "end"
end

case shape
when "sleep"				# sleep N: still takes N s, returns N
  ready.()
  t = now.()
  r = sleep 3
  report.(format("slept %.3f returned %d", now.() - t, r))
when "sleep_forever"			# never returns
  ready.()
  sleep
  report.("returned")
when "loop_sleep"			# loop { sleep 1000 }: never returns
  ready.()
  loop { sleep 1000; out.puts "returned" }
when "join", "join_limit", "queue", "cv", "cv_timeout", "mutex"
  data = nil
  q = Queue.new
  m = Mutex.new
  cv = ConditionVariable.new
  holder = nil
  if shape == "mutex"
    holder = Thread.new do
      m.lock
      data = go.().gets.chomp
      m.unlock
    end
    sleep 0.01 until m.locked?
  end
  th = Thread.new do
    case shape
    when "queue" then q << go.().gets.chomp
    when "cv", "cv_timeout"
      d = go.().gets.chomp
      m.synchronize { data = d; cv.signal }
    when "join", "join_limit" then data = go.().gets.chomp
    end
  end unless shape == "mutex"
  ready.()
  case shape
  when "join"
    r = th.join
    report.("join #{r.equal?(th)} #{th.alive?} #{data.inspect}")
  when "join_limit"
    r = th.join(60)
    report.("join_limit #{r.equal?(th)} #{th.alive?} #{data.inspect}")
  when "queue"
    report.("queue #{q.pop.inspect}")
  when "cv", "cv_timeout"
    waits = 0
    m.synchronize do
      until data
        shape == "cv" ? cv.wait(m) : cv.wait(m, 60)
        waits += 1
        out.puts "wait returned #{data.inspect}"
      end
    end
    report.("#{shape} #{data.inspect} waits #{waits}")
  when "mutex"
    m.lock
    report.("mutex #{m.owned?} #{data.inspect}")
  end
when "read"				# a pipe read in the main thread
  f = go.()
  ready.()
  report.("read #{f.gets.chomp.inspect}")
when "select"
  f = go.()
  ready.()
  r, = IO.select([f])
  report.("select #{r.size} #{f.gets.chomp.inspect}")
when "busy"				# a busy Ruby loop until DIR/stop exists
  stop = File.join(dir, "stop")
  ready.()
  i = 0
  i += 1 until i % 100000 == 0 && File.exist?(stop)
  report.("busy #{i > 0}")
else
  abort "shapes.rb: unknown shape #{shape}"
end
