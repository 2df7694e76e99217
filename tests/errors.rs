//! Answers the gateway makes itself: 404, 405, 502, 504 — JSON bodies, JSON-RPC errors with the
//! request's id when the request was JSON-RPC.

use crate::support::{dead_addr, Gateway};
use crate::upstreams::{recording, silent};
use serde_json::Value;

async fn post(url: &str, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    let v = resp.json().await.expect("a JSON body");
    (status, headers, v)
}

#[tokio::test]
async fn unknown_path_and_method_never_reach_the_upstream() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::in_front_of(&[up.addr], "");

    let (status, _, v) = post(
        &gw.url("/nope"),
        r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], 0, "id 0 is an id, not a missing one: {v}");
    assert_eq!(v["error"]["data"]["status"], 404);

    let resp = reqwest::Client::new()
        .put(gw.url("/mcp"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST, GET, DELETE");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], 405);
    assert_eq!(v["error"]["reason"], "method_not_allowed");

    let resp = reqwest::Client::new()
        .get(gw.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["reason"], "not_found");

    assert!(up.requests().is_empty(), "nothing may reach the upstream");
}

#[tokio::test]
async fn unreachable_upstream_is_a_clean_502() {
    let gw = Gateway::in_front_of(&[dead_addr()], "      health_check: {enabled: false}\n");
    let started = std::time::Instant::now();
    let (status, _, v) = post(
        &gw.url("/mcp"),
        r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/list"}"#,
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], -32000);
    assert_eq!(v["error"]["data"]["reason"], "upstream_unreachable");
    assert!(
        started.elapsed().as_secs() < 5,
        "a refused connection must not hang"
    );

    // A batch gets one error per request in it.
    let (status, _, v) = post(
        &gw.url("/mcp"),
        r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"method":"b"}]"#,
    )
    .await;
    assert_eq!(status, 502);
    let ids: Vec<&Value> = v.as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&Value::from(1), &Value::from(2)]);

    // Not JSON-RPC: a plain JSON error.
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["reason"], "upstream_unreachable");
}

#[tokio::test]
async fn silent_upstream_is_a_504_after_the_idle_timeout() {
    let up = silent().await;
    let gw = Gateway::in_front_of(&[up.addr], "      idle_timeout: 400ms\n");
    let started = std::time::Instant::now();
    let (status, _, v) = post(
        &gw.url("/mcp"),
        r#"{"jsonrpc":"2.0","id":42,"method":"tools/call"}"#,
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["id"], 42);
    assert_eq!(v["error"]["data"]["reason"], "upstream_timeout");
    assert!(
        waited.as_millis() >= 350 && waited.as_secs() < 5,
        "{waited:?}"
    );
}

#[tokio::test]
async fn dns_rebinding_is_refused_before_the_upstream() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let client = reqwest::Client::new();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    for (host, origin) in [
        ("evil.example.com", Some("http://evil.example.com")),
        ("evil.example.com", None),
    ] {
        let mut req = client
            .post(gw.url("/mcp"))
            .header("host", host)
            .header("content-type", "application/json")
            .body(init);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "Host {host}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["id"], 1);
        assert_eq!(v["error"]["data"]["reason"], "host_not_allowed");
    }
    let resp = client
        .post(gw.url("/mcp"))
        .header("origin", "http://evil.example.com")
        .header("content-type", "application/json")
        .body(init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["data"]["reason"], "origin_not_allowed");
    assert!(
        up.requests().is_empty(),
        "refused requests never reach the upstream"
    );

    let local_origin = gw.base.clone();
    let resp = client
        .post(gw.url("/mcp"))
        .header("origin", local_origin)
        .header("content-type", "application/json")
        .body(init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.requests().len(), 1);
}
