# Bash completion: command names, a command's options, file names after
# an option that takes a path, and PIDs: a running Ruby target's pid is
# offered (also once its comm no longer says ruby: by its exe), a
# non-Ruby process's is not, and none once the PID is given.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMP=$ROOT/completions/leakprobe.bash
[ -r "$COMP" ] || fail "no $COMP"

start_target leaks.rb
rpid=$TARGET_PID
# a Ruby that renamed its main thread (prctl PR_SET_NAME, as a process
# manager's title setter may): comm says worker-7, exe says ruby
mkfifo "$T/rdy"
"$RUBY" -rfiddle -e '
prctl = Fiddle::Function.new(Fiddle.dlopen(nil)["prctl"],
  [Fiddle::TYPE_INT, Fiddle::TYPE_VOIDP, Fiddle::TYPE_LONG, Fiddle::TYPE_LONG,
   Fiddle::TYPE_LONG], Fiddle::TYPE_INT)
prctl.call(15, "worker-7", 0, 0, 0)
io = IO.new(3); io.puts "ready"; io.close; sleep' 3>"$T/rdy" &
wpid=$!; _pids="$_pids $wpid"
read -r _ <"$T/rdy"
[ "$(cat "/proc/$wpid/comm")" = worker-7 ] || fail "comm unchanged: $(cat "/proc/$wpid/comm")"
sleep 300 & spid=$!; _pids="$_pids $spid"
: >"$T/snippet-file.rb"

# complete WORD...: COMPREPLY for the command line WORD... (the last word
# is the one being completed), one per line, sorted
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_leakprobe; printf "%s\n" "${COMPREPLY[@]}"' _ "$COMP" "$@" | sort
}
has() { grep -qx -- "$2" <<<"$1" || fail "'$2' not offered: $(echo $1)"; }
hasnt() { grep -qx -- "$2" <<<"$1" && fail "'$2' offered: $(echo $1)"; true; }

# command names
r=$(complete_words "$LP" "")
for c in attach eval ab bisect heapdump watch malloc; do has "$r" $c; done
[ "$(complete_words "$LP" at)" = attach ] || fail "at: $(complete_words "$LP" at)"
[ "$(complete_words "$LP" -v ev)" = eval ] || fail "-v ev"
[ "$(complete_words "$LP" help bis)" = bisect ] || fail "help bis"
# options of attach and eval
r=$(complete_words "$LP" attach --t)
[ "$r" = "--timeout
--times
--top" ] || fail "attach --t: $(echo $r)"
r=$(complete_words "$LP" attach -)
has "$r" --eval; has "$r" --fail-on-growth; has "$r" --malloc-sites; hasnt "$r" --max-bytes
r=$(complete_words "$LP" eval --)
has "$r" --max-bytes; has "$r" --json; hasnt "$r" --times
# a file after an option that takes a path, nothing after one that takes
# a number
r=$(complete_words "$LP" attach --file "$T/snippet-")
[ "$r" = "$T/snippet-file.rb" ] || fail "--file: $r"
[ -z "$(complete_words "$LP" attach --times "")" ] || fail "after --times"
# PIDs: Ruby processes only
r=$(complete_words "$LP" attach "")
has "$r" "$rpid"; has "$r" "$wpid"; hasnt "$r" "$spid"; hasnt "$r" "$$"
r=$(complete_words "$LP" eval --timeout 5 "")
has "$r" "$rpid"; hasnt "$r" "$spid"
[ "$(complete_words "$LP" attach "${rpid:0:${#rpid}-1}")" != "" ] || fail "prefix of $rpid"
# one PID is enough (eval's next operand is the code)
[ -z "$(complete_words "$LP" eval "$rpid" "")" ] || fail "a second pid offered"
# watch takes several
r=$(complete_words "$LP" watch "$rpid" "")
has "$r" "$wpid"; hasnt "$r" "$spid"
echo ok
