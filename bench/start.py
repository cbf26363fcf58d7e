#!/usr/bin/env python3
"""Tavern's own share of a start, for bench/start.sh: ROUNDS times, the
stand-in spawned by hand and asked for /api/status every millisecond until
it answers (its own start); ROUNDS times, `POST .../start` through the API
and the world asked the same through Tavern's proxy until the world itself
answers (not the standby page), then stopped again. Prints each figure, the
medians, and their difference: Tavern's share.

Usage: start.py BIN TAVERN_PORT TOKEN SLUG ROUNDS
"""
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN, PORT, TOKEN, SLUG, ROUNDS = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
HOST = f"{SLUG}.localhost"


def ask(port, path, host="localhost", method="GET", token=None):
    """(status, body) of one request on a new connection; (0, b"") when
    nothing answers."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        c.request(method, path, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""
    finally:
        c.close()


def answers_as_foundry(status, body):
    if status != 200:
        return False
    try:
        return "version" in json.loads(body)
    except ValueError:
        return False


def until_foundry_answers(port, host, since, limit=30):
    while time.monotonic() - since < limit:
        if answers_as_foundry(*ask(port, "/api/status", host)):
            return time.monotonic() - since
        time.sleep(0.001)
    raise SystemExit(f"{host} did not answer within {limit} s")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def own_start():
    """The stand-in spawned as the process runtime spawns it."""
    data = tempfile.mkdtemp(prefix="start-bench-")
    port = free_port()
    since = time.monotonic()
    stub = subprocess.Popen(
        [BIN, "foundry-stub", f"--dataPath={data}", f"--port={port}", "--noupnp", "--noupdate"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": os.environ["PATH"], "HOME": data},
    )
    try:
        return until_foundry_answers(port, "localhost", since)
    finally:
        stub.terminate()
        stub.wait()
        shutil.rmtree(data, ignore_errors=True)


def state():
    status, body = ask(PORT, f"/api/v1/instances/{SLUG}", token=TOKEN)
    assert status == 200, (status, body)
    return json.loads(body)["state"]


def through_tavern():
    since = time.monotonic()
    status, body = ask(PORT, f"/api/v1/instances/{SLUG}/start", method="POST", token=TOKEN)
    assert status == 202, (status, body)
    took = until_foundry_answers(PORT, HOST, since)
    status, body = ask(PORT, f"/api/v1/instances/{SLUG}/stop", method="POST", token=TOKEN)
    assert status == 202, (status, body)
    for _ in range(3000):
        if state() == "stopped":
            break
        time.sleep(0.01)
    else:
        raise SystemExit(f"{SLUG} did not stop")
    # Its key is handed back once the stop is confirmed.
    time.sleep(0.2)
    return took


own = [own_start() for _ in range(ROUNDS)]
print("the stand-in's own start, ms:", " ".join(f"{1000 * t:.1f}" for t in own))
total = [through_tavern() for _ in range(ROUNDS)]
print("POST start to the world answering through the proxy, ms:", " ".join(f"{1000 * t:.1f}" for t in total))
o, t = statistics.median(own), statistics.median(total)
print()
print(f"medians of {ROUNDS}: the stand-in's own start {1000 * o:.1f} ms, through Tavern {1000 * t:.1f} ms")
print(f"Tavern's share of a start: {1000 * (t - o):.1f} ms   (goal <= 50 ms)")
