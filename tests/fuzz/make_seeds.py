#!/usr/bin/env python3
"""Writes the seed corpora under seeds/<target>/: JSON-RPC bodies taken from mcpgate's own test
fixtures (every `{"jsonrpc"...}` literal in src/ and tests/), bodies as the MCP SDKs send them,
tools/list answers in JSON and SSE framing, SSE events, session-token and JWT inputs, and the
config files of conf/. Run from anywhere; rewrites the seeds (deterministic)."""
import base64, glob, hashlib, hmac, json, os, re, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "seeds")

def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# JSON-RPC bodies from the test fixtures.
fixtures = set()
for path in glob.glob(os.path.join(ROOT, "src/**/*.rs"), recursive=True) + glob.glob(os.path.join(ROOT, "tests/*.rs")):
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r'r#"(\[?\{"jsonrpc".*?)"#', text):
        fixtures.add(m.group(1))
# As the SDKs send them (TypeScript and Python clients, 2025-06-18).
sdk = [
    {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}}, "clientInfo": {"name": "mcp-python", "version": "1.12.0"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "abc"}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi", "n": 3, "flag": True, "nested": {"a": [1, 2.5, None]}}, "_meta": {"progressToken": "p1"}}},
    {"jsonrpc": "2.0", "id": "r-3", "method": "resources/read", "params": {"uri": "file:///etc/motd"}},
    {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "greet", "arguments": {"who": "\u00e9l\u00e8ve"}}},
    {"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "ok"}]}},
    {"jsonrpc": "2.0", "id": 6, "error": {"code": -32601, "message": "Method not found"}},
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2, "reason": "timeout"}},
]
bodies = sorted(fixtures) + [json.dumps(m, separators=(",", ":")) for m in sdk]
bodies.append(json.dumps(sdk[:3]))
bodies.append(json.dumps(sdk[3], indent=2))
for i, b in enumerate(bodies):
    put("inspect", f"body-{i:03}", b)

# tools/list answers.
tools = [{"name": "echo", "description": "Echoes", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
         {"name": "secret_admin", "inputSchema": {"type": "object"}},
         {"name": "add", "title": "Add", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}]
answer = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "n1"}}
compact = json.dumps(answer, separators=(",", ":"))
pretty = json.dumps(answer, indent=2)
sse = f"event: message\nid: 1\ndata: {compact}\n\n"
sse_pretty = "event: message\n" + "".join(f"data: {l}\n" for l in pretty.split("\n")) + "\n"
sse_crlf = f": keepalive\r\n\r\nevent: message\r\ndata: {compact}\r\n\r\n"
notif = 'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}\n\n'
for i, (flags, cuts, body) in enumerate([
    (0, [], compact), (2, [5, 40], compact), (1, [3], sse), (9, [1, 1, 1], sse_pretty),
    (1, [10, 200], notif + sse), (5, [], sse_crlf), (0, [2], "\ufeff" + pretty), (6, [7], json.dumps([answer, answer])),
    (1, [], "retry: 1000\n\n" + sse + notif), (0, [], '{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'),
]):
    put("tools_filter", f"answer-{i:02}", bytes([flags, len(cuts)] + cuts) + body.encode())
    if "data:" in body:
        for j, event in enumerate(body.split("\n\n")):
            if event:
                put("sse_event", f"event-{i:02}-{j}", event + "\n")
put("sse_event", "fields", "data\ndata:\ndata:  two spaces\nevent:x\nid\nretry: 5\n:comment\r\ndata:last\r")

# Session tokens: mode 0 (a token-shaped text that was never sealed with the key), mode 1 (path,
# host and session to seal).
fake = base64.urlsafe_b64encode(hashlib.sha256(b"nonce").digest()[:12] + b"\x00\x15http://10.0.0.1:3000" + b"sess-1" + b"\x00" * 16).decode().rstrip("=")
put("session_token", "unsealed", b"\x00s1." + fake.encode() + b"\x00/mcp")
put("session_token", "unsealed-prefix", b"\x02s1.\x00/mcp")
put("session_token", "seal", b"\x01\x40\x07/mcp\x00http://127.0.0.1:3001\x00c0ffee-session-1")
put("session_token", "seal-utf8", b"\x01\xff\x33/a/b\x00https://h\xc3\xa9te:8443/x\x00\xe2\x98\x83" + b"s" * 300)

