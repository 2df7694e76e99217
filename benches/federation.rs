//! The cost of federation (issue 16), end to end on 127.0.0.1, measured side by side in one run:
//! a routed `tools/call` through a federated endpoint against the same call through a plain
//! endpoint in front of the same server, and a merged `tools/list` of three servers against one
//! server's list asked directly and through the plain endpoint. Three in-process MCP servers
//! that answer JSON at once (21 tools each; a session id; no SSE, so the figures show the
//! gateway's work, not a server's stream handling) and the gateway binary (a child process); one
//! request at a time, so the figures are latencies (median per request). Prints the ratios; no
//! timing assertions.
//!
//! Run: `cargo bench --bench federation` (`-- --measurement-time 5` for longer runs).

mod support;
use support::bench;

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::any;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Tools each server lists (plus `echo`).
const TOOLS: usize = 20;

/// An MCP server answering JSON: initialize (session `s-1`), notifications (202), `tools/list`
/// (`echo` and `TOOLS` more), `tools/call` (the `text` argument back).
async fn server(l: tokio::net::TcpListener) {
    let tools: Vec<Value> = std::iter::once("echo".to_string())
        .chain((0..TOOLS).map(|i| format!("tool_{i}")))
        .map(|name| {
            json!({"name": name, "description": format!("The {name} tool."),
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
        })
        .collect();
    let router = axum::Router::new().fallback(any(move |body: Bytes| {
        let tools = tools.clone();
        async move {
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => json!({"protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "bench", "version": "1"}}),
                "tools/list" => json!({"tools": tools}),
                "tools/call" => json!({"content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]}),
                _ => return Response::builder().status(202).body(Body::empty()).unwrap_or_default(),
            };
            Response::builder()
                .header("content-type", "application/json")
                .header("mcp-session-id", "s-1")
                .body(Body::from(json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string()))
                .unwrap_or_default()
        }
    }));
    let _ = axum::serve(l, router).await;
}

/// The gateway process, stopped when dropped, and its admin address.
struct Gateway(Child, u16);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_gateway(dir: &std::path::Path, port: u16, servers: &[SocketAddr]) -> Gateway {
    let admin = free_port();
    let mut yaml = format!(
        "listen:\n  - 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\nserver:\n  threads: 1\n  upgrade_sock: {up}\n  pid_file: {pid}\nsessions:\n  key: {KEY}\nendpoints:\n  - path: /plain\n    backend:\n      hosts: [http://{first}]\n      path: /mcp\n  - path: /fed\n    servers:\n",
        up = dir.join("upgrade.sock").display(),
        pid = dir.join("mcpgate.pid").display(),
        first = servers[0],
    );
    for (i, d) in servers.iter().enumerate() {
        yaml.push_str(&format!(
            "      - alias: s{i}\n        backend:\n          hosts: [http://{d}]\n          path: /mcp\n"
        ));
    }
    let conf = dir.join("mcpgate.yaml");
    std::fs::write(&conf, yaml).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .arg("-c")
        .arg(&conf)
        .env("MCPGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mcpgate");
    let gw = Gateway(child, admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mcpgate did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    gw
}

/// An MCP client of one URL: its session and the requests of the benchmark.
struct Client {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Client {
    async fn post(&self, body: &Value) -> (Option<String>, String) {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = req.body(body.to_string()).send().await.expect("send");
        assert!(
            resp.status().is_success(),
            "{}: {}",
            self.url,
            resp.status()
        );
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (sid, resp.text().await.expect("body"))
    }

    async fn connect(http: &reqwest::Client, url: String) -> Client {
        let mut c = Client {
            http: http.clone(),
            url,
            session: None,
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
        let (sid, _) = c.post(&init).await;
        c.session = sid;
        c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        c
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let servers: Vec<SocketAddr> = rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..3 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            out.push(l.local_addr().expect("addr"));
            tokio::spawn(server(l));
        }
        out
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gw = start_gateway(dir.path(), port, &servers);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let (direct, plain, fed) = rt.block_on(async {
        (
            Client::connect(&http, format!("http://{}/mcp", servers[0])).await,
            Client::connect(&http, format!("{base}/plain")).await,
            Client::connect(&http, format!("{base}/fed")).await,
        )
    });
    let call = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": "hello"}}})
    };
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    // Every client answers as expected before anything is measured.
    rt.block_on(async {
        for (c, name) in [(&direct, "echo"), (&plain, "echo"), (&fed, "s0_echo")] {
            let (_, text) = c.post(&call(name)).await;
            assert!(text.contains("\"hello\""), "{}: {text}", c.url);
        }
        let (_, merged) = fed.post(&list).await;
        assert!(
            merged.contains("s0_echo") && merged.contains("s2_echo"),
            "{merged}"
        );
    });
    println!(
        "mcpgate federation benchmark: three JSON MCP servers of {} tools, one request at a time",
        TOOLS + 1
    );
    let mut c = support::criterion();
    let mut measure = |name: &str, client: &Client, body: &Value| {
        bench(&mut c, name, || {
            rt.block_on(client.post(body));
        })
    };
    let call_direct = measure("tools/call direct to the server", &direct, &call("echo"));
    let call_plain = measure("tools/call through a plain endpoint", &plain, &call("echo"));
    let call_fed = measure(
        "tools/call routed by a federated endpoint",
        &fed,
        &call("s0_echo"),
    );
    let list_direct = measure("tools/list direct to one server", &direct, &list);
    let list_plain = measure("tools/list through a plain endpoint", &plain, &list);
    let list_fed = measure("tools/list merged from three servers", &fed, &list);
    let us = |ns: f64| ns / 1000.0;
    println!();
    println!(
        "routed tools/call: {:.0} µs federated vs {:.0} µs plain ({:.2}x; direct {:.0} µs)",
        us(call_fed),
        us(call_plain),
        call_fed / call_plain.max(0.001),
        us(call_direct)
    );
    println!(
        "tools/list: {:.0} µs merged from three vs {:.0} µs one server direct ({:.2}x) and {:.0} µs through a plain endpoint ({:.2}x)",
        us(list_fed),
        us(list_direct),
        list_fed / list_direct.max(0.001),
        us(list_plain),
        list_fed / list_plain.max(0.001)
    );
    // The gateway's own measure of the fan-out (its histogram's mean), for where the time goes.
    let page = rt.block_on(async {
        let url = format!("http://127.0.0.1:{}/metrics", gw.1);
        http.get(url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics page")
    });
    let series = |suffix: &str| {
        let head = format!(
            "mcpgate_federation_fanout_duration_seconds_{suffix}{{endpoint=\"/fed\",method=\"tools/list\"}} "
        );
        page.lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "fan-out of tools/list inside the gateway (its histogram): {:.0} µs mean",
        series("sum") / series("count") * 1e6
    );
}
