#!/usr/bin/env python3
"""Comparative real-peer test: is mcpgate transparent?

Usage: peers.py GATEWAY_BIN [options]      (normally through run.sh)

For each upstream, started on a free 127.0.0.1 port, it starts its own `GATEWAY_BIN -c CONFIG`
in front of it (one endpoint /mcp, one backend host) and runs the same peers directly against
the upstream and through the gateway:
  * upstream "everything", the official @modelcontextprotocol/server-everything
    (`mcp-server-everything streamableHttp`): the conformance suite's server scenarios
    (@modelcontextprotocol/conformance) and two Python SDK clients, mcp 2.x and mcp 1.x
    (clients/);
  * upstream "fixture", fixtures/conformance-server.mjs, which has the fixtures the suite's
    scenarios call, so that they test something (sampling, elicitation, progress, logging...):
    the conformance suite's server scenarios.
Every check that passes directly must pass through the gateway. A check that differs only
through the gateway is re-run (its whole scenario or client) up to --retries more times; one
that then passes is reported as flaky. Ends with the line `peers: N passed, M failed` (N, M
count comparisons) and exits 1 on any failed comparison, 2 when the harness itself cannot run.

Standard library only. Every process it starts is bounded in time and killed on exit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from ports import accepts, free_ports  # noqa: E402  (tests/peers/lib)
NODE = os.path.join(HERE, "node_modules", ".bin", "node")
CONFORMANCE = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
EVERYTHING = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
LOOPBACK = os.path.join(HERE, "lib", "loopback.cjs")
FIXTURE = os.path.join(HERE, "fixtures", "conformance-server.mjs")
CLIENTS = {
    "py-mcp2": (os.path.join(HERE, ".deps", "py-mcp2", "bin", "python"), os.path.join(HERE, "clients", "client_mcp2.py")),
    "py-mcp1": (os.path.join(HERE, ".deps", "py-mcp1", "bin", "python"), os.path.join(HERE, "clients", "client_mcp1.py")),
}

# Upstreams, each tested behind its own gateway instance: label -> (argv run with PORT=N, run the
# Python clients too). server-everything is the official reference server; the fixture server
# implements the names the conformance scenarios call (see fixtures/conformance-server.mjs).
UPSTREAMS = {
    "everything": ([NODE, "--require", LOOPBACK, EVERYTHING, "streamableHttp"], True),
    "fixture": ([NODE, FIXTURE], False),
}

# Inspection on (every POST read and checked before the upstream is chosen: JSON-RPC shape,
# 2026-07-28 header consistency, MCP metrics), and a tool policy that allows every tool (so
# tools/list answers go through the filter): the peers must see no difference from direct.
CONFIG_TEMPLATE = """\
listen: 127.0.0.1:{gw_port}
admin: 127.0.0.1:{admin_port}
policies:
  mcp:
    inspect: true
  tools:
    allow: ["*"]
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:{upstream_port}]
"""

DEADLINE = 0.0  # monotonic time after which nothing new is started


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def remaining(cap: float) -> float:
    return max(1.0, min(cap, DEADLINE - time.monotonic()))


# --------------------------------------------------------------------------- processes

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
    PROCS.procs = [(n, q) for n, q in PROCS.procs if q is not p]
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


def tail(path: str, n: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- results

PASS, FAIL, WARN, ABSENT = "pass", "FAIL", "warn", "-"


@dataclass
class Check:
    status: str  # PASS | FAIL | WARN
    message: str = ""


@dataclass
class Row:
    suite: str       # "conformance" | "py-mcp2" | "py-mcp1" | "harness"
    group: str       # scenario or client
    check: str
    direct: Check | None
    gateway: Check | None
    verdict: str = ""        # same | both-fail | improved | flaky | known | REGRESSION | DIFFERENT
    attempts: int = 1
    gateway_first: Check | None = None  # the first failure, kept for flaky reports
    known: str = ""                      # reason, when listed in a --known file

    @property
    def ok(self) -> bool:
        return self.verdict in ("same", "both-fail", "improved", "flaky", "known")


def normalize(msg: str) -> str:
    """Message text with run-specific parts (ports, ids, times, numbers) masked."""
    msg = re.sub(r"https?://[^\s'\"]+", "URL", msg)
    msg = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", msg, flags=re.I)
    return re.sub(r"\d+(\.\d+)?", "#", msg).strip()


def judge(direct: Check | None, gw: Check | None) -> str:
    d = direct.status if direct else ABSENT
    g = gw.status if gw else ABSENT
    if d == PASS:
        return "same" if g == PASS else "REGRESSION"
    if d == WARN:
        if g == PASS:
            return "improved"
        return "same" if g == WARN else "REGRESSION"
    if d == FAIL:
        if g == PASS:
            return "improved"
        if g == FAIL:
            return "both-fail" if normalize(direct.message) == normalize(gw.message) else "DIFFERENT"
        return "DIFFERENT"
    # the check does not exist directly
    return "same" if g in (PASS, ABSENT) else "DIFFERENT"


# --------------------------------------------------------------------------- conformance

STATUS = {"SUCCESS": PASS, "FAILURE": FAIL, "WARNING": WARN}


def run_conformance(url: str, workdir: str, tag: str, scenario: str | None, suite: str, timeout: float) -> tuple[dict[str, dict[str, Check]], str, float]:
    """Run the suite (or one scenario) against url. Returns ({scenario: {check id: Check}}, log, secs)."""
    outdir = os.path.join(workdir, f"conformance-{tag}")
    os.makedirs(outdir, exist_ok=True)
    logfile = outdir + ".log"
    argv = [NODE, CONFORMANCE, "server", "--url", url, "-o", outdir]
    argv += ["--scenario", scenario] if scenario else ["--suite", suite]
    rc, secs = run_bounded(argv, logfile, timeout, env=child_env(), cwd=outdir)
    results: dict[str, dict[str, Check]] = {}
    for d in sorted(os.listdir(outdir)):
        m = re.match(r"^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$", d)
        path = os.path.join(outdir, d, "checks.json")
        if not m or not os.path.exists(path):
            continue
        checks: dict[str, Check] = {}
        try:
            data = json.load(open(path))
        except ValueError as e:
            data = [{"id": "checks.json", "status": "FAILURE", "errorMessage": f"unreadable: {e}"}]
        for c in data:
            st = STATUS.get(c.get("status", ""))
            if st is None:  # INFO, SKIPPED: observations, not verdicts
                continue
            cid = c.get("id") or c.get("name") or "?"
            key, n = cid, 2
            while key in checks:
                key, n = f"{cid}#{n}", n + 1
            msg = c.get("errorMessage") or ""
            if not msg and st != PASS:
                msg = json.dumps(c.get("details", ""))[:300]
            checks[key] = Check(st, msg)
        results[m.group(1)] = checks
    # scenarios the runner started but that left no checks.json (it threw, or we killed it)
    text = open(logfile, errors="replace").read()
    started = re.findall(r"^=== Running scenario: (\S+) ===", text, re.M) or ([scenario] if scenario else [])
    for s in started:
        if s not in results:
            m = re.search(rf"Failed to run scenario {re.escape(s)}:?(.*)", text)
            why = m.group(1).strip() if m else ("timed out" if rc is None else f"no result (exit {rc})")
            results[s] = {"(scenario)": Check(FAIL, why[:300] or "failed to run")}
    if rc is None:
        log(f"conformance {tag}: timed out after {secs:.0f}s; see {logfile}")
    return results, logfile, secs


# --------------------------------------------------------------------------- python clients

def run_client(name: str, url: str, workdir: str, tag: str, timeout: float) -> tuple[dict[str, Check], str, float]:
    py, script = CLIENTS[name]
    logfile = os.path.join(workdir, f"{name}-{tag}.log")
    outfile = os.path.join(workdir, f"{name}-{tag}.jsonl")
    t0 = time.monotonic()
    with open(outfile, "wb") as out, open(logfile, "ab") as err:
        p = subprocess.Popen([py, script, url], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=child_env(PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore"),
                             cwd=os.path.dirname(script), start_new_session=True)
        PROCS.procs.append((name, p))
        try:
            rc: int | None = p.wait(remaining(timeout))
        except subprocess.TimeoutExpired:
            rc = None
        Procs.kill(p)
        PROCS.procs = [(n, q) for n, q in PROCS.procs if q is not p]
    checks: dict[str, Check] = {}
    for line in open(outfile, errors="replace"):
        try:
            c = json.loads(line)
        except ValueError:
            continue
        checks[c["check"]] = Check(PASS if c["status"] == "pass" else FAIL, c.get("detail", ""))
    if rc is None:
        checks["(client run)"] = Check(FAIL, f"killed after {timeout:.0f}s timeout")
    elif not checks:
        checks["(client run)"] = Check(FAIL, f"no output, exit {rc}: {tail(logfile, 3).strip()[-200:]}")
    return checks, logfile, time.monotonic() - t0


# --------------------------------------------------------------------------- comparison

def compare(suite: str, group: str, direct: dict[str, Check], gw: dict[str, Check]) -> list[Row]:
    rows = []
    for cid in list(direct) + [c for c in gw if c not in direct]:
        r = Row(suite, group, cid, direct.get(cid), gw.get(cid))
        r.verdict = judge(r.direct, r.gateway)
        rows.append(r)
    return rows


def retry_group(rows: list[Row], rerun, retries: int) -> None:
    """Re-run a scenario/client through the gateway while some of its checks fail there only."""
    for attempt in range(2, retries + 2):
        bad = [r for r in rows if not r.ok]
        if not bad or time.monotonic() > DEADLINE:
            return
        log(f"  retry {attempt - 1}/{retries}: {bad[0].suite} {bad[0].group} ({len(bad)} check(s) differ)")
        fresh = rerun(attempt)
        for r in bad:
            new = fresh.get(r.check)
            verdict = judge(r.direct, new)
            if r.gateway_first is None:
                r.gateway_first = r.gateway
            r.attempts = attempt
            r.gateway = new
            if verdict in ("same", "both-fail", "improved"):
                r.verdict = "flaky"
            else:
                r.verdict = verdict


# --------------------------------------------------------------------------- report

def fmt(c: Check | None) -> str:
    return ABSENT if c is None else c.status


def print_table(rows: list[Row]) -> None:
    w_group = max(len(r.group) for r in rows)
    w_check = min(48, max(len(r.check) for r in rows))
    head = f"{'suite':<12} {'scenario / client':<{w_group}}  {'check':<{w_check}}  {'direct':<6} {'gateway':<7} verdict"
    print(head)
    print("-" * len(head))
    for r in rows:
        verdict = r.verdict + (f" (passed on attempt {r.attempts})" if r.verdict == "flaky" else "")
        if r.verdict in ("REGRESSION", "DIFFERENT") and r.attempts > 1:
            verdict += f" (after {r.attempts} attempts)"
        check = r.check if len(r.check) <= w_check else r.check[: w_check - 1] + "~"
        print(f"{r.suite:<12} {r.group:<{w_group}}  {check:<{w_check}}  {fmt(r.direct):<6} {fmt(r.gateway):<7} {verdict}")


def load_known(path: str | None) -> dict[str, str]:
    known: dict[str, str] = {}
    if path:
        for line in open(path):
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, reason = line.partition(" ")
                known[key] = reason.strip() or "listed in " + path
    return known


def print_details(rows: list[Row], logs: dict[str, str]) -> None:
    bad = [r for r in rows if not r.ok or r.verdict == "known"]
    flaky = [r for r in rows if r.verdict == "flaky"]
    if bad:
        print("\nWhat differs through the gateway:")
        for r in bad:
            print(f"  * {r.suite} / {r.group} / {r.check}: {r.verdict}" + (f" ({r.known})" if r.known else ""))
            print(f"      direct : {fmt(r.direct)} {r.direct.message if r.direct else ''}".rstrip())
            print(f"      gateway: {fmt(r.gateway)} {r.gateway.message if r.gateway else '(check absent)'}".rstrip())
            lg = logs.get(f"{r.suite}/{r.group}") or logs.get(r.suite)
            if lg:
                print(f"      log    : {lg}")
    if flaky:
        print("\nFlaky through the gateway (failed first, passed on a retry):")
        for r in flaky:
            first = r.gateway_first
            print(f"  * {r.suite} / {r.group} / {r.check}: passed on attempt {r.attempts}; first failure: "
                  f"{fmt(first)} {first.message if first else '(check absent)'}")


# --------------------------------------------------------------------------- main

@dataclass
class Pair:
    """One upstream and the gateway instance in front of it."""
    label: str
    upstream_url: str = ""
    gateway_url: str = ""
    procs: list = field(default_factory=list)  # (name, Popen, log)


def start_pair(label: str, argv: list[str], a, gw_bin: str, work: str) -> tuple[Pair | None, str]:
    """Start upstream `argv` (PORT=N) and the gateway in front of it. Returns (pair, error)."""
    pair = Pair(label)
    up_port, gw_port, admin_port = free_ports(3)
    pair.upstream_url = f"http://127.0.0.1:{up_port}/mcp"
    pair.gateway_url = f"http://127.0.0.1:{gw_port}/mcp"

    up_log = os.path.join(work, f"upstream-{label}.log")
    upstream = PROCS.start(f"upstream-{label}", argv, up_log, env=child_env(PORT=str(up_port)), cwd=work)
    pair.procs.append(("upstream", upstream, up_log))
    t0 = time.monotonic()
    while not accepts(up_port):
        if upstream.poll() is not None or time.monotonic() - t0 > 30:
            return None, f"upstream {label} did not start on port {up_port}:\n{tail(up_log)}"
        time.sleep(0.1)
    log(f"upstream {label} on {pair.upstream_url} ({time.monotonic() - t0:.1f}s)")

    template = open(a.config_template).read() if a.config_template else CONFIG_TEMPLATE
    cfg = os.path.join(work, f"mcpgate-{label}.yaml")
    with open(cfg, "w") as f:
        f.write(template.format(gw_port=gw_port, admin_port=admin_port, upstream_port=up_port))
    gw_log = os.path.join(work, f"gateway-{label}.log")
    gateway = PROCS.start(f"gateway-{label}", [gw_bin, "-c", cfg, *a.gateway_arg], gw_log, env=child_env(), cwd=work)
    pair.procs.append(("gateway", gateway, gw_log))
    t0, listen_since, how = time.monotonic(), None, ""
    while not how:
        if gateway.poll() is not None:
            return None, (f"gateway ({label}) exited with {gateway.returncode} before it was ready. "
                          f"Config {cfg}:\n{open(cfg).read()}\nLog {gw_log}:\n{tail(gw_log)}")
        if time.monotonic() - t0 > 60:
            st = http_status(f"http://127.0.0.1:{admin_port}/readyz")
            return None, f"gateway ({label}) not ready after 60s (readyz: {st}). Log {gw_log}:\n{tail(gw_log)}"
        st = http_status(f"http://127.0.0.1:{admin_port}/readyz")
        if st == 200:
            how = "admin /readyz 200"
        elif st is None and accepts(gw_port):
            # no admin listener at all: accept a listen port that stays open for 2 s
            listen_since = listen_since or time.monotonic()
            if time.monotonic() - listen_since > 2:
                how = "listen port accepting (no admin /readyz)"
        else:
            listen_since = None
        time.sleep(0.1)
    log(f"gateway ({label}) ready on {pair.gateway_url}: {how} ({time.monotonic() - t0:.1f}s)")
    return pair, ""


def conformance_rows(pair: Pair, a, work: str, logs: dict[str, str]) -> list[Row]:
    suite = f"conf/{pair.label}"
    res: dict[str, dict] = {}
    for tag, url in (("direct", pair.upstream_url), ("gateway", pair.gateway_url)):
        run_tag = f"{pair.label}-{tag}"
        if a.scenario:
            res[tag] = {}
            for s in a.scenario:
                r, lg, _ = run_conformance(url, work, f"{run_tag}-{s}", s, a.suite, 300)
                res[tag].update(r)
                if tag == "gateway":
                    logs[f"{suite}/{s}"] = lg
        else:
            res[tag], lg, secs = run_conformance(url, work, run_tag, None, a.suite, 900)
            log(f"conformance {run_tag}: {len(res[tag])} scenarios in {secs:.1f}s")
            if tag == "gateway":
                logs[suite] = lg
    rows: list[Row] = []
    for scen in list(res["direct"]) + [s for s in res["gateway"] if s not in res["direct"]]:
        group = compare(suite, scen, res["direct"].get(scen, {}), res["gateway"].get(scen, {}))

        def rerun(attempt: int, scen: str = scen) -> dict[str, Check]:
            r, lg, _ = run_conformance(pair.gateway_url, work, f"{pair.label}-gateway-{scen}-try{attempt}", scen, a.suite, 300)
            logs[f"{suite}/{scen}"] = lg
            return r.get(scen, {})

        retry_group(group, rerun, a.retries)
        if any(r.verdict == "improved" for r in group):
            # Better through the gateway than directly: make sure the direct failure was not a
            # timing accident (the sampling and elicitation scenarios race even without a proxy).
            again, _, _ = run_conformance(pair.upstream_url, work, f"{pair.label}-direct-{scen}-recheck", scen, a.suite, 300)
            for r in group:
                c = again.get(scen, {}).get(r.check)
                if r.verdict == "improved" and c is not None and c.status == PASS:
                    r.direct, r.verdict = c, "same"
                    log(f"  {suite} {scen} {r.check}: failed directly once, passed directly on a recheck")
        rows += group
    return rows


def client_rows(pair: Pair, a, work: str, logs: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    for name in CLIENTS:
        got = {}
        for tag, url in (("direct", pair.upstream_url), ("gateway", pair.gateway_url)):
            got[tag], lg, secs = run_client(name, url, work, tag, 120)
            log(f"{name} {tag}: {len(got[tag])} checks in {secs:.1f}s")
            if tag == "gateway":
                logs[name] = lg
        group = compare(name, pair.label, got["direct"], got["gateway"])

        def rerun(attempt: int, name: str = name) -> dict[str, Check]:
            r, lg, _ = run_client(name, pair.gateway_url, work, f"gateway-try{attempt}", 120)
            logs[name] = lg
            return r

        retry_group(group, rerun, a.retries)
        rows += group
    return rows


def main() -> int:
    global DEADLINE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gateway_bin", help="the mcpgate binary (started as GATEWAY_BIN -c CONFIG)")
    ap.add_argument("--gateway-arg", action="append", default=[], help="extra argument for the gateway (repeatable)")
    ap.add_argument("--config-template", help="gateway config template with {gw_port} {admin_port} {upstream_port}")
    ap.add_argument("--upstream", action="append", choices=list(UPSTREAMS), default=[],
                    help="which upstreams to test behind the gateway (repeatable; default: all)")
    ap.add_argument("--suite", default=os.environ.get("PEERS_SUITE", "all"),
                    help="conformance suite: all (default), active or pending")
    ap.add_argument("--scenario", action="append", default=[], help="run only these conformance scenarios")
    ap.add_argument("--skip-conformance", action="store_true")
    ap.add_argument("--skip-clients", action="store_true")
    ap.add_argument("--retries", type=int, default=int(os.environ.get("PEERS_RETRIES", "2")))
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("PEERS_TIMEOUT", "1500")),
                    help="overall budget in seconds (default 1500)")
    ap.add_argument("--known", default=os.environ.get("PEERS_KNOWN"),
                    help="file of known differences, one 'SUITE/GROUP/CHECK reason' a line: reported as "
                         "'known' and not counted as failures")
    ap.add_argument("--keep", action="store_true", default=bool(os.environ.get("PEERS_KEEP")),
                    help="keep the work dir even when everything passed")
    a = ap.parse_args()
    t_start = time.monotonic()
    DEADLINE = t_start + a.timeout

    needed = [NODE, CONFORMANCE, EVERYTHING, FIXTURE] + [p for pair in CLIENTS.values() for p in pair]
    for path in needed:
        if not os.path.exists(path):
            print(f"peers: missing {path}; run tests/peers/install.sh first", file=sys.stderr)
            return 2
    gw_bin = os.path.abspath(a.gateway_bin) if os.sep in a.gateway_bin else (shutil.which(a.gateway_bin) or a.gateway_bin)
    if not (os.path.isfile(gw_bin) and os.access(gw_bin, os.X_OK)):
        print(f"peers: gateway binary {a.gateway_bin!r} is not an executable file", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="mcpgate-peers-")
    atexit.register(PROCS.stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    log(f"work dir {work}")

    rows: list[Row] = []
    logs: dict[str, str] = {}
    pairs: list[Pair] = []
    for label in a.upstream or list(UPSTREAMS):
        argv, with_clients = UPSTREAMS[label]
        for attempt in (1, 2):  # a second try with fresh ports, in case another process took one
            pair, err = start_pair(label, argv, a, gw_bin, work)
            if pair is not None:
                break
            log(f"start failed (attempt {attempt}): {err.splitlines()[0]}")
            for name, p in [x for x in PROCS.procs if x[0].endswith(label)]:
                Procs.kill(p)
        if pair is None:
            print(f"peers: {err}", file=sys.stderr)
            print(f"logs kept in {work}")
            print("peers: 0 passed, 1 failed")
            return 1 if "gateway" in err.split(":")[0] else 2
        pairs.append(pair)
        if not a.skip_conformance:
            rows += conformance_rows(pair, a, work, logs)
        if with_clients and not a.skip_clients:
            rows += client_rows(pair, a, work, logs)
        for name, p, lg in pair.procs:
            alive = p.poll() is None
            rows.append(Row("harness", label, f"{name} process alive at end", Check(PASS),
                            Check(PASS) if alive else Check(FAIL, f"exited with {p.returncode}; see {lg}"),
                            verdict="same" if alive else "REGRESSION"))
            logs[f"harness/{label}"] = lg
        for _, p, _ in reversed(pair.procs):
            Procs.kill(p)

    PROCS.stop_all()
    known = load_known(a.known)
    for r in rows:
        reason = known.pop(f"{r.suite}/{r.group}/{r.check}", None)
        if reason is not None and not r.ok:
            r.verdict, r.known = "known", reason
        elif reason is not None:
            log(f"listed as known but no longer differs: {r.suite}/{r.group}/{r.check}")
    passed = sum(r.ok for r in rows)
    failed = len(rows) - passed
    print(f"\nmcpgate peer comparison ({os.path.basename(gw_bin)}):")
    for pr in pairs:
        print(f"  {pr.label}: direct {pr.upstream_url}, through the gateway {pr.gateway_url}")
    print()
    print_table(rows)
    print_details(rows, logs)
    summary = {
        "gateway_bin": gw_bin, "work_dir": work,
        "pairs": [{"upstream": pr.label, "direct": pr.upstream_url, "gateway": pr.gateway_url} for pr in pairs],
        "rows": [{"suite": r.suite, "group": r.group, "check": r.check, "direct": fmt(r.direct),
                  "gateway": fmt(r.gateway), "verdict": r.verdict, "attempts": r.attempts,
                  "direct_message": r.direct.message if r.direct else None,
                  "gateway_message": r.gateway.message if r.gateway else None} for r in rows],
    }
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    print("\nverdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) +
          f"; {time.monotonic() - t_start:.0f}s")
    if failed or a.keep or any(r.verdict in ("flaky", "known", "improved") for r in rows):
        print(f"logs and results kept in {work} (summary.json)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"peers: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
