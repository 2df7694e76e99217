//! Fleet-wide rate limits on a real `redis-server` (ephemeral port): two gateway instances share
//! one limit, and when Redis is slow or down each follows its failure policy.

use crate::support::{metric_value, Gateway, Redis};
use crate::upstreams::recording;
use std::time::{Duration, Instant};

fn config(upstream: std::net::SocketAddr, redis: &str, on_error: &str) -> String {
    format!(
        "redis:\n  url: {redis}\n  timeout: 1s\n  on_error: {on_error}\n  key_prefix: fleet-test\nendpoints:\n  - path: /mcp\n    name: shared\n    backend:\n      hosts: [http://{upstream}]\n    policies:\n      rate_limits:\n        - name: fleet\n          requests: 5\n          period: 1m\n          key: endpoint\n          store: redis\n"
    )
}

async fn post(client: &reqwest::Client, url: &str, id: u32) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#))
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn two_instances_share_one_limit_and_follow_their_failure_policy() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let up = recording("a", 200, "{}").await;
    let open = Gateway::start(&config(up.addr, &redis.url, "allow"));
    let closed = Gateway::start(&config(up.addr, &redis.url, "deny"));
    let client = reqwest::Client::new();

    let mut allowed = 0;
    for i in 0..8u32 {
        let gw = if i % 2 == 0 { &open } else { &closed };
        let resp = post(&client, &gw.url("/mcp"), i).await;
        match resp.status().as_u16() {
            200 => allowed += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                let body: serde_json::Value = resp.json().await.expect("JSON");
                assert_eq!(body["id"], i);
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(allowed, 5, "five allowed across both instances");
    assert_eq!(up.requests().len(), 5);

    // Redis hangs (SIGSTOP): decisions time out; allow lets requests through, deny refuses.
    redis.signal("STOP");
    let started = Instant::now();
    assert_eq!(post(&client, &open.url("/mcp"), 20).await.status(), 200);
    let resp = post(&client, &closed.url("/mcp"), 21).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"]["data"]["reason"], "limit_store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the timeout bounds a decision: {:?}",
        started.elapsed()
    );
    redis.signal("CONT");

    // Redis gone: the same.
    redis.stop();
    assert_eq!(post(&client, &open.url("/mcp"), 30).await.status(), 200);
    assert_eq!(post(&client, &closed.url("/mcp"), 31).await.status(), 503);

    let page = open.metrics().await;
    assert!(
        metric_value(
            &page,
            "mcpgate_redis_errors_total",
            &[("reason", "timeout")]
        ) >= 1.0,
        "{page}"
    );
    assert!(metric_value(&page, "mcpgate_redis_errors_total", &[]) >= 2.0);
    assert!(metric_value(&page, "mcpgate_redis_request_duration_seconds_count", &[]) >= 6.0);
    let page = closed.metrics().await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_limited_requests_total",
            &[("limit", "fleet"), ("reason", "store_unavailable")]
        ),
        2.0
    );
}
