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
    assert_eq!(
        body["error"]["data"]["reason"], "unreadable_answer",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("compressed")),
        "{body}"
    );
    let page = gw
        .metrics_when(|p| {
            crate::support::metric_value(
                p,
                "mcpgate_response_filter_refused_total",
                &[("reason", "compressed")],
            ) >= 1.0
        })
        .await;
    assert_eq!(
        crate::support::metric_value(
            &page,
            "mcpgate_response_filter_refused_total",
            &[("reason", "compressed")]
        ),
        1.0,
        "counted as a refusal"
    );

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

const FILTERED: &str =
    r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"add"}]}}"#;
const PROGRESS: &str =
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";

/// What a client must get for one scripted answer.
enum Want {
    /// Exactly these bytes (read and filtered, everything else kept).
    Filtered(String),
    /// These bytes first (events sent before), then a JSON-RPC error for the request, as an SSE
    /// event when the answer was labelled SSE, then these bytes (the events after, filtered);
    /// counted with this reason.
    Refused(&'static str, &'static str, bool, String),
}

fn case(ct: Option<&'static str>, chunks: &[&str]) -> crate::upstreams::Scripted {
    crate::upstreams::Scripted {
        status: 200,
        content_type: ct,
        chunks: chunks.iter().map(|c| c.to_string()).collect(),
    }
}

