"""Federation peer client, on the Python SDK `mcp` 2.x (`mcp.Client`) or 1.x (`ClientSession`).

Usage: fed_client.py URL
Connects to a federated endpoint (2.x: probes server/discover, falls back to initialize), lists
every page of tools, prompts and resources, calls a tool of each server, gets a prompt, reads a
resource, closes (DELETE). Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import anyio

URL = sys.argv[1]
MAJOR = int(version("mcp").split(".")[0])


def texts(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


async def every_page(fn, attr: str) -> list:
    out, cursor = [], None
    for _ in range(50):
        res = await (fn(cursor=cursor) if cursor else fn())
        out.extend(getattr(res, attr))
        cursor = getattr(res, "next_cursor", None) or getattr(res, "nextCursor", None)
        if not cursor:
            break
    return out


async def exercise(client, report: dict) -> None:
    report["tools"] = sorted(t.name for t in await every_page(client.list_tools, "tools"))
    report["prompts"] = sorted(p.name for p in await every_page(client.list_prompts, "prompts"))
    report["resources"] = sorted(str(r.uri) for r in await every_page(client.list_resources, "resources"))
    report["shout"] = texts(await client.call_tool("py_shout", {"text": "hi"}))
    report["echo"] = texts(await client.call_tool("ev_echo", {"message": "federated"}))
    report["add"] = texts(await client.call_tool("demo_add", {"a": 2, "b": 3}))
    prompt = await client.get_prompt("py_haiku", {"topic": "gateways"})
    report["prompt"] = " ".join(str(getattr(m.content, "text", "")) for m in prompt.messages)
    read = await client.read_resource("py+note://hello")
    report["note"] = " ".join(getattr(c, "text", "") for c in read.contents)


async def main() -> None:
    report: dict = {"sdk": version("mcp")}
    with anyio.fail_after(60):
        if MAJOR >= 2:
            from mcp import Client

            async with Client(URL, read_timeout_seconds=30, cache=None) as client:
                report["server"] = client.server_info.name if client.server_info else None
                report["version"] = str(client.protocol_version)
                await exercise(client, report)
        else:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(URL) as (read, write, _sid):
                async with ClientSession(read, write) as client:
                    init = await client.initialize()
                    report["server"] = init.serverInfo.name
                    report["version"] = str(init.protocolVersion)
                    await exercise(client, report)
    report["closed"] = True
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    anyio.run(main)
