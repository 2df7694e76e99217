//! Federation at 2026-07-28 (no sessions: `server/discover`, lists and calls routed on
//! `Mcp-Name`) with real rmcp demo servers; raw resource URIs with prefixing off (exact URIs and
//! templates, duplicates left out); answers as SSE to a client that takes only SSE.

use super::{config, demo, json_result, rpc, scripted, serve, start_session, WAIT};
use crate::support::{dead_addr, metric_value, Gateway};
use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::any;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const REV: &str = "2026-07-28";

/// A 2026-07-28 request body: `params` with the request metadata that revision asks for.
fn stateless(id: i64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": REV,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t[field].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_discover_answers_what_every_required_server_supports() {
    let (a, _da) = demo().await;
    let (b, _db) = demo().await;
    // The scripted server knows no server/discover (it answers 404 without a session):
    // optional, it is left out and counted.
    let c = scripted().await;
    let gw = Gateway::start(&config(
        &[("a", a, true), ("b", b, true), ("c", c.addr, false)],
        "",
    ));
    let headers = [
        ("mcp-protocol-version", REV),
        ("mcp-method", "server/discover"),
    ];
    let (status, sid, r) = rpc(
        &gw,
        None,
        &headers,
        stateless(5, "server/discover", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert!(sid.is_none(), "no session at 2026-07-28");
    assert_eq!(r["id"], 5);
    let result = &r["result"];
    let versions: Vec<&str> = result["supportedVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(versions.contains(&REV), "{r}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcpgate",
        "{r}"
    );
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true, "{r}");
    let text = result["instructions"].as_str().unwrap_or_default();
    assert!(text.contains("## a\n") && text.contains("## b\n"), "{r}");
    assert!(!text.contains("## c\n"), "{r}");
    let m = gw
        .metrics_when(|p| p.contains("mcpgate_federation_servers_missing_total{"))
        .await;
    assert!(
        metric_value(
            &m,
            "mcpgate_federation_servers_missing_total",
            &[("server", "c"), ("reason", "error_status")]
        ) >= 1.0,
        "{m}"
    );

    // A required server without discovery (an older revision): 400 with -32601 and the id,
    // so the client falls back to initialize.
    let gw = Gateway::start(&config(&[("a", a, true), ("c", c.addr, true)], ""));
    let (status, _, r) = rpc(
        &gw,
        None,
        &headers,
        stateless(6, "server/discover", json!({})),
    )
    .await;
    assert_eq!(
        (status, r["id"].clone(), r["error"]["code"].clone()),
        (400, json!(6), json!(-32601)),
        "{r}"
    );
    // ... and no server is counted as missing: the session starts with initialize instead.
    let m = gw
        .metrics_when(|p| p.contains("mcpgate_federation_fanout_duration_seconds_count{"))
        .await;
    assert_eq!(
        metric_value(&m, "mcpgate_federation_servers_missing_total", &[]),
        0.0,
        "{m}"
    );
    // A required server that fails: 502, a clear JSON-RPC error with the id.
    let gw = Gateway::start(&config(&[("a", a, true), ("gone", dead_addr(), true)], ""));
    let (status, _, r) = rpc(
        &gw,
        None,
        &headers,
        stateless(7, "server/discover", json!({})),
    )
    .await;
    assert_eq!((status, r["id"].clone()), (502, json!(7)), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gone"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_list_and_route_on_mcp_name() {
    let (a, _da) = demo().await;
    let (b, _db) = demo().await;
    let gw = Gateway::start(&config(&[("a", a, true), ("b", b, true)], ""));
    let list_h = [("mcp-protocol-version", REV), ("mcp-method", "tools/list")];
    let (status, sid, list) = rpc(&gw, None, &list_h, stateless(1, "tools/list", json!({}))).await;
    assert_eq!(status, 200, "{list}");
    assert!(sid.is_none());
    let tools = names(&list, "tools", "name");
    for want in ["a_echo", "b_echo", "a_add"] {
        assert!(tools.iter().any(|t| t == want), "{want} in {tools:?}");
    }
    // A routed call: the demo server checks, at 2026-07-28, that Mcp-Name names the body's
    // tool, so its answer shows both were rewritten to its own name.
    for (alias, id) in [("a", 2), ("b", 3)] {
        let name = format!("{alias}_echo");
        let h = [
            ("mcp-protocol-version", REV),
            ("mcp-method", "tools/call"),
            ("mcp-name", name.as_str()),
        ];
        let body = stateless(
            id,
            "tools/call",
            json!({"name": name, "arguments": {"text": format!("via {alias}")}}),
        );
        let (status, _, r) = rpc(&gw, None, &h, body).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["id"], id);
        assert_eq!(
            r["result"]["content"][0]["text"],
            format!("via {alias}"),
            "{r}"
        );
    }
    // Mcp-Name that disagrees with the body: the error the plain relay gives, with the id.
    let h = [
        ("mcp-protocol-version", REV),
        ("mcp-method", "tools/call"),
        ("mcp-name", "b_echo"),
    ];
    let body = stateless(
        4,
        "tools/call",
        json!({"name": "a_echo", "arguments": {"text": "x"}}),
    );
    let (status, _, r) = rpc(&gw, None, &h, body).await;
    assert_eq!(
        (status, r["id"].clone(), r["error"]["code"].clone()),
        (400, json!(4), json!(-32020)),
        "{r}"
    );
    // An unknown name: -32602.
    let h = [
        ("mcp-protocol-version", REV),
        ("mcp-method", "tools/call"),
        ("mcp-name", "z_echo"),
    ];
    let body = stateless(5, "tools/call", json!({"name": "z_echo", "arguments": {}}));
    let (_, _, r) = rpc(&gw, None, &h, body).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // Before 2026-07-28 a federated endpoint still needs its session.
    let (status, _, r) = rpc(
        &gw,
        None,
        &[("mcp-protocol-version", "2025-06-18")],
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}),
    )
    .await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (400, json!(-32600)),
        "{r}"
    );
}