#[tokio::test]
async fn answers_are_read_from_their_bytes_and_unreadable_ones_refused() {
    use crate::support::metric_value;
    const J: Option<&str> = Some("application/json");
    const S: Option<&str> = Some("text/event-stream");
    let sse = |list: &str| format!("{PROGRESS}id: 2\nevent: message\ndata: {list}\n\n");
    let (half1, half2) = LIST.split_at(40);
    let bad = |from: &str, to: &str| LIST.replace(from, to);
    let cases: Vec<(crate::upstreams::Scripted, Want)> = vec![
        (case(J, &[LIST]), Want::Filtered(FILTERED.into())),
        (
            case(J, &["\u{feff}", LIST]),
            Want::Filtered(format!("\u{feff}{FILTERED}")),
        ),
        (
            case(
                Some("Application/JSON; charset=UTF-8"),
                &["\n  ", LIST, " \n"],
            ),
            Want::Filtered(FILTERED.into()),
        ),
        (case(S, &[LIST]), Want::Filtered(FILTERED.into())),
        (case(J, &[&sse(LIST)]), Want::Filtered(sse(FILTERED))),
        (
            case(Some("text/plain"), &[LIST]),
            Want::Filtered(FILTERED.into()),
        ),
        (case(None, &[LIST]), Want::Filtered(FILTERED.into())),
        (
            case(
                Some("TEXT/EVENT-STREAM;charset=utf-8"),
                &[PROGRESS, &format!("data: {half1}"), half2, "\n\n"],
            ),
            Want::Filtered(format!("{PROGRESS}data: {FILTERED}\n\n")),
        ),
        (
            case(S, &["\u{feff}", &sse(LIST)]),
            Want::Filtered(format!("\u{feff}{}", sse(FILTERED))),
        ),
        (
            case(
                J,
                &[&format!(
                    r#"[{LIST},{{"jsonrpc":"2.0","id":4,"result":{{}}}}]"#
                )],
            ),
            Want::Filtered(format!(
                r#"[{FILTERED},{{"jsonrpc":"2.0","id":4,"result":{{}}}}]"#
            )),
        ),
        (
            case(J, &[&bad("\"result\"", "\"Result\"")]),
            Want::Refused("member_case", "", false, String::new()),
        ),
        (
            case(J, &[&bad("\"tools\"", "\"TOOLS\"")]),
            Want::Refused("member_case", "", false, String::new()),
        ),
        (
            case(
                J,
                &[&bad(
                    "{\"name\":\"secret_dump\"}",
                    "{\"Name\":\"secret_dump\"}",
                )],
            ),
            Want::Refused("member_case", "", false, String::new()),
        ),
        (
            case(S, &[&sse(&bad("\"tools\"", "\"toolſ\""))]),
            Want::Refused("member_case", PROGRESS, true, String::new()),
        ),
        (
            case(J, &[&bad("\"id\":3,", "\"id\":3,\"result\":{},")]),
            Want::Refused("duplicate_member", "", false, String::new()),
        ),
        (
            case(J, &[&bad("\"tools\":[", "\"tools\":[],\"tools\":[")]),
            Want::Refused("duplicate_member", "", false, String::new()),
        ),
        (
            case(
                J,
                &[&bad(
                    "{\"name\":\"add\"}",
                    "{\"name\":\"add\",\"name\":\"secret_dump\"}",
                )],
            ),
            Want::Refused("duplicate_member", "", false, String::new()),
        ),
        (
            case(
                J,
                &[&format!("[{},{LIST}]", bad("\"result\"", "\"rEsult\""))],
            ),
            Want::Refused("member_case", "", false, String::new()),
        ),
        (
            case(J, &[LIST, LIST]),
            Want::Refused("not_json", "", false, String::new()),
        ),
        (
            case(S, &[PROGRESS, "data: hello\n\n", &sse(LIST)]),
            Want::Refused("not_json", PROGRESS, true, sse(FILTERED)),
        ),
        (
            case(S, &[PROGRESS, &format!("Data: {LIST}\n\n")]),
            Want::Refused("sse_syntax", PROGRESS, true, String::new()),
        ),
        (
            case(S, &[PROGRESS, &format!("data: \u{feff}{LIST}\n\n")]),
            Want::Refused("not_json", PROGRESS, true, String::new()),
        ),
        (
            case(J, &[&sse(&bad("\"jsonrpc\":\"2.0\",", ""))]),
            Want::Refused("not_jsonrpc", PROGRESS, false, String::new()),
        ),
    ];
    let scripts = cases
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i.to_string(), s.clone()))
        .collect();
    let up = crate::upstreams::scripted(scripts).await;
    let gw = Gateway::start(&format!(
        "policies:\n  tools:\n    deny: [\"secret_*\"]\nendpoints:\n  - path: /mcp\n    name: odd\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let mut refusals: std::collections::BTreeMap<&str, f64> = Default::default();
    for (i, (_, want)) in cases.iter().enumerate() {
        let id = 100 + i;
        let request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        let resp = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-case", i.to_string())
            .body(request.clone())
            .send()
            .await
            .expect("POST");
        // The status line leaves with the upstream's header, before the body can be read.
        assert_eq!(resp.status(), 200, "case {i}");
        let text = resp.text().await.unwrap_or_default();
        let seen = up.requests();
        assert_eq!(seen.len(), i + 1, "case {i}: one request upstream");
        assert_eq!(
            seen[i].body,
            request.as_bytes(),
            "case {i}: forwarded as sent"
        );
        assert!(!text.contains("secret_dump"), "case {i}: {text:?}");
        match want {
            Want::Filtered(body) => assert_eq!(&text, body, "case {i}"),
            Want::Refused(reason, before, as_sse, after) => {
                *refusals.entry(reason).or_default() += 1.0;
                let rest = text
                    .strip_prefix(before)
                    .unwrap_or_else(|| panic!("case {i}: {text:?}"));
                let rest = rest
                    .strip_suffix(after.as_str())
                    .unwrap_or_else(|| panic!("case {i}: {text:?}"));
                let error = match as_sse {
                    true => rest
                        .strip_prefix("event: message\ndata: ")
                        .and_then(|r| r.strip_suffix("\n\n"))
                        .unwrap_or_else(|| panic!("case {i}: not one SSE event: {rest:?}")),
                    false => rest,
                };
                let v: serde_json::Value = serde_json::from_str(error).unwrap_or_default();
                assert_eq!(v["id"], id, "case {i}: {text:?}");
                assert_eq!(
                    v["error"]["data"]["reason"], "unreadable_answer",
                    "case {i}"
                );
                assert_eq!(v["error"]["data"]["status"], 502, "case {i}");
                let message = v["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains(reason), "case {i}: {message}");
            }
        }
    }
    let last = *refusals.keys().last().unwrap_or(&"");
    let page = gw
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_response_filter_refused_total",
                &[("reason", last)],
            ) >= refusals[last]
        })
        .await;
    for (reason, n) in &refusals {
        assert_eq!(
            metric_value(
                &page,
                "mcpgate_response_filter_refused_total",
                &[("endpoint", "odd"), ("reason", reason)]
            ),
            *n,
            "{reason}"
        );
    }
    let log = gw.stderr();
    for reason in refusals.keys() {
        assert!(
            log.contains("tools/list answer refused")
                && log.contains(&format!("reason=\"{reason}\""))
                || log.contains(&format!("reason={reason}")),
            "no log line naming {reason}: {log}"
        );
    }
    let access = gw.access_log_when(cases.len()).await;
    assert!(
        access
            .iter()
            .any(|l| l.to_string().contains("unreadable_answer")),
        "{access:?}"
    );
}

