# Shared by test targets: signal readiness on the fd named by LP_READY_FD
# (a FIFO the test reads; see start_target in lib.sh).  Without it (a
# target started by `leakprobe run`, say) there is nothing to signal.
def lp_ready
  fd = ENV["LP_READY_FD"] or return
  io = IO.new(Integer(fd))
  io.puts "ready"
  io.close
end
