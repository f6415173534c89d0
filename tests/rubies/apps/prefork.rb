# A pre-fork server (Unicorn-like): the master forks two workers, then
# waits in IO.select on a self-pipe that its CHLD trap writes to; each
# worker waits in IO.select on the shared listening socket.
require_relative "common"
require "socket"
server = TCPServer.new("127.0.0.1", 0)
self_r, self_w = IO.pipe
master = Process.pid
2.times do
  fork do
    self_r.close
    self_w.close
    loop do
      # a worker whose master is gone exits, as Unicorn's do
      exit!(0) if Process.ppid != master
      IO.select([server], nil, nil, 1)
      begin
        server.accept_nonblock.close
      rescue IO::WaitReadable
      end
    end
  end
end
Signal.trap("CHLD") { self_w.write_nonblock(".") rescue nil }
lp_ready
loop do
  IO.select([self_r], nil, nil, 60)
  begin
    self_r.read_nonblock(64)
  rescue IO::WaitReadable
  end
end
