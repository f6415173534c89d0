# SIGKILL of leakprobe at random instants of `attach`, against Ruby
# targets whose worker threads allocate, with the main thread asleep and
# busy, on an idle machine and with busy loops on every core.  Run by
# test_kill9.sh:
#   ruby kill9.rb LEAKPROBE KILLS TARGET_RB TMPDIR
# KILLS is spread over 4 cases (sleep/busy x idle/loaded).  Instants:
# a third by LEAKPROBE_TEST_KILL_AT (the Nth instant of the injection:
# between any two of its ptrace requests and remote writes), a third 0-3
# ms after leakprobe says (with -vv) that it stopped the main thread, a
# third uniform in the first 80 ms.  After each kill, within a second:
# target alive, untraced (TracerPid 0), running or sleeping, no [BUG] in
# its output, no descriptor on a file of ours, at most one page of ours
# (any 4 KiB shared anonymous mapping) and one channel directory.  Every 10th kill and at the end of
# a case a full run must succeed and leave none of either; at the end the
# target's thread count is back to where it was (no helper left).
# A target that dies is counted and replaced, so that one run gives the
# whole count (to measure a binary that is not safe, too).  Exit 1 on any
# failure; the last line is a summary.
lp, kills, target, tmp = ARGV
kills = kills.to_i
$stdout.sync = true

def status_of(pid)
  File.read("/proc/#{pid}/status")
rescue SystemCallError
  nil
end

