# The truth about the Pathname example, from the process itself: load the
# app (run from its directory by a relative name, as check.sh does) in a
# thread of its own, call its `work` N times in the main thread, and print
# the growth of the process's resident memory per call, in bytes.
#   ruby -C DIR pathname-truth.rb app.rb [N]
app = ARGV[0]
n = Integer(ARGV[1] || 30_000)
ARGV.clear
Thread.new { load app }
Thread.pass until Object.private_method_defined?(:work) &&
                  $LOAD_PATH.any? { |p| p.is_a?(Pathname) }
def rss
  File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i * 1024
end
1000.times { work }
GC.start
before = rss
n.times { work }
GC.start
puts format("%.1f", (rss - before).to_f / n)
