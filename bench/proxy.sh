#!/usr/bin/env bash
# The proxy benchmark, run on demand (not in CI): wrk against a running
# stand-in world directly, through nginx (1 worker, keepalive pool to the
# upstream) and through Tavern, the two proxies pinned to the same core and
# the load generator and the world to the other. Small responses
# (/api/status), a 5 MB asset, WebSocket echo, and small responses on a
# new connection each (`fresh`), also while 10 000 idle and slow
# connections flood the proxy (`flood`; its RSS is printed after); those
# two only when asked. Prints
# req/s (msgs/s for WebSockets) and p99 latency, and the Tavern/nginx
# ratios.
#
#   bash bench/proxy.sh            # DURATION=10 seconds per run, ROUNDS=3
#   TESTS=small bash bench/proxy.sh   # some of: small asset ws fresh flood
#   CONNS=64 TESTS=small bash bench/proxy.sh   # small responses over 64
#                                  # connections (32 unless set)
#   PERF_OUT=/tmp/p.data TESTS=small bash bench/proxy.sh
#                                  # and a perf profile of Tavern under load
#   BIN=/tmp/tavern-old bash bench/proxy.sh   # another build of Tavern
#   COUNT=1 TESTS=small bash bench/proxy.sh
#                                  # and each proxy's system calls, context
#                                  # switches and TCP segments per request
set -euo pipefail
cd "$(dirname "$0")/.."
# The flood holds 10 000 connections: every process may open what it can.
ulimit -n "$(ulimit -Hn)"
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

# BIN=path measures that build of Tavern instead (to compare two builds).
. bench/common.sh
bench_binary
bench_work

# Tavern on core 1, with one world running the stand-in.
export TAVERN_RUNTIME_PORT_RANGE=41000-41099
start_tavern taskset -c 1
start_world bench
taskset -a -p -c 0 "$STUB_PID" >/dev/null

# nginx on core 1.
NPORT=$(free_port)
start_nginx "listen 127.0.0.1:$NPORT;" taskset -c 1
sleep 0.5
NGINX_WORKER=$(xargs <"/proc/$NGINX_PID/task/$NGINX_PID/children")

# CPU time a process has used so far, in clock ticks: "user system".
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

# wrk on core 0 (with the world); answers "req/s p99_ms". A fourth
# argument is one more request header.
run_wrk() {
  local out extra=()
  [ -n "${4:-}" ] && extra=(-H "$4")
  out=$(taskset -c 0 wrk -t1 -c"$2" -d"${DURATION}s" --latency -H "Host: bench.localhost" "${extra[@]}" "http://127.0.0.1:$1$3")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p99")"
}
to_ms() {
  python3 -c "import re,sys; v,u=re.match(r'([0-9.]+)(\w+)',sys.argv[1]).groups(); print(f'{float(v)*{\"us\":0.001,\"ms\":1,\"s\":1000}[u]:.2f}')" "$1"
}
# COUNT=1: per request, the proxy's system calls (perf's tracepoints) and
# context switches, and the TCP segments sent on the machine (nstat's
# TcpOutSegs: all four legs of a proxied exchange, both proxies alike).
COUNTED=raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,sched:sched_switch
if [ -n "${COUNT:-}" ]; then
  command -v perf >/dev/null || { echo "COUNT=1 needs perf (Debian package linux-perf)" >&2; exit 1; }
  command -v nstat >/dev/null || { echo "COUNT=1 needs nstat (Debian package iproute2)" >&2; exit 1; }
fi
count_line() {
  local segs
  segs=$(nstat | awk '$1 == "TcpOutSegs" {print $2}')
  python3 -c "
import sys
rate, d, segs, path = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3] or 0), sys.argv[4]
n = rate * d
names = {'raw_syscalls:sys_enter': 'syscalls', 'syscalls:sys_enter_recvfrom': 'recvfrom',
         'syscalls:sys_enter_sendto': 'sendto', 'syscalls:sys_enter_writev': 'writev',
         'syscalls:sys_enter_epoll_wait': 'epoll_wait', 'sched:sched_switch': 'switches'}
seen = {}
for line in open(path):
    f = line.strip().split(',')
    if len(f) > 2 and f[0].isdigit() and f[2] in names:
        seen[names[f[2]]] = int(f[0])
print('    per request: ' + '  '.join(f'{k} {v / n:.2f}' for k, v in seen.items()) + f'  TCP segments {segs / n:.2f}')
" "$1" "$DURATION" "$segs" "$WORK/count"
}
run_ws() { taskset -c 0 python3 bench/ws_echo.py 127.0.0.1 "$1" bench.localhost 16 "$DURATION"; }
# 10 000 (FLOOD=N: N) idle and slow connections held against the port (bench/flood.py)
# while wrk asks for small responses, each on a new connection.
run_flood() {
  local flood
  taskset -c 0 python3 bench/flood.py 127.0.0.1 "$1" "${FLOOD:-10000}" $((DURATION + 5)) >"$WORK/flood.out" &
  flood=$!
  for _ in $(seq 300); do grep -q held "$WORK/flood.out" 2>/dev/null && break; sleep 0.1; done
  run_wrk "$1" 8 /api/status "Connection: close"
  kill "$flood" 2>/dev/null || true
  wait "$flood" 2>/dev/null || true
}

