//! `tools/list` filtering where an answer could slip past it: a client asking for a compressed
//! answer (the gateway asks the upstream for an uncompressed one, and refuses one compressed
//! anyway), and a GET that resumes a stream (`Last-Event-ID`), on which the upstream replays an
//! earlier `tools/list` result.

use crate::support::Gateway;
use crate::upstreams::Upstream;
use std::sync::{Arc, Mutex};

const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"secret_dump"},{"name":"add"}]}}"#;

/// `/mcp` answers `tools/list` as JSON (its `Accept-Encoding` is recorded) and replays it on a
/// GET with `Last-Event-ID`; `/gz` always labels its answer gzip.
async fn upstream(accept_encoding: Arc<Mutex<Vec<String>>>) -> Upstream {
    use axum::http::HeaderMap;
    use axum::routing::post;
    let router = axum::Router::new()
        .route(
            "/mcp",
            post(move |headers: HeaderMap| {
                let seen = accept_encoding.clone();
                async move {
                    if let Ok(mut v) = seen.lock() {
                        v.push(
                            headers
                                .get("accept-encoding")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string(),
                        );
                    }
                    ([("content-type", "application/json")], LIST)
                }
            })
            .get(|headers: HeaderMap| async move {
                let body = match headers.get("last-event-id") {
                    Some(_) => format!("id: 2\nevent: message\ndata: {LIST}\n\n"),
                    None => String::new(),
                };
                ([("content-type", "text/event-stream")], body)
            }),
        )
        .route(
            "/gz",
            post(|| async {
                (
                    [
                        ("content-type", "application/json"),
                        ("content-encoding", "gzip"),
                    ],
                    LIST,
                )
            }),
        );
    Upstream::start(router).await
}

#[tokio::test]
async fn compressed_answers_and_resumed_streams_cannot_bypass_the_filter() {
    let accept_encoding = Arc::new(Mutex::new(Vec::new()));
    let up = upstream(accept_encoding.clone()).await;
    let gw = Gateway::start(&format!(
        "policies:\n  tools:\n    deny: [\"secret_*\"]\nendpoints:\n  - path: /mcp\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{a}]\n  - path: /gz\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{a}]\n",
        a = up.addr
    ));
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let post = |path: &str| {
        client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("accept-encoding", "gzip")
            .body(list)
            .send()
    };

    // The client asks for gzip; the upstream is asked for an uncompressed answer, which the
    // gateway filters.
    let resp = post("/mcp").await.expect("POST");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        text,
        r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"add"}]}}"#
    );
    assert_eq!(
        accept_encoding
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default(),
        [""],
        "Accept-Encoding is not forwarded with a tools/list request"
    );
    // An upstream that compresses anyway: refused (502, JSON-RPC), not passed unfiltered.
    let resp = post("/gz").await.expect("POST");
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["id"], 3, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "upstream_failed", "{body}");

    // A GET resuming a stream: the replayed tools/list result is filtered too.
    let resp = client
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "1")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert!(
        text.contains(r#""name":"add""#) && !text.contains("secret_dump"),
        "{text}"
    );
}
