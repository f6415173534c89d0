# Target for tests/rubies/run: loads what the snippets need; then its main
# thread sleeps and another thread, the last to hold the GVL, says ready
# and ends.
require "fiddle"
$retained = []
def retain_string
  $retained << ("r" * 40)
end
ready = IO.new(3)
Thread.new do
  sleep 0.1
  ready.puts "ready #{RUBY_VERSION}"
  ready.close
end
sleep
