//! Rate and concurrency limits through the real binary: bursts over a limit get 429 with
//! `Retry-After` and the IETF RateLimit headers (and a JSON-RPC error with the request's id), the
//! upstream sees only the allowed requests, keys are independent, missing keys follow the policy,
//! an unchanged limit keeps counting across a reload, and stream counts are separate.

use crate::support::{metric_value, Gateway};
use crate::upstreams::{endless_stream, recording};
use std::sync::Arc;
use std::time::Duration;

fn call(id: u32) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo"}}}}"#)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    id: u32,
    tenant: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call(id));
    if let Some(t) = tenant {
        req = req.header("x-tenant", t);
    }
    req.send().await.expect("POST")
}

const RATE_YAML: &str = r#"
    policies:
      rate_limits:
        - name: per-tenant
          requests: 3
          period: 1m
          key: { header: X-Tenant }
          headers: true
"#;

#[tokio::test]
async fn bursts_over_a_limit_get_429_with_headers_and_the_upstream_sees_only_allowed() {
    let up = recording("a", 200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n{RATE_YAML}",
        up.addr
    ));
    let client = reqwest::Client::new();
    let url = gw.url("/mcp");

    for i in 0..3 {
        let resp = post(&client, &url, i, Some("t1")).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["ratelimit-policy"], r#""per-tenant";q=3;w=60"#);
        let state = h["ratelimit"].to_str().unwrap_or_default().to_string();
        assert!(
            state.starts_with(&format!("\"per-tenant\";r={};t=", 2 - i)),
            "{state}"
        );
    }
    for id in [7u32, 0] {
        let resp = post(&client, &url, id, Some("t1")).await;
        assert_eq!(resp.status(), 429);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap_or_default()
            .parse()
            .unwrap_or(0);
        // Up to two periods: the sliding estimate still weighs this window in the next.
        assert!((1..=120).contains(&retry), "Retry-After {retry}");
        assert_eq!(
            resp.headers()["ratelimit"].to_str().unwrap_or_default(),
            format!("\"per-tenant\";r=0;t={retry}")
        );
        assert!(resp.headers().contains_key("ratelimit-policy"));
        let body: serde_json::Value = resp.json().await.expect("JSON body");
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], id, "the request's id, 0 included: {body}");
        assert_eq!(body["error"]["data"]["reason"], "rate_limited");
    }
    // Another key has its own budget.
    assert_eq!(post(&client, &url, 9, Some("t2")).await.status(), 200);
    assert_eq!(
        up.requests().len(),
        4,
        "the upstream saw only allowed requests"
    );

    // No X-Tenant: rejected with 400 (on_missing_key: reject is the default).
    let resp = post(&client, &url, 11, None).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["id"], 11);
    assert_eq!(body["error"]["data"]["reason"], "limit_key_missing");
    assert_eq!(up.requests().len(), 4);

    let page = gw.metrics().await;
    let limited = |reason| {
        metric_value(
            &page,
            "mcpgate_limited_requests_total",
            &[("limit", "per-tenant"), ("reason", reason)],
        )
    };
    assert_eq!(limited("rate"), 2.0, "{page}");
    assert_eq!(limited("missing_key"), 1.0);
}

#[tokio::test]
async fn missing_keys_can_share_a_bucket_and_an_unchanged_limit_survives_a_reload() {
    let up = recording("a", 200, "{}").await;
    let body = |requests: u32| {
        format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n    policies:\n      rate_limits:\n        - name: anon\n          requests: {requests}\n          period: 1m\n          key: {{ claim: tenant }}\n          on_missing_key: shared\n",
            up.addr
        )
    };
    let gw = Gateway::start(&body(2));
    let client = reqwest::Client::new();
    let url = gw.url("/mcp");
    // Unauthenticated requests have no claim: they share one bucket.
    assert_eq!(post(&client, &url, 1, None).await.status(), 200);
    assert_eq!(post(&client, &url, 2, None).await.status(), 200);
    assert_eq!(post(&client, &url, 3, None).await.status(), 429);

    // Reload the same config (another generation): the count carries over.
    let reload = |gw: &Gateway| {
        let admin = gw.admin.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{admin}/reload"))
                .send()
                .await
                .expect("POST /reload")
        }
    };
    let resp = reload(&gw).await;
    assert_eq!(resp.status(), 200);
    let report: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(report["generation"], 2, "{report}");
    assert_eq!(
        post(&client, &url, 4, None).await.status(),
        429,
        "still limited after the reload"
    );

    // A changed limit starts fresh.
    std::fs::write(gw.dir.path().join("mcpgate.yaml"), {
        let text = std::fs::read_to_string(gw.dir.path().join("mcpgate.yaml")).unwrap_or_default();
        text.replace("requests: 2", "requests: 5")
    })
    .expect("rewrite config");
    assert_eq!(reload(&gw).await.status(), 200);
    assert_eq!(post(&client, &url, 5, None).await.status(), 200);

    // A broken config is refused with every problem; the running one stays.
    std::fs::write(gw.dir.path().join("mcpgate.yaml"), {
        let text = std::fs::read_to_string(gw.dir.path().join("mcpgate.yaml")).unwrap_or_default();
        text.replace("requests: 5", "requests: 0")
            .replace("period: 1m", "period: soon")
    })
    .expect("rewrite config");
    let resp = reload(&gw).await;
    assert_eq!(resp.status(), 400);
    let report: serde_json::Value = resp.json().await.expect("JSON");
    let paths: Vec<&str> = report["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["path"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        paths.contains(&"endpoints[0].policies.rate_limits[0].requests"),
        "{report}"
    );
    assert!(
        paths.contains(&"endpoints[0].policies.rate_limits[0].period"),
        "{report}"
    );
    assert_eq!(
        post(&client, &url, 6, None).await.status(),
        200,
        "old config still serves"
    );
    let page = gw.metrics().await;
    assert_eq!(metric_value(&page, "mcpgate_config_generation", &[]), 3.0);
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_config_reload_total",
            &[("result", "failure")]
        ),
        1.0
    );
}

#[tokio::test]
async fn stream_and_request_concurrency_are_counted_apart() {
    let closed = Arc::new(tokio::sync::Notify::new());
    let up = endless_stream(closed.clone()).await;
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n    policies:\n      concurrency:\n        - name: per-client\n          max_streams: 2\n          max_requests: 5\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let open = || {
        client
            .get(gw.url("/mcp"))
            .header("accept", "text/event-stream")
            .send()
    };
    let mut first = open().await.expect("GET 1");
    assert_eq!(first.status(), 200);
    let second = open().await.expect("GET 2");
    assert_eq!(second.status(), 200);
    // Make sure both streams are flowing before the third.
    assert!(first.chunk().await.ok().flatten().is_some());
    let third = open().await.expect("GET 3");
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: serde_json::Value = third.json().await.expect("JSON");
    assert_eq!(body["error"]["reason"], "concurrency_limited");

    // Requests are counted apart from streams: a POST still goes through.
    let resp = post(&client, &gw.url("/mcp"), 1, None).await;
    assert_eq!(resp.status(), 200);
    drop(resp);

    // Closing a stream frees its place.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        let r = open().await.expect("GET again");
        if r.status() == 200 {
            reopened = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream releases its count");
    let page = gw.metrics().await;
    let limited = metric_value(
        &page,
        "mcpgate_limited_requests_total",
        &[("limit", "per-client"), ("reason", "concurrency")],
    );
    assert!(limited >= 1.0, "{page}");
}
