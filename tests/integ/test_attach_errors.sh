# Bad input to attach: a clear one-line error, the right exit status, the
# target alive and unchanged, nothing left behind.
. "$(dirname "$0")/lib.sh"
mkfifo "$T/pipe.rdy" 2>/dev/null || true

start_target leaks.rb
pid=$TARGET_PID

# usage errors
expect_exit 2 "$LP" attach
expect_exit 2 "$LP" attach "$pid"
grep -q 'exactly one of --eval' <<<"$ERR" || fail "$ERR"
expect_exit 2 "$LP" attach "$pid" --eval nil --times 0
expect_exit 2 "$LP" attach notapid --eval nil
expect_exit 2 "$LP" attach "$pid" --file "$T/missing.rb"
grep -q 'missing.rb' <<<"$ERR" || fail "$ERR"

# non-existent pid
expect_exit 3 "$LP" attach 999999 --eval nil
grep -qi 'no process' <<<"$ERR" || fail "$ERR"

# not a Ruby process
sleep 100 & spid=$!; _pids="$_pids $spid"
expect_exit 3 "$LP" attach "$spid" --eval nil
grep -q 'not a Ruby' <<<"$ERR" || fail "$ERR"
grep -q 'not a Ruby' <<<"$ERR" && [ "$(wc -l <<<"$ERR")" = 1 ] || fail "not one line: $ERR"
alive "$spid" || fail "sleep died"

# a Ruby whose SIGPIPE is back at the default action: refused, untouched
"$RUBY" -e 'trap("PIPE", "SYSTEM_DEFAULT"); io = IO.new(3); io.puts "ready"; io.close; sleep' 3>"$T/pipe.rdy" &
ppid=$!; _pids="$_pids $ppid"
read -r _ <"$T/pipe.rdy"
expect_exit 3 "$LP" attach "$ppid" --eval nil
grep -q 'SIGPIPE at its default action' <<<"$ERR" || fail "$ERR"
target_ok "$ppid"

# a zombie: its parent never reaps it (perl, unlike bash, installs no
# SIGCHLD handler that could reap the child first)
perl -e 'fork or exit; sleep 100' & zparent=$!; _pids="$_pids $zparent"
zpid=""
for _ in $(seq 200); do	# wait for the state change, not a fixed time
	zpid=$(pgrep -P "$zparent" | head -1)
	[ -n "$zpid" ] && [ "$(state_of "$zpid")" = Z ] && break
	sleep 0.01
done
[ "$(state_of "$zpid")" = Z ] || fail "could not make a zombie"
expect_exit 3 "$LP" attach "$zpid" --eval nil
grep -q 'zombie' <<<"$ERR" || fail "$ERR"

# already traced by strace
if command -v strace >/dev/null; then
	strace -p "$pid" -o /dev/null & st=$!
	for _ in $(seq 500); do [ "$(tracer_of "$pid")" != 0 ] && break; sleep 0.01; done
	expect_exit 3 "$LP" attach "$pid" --eval nil
	grep -q 'already traced by pid .*strace' <<<"$ERR" || fail "$ERR"
	kill "$st"; wait "$st" 2>/dev/null
	for _ in $(seq 500); do [ "$(tracer_of "$pid")" = 0 ] && break; sleep 0.01; done
fi

# leakprobe's own pid
expect_exit 3 bash -c 'exec "$0" attach $$ --eval nil' "$LP"
grep -q 'leakprobe itself' <<<"$ERR" || fail "$ERR"

# the snippet: syntax error, raise, exit — exit 5, target keeps running
expect_exit 5 "$LP" attach "$pid" --eval 'def ('
grep -q 'SyntaxError' <<<"$ERR" || fail "$ERR"
target_ok "$pid"
expect_exit 5 "$LP" attach "$pid" --eval 'raise "boom"'
grep -q 'RuntimeError: boom' <<<"$ERR" || fail "$ERR"
grep -q 'from (leakprobe snippet 0)' <<<"$ERR" || fail "no backtrace: $ERR"
target_ok "$pid"
expect_exit 5 "$LP" attach "$pid" --eval 'exit 3'
grep -q 'SystemExit' <<<"$ERR" || fail "$ERR"
target_ok "$pid"

# a 1 MB snippet, through --file
"$RUBY" -e 'print "a = 1\n" * 180_000; print "nil\n"' >"$T/big.rb"
[ "$(stat -c %s "$T/big.rb")" -gt 1000000 ] || fail "big snippet too small"
expect_exit 0 "$LP" attach "$pid" --file "$T/big.rb" --times 4 --batch 2
target_ok "$pid"

# NUL bytes (argv cannot carry them: --file)
printf 'nil\0nil\n' >"$T/nul.rb"
expect_exit 2 "$LP" attach "$pid" --file "$T/nul.rb"
grep -q 'NUL byte at offset 3' <<<"$ERR" || fail "$ERR"

# invalid UTF-8 in a string literal: Ruby's own SyntaxError
printf '"\xff\xfe"\n' >"$T/bad.rb"
expect_exit 5 "$LP" attach "$pid" --file "$T/bad.rb"
grep -q 'SyntaxError' <<<"$ERR" || fail "$ERR"
target_ok "$pid"

# hostile but valid: quotes, interpolation, heredoc, __END__
cat >"$T/hostile.rb" <<'RB'
s = "#{1 + 1}\"'\\"
t = <<~X
  ) } end ]]
X
[s, t]
__END__
this is not code
RB
expect_exit 0 "$LP" attach "$pid" --file "$T/hostile.rb" --times 4 --batch 2
target_ok "$pid"

# permission denied: a user who may not trace our process (only root can
# become another user here)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	expect_exit 3 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LP" attach "$pid" --eval nil
	grep -qi 'permission\|not permitted' <<<"$ERR" || fail "$ERR"
	grep -q 'run as root' <<<"$ERR" || fail "no hint: $ERR"
fi

# a snippet that ends the helper thread: 4, said so; the target goes on
for code in 'Thread.current.kill' 'Thread.exit'; do
	expect_exit 4 "$LP" attach "$pid" --eval "$code" --times 10
	grep -q 'helper thread in process .* was killed' <<<"$ERR" ||
		fail "$code: $ERR"
	target_ok "$pid"
done
expect_exit 0 "$LP" attach "$pid" --eval nil --times 10 --quiet

# the measuring options mean and check the same in every command
for cmd in attach ab bisect malloc; do
	for bad in "--times 0" "--times 10x" "--warmup 1001" "--batch 0" \
		   "--timeout 0" "--timeout -1"; do
		opt=${bad%% *}
		[ $cmd = ab ] && [ $opt = --batch ] && continue	# ab: --rounds
		expect_exit 2 "$LP" $cmd "$pid" $bad
		grep -q "^leakprobe: $cmd: $opt wants" <<<"$ERR" ||
			fail "$cmd $bad: $ERR"
	done
done
target_ok "$pid"

[ "$(stray_files "$pid")" = 0 ] || fail "files left behind"
target_ok "$pid"
echo ok
