#!/usr/bin/env bash
# Tavern's memory at rest, run on demand (not in CI): `tavern serve` on a
# fresh data directory, its resident memory (VmRSS, and its anonymous and
# file-backed parts) and threads after SETTLE=10 seconds with no world,
# then again with WORLDS=100 stopped worlds, per world.
#
#   bash bench/idle.sh
#   BIN=/tmp/tavern-old bash bench/idle.sh   # another build of Tavern
set -euo pipefail
cd "$(dirname "$0")/.."
SETTLE=${SETTLE:-10}
WORLDS=${WORLDS:-100}
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

# "rss anon file threads" in KB.
memory() {
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^Threads/ {t=$2} END {print r, a, f, t}' "/proc/$SERVER_PID/status"
}
sleep "$SETTLE"
read -r r0 a0 f0 t0 <<<"$(memory)"
printf '%-16s %10s %10s %10s %8s\n' "" "RSS MB" "anon MB" "file MB" threads
row() { awk -v n="$1" -v r="$2" -v a="$3" -v f="$4" -v t="$5" 'BEGIN {printf "%-16s %10.1f %10.1f %10.1f %8s\n", n, r/1024, a/1024, f/1024, t}'; }
row "no world" "$r0" "$a0" "$f0" "$t0"
for i in $(seq "$WORLDS"); do
  "$BIN" instance create "idle-$i" --release stub >/dev/null 2>&1
done
sleep "$SETTLE"
read -r r1 a1 f1 t1 <<<"$(memory)"
row "$WORLDS worlds" "$r1" "$a1" "$f1" "$t1"
echo "per world: $(( (r1 - r0) / WORLDS )) KB"
echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
