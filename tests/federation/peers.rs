//! Three real, different MCP servers behind one federated endpoint: the rmcp demo server, a
//! Python `mcp` 2.x MCPServer (tests/peers/fixtures/fed_server.py) and the official
//! `@modelcontextprotocol/server-everything`; clients: the Python SDK 2.x and 1.x
//! (tests/peers/clients/fed_client.py). Skipped, with a note, when tests/peers/install.sh has not
//! run (required under MCPGATE_REQUIRE_PEERS).

use super::{config, demo};
use crate::support::{free_port, peers_required, Gateway};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// The interpreters and files the test needs, or `None` (skipped) when not installed.
fn deps() -> Option<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let d = peers_dir();
    let py2 = d.join(".deps/py-mcp2/bin/python");
    let py1 = d.join(".deps/py-mcp1/bin/python");
    let node = d.join("node_modules/.bin/node");
    let node = if node.exists() {
        node
    } else {
        PathBuf::from("node")
    };
    let everything = d.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if py2.exists() && py1.exists() && everything.exists() {
        return Some((py2, py1, node, everything));
    }
    assert!(
        !peers_required(),
        "the peers are required: run tests/peers/install.sh"
    );
    eprintln!(
        "SKIPPED: Python SDKs or server-everything missing (tests/peers/install.sh installs them)"
    );
    None
}

/// Waits until `addr` accepts connections (bounded).
async fn accepting(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_client(python: &Path, url: &str) -> Value {
    let script = peers_dir().join("clients/fed_client.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the client finishes in time")
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {stdout}\n{stderr}",
        python.display()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_use_three_real_servers_through_one_endpoint() {
    let Some((py2, py1, node, everything)) = deps() else {
        return;
    };
    let (demo_addr, _demo) = demo().await;
    let py_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _py = tokio::process::Command::new(&py2)
        .arg(peers_dir().join("fixtures/fed_server.py"))
        .arg(py_addr.port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python server");
    let ev_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _ev = tokio::process::Command::new(&node)
        .arg("--require")
        .arg(peers_dir().join("lib/loopback.cjs"))
        .arg(&everything)
        .arg("streamableHttp")
        .env("PORT", ev_addr.port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start server-everything");
    accepting(py_addr, "the Python server").await;
    accepting(ev_addr, "server-everything").await;
    let gw = Gateway::start(&config(
        &[
            ("demo", demo_addr, true),
            ("py", py_addr, true),
            ("ev", ev_addr, true),
        ],
        "",
    ));
    for python in [&py2, &py1] {
        let r = run_client(python, &gw.url("/mcp")).await;
        let sdk = r["sdk"].as_str().unwrap_or("?").to_string();
        assert_eq!(r["server"], "mcpgate", "{sdk}: {r}");
        assert_eq!(r["closed"], true, "{sdk}: {r}");
        let tools: Vec<&str> = r["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for want in ["demo_echo", "demo_add", "py_shout", "ev_echo", "ev_get-sum"] {
            assert!(tools.contains(&want), "{sdk}: {want} in {tools:?}");
        }
        assert!(tools.iter().all(|t| t.len() <= 64), "{sdk}: {tools:?}");
        let prompts: Vec<&str> = r["prompts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            prompts.contains(&"demo_greet") && prompts.contains(&"py_haiku"),
            "{sdk}: {prompts:?}"
        );
        let resources: Vec<&str> = r["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            resources.contains(&"py+note://hello") && resources.contains(&"demo+demo://readme"),
            "{sdk}: {resources:?}"
        );
        assert!(
            resources.iter().any(|u| u.starts_with("ev+")),
            "{sdk}: {resources:?}"
        );
        assert_eq!(r["shout"], "HI", "{sdk}: {r}");
        assert!(
            r["echo"].as_str().unwrap_or("").contains("federated"),
            "{sdk}: {r}"
        );
        assert_eq!(r["add"], "5", "{sdk}: {r}");
        assert!(
            r["prompt"]
                .as_str()
                .unwrap_or("")
                .contains("haiku about gateways"),
            "{sdk}: {r}"
        );
        assert_eq!(r["note"], "hello from python", "{sdk}: {r}");
    }
}