measure() {
  case $1 in
    small) run_wrk "$2" "${CONNS:-32}" /api/status ;;
    asset) run_wrk "$2" 8 /_stub/blob/5242880 ;;
    ws) run_ws "$2" ;;
    fresh) run_wrk "$2" 8 /api/status "Connection: close" ;;
    flood) run_flood "$2" ;;
  esac
}

# ROUNDS rounds, the three targets taken in turn within each (the proxies
# in alternating order), so that drift on the machine touches all alike;
# each figure is the median of its rounds (rounds printed as they run).
# The proxy's CPU time is read around each run: its share of its core, the
# kernel's share of that, and its microseconds per request (a steadier
# figure than req/s here).
printf '%-14s %-9s %5s %14s %10s %8s %8s %8s\n' test via round "req/s" "p99 ms" "cpu %" "kernel %" "us/req"
declare -A R C
for t in $TESTS; do
  for round in $(seq "$ROUNDS"); do
    # The two proxies take turns going first, so that a drift in the
    # machine's load within a round favours neither.
    order="direct nginx tavern"
    [ $((round % 2)) = 0 ] && order="direct tavern nginx"
    for via in $order; do
      case $via in direct) port=$SPORT ;; nginx) port=$NPORT ;; tavern) port=$TPORT ;; esac
      PERF_PID=
      if [ "$via" = tavern ] && [ "$round" = 1 ] && [ -n "${PERF_OUT:-}" ]; then
        perf record -q -F 999 -g -p "$SERVER_PID" -o "$PERF_OUT.$t" -- sleep "$DURATION" >/dev/null 2>&1 &
        PERF_PID=$!
      fi
      case $via in direct) cpu_pid= ;; nginx) cpu_pid=$NGINX_WORKER ;; tavern) cpu_pid=$SERVER_PID ;; esac
      [ -n "$cpu_pid" ] && before=$(cpu_ticks "$cpu_pid")
      COUNT_PID=
      if [ -n "${COUNT:-}" ] && [ -n "$cpu_pid" ]; then
        nstat -n >/dev/null
        perf stat -x, -e "$COUNTED" -p "$cpu_pid" -o "$WORK/count" -- sleep "$DURATION" >/dev/null 2>&1 &
        COUNT_PID=$!
      fi
      r=$(measure "$t" "$port")
      cpu="- - -"
      if [ -n "$cpu_pid" ] && [ -n "${r%% *}" ]; then
        cpu=$(python3 -c "
import sys
u0, s0, u1, s1, rps, d, hz = map(float, sys.argv[1:])
t = (u1 - u0 + s1 - s0) / hz
k = 100 * (s1 - s0) / hz / t if t > 0 else 0
print(f'{100*t/d:.0f} {k:.0f} {1e6*t/(rps*d):.1f}' if rps > 0 else '- - -')" \
          $before $(cpu_ticks "$cpu_pid") "${r%% *}" "$DURATION" "$HZ")
      fi
      [ -n "$PERF_PID" ] && { wait "$PERF_PID" || true; }
      counts=
      [ -n "$COUNT_PID" ] && { wait "$COUNT_PID" || true; counts=$(count_line "${r%% *}"); }
      R[$t.$via]="${R[$t.$via]:-} $r"
      C[$t.$via]="${C[$t.$via]:-} ${cpu##* }"
      printf '%-14s %-9s %5s %14s %10s %8s %8s %8s\n' "$t" "$via" "$round" $r $cpu
      [ -n "$counts" ] && echo "$counts"
    done
  done
done
# "rps p99 rps p99 ..." -> "median_rps median_p99"
median() {
  python3 -c "import statistics,sys; v=list(map(float,sys.argv[1:])); print(f'{statistics.median(v[0::2]):.0f} {statistics.median(v[1::2]):.2f}')" $1
}
# "us us ..." -> median (or - for the direct runs, which have no proxy)
median_cpu() {
  python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:] if x != '-']; print(f'{statistics.median(v):.1f}' if v else '-')" $1
}
echo
echo "Medians of $ROUNDS rounds of ${DURATION} s"
printf '%-14s %-9s %14s %10s %8s\n' test via "req/s" "p99 ms" "us/req"
for t in $TESTS; do
  for via in direct nginx tavern; do
    M[$t.$via]="$(median "${R[$t.$via]}") $(median_cpu "${C[$t.$via]}")"
    printf '%-14s %-9s %14s %10s %8s\n' "$t" "$via" ${M[$t.$via]}
  done
done
echo
echo "Tavern / nginx (throughput: higher is better; p99 and CPU per request: lower is better)"
for t in $TESTS; do
  read -r tr tp tc <<<"${M[$t.tavern]}"
  read -r nr np nc <<<"${M[$t.nginx]}"
  python3 -c "
import sys
tr, tp, tc, nr, np, nc = sys.argv[2:]
cpu = f'{float(tc) / float(nc):.2f}x' if '-' not in (tc, nc) else 'n/a'
print(f'{sys.argv[1]:<8} throughput {float(tr) / float(nr):.2f}x   p99 {float(tp) / float(np):.2f}x   cpu/req {cpu}')" \
    "$t" "$tr" "$tp" "$tc" "$nr" "$np" "$nc"
done
case " $TESTS " in *" flood "*)
  echo
  echo "resident memory after the flood: Tavern $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$SERVER_PID/status"), nginx's worker $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$NGINX_WORKER/status")" ;;
esac
echo
machine