/// What a resource server was asked to read.
type Reads = Arc<Mutex<Vec<String>>>;

/// A JSON-answering MCP server with the given resources and templates; `resources/read`
/// answers with its `name` and the URI it received.
async fn resources(
    name: &'static str,
    uris: &'static [&'static str],
    templates: &'static [&'static str],
) -> (SocketAddr, Reads, tokio::task::JoinHandle<()>) {
    let reads: Reads = Arc::new(Mutex::new(Vec::new()));
    let r2 = reads.clone();
    let router = axum::Router::new().fallback(any(move |body: Bytes| {
        let reads = r2.clone();
        async move {
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => json!({"protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": {"resources": {}}, "serverInfo": {"name": name, "version": "1"}}),
                "resources/list" => json!({"resources": uris.iter().map(|u| json!({"uri": u, "name": u})).collect::<Vec<_>>()}),
                "resources/templates/list" => json!({"resourceTemplates": templates.iter().map(|t| json!({"uriTemplate": t, "name": t})).collect::<Vec<_>>()}),
                "resources/read" => {
                    let uri = msg["params"]["uri"].as_str().unwrap_or("").to_string();
                    if let Ok(mut r) = reads.lock() {
                        r.push(uri.clone());
                    }
                    json!({"contents": [{"uri": uri, "text": format!("{name} read {uri}")}]})
                }
                m if m.starts_with("notifications/") => {
                    return Response::builder().status(202).body(Body::empty()).unwrap_or_default();
                }
                _ => json!({}),
            };
            json_result(&id, result)
        }
    }));
    let (addr, task) = serve(router).await;
    (addr, reads, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprefixed_resource_uris_stay_the_servers_and_route() {
    let (x, x_reads, _tx) = resources("x", &["mem://x/1", "mem://dup"], &["tmpl://{id}"]).await;
    let (y, y_reads, _ty) = resources("y", &["mem://y/1", "mem://dup"], &["file:///{+path}"]).await;
    let yaml = config(&[("x", x, true), ("y", y, true)], "").replace(
        "      deadline: 5s\n",
        "      deadline: 5s\n      prefix: false\n",
    );
    let gw = Gateway::start(&yaml);
    let sid = start_session(&gw, &[]).await;
    let (_, _, list) = rpc(
        &gw,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
    )
    .await;
    let mut uris = names(&list, "resources", "uri");
    uris.sort();
    assert_eq!(
        uris,
        ["mem://x/1", "mem://y/1"],
        "the shared URI is left out: {list}"
    );
    let (_, _, list) = rpc(
        &gw,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/templates/list"}),
    )
    .await;
    let mut templates = names(&list, "resourceTemplates", "uriTemplate");
    templates.sort();
    assert_eq!(templates, ["file:///{+path}", "tmpl://{id}"], "{list}");
    let read = |id: i64, uri: &'static str| {
        let (gw, sid) = (&gw, sid.clone());
        async move {
            rpc(
                gw,
                Some(&sid),
                &[],
                json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": {"uri": uri}}),
            )
            .await
            .2
        }
    };
    // Exact URIs, then templates, each to the one server that has it, by its own URI.
    for (id, uri, server) in [
        (4, "mem://y/1", "y"),
        (5, "mem://x/1", "x"),
        (6, "tmpl://42", "x"),
        (7, "file:///docs/a.txt", "y"),
    ] {
        let r = read(id, uri).await;
        assert_eq!(
            r["result"]["contents"][0]["text"],
            format!("{server} read {uri}"),
            "{r}"
        );
    }
    // A URI two servers have, and one none has: -32602, and no server is asked to read them.
    let count = |r: &Reads| r.lock().map(|v| v.len()).unwrap_or_default();
    let before = (count(&x_reads), count(&y_reads));
    for (id, uri) in [(8, "mem://dup"), (9, "nope://x")] {
        let r = read(id, uri).await;
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!(id), json!(-32602)),
            "{r}"
        );
    }
    let after = (count(&x_reads), count(&y_reads));
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_sse_for_a_client_that_takes_only_sse() {
    let (a, _da) = demo().await;
    let gw = Gateway::start(&config(&[("a", a, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let post = |accept: &'static str, id: i64, method: &'static str| {
        let (gw, sid) = (&gw, sid.clone());
        async move {
            let resp = reqwest::Client::new()
                .post(gw.url("/mcp"))
                .header("accept", accept)
                .header("content-type", "application/json")
                .header("mcp-session-id", sid)
                .body(json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string())
                .timeout(WAIT)
                .send()
                .await
                .expect("send");
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                resp.status().as_u16(),
                ct,
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    for method in ["ping", "tools/list"] {
        let (status, ct, text) = post("text/event-stream", 7, method).await;
        assert_eq!((status, ct.as_str()), (200, "text/event-stream"), "{text}");
        let data = text
            .strip_prefix("event: message\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("one message event: {text:?}"));
        let msg: Value = serde_json::from_str(data).expect("JSON in the event");
        assert_eq!(msg["id"], 7);
        assert!(msg.get("result").is_some(), "{msg}");
    }
    // A client that takes both gets JSON.
    let (status, ct, text) = post("application/json, text/event-stream", 8, "ping").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{text}");
}
