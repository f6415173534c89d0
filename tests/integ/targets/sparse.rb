# A process with one huge, sparse anonymous mapping, like a sanitizer's
# shadow memory: GIB GiB mapped read-write with MAP_NORESERVE, TOUCH_MIB
# MiB of it written (in 64 pieces spread over the range).  It then idles
# in a blocking read of CMD_FIFO; "exit" exits.
#
#   sparse.rb CMD_FIFO GIB TOUCH_MIB
require_relative "ready"
require "fiddle"

PROT_RW = 0x3
MAP_FLAGS = 0x02 | 0x20 | 0x4000 # MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE

len = Integer(ARGV.fetch(1)) << 30
touch = Integer(ARGV.fetch(2)) << 20
mmap = Fiddle::Function.new(
  Fiddle::Handle::DEFAULT["mmap"],
  [Fiddle::TYPE_VOIDP, Fiddle::TYPE_SIZE_T, Fiddle::TYPE_INT,
   Fiddle::TYPE_INT, Fiddle::TYPE_INT, Fiddle::TYPE_LONG],
  Fiddle::TYPE_VOIDP)
base = mmap.call(nil, len, PROT_RW, MAP_FLAGS, -1, 0).to_i
abort "sparse.rb: mmap of #{len} bytes failed" unless base > 0 && base < (1 << 63)
piece = touch / 64
fill = ("\x5A".b * piece).freeze
64.times do |i|
  Fiddle::Pointer.new(base + i * (len / 64), piece)[0, piece] = fill
end

cmd = File.open(ARGV.fetch(0), "r+")
lp_ready
while (line = cmd.gets)
  exit 0 if line.strip == "exit"
end
