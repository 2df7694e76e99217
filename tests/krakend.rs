//! KrakenD files run as they are (`mcpgate -c krakend.json`) and converted (`mcpgate convert`):
//! the KrakenD page's example with the official Rust SDK (and the Python SDK, in `python`), a
//! richer file whose every protection is enforced (401, 403, CEL, 429, injected headers, CORS)
//! with the same answers from its conversion, SSE past a KrakenD `timeout` of 2s, fail-closed
//! loading, and hot reload of a KrakenD file (in `reload`).

mod python;
mod reload;

use crate::mcp_client::run_session;
use crate::support::{binary, free_port, run_cli, temp_file};
use crate::upstreams::{keepalive_stream, recording};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway process started on a given config file.
pub(crate) struct Proc {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `mcpgate -c conf` and waits until `port` accepts connections.
    pub(crate) fn start(conf: &Path, port: u16) -> Proc {
        let stderr = conf.with_extension("stderr");
        let child = Command::new(binary())
            .arg("-c")
            .arg(conf)
            .env("MCPGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start mcpgate");
        let p = Proc {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mcpgate did not listen; stderr:\n{}",
                p.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Sends `signal` (e.g. `HUP`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped page example (the page's three endpoints, nothing else), with its port and
/// upstream moved to ephemeral loopback ones.
pub(crate) fn page_example(port: u16, upstream: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/examples/krakend.json"
    ))
    .expect("read conf/examples/krakend.json");
    let text = text.replace("http://127.0.0.1:3000", &format!("http://{upstream}"));
    let mut v: Value = serde_json::from_str(&text).expect("example is JSON");
    v["port"] = json!(port);
    v["listen_ip"] = json!("127.0.0.1");
    v
}

/// Writes `krakend` and its conversion into `dir`; returns both paths after checking that the
/// conversion passes `-t`.
fn write_both(dir: &tempfile::TempDir, krakend: &Value) -> (PathBuf, PathBuf) {
    let k = temp_file(dir, "krakend.json", &krakend.to_string());
    let (code, yaml, err) = run_cli(&["convert", k.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "convert failed:\n{err}");
    assert!(yaml.contains("# "), "convert writes comments:\n{yaml}");
    let y = temp_file(dir, "converted.yaml", &yaml);
    let (code, out, err) = run_cli(&["-t", "-c", y.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "converted YAML fails -t:\n{out}{err}\n{yaml}");
    (k, y)
}

#[tokio::test]
async fn the_page_example_and_its_conversion_run_an_mcp_session() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind demo");
    let demo_addr = listener.local_addr().expect("addr");
    let _demo = tokio::spawn(mcpgate::demo::serve(listener));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (k, y) = write_both(&dir, &page_example(port, &demo_addr.to_string()));
    let mut tools = Vec::new();
    for conf in [&k, &y] {
        let gw = Proc::start(conf, port);
        let report = run_session(&gw.url()).await.unwrap_or_else(|e| {
            panic!("rmcp session via {}: {e}\n{}", conf.display(), gw.stderr())
        });
        assert_eq!(report.echo, "hello");
        assert!(report.notification_on_get_stream, "GET stream works");
        tools.push(report.tools.clone());
        // Three KrakenD endpoints on one path: a fourth method gets 405 listing all three.
        let r = reqwest::Client::new()
            .put(gw.url())
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
            .send()
            .await
            .expect("PUT");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST, GET, DELETE");
        let body: Value = r.json().await.expect("JSON body");
        assert_eq!(
            body["error"]["reason"],
            json!("method_not_allowed"),
            "{body}"
        );
        drop(gw);
        // The same port is used again by the converted config.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(tools[0], tools[1], "same tools through both configs");
    assert!(tools[0].iter().any(|t| t == "echo"), "{:?}", tools[0]);
}

#[tokio::test]
async fn sse_stays_live_past_a_krakend_timeout_of_2s() {
    // Eight keep-alives 500 ms apart: 4 s in all, never 2 s of silence.
    let up = keepalive_stream(Duration::from_millis(500), 8).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut v = page_example(port, &up.addr.to_string());
    v["timeout"] = json!("2s");
    let k = temp_file(&dir, "krakend.json", &v.to_string());
    let gw = Proc::start(&k, port);
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(gw.url())
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("GET stream");
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("whole stream");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the stream ran past 2s"
    );
    assert!(
        body.contains("data: done"),
        "the last event arrived: {body:?}"
    );
    assert_eq!(body.matches(": keep-alive").count(), 8, "{body:?}");
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn token(sub: &str, roles: &[&str]) -> String {
    mcpgate::policy::auth::jwt::install_crypto_provider();
    let claims = json!({"sub": sub, "roles": roles, "exp": 4_000_000_000u64});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// JWT with roles, CORS, a rate limit on POST only, a circuit breaker, Martian header
/// injection and CEL over `req_headers`; GET has none of POST's settings.
fn richer(port: u16, upstream: &str, jwk: &Path) -> Value {
    let backend = |extra: Value| json!([{"url_pattern": "/mcp", "host": [format!("http://{upstream}")], "extra_config": extra}]);
    json!({
        "$schema": "https://www.krakend.io/schema/v2.12/krakend.json",
        "version": 3,
        "port": port,
        "listen_ip": "127.0.0.1",
        "timeout": "10s",
        "extra_config": {
            "security/cors": {"allow_origins": ["https://app.example.com"], "allow_methods": ["POST", "GET"], "max_age": "1h"}
        },
        "endpoints": [
            {
                "endpoint": "/mcp", "method": "POST", "output_encoding": "no-op",
                "input_headers": ["Authorization", "X-Tenant"],
                "extra_config": {
                    "auth/validator": {"alg": "HS256", "jwk_local_path": jwk.to_str(), "roles": ["admin"], "roles_key": "roles", "propagate_claims": [["sub", "X-User"]]},
                    "qos/ratelimit/router": {"max_rate": 2, "every": "1m", "capacity": 2},
                    "validation/cel": [{"check_expr": "req_headers['X-Tenant'][0] == 'acme' && req_method == 'POST'"}],
                    "modifier/martian": {"fifo.Group": {"scope": ["request"], "aggregateErrors": true, "modifiers": [
                        {"header.Modifier": {"scope": ["request"], "name": "X-Injected", "value": "from-gateway"}},
                        {"header.Blacklist": {"scope": ["request"], "names": ["X-Tenant"]}}
                    ]}}
                },
                "backend": backend(json!({"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 5}}))
            },
            {
                "endpoint": "/mcp", "method": "GET", "output_encoding": "no-op",
                "backend": backend(json!({}))
            }
        ]
    })
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo"}}"#;

/// The requests of the richer test and what each got: (status, JSON-RPC id or null, a header).
async fn exercise(base: &str) -> Vec<(u16, Value, String)> {
    let c = reqwest::Client::new();
    let post = |auth: Option<String>, tenant: &str| {
        let mut r = c
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-tenant", tenant)
            .body(CALL);
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        r
    };
    let admin = token("alice", &["admin"]);
    let plain = token("bob", &["reader"]);
    let mut out = Vec::new();
    for req in [
        post(None, "acme"),                     // 401: no token
        post(Some("not.a.jwt".into()), "acme"), // 401: bad token
        post(Some(plain), "acme"),              // 403: no admin role
        post(Some(admin.clone()), "other"),     // 403: CEL
        post(Some(admin.clone()), "acme"),      // 200
        post(Some(admin.clone()), "acme"),      // 200
        post(Some(admin), "acme"),              // 429: 2 per minute
        c.get(format!("{base}/mcp")),           // 200: GET has no auth, no limit
        c.request(reqwest::Method::OPTIONS, format!("{base}/mcp"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST"), // 204 preflight
    ] {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let extra = [
            "www-authenticate",
            "retry-after",
            "access-control-allow-origin",
        ]
        .iter()
        .filter_map(|h| {
            r.headers()
                .get(*h)
                .map(|v| format!("{h}={}", v.to_str().unwrap_or("")))
        })
        .collect::<Vec<_>>()
        .join(";");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        out.push((
            status,
            body.get("id").cloned().unwrap_or(Value::Null),
            extra,
        ));
    }
    out
}

#[tokio::test]
async fn a_richer_file_is_enforced_and_its_conversion_answers_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    use base64::Engine as _;
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let jwk = temp_file(
        &dir,
        "jwk.json",
        &json!({"keys": [{"kty": "oct", "alg": "HS256", "k": k}]}).to_string(),
    );
    let mut answers = Vec::new();
    for converted in [false, true] {
        let up = recording("krakend", 200, r#"{"jsonrpc":"2.0","id":41,"result":{}}"#).await;
        let port = free_port();
        let sub = tempfile::tempdir().expect("tempdir");
        let (k, y) = write_both(&sub, &richer(port, &up.addr.to_string(), &jwk));
        let gw = Proc::start(if converted { &y } else { &k }, port);
        let got = exercise(&gw.base).await;
        let statuses: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            statuses,
            [401, 401, 403, 403, 200, 200, 429, 200, 204],
            "{got:?}\n{}",
            gw.stderr()
        );
        for (i, g) in got.iter().enumerate().take(7) {
            if g.0 != 200 {
                assert_eq!(g.1, json!(41), "JSON-RPC id in refusal {i}: {got:?}");
            }
        }
        assert!(got[0].2.contains("www-authenticate=Bearer"), "{got:?}");
        assert!(got[6].2.contains("retry-after="), "{got:?}");
        assert!(
            got[8]
                .2
                .contains("access-control-allow-origin=https://app.example.com"),
            "{got:?}"
        );
        // The upstream saw the two allowed POSTs and the GET, nothing of the refusals.
        let seen = up.requests();
        let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
        assert_eq!(
            methods,
            ["POST", "POST", "GET"],
            "upstream saw only what passed"
        );
        for s in &seen[..2] {
            assert_eq!(s.headers["x-injected"], "from-gateway");
            assert_eq!(s.headers["x-user"], "alice");
            assert!(
                s.headers.get("x-tenant").is_none(),
                "Martian blacklist removed it"
            );
        }
        assert!(
            seen[2].headers.get("x-injected").is_none(),
            "GET has its own settings"
        );
        answers.push(got);
    }
    assert_eq!(
        answers[0], answers[1],
        "the conversion answers like the KrakenD file"
    );
}

#[test]
fn an_unsupported_security_namespace_fails_t_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut v = page_example(free_port(), "127.0.0.1:3000");
    v["endpoints"][1]["extra_config"] = json!({"security/bot-detector": {"deny": ["curl"]}});
    v["endpoints"][2]["extra_config"] = json!({"auth/validator": {"alg": "RS256", "jwk_url": "https://idp.example.com/jwks", "cookie_key": "token"}});
    let k = temp_file(&dir, "krakend.json", &v.to_string());
    let (code, out, err) = run_cli(&["-t", "-c", k.to_str().expect("path")]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("endpoints[1].extra_config.security/bot-detector"),
        "{err}"
    );
    assert!(
        err.contains("endpoints[2].extra_config.auth/validator.cookie_key"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["convert", k.to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error: endpoints[1].extra_config.security/bot-detector"),
        "{err}"
    );
}

#[test]
fn cosmetic_extras_start_with_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut v = page_example(port, "127.0.0.1:3000");
    v["debug_endpoint"] = json!(true);
    v["extra_config"] = json!({"telemetry/logging": {"level": "DEBUG", "stdout": true}});
    let k = temp_file(&dir, "krakend.json", &v.to_string());
    let (code, out, err) = run_cli(&["-t", "-c", k.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    for path in ["debug_endpoint", "extra_config.telemetry/logging"] {
        assert!(
            err.contains(&format!("{path}: ")),
            "-t warns about {path}: {err}"
        );
    }
    let gw = Proc::start(&k, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.stderr().contains("extra_config.telemetry/logging") {
        assert!(
            Instant::now() < deadline,
            "no warning at start: {}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
