//! The GET stream of a federated session: a GET to every server of the session in parallel
//! (405 = that server has no GET stream), their events merged into one SSE stream to the client
//! as they arrive. Requests a server sends get sealed ids (as on the relay path); each event
//! that had an id gets a sealed composite [`EventId`] of every server's last event id, so that a
//! reconnect with it as `Last-Event-ID` resumes each server where it stopped (each is sent its
//! own). `list_changed` notifications are coalesced (one per kind within [`COALESCE`]); a config
//! reload that changes the endpoint's servers sends `notifications/tools/list_changed`. SSE
//! comments keep an idle stream alive. The client leaving, a drain, or every server ending its
//! stream ends the merged stream, and dropping it closes every upstream stream.

use super::client::{self, Fail};
use super::stream_events::{frame, rewrite, Rewritten, Splitter};
use crate::error::GatewayError;
use crate::mcp::federation::ids::{session_binding, EventId, ServerRequestId};
use crate::mcp::federation::token::{ServerSession, Session as FedSession};
use crate::proxy::ctx::RequestCtx;
use crate::runtime::federation::Federation;
use crate::runtime::snapshot::Endpoint;
use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use http::header::{self, HeaderMap, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use std::time::{Duration, Instant};

/// An SSE comment is sent after this long without an event.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// `list_changed` notifications of one kind within this window are sent once, at its end.
pub const COALESCE: Duration = Duration::from_millis(200);
/// How often the stream looks at its timers (keep-alive, coalescing, drain, reload).
const TICK: Duration = Duration::from_millis(100);

/// How often, and how far apart, a GET answered 409 (stream already open) is tried.
const CONFLICT_TRIES: usize = 5;
const CONFLICT_WAIT: Duration = Duration::from_millis(100);

/// A chunk of server `i`'s stream, or its end (`None`).
type Chunk = (usize, Option<Bytes>);

/// Tries to open server `s`'s GET stream while it answers 409 (it still holds this session's
/// previous GET stream, which the gateway has just closed when a client reconnects).
async fn open_one(
    fed: &Federation,
    s: &ServerSession,
    headers: HeaderMap,
    last_id: Option<&str>,
) -> Result<Option<reqwest::Response>, Fail> {
    for _ in 0..CONFLICT_TRIES {
        match open_once(fed, s, headers.clone(), last_id).await {
            Err(Fail::Status(409)) => tokio::time::sleep(CONFLICT_WAIT).await,
            other => return other,
        }
    }
    Err(Fail::Status(409))
}

/// Opens server `s`'s GET stream; `Ok(None)` when it has none (405).
async fn open_once(
    fed: &Federation,
    s: &ServerSession,
    mut h: HeaderMap,
    last_id: Option<&str>,
) -> Result<Option<reqwest::Response>, Fail> {
    let (_, server) = fed.server(&s.alias).ok_or(Fail::Unreachable)?;
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    if let Some(v) = last_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        h.insert("last-event-id", v);
    }
    let url = format!("{}{}", s.host.trim_end_matches('/'), server.backend.path);
    let sent = tokio::time::timeout(fed.deadline, server.client.get(url).headers(h).send())
        .await
        .map_err(|_| Fail::Timeout)?
        .map_err(|e| {
            tracing::debug!(server = %s.alias, error = %e, "GET stream request failed");
            Fail::Unreachable
        })?;
    let status = sent.status().as_u16();
    let sse = sent
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
    match status {
        405 => Ok(None),
        200..=299 if sse => Ok(Some(sent)),
        200..=299 => Err(Fail::Invalid),
        other => Err(Fail::Status(other)),
    }
}

/// The `Last-Event-ID` the client resumes with, opened; a value that does not open in this
/// session is refused (400, JSON-RPC -32602) and reaches no server.
fn resume_from(
    req: &RequestHeader,
    (ep, fed): (&Endpoint, &Federation),
    binding: &str,
) -> Result<EventId, GatewayError> {
    let Some(v) = req.headers.get("last-event-id") else {
        return Ok(EventId {
            binding: binding.to_string(),
            last: Vec::new(),
        });
    };
    let opened = v
        .to_str()
        .map_err(|_| ())
        .and_then(|v| EventId::open(&fed.sealer, &ep.path, v, binding).map_err(|_| ()));
    match opened {
        Ok(e) => {
            fed.metrics.resume("resumed");
            Ok(e)
        }
        Err(()) => {
            fed.metrics.resume("refused");
            tracing::info!("federated Last-Event-ID refused");
            Err(GatewayError::InvalidJsonRpc {
                code: -32602,
                message: "Last-Event-ID is not an event id of this session".into(),
            })
        }
    }
}

