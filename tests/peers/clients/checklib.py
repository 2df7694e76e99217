"""Shared helpers for the Python peer clients (stdlib + anyio only).

Each client prints one JSON object per line on stdout:
    {"check": NAME, "status": "pass" | "fail", "detail": TEXT}
and nothing else on stdout; diagnostics go to stderr. The driver (peers.py) compares these
lines between a direct run and a run through the gateway.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import anyio

# Every single check is bounded; the driver also bounds the whole process.
CHECK_TIMEOUT_S = 25.0

ROOT_URI = "file:///tmp/mcpgate-peers-root"
SAMPLING_REPLY = "peers-sampling-reply-42"
ECHO_TEXT = "h\u00e9llo \u2713 0 \U0001f600"  # non-ASCII and an emoji: bytes must pass through unchanged


def emit(name: str, ok: bool, detail: str = "") -> None:
    print(json.dumps({"check": name, "status": "pass" if ok else "fail", "detail": detail[:500]}), flush=True)


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    async def run(self, name: str, fn, timeout: float = CHECK_TIMEOUT_S) -> object:
        """Run one async check; fn returns (ok, detail) or raises."""
        t0 = time.monotonic()
        try:
            with anyio.fail_after(timeout):
                ok, detail = await fn()
        except TimeoutError:
            ok, detail = False, f"timed out after {timeout:.0f}s"
        except BaseException as exc:  # noqa: BLE001 - report anything, keep going
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            ok, detail = False, f"{type(exc).__name__}: {describe(exc)}"
            traceback.print_exc(file=sys.stderr)
        detail = f"{detail} ({time.monotonic() - t0:.2f}s)"
        emit(name, ok, detail)
        if not ok:
            self.failed += 1
        return ok


def describe(exc: BaseException) -> str:
    """Flatten exception groups (anyio task groups) into one line."""
    subs = getattr(exc, "exceptions", None)
    if subs:
        return "; ".join(f"{type(e).__name__}: {describe(e)}" for e in subs)
    return str(exc) or repr(exc)


def texts(result) -> str:
    """Concatenate the text items of a CallToolResult."""
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


TOOLS_EXPECTED = {
    "echo",
    "get-sum",
    "get-tiny-image",
    "trigger-long-running-operation",
    # conditional tools: present only because the client declares sampling, elicitation and roots
    "trigger-sampling-request",
    "trigger-elicitation-request",
    "get-roots-list",
}


def check_tools(names: set[str]) -> tuple[bool, str]:
    missing = sorted(TOOLS_EXPECTED - names)
    return not missing, f"{len(names)} tools" + (f"; missing {missing}" if missing else "")


PROGRESS_DURATION_S = 1.5
PROGRESS_STEPS = 3


def check_progress(events: list[tuple[float, float]], t_end: float, result_text: str) -> tuple[bool, str]:
    """events: (arrival monotonic time, progress). The tool sleeps 0.5 s between steps, so a
    gateway that streams SSE delivers the notifications spread over about 1 s; one that buffers
    the response delivers them all together with the result."""
    progress = [p for _, p in events]
    if progress != [float(i) for i in range(1, PROGRESS_STEPS + 1)]:
        return False, f"progress values {progress}, expected 1..{PROGRESS_STEPS}"
    if "completed" not in result_text:
        return False, f"unexpected result text {result_text[:120]!r}"
    spread = events[-1][0] - events[0][0]
    lag = t_end - events[0][0]
    step = PROGRESS_DURATION_S / PROGRESS_STEPS
    ok = spread >= 1.2 * step
    return ok, f"{len(progress)} notifications spread over {spread:.2f}s, first {lag:.2f}s before the result" + (
        "" if ok else " (buffered? expected them to arrive as they were sent)"
    )


def main_guard(coro_fn) -> None:
    checks = Checks()
    try:
        anyio.run(coro_fn, checks)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        emit("client-run", False, f"{type(exc).__name__}: {describe(exc)}")
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)
    sys.exit(1 if checks.failed else 0)
