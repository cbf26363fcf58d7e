#!/usr/bin/env python3
"""Loads URL once in a fresh headless Chromium (a new profile: nothing
cached, no connection kept) through its DevTools protocol, for
bench/world-load.sh, and prints one JSON line: the page's load event in
milliseconds from navigation start (the Navigation Timing
`loadEventStart`), how many resources it fetched, their bytes, the
protocols they came over (`nextHopProtocol`), and why any failed
(`Network.loadingFailed`).

Usage: world_load.py URL RESOLVER_RULES [--http1]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.sync.client import connect

# Read after the load event: what the page's Navigation and Resource Timing
# say.
MEASURE = """JSON.stringify((() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const protocols = {};
  for (const r of res) protocols[r.nextHopProtocol] = (protocols[r.nextHopProtocol] || 0) + 1;
  protocols[nav.nextHopProtocol] = (protocols[nav.nextHopProtocol] || 0) + 1;
  return {load_ms: nav.loadEventStart, resources: res.length,
          bytes: res.reduce((n, r) => n + r.encodedBodySize, 0), protocols};
})())"""


class DevTools:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        # Why requests failed (Network.loadingFailed's errorText), counted.
        self.failed = {}

    def call(self, method, params=None, wait_for=None, timeout=120):
        """Sends a command; returns its result, or (with `wait_for`) the
        first event of that name after it."""
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params or {}}))
        until = time.monotonic() + timeout
        result = None
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, until - time.monotonic())))
            if message.get("id") == me:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result = message.get("result")
                if wait_for is None:
                    return result
            elif message.get("method") == "Network.loadingFailed":
                why = message["params"].get("errorText", "?")
                self.failed[why] = self.failed.get(why, 0) + 1
            elif wait_for is not None and message.get("method") == wait_for:
                return message.get("params")


def main():
    url, rules = sys.argv[1], sys.argv[2]
    http1 = "--http1" in sys.argv[3:]
    profile = tempfile.mkdtemp(prefix="world-load-")
    args = [
        "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
        "--ignore-certificate-errors", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update",
        f"--host-resolver-rules={rules}", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "about:blank",
    ]
    if http1:
        args.insert(1, "--disable-http2")
    browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = os.path.join(profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(active) and open(active).read().count("\n") >= 1:
                break
            time.sleep(0.1)
        port = open(active).read().split("\n")[0]
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            tools = DevTools(ws)
            tools.call("Page.enable")
            tools.call("Network.enable")
            # The Resource Timing buffer holds 250 entries by default.
            tools.call("Page.addScriptToEvaluateOnNewDocument",
                       {"source": "performance.setResourceTimingBufferSize(10000)"})
            tools.call("Page.navigate", {"url": url}, wait_for="Page.loadEventFired")
            answer = tools.call("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True})
            measured = json.loads(answer["result"]["value"])
            measured["failed"] = tools.failed
            print(json.dumps(measured), flush=True)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
