//! Answers a federated endpoint makes itself (merged results): JSON with the endpoint's CORS and
//! response headers, and the sealed session id after initialize. A client that accepts
//! `text/event-stream` but not JSON gets the answer as an SSE stream of one `message` event (a
//! client that accepts both takes either, as streamable HTTP requires). Refusals go through
//! `proxy/errors.rs` like every other.

use crate::proxy::ctx::RequestCtx;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;

/// Whether the client's `Accept` takes `text/event-stream` and not JSON.
pub fn wants_sse(req: &RequestHeader) -> bool {
    let mut sse = false;
    let mut json = false;
    for value in req.headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for range in text.split(',') {
            let mut params = range.split(';');
            let media = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            // `q=0` means "not acceptable".
            let refused = params.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            if refused {
                continue;
            }
            match media.as_str() {
                "text/event-stream" => sse = true,
                "application/json" | "application/*" | "*/*" => json = true,
                _ => {}
            }
        }
    }
    sse && !json
}

/// `body` as an SSE stream of one `message` event.
fn as_event(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 24);
    out.extend_from_slice(b"event: message\n");
    // Serialized JSON holds no raw line break; each line gets its own `data:` anyway.
    for line in body.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// Writes `status` with `body` (JSON, or nothing) and, when given, `Mcp-Session-Id`.
pub async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Option<Vec<u8>>,
    session_id: Option<&str>,
) {
    let sse = body.is_some() && wants_sse(session.req_header());
    let body = match body {
        Some(b) if sse => Some(as_event(&b)),
        other => other,
    };
    let written = async {
        let mut resp = ResponseHeader::build(status, Some(6))?;
        if let Some(ep) = ctx.endpoint() {
            ep.policies.apply_cors(session.req_header(), &mut resp)?;
            ep.policies.response_headers.apply_response(&mut resp)?;
        }
        if body.is_some() {
            let kind = if sse {
                "text/event-stream"
            } else {
                "application/json"
            };
            resp.insert_header(header::CONTENT_TYPE, kind)?;
        }
        let len = body.as_ref().map_or(0, Vec::len);
        resp.insert_header(header::CONTENT_LENGTH, len.to_string())?;
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        if let Some(id) = session_id {
            resp.insert_header("mcp-session-id", id)?;
        }
        crate::proxy::http1::keep_alive_after_answer(session).await;
        match body {
            Some(b) => {
                session.write_response_header(Box::new(resp), false).await?;
                session
                    .write_response_body(Some(Bytes::from(b)), true)
                    .await
            }
            None => session.write_response_header(Box::new(resp), true).await,
        }
    };
    if let Err(e) = written.await {
        tracing::debug!(error = %e, "could not send the federated answer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(accept: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/mcp", None).expect("request");
        for a in accept {
            r.append_header(header::ACCEPT, *a).expect("accept");
        }
        r
    }

    #[test]
    fn sse_only_when_json_is_not_accepted() {
        assert!(wants_sse(&req(&["text/event-stream"])));
        assert!(wants_sse(&req(&["Text/Event-Stream; charset=utf-8"])));
        assert!(wants_sse(&req(&[
            "text/event-stream, application/json;q=0"
        ])));
        assert!(!wants_sse(&req(&["application/json, text/event-stream"])));
        assert!(!wants_sse(&req(&["text/event-stream", "application/json"])));
        assert!(!wants_sse(&req(&["text/event-stream, */*"])));
        assert!(!wants_sse(&req(&[])));
        assert!(!wants_sse(&req(&["application/json"])));
    }

    #[test]
    fn an_event_carries_the_whole_message() {
        assert_eq!(
            as_event(br#"{"id":1}"#),
            b"event: message\ndata: {\"id\":1}\n\n".to_vec()
        );
    }
}
