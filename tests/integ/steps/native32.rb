# candidate steps of a worker loop (generated for the tests)
# step: step00
"x" * 100
# step: step01
[1, 2, 3].map { |v| v * 2 }
# step: step02
{ a: 1, b: 2 }.to_a
# step: step03
Time.now.to_s
# step: step04
"x" * 100
# step: step05
[1, 2, 3].map { |v| v * 2 }
# step: step06
{ a: 1, b: 2 }.to_a
# step: step07
Time.now.to_s
# step: step08
"x" * 100
# step: step09
[1, 2, 3].map { |v| v * 2 }
# step: step10
{ a: 1, b: 2 }.to_a
# step: step11
Time.now.to_s
# step: step12
"x" * 100
# step: step13
[1, 2, 3].map { |v| v * 2 }
# step: step14
{ a: 1, b: 2 }.to_a
# step: step15
Time.now.to_s
# step: step16
"x" * 100
# step: step17
[1, 2, 3].map { |v| v * 2 }
# step: step18
{ a: 1, b: 2 }.to_a
# step: step19
Time.now.to_s
# step: step20
"x" * 100
# step: step21
[1, 2, 3].map { |v| v * 2 }
# step: step22
{ a: 1, b: 2 }.to_a
# step: step23
Time.now.to_s
# step: step24
"x" * 100
# step: step25
[1, 2, 3].map { |v| v * 2 }
# step: step26
{ a: 1, b: 2 }.to_a
# step: step27
Time.now.to_s
# step: step28
"x" * 100
# step: step29
Fiddle.malloc(256)
# step: step30
{ a: 1, b: 2 }.to_a
# step: step31
Time.now.to_s
