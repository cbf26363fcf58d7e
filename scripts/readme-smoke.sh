#!/usr/bin/env bash
# The README's first command, run as a newcomer runs it (taken from the
# README itself, so a broken first command fails CI): the demo comes up,
# its world `demo` answers through Tavern's proxy at demo.localhost, the
# dashboard answers at localhost, and the server and its demo world are
# stopped by their pids; then that build, made without the drivers that
# are cargo features, refuses one by name. Its data goes to a temporary
# directory and it listens on a free port (TAVERN_* settings, which the
# command itself does not name).
set -euo pipefail
cd "$(dirname "$0")/.."

# The first indented line of the README is the command.
command=$(grep -m 1 -E '^    [^ ]' README.md | sed 's/^    //')
[[ "$command" == cargo\ run* ]] || { echo "the README's first command is not a cargo run: $command" >&2; exit 1; }

work=$(mktemp -d /tmp/tavern-readme.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pid=""
stop_pid() {
    if [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; then
        kill -s TERM "$1" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -s KILL "$1" 2>/dev/null || true
    fi
}
stop() {
    stop_pid "$pid"
    # Tavern leaves its worlds running when it stops (its next start adopts
    # them): the demo world's server goes by the pid in its pid file.
    stop_pid "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' \
        "$work/data/instances/demo/server.json" 2>/dev/null || true)"
    rm -rf "$work"
}
trap stop EXIT

echo "== the README's first command: $command"
SECONDS=0
# `exec` makes the server the process whose pid we hold once cargo has
# built it: cargo itself execs the binary it runs.
TAVERN_SERVER_DATA_DIR="$work/data" TAVERN_SERVER_LISTEN="127.0.0.1:$port" \
    bash -c "exec $command" >"$work/out.log" 2>&1 &
pid=$!

# The first release build takes minutes; then the demo world starts.
deadline=$((SECONDS + 1800))
until curl -fsL -o /dev/null --resolve "demo.localhost:$port:127.0.0.1" "http://demo.localhost:$port/"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the command exited before the demo world answered:" >&2
        tail -n 40 "$work/out.log" >&2
        exit 1
    fi
    if ((SECONDS > deadline)); then
        echo "the demo world did not answer within 30 minutes:" >&2
        tail -n 40 "$work/out.log" >&2
        exit 1
    fi
    sleep 2
done
body=$(curl -fsSL --resolve "demo.localhost:$port:127.0.0.1" "http://demo.localhost:$port/")
grep -q "Foundry VTT stand-in" <<<"$body" || { echo "demo.localhost did not serve the world: $body" >&2; exit 1; }
status=$(curl -sS -o /dev/null -w '%{http_code}' --resolve "localhost:$port:127.0.0.1" "http://localhost:$port/auth/login")
[[ "$status" == 200 ]] || { echo "the dashboard's sign-in page answered $status" >&2; exit 1; }
grep -q "Demo ready" "$work/out.log" || { echo "the demo did not say it was ready" >&2; exit 1; }
leaders=$(grep -c "replica leads" "$work/out.log" || true)
[[ "$leaders" == 1 ]] || { echo "the leadership line came $leaders times, not once:" >&2; grep "replica leads" "$work/out.log" >&2; exit 1; }
echo "== the demo world answers at demo.localhost:$port after ${SECONDS}s (the build included; leadership lines: $leaders)"

# That build has no driver beyond processes (Docker, Kubernetes, PostgreSQL
# and S3 are cargo features): asked for one, it refuses and says how to get
# a build that has it, and starts nothing.
bin="${CARGO_TARGET_DIR:-target}/release/tavern"
if out=$(TAVERN_RUNTIME_KIND=kubernetes "$bin" serve --data-dir "$work/lean" --listen 127.0.0.1:0 2>&1 </dev/null); then
    echo "the README's build took runtime.kind = \"kubernetes\" without the feature" >&2
    exit 1
fi
grep -q -- "--features kubernetes" <<<"$out" || { echo "the refusal did not name the feature: $out" >&2; exit 1; }
echo "== without the kubernetes feature, runtime.kind = \"kubernetes\" is refused: ${out#*rror: }"
