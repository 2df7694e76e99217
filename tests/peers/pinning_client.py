"""Session-pinning client on the Python SDK `mcp` 2.x (tests/peers/.deps/py-mcp2).

Usage: pinning_client.py URL
Connects (initialize), calls `echo` {"text": "one"} and prints `call1 ok <session-id>`; then
waits for a line on stdin and calls `echo` {"text": "two"}. Prints `call2 ok <session-id>`
when the session still works. Neither SDK re-initializes by itself: mcp 2.x turns an HTTP 404
on a request that carries Mcp-Session-Id into an MCPError (-32600 "Session terminated", or the
JSON-RPC error in the 404 body). On a 404 this script does what a real client has to do: opens
a new session, prints `recovered <new-session-id>`, and calls again. Exit 0 on success,
1 with a message on stderr otherwise.
"""

import sys
from contextlib import AsyncExitStack

import anyio
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

URL = sys.argv[1]


async def connect(stack: AsyncExitStack) -> tuple[Client, dict]:
    """A new session; `state` gets its session id and the status of the latest POST."""
    state: dict = {"sid": None, "status": None}

    async def on_response(response) -> None:
        # mcp 2.x has no get_session_id callback: read the header the transport keeps
        # (it takes it from the initialize response, the first one carrying it).
        if response.request.method == "POST":
            state["status"] = response.status_code
            state["sid"] = state["sid"] or response.headers.get("mcp-session-id")

    http = await stack.enter_async_context(create_mcp_http_client())
    http.event_hooks["response"].append(on_response)
    client = Client(streamable_http_client(URL, http_client=http), mode="legacy", cache=None, read_timeout_seconds=30)
    await stack.enter_async_context(client)
    if not state["sid"]:
        raise RuntimeError("the initialize response carried no Mcp-Session-Id")
    return client, state


async def echo(client: Client, text: str) -> None:
    result = await client.call_tool("echo", {"text": text})
    got = [c.text for c in result.content if c.type == "text"]
    if result.is_error or got != [text]:
        raise RuntimeError(f"echo {text!r} returned {result!r}")


async def main() -> None:
    async with AsyncExitStack() as stack:
        client, state = await connect(stack)
        await echo(client, "one")
        print(f"call1 ok {state['sid']}", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        try:
            await echo(client, "two")
            print(f"call2 ok {state['sid']}", flush=True)
            return
        except MCPError as e:
            if state["status"] != 404:
                raise
            print(f"session {state['sid']} gone (HTTP 404, MCPError {e.code} {e.message!r})", file=sys.stderr)
    async with AsyncExitStack() as stack:  # the old session is closed (its DELETE gets a 404)
        client, state = await connect(stack)
        print(f"recovered {state['sid']}", flush=True)
        await echo(client, "two")
        print(f"call2 ok {state['sid']}", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except BaseException as e:  # noqa: BLE001 - report anything, including exception groups
        print(f"pinning_client: {type(e).__name__}: {e!r}", file=sys.stderr)
        sys.exit(1)
