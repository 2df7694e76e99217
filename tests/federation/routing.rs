//! Fan-out details: `notifications/cancelled` goes to the server that owns the request, and
//! fan-out requests go through the servers' circuit breakers (a host whose breaker is open is
//! not asked, and a new session starts on a host whose breaker is closed) and carry the
//! identity claims and `traceparent` as relayed requests do.

use super::{config, demo, init, rpc, scripted, serve, start_session};
use crate::support::{dead_addr, metric_value, Gateway};
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::any;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn cancels(methods: &[(String, Value)], id: i64) -> usize {
    methods
        .iter()
        .filter(|(m, b)| m == "notifications/cancelled" && b["params"]["requestId"] == id)
        .count()
}

fn seen(s: &super::Scripted) -> Vec<(String, Value)> {
    s.seen
        .lock()
        .map(|v| {
            v.iter()
                .map(|(_, _, b)| (b["method"].as_str().unwrap_or("").to_string(), b.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_goes_to_the_server_that_owns_the_request() {
    let c = scripted().await;
    let d = scripted().await;
    let gw = Gateway::start(&config(&[("c", c.addr, true), ("d", d.addr, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let (status, _, r) = rpc(
        &gw,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 40, "method": "tools/call", "params": {"name": "d_second", "arguments": {}}}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let cancel = |id: i64| json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "t"}});
    let (status, _, _) = rpc(&gw, Some(&sid), &[], cancel(40)).await;
    assert_eq!(status, 202);
    assert_eq!((cancels(&seen(&c), 40), cancels(&seen(&d), 40)), (0, 1));
    // A request this instance did not route: every server.
    let (status, _, _) = rpc(&gw, Some(&sid), &[], cancel(41)).await;
    assert_eq!(status, 202);
    assert_eq!((cancels(&seen(&c), 41), cancels(&seen(&d), 41)), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_requests_go_through_the_circuit_breakers() {
    let (a, _da) = demo().await;
    let (b, _db) = demo().await;
    let dead = dead_addr();
    // Server b has a dead host and a live one; its breaker opens after one failure.
    let yaml = format!(
        "sessions:\n  key: {KEY}\nendpoints:\n  - path: /mcp\n    federation:\n      deadline: 5s\n    servers:\n      - alias: a\n        backend:\n          hosts: [http://{a}]\n          path: /mcp\n      - alias: b\n        required: false\n        backend:\n          hosts: [http://{dead}, http://{b}]\n          path: /mcp\n          health_check: {{enabled: false}}\n          circuit_breaker: {{consecutive_failures: 1, open_for: 60s}}\n"
    );
    let gw = Gateway::start(&yaml);
    let mut with_b = 0;
    for i in 0..6 {
        let (status, _, r) = rpc(&gw, None, &[], init(i)).await;
        assert_eq!(status, 200, "{r}");
        let text = r["result"]["instructions"].as_str().unwrap_or_default();
        if i >= 2 {
            assert!(
                text.contains("## b\n"),
                "session {i} starts on b's live host: {r}"
            );
        }
        with_b += usize::from(text.contains("## b\n"));
    }
    assert!(with_b >= 5, "{with_b}");
    let m = gw.metrics().await;
    let label = format!("http://{dead}");
    assert_eq!(
        metric_value(
            &m,
            "mcpgate_circuit_breaker_transitions_total",
            &[("host", label.as_str()), ("state", "open")]
        ),
        1.0,
        "{m}"
    );
}

/// What a header-recording MCP server received: (JSON-RPC method, headers).
type Heard = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A JSON-answering MCP server that records every request's headers.
async fn recorder() -> (SocketAddr, Heard, tokio::task::JoinHandle<()>) {
    let heard: Heard = Arc::new(Mutex::new(Vec::new()));
    let h2 = heard.clone();
    let router = axum::Router::new().fallback(any(move |headers: HeaderMap, body: Bytes| {
        let heard = h2.clone();
        async move {
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let method = msg["method"].as_str().unwrap_or("").to_string();
            if let Ok(mut v) = heard.lock() {
                v.push((method.clone(), headers));
            }
            let result = match method.as_str() {
                "initialize" => json!({"protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}),
                "tools/list" => json!({"tools": []}),
                _ => {
                    return Response::builder()
                        .status(202)
                        .body(Body::empty())
                        .unwrap_or_default()
                }
            };
            Response::builder()
                .header("content-type", "application/json")
                .header("mcp-session-id", "r-1")
                .body(Body::from(
                    json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string(),
                ))
                .unwrap_or_default()
        }
    }));
    let (addr, task) = serve(router).await;
    (addr, heard, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_requests_carry_identity_claims_and_traceparent() {
    let (r, heard, _task) = recorder().await;
    let secret = "0123456789abcdef0123456789abcdef";
    let yaml = format!(
        "tracing:\n  endpoint: http://127.0.0.1:9/v1/traces\n  batch_delay: 100ms\npolicies:\n  auth:\n    jwt:\n      secret: \"{secret}\"\n      algorithms: [HS256]\n      audience_check: false\n      propagate_claims: {{sub: X-User-Id}}\n{}",
        config(&[("r", r, true)], "").replacen(&format!("sessions:\n  key: {KEY}\n"), "", 1)
    );
    let gw = Gateway::start(&format!("sessions:\n  key: {KEY}\n{yaml}"));
    let token = hs256(
        &json!({"sub": "alice", "exp": 4_000_000_000u64}),
        secret.as_bytes(),
    );
    let auth = format!("Bearer {token}");
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let headers = [
        ("authorization", auth.as_str()),
        ("x-user-id", "mallory"),
        ("traceparent", parent),
    ];
    let sid = start_session(&gw, &headers).await;
    let (status, _, r) = rpc(
        &gw,
        Some(&sid),
        &headers,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let heard = heard.lock().map(|v| v.clone()).unwrap_or_default();
    for method in ["initialize", "notifications/initialized", "tools/list"] {
        let (_, h) = heard
            .iter()
            .find(|(m, _)| m == method)
            .unwrap_or_else(|| panic!("{method} reached the server"));
        let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(
            value("x-user-id"),
            "alice",
            "{method}: the claim, not the client's header"
        );
        assert!(
            value("authorization").is_empty(),
            "{method}: the gateway's credentials stay"
        );
        let trace = value("traceparent");
        assert!(
            trace.starts_with("00-0af7651916cd43dd8448eb211c80319c-")
                && !trace.contains("b7ad6b7169203331"),
            "{method}: the request span is the parent: {trace:?}"
        );
    }
}

/// An HS256 JWT.
fn hs256(claims: &Value, secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let msg = format!(
        "{}.{}",
        b64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        b64.encode(claims.to_string())
    );
    let key = openssl::pkey::PKey::hmac(secret).expect("hmac key");
    let sig = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
        .and_then(|mut s| s.sign_oneshot_to_vec(msg.as_bytes()))
        .expect("sign");
    format!("{msg}.{}", b64.encode(sig))
}
