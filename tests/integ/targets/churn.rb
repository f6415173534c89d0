# A target whose worker threads allocate all the time: each keeps a
# window of up to 5,000 live strings (in flight: dropped and started
# again), so any heap dump holds thousands of young objects that are not
# retained.  The main thread sleeps.
require_relative "ready"
3.times do |k|
  Thread.new do
    loop do
      inflight = []
      5000.times { |i| inflight << "churn-#{k}-#{i}" }
      sleep 0.001
    end
  end
end
lp_ready
sleep
