#!/usr/bin/env bash
# The proxy benchmark, run on demand (not in CI): wrk against a running
# stand-in world directly, through nginx (1 worker, keepalive pool to the
# upstream) and through Tavern, the two proxies pinned to the same core and
# the load generator and the world to the other. Small responses
# (/api/status), a 5 MB asset, and WebSocket echo. Prints req/s (msgs/s for
# WebSockets) and p99 latency, and the Tavern/nginx ratios.
#
#   bash bench/proxy.sh            # DURATION=10 seconds per run, ROUNDS=3
#   TESTS=small bash bench/proxy.sh   # some of: small asset ws
#   PERF_OUT=/tmp/p.data TESTS=small bash bench/proxy.sh
#                                  # and a perf profile of Tavern under load
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
declare -A M
TESTS=${TESTS:-small asset ws}

need() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  else echo "bench needs $1 (Debian package $2)" >&2; exit 1; fi
}
need wrk wrk
need nginx nginx-light
need taskset util-linux
python3 -c 'import websockets' 2>/dev/null || pip install -q websockets

cargo build --release -q -p tavern
BIN=$PWD/target/release/tavern
WORK=$(mktemp -d)
SERVER_PID= NGINX_PID= STUB_PID=
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  [ -n "$STUB_PID" ] && kill -- "-$STUB_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

# Tavern on core 1, with one world running the stand-in.
export HOME=$WORK TAVERN_RUNTIME_STUB_RELEASE=true TAVERN_RUNTIME_PORT_RANGE=41000-41099
taskset -c 1 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "Tavern is listening" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TPORT=$(sed -n 's/.*Tavern is listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/serve.out")
export TAVERN_SERVER=http://127.0.0.1:$TPORT TAVERN_TOKEN=$(cat "$WORK/data/admin-token")
echo BENCHBENCHBENCHBENCH0000 | "$BIN" license add --label bench --key-stdin >/dev/null
"$BIN" instance create bench --release stub >/dev/null 2>&1
"$BIN" instance start bench >/dev/null
for _ in $(seq 200); do
  "$BIN" instance show bench --json | grep '"state": "running"' >/dev/null && break; sleep 0.1
done
STUB_PID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$WORK/data/instances/bench/server.json")
SPORT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['port'])" "$WORK/data/instances/bench/server.json")
taskset -a -p -c 0 "$STUB_PID" >/dev/null

# nginx on core 1: one worker, a keepalive pool to the world, setting the
# X-Forwarded-* headers Tavern sets (the same work).
NPORT=$((TPORT + 1))
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream world { server 127.0.0.1:$SPORT; keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      proxy_pass http://world;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
    }
  }
}
NGINX
taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5

# wrk on core 0 (with the world); answers "req/s p99_ms".
run_wrk() {
  local out
  out=$(taskset -c 0 wrk -t1 -c"$2" -d"${DURATION}s" --latency -H "Host: bench.localhost" "http://127.0.0.1:$1$3")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p99")"
}
to_ms() {
  python3 -c "import re,sys; v,u=re.match(r'([0-9.]+)(\w+)',sys.argv[1]).groups(); print(f'{float(v)*{\"us\":0.001,\"ms\":1,\"s\":1000}[u]:.2f}')" "$1"
}
run_ws() { taskset -c 0 python3 bench/ws_echo.py 127.0.0.1 "$1" bench.localhost 16 "$DURATION"; }

measure() {
  case $1 in
    small) run_wrk "$2" 32 /api/status ;;
    asset) run_wrk "$2" 8 /_stub/blob/5242880 ;;
    ws) run_ws "$2" ;;
  esac
}

# ROUNDS rounds, the three targets taken in turn within each, so that
# drift on the machine touches all alike; each figure is the median of its
# rounds (rounds printed as they run).
printf '%-14s %-9s %5s %14s %10s\n' test via round "req/s" "p99 ms"
declare -A R
for t in $TESTS; do
  for round in $(seq "$ROUNDS"); do
    for via in direct nginx tavern; do
      case $via in direct) port=$SPORT ;; nginx) port=$NPORT ;; tavern) port=$TPORT ;; esac
      PERF_PID=
      if [ "$via" = tavern ] && [ "$round" = 1 ] && [ -n "${PERF_OUT:-}" ]; then
        perf record -q -F 999 -g -p "$SERVER_PID" -o "$PERF_OUT.$t" -- sleep "$DURATION" >/dev/null 2>&1 &
        PERF_PID=$!
      fi
      r=$(measure "$t" "$port")
      [ -n "$PERF_PID" ] && { wait "$PERF_PID" || true; }
      R[$t.$via]="${R[$t.$via]:-} $r"
      printf '%-14s %-9s %5s %14s %10s\n' "$t" "$via" "$round" $r
    done
  done
done
# "rps p99 rps p99 ..." -> "median_rps median_p99"
median() {
  python3 -c "import statistics,sys; v=list(map(float,sys.argv[1:])); print(f'{statistics.median(v[0::2]):.0f} {statistics.median(v[1::2]):.2f}')" $1
}
echo
echo "Medians of $ROUNDS rounds of ${DURATION} s"
printf '%-14s %-9s %14s %10s\n' test via "req/s" "p99 ms"
for t in $TESTS; do
  for via in direct nginx tavern; do
    M[$t.$via]=$(median "${R[$t.$via]}")
    printf '%-14s %-9s %14s %10s\n' "$t" "$via" ${M[$t.$via]}
  done
done
echo
echo "Tavern / nginx (throughput: higher is better; p99: lower is better)"
for t in $TESTS; do
  read -r tr tp <<<"${M[$t.tavern]}"
  read -r nr np <<<"${M[$t.nginx]}"
  python3 -c "import sys; tr,tp,nr,np=map(float,sys.argv[2:]); print(f'{sys.argv[1]:<8} throughput {tr/nr:.2f}x   p99 {tp/np:.2f}x')" "$t" "$tr" "$tp" "$nr" "$np"
done
echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
