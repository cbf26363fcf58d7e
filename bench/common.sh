# What the benchmarks share (sourced by them, not run): the build of Tavern
# they measure, a work directory removed at exit with every process they
# started (stopped by its pid), a fresh `tavern serve`, and a world running
# the stand-in.

# BIN: the build to measure; the `dist` build with every driver unless set
# (BIN=path compares another build).
bench_binary() {
  if [ -z "${BIN:-}" ]; then
    cargo build --profile dist -q -p tavern --features full
    BIN=$PWD/target/dist/tavern
  fi
}

# WORK: a fresh directory (under $1 when given). At exit, each command given
# to at_exit runs (last first), then the directory goes.
bench_work() {
  WORK=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/tavern-bench.XXXXXX")
  AT_EXIT=()
  trap bench_cleanup EXIT
}
at_exit() { AT_EXIT=("$1" "${AT_EXIT[@]}"); }
bench_cleanup() {
  local c
  for c in "${AT_EXIT[@]}"; do eval "$c" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$WORK"
}

# start_tavern [COMMAND …]: `tavern serve` on a loopback port with its data
# in $WORK/data, run through COMMAND when given (`taskset -c 1`,
# `env TAVERN_TLS_MODE=files …`). Sets SERVER_PID and TPORT, and exports
# what the command line needs (TAVERN_SERVER, over TLS by the name
# `localhost` for the certificate's sake, and TAVERN_TOKEN). It waits
# START_TRIES tenths of a second (100) for Tavern to listen.
start_tavern() {
  export HOME=$WORK TAVERN_RUNTIME_STUB_RELEASE=true
  "$@" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/serve.out" 2>"$WORK/serve.log" &
  SERVER_PID=$!
  at_exit "kill $SERVER_PID"
  local _
  for _ in $(seq "${START_TRIES:-100}"); do grep -q "Tavern is listening" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  local url
  url=$(sed -n 's/.*Tavern is listening on \(https\{0,1\}:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/serve.out")
  [ -n "$url" ] || { echo "Tavern did not start:"; cat "$WORK/serve.out" "$WORK/serve.log"; exit 1; }
  TPORT=${url##*:}
  TAVERN_SERVER=$url
  [ "${url%%:*}" = https ] && TAVERN_SERVER=${url/127.0.0.1/localhost}
  TAVERN_TOKEN=$(cat "$WORK/data/admin-token")
  export TAVERN_SERVER TAVERN_TOKEN
}

# start_world SLUG: a key and a world of the stand-in, started and running.
# Sets STUB_PID (its process group is stopped at exit) and SPORT.
start_world() {
  echo BENCHBENCHBENCHBENCH0000 | "$BIN" license add --label bench --key-stdin >/dev/null
  "$BIN" instance create "$1" --release stub >/dev/null 2>&1
  "$BIN" instance start "$1" >/dev/null
  local _
  for _ in $(seq 200); do
    "$BIN" instance show "$1" --json | grep '"state": "running"' >/dev/null && break
    sleep 0.1
  done
  local server=$WORK/data/instances/$1/server.json
  STUB_PID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$server")
  SPORT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['port'])" "$server")
  at_exit "kill -- -$STUB_PID"
}

# start_nginx SERVER_LINES [COMMAND …]: nginx (one worker, in the
# foreground) in front of the world at SPORT, as Tavern would be put behind
# it: a keepalive pool to the world, the X-Forwarded-* headers Tavern sets
# (the same work), WebSockets upgraded; SERVER_LINES say where it listens
# (and its TLS). Run through COMMAND when given. Sets NGINX_PID.
start_nginx() {
  local lines=$1
  shift
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $(($(ulimit -n) - 100)); }
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
    $lines
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
  "$@" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
  NGINX_PID=$!
  at_exit "kill $NGINX_PID"
}

# A loopback port free right now (for a peer that cannot be told port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The machine the figures were taken on.
machine() {
  echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), $(uname -r)"
}
