# A worker-like target (as worker.rb) whose background threads allocate
# and free all the time, Ruby objects and malloc'd memory: a noisy process
# for bisect.  Usage: noisy_worker.rb
require_relative "ready"
require "fiddle"
2.times do |k|
  Thread.new do
    loop do
      a = Array.new(50) { |i| "noise-#{k}-#{i}" * 3 }
      h = {}
      a.each_with_index { |s, i| h[i] = s }
      Fiddle.free(Fiddle.malloc(2048 + 512 * k))
      sleep 0.005
    end
  end
end
lp_ready
sleep
