"""A minimal HTTP/1.1 client on asyncio streams for the soak driver: one connection per request
(`Connection: close`), bodies read by Content-Length, chunked or to the end, SSE events and
JSON-RPC messages read one at a time as they arrive, and an abort that resets the connection (a
client vanishing). No async generators: an answer abandoned half-way is simply closed."""
import asyncio
import json
import socket
import struct


class HttpError(Exception):
    """The exchange failed below HTTP (connect, reset, malformed, cut short)."""


class Response:
    def __init__(self, reader, writer, status, headers):
        self.reader, self.writer = reader, writer
        self.status, self.headers = status, headers
        te = (headers.get("transfer-encoding") or "").lower()
        self._mode = "chunked" if "chunked" in te else "length" if "content-length" in headers else "eof"
        self._left = int(headers.get("content-length") or 0)
        self._done = False
        self._sse = b""
        self._queue = []

    def header(self, name):
        return self.headers.get(name.lower())

    async def chunk(self):
        """The next piece of the body as it arrives; None at its end."""
        if self._done:
            return None
        r = self.reader
        try:
            if self._mode == "chunked":
                line = await r.readline()
                if not line.endswith(b"\n"):
                    raise HttpError("body cut short (chunk size)")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await r.readline()
                    self._done = True
                    return None
                data = await r.readexactly(size + 2)
                return data[:-2]
            if self._mode == "length":
                self._done = True
                return await r.readexactly(self._left) if self._left else None
            data = await r.read(65536)
            if not data:
                self._done = True
                return None
            return data
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
            raise HttpError(f"body cut short: {e!r}") from e

    async def body(self):
        out = b""
        while (c := await self.chunk()) is not None:
            out += c
        return out

    async def json(self):
        b = await self.body()
        try:
            return json.loads(b)
        except ValueError as e:
            raise HttpError(f"not JSON ({b[:80]!r})") from e

    async def event(self):
        """The next SSE event (`event`, `data` parsed as JSON or None, `id`); None at the end."""
        while b"\n\n" not in self._sse:
            c = await self.chunk()
            if c is None:
                return None
            self._sse = (self._sse + c).replace(b"\r\n", b"\n")
        raw, self._sse = self._sse.split(b"\n\n", 1)
        ev = {"event": "message", "data": None, "id": None}
        data = []
        for line in raw.decode("utf-8", "replace").split("\n"):
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "data":
                data.append(v)
            elif k in ("event", "id"):
                ev[k] = v
        if data and "".join(data).strip():
            try:
                ev["data"] = json.loads("\n".join(data))
            except ValueError as e:
                raise HttpError(f"event data not JSON: {data!r}") from e
        return ev

    async def message(self):
        """The next JSON-RPC message of the answer, JSON or SSE; None at the end."""
        ctype = (self.header("content-type") or "").lower()
        if ctype.startswith("text/event-stream"):
            while (ev := await self.event()) is not None:
                if ev["data"] is not None:
                    return ev["data"]
            return None
        if ctype.startswith("application/json"):
            if not self._done:
                v = await self.json()
                self._queue = v if isinstance(v, list) else [v]
            return self._queue.pop(0) if self._queue else None
        b = await self.body()
        if b:
            raise HttpError(f"unexpected content type {ctype!r}")
        return None

    def close(self):
        self.writer.close()

    def abort(self):
        """Vanishes: RST instead of FIN (SO_LINGER 0), no goodbye."""
        sock = self.writer.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.writer.transport.abort()


async def request(port, method, path, headers=None, body=None, timeout=30.0):
    """Sends one request and reads the status and headers; the caller reads the body and closes."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        raise HttpError(f"connect: {e!r}") from e
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {status_line[:60]!r}")
        status = int(parts[1])
        hdrs = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HttpError("headers cut short")
            k, _, v = line.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
    except HttpError:
        writer.close()
        raise
    except (OSError, asyncio.TimeoutError, ValueError) as e:
        writer.close()
        raise HttpError(f"request: {e!r}") from e
    return Response(reader, writer, status, hdrs)
