# A Sidekiq-like process: the main thread waits in IO.select on a
# self-pipe that its signal traps write to; worker threads fetch jobs from
# a queue (blocked on Queue#pop while there is no work).
require_relative "common"
self_r, self_w = IO.pipe
%w[INT TERM TTIN TSTP USR1].each do |sig|
  Signal.trap(sig) { self_w.write_nonblock("#{sig}\n") rescue nil }
end
jobs = Queue.new
5.times do
  Thread.new { loop { jobs.pop.call } }
end
lp_ready
loop do
  IO.select([self_r])
  case self_r.gets&.chomp
  when "INT", "TERM" then exit 0
  when "TTIN" then Thread.list.each { |t| $stderr.puts t.inspect }
  end
end