/// Answers a GET of session `fs` (id `token`) with the merged stream.
pub async fn get(
    session: &mut Session,
    ctx: &RequestCtx,
    (ep, fed): (&Endpoint, &Federation),
    (fs, token): (&FedSession, &str),
) -> Result<(), GatewayError> {
    let binding = session_binding(token);
    let client = session.req_header().clone();
    let mut last = resume_from(&client, (ep, fed), &binding)?;
    last.last.retain(|(a, _)| fs.server(a).is_some());
    let started = Instant::now();
    let opens = fs.servers.iter().map(|s| {
        let h = fed
            .server(&s.alias)
            .map(|(_, server)| client::headers(&client, ep, server, Some(s)))
            .unwrap_or_default();
        open_one(fed, s, h, last.of(&s.alias))
    });
    let results = join_all(opens).await;
    fed.metrics.fanout("other", started.elapsed().as_secs_f64());
    if results.iter().any(|r| matches!(r, Err(Fail::Status(404)))) {
        return Err(GatewayError::SessionNotFound {
            why: "upstream_session_gone",
        });
    }
    let mut streams = Vec::new();
    let mut conflicts = 0;
    for (s, r) in fs.servers.iter().zip(results) {
        match r {
            Ok(Some(resp)) => streams.push((s.alias.clone(), resp)),
            Ok(None) => {}
            // The client holds another GET stream of this session: not a server failure.
            Err(Fail::Status(409)) => {
                tracing::info!(server = %s.alias, "server already streams to this session (409)");
                conflicts += 1;
            }
            Err(fail) => {
                if let Some((i, _)) = fed.server(&s.alias) {
                    client::missing(fed, i, "the GET stream", fail);
                }
            }
        }
    }
    if streams.is_empty() && conflicts > 0 {
        // As a server answers a second GET stream of one session.
        let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600,
            "message": "this session already has a GET stream", "data": {"status": 409, "reason": "stream_conflict"}}});
        super::answer::write(session, ctx, 409, Some(body.to_string().into_bytes()), None).await;
        return Ok(());
    }
    if streams.is_empty() {
        return Err(GatewayError::MethodNotAllowed {
            allow: HeaderValue::from_static("POST, DELETE"),
        });
    }
    let aliases: Vec<String> = streams.iter().map(|(a, _)| a.clone()).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(64);
    let mut readers = tokio::task::JoinSet::new();
    for (i, (_, mut resp)) in streams.into_iter().enumerate() {
        let tx = tx.clone();
        readers.spawn(async move {
            while let Ok(Some(chunk)) = resp.chunk().await {
                if tx.send((i, Some(chunk))).await.is_err() {
                    return;
                }
            }
            let _ = tx.send((i, None)).await;
        });
    }
    drop(tx);
    if let Err(e) = write_header(session, ctx).await {
        tracing::debug!(error = %e, "could not start the federated GET stream");
        return Ok(());
    }
    let mut merged = Merged {
        ep,
        fed,
        aliases,
        splitters: Vec::new(),
        last,
        pending: Vec::new(),
    };
    merged
        .splitters
        .resize_with(merged.aliases.len(), Splitter::default);
    merged.run(session, rx).await;
    // Dropping the readers closes every upstream stream.
    readers.abort_all();
    Ok(())
}

async fn write_header(session: &mut Session, ctx: &RequestCtx) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(6))?;
    if let Some(ep) = ctx.endpoint() {
        ep.policies.apply_cors(session.req_header(), &mut resp)?;
        ep.policies.response_headers.apply_response(&mut resp)?;
    }
    resp.insert_header(header::CONTENT_TYPE, "text/event-stream")?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if !session.is_http2() {
        resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    // A first comment, so the client sees the stream open before any event.
    session
        .write_response_body(Some(Bytes::from_static(b": stream open\n\n")), false)
        .await
}

/// One step of the merged stream.
enum Step {
    Upstream(Option<Chunk>),
    Tick,
    ClientGone,
}

/// The state of a merged stream.
struct Merged<'a> {
    ep: &'a Endpoint,
    fed: &'a Federation,
    /// The alias of each open stream (by reader index).
    aliases: Vec<String>,
    splitters: Vec<Splitter>,
    /// Every server's last event id.
    last: EventId,
    /// Coalesced `list_changed` methods waiting to be sent, and since when.
    pending: Vec<(String, Instant)>,
}

