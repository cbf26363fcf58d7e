#!/usr/bin/env bash
# Remakes crates/tavern/symbol-order.txt, the functions the `tavern` binary
# runs at start and at rest, which its build script has the linker put
# next to each other (docs/performance.md, Memory at rest). Run on demand
# after large changes, on x86_64 Linux with valgrind. Each of the two
# `dist` builds with every driver (the one built here, and the static one
# of the container image, as scripts/tavern-image.sh builds it: the names
# of its functions differ) runs `tavern serve` under callgrind on a fresh
# data directory while a world of the stand-in is created, started,
# visited through the proxy and stopped, the API and dashboard are asked,
# and it rests for REST=30 seconds; every function either ran is listed.
#
#   bash bench/symbol-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REST=${REST:-30}
TARGET=x86_64-unknown-linux-gnu
command -v valgrind >/dev/null || { echo "bench/symbol-order.sh needs valgrind" >&2; exit 1; }
. bench/common.sh
bench_binary
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -q --profile dist --target "$TARGET" -p tavern --bin tavern --features full
bench_work
ROOT=$WORK
at_exit "rm -rf $ROOT"

# ran BINARY: the functions BINARY ran, as it names them, once each.
ran() {
  BIN=$1
  WORK=$(mktemp -d "$ROOT/run.XXXXXX")
  # Under callgrind Tavern starts in seconds, not a fraction of one.
  START_TRIES=1200 start_tavern valgrind --tool=callgrind --demangle=no \
    --callgrind-out-file="$WORK/callgrind.out"
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
  local _
  for _ in $(seq 600); do ! kill -0 "$SERVER_PID" 2>/dev/null && break; sleep 0.1; done
  nm --defined-only "$BIN" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$WORK/defined"
  sed -nE 's/^c?fn=\([0-9]+\) (.*)/\1/p' "$WORK/callgrind.out" | awk '!seen[$0]++' |
    grep -Fxf "$WORK/defined"
}
ran "$PWD/target/dist/tavern" >"$ROOT/host"
ran "$PWD/target/$TARGET/dist/tavern" >"$ROOT/image"
cat "$ROOT/host" "$ROOT/image" | awk '!seen[$0]++' >crates/tavern/symbol-order.txt
echo "crates/tavern/symbol-order.txt: $(wc -l <crates/tavern/symbol-order.txt) functions"
