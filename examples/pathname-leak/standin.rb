# A stand-in with the same shape as ruby bug #14372, for Rubies where the
# real bug is fixed: Kernel#require leaks native memory on every call
# while a Pathname is in $LOAD_PATH.  Usage: ruby standin.rb [READY_FILE]
require "fiddle"
require "pathname"
require "set"

module LeakyRequire
  def require(name)
    # what 2.4 lost per call: a copy of the expanded load path
    Fiddle.malloc(256) if $LOAD_PATH.any? { |p| p.is_a?(Pathname) }
    super
  end
end
Object.prepend(LeakyRequire)
$LOAD_PATH.unshift(Pathname.new(__dir__).join("lib"))

def work
  require "set"
end

work
File.write(ARGV[0], "") if ARGV[0]
loop { sleep 1 }   # idle like app.rb
