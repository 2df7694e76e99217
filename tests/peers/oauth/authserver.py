"""A small OAuth 2.1 authorization server for the mcpgate OAuth test.

It serves, on 127.0.0.1 only:
  GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
  POST /register                                 RFC 7591 dynamic client registration (public clients)
  GET  /authorize                                authorization code with PKCE S256; approves at once by
                                                 redirecting to the client's registered redirect_uri
  POST /token                                    authorization_code grant; checks the PKCE verifier and the
                                                 RFC 8707 `resource`, and issues an RS256 JWT whose `aud` is
                                                 that resource
  GET  /jwks.json                                the public signing key (kid, alg RS256)

Everything it sees is recorded in `AuthServer.log` so that a test can assert on it. Uses the standard
library's http.server plus PyJWT and cryptography (both in the peers' py-mcp2 venv).

Run alone for a look: `python authserver.py` prints its URL and serves until interrupted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

SCOPE = "mcp:tools"
TOKEN_LIFETIME_S = 300
CODE_LIFETIME_S = 60
# RFC 7636 section 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


class AuthServer:
    """The authorization server; `start()` serves it from a daemon thread, `stop()` ends it."""

    def __init__(self, kid: str = "mcpgate-oauth-test-1") -> None:
        self.kid = kid
        self.key = new_rsa_key()
        self.log: list[dict] = []          # one entry per request, in order
        self.clients: dict[str, dict] = {}  # client_id -> registration
        self.codes: dict[str, dict] = {}    # code -> what /authorize saw
        self.issued: list[dict] = []        # claims of every token /token issued
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> str:
        server = self

        class Handler(_Handler):
            auth = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="authserver", daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    # ---- tokens

    def jwks(self) -> dict:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def claims(self, audience: str, subject: str = "oauth-test-user", **extra) -> dict:
        now = int(time.time())
        c = {"iss": self.url, "sub": subject, "aud": audience, "iat": now, "nbf": now,
             "exp": now + TOKEN_LIFETIME_S, "scope": SCOPE, "jti": secrets.token_hex(8)}
        c.update(extra)
        return c

    def sign(self, claims: dict, key: rsa.RSAPrivateKey | None = None, kid: str | None = None) -> str:
        """Sign claims with this server's key, or with another `key` (for forged-token checks)."""
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def record(self, entry: dict) -> None:
        with self.lock:
            entry["t"] = time.monotonic()
            self.log.append(entry)

    def entries(self, endpoint: str) -> list[dict]:
        with self.lock:
            return [e for e in self.log if e["endpoint"] == endpoint]


