#!/usr/bin/env python3
"""A stand-in for the mcpgate binary, used only to test the peer harness itself.

Usage: standin_gateway.py -c CONFIG.yaml [--break-get]

Reads the few keys the harness writes (listen, admin, the first endpoint's first host),
forwards every TCP connection on `listen` to that host byte for byte (so it is transparent by
construction), and answers GET /readyz and /healthz with 200 on `admin`.

--break-get answers every HTTP GET on `listen` with 405 instead of forwarding it: a broken
"gateway" that loses the SSE GET stream, to check that the harness reports regressions.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys


def parse_config(path: str) -> tuple[str, int, str, int, str, int]:
    text = open(path, encoding="utf-8").read()

    def addr(key: str) -> tuple[str, int]:
        m = re.search(rf"^{key}:\s*([0-9.]+):(\d+)\s*$", text, re.M)
        if not m:
            sys.exit(f"standin: no '{key}: HOST:PORT' in {path}")
        return m.group(1), int(m.group(2))

    m = re.search(r"hosts:\s*\[\s*http://([0-9.]+):(\d+)", text)
    if not m:
        sys.exit(f"standin: no 'hosts: [http://HOST:PORT]' in {path}")
    return (*addr("listen"), *addr("admin"), m.group(1), int(m.group(2)))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", "--conf", required=True)
    ap.add_argument("--break-get", action="store_true")
    args = ap.parse_args()
    lhost, lport, ahost, aport, uhost, uport = parse_config(args.conf)

    async def proxy(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            if args.break_get:
                head = await cr.read(4)
                if head == b"GET ":
                    cw.write(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    await cw.drain()
                    cw.close()
                    return
            else:
                head = b""
            ur, uw = await asyncio.open_connection(uhost, uport)
            uw.write(head)
            await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
        except OSError:
            pass
        finally:
            cw.close()

    async def admin(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        line = await r.readline()
        ok = line.split(b" ")[1:2] in ([b"/readyz"], [b"/healthz"])
        body = b"ok\n" if ok else b"not found\n"
        status = b"200 OK" if ok else b"404 Not Found"
        w.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await w.drain()
        w.close()

    s1 = await asyncio.start_server(proxy, lhost, lport)
    s2 = await asyncio.start_server(admin, ahost, aport)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"standin: {lhost}:{lport} -> {uhost}:{uport}, admin {ahost}:{aport}", file=sys.stderr, flush=True)
    async with s1, s2:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