# JWTs: header and claims signed by the target (mode 1), another key (2), tampered (3), raw (0).
header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
claims = json.dumps({"sub": "alice", "iss": "https://idp.example/", "aud": "https://gw.example/mcp", "exp": 4102444800, "nbf": 1600000000, "realm": {"roles": ["admin", "dev"]}, "scope": "read write"}).encode()
for mode in (1, 2, 3):
    put("jwt", f"mode-{mode}", bytes([mode, 0x80, 0x11]) + header + b"\x00" + claims)
put("jwt", "crit", bytes([1, 0, 0]) + json.dumps({"alg": "HS256", "crit": ["b64"]}).encode() + b"\x00" + claims)
put("jwt", "aud-list", bytes([1, 0, 0]) + header + b"\x00" + json.dumps({"sub": "bob", "iss": "https://idp.example/", "aud": ["x", "https://gw.example/mcp"], "exp": 4102444800.5}).encode())
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
raw = b64(header) + "." + b64(claims)
raw += "." + b64(hmac.new(b"wrong key wrong key wrong key 123", raw.encode(), hashlib.sha256).digest())
put("jwt", "raw", bytes([0, 0, 0]) + raw.encode())
put("jwt", "raw-none", bytes([0, 0, 0]) + (b64(b'{"alg":"none"}') + "." + b64(claims) + ".").encode())

# Mcp-Name / Mcp-Param headers: flags, pick, a value to decode, a body, header pairs.
call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "deploy", "arguments": {"region": "eu-west", "count": 3, "dry": False, "ratio": 0.5, "note": " spaced "}}})
read = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///caf\u00e9"}})
for i, (flags, value, body, pairs) in enumerate([
    (0, "=?base64?ZGVwbG95?=", call, [("mcp-method", "tools/call"), ("mcp-name", "deploy"), ("mcp-param-region", "eu-west")]),
    (1, "plain-name", call, [("mcp-param-count", "3.0"), ("Mcp-Param-Dry", "false")]),
    (1, "=?base64?ZmlsZTovLy9jYWbDqQ==?=", read, [("mcp-name", "=?base64?ZmlsZTovLy9jYWbDqQ==?=")]),
    (0, "=?base64?ZGVwbG95?", json.dumps([json.loads(call)]), [("mcp-method", "tools/call")]),
]):
    data = bytes([flags, i]) + value.encode() + b"\x00" + body.encode()
    for k, v in pairs:
        data += b"\x00" + k.encode() + b"\x00" + v.encode()
    put("mcp_headers", f"headers-{i}", data)

# Config files: YAML (0) and JSON (1), mcpgate's and KrakenD's.
for path in sorted(glob.glob(os.path.join(ROOT, "conf/**/*.*"), recursive=True)):
    name = os.path.basename(path)
    kind = 1 if name.endswith(".json") else 0
    put("config", name, bytes([kind]) + open(path, "rb").read())
