//! Every response the gateway makes itself comes from here: the status, a JSON body, and a
//! JSON-RPC error object (with the request's `id`) when the request was JSON-RPC.

use super::ctx::RequestCtx;
use crate::error::{GatewayError, CIRCUIT_OPEN, NO_HOST, UNREADABLE_ANSWER};
use crate::mcp::jsonrpc::{self, RequestShape};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::{Error, ErrorSource, ErrorType};
use std::time::Duration;

/// How much of a request body the error path reads to find a JSON-RPC id.
pub const ID_SCAN_LIMIT: usize = 64 * 1024;
/// How long the error path waits for the rest of a body.
const ID_SCAN_WAIT: Duration = Duration::from_secs(1);

impl GatewayError {
    /// The JSON-RPC error body for this error, for a request of `shape` (`id: null` when the
    /// request's ids are unknown); for answers that replace an upstream's once its status has
    /// gone out.
    pub fn jsonrpc_body(&self, shape: Option<&RequestShape>) -> Vec<u8> {
        let unknown = RequestShape::Single { id: "null".into() };
        let data = serde_json::json!({"status": self.status(), "reason": self.reason()});
        jsonrpc::error_body(
            shape.unwrap_or(&unknown),
            self.jsonrpc_code(),
            &self.to_string(),
            &data,
        )
    }

    /// Fills in what only the request context knows.
    pub fn in_ctx(self, ctx: &RequestCtx) -> GatewayError {
        match self {
            GatewayError::CircuitOpen { .. } => GatewayError::CircuitOpen {
                retry_after: ctx.circuit_retry_after.unwrap_or(1),
            },
            GatewayError::UnreadableAnswer { .. } => match &ctx.error {
                Some(e @ GatewayError::UnreadableAnswer { .. }) => e.clone(),
                _ => self,
            },
            other => other,
        }
    }

    /// Maps a Pingora proxy error; `None` when the client is gone and nothing can be sent.
    pub fn from_proxy_error(e: &Error) -> Option<GatewayError> {
        use ErrorType::*;
        Some(match e.etype() {
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError
            | TLSHandshakeFailure | TLSHandshakeTimedout | ConnectProxyFailure | SocketError
            | BindError | InvalidCert | TLSWantX509Lookup => GatewayError::UpstreamUnreachable,
            Custom(NO_HOST) => GatewayError::UpstreamUnreachable,
            Custom(CIRCUIT_OPEN) => GatewayError::CircuitOpen { retry_after: 1 },
            Custom(UNREADABLE_ANSWER) => GatewayError::UnreadableAnswer {
                reason: "unreadable",
            },
            HTTPStatus(413) => GatewayError::PayloadTooLarge,
            HTTPStatus(400) => GatewayError::BadRequest,
            ReadTimedout | WriteTimedout if e.esource() == &ErrorSource::Upstream => {
                GatewayError::UpstreamTimeout
            }
            _ => match e.esource() {
                ErrorSource::Upstream => GatewayError::UpstreamFailed,
                ErrorSource::Downstream => match e.etype() {
                    ReadError | WriteError | ConnectionClosed | ReadTimedout | WriteTimedout => {
                        return None
                    }
                    _ => GatewayError::BadRequest,
                },
                ErrorSource::Internal | ErrorSource::Unset => GatewayError::Internal,
            },
        })
    }
}

/// Writes the answer for `err`, reading (bounded) what is left of a POST body to find the
/// JSON-RPC id. Returns the status sent.
pub async fn answer(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) -> u16 {
    let mut shape = request_shape(session, ctx).await;
    if shape.is_none() && matches!(err, GatewayError::InvalidJsonRpc { .. }) {
        // Not JSON-RPC we could read an id from: the JSON-RPC answer has `id: null`.
        shape = Some(RequestShape::Single { id: "null".into() });
    }
    let status = err.status();
    let data = serde_json::json!({"status": status, "reason": err.reason()});
    let body = match &shape {
        Some(shape) => jsonrpc::error_body(shape, err.jsonrpc_code(), &err.to_string(), &data),
        None => serde_json::json!({"error": {
            "status": status, "reason": err.reason(), "message": err.to_string()}})
        .to_string()
        .into_bytes(),
    };
    let sent = write(session, ctx, status, &err, body).await;
    if let Err(e) = sent {
        tracing::debug!(error = %e, "could not send the error response");
    }
    ctx.error = Some(err);
    status
}

