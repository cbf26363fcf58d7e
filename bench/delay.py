#!/usr/bin/env python3
"""A TCP relay that holds every byte DELAY_MS milliseconds in each
direction, for bench/world-load.sh: the kernel's netem would do this, but
not every kernel has it. A new connection waits one round trip before its
bytes flow, as TCP's handshake would make it; after that the relay reads
as fast as the sender writes and hands each chunk on DELAY_MS later, so a
request and its answer cost one round trip more, and a stream keeps its
throughput. (The link's bandwidth is capped by the kernel, tc tbf, on the
clients' side.)

Usage: delay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
"""
import asyncio
import sys
import time


async def carry(reader, writer, delay):
    """Hands what `reader` gives to `writer`, each chunk `delay` s later."""
    queue = asyncio.Queue()

    async def take():
        while True:
            data = await reader.read(256 * 1024)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                return

    async def give():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(take(), give())
    except (ConnectionError, OSError):
        pass


async def main():
    listen_host, listen_port, host, port, delay_ms = sys.argv[1:6]
    delay = float(delay_ms) / 1000

    async def relay(client_reader, client_writer):
        # TCP's handshake: one round trip before the client's first byte
        # can reach the server.
        await asyncio.sleep(2 * delay)
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            carry(client_reader, server_writer, delay),
            carry(server_reader, client_writer, delay),
        )
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(relay, listen_host, int(listen_port), backlog=1024)
    print("relaying", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
