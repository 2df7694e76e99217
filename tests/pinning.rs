//! Session pinning: three stateful `rmcp` servers behind one endpoint, two gateway instances
//! sharing the sealing key. A session started through one instance continues through the other,
//! every request reaching the host that holds the session (any other host would answer 404, not
//! knowing the session); a tampered id gets 404; a host removed from the config gets 404 and a
//! real client (the Python SDK) recovers by starting a new session.

use crate::support::{metric_value, peers_required, Gateway};
use mcpgate::mcp::session_pin::{Sealer, SessionsConfig};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const KEY: &str = "q2Gx7c3J0kqXr8vL5mN1pT4wY6zA9bC2dE5fH8jK0mM=";

async fn demo_hosts(
    n: usize,
) -> (
    Vec<SocketAddr>,
    Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
) {
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(l.local_addr().expect("addr"));
        tasks.push(tokio::spawn(mcpgate::demo::serve(l)));
    }
    (addrs, tasks)
}

/// The sealer the gateways use (the tests open ids with it).
fn sealer() -> Sealer {
    Sealer::compile(
        &SessionsConfig {
            key: Some(KEY.into()),
            previous_keys: vec![],
        },
        "sessions",
    )
    .unwrap_or_else(|p| panic!("{p:?}"))
}

fn config(hosts: &[SocketAddr]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
    format!(
        "sessions:\n  key: {KEY}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [{}]\n",
        hosts.join(", ")
    )
}

/// POSTs one JSON-RPC message; returns status, session header and body text.
async fn rpc(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> (u16, Option<String>, String) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, sid, resp.text().await.unwrap_or_default())
}

fn initialize() -> serde_json::Value {
    serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"pinning-test","version":"1"}}})
}

fn echo(id: u32, text: &str) -> serde_json::Value {
    serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":text}}})
}

#[tokio::test]
async fn a_session_follows_its_host_across_instances() {
    let (hosts, tasks) = demo_hosts(3).await;
    let a = Gateway::start(&config(&hosts));
    let b = Gateway::start(&config(&hosts));
    let client = reqwest::Client::new();

    let (status, token, body) = rpc(&client, &a.url("/mcp"), None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let token = token.expect("a session id");
    assert!(token.starts_with("s1."), "sealed: {token}");
    let sealer = sealer();
    let opened = sealer
        .open("/mcp", &token)
        .expect("the test opens it with the same key");
    assert!(hosts.iter().any(|h| opened.host == format!("http://{h}")));
    assert!(
        !opened.session.starts_with("s1."),
        "the upstream's own id inside"
    );

    let note = serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (status, _, _) = rpc(&client, &b.url("/mcp"), Some(&token), note).await;
    assert_eq!(status, 202);
    // Alternate instances: every call lands on the session's host (others would 404).
    for i in 1..=6u32 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (status, sid, body) = rpc(
            &client,
            &gw.url("/mcp"),
            Some(&token),
            echo(i, &format!("m{i}")),
        )
        .await;
        assert_eq!(status, 200, "call {i}: {body}");
        assert!(body.contains(&format!("m{i}")), "{body}");
        if let Some(sid) = sid {
            assert_eq!(sid, token, "the client keeps seeing its own id");
        }
    }
    // The GET stream goes to the same host.
    let resp = client
        .get(b.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &token)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    drop(resp);

    // Tampered, foreign and garbage ids: 404 with JSON-RPC -32001 and the id, never 5xx.
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    for bad in [tampered.as_str(), opened.session.as_str(), "s1.%%%", "x"] {
        let (status, _, body) = rpc(&client, &a.url("/mcp"), Some(bad), echo(42, "no")).await;
        assert_eq!(status, 404, "{bad}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(v["error"]["code"], -32001);
        assert_eq!(v["id"], 42);
    }

    // DELETE ends the session on its host.
    let resp = client
        .delete(a.url("/mcp"))
        .header("mcp-session-id", &token)
        .send()
        .await
        .expect("DELETE");
    assert!(resp.status().is_success(), "{}", resp.status());

    let page = b.metrics().await;
    assert!(
        metric_value(&page, "mcpgate_pinned_requests_total", &[]) >= 4.0,
        "{page}"
    );
    let page = a.metrics().await;
    assert_eq!(
        metric_value(&page, "mcpgate_pinned_sessions_total", &[]),
        1.0
    );
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_session_pinning_failures_total",
            &[("reason", "invalid")]
        ),
        4.0
    );
    for t in tasks {
        t.abort();
    }
}

fn python() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/.deps/py-mcp2/bin/python");
    if p.exists() {
        return Some(p);
    }
    assert!(
        !peers_required(),
        "the Python MCP SDK is required: run tests/peers/install.sh"
    );
    eprintln!("SKIPPED: no Python MCP SDK (tests/peers/install.sh installs it)");
    None
}

#[tokio::test]
async fn a_removed_host_gets_404_and_the_python_sdk_starts_over() {
    let Some(python) = python() else { return };
    let (hosts, tasks) = demo_hosts(3).await;
    let gw = Gateway::start(&config(&hosts));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pinning_client.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(gw.url("/mcp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python client");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("first call in time")
        .expect("read")
        .unwrap_or_default();
    assert!(first.starts_with("call1 ok "), "{first}");
    let token = first.trim_start_matches("call1 ok ").to_string();

    // Remove the session's host from the config and reload.
    let sealer = sealer();
    let host = sealer.open("/mcp", &token).expect("opens").host;
    let rest: Vec<SocketAddr> = hosts
        .iter()
        .copied()
        .filter(|h| format!("http://{h}") != host)
        .collect();
    assert_eq!(rest.len(), 2);
    let conf = gw.dir.path().join("mcpgate.yaml");
    let text = std::fs::read_to_string(&conf).expect("config");
    let start = text.find("sessions:").expect("body");
    std::fs::write(&conf, format!("{}{}", &text[..start], config(&rest))).expect("write");
    let resp = reqwest::Client::new()
        .post(format!("{}/reload", gw.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(resp.status(), 200);

    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").await.expect("write");
    stdin.flush().await.expect("flush");
    let mut rest_out = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        rest_out.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("client exits")
        .expect("status");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "{rest_out:?}\n{err}");
    let recovered = rest_out
        .iter()
        .find(|l| l.starts_with("recovered "))
        .expect("recovered");
    let new_token = recovered.trim_start_matches("recovered ");
    assert_ne!(new_token, token);
    let new_host = sealer.open("/mcp", new_token).expect("opens").host;
    assert_ne!(
        new_host, host,
        "the new session lives on a host still configured"
    );
    assert!(
        rest_out.iter().any(|l| l.starts_with("call2 ok ")),
        "{rest_out:?}"
    );
    let page = gw.metrics().await;
    assert!(
        metric_value(
            &page,
            "mcpgate_session_pinning_failures_total",
            &[("reason", "host_gone")]
        ) >= 1.0,
        "{page}"
    );
    for t in tasks {
        t.abort();
    }
}
