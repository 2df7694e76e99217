//! Live streaming: no buffering, no total-time cap on streams, client disconnects reach the
//! upstream.

use crate::support::Gateway;
use crate::upstreams::{endless_stream, gated_sse, keepalive_stream, Gate};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Reads SSE bytes from `resp` until `needle` has arrived (bounded by `limit`).
async fn read_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn each_sse_event_reaches_the_client_before_the_next_is_sent() {
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let gate = Arc::new(Gate::default());
        let up = gated_sse(gate.clone()).await;
        let gw = Gateway::in_front_of(&[up.addr], "");
        let resp = reqwest::Client::new()
            .request(method.clone(), gw.url("/mcp"))
            .header("accept", "text/event-stream, application/json")
            .header("content-type", "application/json")
            .body(if method == reqwest::Method::POST {
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#
            } else {
                ""
            })
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert!(resp.headers().get("content-encoding").is_none());
        let mut stream = resp.bytes_stream();
        let mut seen = String::new();
        assert!(
            read_until(
                &mut stream,
                &mut seen,
                "data: {\"n\":1}\n\n",
                Duration::from_secs(5)
            )
            .await,
            "{method}: first event never arrived: {seen:?}"
        );
        assert!(!seen.contains("\"n\":2"));
        gate.client_has_first.notify_one();
        assert!(
            read_until(
                &mut stream,
                &mut seen,
                "data: {\"n\":2}\n\n",
                Duration::from_secs(10)
            )
            .await,
            "{method}: second event never arrived"
        );
        assert_eq!(
            *gate.first_arrived_before_second.lock().unwrap(),
            Some(true),
            "{method}: the upstream had to wait for the client to see event 1: the gateway buffered"
        );
        assert_eq!(
            seen,
            "id: 1\nevent: message\ndata: {\"n\":1}\n\nid: 2\nevent: message\ndata: {\"n\":2}\n\n",
            "bytes unchanged"
        );
    }
}

#[tokio::test]
async fn a_get_stream_outlives_many_idle_timeouts_while_keepalives_flow() {
    // idle_timeout 1 s; the upstream sends a comment every 200 ms for ~4 s (4 idle periods). The
    // 800 ms of slack absorbs a busy CI machine stalling the upstream or the gateway.
    let up = keepalive_stream(Duration::from_millis(200), 20).await;
    let gw = Gateway::in_front_of(&[up.addr], "      idle_timeout: 1s\n");
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    assert!(
        read_until(
            &mut stream,
            &mut seen,
            "data: done\n\n",
            Duration::from_secs(15)
        )
        .await,
        "stream cut: {seen:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(3800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.matches(": keep-alive\n\n").count(), 20);
}

#[tokio::test]
async fn a_silent_stream_is_closed_after_the_idle_timeout() {
    // One comment then silence longer than the idle timeout: the gateway ends the stream.
    let up = keepalive_stream(Duration::from_secs(30), 1).await;
    let gw = Gateway::in_front_of(&[up.addr], "      idle_timeout: 500ms\n");
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let mut stream = resp.bytes_stream();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream must end after the idle timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn client_disconnect_closes_the_upstream_connection() {
    let closed = Arc::new(Notify::new());
    let up = endless_stream(closed.clone()).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let resp = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    assert!(
        read_until(
            &mut stream,
            &mut seen,
            "data: 2\n\n",
            Duration::from_secs(5)
        )
        .await
    );
    drop(stream);
    let noticed = tokio::time::timeout(Duration::from_secs(5), closed.notified()).await;
    assert!(
        noticed.is_ok(),
        "the upstream stream kept running after the client left"
    );
    // The open-streams gauge is back to zero.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = gw.metrics().await;
        if crate::support::metric_value(&page, "mcpgate_open_streams", &[("endpoint", "/mcp")])
            == 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "open streams gauge stuck:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
