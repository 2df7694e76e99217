//! The first command of the README, `mcpgate demo`, on the shipped `conf/mcpgate.yaml`: a full
//! rmcp session works through it, `/metrics` shows MCP methods and tools, the example's tool
//! policy refuses what it says it refuses (and the demo server never sees that call), and the
//! demo server ends a session with an answer every official SDK accepts.

use crate::mcp_client::run_session;
use crate::support::{metric_value, Gateway};

const ACCEPT: &str = "application/json, text/event-stream";
const VERSION: &str = "2025-06-18";

/// POSTs `body` with the session id (when given); returns status, session id header and text.
async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, Option<String>, String) {
    let mut req = client
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", VERSION)
        .body(body.to_string());
    if let Some(sid) = session {
        req = req.header("mcp-session-id", sid);
    }
    let resp = req.send().await.expect("POST through the demo gateway");
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, sid, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_demo_command_shows_the_product() {
    let gw = Gateway::demo_on_example_config();
    let url = gw.url("/mcp");

    // A whole session with the official Rust SDK: tools, progress over SSE, the GET stream,
    // resources, prompts, and DELETE at the end.
    let report = run_session(&url)
        .await
        .unwrap_or_else(|e| panic!("rmcp session through `mcpgate demo`: {e}\n{}", gw.stderr()));
    for tool in ["echo", "add", "slow_count", "notify"] {
        assert!(report.tools.iter().any(|t| t == tool), "{:?}", report.tools);
    }
    assert_eq!(report.echo, "hello");
    assert!(report.notification_on_get_stream);

    // Inspection is on in the example: the MCP metrics name methods and the tools called.
    let page = gw
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_mcp_requests_total",
                &[("mcp_method", "tools/call"), ("tool", "echo")],
            ) >= 1.0
        })
        .await;
    assert!(
        metric_value(
            &page,
            "mcpgate_mcp_requests_total",
            &[("mcp_method", "tools/list")]
        ) >= 1.0,
        "{page}"
    );
    for tool in ["add", "slow_count"] {
        assert!(
            metric_value(
                &page,
                "mcpgate_mcp_requests_total",
                &[("mcp_method", "tools/call"), ("tool", tool)]
            ) >= 1.0,
            "tools/call of {tool} is labelled with its name:\n{page}"
        );
    }

    // The example's tool policy, by hand: slow_count counts to 20 at most through the gateway.
    let client = reqwest::Client::new();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"demo-test","version":"1"}}}"#;
    let (status, sid, text) = post(&client, &url, None, init).await;
    assert_eq!(status, 200, "{text}");
    let sid = sid.expect("the demo server opens a session");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (status, _, _) = post(&client, &url, Some(&sid), note).await;
    assert_eq!(status, 202);

    let too_many = r#"{"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"slow_count","arguments":{"count":50,"interval_ms":1}}}"#;
    let (status, _, text) = post(&client, &url, Some(&sid), too_many).await;
    assert_eq!(status, 422, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).expect("a JSON-RPC error");
    assert_eq!(body["id"], "long", "{text}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("slow_count is limited to 20 steps")),
        "{text}"
    );
    let allowed = r#"{"jsonrpc":"2.0","id":"short","method":"tools/call","params":{"name":"slow_count","arguments":{"count":2,"interval_ms":1}}}"#;
    let (status, _, text) = post(&client, &url, Some(&sid), allowed).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#""id":"short""#) && text.contains("counted to 2"),
        "{text}"
    );
    let page = gw
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_mcp_requests_total",
                &[("tool", "slow_count"), ("outcome", "denied")],
            ) >= 1.0
        })
        .await;
    assert!(
        metric_value(
            &page,
            "mcpgate_mcp_requests_total",
            &[("tool", "slow_count"), ("outcome", "denied")]
        ) >= 1.0,
        "{page}"
    );

    // Ending the session: 200, which the Python SDK accepts without "Session termination
    // failed: 202" (it takes 200 and 204 only); the session is gone afterwards.
    let resp = client
        .delete(&url)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", VERSION)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status().as_u16(), 200);
    let ping = r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#;
    let (status, _, text) = post(&client, &url, Some(&sid), ping).await;
    assert_eq!(status, 404, "an ended session is gone: {text}");
}
