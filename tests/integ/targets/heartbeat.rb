# A target whose main thread proves it runs: every 5 ms it writes a line
# "SEQ WALLTIME" (Time.now, comparable with bash's $EPOCHREALTIME) to the
# FIFO named by its argument, sleeping in between; a worker thread
# allocates.  Usage: heartbeat.rb FIFO
require_relative "ready"
out = File.open(ARGV[0], "w")
out.sync = true
Thread.new { loop { Array.new(100) { "x" * 64 }; sleep 0.001 } }
lp_ready
seq = 0
loop do
  out.puts "#{seq += 1} #{format("%.6f", Time.now.to_f)}"
  sleep 0.005
end
