#!/usr/bin/env python3
"""Comparative real-peer test: is mcpgate transparent?

Usage: peers.py GATEWAY_BIN [options]      (normally through run.sh)

For each pair it starts the pair's upstreams, each on a free 127.0.0.1 port, and its own
`GATEWAY_BIN -c CONFIG` in front of them, and runs the same peers directly against an upstream
and through the gateway:
  * pair "everything": the official @modelcontextprotocol/server-everything
    (`mcp-server-everything streamableHttp`) behind one endpoint /mcp with one backend host:
    the conformance suite's server scenarios (@modelcontextprotocol/conformance) and two Python
    SDK clients, mcp 2.x and mcp 1.x (clients/);
  * pair "fixture": fixtures/conformance-server.mjs, which has the fixtures the suite's
    scenarios call, so that they test something (sampling, elicitation, progress, logging...),
    behind one endpoint: the conformance suite's server scenarios;
  * pair "federated" (issue 17's acceptance check): both servers
    behind one federated endpoint (`servers:`, `federation.prefix: false`): the suite runs
    against the fixture directly and through the gateway, the Python clients against
    server-everything directly and through the gateway; then the gateway's /metrics must show
    no server left out and calls routed to each server.
Every check that passes directly must pass through the gateway. A check that differs only
through the gateway is re-run (its whole scenario or client) up to --retries more times; one
that then passes is reported as flaky. Ends with the line `peers: N passed, M failed` (N, M
count comparisons) and exits 1 on any failed comparison, 2 when the harness itself cannot run.

Standard library only. Every process it starts is bounded in time and killed on exit.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from ports import accepts, free_ports  # noqa: E402  (tests/peers/lib)
from procs import PROCS, Procs, child_env, http_status, http_text, log, remaining, run_bounded, set_deadline, tail  # noqa: E402
from verdicts import (  # noqa: E402
    FAIL, INFO, PASS, WARN, Check, Row, apply_known, compare, fmt, load_known, print_details, print_table, retry_group,
)

NODE = os.path.join(HERE, "node_modules", ".bin", "node")
CONFORMANCE = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
EVERYTHING = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
LOOPBACK = os.path.join(HERE, "lib", "loopback.cjs")
FIXTURE = os.path.join(HERE, "fixtures", "conformance-server.mjs")
CLIENTS = {
    "py-mcp2": (os.path.join(HERE, ".deps", "py-mcp2", "bin", "python"), os.path.join(HERE, "clients", "client_mcp2.py")),
    "py-mcp1": (os.path.join(HERE, ".deps", "py-mcp1", "bin", "python"), os.path.join(HERE, "clients", "client_mcp1.py")),
}

# Upstreams: label -> argv, run with PORT=N. server-everything is the official reference server;
# the fixture server implements the names the conformance scenarios call (see
# fixtures/conformance-server.mjs).
UPSTREAMS = {
    "everything": [NODE, "--require", LOOPBACK, EVERYTHING, "streamableHttp"],
    "fixture": [NODE, FIXTURE],
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

# The same policies in front of a federated endpoint with both servers. Prefixing is off, so the
# suite's fixture names (test_simple_text, ...) reach the client unchanged; the two servers share
# no tool or prompt name (a shared name would be left out and counted as duplicate_name). The
# sessions key is random per run.
FEDERATED_TEMPLATE = """\
listen: 127.0.0.1:{gw_port}
admin: 127.0.0.1:{admin_port}
sessions:
  key: {sessions_key}
policies:
  mcp:
    inspect: true
  tools:
    allow: ["*"]
