# eval: a value printed from a live process, as a debugger's call would;
# exceptions, --json, --max-bytes, code from stdin and files (NUL bytes),
# a fresh scope, the lock, and usage errors.  The target is unharmed.
. "$(dirname "$0")/lib.sh"

# The main frame holds a local the code must never see nor change; USR1
# writes its value where the test can read it.
cat >"$T/target.rb" <<'EOF'
secret = 42
$table = { "a" => [1, 2.5, nil], b: :sym }
trap("USR1") { File.write(ARGV[0], secret.to_s) }
io = IO.new(3); io.puts "ready"; io.close
loop { sleep 1 }
EOF
mkfifo "$T/rdy"
"$RUBY" "$T/target.rb" "$T/secret" 3>"$T/rdy" &
pid=$!; _pids="$_pids $pid"
read -r _ <"$T/rdy"

# the value's inspect, one line
expect_exit 0 "$LP" eval "$pid" '[1, "a", :b, nil, 2**70]'
[ "$OUT" = '[1, "a", :b, nil, 1180591620717411303424]' ] || fail "inspect: $OUT"
[ -z "$ERR" ] || fail "stderr: $ERR"
expect_exit 0 "$LP" eval "$pid" 'Process.pid'
[ "$OUT" = "$pid" ] || fail "ran elsewhere: $OUT"

# --json: plain data as JSON (the target has not loaded JSON, and eval
# does not load it); anything else as its inspect string
"$RUBY" -e 'exit(!$LOADED_FEATURES.grep(/\/json\.rb$/).empty? ? 1 : 0)' ||
	fail "host ruby preloads json"
expect_exit 0 "$LP" eval --json "$pid" '$table'
[ "$(json_get "$OUT" 'j["result"] == {"a" => [1, 2.5, nil], "b" => "sym"} && j["format"] == "json" && j["class"] == "Hash" && !j["truncated"]')" = true ] ||
	fail "json: $OUT"
