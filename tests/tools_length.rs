//! Filtered answers of known length keep it: the gateway reads every answer on an endpoint that
//! guards the tool list, and a JSON answer with a `Content-Length` reaches the client with the
//! same length (padded with line feeds when filtering shortens it), not re-framed as chunks.

use crate::support::Gateway;
use crate::upstreams::Upstream;

fn pad() -> String {
    "x".repeat(400)
}

fn list() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"result":{{"tools":[{{"name":"echo","description":"{}"}},{{"name":"secret_dump"}},{{"name":"add"}}]}}}}"#,
        pad()
    )
}

fn call() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        pad()
    )
}

/// The same answer with `id` twice: unreadable.
fn twice() -> String {
    call().replacen(r#""id":3,"#, r#""id":3,"id":3,"#, 1)
}

/// Answers each path with its fixed JSON body (a `Content-Length`, no chunks).
async fn upstream() -> Upstream {
    use axum::routing::post;
    let json = |body: String| move || async move { ([("content-type", "application/json")], body) };
    let router = axum::Router::new()
        .route("/list", post(json(list())))
        .route("/call", post(json(call())))
        .route("/twice", post(json(twice())));
    Upstream::start(router).await
}

#[tokio::test]
async fn answers_of_known_length_keep_it() {
    let up = upstream().await;
    let endpoint = |p: &str| {
        format!(
            "  - path: /{p}\n    backend:\n      hosts: [http://{}]\n      path: /{p}\n",
            up.addr
        )
    };
    let gw = Gateway::start(&format!(
        "policies:\n  tools:\n    deny: [\"secret_*\"]\nendpoints:\n{}{}{}",
        endpoint("list"),
        endpoint("call"),
        endpoint("twice")
    ));
    let client = reqwest::Client::new();
    let post = |path: &str, body: &'static str| {
        client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let read = |resp: reqwest::Response| async move {
        let h = resp.headers().clone();
        let length = h
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        assert!(h.get("transfer-encoding").is_none(), "{h:?}");
        (length, resp.bytes().await.unwrap_or_default().to_vec())
    };

    // A list the filter shortens: the upstream's length, the filtered message, then line feeds.
    let resp = post("/list", r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#)
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let (length, body) = read(resp).await;
    assert_eq!(length, Some(list().len()));
    assert_eq!(body.len(), list().len());
    let filtered = list().replace(r#"{"name":"secret_dump"},"#, "");
    assert_eq!(&body[..filtered.len()], filtered.as_bytes());
    assert!(body[filtered.len()..].iter().all(|b| *b == b'\n'));
    let read_back: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let names: Vec<&str> = read_back["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["echo", "add"]);

    // An answer with nothing to remove: byte for byte.
    let resp = post(
        "/call",
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#,
    )
    .await
    .expect("POST");
    let (length, body) = read(resp).await;
    assert_eq!(length, Some(call().len()));
    assert_eq!(body, call().as_bytes());

    // An unreadable answer: the JSON-RPC error for the request, padded to the same length.
    let resp = post(
        "/twice",
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#,
    )
    .await
    .expect("POST");
    let (length, body) = read(resp).await;
    assert_eq!(length, Some(twice().len()));
    assert_eq!(body.len(), twice().len());
    let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(error["id"], 3);
    assert_eq!(
        error["error"]["data"]["reason"], "unreadable_answer",
        "{error}"
    );
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate_member"), "{message}");
    assert_eq!(error["error"]["data"]["status"], 502);
    assert_eq!(body.last(), Some(&b'\n'));
}
