#!/usr/bin/env python3
"""WebSocket echo load: CONNS sockets each send a 64-byte message and wait
for its echo, for SECONDS; prints messages per second and the p99 round
trip in milliseconds. Usage: ws_echo.py HOST PORT HOSTNAME CONNS SECONDS"""
import asyncio
import sys
import time

import websockets


async def one(host, port, name, until, rtts):
    uri = f"ws://{name}:{port}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(uri, host=host, port=port, max_size=None) as ws:
        msg = "x" * 64
        while time.monotonic() < until:
            t = time.perf_counter()
            await ws.send(msg)
            while await ws.recv() != msg:
                pass
            rtts.append(time.perf_counter() - t)


async def main():
    host, port, name, conns, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    rtts = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(one(host, port, name, until, rtts) for _ in range(conns)))
    rtts.sort()
    p99 = rtts[int(len(rtts) * 0.99)] * 1000 if rtts else float("nan")
    print(f"{len(rtts) / seconds:.0f} {p99:.2f}")


asyncio.run(main())