def field(st, name)
  st && st[/^#{name}:\s*(\S+)/, 1]
end

def our_pages(pid)
  n = 0
  File.foreach("/proc/#{pid}/maps") do |l|
    r, perms, _o, _d, _i, path = l.split(" ", 6)
    next unless perms == "rw-s" || perms == "rwxs" || perms == "r--s"
    next unless path && path.start_with?("/dev/zero")
    a, b = r.split("-").map { |x| x.to_i(16) }
    n += 1 if b - a == 4096
  end
  n
rescue SystemCallError
  0
end

# "ADDR:MAGIC/owner/state" of each page, for failure messages
def page_desc(pid)
  out = []
  File.foreach("/proc/#{pid}/maps") do |l|
    r, perms, _o, _d, _i, path = l.split(" ", 6)
    next unless %w[rw-s rwxs r--s].include?(perms) && path.to_s.start_with?("/dev/zero")
    a = r.split("-")[0].to_i(16)
    h = File.open("/proc/#{pid}/mem", "rb") { |f| f.seek(a); f.read(40) } rescue ""
    magic, owner, _ns, state = h.unpack("Z16QQL")
    out << format("%x:%s/%d/%d", a, magic.to_s.empty? ? "zero" : magic, owner.to_i, state.to_i)
  end
  out.join(" ")
end

def our_dirs(pid)
  Dir.glob("/tmp/leakprobe.#{pid}.*").size
end

# descriptors of the target on files of ours (the channel directory)
def our_fds(pid)
  Dir.glob("/proc/#{pid}/fd/*").map { |f| File.readlink(f) rescue "" }
     .select { |l| l.include?("/leakprobe.") }
rescue SystemCallError
  []
end

def threads_of(pid)
  field(status_of(pid), "Threads").to_i
end

class Target
  attr_reader :pid, :err
  def initialize(script, mode, tmp)
    @script, @mode, @tmp = script, mode, tmp
    start
  end

  def start
    @err = File.join(@tmp, "target.#{@mode}.#{Time.now.to_f}.err")
    r, w = IO.pipe
    @pid = Process.spawn({ "LP_READY_FD" => w.fileno.to_s }, RbConfig.ruby,
                         @script, @mode, "6", w => w, :err => @err,
                         :out => File::NULL)
    w.close
    $children << @pid
    line = r.gets
    r.close
    raise "target did not start: #{File.read(@err)}" unless line == "ready\n"
    # let the workers reach their steady state (thread stacks, arenas)
    sleep 0.2
    @threads = threads_of(@pid)
  end

  attr_reader :threads

  def stop
    Process.kill(:KILL, @pid) rescue nil
    Process.wait(@pid) rescue nil
  end

  def bug?
    File.exist?(@err) && File.read(@err).include?("[BUG]")
  end
end

def run_lp(lp, pid, env, args)
  r, w = IO.pipe
  p = Process.spawn(env, lp, "attach", pid.to_s, *args, :out => File::NULL,
                    :err => w)
  w.close
  [p, r]
end

# Kill leakprobe pid p at `how`; returns once it is reaped.
def kill_lp(p, r, how, delay)
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  buf = +""
  case how
  when :aimed
    # 0-3 ms after "stopped after" (printed while the thread is held)
    loop do
      ready = IO.select([r], nil, nil, 5) or break
      chunk = r.read_nonblock(4096, exception: false)
      break if chunk.nil?
      next if chunk == :wait_readable
      buf << chunk
      break if buf.include?("stopped after")
    end
    sleep delay
  when :uniform
    sleep delay
  when :hook
    # it kills itself at the chosen instant (or finishes the run)
    deadline = t0 + 10
    loop do
      st = Process.wait2(p, Process::WNOHANG)
      if st
        Thread.new { buf << (r.read rescue "") }.join(2)
        r.close
        return st[1]
      end
      break if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      IO.select([r], nil, nil, 0.01)
      (r.read_nonblock(65536, exception: false).is_a?(String)) rescue nil
    end
  end
  Process.kill(:KILL, p) rescue nil
  Thread.new { buf << (r.read rescue "") }.join(2)
  r.close
  $last_logs = (($last_logs || []) + [buf]).last(3) if ENV["KILL9_DEBUG"]
  _, st = Process.wait2(p)
  st
end

# KILL9_MODES=aimed,uniform leaves out the hook (for a binary without it)
modes = (ENV["KILL9_MODES"] || "hook,aimed,uniform").split(",").map(&:to_sym)
# whatever ends this script ends what it started
$children = []
at_exit { $children.each { |c| Process.kill(:KILL, c) rescue nil } }
%w[INT TERM HUP].each { |sig| trap(sig) { exit 2 } }
failures = Hash.new(0)
died = 0
total = 0
actually_killed = 0
max_pages = 0
max_dirs = 0
hook_max = 42
cases = [%w[sleep idle], %w[busy idle], %w[sleep loaded], %w[busy loaded]]
per = (kills + cases.size - 1) / cases.size
note = ->(what, msg) { failures[what] += 1; puts "  #{what}: #{msg}" if failures[what] <= 5 }

cases.each do |mode, load|
  hogs = []
  if load == "loaded"
    2.times { hogs << Process.spawn("sh", "-c", "while :; do :; done") }
    $children.concat(hogs)
  end
  tgt = Target.new(target, mode, tmp)
  # first run: glibc's arena and thread stack for the helper exist from
  # here on; the thread count to come back to is measured after it
  system(lp, "attach", tgt.pid.to_s, "--eval", "nil", "--times", "1", "-q",
         :out => File::NULL, :err => File::NULL)
  base_threads = nil
  20.times do
    base_threads = threads_of(tgt.pid)
    break if base_threads <= tgt.threads
    sleep 0.05
  end
  case_died = 0
  per.times do |i|
    total += 1
    how = modes[i % modes.size]
    env = {}
    delay = 0
    case how
    when :hook then env["LEAKPROBE_TEST_KILL_AT"] = (1 + rand(hook_max)).to_s
    when :aimed then delay = rand * 0.003
    when :uniform then delay = rand * 0.080
    end
    p, r = run_lp(lp, tgt.pid, env, ["--eval", '"x" * 64', "--times", "200",
                                     "--batch", "20", "-vv"])
    st = kill_lp(p, r, how, delay)
    actually_killed += 1 if st.signaled? && st.termsig == 9
    # within a second: untraced and running (the kernel detaches at once;
    # the thread may be finishing an injected step)
    ok = false
    stat = nil
    100.times do
      stat = status_of(tgt.pid)
      break unless stat
      tr = field(stat, "TracerPid")
      s = field(stat, "State")
      if tr == "0" && %w[R S D].include?(s)
        ok = true
        break
      end
      sleep 0.01
    end
    if !stat || (field(stat, "State") == "Z")
      died += 1
      case_died += 1
      note.call(:died, "#{mode}/#{load} kill #{i} (#{how}): target died: " \
                       "#{File.read(tgt.err)[-300..-1] || File.read(tgt.err)}")
      tgt.stop
      tgt = Target.new(target, mode, tmp)
      next
    end
    note.call(:state, "#{mode}/#{load} kill #{i} (#{how}): TracerPid " \
                      "#{field(stat, 'TracerPid')} State #{field(stat, 'State')}") unless ok
    note.call(:bug, "#{mode}/#{load} kill #{i}: [BUG] in the target's output") if tgt.bug?
    # within a second the target holds no descriptor of ours (a helper
    # that started late ends as soon as it finds nobody)
    fds = []
    100.times do
      fds = our_fds(tgt.pid)
      break if fds.empty?
      sleep 0.01
    end
    note.call(:fds, "#{mode}/#{load} kill #{i} (#{how}): the target holds #{fds.join(' ')}") unless fds.empty?
    pg = our_pages(tgt.pid)
    dr = our_dirs(tgt.pid)
    max_pages = pg if pg > max_pages
    max_dirs = dr if dr > max_dirs
    note.call(:pages, "#{mode}/#{load} kill #{i} (#{how}): #{pg} pages of ours: #{page_desc(tgt.pid)} #{($last_logs || []).join("\n----\n")}") if pg > 1
    note.call(:dirs, "#{mode}/#{load} kill #{i} (#{how}): #{dr} directories of ours: #{Dir.glob("/tmp/leakprobe.#{tgt.pid}.*").map { |d| d + ":" + Dir.children(d).join(",") }.join(" ")} #{($last_logs || [])[-1]}") if dr > 1
    next unless (i + 1) % 10 == 0 || i == per - 1
    # the next run succeeds and reclaims everything
    out = `#{lp} attach #{tgt.pid} --eval nil --times 1 -q 2>&1`
    unless $?.success?
      note.call(:next_run, "#{mode}/#{load} after kill #{i}: exit #{$?.exitstatus}: #{out}")
      next
    end
    pg = our_pages(tgt.pid)
    dr = our_dirs(tgt.pid)
    note.call(:residue, "#{mode}/#{load} after kill #{i}: #{pg} pages (#{page_desc(tgt.pid)}), #{dr} dirs after a full run") if pg > 0 || dr > 0
  end
  # no helper thread left: the count comes back within 5 s (Ruby up to
  # 3.2 keeps a finished thread's native thread cached for 3 s)
  th = nil
  100.times do
    th = threads_of(tgt.pid)
    break if th <= base_threads
    sleep 0.05
  end
  note.call(:threads, "#{mode}/#{load}: #{th} threads, #{base_threads} before") if th > base_threads
  puts "#{mode}/#{load}: #{per} kills, #{case_died} targets died"
  tgt.stop
  hogs.each { |h| Process.kill(:KILL, h) rescue nil; Process.wait(h) rescue nil }
end
summary = "kill9: #{total} runs (#{actually_killed} killed by SIGKILL), " \
          "#{died} targets died, max pages #{max_pages}, max dirs #{max_dirs}"
failures.each { |k, v| summary << ", #{k} #{v}" unless k == :died }
puts summary
exit(failures.empty? ? 0 : 1)
