"""OAuth end-to-end test of mcpgate with the Python MCP SDK's own OAuth client.

Usage: oauth_test.py GATEWAY_BIN        (run it through run.sh)

Starts, on ephemeral 127.0.0.1 ports: the test authorization server (authserver.py, in this
process), the demo MCP server (`GATEWAY_BIN demo --upstream-only`), and the gateway configured as
an OAuth 2.1 resource server that trusts that authorization server. Then the SDK client
(`mcp.Client` over Streamable HTTP with `mcp.client.auth.OAuthClientProvider`) connects: it gets a
401, reads the gateway's RFC 9728 metadata, finds the authorization server (RFC 8414), registers
(RFC 7591), authorizes with PKCE S256 and the RFC 8707 `resource`, gets an RS256 JWT and completes
tools/list and tools/call through the gateway. Last come raw requests with tokens the gateway must
refuse. Prints one row per check and, last, `oauth: N passed, M failed`.

Exit 0: every check passed; 1: a check failed; 2: the test could not run (bad arguments, an
upstream that did not start). Environment: OAUTH_TIMEOUT (overall seconds, default 120),
OAUTH_KEEP=1 (keep the work directory even when everything passed).
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from ports import accepts, free_ports  # noqa: E402  (tests/peers/lib)

import anyio
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authserver import SCOPE, AuthServer, new_rsa_key  # noqa: E402

BUDGET_S = float(os.environ.get("OAUTH_TIMEOUT", "120"))
DEADLINE = time.monotonic() + BUDGET_S
SDK_FLOW_TIMEOUT_S = 60.0
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never contacted: the handler reads the redirect itself
ECHO_TEXT = "hi"

CONFIG = """\
listen: 127.0.0.1:{gw}
admin: 127.0.0.1:{admin}
public_url: http://127.0.0.1:{gw}
server: {{upgrade_sock: {work}/up.sock, pid_file: {work}/mcpgate.pid}}
access_log: {{path: {work}/access.log}}
policies:
  oauth:
    authorization_servers: [{as_url}]
  auth:
    jwt:
      jwks_url: {as_url}/jwks.json
      algorithms: [RS256]
      issuer: {as_url}
      scopes: [{scope}]
