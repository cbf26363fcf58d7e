#!/usr/bin/env bash
# The import benchmark, run on demand (not in CI): Tavern importing a
# generated Foundry user-data folder (mostly assets, as real ones are:
# maps, tokens, music; a world of small LevelDB files; a few modules)
# against `cp -a` of the same folder on the same disk. Prints the seconds
# and MB/s of each, the ratio (goal: Tavern at least 0.8x cp -a), and the
# peak memory (VmHWM) of the Tavern server.
#
#   bash bench/import.sh                  # SIZE_MB=2048 of assets, RUNS=3
#   SIZE_MB=300 RUNS=1 bash bench/import.sh
#   BIN=target/debug/tavern bash bench/import.sh   # another build of Tavern
#   UPLOAD=1 bash bench/import.sh         # also sent through the API, as
#                                         # a folder from the CLI (a tar made
#                                         # on the way, over loopback)
#
# As root, the page cache is dropped before each run, so both read from
# the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-2048}
RUNS=${RUNS:-3}
. bench/common.sh
bench_binary
# On the disk (not a tmpfs /tmp): the folder is gigabytes.
bench_work "${TMPDIR:-/var/tmp}"

# The folder: assets of 1 to 8 MB, a world of many small files, modules.
SRC=$WORK/source/data
echo "making a ${SIZE_MB} MB user-data folder in $SRC"
mkdir -p "$SRC/Config" "$SRC/Data/assets" "$SRC/Logs"
echo '{"port":30000,"dataPath":"/data"}' >"$SRC/Config/options.json"
made=0 n=0
while [ "$made" -lt "$SIZE_MB" ]; do
  mb=$((1 + n % 8))
  head -c $((mb * 1024 * 1024)) /dev/urandom >"$SRC/Data/assets/map-$n.webp"
  made=$((made + mb)) n=$((n + 1))
done
W=$SRC/Data/worlds/bench-world
mkdir -p "$W/data"
echo '{"id":"bench-world","title":"Bench","system":"dnd5e","coreVersion":"13.351"}' >"$W/world.json"
for c in actors items scenes journal; do
  mkdir -p "$W/data/$c"
  for i in $(seq 1 200); do head -c 16384 /dev/urandom >"$W/data/$c/$(printf '%06d' "$i").ldb"; done
done
for m in $(seq 1 20); do
  mkdir -p "$SRC/Data/modules/mod-$m/scripts"
  echo "{\"id\":\"mod-$m\",\"version\":\"1.0.$m\"}" >"$SRC/Data/modules/mod-$m/module.json"
  for i in $(seq 1 50); do head -c 4096 /dev/urandom >"$SRC/Data/modules/mod-$m/scripts/s$i.js"; done
done
BYTES=$(du -sb "$SRC" | cut -f1)

start_tavern

drop() {
  sync
  if [ "$(id -u)" = 0 ]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}
# Seconds a command takes.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

CP=() TAV=() UP=()
for r in $(seq 1 "$RUNS"); do
  drop
  CP+=("$(timed cp -a "$SRC" "$WORK/copy-$r")")
  rm -rf "$WORK/copy-$r"
  drop
  TAV+=("$(timed "$BIN" instance import "server-$r" --from "$SRC" --on-server)")
  if [ -n "${UPLOAD:-}" ]; then
    drop
    UP+=("$(timed "$BIN" instance import "upload-$r" --from "$SRC")")
  fi
done
cp_s=$(median "${CP[@]}")
tav_s=$(median "${TAV[@]}")
mbps() { echo "$BYTES / 1048576 / $1" | bc -l; }
printf '%-28s %8.2f s %8.1f MB/s\n' "cp -a" "$cp_s" "$(mbps "$cp_s")"
printf '%-28s %8.2f s %8.1f MB/s\n' "tavern import --on-server" "$tav_s" "$(mbps "$tav_s")"
if [ -n "${UPLOAD:-}" ]; then
  up_s=$(median "${UP[@]}")
  printf '%-28s %8.2f s %8.1f MB/s\n' "tavern import (upload)" "$up_s" "$(mbps "$up_s")"
fi
printf 'ratio (tavern speed / cp -a speed): %.2f (goal >= 0.8)\n' "$(echo "$cp_s / $tav_s" | bc -l)"
echo "tavern serve peak memory: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER_PID/status") for $((BYTES / 1048576)) MB imported $RUNS time(s)"
