"""Holds a flood of idle and slow connections against a proxy, for
bench/proxy.sh's `flood` test: COUNT connections from 40 loopback
addresses (127.0.1.1-40), half silent, half sending the start of a request
head and no more; one the proxy closes is opened again, so the pressure
stays. Prints "held N" once the first round is open, then runs for SECONDS.

    python3 bench/flood.py HOST PORT COUNT SECONDS
"""

import asyncio
import sys

HEAD = b"GET /api/status HTTP/1.1\r\nHost: bench.localhost\r\nX-Slow: "


async def hold(host, port, source, slow, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0)
            )
        except OSError:
            await asyncio.sleep(0.5)
            continue
        if slow:
            writer.write(HEAD)
        try:
            # Wait until the proxy closes it (or the flood ends).
            done = asyncio.ensure_future(reader.read(1 << 16))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({done, stopping}, return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            stopping.cancel()
        finally:
            writer.close()


async def main(host, port, count, seconds):
    stop = asyncio.Event()
    tasks = []
    for i in range(count):
        source = f"127.0.1.{i % 40 + 1}"
        tasks.append(asyncio.create_task(hold(host, port, source, i % 2 == 1, stop)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    print(f"held {count}", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    h, p, n, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    asyncio.run(main(h, p, n, s))
