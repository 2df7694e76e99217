"""The comparison of the peer test (peers.py): one row per check, its result directly and through
the gateway, a verdict (README.md, "Verdicts"), retries of what differs, the table and the list
of differences. Standard library only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from procs import log, past_deadline

PASS, FAIL, WARN, INFO, ABSENT = "pass", "FAIL", "warn", "info", "-"
OK_VERDICTS = ("same", "both-fail", "improved", "optional", "flaky", "known")


@dataclass
class Check:
    status: str  # PASS | FAIL | WARN | INFO (the suite's observation, no verdict)
    message: str = ""


@dataclass
class Row:
    suite: str       # "conf/PAIR" | "py-mcp2" | "py-mcp1" | "harness"
    group: str       # scenario or client
    check: str
    direct: Check | None
    gateway: Check | None
    verdict: str = ""        # same | both-fail | improved | optional | flaky | known | REGRESSION | DIFFERENT
    attempts: int = 1
    gateway_first: Check | None = None  # the first failure, kept for flaky reports
    known: str = ""                      # reason, when listed in a --known file

    @property
    def ok(self) -> bool:
        return self.verdict in OK_VERDICTS


def normalize(msg: str) -> str:
    """Message text with run-specific parts (ports, ids, times, numbers) masked."""
    msg = re.sub(r"https?://[^\s'\"]+", "URL", msg)
    msg = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", msg, flags=re.I)
    return re.sub(r"\d+(\.\d+)?", "#", msg).strip()


def judge(direct: Check | None, gw: Check | None) -> str:
    d = direct.status if direct else ABSENT
    g = gw.status if gw else ABSENT
    if d == PASS and g == INFO:
        # The suite rates what the gateway did as an allowed alternative and gives no verdict
        # (e.g. "Server returned JSON for all requests - SSE streaming is optional").
        return "optional"
    # Otherwise an observation counts as no check at all.
    d, g = (ABSENT if d == INFO else d), (ABSENT if g == INFO else g)
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


def compare(suite: str, group: str, direct: dict[str, Check], gw: dict[str, Check]) -> list[Row]:
    rows = []
    for cid in list(direct) + [c for c in gw if c not in direct]:
        r = Row(suite, group, cid, direct.get(cid), gw.get(cid))
        if all(c is None or c.status == INFO for c in (r.direct, r.gateway)):
            continue  # observations on both sides: nothing to compare
        r.verdict = judge(r.direct, r.gateway)
        rows.append(r)
    return rows


def retry_group(rows: list[Row], rerun, retries: int) -> None:
    """Re-run a scenario/client through the gateway while some of its checks fail there only."""
    for attempt in range(2, retries + 2):
        bad = [r for r in rows if not r.ok]
        if not bad or past_deadline():
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
            if verdict in ("same", "both-fail", "improved", "optional"):
                r.verdict = "flaky"
            else:
                r.verdict = verdict


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


def apply_known(rows: list[Row], known: dict[str, str]) -> None:
    """Rows listed as known differences get the verdict `known` (and count as passed)."""
    for r in rows:
        reason = known.pop(f"{r.suite}/{r.group}/{r.check}", None)
        if reason is not None and not r.ok:
            r.verdict, r.known = "known", reason
        elif reason is not None:
            log(f"listed as known but no longer differs: {r.suite}/{r.group}/{r.check}")


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
