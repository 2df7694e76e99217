//! Federation part 2: requests servers send to the client (inside a POST's SSE answer and on the
//! GET stream) with sealed ids, the client's answers routed back from any instance, the merged
//! GET stream with a sealed composite `Last-Event-ID`, and refusals of tampered ids. The servers
//! are scripted MCP servers that stream (SSE) and replay their GET events by event id.

use super::{config, json_result, rpc, serve, start_session, WAIT};
use crate::support::{metric_value, Gateway};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a streaming server received: (HTTP method, `Last-Event-ID`, JSON body).
type Seen = Arc<Mutex<Vec<(Method, Option<String>, Value)>>>;

pub(super) struct Streamer {
    pub(super) addr: SocketAddr,
    seen: Seen,
    /// GET streams whose client (the gateway) went away.
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Streamer {
    fn seen(&self) -> Vec<(Method, Option<String>, Value)> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
    fn answers(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|(m, _, b)| *m == Method::POST && b.get("method").is_none())
            .map(|(_, _, b)| b)
            .collect()
    }
    fn gets(&self) -> Vec<Option<String>> {
        self.seen()
            .into_iter()
            .filter(|(m, _, _)| *m == Method::GET)
            .map(|(_, l, _)| l)
            .collect()
    }
}

fn sse(id: &str, msg: &Value) -> Bytes {
    Bytes::from(format!("event: message\nid: {id}\ndata: {msg}\n\n"))
}

fn sse_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

/// The GET stream of a streaming server.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Get {
    /// None (405).
    No,
    /// Two events, then open.
    Yes,
    /// The two events, then two `notifications/tools/list_changed` (`g::3`, `g::4`).
    ListChanged,
}

/// A streaming MCP server named `name`, session `{name}-session`, one tool `ask`: its answer is
/// an SSE stream that first sends `sampling/createMessage` (id 77, event `p::1`), waits for the
/// client's answer, then answers the call with the sampled text (event `p::2`). Its GET stream
/// (unless `Get::No`) sends `g::1` (a log message naming the server) and `g::2` (`roots/list`, id
/// `r1`), replaying only those after `Last-Event-ID`, then stays open.
pub(super) async fn streamer(name: &'static str, get: Get) -> Streamer {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(AtomicUsize::new(0));
    // Like server-everything: one GET stream per session at a time (409 for another).
    let open_gets = Arc::new(AtomicUsize::new(0));
    let (s2, c2, o2) = (seen.clone(), closed.clone(), open_gets.clone());
    let session = format!("{name}-session");
    let router = axum::Router::new().fallback(any(move |method: Method, headers: HeaderMap, body: Bytes| {
        let (seen, closed, session, open_gets) = (s2.clone(), c2.clone(), session.clone(), o2.clone());
        async move {
            let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            // Recorded unless refused with 409 (below).
            let record = || {
                if let Ok(mut v) = seen.lock() {
                    v.push((method.clone(), header("last-event-id"), msg.clone()));
                }
            };
            let busy = method == Method::GET && get != Get::No && open_gets.fetch_add(1, Ordering::SeqCst) > 0;
            if busy {
                open_gets.fetch_sub(1, Ordering::SeqCst);
                return StatusCode::CONFLICT.into_response();
            }
            record();
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            let name_of = msg.get("method").and_then(Value::as_str).unwrap_or("").to_string();
            if name_of == "initialize" {
                let result = json!({"protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": {"tools": {"listChanged": true}}, "serverInfo": {"name": name, "version": "1"}});
                return Response::builder()
                    .header("content-type", "application/json")
                    .header("mcp-session-id", session.as_str())
                    .body(Body::from(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()))
                    .unwrap_or_default();
            }
            if header("mcp-session-id").as_deref() != Some(session.as_str()) {
                if method == Method::GET && get != Get::No {
                    open_gets.fetch_sub(1, Ordering::SeqCst);
                }
                return StatusCode::NOT_FOUND.into_response();
            }
            if method == Method::DELETE {
                return StatusCode::OK.into_response();
            }
            if method == Method::GET {
                if get == Get::No {
                    return StatusCode::METHOD_NOT_ALLOWED.into_response();
                }
                let after: u32 = header("last-event-id")
                    .and_then(|l| l.strip_prefix("g::").and_then(|n| n.parse().ok()))
                    .unwrap_or(0);
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                tokio::spawn(async move {
                    let mut events = vec![
                        json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": format!("hello from {name}")}}),
                        json!({"jsonrpc": "2.0", "id": "r1", "method": "roots/list"}),
                    ];
                    if get == Get::ListChanged {
                        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                        events.extend([changed.clone(), changed]);
                    }
                    for (n, e) in events.iter().enumerate() {
                        let n = n as u32 + 1;
                        if n > after && tx.send(sse(&format!("g::{n}"), e)).await.is_err() {
                            open_gets.fetch_sub(1, Ordering::SeqCst);
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(60), tx.closed()).await;
                    open_gets.fetch_sub(1, Ordering::SeqCst);
                    closed.fetch_add(1, Ordering::SeqCst);
                });
                return sse_response(rx);
            }
            if msg.get("method").is_none() || name_of.starts_with("notifications/") {
                return StatusCode::ACCEPTED.into_response();
            }
            let result = match name_of.as_str() {
                "tools/list" => json!({"tools": [{"name": "ask", "inputSchema": {"type": "object"}}]}),
                "tools/call" => {
                    let (tx, rx) = tokio::sync::mpsc::channel(8);
                    tokio::spawn(async move {
                        let ask = json!({"jsonrpc": "2.0", "id": 77, "method": "sampling/createMessage",
                            "params": {"messages": [], "maxTokens": 5}});
                        if tx.send(sse("p::1", &ask)).await.is_err() {
                            return;
                        }
                        let deadline = Instant::now() + WAIT;
                        let answer = loop {
                            let found = seen.lock().ok().and_then(|v| {
                                v.iter().find(|(_, _, b)| b.get("method").is_none() && b["id"] == 77).map(|(_, _, b)| b.clone())
                            });
                            match found {
                                Some(a) => break a,
                                None if Instant::now() > deadline => return,
                                None => tokio::time::sleep(Duration::from_millis(20)).await,
                            }
                        };
                        let text = answer.pointer("/result/content/text").or(answer.pointer("/result/content/0/text")).cloned().unwrap_or(Value::Null);
                        let done = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}});
                        let _ = tx.send(sse("p::2", &done)).await;
                    });
                    return sse_response(rx);
                }
                _ => json!({}),
            };
            json_result(&id, result)
        }
    }));
    let (addr, task) = serve(router).await;
    Streamer {
        addr,
        seen,
        closed,
        task,
    }
}

