#!/usr/bin/env bash
# Tavern's own share of a start, run on demand (not in CI): from
# `POST /api/v1/instances/{slug}/start` to the world answering
# /api/status through the proxy, less the stand-in's own start (spawned by
# hand, asked every millisecond). ROUNDS=20 of each (bench/start.py).
#
#   bash bench/start.sh
#   BIN=/tmp/tavern-old bash bench/start.sh   # another build of Tavern
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-20}
if [ -z "${BIN:-}" ]; then
  cargo build --profile dist -q -p tavern --features full
  BIN=$PWD/target/dist/tavern
fi
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

export HOME=$WORK TAVERN_RUNTIME_STUB_RELEASE=true
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "Tavern is listening" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TPORT=$(sed -n 's/.*Tavern is listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/serve.out")
[ -n "$TPORT" ] || { echo "Tavern did not start:"; cat "$WORK/serve.out" "$WORK/serve.log"; exit 1; }
export TAVERN_SERVER=http://127.0.0.1:$TPORT TAVERN_TOKEN=$(cat "$WORK/data/admin-token")
echo BENCHBENCHBENCHBENCH0000 | "$BIN" license add --label bench --key-stdin >/dev/null
"$BIN" instance create bench --release stub >/dev/null 2>&1
python3 bench/start.py "$BIN" "$TPORT" "$TAVERN_TOKEN" bench "$ROUNDS"
echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
