//! The Python SDK 2.x client (`mcp.Client`, which POSTs `server/discover` first and falls back to
//! `initialize`) completes a session through the KrakenD page's example run as it is: tools
//! listed, a call answered by the upstream with the client's exact text, the session closed.

use super::{page_example, Proc};
use crate::support::{free_port, peers_required, temp_file};
use std::time::Duration;

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

/// Connects, lists tools, calls `echo`, closes; one line per step on stdout.
const SCRIPT: &str = r#"
import sys, anyio
from mcp import Client

async def main():
    with anyio.fail_after(60):
        async with Client(sys.argv[1], read_timeout_seconds=30) as c:
            print("server", c.server_info.name if c.server_info else None, flush=True)
            tools = await c.list_tools()
            print("tools", ",".join(sorted(t.name for t in tools.tools)), flush=True)
            r = await c.call_tool("echo", {"text": sys.argv[2]})
            text = "".join(getattr(x, "text", "") for x in r.content)
            print("echo", "error" if r.is_error else "ok", text, flush=True)
        print("closed", flush=True)

anyio.run(main)
"#;

#[tokio::test]
async fn the_python_sdk_completes_a_session_through_the_page_example() {
    let Some(python) = python() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind demo");
    let demo_addr = listener.local_addr().expect("addr");
    let _demo = tokio::spawn(mcpgate::demo::serve(listener));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let k = temp_file(
        &dir,
        "krakend.json",
        &page_example(port, &demo_addr.to_string()).to_string(),
    );
    let gw = Proc::start(&k, port);
    let text = "h\u{e9}llo \u{2713} from python";
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(gw.url())
            .arg(text)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes in time")
    .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{stderr}\ngateway:\n{}",
        gw.stderr()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("server ")),
        "{stdout}"
    );
    let tools = lines
        .iter()
        .find_map(|l| l.strip_prefix("tools "))
        .expect("tools line");
    for t in ["add", "echo"] {
        assert!(tools.split(',').any(|x| x == t), "{t} in {tools}");
    }
    // The demo echoes what it received: the text crossed both ways unchanged.
    assert!(
        lines.contains(&format!("echo ok {text}").as_str()),
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"closed"), "{stdout}");
}
