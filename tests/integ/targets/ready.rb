# Shared by test targets: signal readiness on fd 3 (a FIFO the test reads).
def lp_ready
  io = IO.new(3)
  io.puts "ready"
  io.close
rescue Errno::EBADF
  nil
end
