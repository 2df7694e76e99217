//! The access log says how each request ended: `end` names who or what ended it
//! (`complete`, `upstream_closed`, `client_closed`, `idle_timeout`, `drained`, `refused`,
//! `upstream_error`), `error` appears only for real errors under the gateway's own names, and
//! `status` is the status the client got (`null` when it got none). The same `end` is counted in
//! `mcpgate_request_ends_total`.

use crate::support::{dead_addr, metric_value, Gateway};
use crate::upstreams::{endless_stream, gated_sse, keepalive_stream, mixed, recording, silent};
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod raw;
use raw::{Behaviour, Raw};

const PING: &str = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;

/// The access-log line of the `n`th request (in log order) once `n` lines are there.
async fn lines(gw: &Gateway, n: usize) -> Vec<Value> {
    let log = gw.access_log_when(n).await;
    assert_eq!(
        log.len(),
        n,
        "access log: {log:#?}\nstderr:\n{}",
        gw.stderr()
    );
    log
}

/// Reads `resp`'s body until it ends (`Ok`) or breaks (`Err`), bounded by `limit`.
async fn read_to_end(resp: reqwest::Response, limit: Duration) -> Result<String, String> {
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Some(Err(e))) => return Err(format!("{e} after {seen:?}")),
            Ok(None) => return Ok(seen),
            Err(_) => return Err(format!("no end within {limit:?}: {seen:?}")),
        }
    }
}

/// Pingora's own "Fail to proxy" line is written for real errors only.
fn assert_no_error_line(gw: &Gateway) {
    let stderr = gw.stderr();
    assert!(!stderr.contains("Fail to proxy"), "{stderr}");
    assert!(!stderr.contains("ConnectionClosed"), "{stderr}");
}

