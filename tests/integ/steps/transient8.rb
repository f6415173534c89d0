# candidate steps of a worker loop: step03 leaks during its first 2,200
# calls only (one trial of --times 2000 --batch 200 with its warm-up
# batch), like a cache filling up: one trial sees a leak that is not there
# when measured again
# step: step00
"x" * 100
# step: step01
[1, 2, 3].map { |v| v * 2 }
# step: step02
{ a: 1, b: 2 }.to_a
# step: step03
$lp_transient = ($lp_transient || 0) + 1
Fiddle.malloc(256) if $lp_transient <= 2200
# step: step04
"x" * 100
# step: step05
[1, 2, 3].map { |v| v * 2 }
# step: step06
{ a: 1, b: 2 }.to_a
# step: step07
Time.now.to_s
