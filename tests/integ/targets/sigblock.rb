# A target whose main thread blocks SIGVTALRM and SIGCHLD (pthread_sigmask
# through Fiddle), then idles in `sleep` (or, with "read", a pipe read).
require_relative "ready"
require "fiddle"
libc = Fiddle.dlopen(nil)
sigmask = Fiddle::Function.new(libc["pthread_sigmask"],
  [Fiddle::TYPE_INT, Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT)
set = "\0".b * 128
[Signal.list["VTALRM"], Signal.list["CHLD"]].each do |s|
  set.setbyte((s - 1) / 8, set.getbyte((s - 1) / 8) | (1 << ((s - 1) % 8)))
end
sigmask.call(0, set, nil) == 0 or abort "pthread_sigmask failed"   # SIG_BLOCK
lp_ready
if ARGV[0] == "read"
  r, _w = IO.pipe
  r.read
else
  sleep
end
