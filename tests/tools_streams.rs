//! A `tools/list` result on another stream than the `tools/list` POST's own answer: clients match
//! an answer to its request by `id`, whichever stream brings it, so on an endpoint that guards the
//! tool list (`tools.filter_list`, tool-definition pinning) the gateway reads every answer that
//! could carry one: the GET stream, and the answer to any other POST. A redirect of such an answer
//! is refused (a client following it would fetch the list around the gateway).

use crate::support::{metric_value, Gateway};
use crate::upstreams::{scripted, Scripted};

/// A tools/list result for request 2 with a denied tool in it, as an SSE event.
const SMUGGLED_EVENT: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"echo\"},{\"name\":\"secret_dump\"}]}}\n\n";
/// The same list as a JSON answer (to another request's id).
const SMUGGLED_JSON: &str =
    r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"secret_dump"}]}}"#;
/// A notification and an ordinary result, which pass unchanged.
const PLAIN_EVENTS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"hi\"}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n";

fn case(status: u16, content_type: Option<&'static str>, body: &str) -> Scripted {
    Scripted {
        status,
        content_type,
        chunks: vec![body.to_string()],
    }
}

#[tokio::test]
async fn tool_lists_on_other_streams_and_redirects_cannot_bypass_the_filter() {
    let scripts = [
        ("get", case(200, Some("text/event-stream"), SMUGGLED_EVENT)),
        (
            "call-json",
            case(200, Some("application/json"), SMUGGLED_JSON),
        ),
        (
            "call-sse",
            case(200, Some("text/event-stream"), SMUGGLED_EVENT),
        ),
        ("plain", case(200, Some("text/event-stream"), PLAIN_EVENTS)),
        ("redirect", case(307, None, "")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let up = scripted(scripts).await;
    let ep = |path: &str, policies: &str| {
        format!(
            "  - path: {path}\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{}]\n      path: /mcp\n{policies}",
            up.addr
        )
    };
    let gw = Gateway::start(&format!(
        "endpoints:\n{}{}{}",
        ep(
            "/listed",
            "    policies:\n      tools:\n        deny: [\"secret_*\"]\n"
        ),
        ep(
            "/pinned",
            "    policies:\n      tools:\n        deny: [\"secret_*\"]\n        filter_list: false\n      tool_pinning:\n        on_change: block\n"
        ),
        ep("/plain", ""),
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let call =
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let send = |path: &str, method: reqwest::Method, case: &str| {
        let mut req = client
            .request(method.clone(), gw.url(path))
            .header("accept", "application/json, text/event-stream")
            .header("x-case", case);
        if method == reqwest::Method::POST {
            req = req
                .header("content-type", "application/json")
                .body(call.to_string());
        }
        req.send()
    };

    // The GET stream (no Last-Event-ID) and the answers to a tools/call, in SSE and in JSON: the
    // denied tool is removed wherever the list arrives.
    for (method, case_name) in [
        (reqwest::Method::GET, "get"),
        (reqwest::Method::POST, "call-sse"),
        (reqwest::Method::POST, "call-json"),
    ] {
        let resp = send("/listed", method.clone(), case_name)
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{case_name}");
        let text = resp.text().await.unwrap_or_default();
        assert!(text.contains("\"echo\""), "{case_name}: {text}");
        assert!(!text.contains("secret_dump"), "{case_name}: {text}");
    }
    // With pinning (and no list filtering), such a list is recorded: the registry sees the tools
    // the upstream shows on any stream, so a definition changed there cannot slip past it.
    let resp = send("/pinned", reqwest::Method::GET, "get")
        .await
        .expect("GET");
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("secret_dump"), "not filtered: {text}");
    let tools = reqwest::get(format!("{}/tools", gw.admin))
        .await
        .expect("GET /tools")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        tools.contains("secret_dump") && tools.contains("echo"),
        "the pinning registry saw the list on the GET stream: {tools}"
    );

    // Ordinary events pass byte for byte on a guarded endpoint; an unguarded endpoint does not
    // read answers to other requests at all.
    let resp = send("/listed", reqwest::Method::POST, "plain")
        .await
        .expect("POST");
    assert_eq!(resp.text().await.unwrap_or_default(), PLAIN_EVENTS);
    let resp = send("/plain", reqwest::Method::GET, "get")
        .await
        .expect("GET");
    assert_eq!(resp.text().await.unwrap_or_default(), SMUGGLED_EVENT);

    // A redirect of an answer the gateway reads: 502 with the JSON-RPC error and the id, nothing
    // for the client to follow; an unguarded endpoint relays it.
    let resp = send("/listed", reqwest::Method::POST, "redirect")
        .await
        .expect("POST");
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["id"], 3, "{body}");
    assert_eq!(
        body["error"]["data"]["reason"], "unreadable_answer",
        "{body}"
    );
    let resp = send("/plain", reqwest::Method::POST, "redirect")
        .await
        .expect("POST");
    assert_eq!(resp.status(), 307);

    let page = gw
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_response_filter_refused_total",
                &[("reason", "redirect")],
            ) >= 1.0
        })
        .await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_response_filter_refused_total",
            &[("reason", "redirect")]
        ),
        1.0,
        "{page}"
    );
    // Every request reached the upstream once (nothing was refused before it).
    assert_eq!(up.requests().len(), 8);
}
