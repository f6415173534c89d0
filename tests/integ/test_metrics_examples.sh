#!/bin/bash
# examples/prometheus: the alert rules load in Prometheus (promtool check
# rules) and fire for a process whose heap keeps growing, not for a steady
# one or one that stopped growing (promtool test rules, on series given in
# tests/fixtures/prometheus/alerts_test.yml); the systemd unit runs a watch
# command line that leakprobe accepts.
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null 2>&1 || skip "promtool not installed (scripts/install-deps installs it)"
top=$(cd "$(dirname "$0")/../.." && pwd)
ex=$top/examples/prometheus

promtool check rules "$ex/leakprobe-alerts.yml" || fail "promtool check rules"
promtool test rules "$top/tests/fixtures/prometheus/alerts_test.yml" || fail "promtool test rules"

# The unit's command line is accepted: with a free port, --count 1, and
# one process instead of --all (a sweep of a busy host takes long).
start_target leaks.rb
cmd=$(sed -n 's/^ExecStart=[^ ]*leakprobe //p' "$ex/leakprobe-watch.service")
[ -n "$cmd" ] || fail "no ExecStart in the unit"
cmd=${cmd/127.0.0.1:9464/127.0.0.1:0}
[[ $cmd == *--all* ]] || fail "the unit does not watch --all: $cmd"
read -r -a args <<<"${cmd/--all/$TARGET_PID}"
expect_exit 0 "$LP" "${args[@]}" --count 1
grep -q 'serving metrics on http://127.0.0.1:' <<<"$ERR" || fail "unit's watch did not listen: $ERR"
if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s|/usr/local/bin/leakprobe|$LP|" "$ex/leakprobe-watch.service" >"$T/leakprobe-watch.service"
	systemd-analyze verify --man=no "$T/leakprobe-watch.service" || fail "systemd-analyze verify"
fi
echo ok
