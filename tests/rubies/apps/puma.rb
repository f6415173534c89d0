# A Puma-like server: an acceptor thread blocked in accept, a pool of
# threads blocked on Queue#pop, and the main thread joining the acceptor
# (as Puma's launcher waits on its server thread).
require_relative "common"
require "socket"
server = TCPServer.new("127.0.0.1", 0)
pool = Queue.new
4.times do
  Thread.new do
    while (client = pool.pop)
      client.write("HTTP/1.0 200 OK\r\n\r\nok")
      client.close
    end
  end
end
acceptor = Thread.new do
  loop { pool << server.accept }
end
lp_ready
acceptor.join