expect_exit 0 "$LP" eval "$pid" '$LOADED_FEATURES.grep(/\/json\.rb$/).size'
[ "$OUT" = 0 ] || fail "eval --json loaded json into the target: $OUT"
expect_exit 0 "$LP" eval "$pid" --json 'Object.new'
[ "$(json_get "$OUT" 'j["format"] == "inspect" && j["result"].start_with?("#<Object:")')" = true ] ||
	fail "json fallback: $OUT"

# a fresh scope: the interrupted frame's locals are neither seen nor set
expect_exit 0 "$LP" eval "$pid" 'secret = 99; [defined?(x), local_variables]'
[ "$OUT" = '[nil, [:secret]]' ] || fail "scope: $OUT"
kill -USR1 "$pid"
for _ in $(seq 500); do [ -s "$T/secret" ] && break; sleep 0.01; done
[ "$(cat "$T/secret")" = 42 ] || fail "the target's local changed: $(cat "$T/secret")"

# an exception: class, message, backtrace of the user's frames; exit 5
expect_exit 5 "$LP" eval "$pid" 'def boom; raise ArgumentError, "bad value"; end; boom'
grep -q '^leakprobe: eval: the code raised ArgumentError: bad value$' <<<"$ERR" || fail "$ERR"
grep -q "from (leakprobe snippet 0):1:in .boom'" <<<"$ERR" || fail "no backtrace: $ERR"
grep -q 'helper.rb' <<<"$ERR" && fail "the helper's frames shown: $ERR"
[ -z "$OUT" ] || fail "stdout after a raise: $OUT"
expect_exit 5 "$LP" eval "$pid" --json 'raise "boom"'
[ "$(json_get "$OUT" 'j["error"]["class"] + ":" + j["error"]["message"]')" = RuntimeError:boom ] ||
	fail "json error: $OUT"
expect_exit 5 "$LP" eval "$pid" 'def ('
grep -q 'raised SyntaxError' <<<"$ERR" || fail "$ERR"

# --max-bytes: cut, and said so; the default is 1 MiB
expect_exit 0 "$LP" eval "$pid" --max-bytes 100 '"x" * 5000'
[ "${#OUT}" = 100 ] || fail "cut to ${#OUT} bytes"
grep -q 'cut at 100 of 5002 bytes' <<<"$ERR" || fail "$ERR"
expect_exit 0 "$LP" eval "$pid" --json --max-bytes 100 '["x" * 5000]'
[ "$(json_get "$OUT" 'j["truncated"] && j["result"].is_a?(String) && j["bytes"] == 5004')" = true ] ||
	fail "json cut: $OUT"
"$LP" eval "$pid" '"y" * 3_000_000' >"$T/big" 2>"$T/err" || fail "big: $(cat "$T/err")"
[ "$(stat -c %s "$T/big")" = $((1048576 + 1)) ] || fail "default limit: $(stat -c %s "$T/big")"
# a long value streams (20 MB through the channel, checked byte for byte)
"$LP" eval "$pid" --max-bytes 64M '"z" * 20_000_000' >"$T/big" 2>"$T/err" ||
	fail "20 MB: $(cat "$T/err")"
[ "$(stat -c %s "$T/big")" = 20000003 ] || fail "20 MB: $(stat -c %s "$T/big") bytes"
[ "$(tr -d z <"$T/big")" = '""' ] || fail "20 MB: wrong bytes"

# code from stdin, and from a file with a NUL byte inside a string
expect_exit 0 sh -c 'echo "6 * 7" | "$0" eval "$1" -' "$LP" "$pid"
[ "$OUT" = 42 ] || fail "stdin: $OUT"
printf '"a\0b".bytesize' >"$T/nul.rb"
expect_exit 0 "$LP" eval "$pid" --file "$T/nul.rb"
[ "$OUT" = 3 ] || fail "NUL byte: $OUT"

# code that outlives --timeout: exit 4 at the timeout, and its thread is
# killed (only this run's helper and its watchdog remain, named leakprobe)
expect_exit 4 "$LP" eval "$pid" -t 1 'sleep 60'
grep -q 'did not finish within 1.0 s' <<<"$ERR" || fail "$ERR"
n=
for _ in $(seq 50); do
	n=$("$LP" eval "$pid" 'Thread.list.count { |t| t.name == "leakprobe" }')
	[ "$n" = 2 ] && break
done
[ "$n" = 2 ] || fail "the timed-out code's thread is still alive ($n leakprobe threads)"

# standard output closed early: exit 6, the target unharmed
"$LP" eval "$pid" '"y" * 1_000_000' 2>"$T/err" | head -c 10 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" = 6 ] || fail "SIGPIPE: exit $rc: $(cat "$T/err")"

# usage errors: one line, exit 2
expect_exit 2 "$LP" eval "$pid"
grep -q 'missing CODE' <<<"$ERR" || fail "$ERR"
expect_exit 2 "$LP" eval "$pid" nil --file "$T/nul.rb"
grep -q 'give the code once' <<<"$ERR" || fail "$ERR"
expect_exit 2 "$LP" eval "$pid" nil extra
expect_exit 2 "$LP" eval "$pid" --max-bytes 0 nil
grep -q -- '--max-bytes wants' <<<"$ERR" || fail "$ERR"
expect_exit 2 "$LP" eval notapid nil
[ "$(wc -l <<<"$ERR")" = 1 ] || fail "not one line: $ERR"
# the same target errors as attach
expect_exit 3 "$LP" eval 999999 nil
grep -qi 'no process' <<<"$ERR" || fail "$ERR"
sleep 100 & spid=$!; _pids="$_pids $spid"
expect_exit 3 "$LP" eval "$spid" nil
grep -q 'not a Ruby' <<<"$ERR" || fail "$ERR"

# the same lock as attach: refused while an attach holds the target
mkfifo "$T/lp.out"
"$LP" attach "$pid" --eval 'sleep 0.01' --times 100000 --batch 10 \
	--no-control >"$T/lp.out" 2>&1 & first=$!
exec 6<"$T/lp.out"
read -r _ <&6	# "attached to ...": it holds the target
expect_exit 3 "$LP" eval "$pid" nil
grep -q 'already being probed by leakprobe' <<<"$ERR" || fail "$ERR"
kill -INT "$first"
cat <&6 >/dev/null
wait "$first"
exec 6<&-

target_ok "$pid"
expect_exit 0 "$LP" eval "$pid" ':still_fine'
[ "$OUT" = :still_fine ] || fail "$OUT"
target_ok "$pid"
echo "ok"