endpoints:
  - path: /mcp
    backend: {{hosts: [http://127.0.0.1:{up}]}}
"""


def log(msg: str) -> None:
    print(f"[oauth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def remaining(cap: float) -> float:
    return max(0.5, min(cap, DEADLINE - time.monotonic()))


# --------------------------------------------------------------------------- checks


@dataclass
class Row:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.rows.append(Row(name, bool(ok), detail))
        log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        return bool(ok)

    def print(self) -> tuple[int, int]:
        w = max([len(r.name) for r in self.rows] + [5])
        head = f"{'#':>2}  {'check':<{w}}  result  detail"
        print(head)
        print("-" * max(len(head), 60))
        for i, r in enumerate(self.rows, 1):
            print(f"{i:>2}  {r.name:<{w}}  {'pass' if r.ok else 'FAIL':<6}  {r.detail}")
        passed = sum(r.ok for r in self.rows)
        return passed, len(self.rows) - passed


# --------------------------------------------------------------------------- processes


class Procs:
    """Processes this run started; each leads its own process group, ended by its id on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen, int]] = []

    def start(self, name: str, argv: list[str], logfile: str, stop_signal: int = signal.SIGTERM) -> subprocess.Popen:
        with open(logfile, "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        self.procs.append((name, p, stop_signal))
        return p

    @staticmethod
    def kill(p: subprocess.Popen, sig: int, grace: float = 3.0) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
                p.wait(grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
        PROCS.procs = [x for x in PROCS.procs if x[1] is not p]

    def stop_all(self) -> None:
        for _, p, sig in list(reversed(self.procs)):
            self.kill(p, sig)


PROCS = Procs()


def request(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
            timeout: float = 10.0) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One plain HTTP request (no redirects followed). Returns status, headers, body."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=remaining(timeout))
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read(1 << 20)
    finally:
        conn.close()


def wait_for(pred, limit: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.monotonic() + remaining(limit)
    for _ in range(int(limit * 10) + 1):  # bounded in count as well as in time
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return False


def status_of(url: str) -> int | None:
    try:
        return request("GET", url, timeout=2)[0]
    except OSError:
        return None


def tail(path: str, n: int = 8) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- the SDK client side


class MemoryStorage:
    """TokenStorage for OAuthClientProvider: keeps tokens and the registration in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Wraps the real transport and notes every request the SDK makes and what it got back."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.seen: list[dict] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        rpc = None
        if request.method == "POST":
            try:
                rpc = json.loads(request.content).get("method")
            except (ValueError, AttributeError, httpx2.RequestNotRead):
                rpc = None
        entry = {"t": time.monotonic(), "method": request.method, "url": str(request.url), "rpc": rpc,
                 "bearer": request.headers.get("authorization", "").startswith("Bearer ")}
        self.seen.append(entry)
        response = await self.inner.handle_async_request(request)
        entry.update(status=response.status_code, www=response.headers.get("www-authenticate"))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Browser:
    """The user agent: follows the authorization URL and hands the code back to the SDK."""

    def __init__(self) -> None:
        self.authorize_urls: list[str] = []
        self.redirects: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorize_urls.append(authorization_url)
        async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
            r = await http.get(authorization_url)
        location = r.headers.get("location", "")
        if r.status_code not in (302, 303) or not location.startswith(REDIRECT_URI):
            raise RuntimeError(f"/authorize answered {r.status_code} {location or r.text[:200]!r}")
        self.redirects.append(location)
        q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if "code" not in q:
            raise RuntimeError(f"authorization redirect without a code: {q}")
        self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization code was received")
        result, self.result = self.result, None
        return result


@dataclass
class SdkOutcome:
    error: str | None = None
    connected: bool = False
    protocol: str | None = None
    server: str | None = None
    tools: list[str] = field(default_factory=list)
    echo: str | None = None
    echo_is_error: bool | None = None
    t_connected: float | None = None


async def sdk_flow(mcp_url: str, mode: str, storage: MemoryStorage, recorder: RecordingTransport,
                   browser: Browser, out: SdkOutcome) -> None:
    """Connect with the SDK (`mode` as for `mcp.Client`), list the tools and call echo."""
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcpgate-oauth-test",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    http = httpx2.AsyncClient(auth=provider, transport=recorder, timeout=httpx2.Timeout(15, read=30))
    client = Client(
        streamable_http_client(mcp_url, http_client=http),
        read_timeout_seconds=20,
        client_info=types.Implementation(name="mcpgate-oauth-test", version="1"),
        cache=None,
        mode=mode,
    )
    async with http:
        async with client:
            out.connected = True
            out.t_connected = time.monotonic()
            out.protocol = client.protocol_version
            out.server = client.server_info.name if client.server_info else None
            listed = await client.list_tools()
            out.tools = sorted(t.name for t in listed.tools)
            res = await client.call_tool("echo", {"text": ECHO_TEXT})
            out.echo_is_error = bool(res.is_error)
            out.echo = "".join(getattr(c, "text", "") for c in res.content)


def describe(exc: BaseException) -> str:
    subs = getattr(exc, "exceptions", None)
    if subs:
        return "; ".join(f"{type(e).__name__}: {describe(e)}" for e in subs)
    return str(exc) or repr(exc)


# --------------------------------------------------------------------------- the run


def run(gw_bin: str, work: str, rep: Report) -> int:
    auth = AuthServer()
    as_url = auth.start()
    atexit.register(auth.stop)
    log(f"authorization server {as_url}")

    # --- upstream and gateway, with a second try on fresh ports if another process took one
    gw = admin = up = 0
    gw_proc = up_proc = None
    problem = ""
    cfg = os.path.join(work, "mcpgate.yaml")
    for attempt in (1, 2):
        up, gw, admin = free_ports(3)
        up_proc = PROCS.start("upstream", [gw_bin, "demo", "--upstream-only", f"127.0.0.1:{up}"],
                              os.path.join(work, "upstream.log"))
        if not wait_for(lambda: accepts(up), 15, up_proc):
            problem = f"upstream did not start: {tail(os.path.join(work, 'upstream.log'), 3)}"
            log(f"{problem} (attempt {attempt})")
            Procs.kill(up_proc, signal.SIGTERM)
            up_proc = None
            continue
        with open(cfg, "w") as f:
            f.write(CONFIG.format(gw=gw, admin=admin, up=up, work=work, as_url=as_url, scope=SCOPE))
        if attempt == 1 or not rep.rows:
            t = subprocess.run([gw_bin, "-c", cfg, "-t"], capture_output=True, text=True,
                               timeout=remaining(20), stdin=subprocess.DEVNULL)
            msg = (t.stdout + t.stderr).strip().replace("\n", " | ")
            if not rep.add("config valid (mcpgate -c FILE -t)", t.returncode == 0, f"exit {t.returncode}: {msg[:300]}"):
                return 1
        gw_proc = PROCS.start("gateway", [gw_bin, "-c", cfg], os.path.join(work, "gateway.log"), signal.SIGINT)
        ready = f"http://127.0.0.1:{admin}/readyz"
        if wait_for(lambda: status_of(ready) == 200, 30, gw_proc):
            break
        problem = f"gateway not ready: {tail(os.path.join(work, 'gateway.log'), 3)}"
        log(f"{problem} (attempt {attempt})")
        Procs.kill(gw_proc, signal.SIGINT)
        Procs.kill(up_proc, signal.SIGTERM)
        gw_proc = up_proc = None
    if gw_proc is None:
        if problem.startswith("upstream"):
            rep.add("upstream started (mcpgate demo --upstream-only)", False, f"{problem}; see {work}/upstream.log")
            return 2
        rep.add("gateway ready (GET /readyz == 200)", False, f"{problem}; see {work}/gateway.log")
        return 1
    rep.add("gateway ready (GET /readyz == 200)", True, f"gateway :{gw}, admin :{admin}, upstream :{up}, AS {as_url}")

    base = f"http://127.0.0.1:{gw}"
    mcp_url = f"{base}/mcp"
    resource = mcp_url
    prm_url = f"{base}/.well-known/oauth-protected-resource/mcp"
    want_rm = f'resource_metadata="{prm_url}"'
    rpc_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2025-11-25"}
    init_body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcpgate-oauth-test-raw", "version": "1"}}}).encode()

    # --- 1. the raw challenge and the metadata document, as any client sees them
    try:
        st, hd, body = request("POST", mcp_url, rpc_headers, init_body)
        www = hd.get("WWW-Authenticate", "")
        rep.add("POST /mcp without a token: 401 + resource_metadata",
                st == 401 and www.startswith("Bearer ") and want_rm in www,
                f"{st}, WWW-Authenticate: {www}")
    except OSError as e:
        rep.add("POST /mcp without a token: 401 + resource_metadata", False, f"{type(e).__name__}: {e}")
    try:
        st, hd, body = request("GET", prm_url)
        doc = json.loads(body) if st == 200 else {}
        ok = (st == 200 and doc.get("resource") == resource and as_url in (doc.get("authorization_servers") or [])
              and SCOPE in (doc.get("scopes_supported") or []))
        rep.add("RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp", ok,
                f"{st} {body.decode(errors='replace')[:300]}")
    except (OSError, ValueError) as e:
        rep.add("RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp", False, f"{type(e).__name__}: {e}")

    # --- 2. the SDK's own OAuth flow with the initialize handshake, then tools/list and tools/call;
    #        then a second connection in the SDK's default mode (server/discover) with the stored token
    storage, browser = MemoryStorage(), Browser()
    recorder, out = RecordingTransport(), SdkOutcome()
    recorder2, out2 = RecordingTransport(), SdkOutcome()

    def run_sdk(mode: str, rec: RecordingTransport, res: SdkOutcome, label: str) -> None:
        async def bounded() -> None:
            with anyio.fail_after(remaining(SDK_FLOW_TIMEOUT_S)):
                await sdk_flow(mcp_url, mode, storage, rec, browser, res)

        t0 = time.monotonic()
        try:
            anyio.run(bounded)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            res.error = f"{type(exc).__name__}: {describe(exc)}"
            with open(os.path.join(work, f"sdk-error-{label}.txt"), "w") as f:
                traceback.print_exc(file=f)
        log(f"SDK {label} ({mode}) took {time.monotonic() - t0:.2f}s" + (f", error {res.error}" if res.error else ""))

    run_sdk("legacy", recorder, out, "oauth-flow")
    as_requests_after_flow = len(auth.log)
    if out.connected:
        run_sdk("auto", recorder2, out2, "stored-token")
    with open(os.path.join(work, "sdk-requests.json"), "w") as f:
        json.dump({"sdk": recorder.seen, "sdk_stored_token": recorder2.seen, "authorize": browser.authorize_urls,
                   "as": auth.log}, f, indent=1, default=str)

    def short(u: str) -> str:
        return u.replace(base, "GW").replace(as_url, "AS")

    def flow_str(rec: RecordingTransport, limit: int = 12) -> str:
        events = [(e["t"], f"{e['method']} {short(e['url'])}{' ' + e['rpc'] if e['rpc'] else ''}"
                            f"{' +bearer' if e['bearer'] else ''} -> {e.get('status')}") for e in rec.seen]
        if rec is recorder:
            events += [(e["t"], f"(browser) GET AS/authorize -> {e.get('status')}") for e in auth.entries("authorize")]
        return "; ".join(s for _, s in sorted(events)[:limit])

    log(f"SDK requests (OAuth flow): {flow_str(recorder, 40)}")
    log(f"SDK requests (stored token): {flow_str(recorder2, 40)}")
    gw_reqs = [e for e in recorder.seen if e["url"].startswith(mcp_url)]
    first = gw_reqs[0] if gw_reqs else None
    rep.add("SDK: first request to the gateway got 401 + resource_metadata",
            first is not None and first.get("status") == 401 and not first["bearer"]
            and want_rm in (first.get("www") or ""),
            f"{first['method']} {first['rpc']} -> {first.get('status')}, WWW-Authenticate: {first.get('www')}"
            if first else f"no request reached the gateway ({out.error})")

    prm_reqs = [e for e in recorder.seen if "/.well-known/oauth-protected-resource" in e["url"]]
    rep.add("SDK: read the gateway's RFC 9728 metadata (URL from resource_metadata)",
            bool(prm_reqs) and prm_reqs[0]["url"] == prm_url and prm_reqs[0].get("status") == 200,
            "; ".join(f"GET {short(e['url'])} -> {e.get('status')}" for e in prm_reqs) or "never fetched")

    asm = [e for e in recorder.seen if e["url"].startswith(as_url + "/.well-known/")]
    rep.add("SDK: found the AS and read its RFC 8414 metadata",
            any(e["url"] == f"{as_url}/.well-known/oauth-authorization-server" and e.get("status") == 200 for e in asm),
            "; ".join(f"GET {short(e['url'])} -> {e.get('status')}" for e in asm) or "never fetched")

    regs = auth.entries("register")
    rep.add("SDK: dynamic client registration (RFC 7591)", any(e.get("status") == 201 for e in regs),
            "; ".join(f"{e.get('status')} {e.get('client_id') or e.get('description')}"
                      f" redirect_uris={(e.get('requested') or {}).get('redirect_uris')}" for e in regs) or "no /register")

    authz = auth.entries("authorize")
    a = authz[-1] if authz else {}
    p = a.get("params", {})
    rep.add("AS /authorize: PKCE S256 challenge + resource = gateway resource",
            a.get("status") == 302 and p.get("code_challenge_method") == "S256" and bool(p.get("code_challenge"))
            and p.get("resource") == resource,
            (f"{a.get('status')} {a.get('description') or ''} code_challenge_method={p.get('code_challenge_method')}"
             f" resource={p.get('resource')} scope={p.get('scope')} state={'yes' if p.get('state') else 'no'}")
            if authz else "no /authorize request")

    toks = auth.entries("token")
    tk = toks[-1] if toks else {}
    tp = tk.get("params", {})
    rep.add("AS /token: valid PKCE verifier + resource = gateway resource",
            tk.get("status") == 200 and tk.get("pkce_ok") is True and tp.get("resource") == resource,
            (f"{tk.get('status')} {tk.get('description') or ''} pkce_ok={tk.get('pkce_ok')}"
             f" verifier_len={tk.get('verifier_len')} resource={tp.get('resource')}") if toks else "no /token request")

    claims = auth.issued[-1] if auth.issued else {}
    rep.add("token issued: RS256, iss = AS, aud = gateway resource, scope",
            bool(claims) and claims.get("aud") == resource and claims.get("iss") == as_url and claims.get("scope") == SCOPE,
            f"iss={claims.get('iss')} aud={claims.get('aud')} sub={claims.get('sub')} scope={claims.get('scope')}"
            if claims else "no token issued")

    after = [e for e in gw_reqs if e["bearer"]]
    refused = [e for e in after if e.get("status") in (401, 403)]
    inits = [e for e in after if e["rpc"] == "initialize"]
    rep.add("SDK: initialize through the gateway with the token",
            out.connected and bool(inits) and all(e.get("status") == 200 for e in inits) and not refused,
            (f"protocol {out.protocol}, server {out.server}; {len(after)} gateway requests with the token, "
             f"{len(refused)} refused" + (f"; error: {out.error}" if out.error else "")) if out.connected
            else f"not connected: {out.error}; flow: {flow_str(recorder)}")

    rep.add("SDK: tools/list", "echo" in out.tools, ", ".join(out.tools) or f"no tools ({out.error})")
    rep.add(f"SDK: tools/call echo {{\"text\":\"{ECHO_TEXT}\"}} = \"{ECHO_TEXT}\"",
            out.echo == ECHO_TEXT and out.echo_is_error is False,
            f"{out.echo!r} is_error={out.echo_is_error}" if out.echo is not None else f"no result ({out.error})")

    gw2 = [e for e in recorder2.seen if e["url"].startswith(mcp_url)]
    as_again = auth.log[as_requests_after_flow:]
    rep.add("SDK again, default mode (server/discover), stored token: echo",
            out2.echo == ECHO_TEXT and bool(gw2) and all(e["bearer"] and e.get("status") not in (401, 403) for e in gw2)
            and not [e for e in as_again if e["endpoint"] in ("register", "authorize", "token")],
            (f"protocol {out2.protocol}; {len(gw2)} gateway requests, statuses "
             f"{sorted({e.get('status') for e in gw2})}; {out2.echo!r}; new AS requests: "
             f"{[e['endpoint'] for e in as_again] or 'none'}") + (f"; error: {out2.error}" if out2.error else ""))

    # --- 3. raw requests with good and bad tokens
    good = storage.tokens.access_token if storage.tokens else auth.sign(auth.claims(resource))
    other_key = new_rsa_key()
    bad_tokens = [
        ("token signed by a different key (same kid): 401 invalid_token",
         auth.sign(auth.claims(resource), key=other_key)),
        ("token signed by an unknown key (new kid): 401 invalid_token",
         auth.sign(auth.claims(resource), key=other_key, kid="mcpgate-oauth-test-unknown")),
        ("token for another audience (RFC 8707): 401 invalid_token",
         auth.sign(auth.claims(f"{base}/other"))),
    ]

    def post_with(token: str) -> tuple[int, str, str]:
        st, hd, body = request("POST", mcp_url, {**rpc_headers, "Authorization": f"Bearer {token}"}, init_body)
        return st, hd.get("WWW-Authenticate", ""), body.decode(errors="replace")

    try:
        st, www, body = post_with(good)
        rep.add("control: the issued token on a raw initialize: 200", st == 200, f"{st} {body[:120]!r}")
    except OSError as e:
        rep.add("control: the issued token on a raw initialize: 200", False, f"{type(e).__name__}: {e}")
    for name, token in bad_tokens:
        try:
            jwks_before = len(auth.entries("jwks"))
            st, www, body = post_with(token)
            refetched = len(auth.entries("jwks")) - jwks_before
            rep.add(name, st == 401 and 'error="invalid_token"' in www and want_rm in www,
                    f"{st}, WWW-Authenticate: {www or '(none)'}; body {body[:160]!r}"
                    + (f"; the gateway refetched the JWKS {refetched}x" if refetched else ""))
        except OSError as e:
            rep.add(name, False, f"{type(e).__name__}: {e}")

    scopeless = auth.sign(auth.claims(resource, scope="openid"))
    name = f"token without the {SCOPE} scope: 403 insufficient_scope"
    try:
        st, www, body = post_with(scopeless)
        rep.add(name, st == 403 and 'error="insufficient_scope"' in www and f'scope="{SCOPE}"' in www
                and want_rm in www, f"{st}, WWW-Authenticate: {www or '(none)'}; body {body[:160]!r}")
    except OSError as e:
        rep.add(name, False, f"{type(e).__name__}: {e}")
    bad_tokens.append(("token without the scope", scopeless))

    # --- 4. nothing secret in the gateway's logs, and everything still running
    time.sleep(0.3)  # access-log lines are written off the request path
    texts = ""
    for name in ("access.log", "gateway.log"):
        try:
            with open(os.path.join(work, name), errors="replace") as f:
                texts += f.read()
        except OSError:
            pass
    leaked = [label for label, tok in [("issued token", good)] + [(n.split(":")[0], t) for n, t in bad_tokens]
              if tok.rsplit(".", 1)[-1] in texts]
    n_access = texts.count("\n")
    rep.add("no token in the access log or gateway log", not leaked and n_access > 0,
            f"leaked: {', '.join(leaked)}" if leaked else f"{n_access} log lines checked")
    jwks_fetches = len(auth.entries("jwks"))
    log(f"JWKS fetched {jwks_fetches} time(s) by the gateway")
    for name, proc, lg in (("gateway", gw_proc, "gateway.log"), ("upstream", up_proc, "upstream.log")):
        alive = proc.poll() is None
        rep.add(f"{name} process alive at end", alive, "running" if alive else f"exited {proc.returncode}; see {work}/{lg}")
    return 0


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    gw_bin = sys.argv[1]
    gw_bin = os.path.abspath(gw_bin) if os.sep in gw_bin else (shutil.which(gw_bin) or gw_bin)
    if not (os.path.isfile(gw_bin) and os.access(gw_bin, os.X_OK)):
        print(f"oauth: gateway binary {sys.argv[1]!r} is not an executable file", file=sys.stderr)
        print("oauth: 0 passed, 1 failed")
        return 2

    work = tempfile.mkdtemp(prefix="mcpgate-oauth-")
    atexit.register(PROCS.stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    log(f"work dir {work}, budget {BUDGET_S:.0f}s")
    rep = Report()
    t0 = time.monotonic()
    rc = 2
    try:
        rc = run(gw_bin, work, rep)
    except BaseException as exc:  # noqa: BLE001 - a signal arrives as SystemExit, maybe inside a group
        code = next((e.code for e in [exc, *getattr(exc, "exceptions", [])] if isinstance(e, SystemExit)), None)
        if isinstance(exc, KeyboardInterrupt):
            code = 130
        if code is not None:
            rep.add("run completed", False, f"interrupted (exit {code})")
            rc = int(code)
        else:
            traceback.print_exc()
            rep.add("test harness", False, f"{type(exc).__name__}: {describe(exc)}")
    finally:
        PROCS.stop_all()
    passed, failed = rep.print()
    if failed == 0 and passed == 0:
        failed = 1
    keep = failed > 0 or os.environ.get("OAUTH_KEEP") == "1"
    print(f"took {time.monotonic() - t0:.1f}s; " + (f"work dir kept: {work}" if keep else "work dir removed"))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"oauth: {passed} passed, {failed} failed", flush=True)
    if failed == 0:
        return 0
    return rc if rc == 2 or rc > 128 else 1


if __name__ == "__main__":
    sys.exit(main())