class _Handler(BaseHTTPRequestHandler):
    auth: AuthServer
    protocol_version = "HTTP/1.1"
    server_version = "mcpgate-oauth-test-as"

    def log_message(self, format, *args):  # noqa: A002 - quiet; AuthServer.log has everything
        pass

    # ---- plumbing

    def _send(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, entry: dict, error: str, description: str) -> None:
        entry.update(status=status, error=error, description=description)
        self.auth.record(entry)
        self._send(status, {"error": error, "error_description": description})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(n, 1 << 20)) if n > 0 else b""

    # ---- routes

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/.well-known/oauth-authorization-server":
            return self._metadata()
        if url.path == "/jwks.json":
            self.auth.record({"endpoint": "jwks", "status": 200})
            return self._send(200, self.auth.jwks())
        if url.path == "/authorize":
            return self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
        self.auth.record({"endpoint": "other", "method": "GET", "path": url.path, "status": 404})
        self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/register":
            return self._register(body)
        if path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            return self._token(form, self.headers.get("Content-Type", ""))
        self.auth.record({"endpoint": "other", "method": "POST", "path": path, "status": 404})
        self._send(404, {"error": "not_found"})

    def _metadata(self) -> None:
        base = self.auth.url
        self.auth.record({"endpoint": "metadata", "status": 200})
        self._send(200, {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "jwks_uri": f"{base}/jwks.json",
            "scopes_supported": [SCOPE],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
        })

    def _register(self, body: bytes) -> None:
        entry: dict = {"endpoint": "register"}
        try:
            meta = json.loads(body)
        except ValueError:
            return self._error(400, entry, "invalid_client_metadata", "body is not JSON")
        uris = meta.get("redirect_uris") if isinstance(meta, dict) else None
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return self._error(400, entry, "invalid_redirect_uri", "redirect_uris must be a non-empty list")
        client_id = "client-" + secrets.token_hex(8)
        reg = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "redirect_uris": uris,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "client_name": meta.get("client_name"),
            "scope": meta.get("scope") or SCOPE,
        }
        with self.auth.lock:
            self.auth.clients[client_id] = reg
        entry.update(status=201, client_id=client_id, requested=meta)
        self.auth.record(entry)
        self._send(201, reg)

    def _authorize(self, q: dict) -> None:
        entry: dict = {"endpoint": "authorize", "params": dict(q)}
        reg = self.auth.clients.get(q.get("client_id", ""))
        if reg is None:
            return self._error(400, entry, "invalid_client", "unknown client_id")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in reg["redirect_uris"]:
            return self._error(400, entry, "invalid_request", "redirect_uri is not registered")
        # From here on errors could go back to the redirect_uri; a test wants them loud, so 400.
        if q.get("response_type") != "code":
            return self._error(400, entry, "unsupported_response_type", "response_type must be code")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return self._error(400, entry, "invalid_request", "PKCE S256 code_challenge required")
        if not q.get("resource"):
            return self._error(400, entry, "invalid_target", "resource (RFC 8707) required")
        code = secrets.token_urlsafe(24)
        with self.auth.lock:
            self.auth.codes[code] = {
                "client_id": reg["client_id"], "redirect_uri": redirect_uri,
                "challenge": q["code_challenge"], "resource": q["resource"],
                "scope": q.get("scope"), "expires": time.time() + CODE_LIFETIME_S, "used": False,
            }
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if urlsplit(redirect_uri).query else "?"
        location = f"{redirect_uri}{sep}{urlencode(params)}"
        entry.update(status=302, code_issued=True)
        self.auth.record(entry)
        self._send(302, None, {"Location": location})

    def _token(self, form: dict, content_type: str) -> None:
        entry: dict = {"endpoint": "token", "params": {k: v for k, v in form.items() if k != "code_verifier"},
                       "content_type": content_type}
        verifier = form.get("code_verifier", "")
        entry["verifier_len"] = len(verifier)
        if form.get("grant_type") != "authorization_code":
            return self._error(400, entry, "unsupported_grant_type", "only authorization_code")
        with self.auth.lock:
            grant = self.auth.codes.get(form.get("code", ""))
            if grant is not None:
                already_used, grant["used"] = grant["used"], True
        if grant is None or already_used or grant["expires"] < time.time():
            return self._error(400, entry, "invalid_grant", "unknown, used or expired code")
        if form.get("client_id") != grant["client_id"]:
            return self._error(400, entry, "invalid_grant", "code was issued to another client")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._error(400, entry, "invalid_grant", "redirect_uri differs from the authorization request")
        entry["verifier_format_ok"] = bool(VERIFIER_RE.match(verifier))
        entry["pkce_ok"] = entry["verifier_format_ok"] and secrets.compare_digest(s256(verifier), grant["challenge"])
        if not entry["pkce_ok"]:
            return self._error(400, entry, "invalid_grant", "PKCE code_verifier does not match the code_challenge")
        resource = form.get("resource")
        entry["authorize_resource"] = grant["resource"]
        if not resource:
            return self._error(400, entry, "invalid_target", "resource (RFC 8707) required")
        if resource != grant["resource"]:
            return self._error(400, entry, "invalid_target", "resource differs from the authorization request")
        claims = self.auth.claims(resource, client_id=grant["client_id"])
        token = self.auth.sign(claims)
        with self.auth.lock:
            self.auth.issued.append(claims)
        entry.update(status=200, aud=resource)
        self.auth.record(entry)
        self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S,
                         "scope": SCOPE})


if __name__ == "__main__":
    srv = AuthServer()
    print(srv.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
