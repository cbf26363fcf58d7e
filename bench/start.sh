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
. bench/common.sh
bench_binary
bench_work
start_tavern
echo BENCHBENCHBENCHBENCH0000 | "$BIN" license add --label bench --key-stdin >/dev/null
"$BIN" instance create bench --release stub >/dev/null 2>&1
python3 bench/start.py "$BIN" "$TPORT" "$TAVERN_TOKEN" bench "$ROUNDS"
echo
machine
