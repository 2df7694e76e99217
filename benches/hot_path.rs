//! Micro-benchmark of the per-request work mcpgate does in-process on the relay path: routing,
//! the request-header allow-list, query filtering, hop-by-hop removal, and (error path only)
//! JSON-RPC id extraction. Prints nanoseconds per operation; no timing assertions.
//!
//! The authentication section compares the cost per request of the auth chain: none, an API key,
//! a JWT verified from the cache, and JWTs verified in full (HS256 and RS256).
//!
//! Run: `cargo bench --bench hot_path`. The end-to-end comparison against direct and nginx is
//! tracked separately (issue 7).

mod support;
use support::bench;

use criterion::Criterion;
use mcpgate::config::DEFAULT_INPUT_HEADERS;
use mcpgate::mcp::jsonrpc::request_shape;
use mcpgate::policy::input_lists::{HeaderAllowList, QueryAllowList};
use mcpgate::proxy::headers::strip_hop_by_hop;
use mcpgate::proxy::routing::route;
use mcpgate::runtime::load::load_str;
use mcpgate::runtime::snapshot::Snapshot;
use pingora::http::{RequestHeader, ResponseHeader};
use std::hint::black_box;

fn main() {
    let cfg = load_str(
        "listen: 127.0.0.1:8080\nendpoints:\n  - path: /a\n    backend: {hosts: [http://127.0.0.1:3000]}\n  - path: /mcp\n    backend: {hosts: [http://127.0.0.1:3001]}\n",
        false,
        "bench",
    )
    .expect("bench config");
    let snapshot = Snapshot::compile(cfg, 1).expect("compile");
    let mut req = RequestHeader::build("POST", b"/mcp?x=1", None).expect("request");
    for (k, v) in [
        ("host", "gw.example"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-session-id", "0b8f6c3e-2a8e-4f7e-9a51-3f6c1d2b7e90"),
        ("mcp-protocol-version", "2025-11-25"),
        ("user-agent", "bench"),
        ("authorization", "Bearer abc"),
    ] {
        req.insert_header(k, v).expect("header");
    }
    let allow = HeaderAllowList::new(DEFAULT_INPUT_HEADERS);
    let query = QueryAllowList::new(&["x".to_string()]);
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;

    println!("mcpgate hot-path micro-benchmark (single thread)");
    let mut c = support::criterion();
    bench(&mut c, "route (path + method)", || {
        black_box(route(black_box(&snapshot), black_box(&req)));
    });
    bench(&mut c, "header allow-list, 7 headers", || {
        let n = req.headers.keys().filter(|h| allow.allows(h)).count();
        black_box(n);
    });
    bench(&mut c, "query filter", || {
        black_box(query.filter(black_box(Some("x=1&token=secret"))));
    });
    bench(&mut c, "strip hop-by-hop (response)", || {
        let mut resp = ResponseHeader::build(200, Some(4)).expect("response");
        resp.insert_header("content-type", "text/event-stream")
            .expect("h");
        resp.insert_header("connection", "keep-alive").expect("h");
        strip_hop_by_hop(&mut resp);
        black_box(resp);
    });
    bench(&mut c, "JSON-RPC id (error path only)", || {
        black_box(request_shape(black_box(body)));
    });
    metrics_recording(&mut c);
    auth_chain(&mut c);
}

/// What the logging phase records per request: the request counter and duration histogram of
/// the endpoint (children resolved once per snapshot), body byte counters, upstream TTFB.
fn metrics_recording(c: &mut Criterion) {
    let m = mcpgate::observability::metrics::EndpointMetrics::new("bench");
    let method = http::Method::POST;
    bench(c, "metrics: record one request (logging phase)", || {
        m.observe(black_box(&method), black_box(200), black_box(0.0012));
        m.request_bytes.inc_by(black_box(1024));
        m.response_bytes.inc_by(black_box(1100));
        m.upstream_ttfb.observe(black_box(0.0008));
    });
}

fn auth_chain(c: &mut Criterion) {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use mcpgate::policy::auth::{api_key, jwt, AuthConfig, Authenticator};
    jwt::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"sub": "bench", "aud": "http://gw/mcp", "exp": now + 3600, "scope": "mcp:tools"});
    let secret = "0123456789abcdef0123456789abcdef";
    let hs_token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let b64 = |v: Vec<u8>| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks_path = dir.path().join("jwks.json");
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec())}]});
    std::fs::write(&jwks_path, jwks.to_string()).expect("write jwks");
    let mut rs_header = Header::new(Algorithm::RS256);
    rs_header.kid = Some("k1".into());
    let rs_key = EncodingKey::from_rsa_der(&rsa.private_key_to_der().expect("der"));
    let rs_token = encode(&rs_header, &claims, &rs_key).expect("sign");

    let auth = |v: serde_json::Value| -> Authenticator {
        let cfg: AuthConfig = serde_json::from_value(v).expect("auth config");
        Authenticator::compile(&cfg, "http://gw/mcp", "bench").expect("compile")
    };
    let key = "mcpk_bench-key";
    let api = auth(
        serde_json::json!({"api_keys": {"keys": [{"name": "b", "sha256": api_key::hash_key(key)}]}}),
    );
    let hs_cached = auth(serde_json::json!({"jwt": {"secret": secret, "algorithms": ["HS256"]}}));
    let hs_uncached = auth(
        serde_json::json!({"jwt": {"secret": secret, "algorithms": ["HS256"], "cache_size": 0}}),
    );
    let rs_uncached = auth(
        serde_json::json!({"jwt": {"jwks_file": jwks_path, "algorithms": ["RS256"], "cache_size": 0}}),
    );
    let rs_cached =
        auth(serde_json::json!({"jwt": {"jwks_file": jwks_path, "algorithms": ["RS256"]}}));

    let request = |name: &str, value: &str| {
        let mut r = RequestHeader::build("POST", b"/mcp", None).expect("request");
        r.insert_header(name.to_string(), value).expect("header");
        r
    };
    let api_req = request("x-api-key", key);
    let hs_req = request("authorization", &format!("Bearer {hs_token}"));
    let rs_req = request("authorization", &format!("Bearer {rs_token}"));
    let none_req = request("x-other", "1");

    println!("\nauthentication chain, per request (single thread)");
    bench(c, "auth: none (no credentials checked)", || {
        black_box(rt.block_on(async { black_box(&none_req).headers.len() }));
    });
    let mut run = |name: &str, a: &Authenticator, r: &RequestHeader| {
        assert!(
            rt.block_on(a.authenticate(r)).is_ok(),
            "{name} must authenticate"
        );
        bench(c, name, || {
            black_box(rt.block_on(a.authenticate(black_box(r))).is_ok());
        });
    };
    run("auth: API key (SHA-256, constant time)", &api, &api_req);
    run("auth: JWT HS256, cached", &hs_cached, &hs_req);
    run("auth: JWT RS256, cached", &rs_cached, &rs_req);
    run("auth: JWT HS256, full verification", &hs_uncached, &hs_req);
    run("auth: JWT RS256, full verification", &rs_uncached, &rs_req);
}
