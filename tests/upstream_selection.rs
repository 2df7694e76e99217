//! Host selection: round robin, retry on connect failure, health-check ejection.

use crate::support::{dead_addr, metric_value, Gateway};
use crate::upstreams::recording;
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn who_answers(gw: &Gateway, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut names = Vec::new();
    for i in 0..n {
        let resp = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        names.push(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    names
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let (a, b, c) = (
        recording("a", 200, "{}").await,
        recording("b", 200, "{}").await,
        recording("c", 200, "{}").await,
    );
    let gw = Gateway::in_front_of(&[a.addr, b.addr, c.addr], "");
    let names = who_answers(&gw, 9).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for n in &names {
        *counts.entry(n.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{names:?}");
    assert!(counts.values().all(|&c| c == 3), "{names:?}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_host() {
    let a = recording("a", 200, "{}").await;
    let dead = dead_addr();
    // No health checks: every second pick is the dead host, and must be retried on `a`.
    let gw = Gateway::in_front_of(&[dead, a.addr], "      health_check: {enabled: false}\n");
    let names = who_answers(&gw, 6).await;
    assert!(names.iter().all(|n| n == "a"), "{names:?}");
    assert_eq!(
        a.requests().len(),
        6,
        "each request reached the live host exactly once"
    );
    let page = gw.metrics().await;
    let failures = metric_value(
        &page,
        "mcpgate_upstream_connect_failures_total",
        &[("host", &format!("http://{dead}"))],
    );
    assert!(failures >= 1.0, "{page}");
}

#[tokio::test]
async fn health_checks_eject_a_dead_host_and_readmit_it() {
    let a = recording("a", 200, "{}").await;
    let b = recording("b", 200, "{}").await;
    let b_addr = b.addr;
    let gw = Gateway::in_front_of(
        &[a.addr, b_addr],
        "      health_check: {interval: 100ms, timeout: 200ms, unhealthy_threshold: 1}\n",
    );
    let b_label = format!("http://{b_addr}");
    drop(b); // host b goes away
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = gw.metrics().await;
        if metric_value(&page, "mcpgate_upstream_healthy", &[("host", &b_label)]) == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host b never marked unhealthy:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = metric_value(
        &gw.metrics().await,
        "mcpgate_upstream_connect_failures_total",
        &[("host", &b_label)],
    );
    let names = who_answers(&gw, 6).await;
    assert!(names.iter().all(|n| n == "a"), "{names:?}");
    let after = metric_value(
        &gw.metrics().await,
        "mcpgate_upstream_connect_failures_total",
        &[("host", &b_label)],
    );
    assert_eq!(before, after, "an ejected host is not even tried");

    // b comes back on the same port and is used again.
    let listener = tokio::net::TcpListener::bind(b_addr).await;
    let Ok(listener) = listener else { return }; // the port was taken meanwhile: nothing more to check
    let b2 = crate::upstreams::recording_on(listener, "b").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = who_answers(&gw, 2).await;
        if names.iter().any(|n| n == "b") {
            break;
        }
        assert!(Instant::now() < deadline, "host b never readmitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(b2);
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_reused() {
    let a = recording("a", 200, "{}").await;
    let gw = Gateway::in_front_of(&[a.addr], "      health_check: {enabled: false}\n");
    // Separate client connections, one after another: the gateway reuses its upstream connection.
    for i in 0..20 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let resp = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    assert_eq!(a.requests().len(), 20);
    let conns = a.connections.load(std::sync::atomic::Ordering::SeqCst);
    // A connection goes back to the pool just after its answer reaches the client, so a next
    // request that comes in at that moment on a busy machine may open one more: a few, not 20.
    assert!(
        conns <= 5,
        "20 requests opened {conns} upstream connections"
    );
}
