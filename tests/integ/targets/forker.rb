# A target whose main thread forks every 20 ms; each child writes what it
# holds (its descriptors' targets and its thread count) to DIR/child.PID
# and exits at once.  Usage: forker.rb DIR
require_relative "ready"
require "fiddle"
dir = ARGV[0]
lp_ready
loop do
  sleep 0.02
  pid = fork do
    fds = Dir.children("/proc/self/fd").map { |f| File.readlink("/proc/self/fd/#{f}") rescue "?" }
    tasks = Dir.children("/proc/self/task").size
    File.write("#{dir}/child.#{Process.pid}", "tasks #{tasks}\n" + fds.join("\n") + "\n")
    exit!(0)
  end
  Process.wait(pid)
end
