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
. bench/common.sh
bench_binary
bench_work
start_tavern

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
machine
