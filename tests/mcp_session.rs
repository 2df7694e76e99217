//! A full MCP session with the official Rust SDK (`rmcp`) client and server, through the
//! gateway: initialize, tools/list, tools/call with progress over SSE, a server notification on
//! the GET stream, resources, prompts, and DELETE at the end.

use crate::mcp_client::run_session;
use crate::support::{metric_value, Gateway};

async fn demo_upstream() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(mcpgate::demo::serve(listener)))
}

#[tokio::test]
async fn rmcp_session_through_the_gateway_matches_a_direct_one() {
    let (addr, server) = demo_upstream().await;
    let direct = run_session(&format!("http://{addr}/mcp"))
        .await
        .expect("direct session");
    let gw = Gateway::in_front_of(&[addr], "");
    let through = run_session(&gw.url("/mcp"))
        .await
        .expect("session through the gateway");

    assert_eq!(through.tools, direct.tools);
    for t in ["echo", "add", "slow_count", "notify"] {
        assert!(
            through.tools.iter().any(|n| n == t),
            "{t} missing: {:?}",
            through.tools
        );
    }
    assert_eq!(through.echo, "hello");
    assert_eq!(through.add, direct.add);
    assert_eq!(
        through.progress_events, 3,
        "progress notifications stream over SSE"
    );
    assert_eq!(through.slow_result, direct.slow_result);
    assert!(
        through.notification_on_get_stream,
        "the GET stream carries server notifications"
    );
    assert_eq!(through.resources, direct.resources);
    assert_eq!(through.prompts, direct.prompts);

    // The session ended with a DELETE that went through the gateway.
    let page = gw
        .metrics_when(|p| metric_value(p, "mcpgate_requests_total", &[("method", "DELETE")]) >= 1.0)
        .await;
    assert!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[("method", "DELETE"), ("status_class", "2xx")]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        metric_value(
            &page,
            "mcpgate_requests_total",
            &[("method", "GET"), ("status_class", "2xx")]
        ) >= 1.0,
        "{page}"
    );
    server.abort();
}