/// `tools/list` lists `echo` and `add`; `tools/call` of those answers a result, of anything
/// else a JSON-RPC error (unknown tool), as MCP servers do.
async fn listing_upstream() -> Upstream {
    use axum::routing::post;
    let router = axum::Router::new().route(
        "/mcp",
        post(|body: axum::body::Bytes| async move {
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = req["id"].clone();
            let answer = match (req["method"].as_str(), req["params"]["name"].as_str()) {
                (Some("tools/list"), _) => serde_json::json!({"jsonrpc": "2.0", "id": id,
                    "result": {"tools": [{"name": "echo"}, {"name": "add"}]}}),
                (_, Some("echo" | "add")) => serde_json::json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "ok"}]}}),
                _ => serde_json::json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32602, "message": "unknown tool"}}),
            };
            ([("content-type", "application/json")], answer.to_string())
        }),
    );
    Upstream::start(router).await
}

#[tokio::test]
async fn calls_are_labelled_by_tool_on_every_instance_and_across_reloads() {
    use crate::support::metric_value;
    let up = listing_upstream().await;
    let config = |deny: &str| {
        format!(
            "policies:\n  mcp:\n    inspect: true\n  tools:\n    deny: [{deny}]\nendpoints:\n  - path: /mcp\n    name: tools\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        )
    };
    // Two instances of a fleet: the client's session lists tools through the first, and its
    // calls reach the second (as they would after an upgrade or a restart, too).
    let a = Gateway::start(&config("\"secret_*\""));
    let b = Gateway::start(&config("\"secret_*\""));
    let client = reqwest::Client::new();
    let post = |gw: &Gateway, body: String| {
        client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let call = |id: u32, tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    };
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_string();
    let text = post(&a, list.clone())
        .await
        .expect("list")
        .text()
        .await
        .unwrap_or_default();
    assert!(text.contains("\"echo\""), "{text}");
    for (id, tool) in [(2, "echo"), (3, "echo"), (4, "mystery"), (5, "nope")] {
        let resp = post(&b, call(id, tool)).await.expect("call");
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(v["id"], id);
    }
    let page = b
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_mcp_requests_total",
                &[("mcp_method", "tools/call")],
            ) >= 4.0
        })
        .await;
    let calls = |tool: &str| {
        metric_value(
            &page,
            "mcpgate_mcp_requests_total",
            &[("mcp_method", "tools/call"), ("tool", tool)],
        )
    };
    assert_eq!(calls("echo"), 2.0, "{page}");
    assert_eq!(
        calls("other"),
        2.0,
        "names the upstream does not know stay unlabelled"
    );
    assert_eq!(calls("mystery"), 0.0);

    // A reload that changes the tool policy keeps what was seen.
    let text = post(&b, list)
        .await
        .expect("list")
        .text()
        .await
        .unwrap_or_default();
    assert!(text.contains("\"add\""), "{text}");
    let written = std::fs::read_to_string(b.config_path()).unwrap_or_default();
    let changed = written.replace("deny: [\"secret_*\"]", "deny: [\"secret_*\", \"danger\"]");
    assert_ne!(written, changed);
    std::fs::write(b.config_path(), changed).expect("write config");
    assert_eq!(b.reload().await.status(), 200);
    let tools: serde_json::Value = reqwest::get(format!("{}/tools", b.admin))
        .await
        .expect("GET /tools")
        .json()
        .await
        .unwrap_or_default();
    assert!(
        tools["endpoints"]["tools"]["add"].is_object()
            && tools["endpoints"]["tools"]["echo"].is_object(),
        "the registry outlives the reload: {tools}"
    );
    let resp = post(&b, call(6, "add")).await.expect("call");
    assert_eq!(resp.status(), 200);
    let page = b
        .metrics_when(|p| {
            metric_value(
                p,
                "mcpgate_mcp_requests_total",
                &[("mcp_method", "tools/call")],
            ) >= 5.0
        })
        .await;
    assert_eq!(
        metric_value(
            &page,
            "mcpgate_mcp_requests_total",
            &[("mcp_method", "tools/call"), ("tool", "add")]
        ),
        1.0,
        "{page}"
    );
}
