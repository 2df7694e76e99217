//! Federation (several MCP servers behind one endpoint): real rmcp demo servers and a scripted
//! MCP server (long tool names, two pages of tools, a session it can lose) behind one endpoint;
//! the rmcp client and raw JSON-RPC; two gateways sharing a key. Faults are in `faults.rs`.

mod faults;
mod peers;
mod ready;
mod routing;
mod stateless;
mod streams;

use crate::support::{metric_value, Gateway};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub(super) const WAIT: Duration = Duration::from_secs(15);

pub(super) fn long_name() -> String {
    format!("long_{}", "x".repeat(95))
}

pub(super) async fn demo() -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    (addr, tokio::spawn(mcpgate::demo::serve(l)))
}

/// What the scripted server received: (HTTP method, session header, JSON body).
type Seen = Arc<Mutex<Vec<(Method, Option<String>, Value)>>>;

pub(super) struct Scripted {
    pub(super) addr: SocketAddr,
    pub(super) seen: Seen,
    /// When set, its session is gone (it answers 404, as after a restart).
    pub(super) gone: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    pub(super) fn methods(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|v| {
                v.iter()
                    .map(|(m, _, b)| match b.get("method").and_then(Value::as_str) {
                        Some(name) => name.to_string(),
                        None => m.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    pub(super) fn count(&self) -> usize {
        self.seen.lock().map(|v| v.len()).unwrap_or_default()
    }
}

/// A JSON-answering MCP server: session `c-session`, two pages of tools (one with a 100-character
/// name), `tools/call` answered with the name it received.
pub(super) async fn scripted() -> Scripted {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(AtomicBool::new(false));
    let (s2, g2) = (seen.clone(), gone.clone());
    let router = axum::Router::new().fallback(any(move |method: Method, headers: HeaderMap, body: Bytes| {
        let (seen, gone) = (s2.clone(), g2.clone());
        async move {
            let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Ok(mut v) = seen.lock() {
                v.push((method.clone(), session.clone(), msg.clone()));
            }
            if method == Method::DELETE {
                return StatusCode::OK.into_response();
            }
            let name = msg.get("method").and_then(Value::as_str).unwrap_or("");
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            if name == "initialize" {
                let result = json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}, "logging": {}},
                    "serverInfo": {"name": "scripted", "version": "1"}, "instructions": "the scripted server"});
                return Response::builder()
                    .header("content-type", "application/json")
                    .header("mcp-session-id", "c-session")
                    .body(Body::from(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()))
                    .unwrap_or_default();
            }
            if gone.load(Ordering::SeqCst) || session.as_deref() != Some("c-session") {
                return StatusCode::NOT_FOUND.into_response();
            }
            if name.starts_with("notifications/") {
                return StatusCode::ACCEPTED.into_response();
            }
            let result = match name {
                "tools/list" => match msg.pointer("/params/cursor").and_then(Value::as_str) {
                    None => json!({"tools": [{"name": long_name(), "inputSchema": {"type": "object"}}], "nextCursor": "p2"}),
                    Some("p2") => json!({"tools": [{"name": "second", "inputSchema": {"type": "object"}},
                        {"name": "hidden", "inputSchema": {"type": "object"}}]}),
                    Some(_) => json!({"tools": []}),
                },
                "tools/call" => json!({"content": [{"type": "text", "text": format!("called {}", msg["params"]["name"].as_str().unwrap_or(""))}]}),
                "prompts/list" => json!({"prompts": []}),
                "resources/list" => json!({"resources": []}),
                _ => {
                    let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}});
                    return Response::builder().header("content-type", "application/json").body(Body::from(e.to_string())).unwrap_or_default();
                }
            };
            json_result(&id, result)
        }
    }));
    let (addr, task) = serve(router).await;
    Scripted {
        addr,
        seen,
        gone,
        task,
    }
}

/// Serves `router` on an ephemeral loopback port until the task is dropped or aborted.
pub(super) async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    (addr, task)
}

/// A JSON answer carrying the JSON-RPC `result` for request `id`.
pub(super) fn json_result(id: &Value, result: Value) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        ))
        .unwrap_or_default()
}

/// The gateway YAML of a federated endpoint over `servers` (alias, address, required).
pub(super) fn config(servers: &[(&str, SocketAddr, bool)], extra: &str) -> String {
    let mut y = format!("sessions:\n  key: {KEY}\n{extra}endpoints:\n  - path: /mcp\n    federation:\n      deadline: 5s\n    servers:\n");
    for (alias, addr, required) in servers {
        y.push_str(&format!(
            "      - alias: {alias}\n        required: {required}\n        backend:\n          hosts: [http://{addr}]\n          path: /mcp\n"
        ));
        if *alias == "c" {
            y.push_str("        tools:\n          deny: [hidden]\n");
        }
    }
    y
}