endpoints:
  - path: /mcp
    name: peers
    federation:
      prefix: false
    servers:
      - alias: fixture
        backend:
          hosts: [http://127.0.0.1:{fixture_port}]
          path: /mcp
      - alias: everything
        backend:
          hosts: [http://127.0.0.1:{everything_port}]
          path: /mcp
"""


@dataclass(frozen=True)
class PairSpec:
    """What a pair starts and compares."""
    upstreams: tuple[str, ...]   # started for this pair, in this order; the gateway fronts them all
    conformance: str             # the upstream the conformance suite runs against directly
    clients: str | None          # the upstream the Python clients run against directly, if any
    template: str                # the gateway's config
    federated: bool = False      # check the federation metrics at the end
    opt_in: bool = False         # not part of the default run (not yet passing)
    server_name: str = ""        # serverInfo.name the clients expect through the gateway, if not the upstream's


PAIRS = {
    "everything": PairSpec(("everything",), "everything", "everything", CONFIG_TEMPLATE),
    "fixture": PairSpec(("fixture",), "fixture", None, CONFIG_TEMPLATE),
    "federated": PairSpec(("fixture", "everything"), "fixture", "everything", FEDERATED_TEMPLATE,
                          federated=True, server_name="mcpgate"),
}


# --------------------------------------------------------------------------- conformance

STATUS = {"SUCCESS": PASS, "FAILURE": FAIL, "WARNING": WARN, "INFO": INFO}


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
        # Verdicts first, numbered among themselves (a repeated id gets #2, #3...); then the INFO
        # observations, under their id when no verdict has it (so a check that passes on one side
        # and is INFO on the other is compared), else under "id (info #2)"...
        data = [c for c in data if STATUS.get(c.get("status", "")) not in (None, INFO)] + \
               [c for c in data if STATUS.get(c.get("status", "")) == INFO]
        for c in data:
            st = STATUS[c["status"]]
            cid = c.get("id") or c.get("name") or "?"
            key, n = cid, 2
            while key in checks:
                key, n = (f"{cid} (info #{n})" if st == INFO else f"{cid}#{n}"), n + 1
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

def run_client(name: str, url: str, workdir: str, tag: str, timeout: float, env: dict | None = None) -> tuple[dict[str, Check], str, float]:
    py, script = CLIENTS[name]
    logfile = os.path.join(workdir, f"{name}-{tag}.log")
    outfile = os.path.join(workdir, f"{name}-{tag}.jsonl")
    t0 = time.monotonic()
    with open(outfile, "wb") as out, open(logfile, "ab") as err:
        p = subprocess.Popen([py, script, url], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=child_env(PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore", **(env or {})),
                             cwd=os.path.dirname(script), start_new_session=True)
        PROCS.procs.append((name, p))
        try:
            rc: int | None = p.wait(remaining(timeout))
        except subprocess.TimeoutExpired:
            rc = None
        Procs.kill(p)
        PROCS.forget(p)
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


# --------------------------------------------------------------------------- pairs

@dataclass
class Pair:
    """A pair's upstreams and the gateway instance in front of them."""
    label: str
    spec: PairSpec
    upstream_urls: dict[str, str] = field(default_factory=dict)  # upstream label -> its /mcp URL
    gateway_url: str = ""
    admin_url: str = ""
    procs: list = field(default_factory=list)  # (name, Popen, log)

    def describe(self) -> str:
        if len(self.upstream_urls) == 1:
            direct = next(iter(self.upstream_urls.values()))
        else:
            direct = ", ".join(f"{u} {url}" for u, url in self.upstream_urls.items())
        return f"direct {direct}, through the gateway {self.gateway_url}"


def start_pair(pair: Pair, a, gw_bin: str, work: str) -> str:
    """Start the pair's upstreams (PORT=N) and the gateway in front of them. Returns an error or ''."""
    label, spec = pair.label, pair.spec
    ports = free_ports(len(spec.upstreams) + 2)
    up_ports = dict(zip(spec.upstreams, [ports[0]] + ports[3:]))
    gw_port, admin_port = ports[1], ports[2]
    pair.gateway_url = f"http://127.0.0.1:{gw_port}/mcp"
    pair.admin_url = f"http://127.0.0.1:{admin_port}"

    for up, up_port in up_ports.items():
        pair.upstream_urls[up] = f"http://127.0.0.1:{up_port}/mcp"
        up_log = os.path.join(work, f"upstream-{label}" + (f"-{up}" if up != label else "") + ".log")
        upstream = PROCS.start(f"upstream-{up}", UPSTREAMS[up], up_log, env=child_env(PORT=str(up_port)), cwd=work)
        pair.procs.append(("upstream" if len(up_ports) == 1 else f"upstream {up}", upstream, up_log))
        t0 = time.monotonic()
        while not accepts(up_port):
            if upstream.poll() is not None or time.monotonic() - t0 > 30:
                return f"upstream {up} did not start on port {up_port}:\n{tail(up_log)}"
            time.sleep(0.1)
        log(f"upstream {up} on {pair.upstream_urls[up]} ({time.monotonic() - t0:.1f}s)")

    template = open(a.config_template).read() if a.config_template else spec.template
    cfg = os.path.join(work, f"mcpgate-{label}.yaml")
    with open(cfg, "w") as f:
        f.write(template.format(gw_port=gw_port, admin_port=admin_port, upstream_port=ports[0],
                                sessions_key=base64.b64encode(os.urandom(32)).decode(),
                                **{f"{up}_port": p for up, p in up_ports.items()}))
    gw_log = os.path.join(work, f"gateway-{label}.log")
    gateway = PROCS.start(f"gateway-{label}", [gw_bin, "-c", cfg, *a.gateway_arg], gw_log, env=child_env(), cwd=work)
    pair.procs.append(("gateway", gateway, gw_log))
    t0, listen_since, how = time.monotonic(), None, ""
    while not how:
        if gateway.poll() is not None:
            return (f"gateway ({label}) exited with {gateway.returncode} before it was ready. "
                    f"Config {cfg}:\n{open(cfg).read()}\nLog {gw_log}:\n{tail(gw_log)}")
        if time.monotonic() - t0 > 60:
            st = http_status(f"{pair.admin_url}/readyz")
            return f"gateway ({label}) not ready after 60s (readyz: {st}). Log {gw_log}:\n{tail(gw_log)}"
        st = http_status(f"{pair.admin_url}/readyz")
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
    return ""


def conformance_rows(pair: Pair, a, work: str, logs: dict[str, str]) -> list[Row]:
    suite = f"conf/{pair.label}"
    direct_url = pair.upstream_urls[pair.spec.conformance]
    res: dict[str, dict] = {}
    for tag, url in (("direct", direct_url), ("gateway", pair.gateway_url)):
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
            again, _, _ = run_conformance(direct_url, work, f"{pair.label}-direct-{scen}-recheck", scen, a.suite, 300)
            for r in group:
                c = again.get(scen, {}).get(r.check)
                if r.verdict == "improved" and c is not None and c.status == PASS:
                    r.direct, r.verdict = c, "same"
                    log(f"  {suite} {scen} {r.check}: failed directly once, passed directly on a recheck")
        rows += group
    return rows


def client_rows(pair: Pair, a, work: str, logs: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    # Through a federated endpoint the server is the gateway (serverInfo `mcpgate`).
    gw_env = {"PEERS_SERVER_NAME": pair.spec.server_name} if pair.spec.server_name else {}
    prefix = "" if pair.label == pair.spec.clients else f"{pair.label}-"
    for name in CLIENTS:
        got = {}
        for tag, url, env in (("direct", pair.upstream_urls[pair.spec.clients], {}), ("gateway", pair.gateway_url, gw_env)):
            got[tag], lg, secs = run_client(name, url, work, prefix + tag, 120, env)
            log(f"{name} {prefix}{tag}: {len(got[tag])} checks in {secs:.1f}s")
            if tag == "gateway":
                logs[f"{name}/{pair.label}"] = lg
        group = compare(name, pair.label, got["direct"], got["gateway"])

        def rerun(attempt: int, name: str = name) -> dict[str, Check]:
            r, lg, _ = run_client(name, pair.gateway_url, work, f"{prefix}gateway-try{attempt}", 120, gw_env)
            logs[f"{name}/{pair.label}"] = lg
            return r

        retry_group(group, rerun, a.retries)
        rows += group
    return rows


METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def federation_rows(pair: Pair, expect_routed: list[str]) -> list[Row]:
    """After the peers ran: the gateway's /metrics shows no server left out of a session or an
    answer (mcpgate_federation_servers_missing_total 0 for every reason) and calls routed to
    each server in expect_routed."""
    rows: list[Row] = []

    def row(check: str, ok: bool, msg: str) -> None:
        rows.append(Row("harness", pair.label, check, Check(PASS), Check(PASS if ok else FAIL, msg),
                        verdict="same" if ok else "REGRESSION"))

    text = http_text(f"{pair.admin_url}/metrics")
    if text is None:
        row("metrics: GET /metrics answers", False, f"no 200 answer from {pair.admin_url}/metrics")
        return rows
    missing: list[str] = []
    routed: dict[str, float] = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "mcpgate_federation_servers_missing_total" and value != 0:
            missing.append(f"{labels} {value:g}")
        if name == "mcpgate_federation_routed_requests_total":
            server = re.search(r'server="([^"]*)"', labels)
            key = server.group(1) if server else "?"
            routed[key] = routed.get(key, 0.0) + value
    row("metrics: servers_missing_total 0", not missing, "; ".join(missing) or "0 for every server and reason")
    for up in expect_routed:
        n = routed.get(up, 0.0)
        row(f"metrics: calls routed to {up}", n > 0, f"routed_requests_total{{server=\"{up}\"}} {n:g}")
    return rows


def pair_rows(pair: Pair, a, work: str, logs: dict[str, str]) -> list[Row]:
    """Every comparison of a started pair, then its processes' liveness."""
    rows: list[Row] = []
    spec = pair.spec
    if not a.skip_conformance:
        rows += conformance_rows(pair, a, work, logs)
    if spec.clients and not a.skip_clients:
        rows += client_rows(pair, a, work, logs)
    if spec.federated:
        routed = ([spec.conformance] if not a.skip_conformance and not a.scenario else [])
        routed += [spec.clients] if spec.clients and not a.skip_clients else []
        rows += federation_rows(pair, list(dict.fromkeys(routed)))
    for name, p, lg in pair.procs:
        alive = p.poll() is None
        rows.append(Row("harness", pair.label, f"{name} process alive at end", Check(PASS),
                        Check(PASS) if alive else Check(FAIL, f"exited with {p.returncode}; see {lg}"),
                        verdict="same" if alive else "REGRESSION"))
        logs[f"harness/{pair.label}"] = lg
    return rows


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gateway_bin", help="the mcpgate binary (started as GATEWAY_BIN -c CONFIG)")
    ap.add_argument("--gateway-arg", action="append", default=[], help="extra argument for the gateway (repeatable)")
    ap.add_argument("--config-template", help="gateway config template with {gw_port} {admin_port} {upstream_port} "
                                              "(federated: also {fixture_port} {everything_port} {sessions_key})")
    ap.add_argument("--upstream", action="append", choices=list(PAIRS), default=[],
                    help="which pairs to test (repeatable; default: every pair)")
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
    set_deadline(t_start + a.timeout)

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
    for label in a.upstream or [p for p, spec in PAIRS.items() if not spec.opt_in]:
        for attempt in (1, 2):  # a second try with fresh ports, in case another process took one
            pair = Pair(label, PAIRS[label])
            err = start_pair(pair, a, gw_bin, work)
            if not err:
                break
            log(f"start failed (attempt {attempt}): {err.splitlines()[0]}")
            for _, p, _ in reversed(pair.procs):
                Procs.kill(p)
                PROCS.forget(p)
        if err:
            print(f"peers: {err}", file=sys.stderr)
            print(f"logs kept in {work}")
            print("peers: 0 passed, 1 failed")
            return 1 if "gateway" in err.split(":")[0] else 2
        pairs.append(pair)
        rows += pair_rows(pair, a, work, logs)
        for _, p, _ in reversed(pair.procs):
            Procs.kill(p)

    PROCS.stop_all()
    apply_known(rows, load_known(a.known))
    passed = sum(r.ok for r in rows)
    failed = len(rows) - passed
    print(f"\nmcpgate peer comparison ({os.path.basename(gw_bin)}):")
    for pr in pairs:
        print(f"  {pr.label}: {pr.describe()}")
    print()
    print_table(rows)
    print_details(rows, logs)
    summary = {
        "gateway_bin": gw_bin, "work_dir": work,
        "pairs": [{"upstream": pr.label, "direct": pr.upstream_urls[pr.spec.conformance], "gateway": pr.gateway_url,
                   "upstreams": pr.upstream_urls} for pr in pairs],
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
