//! Circuit breakers per upstream host: a failing host leaves the rotation after consecutive
//! failures, comes back through a half-open probe once it recovers, and an endpoint whose every
//! host is open answers 503 with `Retry-After` without touching the upstream.

use crate::support::{dead_addr, metric_value, Gateway};
use crate::upstreams::{flaky, recording};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BREAKER: &str = "      health_check: { enabled: false }\n      circuit_breaker:\n        consecutive_failures: 2\n        open_for: 3s\n";

async fn post(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn a_failing_host_is_taken_out_and_comes_back_after_a_probe() {
    let failing = Arc::new(AtomicBool::new(true));
    let bad = flaky(failing.clone()).await;
    let good = recording("good", 200, "{}").await;
    let gw = Gateway::in_front_of(&[bad.addr, good.addr], BREAKER);
    let client = reqwest::Client::new();
    let bad_label = format!("http://{}", bad.addr);

    for _ in 0..12 {
        let _ = post(&client, &gw.url("/mcp")).await;
    }
    assert_eq!(
        bad.requests().len(),
        2,
        "opened after two failures in a row"
    );
    assert_eq!(good.requests().len(), 10);
    let page = gw.metrics().await;
    let state = |page: &str| {
        metric_value(
            page,
            "mcpgate_circuit_breaker_state",
            &[("host", bad_label.as_str())],
        )
    };
    assert_eq!(state(&page), 1.0, "open");
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_circuit_breaker_transitions_total",
            &[("host", bad_label.as_str()), ("state", "open")]
        ),
        1.0
    );

    // Recovered, and the open period over: a probe goes through and closes the breaker.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    for _ in 0..6 {
        assert_eq!(post(&client, &gw.url("/mcp")).await.status(), 200);
    }
    assert!(
        bad.requests().len() >= 4,
        "back in the rotation: {}",
        bad.requests().len()
    );
    let page = gw.metrics().await;
    assert_eq!(state(&page), 0.0, "closed again");
    for s in ["half_open", "closed"] {
        assert_eq!(
            metric_value(
                &page,
                "mcpgate_circuit_breaker_transitions_total",
                &[("host", bad_label.as_str()), ("state", s)]
            ),
            1.0,
            "{s}"
        );
    }
}

#[tokio::test]
async fn every_host_open_gets_503_with_retry_after() {
    // Connect errors count as failures too.
    let gw = Gateway::in_front_of(
        &[dead_addr()],
        "      health_check: { enabled: false }\n      circuit_breaker:\n        consecutive_failures: 2\n        open_for: 5s\n",
    );
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &gw.url("/mcp")).await.status(), 502);
    assert_eq!(post(&client, &gw.url("/mcp")).await.status(), 502);
    let resp = post(&client, &gw.url("/mcp")).await;
    assert_eq!(resp.status(), 503);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["data"]["reason"], "circuit_open");
    let page = gw.metrics().await;
    assert_eq!(
        metric_value(&page, "mcpgate_upstream_connect_failures_total", &[]),
        2.0,
        "no connection attempt while open"
    );
}
