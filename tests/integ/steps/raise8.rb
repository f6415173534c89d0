# candidate steps of a worker loop (generated for the tests)
# step: step00
"x" * 100
# step: step01
[1, 2, 3].map { |v| v * 2 }
# step: step02
{ a: 1, b: 2 }.to_a
# step: step03
Fiddle.malloc(256)
# step: step04
"x" * 100
# step: step05
[1, 2, 3].map { |v| v * 2 }
# step: step06
raise "broken step"
# step: step07
Time.now.to_s