put("config", "minimal.yaml", b"\x00listen: 127.0.0.1:8080\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n")
put("config", "minimal.json", b'\x01{"listen":"127.0.0.1:8080","endpoints":[{"path":"/mcp","backend":{"hosts":["http://127.0.0.1:3000"]}}]}')
put("config", "krakend-min.json", b'\x01{"version":3,"endpoints":[{"endpoint":"/mcp","method":"POST","output_encoding":"no-op","backend":[{"host":["http://127.0.0.1:3000"],"url_pattern":"/mcp","encoding":"no-op"}]}]}')
# A KrakenD file as tests/krakend.rs writes it (JWT, CORS, rate limit, CEL, Martian, circuit
# breaker), and federated configs as tests/federation writes them.
richer = {
    "$schema": "https://www.krakend.io/schema/v2.12/krakend.json", "version": 3, "port": 8080, "listen_ip": "127.0.0.1", "timeout": "10s",
    "extra_config": {"security/cors": {"allow_origins": ["https://app.example.com"], "allow_methods": ["POST", "GET"], "max_age": "1h"}},
    "endpoints": [
        {"endpoint": "/mcp", "method": "POST", "output_encoding": "no-op", "input_headers": ["Authorization", "X-Tenant"],
         "extra_config": {
             "auth/validator": {"alg": "HS256", "jwk_local_path": "/tmp/jwk.json", "roles": ["admin"], "roles_key": "roles", "propagate_claims": [["sub", "X-User"]]},
             "qos/ratelimit/router": {"max_rate": 2, "every": "1m", "capacity": 2},
             "validation/cel": [{"check_expr": "req_headers['X-Tenant'][0] == 'acme' && req_method == 'POST'"}],
             "modifier/martian": {"fifo.Group": {"scope": ["request"], "aggregateErrors": True, "modifiers": [
                 {"header.Modifier": {"scope": ["request"], "name": "X-Injected", "value": "from-gateway"}},
                 {"header.Blacklist": {"scope": ["request"], "names": ["X-Tenant"]}}]}}},
         "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"], "extra_config": {"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 5}}}]},
        {"endpoint": "/mcp", "method": "GET", "output_encoding": "no-op", "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"], "extra_config": {}}]},
    ],
}
put("config", "krakend-richer.json", b"\x01" + json.dumps(richer, indent=2).encode())
richer["endpoints"][0]["extra_config"] = {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp.example.com/jwks", "cookie_key": "token"}, "security/bot-detector": {"deny": ["curl"]}}
richer["debug_endpoint"] = True
richer["extra_config"] = {"telemetry/logging": {"level": "DEBUG", "stdout": True}}
put("config", "krakend-unsupported.json", b"\x01" + json.dumps(richer).encode())
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
fed = f"sessions:\n  key: {KEY}\nendpoints:\n  - path: /mcp\n    federation:\n      deadline: 5s\n    servers:\n"
for alias, port, required in [("a", 3001, "true"), ("b", 3002, "false"), ("c", 3003, "false")]:
    fed += f"      - alias: {alias}\n        required: {required}\n        backend:\n          hosts: [http://127.0.0.1:{port}]\n          path: /mcp\n"
fed_c = fed + "        tools:\n          deny: [\"secret_*\"]\n"
put("config", "federation-test.yaml", b"\x00" + fed.encode())
put("config", "federation-deny.yaml", b"\x00" + fed_c.encode())
put("config", "federation-bad-alias.yaml", b"\x00" + fed.replace("alias: b", "alias: B_x").encode())
put("config", "federation-both.json", b'\x01' + json.dumps({"sessions": {"key": KEY}, "endpoints": [{"path": "/mcp", "backend": {"hosts": ["http://127.0.0.1:3000"]}, "servers": [{"alias": "a", "backend": {"hosts": ["http://127.0.0.1:3001"]}}]}]}).encode())

# Federation tokens (federation_token): mode, mutation position and byte, path, then mode 0:
# identity and any text as the token; 1: expiry (8 bytes LE), identity, version, then per
# server a flags byte (odd: with a session id), alias, host, [session], version; 2: expiry,
# identity, method, then per server a non-zero byte, alias, its cursor. Sessions and cursors
# as tests/federation and token.rs use them.
le = lambda n: n.to_bytes(8, "little")
ident = hashlib.sha256(b"jwt\0alice").digest()[:12].hex()
def srv(flags, alias, host, session, version):
    out = bytes([flags]) + alias.encode() + b"\0" + host.encode() + b"\0"
    if flags % 2:
        out += session.encode() + b"\0"
    return out + version.encode() + b"\0"
two = srv(1, "a", "http://127.0.0.1:3001", "up-1", "2025-06-18") + srv(2, "b", "http://127.0.0.1:3002", "", "2025-03-26")
put("federation_token", "session", b"\x01\x80\x41/mcp\0" + le(2000) + ident.encode() + b"\0" + b"2025-06-18\0" + two)
put("federation_token", "session-anon", b"\x04\x00\x00/mcp\0" + le(4102444800) + b"\0" + b"2025-06-18\0" + srv(1, "c", "http://127.0.0.1:3003", "c-session", "2025-06-18") + b"\0")
put("federation_token", "session-expired", b"\x07\xff\x2e/mcp\0" + le(0) + b"\0" + b"2025-03-26\0")
put("federation_token", "session-utf8", b"\x01\x10\xff/caf\xc3\xa9\0" + le(1 << 63) + b"\xe2\x98\x83\0" + b"v\0" + srv(3, "\xc3\xa9", "https://h:1/\"x\\", "s" * 200, "\x7f") + b"\0")
put("federation_token", "cursor", b"\x02\x40\x00/mcp\0" + le(2000) + b"\0" + b"tools/list\0" + b"\x01a\0p2\0\x01c\0" + b"\0")
put("federation_token", "cursor-many", b"\x05\xc0\x2d/mcp\0" + le(1 << 40) + ident.encode() + b"\0prompts/list\0" + b"".join(b"\x01s%d\0cur-%d\0" % (i, i) for i in range(6)))
put("federation_token", "garbage", b"\x00\x00\x00/mcp\0\0f1.!!!")
put("federation_token", "pinning-token", b"\x03\x00\x00/mcp\0\0s1." + base64.urlsafe_b64encode(bytes(40)).rstrip(b"="))
fake = base64.urlsafe_b64encode(hashlib.sha256(b"k").digest()[:4] + bytes(12) + b'{"x":1}' + bytes(16)).rstrip(b"=")
put("federation_token", "unsealed", b"\x00\x00\x00/mcp\0" + ident.encode() + b"\0f1." + fake)
try:  # Real sealed tokens (key K1, a fixed nonce; src/federation.rs lists them): mutations must not open.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    k1 = base64.b64decode(KEY)
    kid = hashlib.sha256(k1).digest()[:4]
    def sealed(kind, path, value):
        plain = json.dumps(value, separators=(",", ":")).encode()
        nonce = hashlib.sha256(plain).digest()[:12]
        ct = AESGCM(k1).encrypt(nonce, plain, b"mcpgate-federation\0" + kind + b"\0" + path)
        return b"f1." + base64.urlsafe_b64encode(kid + nonce + ct).rstrip(b"=")
    sess = {"x": 4102444800, "i": ident, "v": "2025-06-18", "s": [{"a": "a", "h": "http://127.0.0.1:3001", "s": "up-1", "v": "2025-06-18"}, {"a": "b", "h": "http://127.0.0.1:3002", "v": "2025-03-26"}]}
    put("federation_token", "sealed-session", b"\x00\x00\x00/mcp\0" + ident.encode() + b"\0" + sealed(b"session", b"/mcp", sess))
    put("federation_token", "sealed-cursor", b"\x00\x00\x00/mcp\0\0" + sealed(b"cursor", b"/mcp", {"x": 4102444800, "i": "", "m": "tools/list", "c": [["a", "p2"]]}))
except ImportError:
    pass

# Exposed names (federation_names): prefix flag, alias, name or URI, as names.rs's tests use them.
for i, (prefix, alias, name) in enumerate([
    (1, "fs", "read_file"), (0, "fs", "read_file"), (1, "my-db", "q"), (1, "demo", "t" * 100), (0, "demo", "t" * 100),
    (1, "fs", "files.read"), (1, "ab", "x" * 61), (1, "docs", "file:///readme.txt"), (1, "a1", "mem://x+y"),
    (1, "Docs", "x"), (1, "do_cs", "x"), (1, "a+b", "c"), (0, "", ""), (1, "caf\u00e9", "\u00e9l\u00e8ve_\U0001F600"),
    (1, "everything", "longRunningOperation"), (0, "x", "docs+file:///x"),
]):
    put("federation_names", f"name-{i:02}", bytes([prefix]) + alias.encode() + b"\0" + name.encode())

for t in sorted(os.listdir(OUT)):
    print(t, len(os.listdir(os.path.join(OUT, t))))
