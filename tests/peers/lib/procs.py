"""Processes of the peer comparison (peers.py): each one started leads its own process group and
is killed by that id on exit; every wait is bounded by its own timeout and by the run's overall
deadline. Standard library only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

_deadline = float("inf")  # monotonic time after which nothing new is started


def set_deadline(t: float) -> None:
    global _deadline
    _deadline = t


def past_deadline() -> bool:
    return time.monotonic() > _deadline


def remaining(cap: float) -> float:
    """`cap` seconds, or what is left of the run's budget when that is less (at least 1 s)."""
    return max(1.0, min(cap, _deadline - time.monotonic()))


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Procs:
    """Processes this run started; each leads its own process group, killed by id on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], logfile: str, env: dict | None = None, cwd: str | None = None) -> subprocess.Popen:
        out = open(logfile, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
        out.close()
        self.procs.append((name, p))
        return p

    def forget(self, p: subprocess.Popen) -> None:
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    @staticmethod
    def kill(p: subprocess.Popen, grace: float = 5.0) -> None:
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)

    def stop_all(self) -> None:
        for _, p in reversed(self.procs):
            self.kill(p)
        self.procs.clear()


PROCS = Procs()


def run_bounded(argv: list[str], logfile: str, timeout: float, env: dict | None = None, cwd: str | None = None) -> tuple[int | None, float]:
    """Run to completion or kill at the timeout. Returns (exit code or None on timeout, seconds)."""
    t0 = time.monotonic()
    p = PROCS.start(os.path.basename(argv[1] if len(argv) > 1 else argv[0]), argv, logfile, env, cwd)
    try:
        rc: int | None = p.wait(remaining(timeout))
    except subprocess.TimeoutExpired:
        with open(logfile, "a") as f:
            f.write(f"\n[peers] killed after {timeout:.0f}s timeout\n")
        rc = None
    Procs.kill(p)
    PROCS.forget(p)
    return rc, time.monotonic() - t0


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "NODE_OPTIONS"}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


def http_text(url: str) -> str | None:
    """The body of a 200 answer to GET url, or None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def tail(path: str, n: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"