/// A raw JSON-RPC POST; returns (status, session header, JSON body).
pub(super) async fn rpc(
    gw: &Gateway,
    session: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .timeout(WAIT);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("send");
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    let json = if ct.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    (status, sid, json)
}

pub(super) fn init(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

pub(super) async fn start_session(gw: &Gateway, headers: &[(&str, &str)]) -> String {
    let (status, sid, body) = rpc(gw, None, headers, init(1)).await;
    assert_eq!(status, 200, "{body}");
    let sid = sid.expect("a session id");
    let (status, _, _) = rpc(
        gw,
        Some(&sid),
        headers,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_lists_and_calls_every_server() {
    let (a, _da) = demo().await;
    let (b, _db) = demo().await;
    let c = scripted().await;
    let gw = Gateway::start(&config(
        &[("a", a, true), ("b", b, true), ("c", c.addr, false)],
        "",
    ));
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(gw.url("/mcp"))
        .reinit_on_expired_session(false);
    cfg.allow_stateless = false;
    let client = tokio::time::timeout(
        WAIT,
        ().serve(StreamableHttpClientTransport::from_config(cfg)),
    )
    .await
    .expect("initialize in time")
    .expect("initialize");
    let info = client.peer_info().expect("initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("mcpgate")
    );
    assert!(!info.protocol_version.to_string().is_empty());
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(
        instructions.contains("## a\n") && instructions.contains("## c\nthe scripted server"),
        "{instructions}"
    );

    let tools: Vec<String> = tokio::time::timeout(WAIT, client.list_all_tools())
        .await
        .expect("in time")
        .expect("tools")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let shortened = tools
        .iter()
        .find(|t| t.starts_with("c_long_"))
        .cloned()
        .expect("the long tool, shortened");
    assert_eq!(shortened.len(), 64, "{shortened}");
    for want in ["a_echo", "a_add", "b_echo", "b_slow_count", "c_second"] {
        assert!(tools.iter().any(|t| t == want), "{want} in {tools:?}");
    }
    assert!(
        !tools.iter().any(|t| t.contains("hidden")),
        "denied by c's tool list: {tools:?}"
    );
    assert!(tools.iter().all(|t| t.len() <= 64
        && t.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')));

    let call = |name: String, args: Value| {
        let p = CallToolRequestParams::new(name)
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        client.call_tool(p)
    };
    let echo = tokio::time::timeout(WAIT, call("b_echo".into(), json!({"text": "via b"})))
        .await
        .expect("in time")
        .expect("b_echo");
    assert_eq!(
        echo.content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone()),
        Some("via b".into())
    );
    let sum = tokio::time::timeout(WAIT, call("a_add".into(), json!({"a": 2, "b": 3})))
        .await
        .expect("in time")
        .expect("a_add");
    assert_eq!(
        sum.content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone()),
        Some("5".into())
    );
    let long = tokio::time::timeout(WAIT, call(shortened.clone(), json!({})))
        .await
        .expect("in time")
        .expect("long tool");
    assert_eq!(
        long.content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone()),
        Some(format!("called {}", long_name()))
    );

    let prompt = tokio::time::timeout(
        WAIT,
        client.get_prompt(
            GetPromptRequestParams::new("a_greet").with_arguments(
                json!({"name": "Ada"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        ),
    )
    .await
    .expect("in time")
    .expect("prompt");
    assert!(format!("{:?}", prompt.messages).contains("Ada"));
    let resources: Vec<String> = tokio::time::timeout(WAIT, client.list_all_resources())
        .await
        .expect("in time")
        .expect("resources")
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        resources.contains(&"a+demo://readme".to_string())
            && resources.contains(&"b+demo://readme".to_string()),
        "{resources:?}"
    );
    let read = tokio::time::timeout(
        WAIT,
        client.read_resource(ReadResourceRequestParams::new("b+demo://readme")),
    )
    .await
    .expect("in time")
    .expect("read");
    assert!(format!("{:?}", read.contents).contains("mcpgate demo server"));
    let _ = tokio::time::timeout(WAIT, client.cancel()).await;

    // What the scripted server received: its own session id, the second page by its own
    // cursor, the call by its own (long) name, and the DELETE that ended the session.
    let deadline = std::time::Instant::now() + WAIT;
    while !c.methods().contains(&"DELETE".to_string()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = c.seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .any(|(_, s, b)| b["params"]["cursor"] == "p2" && s.as_deref() == Some("c-session")),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .any(|(_, _, b)| b["method"] == "tools/call" && b["params"]["name"] == long_name()));
    assert!(
        seen.iter()
            .any(|(m, s, _)| *m == Method::DELETE && s.as_deref() == Some("c-session")),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .skip(1)
        .all(|(_, s, _)| s.as_deref() == Some("c-session")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_with_one_key_serve_one_session() {
    let (a, _da) = demo().await;
    let c = scripted().await;
    let cfg = config(&[("a", a, true), ("c", c.addr, true)], "");
    let (g1, g2) = (Gateway::start(&cfg), Gateway::start(&cfg));
    // The version is negotiated, never fixed: the client's, when every server supports it.
    for v in ["2025-03-26", "2025-06-18"] {
        let mut body = init(1);
        body["params"]["protocolVersion"] = json!(v);
        let (status, _, r) = rpc(&g1, None, &[], body).await;
        assert_eq!(
            (status, r["result"]["protocolVersion"].clone()),
            (200, json!(v)),
            "{r}"
        );
        assert_eq!(r["result"]["serverInfo"]["name"], "mcpgate");
        assert_eq!(
            r["result"]["capabilities"]["tools"]["listChanged"], true,
            "{r}"
        );
    }
    let sid = start_session(&g1, &[]).await;
    // The list on one, its next page on the other.
    let (status, _, page1) = rpc(
        &g2,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["id"], 2);
    let cursor = page1["result"]["nextCursor"]
        .as_str()
        .expect("a composite cursor")
        .to_string();
    assert!(cursor.starts_with("f1."));
    let (_, _, page2) = rpc(
        &g1,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": cursor}}),
    )
    .await;
    let names: Vec<&str> = page2["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["c_second"], "{page2}");
    assert!(page2["result"].get("nextCursor").is_none());
    // Calls alternate.
    for (i, gw) in [&g1, &g2, &g1].into_iter().enumerate() {
        let (status, _, r) = rpc(
            gw,
            Some(&sid),
            &[],
            json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
            "params": {"name": "a_echo", "arguments": {"text": format!("n{i}")}}}),
        )
        .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["id"], 10 + i as i64);
        assert_eq!(r["result"]["content"][0]["text"], format!("n{i}"));
    }
    let (status, _, pong) = rpc(
        &g2,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}),
    )
    .await;
    assert_eq!(
        (status, pong["id"].clone(), pong["result"].clone()),
        (200, json!("p"), json!({}))
    );
    // GET, on either instance, is the merged stream (the demo server has one).
    let get = reqwest::Client::new()
        .get(g2.url("/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 200);
    assert_eq!(
        get.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    drop(get);
    // DELETE on the other instance ends the servers' sessions.
    let before = c.count();
    let del = reqwest::Client::new()
        .delete(g2.url("/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status().as_u16(), 200);
    let seen = c
        .seen
        .lock()
        .map(|v| v[before..].to_vec())
        .unwrap_or_default();
    assert!(
        seen.iter()
            .any(|(m, s, _)| *m == Method::DELETE && s.as_deref() == Some("c-session")),
        "{seen:?}"
    );
    let m = g1
        .metrics_when(|p| p.contains("mcpgate_federation_sessions_total"))
        .await;
    assert_eq!(
        metric_value(
            &m,
            "mcpgate_federation_sessions_total",
            &[("endpoint", "/mcp")]
        ),
        3.0,
        "three sessions started on g1 (two while checking versions)"
    );
    // The routed calls carry their server's alias, in the metrics and the access log.
    assert_eq!(
        metric_value(
            &m,
            "mcpgate_mcp_requests_total",
            &[("mcp_method", "tools/call"), ("server", "a")]
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "mcpgate_mcp_requests_total",
            &[("mcp_method", "tools/list"), ("server", "")]
        ),
        1.0,
        "a fan-out names no server: {m}"
    );
    let log = g1.access_log_when(7).await;
    let routed: Vec<&Value> = log.iter().filter(|l| l.get("server").is_some()).collect();
    assert_eq!(routed.len(), 2, "{log:?}");
    assert!(
        routed
            .iter()
            .all(|l| l["server"] == "a" && l["status"] == 200),
        "{routed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_call_streams_its_progress_live() {
    use futures::StreamExt as _;
    let (a, _da) = demo().await;
    let gw = Gateway::start(&config(&[("a", a, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "a_slow_count",
        "arguments": {"count": 3, "interval_ms": 500}, "_meta": {"progressToken": "tok"}}});
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string())
        .timeout(WAIT)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "the server's own id stays hidden"
    );
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let started = std::time::Instant::now();
    let mut first_progress = None;
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = tokio::time::timeout(WAIT, stream.next()).await {
        let chunk = chunk.expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        if first_progress.is_none() && text.contains("notifications/progress") {
            first_progress = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    assert_eq!(text.matches("notifications/progress").count(), 3, "{text}");
    assert!(
        text.contains("counted to 3") && text.contains("\"id\":9"),
        "{text}"
    );
    let first = first_progress.expect("a progress event");
    assert!(
        total - first >= Duration::from_millis(400),
        "progress arrived live: first {first:?}, end {total:?}"
    );
}