#[tokio::test]
async fn answered_requests_log_the_status_sent_and_end_complete() {
    let ok = recording("ok", 200, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).await;
    let gone = recording("gone", 404, r#"{"error":"no such session"}"#).await;
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n  - path: /gone\n    backend:\n      hosts: [http://{}]\n",
        ok.addr, gone.addr
    ));
    let client = reqwest::Client::new();
    let post = |path: &str| {
        client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(PING)
    };
    // 1: relayed 200; 2: the upstream's own 404, relayed whole; 3: a DELETE, relayed.
    let r = post("/mcp").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"jsonrpc":"2.0","id":7,"result":{}}"#
    );
    let r = post("/gone").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"no such session"}"#);
    let r = client.delete(gw.url("/mcp")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // 4 and 5: the gateway refuses (wrong method, unknown path); nothing goes upstream.
    let r = client.put(gw.url("/mcp")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["reason"], "method_not_allowed");
    let r = post("/missing").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 7, "{v}");
    assert_eq!(v["error"]["data"]["reason"], "not_found");

    let seen = ok.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, PING.as_bytes());
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(gone.requests().len(), 1);

    let log = lines(&gw, 5).await;
    let line = |method: &str, path: &str| {
        log.iter()
            .find(|l| l["method"] == method && l["path"] == path)
            .unwrap_or_else(|| panic!("no {method} {path} in {log:#?}"))
            .clone()
    };
    let post_ok = line("POST", "/mcp");
    assert_eq!(post_ok["status"], 200);
    assert_eq!(post_ok["end"], "complete");
    assert!(post_ok["error"].is_null(), "{post_ok}");
    assert_eq!(post_ok["endpoint"], "/mcp");
    assert_eq!(post_ok["upstream"], format!("http://{}", ok.addr));
    assert_eq!(post_ok["bytes_in"], PING.len());
    assert_eq!(post_ok["sse"], false);
    assert_eq!(post_ok["mcp_protocol_version"], "2025-06-18");
    assert_eq!(post_ok["client"], "127.0.0.1");
    assert!(post_ok["upstream_ttfb_ms"].as_f64().is_some(), "{post_ok}");
    assert!(post_ok["duration_ms"].as_f64().is_some(), "{post_ok}");
    assert!(post_ok["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    let relayed_404 = line("POST", "/gone");
    assert_eq!(
        (
            &relayed_404["status"],
            &relayed_404["end"],
            &relayed_404["error"]
        ),
        (&Value::from(404), &Value::from("complete"), &Value::Null),
        "an upstream's own answer is not a gateway error: {relayed_404}"
    );
    let delete = line("DELETE", "/mcp");
    assert_eq!(
        (&delete["status"], &delete["end"]),
        (&Value::from(200), &Value::from("complete"))
    );
    assert!(delete["error"].is_null(), "{delete}");
    let put = line("PUT", "/mcp");
    assert_eq!(
        (&put["status"], &put["end"], &put["error"]),
        (
            &Value::from(405),
            &Value::from("refused"),
            &Value::from("method_not_allowed")
        )
    );
    assert!(
        put["upstream"].is_null() && put["upstream_ttfb_ms"].is_null(),
        "{put}"
    );
    let missing = line("POST", "/missing");
    assert_eq!(
        (&missing["status"], &missing["end"], &missing["error"]),
        (
            &Value::from(404),
            &Value::from("refused"),
            &Value::from("not_found")
        )
    );
    assert!(missing["endpoint"].is_null(), "{missing}");
    assert_no_error_line(&gw);

    // The same ends, counted.
    let page = gw
        .metrics_when(|p| metric_value(p, "mcpgate_request_ends_total", &[]) >= 5.0)
        .await;
    let ends = |endpoint: &str, end: &str| {
        metric_value(
            &page,
            "mcpgate_request_ends_total",
            &[("endpoint", endpoint), ("end", end)],
        )
    };
    assert_eq!(ends("/mcp", "complete"), 2.0, "{page}");
    assert_eq!(ends("/gone", "complete"), 1.0, "{page}");
    assert_eq!(ends("/mcp", "refused"), 1.0, "{page}");
    assert_eq!(ends("none", "refused"), 1.0, "{page}");
    assert_eq!(ends("/mcp", "client_closed"), 0.0, "{page}");
}

#[tokio::test]
async fn a_client_that_leaves_is_client_closed_not_an_error() {
    // A GET stream the client drops after two events.
    let closed = Arc::new(Notify::new());
    let up = endless_stream(closed.clone()).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("data: 1\n\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("stream broke: {other:?} after {seen:?}"),
        }
    }
    assert!(seen.starts_with("data: 0\n\n"), "{seen:?}");
    drop(stream);
    // The upstream saw its stream end (the gateway closed its connection).
    tokio::time::timeout(Duration::from_secs(10), closed.notified())
        .await
        .expect("the upstream noticed the client leaving");

    let log = lines(&gw, 1).await;
    let l = &log[0];
    assert_eq!(l["method"], "GET");
    assert_eq!(l["status"], 200, "the status the client got: {l}");
    assert_eq!(l["end"], "client_closed");
    assert!(l["error"].is_null(), "{l}");
    assert_eq!(l["sse"], true);
    assert!(l["bytes_out"].as_u64().is_some_and(|b| b >= 18), "{l}");
    assert_no_error_line(&gw);
}

#[tokio::test]
async fn a_client_that_leaves_before_any_answer_has_no_status() {
    let up = Raw::start(Behaviour::Stall).await;
    let gw = Gateway::in_front_of(&[up.addr], "      idle_timeout: 60s\n");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    for id in 0..2 {
        let err = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#
            ))
            .send()
            .await
            .expect_err("the client gives up first");
        assert!(err.is_timeout(), "{err}");
    }
    let log = lines(&gw, 2).await;
    for l in &log {
        assert_eq!(l["method"], "POST");
        assert!(l["status"].is_null(), "no answer was sent: {l}");
        assert_eq!(l["end"], "client_closed", "{l}");
        assert!(l["error"].is_null(), "{l}");
    }
    // The upstream got both requests, whole.
    let seen = up.wait_requests(2).await;
    assert!(
        seen.iter().all(|r| r.starts_with("POST /mcp HTTP/1.1")),
        "{seen:?}"
    );
    assert!(
        seen[0].ends_with(r#""id":0,"method":"tools/call"}"#),
        "{seen:?}"
    );
    assert_no_error_line(&gw);
    let page = gw
        .metrics_when(|p| {
            metric_value(p, "mcpgate_request_ends_total", &[("end", "client_closed")]) >= 2.0
        })
        .await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[("endpoint", "/mcp"), ("status_class", "none")]
        ),
        2.0,
        "{page}"
    );
}

