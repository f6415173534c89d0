# candidate steps of a worker loop: step05 leaks; step04 leaks too, but
# only during its first 8,800 calls -- the four trials of 2,200 calls
# (--times 2000 --batch 200 and a warm-up batch) that lead bisect to it
# (all, step04-07, step04+05, step04 alone) -- and not when step04 is
# measured alone again: a false lead, to be left for step05
# step: step00
"x" * 100
# step: step01
[1, 2, 3].map { |v| v * 2 }
# step: step02
{ a: 1, b: 2 }.to_a
# step: step03
Time.now.to_s
# step: step04
$lp_false_lead = ($lp_false_lead || 0) + 1
Fiddle.malloc(256) if $lp_false_lead <= 8800
# step: step05
Fiddle.malloc(256)
# step: step06
{ a: 1, b: 2 }.to_a
# step: step07
Time.now.to_s
