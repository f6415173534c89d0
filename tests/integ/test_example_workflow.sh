# The Pathname example's workflow (examples/pathname-leak/.github/
# workflows/leak-check.yml) must work when copied: it installs leakprobe's
# dependencies through scripts/install-deps (no package list of its own
# that could drift), everything it names under leakprobe/ exists, and its
# steps' commands, run here in a shell for each entry of its Ruby matrix
# (the `uses:` steps replaced by this checkout), give the exit status that
# entry expects: 0 on this Ruby, 1 on the real 2.4.3.
. "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WF=$REPO/examples/pathname-leak/.github/workflows/leak-check.yml
[ -f "$WF" ] || fail "no workflow at $WF"

# the steps, as JSON lines: name, if, run, env (per matrix entry later)
"$RUBY" -ryaml -rjson -e '
	wf = YAML.load_file(ARGV[0])
	job = wf["jobs"].values.first
	puts JSON.generate("matrix" => job["strategy"]["matrix"]["include"])
	job["steps"].each { |s| puts JSON.generate(s) }' "$WF" >"$T/steps" ||
	fail "the workflow does not parse"
runs=$("$RUBY" -rjson -e 'STDIN.each_line.drop(1).each { |l| s = JSON.parse(l); puts s["run"] if s["run"] }' <"$T/steps")
grep -q 'leakprobe/scripts/install-deps' <<<"$runs" ||
	fail "the workflow does not install through scripts/install-deps"
if grep -nE '(^|[^-])\bapt(-get|itude)?\b|dpkg -i|\byum\b|\bdnf\b' <<<"$runs"; then
	fail "the workflow installs packages itself: use scripts/install-deps"
fi
for p in $(grep -o 'leakprobe/[A-Za-z0-9_./-]*' <<<"$runs" | sort -u); do
	[ -e "$REPO/${p#leakprobe/}" ] || fail "the workflow names $p, which leakprobe does not have"
done
matrix=$("$RUBY" -rjson -e 'JSON.parse(STDIN.readline)["matrix"].each { |m| puts "#{m["ruby"]}:#{m["expect"]}" }' <"$T/steps")
grep -q ':1$' <<<"$matrix" || fail "no Ruby in the matrix where the check must fail"
grep -q ':0$' <<<"$matrix" || fail "no Ruby in the matrix where the check must pass"

# run STEPS for one matrix entry in workspace $T/ws.M
src=""
for d in "$REPO/../../shared/rubies" "$REPO/../shared/rubies" /work/shared/rubies; do
	[ -f "$d/ruby-2.4.3.tar.xz" ] && { src=$(cd "$d" && pwd); break; }
done
for m in $matrix; do
	rb=${m%:*} want=${m#*:}
	if [ "$rb" != system ]; then
		dir=${LP_RUBIES_DIR:-/var/cache/leakprobe-rubies}
		if ! [ -f "$dir/ruby-$rb/.leakprobe-ok" ]; then
			[ -w "$dir" ] || [ -w "$(dirname "$dir")" ] ||
				{ echo "Ruby $rb: not built and $dir not writable: entry not run"; continue; }
			[ -n "$src" ] || { echo "Ruby $rb: no source tarball here (no network in tests): entry not run"; continue; }
		fi
	fi
	ws=$T/ws.$rb
	mkdir -p "$ws/examples" "$T/rt.$rb"
	cp -r "$REPO/examples/pathname-leak" "$ws/examples/"
	ln -s "$REPO" "$ws/leakprobe"
	: >"$T/path.$rb"; : >"$T/env.$rb"
	"$RUBY" -rjson -e '
		rb, exp = ARGV
		sub = ->(s) { s.to_s.gsub(/\$\{\{\s*matrix\.ruby\s*\}\}/, rb).gsub(/\$\{\{\s*matrix\.expect\s*\}\}/, exp.to_s) }
		STDIN.each_line.drop(1).each_with_index do |l, i|
			s = JSON.parse(l)
			next unless s["run"]
			if (c = s["if"])
				c = sub.(c.gsub("matrix.ruby", "\x27#{rb}\x27").gsub("matrix.expect", "\x27#{exp}\x27"))
				m = c.match(/\A\s*\x27([^\x27]*)\x27\s*(==|!=)\s*\x27([^\x27]*)\x27\s*\z/) or abort "cannot evaluate if: #{s["if"]}"
				next unless (m[1] == m[3]) == (m[2] == "==")
			end
			File.write(ARGV[2] + "/step.#{i}.sh", sub.(s["run"]))
			File.write(ARGV[2] + "/step.#{i}.env", (s["env"] || {}).map { |k, v| "#{k}=#{sub.(v)}\n" }.join)
		end' "$rb" "$want" "$ws" <"$T/steps" || fail "steps of $rb"
	rc=0
	for s in $(ls "$ws"/step.*.sh | sort -t. -k2 -n); do
		# each step in a fresh shell, as the runner does, with what
		# earlier steps put in GITHUB_PATH and GITHUB_ENV; this test's
		# LEAKPROBE and Ruby sources and cache come along
		( cd "$ws" &&
		  PATH=$(tac "$T/path.$rb" | paste -sd: -):$PATH
		  set -a; . "$T/env.$rb"; . "${s%.sh}.env"; set +a
		  export GITHUB_PATH=$T/path.$rb GITHUB_ENV=$T/env.$rb RUNNER_TEMP=$T/rt.$rb
		  [ -n "$src" ] && export LP_RUBY_SOURCES=$src
		  sh -e "$s" ) >"$T/step.out" 2>&1; rc=$?
		last=$s
		[ "$rc" = 0 ] || break
	done
	tail -n 2 "$T/step.out"
	[ "$rc" = 0 ] || fail "Ruby $rb: step $(basename "$last") failed (exit $rc): $(tail -n 5 "$T/step.out")"
	grep -q "leak check: exit $want, expected $want" "$T/step.out" ||
		fail "Ruby $rb: the check step did not run: $(tail -n 3 "$T/step.out")"
	echo "Ruby $rb: the workflow's steps end as expected (exit $want)"
done
echo ok