#[tokio::test]
async fn an_upstream_ending_its_stream_is_upstream_closed() {
    // A GET stream: a comment, two keep-alives, then `data: done` and a proper end.
    let up = keepalive_stream(Duration::from_millis(50), 2).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = read_to_end(resp, Duration::from_secs(10))
        .await
        .expect("a clean end");
    assert_eq!(
        body,
        ": primed\n\n: keep-alive\n\n: keep-alive\n\ndata: done\n\n"
    );

    // A POST answered with an SSE stream that the upstream ends after its second event.
    let gate = Arc::new(crate::upstreams::Gate::default());
    let sse_up = gated_sse(gate.clone()).await;
    let gw2 = Gateway::in_front_of(&[sse_up.addr], "");
    gate.client_has_first.notify_one();
    let resp = reqwest::Client::new()
        .post(gw2.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = read_to_end(resp, Duration::from_secs(15))
        .await
        .expect("a clean end");
    assert!(body.ends_with("data: {\"n\":2}\n\n"), "{body:?}");

    for (gw, method) in [(&gw, "GET"), (&gw2, "POST")] {
        let log = lines(gw, 1).await;
        let l = &log[0];
        assert_eq!(l["method"], method);
        assert_eq!(l["status"], 200);
        assert_eq!(l["sse"], true);
        assert_eq!(l["end"], "upstream_closed", "{l}");
        assert!(l["error"].is_null(), "{l}");
        assert_no_error_line(gw);
    }
}

#[tokio::test]
async fn silence_past_the_idle_timeout_is_idle_timeout() {
    // A stream that goes silent after its first comment: ended by the gateway, not an error.
    let up = keepalive_stream(Duration::from_secs(30), 1).await;
    let gw = Gateway::in_front_of(&[up.addr], "      idle_timeout: 500ms\n");
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = read_to_end(resp, Duration::from_secs(10)).await;
    let log = lines(&gw, 1).await;
    let l = &log[0];
    assert_eq!(
        (&l["status"], &l["sse"]),
        (&Value::from(200), &Value::from(true))
    );
    assert_eq!(l["end"], "idle_timeout", "{l}");
    assert!(l["error"].is_null(), "{l}");
    assert_no_error_line(&gw);

    // An upstream silent before answering: the client gets 504 with its id, a real error.
    let quiet = silent().await;
    let gw2 = Gateway::in_front_of(&[quiet.addr], "      idle_timeout: 500ms\n");
    let r = reqwest::Client::new()
        .post(gw2.url("/mcp"))
        .header("content-type", "application/json")
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (&v["id"], &v["error"]["data"]["reason"]),
        (&Value::from(7), &Value::from("upstream_timeout"))
    );
    let log = lines(&gw2, 1).await;
    let l = &log[0];
    assert_eq!(
        (&l["status"], &l["end"], &l["error"]),
        (
            &Value::from(504),
            &Value::from("idle_timeout"),
            &Value::from("upstream_timeout")
        )
    );

    // A JSON answer whose body stalls half-way: cut by the idle timeout, a failed answer.
    let stalls = Raw::start(Behaviour::StallMidBody).await;
    let gw3 = Gateway::in_front_of(&[stalls.addr], "      idle_timeout: 500ms\n");
    let r = reqwest::Client::new()
        .post(gw3.url("/mcp"))
        .header("content-type", "application/json")
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        read_to_end(r, Duration::from_secs(10)).await.is_err(),
        "the body is cut"
    );
    let seen = stalls.wait_requests(1).await;
    assert!(seen[0].ends_with(PING), "{seen:?}");
    let log = lines(&gw3, 1).await;
    let l = &log[0];
    assert_eq!(
        (&l["status"], &l["end"], &l["error"], &l["sse"]),
        (
            &Value::from(200),
            &Value::from("idle_timeout"),
            &Value::from("upstream_timeout"),
            &Value::from(false)
        )
    );
    let page = gw3
        .metrics_when(|p| {
            metric_value(p, "mcpgate_request_ends_total", &[("end", "idle_timeout")]) >= 1.0
        })
        .await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_request_ends_total",
            &[("end", "idle_timeout")]
        ),
        1.0,
        "{page}"
    );
}

