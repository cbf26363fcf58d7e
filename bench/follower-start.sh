#!/usr/bin/env bash
# A start asked of a follower replica, run on demand (not in CI): two
# Taverns on one PostgreSQL database and the tests' fake Kubernetes cluster
# (its kubelet runs the stand-in on loopback), electing a leader by a Lease;
# ROUNDS=10 starts asked of the follower, each timed until the leader has
# the world `starting` and until it answers through the follower's proxy.
# The periodic pass is set to 10 minutes, so what is measured is the
# replicas' notices through the store.
#
#   bash bench/follower-start.sh          # a PostgreSQL of its own on loopback
#   TEST_POSTGRES_URL=postgres://… bash bench/follower-start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export ROUNDS=${ROUNDS:-10}
if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$pg/initdb" ] || { echo "needs PostgreSQL (Debian package postgresql) or TEST_POSTGRES_URL" >&2; exit 1; }
  dir=$(mktemp -d)
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; as_pg=(runuser -u postgres --); fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  trap '"${as_pg[@]}" "$pg/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  "${as_pg[@]}" "$pg/initdb" -A trust -U tavern --no-sync -D "$dir/data" >/dev/null
  "${as_pg[@]}" "$pg/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null
  psql -q -h 127.0.0.1 -p "$port" -U tavern -d postgres -c "CREATE DATABASE bench"
  psql -q -h 127.0.0.1 -p "$port" -U tavern -d bench -c "CREATE EXTENSION btree_gist"
  export TEST_POSTGRES_URL="postgres://tavern@127.0.0.1:$port/bench"
fi
cargo test -q -p tavern --features full --test it -- --ignored --exact \
  kubernetes::follower_start_benchmark --nocapture 2>&1 | grep -E "^follower start"
echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