async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    err: &GatewayError,
    body: Vec<u8>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(6))?;
    if let Some(ep) = ctx.endpoint() {
        // Error answers carry CORS headers too, so browsers can read them.
        ep.policies.apply_cors(session.req_header(), &mut resp)?;
    }
    resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    match err {
        GatewayError::MethodNotAllowed { allow } => {
            resp.insert_header(header::ALLOW, allow.clone())?;
        }
        GatewayError::Unauthorized { challenge, .. }
        | GatewayError::InsufficientScope { challenge } => {
            resp.insert_header(header::WWW_AUTHENTICATE, challenge.as_str())?;
        }
        GatewayError::AuthUnavailable => {
            resp.insert_header(header::RETRY_AFTER, "5")?;
        }
        GatewayError::RateLimited {
            retry_after,
            policy,
            state,
        } => {
            resp.insert_header(header::RETRY_AFTER, retry_after.to_string())?;
            resp.insert_header("RateLimit-Policy", policy.as_str())?;
            resp.insert_header("RateLimit", state.as_str())?;
        }
        GatewayError::ConcurrencyLimited { .. } | GatewayError::LimitStoreUnavailable => {
            resp.insert_header(header::RETRY_AFTER, "1")?;
        }
        GatewayError::CircuitOpen { retry_after } => {
            resp.insert_header(header::RETRY_AFTER, retry_after.to_string())?;
        }
        _ => {}
    }
    super::http1::keep_alive_after_answer(session).await;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

/// Answers an allowed CORS preflight: 204 with `headers`. Returns the status sent.
pub async fn answer_preflight(
    session: &mut Session,
    headers: Vec<(http::HeaderName, HeaderValue)>,
) -> u16 {
    let written = async {
        let mut resp = ResponseHeader::build(204, Some(headers.len() + 1))?;
        for (name, value) in headers {
            resp.append_header(name, value)?;
        }
        resp.insert_header(header::CONTENT_LENGTH, "0")?;
        session.write_response_header(Box::new(resp), true).await
    };
    if let Err(e) = written.await {
        tracing::debug!(error = %e, "could not answer the preflight");
    }
    204
}

/// Answers a `GET` of a public JSON document (OAuth protected-resource metadata).
pub async fn answer_document(session: &mut Session, body: &str) -> u16 {
    let written = async {
        let mut resp = ResponseHeader::build(200, Some(4))?;
        resp.insert_header(header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")?;
        resp.insert_header(header::CACHE_CONTROL, "max-age=300")?;
        if session.req_header().method == http::Method::HEAD {
            return session.write_response_header(Box::new(resp), true).await;
        }
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true)
            .await
    };
    if let Err(e) = written.await {
        tracing::debug!(error = %e, "could not send the document");
    }
    200
}

/// Finds out whether the request was JSON-RPC, from the body bytes seen so far plus what is
/// still unread (bounded in size and time).
async fn request_shape(session: &mut Session, ctx: &mut RequestCtx) -> Option<RequestShape> {
    let req = session.req_header();
    if req.method != http::Method::POST || super::http1::awaits_continue(session) {
        return None;
    }
    let json = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if !json {
        return None;
    }
    if !ctx.body.complete && !ctx.body.truncated {
        let read_rest = async {
            while ctx.body.len() < ID_SCAN_LIMIT && !ctx.body.truncated {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => ctx.body.push(&chunk, ID_SCAN_LIMIT),
                    Ok(None) => {
                        ctx.body.complete = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(ID_SCAN_WAIT, read_rest).await;
    }
    jsonrpc::request_shape(&ctx.body.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_errors_map_to_statuses() {
        let connect = Error::new(ErrorType::ConnectRefused);
        assert_eq!(
            GatewayError::from_proxy_error(&connect).map(|e| e.status()),
            Some(502)
        );
        let mut timeout = Error::new(ErrorType::ReadTimedout);
        timeout.as_up();
        assert_eq!(
            GatewayError::from_proxy_error(&timeout).map(|e| e.status()),
            Some(504)
        );
        let mut gone = Error::new(ErrorType::ConnectionClosed);
        gone.as_down();
        assert!(GatewayError::from_proxy_error(&gone).is_none());
        let none = Error::new(ErrorType::Custom(NO_HOST));
        assert_eq!(
            GatewayError::from_proxy_error(&none).map(|e| e.status()),
            Some(502)
        );
    }
}