impl Merged<'_> {
    async fn run(&mut self, session: &mut Session, mut rx: tokio::sync::mpsc::Receiver<Chunk>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = crate::runtime::federation_watch::subscribe();
        let servers_at_start = crate::runtime::federation_watch::fingerprint(self.fed);
        let mut quiet_since = Instant::now();
        let mut watch_client = true;
        loop {
            let step = tokio::select! {
                m = rx.recv() => Step::Upstream(m),
                _ = tick.tick() => Step::Tick,
                r = session.as_mut().read_body_or_idle(true), if watch_client => match r {
                    Err(_) => Step::ClientGone,
                    Ok(_) => { watch_client = false; Step::Tick }
                },
            };
            let out = match step {
                Step::ClientGone => return,
                Step::Upstream(None) => {
                    let _ = session.write_response_body(None, true).await;
                    return;
                }
                Step::Upstream(Some((i, chunk))) => self.chunk(i, chunk),
                Step::Tick => {
                    if crate::runtime::drain::is_draining() {
                        let _ = session.write_response_body(None, true).await;
                        return;
                    }
                    if reload.has_changed().unwrap_or(false) {
                        reload.mark_unchanged();
                        let now = crate::runtime::federation_watch::current(&self.ep.path);
                        if now.as_deref() != Some(servers_at_start.as_str()) {
                            self.list_changed("notifications/tools/list_changed");
                        }
                    }
                    let mut out = self.due_list_changed();
                    if out.is_empty() && quiet_since.elapsed() >= KEEP_ALIVE {
                        out.extend_from_slice(b": keep-alive\n\n");
                    }
                    out
                }
            };
            if out.is_empty() {
                continue;
            }
            quiet_since = Instant::now();
            if session
                .write_response_body(Some(out.freeze()), false)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// The events a chunk of stream `i` completes, rewritten.
    fn chunk(&mut self, i: usize, chunk: Option<Bytes>) -> BytesMut {
        let mut out = BytesMut::new();
        let Some(split) = self.splitters.get_mut(i) else {
            return out;
        };
        let events = match &chunk {
            Some(c) => split.push(c),
            None => split.finish().into_iter().collect(),
        };
        let alias = self.aliases.get(i).cloned().unwrap_or_default();
        let server = self.fed.server(&alias).map_or(usize::MAX, |(i, _)| i);
        for event in events {
            let mut seal = |own: &serde_json::Value| {
                ServerRequestId {
                    binding: self.last.binding.clone(),
                    alias: alias.clone(),
                    original: own.clone(),
                }
                .seal(&self.fed.sealer, &self.ep.path)
            };
            match rewrite(&event, &mut seal) {
                Rewritten::Raw(raw) => out.extend_from_slice(&raw),
                Rewritten::Event { lines, id, request } => {
                    if request.is_some() {
                        self.fed.metrics.server_request(server, "sent");
                    }
                    if let Some(id) = &id {
                        self.last.set(&alias, id);
                    }
                    if let Some(method) = list_changed_method(&lines) {
                        self.list_changed(&method);
                        continue;
                    }
                    let sealed = id.and_then(|_| self.last.seal(&self.fed.sealer, &self.ep.path));
                    if !lines.is_empty() || sealed.is_some() {
                        out.extend_from_slice(&frame(&lines, sealed.as_deref()));
                    }
                }
            }
        }
        out
    }

    /// Holds a `list_changed` notification to send once at the end of its window.
    fn list_changed(&mut self, method: &str) {
        if !self.pending.iter().any(|(m, _)| m == method) {
            self.pending.push((method.to_string(), Instant::now()));
        }
    }

    /// The held `list_changed` notifications whose window is over.
    fn due_list_changed(&mut self) -> BytesMut {
        let mut out = BytesMut::new();
        let mut keep = Vec::new();
        for (method, since) in self.pending.drain(..) {
            if since.elapsed() >= COALESCE {
                let msg = serde_json::json!({"jsonrpc": "2.0", "method": method});
                let sealed = self.last.seal(&self.fed.sealer, &self.ep.path);
                let lines = format!("event: message\ndata: {msg}\n");
                out.extend_from_slice(&frame(&lines, sealed.as_deref()));
            } else {
                keep.push((method, since));
            }
        }
        self.pending = keep;
        out
    }
}

/// The method of a `notifications/*/list_changed` event, from its (rewritten) lines.
fn list_changed_method(lines: &str) -> Option<String> {
    let data = lines.lines().find_map(|l| l.strip_prefix("data:"))?;
    if !data.contains("list_changed") {
        return None;
    }
    let msg: serde_json::Value = serde_json::from_str(data.trim()).ok()?;
    if msg.get("id").is_some() {
        return None;
    }
    let method = msg.get("method")?.as_str()?;
    (method.starts_with("notifications/") && method.ends_with("/list_changed"))
        .then(|| method.to_string())
}
