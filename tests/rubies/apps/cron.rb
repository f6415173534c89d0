# A cron-like worker: the main thread works, then sleeps a minute.
require_relative "common"
$runs = 0
def work
  $runs += 1
end
lp_ready
loop do
  work
  sleep 60
end
