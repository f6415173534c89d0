#!/bin/sh
# The one-line leak check for CI: start the app, wait until it is ready,
# run `work` 20,000 times inside it (after 6 warm-up batches: the first
# requires grow the allocator's arenas for a while; 20,000 calls keep what
# is left of that settling well under the threshold), stop it.  Exit 1
# means "leaks at least 32 bytes per call"; 0 means no leak; see
# leakprobe(1) for the others.
#   ./check.sh [app.rb|standin.rb]
cd "$(dirname "$0")" || exit 2
app=${1:-app.rb}
ready=$(mktemp -u /tmp/leak-ready.XXXXXX)
exec "${LEAKPROBE:-leakprobe}" run --ready-file "$ready" attach \
	--eval 'work' --times 20000 --batch 1000 --warmup 6 \
	--fail-on-growth 32 \
	-- "${RUBY:-ruby}" "$app" "$ready"
