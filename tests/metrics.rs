//! Metrics from the logging phase: values after scripted traffic, and `promtool check metrics`.

use crate::support::{metric_value, Gateway};
use crate::upstreams::recording;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test]
async fn metrics_count_traffic_and_pass_promtool() {
    let up = recording("a", 200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let client = reqwest::Client::new();
    let mut bytes_to_clients = 0;
    for _ in 0..3 {
        let r = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        bytes_to_clients += r.bytes().await.unwrap().len();
    }
    assert_eq!(
        client
            .get(gw.url("/missing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let refused = client.put(gw.url("/mcp")).send().await.unwrap();
    assert_eq!(refused.status(), 405);
    bytes_to_clients += refused.bytes().await.unwrap().len();

    // The logging phase runs after the response: wait (bounded) until all five are counted.
    let page = gw
        .metrics_when(|p| metric_value(p, "mcpgate_requests_total", &[]) >= 5.0)
        .await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[
                ("endpoint", "/mcp"),
                ("method", "POST"),
                ("status_class", "2xx")
            ]
        ),
        3.0,
        "{page}"
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[
                ("endpoint", "none"),
                ("method", "GET"),
                ("status_class", "4xx")
            ]
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[
                ("endpoint", "/mcp"),
                ("method", "other"),
                ("status_class", "4xx")
            ]
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_request_duration_seconds_count",
            &[("endpoint", "/mcp"), ("method", "POST")]
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_upstream_ttfb_seconds_count",
            &[("endpoint", "/mcp")]
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_request_body_bytes_total",
            &[("endpoint", "/mcp")]
        ),
        3.0 * 40.0
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_response_body_bytes_total",
            &[("endpoint", "/mcp")]
        ),
        bytes_to_clients as f64
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_upstream_healthy",
            &[("host", &format!("http://{}", up.addr))]
        ),
        1.0
    );
    assert_eq!(metric_value(&page, "mcpgate_build_info", &[]), 1.0);
    // How they ended: three relayed whole, two refused by the gateway; every end exists from
    // the start (0), so rate() sees the first one.
    let ends = |endpoint: &str, end: &str| {
        metric_value(
            &page,
            "mcpgate_request_ends_total",
            &[("endpoint", endpoint), ("end", end)],
        )
    };
    assert_eq!(ends("/mcp", "complete"), 3.0, "{page}");
    assert_eq!(ends("/mcp", "refused"), 1.0, "{page}");
    assert_eq!(ends("none", "refused"), 1.0, "{page}");
    assert_eq!(metric_value(&page, "mcpgate_request_ends_total", &[]), 5.0);
    for end in [
        "upstream_closed",
        "client_closed",
        "client_timeout",
        "idle_timeout",
        "drained",
        "upstream_error",
        "gateway_error",
    ] {
        assert!(
            page.contains(&format!(
                "mcpgate_request_ends_total{{end=\"{end}\",endpoint=\"/mcp\"}} 0"
            )),
            "{end}: {page}"
        );
    }

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package `prometheus`; .ci/run installs it)");
    let mut child = promtool;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // One access-log line per request, JSON, with no query string.
    let log = gw.access_log_when(5).await;
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log.iter().any(|l| l["status"] == 404
        && l["path"] == "/missing"
        && l["end"] == "refused"
        && l["error"] == "not_found"));
    assert_eq!(
        log.iter()
            .filter(|l| l["status"] == 200 && l["end"] == "complete" && l["error"].is_null())
            .count(),
        3,
        "{log:?}"
    );
    assert!(log
        .iter()
        .all(|l| l["ts"].as_str().is_some_and(|t| t.ends_with('Z'))));
}

#[tokio::test]
async fn admin_health_and_readiness() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let h = reqwest::get(format!("{}/healthz", gw.admin)).await.unwrap();
    assert_eq!(h.status(), 200);
    let r: serde_json::Value = reqwest::get(format!("{}/readyz", gw.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["config_generation"], 1);
    assert_eq!(r["endpoints"][0]["hosts"], 1);
    let nf = reqwest::get(format!("{}/nope", gw.admin)).await.unwrap();
    assert_eq!(nf.status(), 404);
}
