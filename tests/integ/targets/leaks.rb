# A target for verdict tests: it loads what the snippets need and then
# sleeps, its main thread idle in `sleep` like a quiet worker.
require_relative "ready"
require "fiddle"
$retained = []
$cache = {}
# Ruby-object leak: retained strings.
def retain_string
  $retained << ("r" * 40)
end
# Looks like growth while warming a cache, then flat.
def cached_lookup
  $cache[rand(200)] ||= "c" * 2000
end
lp_ready
sleep
