"""Peer client on the Python SDK `mcp` 2.x (high-level `mcp.Client`).

Usage: client_mcp2.py URL
Connects the way the SDK does by default (mode="auto": it POSTs `server/discover` first and
falls back to `initialize` on a legacy server), then exercises the everything server. Prints
one JSON line per check (see checklib.py).
"""

from __future__ import annotations

import os
import sys
import time

import anyio
from importlib.metadata import version
import mcp.types as types
from mcp import Client

from checklib import (
    ECHO_TEXT,
    PROGRESS_DURATION_S,
    PROGRESS_STEPS,
    ROOT_URI,
    SAMPLING_REPLY,
    check_progress,
    check_tools,
    describe,
    emit,
    main_guard,
    texts,
)

URL = sys.argv[1]
# The serverInfo.name expected: server-everything's, or the gateway's through a federated
# endpoint (peers.py sets PEERS_SERVER_NAME=mcpgate there).
SERVER_NAME = os.environ.get("PEERS_SERVER_NAME", "everything")


async def main(checks) -> None:
    sampled: list[str] = []
    elicited: list[str] = []
    rooted: list[float] = []
    logs: list[tuple[float, str]] = []

    async def on_sampling(ctx, params: types.CreateMessageRequestParams):
        sampled.append(str(params.messages[0].content))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLING_REPLY),
            model="mcpgate-peers",
            stop_reason="endTurn",
        )

    async def on_elicit(ctx, params):
        elicited.append(params.message)
        return types.ElicitResult(action="decline")

    async def on_roots(ctx):
        rooted.append(time.monotonic())
        return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="mcpgate-peers")])

    async def on_log(params: types.LoggingMessageNotificationParams):
        logs.append((time.monotonic(), str(params.data)))

    client = Client(
        URL,
        read_timeout_seconds=30,
        sampling_callback=on_sampling,
        elicitation_callback=on_elicit,
        list_roots_callback=on_roots,
        logging_callback=on_log,
        client_info=types.Implementation(name="mcpgate-peers-mcp2", version=version("mcp")),
        cache=None,
    )

    connected = False
    t0 = time.monotonic()
    try:
        with anyio.fail_after(150):
            async with client:
                connected = True
                info = client.server_info
                emit(
                    "connect (discover, fall back to initialize)",
                    info is not None and SERVER_NAME in info.name,
                    f"protocol {client.protocol_version}, server {info.name if info else None}"
                    f" ({time.monotonic() - t0:.2f}s)",
                )
                await exercise(checks, client, sampled, elicited, rooted, logs)
                t0 = time.monotonic()
            emit("close (DELETE session)", True, f"({time.monotonic() - t0:.2f}s)")
    except Exception as exc:  # noqa: BLE001
        emit("connect (discover, fall back to initialize)" if not connected else "close (DELETE session)",
             False, f"{type(exc).__name__}: {describe(exc)}")
        checks.failed += 1


async def exercise(checks, client, sampled, elicited, rooted, logs) -> None:
    async def ping():
        await client.send_ping()
        return True, "pong"

    async def set_level():
        await client.set_logging_level("debug")
        return True, "debug"

    async def tools_list():
        res = await client.list_tools()
        return check_tools({t.name for t in res.tools})

    async def call_echo():
        res = await client.call_tool("echo", {"message": ECHO_TEXT})
        t = texts(res)
        return (not res.is_error and ECHO_TEXT in t), repr(t[:80])

    async def call_sum():
        res = await client.call_tool("get-sum", {"a": 2, "b": 40})
        t = texts(res)
        return (not res.is_error and "42" in t), repr(t[:80])

    async def call_image():
        res = await client.call_tool("get-tiny-image", {})
        imgs = [c for c in res.content if getattr(c, "type", "") == "image"]
        ok = bool(imgs) and len(imgs[0].data) > 1000 and imgs[0].mime_type == "image/png"
        return ok, f"{len(imgs)} image(s), {len(imgs[0].data) if imgs else 0} base64 chars"

    async def resources():
        res = await client.list_resources()
        if not res.resources:
            return False, "no resources"
        first = res.resources[0]
        read = await client.read_resource(first.uri)
        return bool(read.contents), f"{len(res.resources)} listed; read {first.uri}: {len(read.contents)} content(s)"

    async def prompts():
        res = await client.list_prompts()
        return bool(res.prompts), f"{len(res.prompts)} prompts"

    async def progress():
        events: list[tuple[float, float]] = []

        async def on_progress(p, total, message):
            events.append((time.monotonic(), float(p)))

        res = await client.call_tool(
            "trigger-long-running-operation",
            {"duration": PROGRESS_DURATION_S, "steps": PROGRESS_STEPS},
            progress_callback=on_progress,
        )
        return check_progress(events, time.monotonic(), texts(res))

    async def sampling():
        res = await client.call_tool("trigger-sampling-request", {"prompt": "peers", "maxTokens": 10})
        t = texts(res)
        return (len(sampled) == 1 and SAMPLING_REPLY in t), f"callback calls {len(sampled)}; result {t[:60]!r}"

    async def elicitation():
        res = await client.call_tool("trigger-elicitation-request", {})
        t = texts(res)
        return (len(elicited) == 1 and not res.is_error), f"callback calls {len(elicited)}; result {t[:60]!r}"

    async def roots():
        res = await client.call_tool("get-roots-list", {})
        t = texts(res)
        return (ROOT_URI in t and len(rooted) >= 1), f"roots requests {len(rooted)}; result {t[:60]!r}"

    async def get_stream_log():
        # The server logs "Roots updated" for this session outside any request: that
        # notification can only arrive on the GET stream.
        for _ in range(50):
            if any("Roots updated" in m for _, m in logs):
                return True, f"{len(logs)} log notification(s)"
            await anyio.sleep(0.1)
        return False, f"no 'Roots updated' log notification in 5s ({len(logs)} logs seen)"

    await checks.run("ping", ping)
    await checks.run("logging/setLevel", set_level)
    await checks.run("tools/list", tools_list)
    await checks.run("tools/call echo (UTF-8)", call_echo)
    await checks.run("tools/call get-sum", call_sum)
    await checks.run("tools/call get-tiny-image", call_image)
    await checks.run("resources/list + read", resources)
    await checks.run("prompts/list", prompts)
    await checks.run("tools/call with progress (streamed)", progress)
    await checks.run("sampling request to client", sampling)
    await checks.run("elicitation request to client", elicitation)
    await checks.run("roots request to client (GET stream)", roots)
    await checks.run("log notification (GET stream)", get_stream_log)


if __name__ == "__main__":
    main_guard(main)
