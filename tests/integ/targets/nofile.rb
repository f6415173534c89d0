# A target out of file descriptors: RLIMIT_NOFILE lowered to 64 and every
# descriptor up to it taken, then idle in `sleep`.
require_relative "ready"
require "fiddle"
lp_ready
Process.setrlimit(:NOFILE, 64)
$held = []
begin
  loop { $held << File.open("/dev/null") }
rescue Errno::EMFILE
end
sleep
