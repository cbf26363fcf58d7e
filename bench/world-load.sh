#!/usr/bin/env bash
# The world-load benchmark, run on demand (not in CI): a page like
# Foundry's game page (the stand-in's /_stub/world-load: one HTML page and
# 299 assets, 17 MB) loaded by a fresh headless Chromium each time, through
# Tavern's TLS listener and through nginx (same certificate, `http2` on,
# keepalive pool to the world), each over HTTP/2 and over HTTP/1.1
# (Chromium's --disable-http2), from a network namespace this script makes
# whose link has RTT_MS of round-trip delay and a RATE bandwidth cap.
# Prints each load's time (the page's load event), the medians, and the
# ratios the project holds itself to: Tavern over HTTP/2 against nginx over
# HTTP/2, and against Tavern over HTTP/1.1.
#
#   sudo bash bench/world-load.sh          # ROUNDS=5, RTT_MS=50, RATE=100mbit
#   RTT_MS=100 RATE=50mbit bash bench/world-load.sh
#   BIN=/tmp/tavern-old bash bench/world-load.sh   # another build of Tavern
#
# Needs root (network namespaces, tc). The delay is added by bench/delay.py,
# a relay in user space, since not every kernel has netem (this machine's
# has none); the bandwidth cap is the kernel's tc tbf.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
RTT_MS=${RTT_MS:-50}
RATE=${RATE:-100mbit}
[ "$(id -u)" = 0 ] || { echo "world-load.sh needs root (network namespaces and tc)" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null && return
  apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
}
need nginx nginx-light
need chromium chromium
need openssl openssl
need ip iproute2
python3 -c 'import websockets.sync.client' 2>/dev/null ||
  python3 -m pip install -q websockets || python3 -m pip install -q --break-system-packages websockets

if [ -z "${BIN:-}" ]; then
  cargo build --profile dist -q -p tavern --features full
  BIN=$PWD/target/dist/tavern
fi
WORK=$(mktemp -d)
NS=tavern-wl-$$
HOST_IF=twl$$a NS_IF=twl$$b
SERVER_PID= NGINX_PID= STUB_PID= RELAYS=()
cleanup() {
  for p in "${RELAYS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  [ -n "$STUB_PID" ] && kill -- "-$STUB_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

# One certificate for both proxies: a server's, not a CA's (an empty
# configuration: only the extensions named here), which the command line
# trusts through TAVERN_CA_FILE.
printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$WORK/openssl.cnf"
openssl req -x509 -config "$WORK/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:*.localhost" \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# Tavern with TLS from those files, and one world running the stand-in.
export HOME=$WORK TAVERN_RUNTIME_STUB_RELEASE=true TAVERN_RUNTIME_PORT_RANGE=42000-42099
TAVERN_TLS_MODE=files TAVERN_TLS_CERT_FILE=$WORK/cert.pem TAVERN_TLS_KEY_FILE=$WORK/key.pem \
  TAVERN_TLS_HTTP_LISTEN=127.0.0.1:0 \
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "Tavern is listening" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TPORT=$(sed -n 's/.*Tavern is listening on https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/serve.out")
[ -n "$TPORT" ] || { echo "Tavern did not start:"; cat "$WORK/serve.out" "$WORK/serve.log"; exit 1; }
export TAVERN_SERVER=https://localhost:$TPORT TAVERN_TOKEN=$(cat "$WORK/data/admin-token")
export TAVERN_CA_FILE=$WORK/cert.pem
echo BENCHBENCHBENCHBENCH0000 | "$BIN" license add --label bench --key-stdin >/dev/null
"$BIN" instance create bench --release stub >/dev/null 2>&1
"$BIN" instance start bench >/dev/null
for _ in $(seq 200); do
  "$BIN" instance show bench --json | grep '"state": "running"' >/dev/null && break; sleep 0.1
done
STUB_PID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$WORK/data/instances/bench/server.json")
SPORT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['port'])" "$WORK/data/instances/bench/server.json")

# nginx with HTTP/2, one worker, as Tavern would be set up behind it.
NPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
  server {
    listen 127.0.0.1:$NPORT ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://world;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!

# The clients' network: a namespace joined by a veth pair, the bandwidth
# capped both ways, and a delaying relay in front of each proxy.
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
ip addr add 10.213.0.1/30 dev "$HOST_IF"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add 10.213.0.2/30 dev "$NS_IF"
ip netns exec "$NS" ip link set "$NS_IF" up
ip netns exec "$NS" ip link set lo up
tc qdisc add dev "$HOST_IF" root tbf rate "$RATE" burst 256kb latency 500ms
ip netns exec "$NS" tc qdisc add dev "$NS_IF" root tbf rate "$RATE" burst 256kb latency 500ms
relay() {
  python3 bench/delay.py 10.213.0.1 "$1" 127.0.0.1 "$2" "$((RTT_MS / 2))" >"$WORK/relay.$1" 2>&1 &
  RELAYS+=($!)
  for _ in $(seq 50); do grep -q relaying "$WORK/relay.$1" 2>/dev/null && return; sleep 0.1; done
  echo "the relay on $1 did not start" >&2; exit 1
}
relay 8443 "$TPORT"
relay 9443 "$NPORT"
curl -sfk --resolve "bench.localhost:$NPORT:127.0.0.1" "https://bench.localhost:$NPORT/_stub/world-load" >/dev/null ||
  { echo "nginx does not reach the world"; cat "$WORK/nginx/error.log"; exit 1; }

# One load; prints "ms resources MB protocols".
load() {
  local port=$1 flag=${2:-}
  ip netns exec "$NS" python3 bench/world_load.py "https://bench.localhost:$port/_stub/world-load" \
    "MAP bench.localhost 10.213.0.1" $flag |
    python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"{r['load_ms']:.0f} {r['resources']} {r['bytes'] / 1e6:.1f} {','.join(f'{k}:{v}' for k, v in sorted(r['protocols'].items()))}\")"
}

printf '%-8s %-9s %5s %9s %10s %8s  %s\n' via protocol round "load ms" resources MB protocols
declare -A T
for round in $(seq "$ROUNDS"); do
  order="tavern nginx"
  [ $((round % 2)) = 0 ] && order="nginx tavern"
  for via in $order; do
    case $via in tavern) port=8443 ;; nginx) port=9443 ;; esac
    for proto in h2 h1; do
      flag=
      [ "$proto" = h1 ] && flag=--http1
      r=$(load "$port" $flag)
      T[$via.$proto]="${T[$via.$proto]:-} ${r%% *}"
      printf '%-8s %-9s %5s %9s %10s %8s  %s\n' "$via" "$proto" "$round" $r
    done
  done
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" $1; }
echo
echo "Medians of $ROUNDS loads, RTT ${RTT_MS} ms, ${RATE} both ways"
for k in tavern.h2 nginx.h2 tavern.h1 nginx.h1; do
  printf '%-10s %8s ms\n' "$k" "$(median "${T[$k]}")"
done
python3 -c "
import sys
th2, nh2, th1, nh1 = map(float, sys.argv[1:])
print(f'Tavern HTTP/2 / nginx HTTP/2     {th2 / nh2:.2f}x   (goal <= 1.0)')
print(f'Tavern HTTP/2 / Tavern HTTP/1.1  {th2 / th1:.2f}x   (goal <= 0.5)')
print(f'Tavern HTTP/1.1 / nginx HTTP/1.1 {th1 / nh1:.2f}x')" \
  "$(median "${T[tavern.h2]}")" "$(median "${T[nginx.h2]}")" "$(median "${T[tavern.h1]}")" "$(median "${T[nginx.h1]}")"
echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
