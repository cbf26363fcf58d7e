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

. bench/common.sh
bench_binary
bench_work
NS=tavern-wl-$$
HOST_IF=twl$$a NS_IF=twl$$b

# One certificate for both proxies: a server's, not a CA's (an empty
# configuration: only the extensions named here), which the command line
# trusts through TAVERN_CA_FILE.
printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$WORK/openssl.cnf"
openssl req -x509 -config "$WORK/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:*.localhost" \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# Tavern with TLS from those files, and one world running the stand-in.
export TAVERN_RUNTIME_PORT_RANGE=42000-42099 TAVERN_CA_FILE=$WORK/cert.pem
start_tavern env TAVERN_TLS_MODE=files TAVERN_TLS_CERT_FILE="$WORK/cert.pem" \
  TAVERN_TLS_KEY_FILE="$WORK/key.pem" TAVERN_TLS_HTTP_LISTEN=127.0.0.1:0
start_world bench

# nginx with HTTP/2, one worker, as Tavern would be set up behind it.
NPORT=$(free_port)
start_nginx "listen 127.0.0.1:$NPORT ssl http2; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.3;"

# The clients' network: a namespace joined by a veth pair, the bandwidth
# capped both ways, and a delaying relay in front of each proxy.
ip netns add "$NS"
at_exit "ip netns del $NS; ip link del $HOST_IF"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
ip addr add 10.213.0.1/30 dev "$HOST_IF"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add 10.213.0.2/30 dev "$NS_IF"
ip netns exec "$NS" ip link set "$NS_IF" up
ip netns exec "$NS" ip link set lo up
# IPv4 only in the namespace: an IPv6 address settling on the new link
# would show Chromium a network change mid-load (net::ERR_NETWORK_CHANGED).
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
tc qdisc add dev "$HOST_IF" root tbf rate "$RATE" burst 256kb latency 500ms
ip netns exec "$NS" tc qdisc add dev "$NS_IF" root tbf rate "$RATE" burst 256kb latency 500ms
relay() {
  python3 bench/delay.py 10.213.0.1 "$1" 127.0.0.1 "$2" "$((RTT_MS / 2))" >"$WORK/relay.$1" 2>&1 &
  at_exit "kill $!"
  for _ in $(seq 50); do grep -q relaying "$WORK/relay.$1" 2>/dev/null && return; sleep 0.1; done
  echo "the relay on $1 did not start" >&2; exit 1
}
relay 8443 "$TPORT"
relay 9443 "$NPORT"
curl -sfk --resolve "bench.localhost:$NPORT:127.0.0.1" "https://bench.localhost:$NPORT/_stub/world-load" >/dev/null ||
  { echo "nginx does not reach the world"; cat "$WORK/nginx/error.log"; exit 1; }

# One load; prints "ms resources bytes protocols [why requests failed]".
load() {
  local port=$1 flag=${2:-}
  ip netns exec "$NS" python3 bench/world_load.py "https://bench.localhost:$port/_stub/world-load" \
    "MAP bench.localhost 10.213.0.1" $flag |
    python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
protocols = ','.join(f'{k or \"none\"}:{v}' for k, v in sorted(r['protocols'].items()))
failed = ' '.join(f'{k}:{v}' for k, v in r['failed'].items())
print(f\"{r['load_ms']:.0f} {r['resources']} {r['bytes']} {protocols} {failed}\")"
}
# A load counts when it is whole: every resource came, all of it (WHOLE
# bytes), over the protocol asked for. Loads that are not are shown with
# why, and left out of the medians.
WHOLE=$(curl -sfk --resolve "bench.localhost:$NPORT:127.0.0.1" "https://bench.localhost:$NPORT/_stub/world-load" |
  grep -o 'asset/[0-9]*' | cut -d/ -f2 | paste -sd+ | python3 -c 'import sys; print(eval(sys.stdin.read()))')

# One load first, not counted: the link and the proxies' first connections
# to the world settle.
load 8443 >/dev/null
printf '%-8s %-9s %5s %9s %10s %8s  %s\n' via protocol round "load ms" resources MB protocols
declare -A T N
for round in $(seq "$ROUNDS"); do
  order="tavern nginx"
  [ $((round % 2)) = 0 ] && order="nginx tavern"
  for via in $order; do
    case $via in tavern) port=8443 ;; nginx) port=9443 ;; esac
    for proto in h2 h1; do
      flag= expect=h2:300
      [ "$proto" = h1 ] && flag=--http1 expect=http/1.1:300
      read -r ms n bytes protocols failed <<<"$(load "$port" $flag)"
      note=
      if [ "$bytes" = "$WHOLE" ] && [ "$protocols" = "$expect" ]; then
        T[$via.$proto]="${T[$via.$proto]:-} $ms"
        N[$via.$proto]=$((${N[$via.$proto]:-0} + 1))
      else
        note="  NOT WHOLE, left out ${failed}"
      fi
      printf '%-8s %-9s %5s %9s %10s %8.1f  %s%s\n' "$via" "$proto" "$round" "$ms" "$n" \
        "$(python3 -c "print($bytes / 1e6)")" "$protocols" "$note"
    done
  done
done
for k in tavern.h2 nginx.h2 tavern.h1 nginx.h1; do
  [ -n "${T[$k]:-}" ] || { echo "no whole load through $k"; exit 1; }
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" $1; }
echo
echo "Medians of the whole loads of $ROUNDS, RTT ${RTT_MS} ms, ${RATE} both ways"
for k in tavern.h2 nginx.h2 tavern.h1 nginx.h1; do
  printf '%-10s %8s ms   (%s whole)\n' "$k" "$(median "${T[$k]}")" "${N[$k]}"
done
python3 -c "
import sys
th2, nh2, th1, nh1 = map(float, sys.argv[1:])
print(f'Tavern HTTP/2 / nginx HTTP/2     {th2 / nh2:.2f}x   (goal <= 1.0)')
print(f'Tavern HTTP/2 / Tavern HTTP/1.1  {th2 / th1:.2f}x   (goal <= 0.5)')
print(f'Tavern HTTP/1.1 / nginx HTTP/1.1 {th1 / nh1:.2f}x')" \
  "$(median "${T[tavern.h2]}")" "$(median "${T[nginx.h2]}")" "$(median "${T[tavern.h1]}")" "$(median "${T[nginx.h1]}")"
echo
machine