/// One SSE event as the client reads it: its `id:` and its data as JSON.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    data: Value,
}

/// Reads SSE events from `stream` until `done` holds for those read (or `WAIT` passes).
async fn read_events(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    buf: &mut String,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    read_events_for(stream, buf, done, WAIT).await
}

/// [`read_events`] for at most `limit`.
async fn read_events_for(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    buf: &mut String,
    done: impl Fn(&[Event]) -> bool,
    limit: Duration,
) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = Instant::now() + limit;
    while !done(&events) {
        while let Some(end) = buf.find("\n\n") {
            let raw: String = buf.drain(..end + 2).collect();
            let mut e = Event {
                id: None,
                data: Value::Null,
            };
            for line in raw.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    e.id = Some(v.to_string());
                }
                if let Some(v) = line.strip_prefix("data: ") {
                    e.data = serde_json::from_str(v).unwrap_or(Value::Null);
                }
            }
            if !e.data.is_null() {
                events.push(e);
            }
        }
        if done(&events) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    events
}

fn post(gw: &Gateway, sid: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", sid)
        .body(body.to_string())
        .timeout(WAIT)
}

fn get(gw: &Gateway, sid: &str, last: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .timeout(Duration::from_secs(60));
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_inside_a_post_answer_is_answered_through_another_instance() {
    let s = streamer("s", Get::No).await;
    let cfg = config(&[("s", s.addr, true)], "");
    let (g1, g2) = (Gateway::start(&cfg), Gateway::start(&cfg));
    // The client's sampling, elicitation and roots capabilities reach the server unchanged.
    let caps = json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}});
    let mut init = super::init(1);
    init["params"]["capabilities"] = caps.clone();
    let (status, sid, _) = rpc(&g1, None, &[], init).await;
    assert_eq!(status, 200);
    let sid = sid.expect("a session id");
    assert!(
        s.seen()
            .iter()
            .any(|(_, _, b)| b["method"] == "initialize" && b["params"]["capabilities"] == caps),
        "{:?}",
        s.seen()
    );
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "s_ask", "arguments": {}}});
    let resp = post(&g1, &sid, &call).send().await.expect("call");
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let first = read_events(&mut stream, &mut buf, |e| !e.is_empty()).await;
    let ask = first.first().cloned().expect("the sampling request, live");
    assert_eq!(ask.data["method"], "sampling/createMessage", "{ask:?}");
    let sealed = ask.data["id"].as_str().expect("a sealed id").to_string();
    assert!(sealed.starts_with("f1.") && sealed.len() > 20, "{sealed}");
    assert!(
        ask.id.as_deref().is_some_and(|i| i.starts_with("f1.")),
        "the event id is sealed too: {ask:?}"
    );

    // Refused, reaching no server: a tampered id, a number, a server request id of another
    // session, and an event id.
    let other = start_session(&g2, &[]).await;
    let mut tampered = sealed.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    let answer = |id: Value| json!({"jsonrpc": "2.0", "id": id, "result": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "from the client"}}});
    for (session, id) in [
        (&sid, json!(tampered)),
        (&sid, json!(77)),
        (&other, json!(sealed)),
        (&sid, json!(ask.id.clone().unwrap_or_default())),
    ] {
        let (status, _, body) = rpc(&g2, Some(session), &[], answer(id.clone())).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert_eq!(body["error"]["code"], -32602, "{body}");
        assert_eq!(body["id"], id, "the error carries the id: {body}");
    }
    assert!(s.answers().is_empty(), "{:?}", s.answers());

    // The real answer, on the other instance: relayed to the server with its own id.
    let (status, _, body) = rpc(&g2, Some(&sid), &[], answer(json!(sealed))).await;
    assert_eq!(status, 202, "{body}");
    let rest = read_events(&mut stream, &mut buf, |e| {
        e.iter().any(|e| e.data.get("result").is_some())
    })
    .await;
    let result = rest
        .iter()
        .find(|e| e.data["id"] == 5)
        .expect("the call's result");
    assert_eq!(
        result.data["result"]["content"][0]["text"], "from the client",
        "{result:?}"
    );
    let answers = s.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["id"], 77);
    assert!(s
        .seen()
        .iter()
        .all(|(m, _, b)| *m != Method::POST || b.get("method").is_some() || b["id"] == 77));

    let m1 = g1
        .metrics_when(|p| p.contains("mcpgate_federation_server_requests_total"))
        .await;
    let m2 = g2
        .metrics_when(|p| p.contains("mcpgate_federation_server_requests_total"))
        .await;
    let count = |m: &str, server: &str, outcome: &str| {
        metric_value(
            m,
            "mcpgate_federation_server_requests_total",
            &[("server", server), ("outcome", outcome)],
        )
    };
    assert_eq!(count(&m1, "s", "sent"), 1.0, "{m1}");
    assert_eq!(count(&m2, "s", "answered"), 1.0, "{m2}");
    assert_eq!(count(&m2, "", "refused"), 4.0, "{m2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_stream_merges_every_server_and_resumes_where_each_stopped() {
    let (s, t, n) = (
        streamer("s", Get::Yes).await,
        streamer("t", Get::Yes).await,
        streamer("n", Get::No).await,
    );
    let cfg = config(
        &[
            ("s", s.addr, true),
            ("t", t.addr, true),
            ("n", n.addr, true),
        ],
        "",
    );
    let (g1, g2) = (Gateway::start(&cfg), Gateway::start(&cfg));
    let sid = start_session(&g1, &[]).await;
    let resp = get(&g2, &sid, None).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream")));
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let events = read_events(&mut stream, &mut buf, |e| e.len() >= 4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    for who in ["s", "t"] {
        assert!(
            events
                .iter()
                .any(|e| e.data["params"]["data"] == format!("hello from {who}")),
            "a notification from {who}: {events:?}"
        );
    }
    let roots: Vec<&Event> = events
        .iter()
        .filter(|e| e.data["method"] == "roots/list")
        .collect();
    assert_eq!(roots.len(), 2, "{events:?}");
    assert!(roots
        .iter()
        .all(|e| e.data["id"].as_str().is_some_and(|i| i.starts_with("f1."))));
    assert_ne!(roots[0].data["id"], roots[1].data["id"]);
    assert!(events
        .iter()
        .all(|e| e.id.as_deref().is_some_and(|i| i.starts_with("f1."))));

    // Each roots/list answer, POSTed to the other instance, reaches its own server only.
    for r in &roots {
        let body = json!({"jsonrpc": "2.0", "id": r.data["id"], "result": {"roots": []}});
        let (status, _, b) = rpc(&g1, Some(&sid), &[], body).await;
        assert_eq!(status, 202, "{b}");
    }
    for srv in [&s, &t] {
        let answers = srv.answers();
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0]["id"], "r1");
    }

    // A second GET of the session while the first is open: every server answers 409, so does
    // the gateway (not counted as a server missing).
    let second = get(&g1, &sid, None).send().await.expect("second get");
    assert_eq!(second.status().as_u16(), 409);
    drop(second);

    // Resume from the first event (right after the client leaves, while the servers may still
    // hold the old stream): its server replays what came after it, the other server
    // (which had sent nothing then) starts over; nothing is lost.
    let first = events[0].clone();
    // A server's first event is its greeting, so the first event names its server.
    let first_server = ["s", "t"]
        .into_iter()
        .find(|w| first.data["params"]["data"] == format!("hello from {w}"))
        .expect("the first event is a greeting");
    drop(stream);
    let resumed = get(&g1, &sid, first.id.as_deref())
        .send()
        .await
        .expect("resume");
    assert_eq!(resumed.status().as_u16(), 200);
    let mut stream = resumed.bytes_stream();
    let mut buf = String::new();
    let again = read_events(&mut stream, &mut buf, |e| e.len() >= 3).await;
    assert_eq!(again.len(), 3, "{again:?}");
    let (gs, gt) = (s.gets(), t.gets());
    assert_eq!((gs.len(), gt.len()), (2, 2), "{gs:?} {gt:?}");
    let resumed_with: Vec<Option<String>> = vec![gs[1].clone(), gt[1].clone()];
    assert!(
        resumed_with.contains(&Some("g::1".to_string())) && resumed_with.contains(&None),
        "one server resumed after g::1, the other from the start: {resumed_with:?}"
    );
    let resumed_server = if gs[1].is_some() { "s" } else { "t" };
    assert_eq!(resumed_server, first_server);
    let hello = format!("hello from {first_server}");
    assert!(
        !again.iter().any(|e| e.data["params"]["data"] == hello),
        "{first_server}'s first event is not sent again: {again:?}"
    );
    drop(stream);

    // Refused, reaching no server: a tampered id, a server's raw id, another session's id.
    let other = start_session(&g1, &[]).await;
    let other_resp = get(&g1, &other, None).send().await.expect("get");
    let mut other_stream = other_resp.bytes_stream();
    let mut obuf = String::new();
    let other_events = read_events(&mut other_stream, &mut obuf, |e| !e.is_empty()).await;
    let foreign = other_events
        .first()
        .and_then(|e| e.id.clone())
        .expect("an event id of the other session");
    drop(other_stream);
    let before = (s.gets().len(), t.gets().len());
    let mut tampered = first.id.clone().unwrap_or_default().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    for bad in [tampered.as_str(), "g::1", foreign.as_str()] {
        let r = get(&g2, &sid, Some(bad)).send().await.expect("get");
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"]["code"], -32602, "{body}");
    }
    assert_eq!((s.gets().len(), t.gets().len()), before);

    // The client leaving closes every upstream stream (three streams so far on each server).
    let deadline = Instant::now() + WAIT;
    while (s.closed.load(Ordering::SeqCst) < 3 || t.closed.load(Ordering::SeqCst) < 3)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (
            s.closed.load(Ordering::SeqCst),
            t.closed.load(Ordering::SeqCst)
        ),
        (3, 3)
    );
    let m = g2
        .metrics_when(|p| p.contains("mcpgate_federation_stream_resumes_total"))
        .await;
    assert_eq!(
        metric_value(
            &m,
            "mcpgate_federation_stream_resumes_total",
            &[("outcome", "refused")]
        ),
        3.0,
        "{m}"
    );
    let m1 = g1
        .metrics_when(|p| p.contains("mcpgate_federation_stream_resumes_total"))
        .await;
    assert_eq!(
        metric_value(
            &m1,
            "mcpgate_federation_stream_resumes_total",
            &[("outcome", "resumed")]
        ),
        1.0,
        "{m1}"
    );
    for server in ["s", "t"] {
        assert_eq!(
            metric_value(
                &m1,
                "mcpgate_federation_servers_missing_total",
                &[("server", server), ("reason", "error_status")]
            ),
            0.0,
            "a 409 is not a server missing: {m1}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_405_when_no_server_has_a_stream() {
    let n = streamer("n", Get::No).await;
    let gw = Gateway::start(&config(&[("n", n.addr, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let r = get(&gw, &sid, None).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(n.gets(), vec![None]);
}

/// An rmcp client that answers sampling requests with "from rmcp".
struct Sampler;

// rmcp marks sampling deprecated (SEP-2577); the revisions the gateway serves still have it.
#[allow(deprecated)]
impl rmcp::ClientHandler for Sampler {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_sampling()
                .build(),
            rmcp::model::Implementation::new("sampler", "1"),
        )
    }

    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        Ok(rmcp::model::CreateMessageResult::new(
            rmcp::model::SamplingMessage::assistant_text("from rmcp"),
            "test-model".into(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_answers_a_sampling_request_through_the_gateway() {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;
    let s = streamer("s", Get::No).await;
    let gw = Gateway::start(&config(&[("s", s.addr, true)], ""));
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(gw.url("/mcp"))
        .reinit_on_expired_session(false);
    cfg.allow_stateless = false;
    let client = tokio::time::timeout(
        WAIT,
        Sampler.serve(StreamableHttpClientTransport::from_config(cfg)),
    )
    .await
    .expect("initialize in time")
    .expect("initialize");
    let result = tokio::time::timeout(
        WAIT,
        client.call_tool(rmcp::model::CallToolRequestParams::new("s_ask")),
    )
    .await
    .expect("in time")
    .expect("s_ask");
    assert_eq!(
        result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone()),
        Some("from rmcp".into()),
        "{result:?}"
    );
    let answers = s.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["id"], 77);
    let _ = tokio::time::timeout(WAIT, client.cancel()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_is_coalesced_and_a_reload_that_changes_the_servers_sends_one() {
    let (s, t) = (
        streamer("s", Get::ListChanged).await,
        streamer("t", Get::ListChanged).await,
    );
    let gw = Gateway::start(&config(&[("s", s.addr, true), ("t", t.addr, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let resp = get(&gw, &sid, None).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let changed = |e: &[Event]| {
        e.iter()
            .filter(|e| e.data["method"] == "notifications/tools/list_changed")
            .count()
    };
    // Four list_changed from two servers within the window: one reaches the client.
    let events = read_events_for(
        &mut stream,
        &mut buf,
        |e| e.len() > 5,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(changed(&events), 1, "{events:?}");
    assert!(
        events
            .last()
            .and_then(|e| e.id.as_deref())
            .is_some_and(|i| i.starts_with("f1.")),
        "{events:?}"
    );

    // A reload that changes nothing for this endpoint sends nothing.
    let r = gw.reload().await;
    assert_eq!(r.status(), 200);
    let quiet = read_events_for(
        &mut stream,
        &mut buf,
        |e| !e.is_empty(),
        Duration::from_secs(1),
    )
    .await;
    assert!(quiet.is_empty(), "{quiet:?}");
    // One that drops server t sends tools/list_changed on the open stream.
    let text = std::fs::read_to_string(gw.config_path()).expect("read");
    let t_entry = format!(
        "      - alias: t\n        required: true\n        backend:\n          hosts: [http://{}]\n          path: /mcp\n",
        t.addr
    );
    assert!(text.contains(&t_entry), "{text}");
    std::fs::write(gw.config_path(), text.replace(&t_entry, "")).expect("write");
    let r = gw.reload().await;
    assert_eq!(r.status(), 200);
    let after = read_events(&mut stream, &mut buf, |e| !e.is_empty()).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(changed(&after), 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_a_routed_sse_answer_cancels_the_request_on_its_server() {
    let s = streamer("s", Get::No).await;
    let gw = Gateway::start(&config(&[("s", s.addr, true)], ""));
    let sid = start_session(&gw, &[]).await;
    let cancelled = || {
        s.seen()
            .into_iter()
            .filter(|(_, _, b)| b["method"] == "notifications/cancelled")
            .map(|(_, _, b)| b)
            .collect::<Vec<_>>()
    };
    let call = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "s_ask", "arguments": {}}});
    let resp = post(&gw, &sid, &call).send().await.expect("call");
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let first = read_events(&mut stream, &mut buf, |e| !e.is_empty()).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        cancelled().is_empty(),
        "nothing cancelled while the client reads"
    );
    drop(stream);
    let deadline = Instant::now() + WAIT;
    while cancelled().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = cancelled();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["params"]["requestId"], 41, "{c:?}");
}
