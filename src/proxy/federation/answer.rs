//! Answers a federated endpoint makes itself (merged results): JSON with the endpoint's CORS and
//! response headers, and the sealed session id after initialize. Refusals go through
//! `proxy/errors.rs` like every other.

use crate::proxy::ctx::RequestCtx;
use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;

/// Writes `status` with `body` (JSON, or nothing) and, when given, `Mcp-Session-Id`.
pub async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Option<Vec<u8>>,
    session_id: Option<&str>,
) {
    let written = async {
        let mut resp = ResponseHeader::build(status, Some(6))?;
        if let Some(ep) = ctx.endpoint() {
            ep.policies.apply_cors(session.req_header(), &mut resp)?;
            ep.policies.response_headers.apply_response(&mut resp)?;
        }
        if body.is_some() {
            resp.insert_header(header::CONTENT_TYPE, "application/json")?;
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
