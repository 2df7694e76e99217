//! Fan-out details: `notifications/cancelled` goes to the server that owns the request, and
//! fan-out requests go through the servers' circuit breakers (a host whose breaker is open is
//! not asked, and a new session starts on a host whose breaker is closed).

use super::{config, demo, init, rpc, scripted, start_session};
use crate::support::{dead_addr, metric_value, Gateway};
use serde_json::{json, Value};

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
