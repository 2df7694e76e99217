//! Upstream servers for the tests, started in-process on ephemeral loopback ports with axum.
//! Each records what it received and stops when dropped.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A running upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Serves `router` on a fresh loopback port.
    pub async fn start(router: Router) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Upstream::serve(listener, router)
    }

    /// Serves `router` on `listener`.
    pub fn serve(listener: tokio::net::TcpListener, router: Router) -> Upstream {
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Upstream {
            addr,
            seen: Arc::new(Mutex::new(Vec::new())),
            connections,
            task,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps one request in `seen`.
fn record(seen: &Mutex<Vec<Seen>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) {
    if let Ok(mut v) = seen.lock() {
        v.push(Seen {
            method,
            uri,
            headers,
            body,
        });
    }
}

/// A JSON upstream that records each request and answers with `status`, `body` and the header
/// `x-upstream: name`.
pub async fn recording(name: &'static str, status: u16, body: &'static str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    recording_with(listener, name, status, body).await
}

/// [`recording`] (200, `{}`) on a given listener.
pub async fn recording_on(listener: tokio::net::TcpListener, name: &'static str) -> Upstream {
    recording_with(listener, name, 200, "{}").await
}

async fn recording_with(
    listener: tokio::net::TcpListener,
    name: &'static str,
    status: u16,
    body: &'static str,
) -> Upstream {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let router = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body_in: Bytes| {
            let seen = s2.clone();
            async move {
                record(&seen, method, uri, headers, body_in);
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("x-upstream", name)
                    .header("connection", "keep-alive, x-hop")
                    .header("x-hop", "should not pass")
                    .body(Body::from(body))
                    .unwrap_or_default()
            }
        },
    ));
    let mut up = Upstream::serve(listener, router);
    up.seen = seen;
    up
}

/// An upstream that accepts requests and never answers.
pub async fn silent() -> Upstream {
    Upstream::start(Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(120)).await;
        StatusCode::NO_CONTENT
    })))
    .await
}

fn sse(rx: mpsc::Receiver<String>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|s| (Ok::<_, std::io::Error>(Bytes::from(s)), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Control of the gated SSE upstream.
#[derive(Default)]
pub struct Gate {
    /// The test calls `notify_one` when the client has the first event.
    pub client_has_first: Notify,
    /// Set by the upstream: the client had the first event before the second was sent.
    pub first_arrived_before_second: Mutex<Option<bool>>,
}

/// An SSE upstream (any method) that sends one event, waits until the client reports having it
/// (up to 5 s), records whether it did, then sends a second event and ends.
pub async fn gated_sse(gate: Arc<Gate>) -> Upstream {
    let router = Router::new()
        .fallback(any(|State(gate): State<Arc<Gate>>| async move {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let _ = tx
                    .send("id: 1\nevent: message\ndata: {\"n\":1}\n\n".to_string())
                    .await;
                let arrived =
                    tokio::time::timeout(Duration::from_secs(5), gate.client_has_first.notified())
                        .await
                        .is_ok();
                if let Ok(mut v) = gate.first_arrived_before_second.lock() {
                    *v = Some(arrived);
                }
                let _ = tx
                    .send("id: 2\nevent: message\ndata: {\"n\":2}\n\n".to_string())
                    .await;
            });
            sse(rx)
        }))
        .with_state(gate);
    Upstream::start(router).await
}

/// An SSE upstream that sends `count` keep-alive comments `every`, then one event, then ends.
pub async fn keepalive_stream(every: Duration, count: usize) -> Upstream {
    let router = Router::new().fallback(any(move || async move {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let _ = tx.send(": primed\n\n".to_string()).await;
            for _ in 0..count {
                tokio::time::sleep(every).await;
                if tx.send(": keep-alive\n\n".to_string()).await.is_err() {
                    return;
                }
            }
            let _ = tx.send("data: done\n\n".to_string()).await;
        });
        sse(rx)
    }));
    Upstream::start(router).await
}

/// An SSE upstream that streams an event every 50 ms until the client goes away; `closed` is
/// notified when the upstream notices (its writes fail because the gateway closed the
/// connection).
pub async fn endless_stream(closed: Arc<Notify>) -> Upstream {
    let router = Router::new()
        .fallback(any(|State(closed): State<Arc<Notify>>| async move {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..2400u32 {
                    if tx.send(format!("data: {i}\n\n")).await.is_err() {
                        closed.notify_one();
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            sse(rx).into_response()
        }))
        .with_state(closed);
    Upstream::start(router).await
}

/// A JSON upstream that answers 503 while `failing` is set and 200 otherwise, recording each
/// request.
pub async fn flaky(failing: Arc<std::sync::atomic::AtomicBool>) -> Upstream {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let router = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = s2.clone();
            let failing = failing.clone();
            async move {
                record(&seen, method, uri, headers, body);
                let status = if failing.load(Ordering::SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                (status, [("content-type", "application/json")], "{}").into_response()
            }
        },
    ));
    let mut up = Upstream::start(router).await;
    up.seen = seen;
    up
}

/// An MCP-shaped upstream for load during reloads and upgrades: a POST gets a JSON answer after
/// the delay its `x-delay-ms` header asks for (0 by default), a GET gets an SSE stream with an
/// event every 50 ms (`id: N`, `data: N`) until the client goes away. POSTs are recorded.
pub async fn mixed() -> Upstream {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let router = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = s2.clone();
            async move {
                if method == Method::GET {
                    let (tx, rx) = mpsc::channel(1);
                    tokio::spawn(async move {
                        for i in 0..2400u32 {
                            if tx.send(format!("id: {i}\ndata: {i}\n\n")).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    });
                    return sse(rx).into_response();
                }
                let delay = headers
                    .get("x-delay-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let answer = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":{{"echo":{}}}}}"#,
                    body.len()
                );
                record(&seen, method, uri, headers, body);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    answer,
                )
                    .into_response()
            }
        },
    ));
    let mut up = Upstream::start(router).await;
    up.seen = seen;
    up
}

/// One scripted answer: status, `Content-Type` (none when `None`) and the body's chunks (sent
/// 30 ms apart, so each reaches the gateway on its own).
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub chunks: Vec<String>,
}

/// An MCP-shaped upstream for answer-reading tests: every request is recorded, and a POST is
/// answered with `cases[x-case header]` (404 for an unknown case).
pub async fn scripted(cases: std::collections::HashMap<String, Scripted>) -> Upstream {
    use futures::StreamExt as _;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let cases = Arc::new(cases);
    let router = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body_in: Bytes| {
            let seen = s2.clone();
            let cases = cases.clone();
            async move {
                let case = headers
                    .get("x-case")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|c| cases.get(c).cloned());
                record(&seen, method, uri, headers, body_in);
                let Some(case) = case else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let chunks = case
                    .chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| async move {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                        }
                        Ok::<_, std::convert::Infallible>(Bytes::from(c))
                    });
                let stream = futures::stream::iter(chunks).then(|f| f);
                let mut resp = Response::builder().status(case.status);
                if let Some(t) = case.content_type {
                    resp = resp.header("content-type", t);
                }
                resp.body(Body::from_stream(stream)).unwrap_or_default()
            }
        },
    ));
    let mut up = Upstream::start(router).await;
    up.seen = seen;
    up
}