#[tokio::test]
async fn upstream_failures_carry_the_gateways_error_names() {
    // Nothing listens: the client gets 502 with its id.
    let gw = Gateway::in_front_of(&[dead_addr()], "");
    let r = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (&v["id"], &v["error"]["data"]["reason"]),
        (&Value::from(7), &Value::from("upstream_unreachable"))
    );
    let l = &lines(&gw, 1).await[0];
    assert_eq!(
        (&l["status"], &l["end"], &l["error"]),
        (
            &Value::from(502),
            &Value::from("upstream_error"),
            &Value::from("upstream_unreachable: connection_refused")
        )
    );

    // The upstream reads the request and closes without answering: 502, not resent.
    let closes = Raw::start(Behaviour::Close).await;
    let gw2 = Gateway::in_front_of(&[closes.addr], "");
    let r = reqwest::Client::new()
        .post(gw2.url("/mcp"))
        .header("content-type", "application/json")
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (&v["id"], &v["error"]["data"]["reason"]),
        (&Value::from(7), &Value::from("upstream_failed"))
    );
    let seen = closes.wait_requests(1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].ends_with(PING), "{seen:?}");
    let l = &lines(&gw2, 1).await[0];
    assert_eq!(
        (&l["status"], &l["end"]),
        (&Value::from(502), &Value::from("upstream_error"))
    );
    assert_eq!(l["error"], "upstream_failed: connection_closed", "{l}");

    // The upstream resets its connection in the middle of an SSE stream.
    let resets = Raw::start(Behaviour::ResetMidStream).await;
    let gw3 = Gateway::in_front_of(&[resets.addr], "");
    let r = reqwest::Client::new()
        .get(gw3.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cut = read_to_end(r, Duration::from_secs(10)).await;
    assert!(
        cut.as_ref().is_err_and(|e| e.contains("data: 1")),
        "{cut:?}"
    );
    assert_eq!(resets.wait_requests(1).await.len(), 1);
    let l = &lines(&gw3, 1).await[0];
    assert_eq!(
        (&l["status"], &l["end"], &l["sse"]),
        (
            &Value::from(200),
            &Value::from("upstream_error"),
            &Value::from(true)
        )
    );
    assert_eq!(l["error"], "upstream_failed: connection_reset", "{l}");
    // Real errors are logged (Pingora's line), with the request.
    assert!(gw3.stderr().contains("Fail to proxy"), "{}", gw3.stderr());
}

#[tokio::test]
async fn a_stream_a_drain_ends_is_drained() {
    let up = mixed().await;
    let mut gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n      idle_timeout: 60s\n",
        up.addr
    ));
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a first event");
    // The upstream got the GET: its first event is here.
    assert!(
        matches!(&first, Some(Ok(c)) if c.starts_with(b"id: 0\ndata: 0\n\n")),
        "{first:?}"
    );
    // SIGTERM drains without a successor: the stream ends cleanly, then the process exits.
    gw.signal("TERM");
    let mut ended = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while ended.is_none() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(15), stream.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(None) => ended = Some(Ok(())),
            Ok(Some(Err(e))) => ended = Some(Err(e.to_string())),
            Err(_) => break,
        }
    }
    assert_eq!(ended, Some(Ok(())), "the stream must end cleanly");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    let log = gw.access_log();
    assert_eq!(log.len(), 1, "{log:#?}");
    let l = &log[0];
    assert_eq!(
        (&l["method"], &l["status"], &l["sse"]),
        (&Value::from("GET"), &Value::from(200), &Value::from(true))
    );
    assert_eq!(l["end"], "drained", "{l}");
    assert!(l["error"].is_null(), "{l}");
}
