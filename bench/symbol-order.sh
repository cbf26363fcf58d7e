#!/usr/bin/env bash
# Remakes crates/tavern/symbol-order.txt, the functions the `tavern` binary
# runs at start and at rest, which its build script has the linker put
# next to each other (docs/performance.md, Memory at rest). Run on demand
# after large changes, on x86_64 Linux with valgrind: `tavern serve` (the
# `dist` build with every driver) runs under callgrind on a fresh data
# directory while a world of the stand-in is created, started, visited
# through the proxy and stopped, the API and dashboard are asked, and it
# rests for REST=30 seconds; every function it ran is listed.
#
#   bash bench/symbol-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REST=${REST:-30}
command -v valgrind >/dev/null || { echo "bench/symbol-order.sh needs valgrind" >&2; exit 1; }
. bench/common.sh
bench_binary
bench_work
# Under callgrind Tavern starts in some twenty seconds, not a fraction of one.
START_TRIES=1200 start_tavern valgrind --tool=callgrind --demangle=no \
  --callgrind-out-file="$WORK/callgrind.out"
at_exit "kill -INT $SERVER_PID"
# A world of the stand-in, through its life.
start_world order
for path in /api/status /_stub/world-load; do
  curl -sf -o /dev/null -H "Host: order.localhost" "http://127.0.0.1:$TPORT$path"
done
"$BIN" instance list >/dev/null
"$BIN" instance stop order >/dev/null
curl -sf -o /dev/null "http://127.0.0.1:$TPORT/healthz"
curl -sf -o /dev/null -H "Host: localhost" "http://127.0.0.1:$TPORT/"
sleep "$REST"
# callgrind writes its counts when Tavern ends.
kill -INT "$SERVER_PID"
for _ in $(seq 600); do [ -s "$WORK/callgrind.out" ] && ! kill -0 "$SERVER_PID" 2>/dev/null && break; sleep 0.1; done
# The functions it ran, as the binary names them, once each.
nm --defined-only "$BIN" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$WORK/defined"
sed -nE 's/^c?fn=\([0-9]+\) (.*)/\1/p' "$WORK/callgrind.out" | awk '!seen[$0]++' |
  grep -Fxf "$WORK/defined" >crates/tavern/symbol-order.txt
echo "crates/tavern/symbol-order.txt: $(wc -l <crates/tavern/symbol-order.txt) functions"
