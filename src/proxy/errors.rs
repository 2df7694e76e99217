//! Every response the gateway makes itself comes from here: the status, a JSON body, and a
//! JSON-RPC error object (with the request's `id`) when the request was JSON-RPC.

use super::ctx::RequestCtx;
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

/// A response the gateway makes itself.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// No endpoint serves the path.
    #[error("no MCP endpoint is served at this path")]
    NotFound,
    /// The endpoint does not allow the method.
    #[error("this endpoint does not allow the method")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: HeaderValue,
    },
    /// No upstream host accepted a connection.
    #[error("no upstream host could be reached")]
    UpstreamUnreachable,
    /// The upstream went silent for longer than the idle timeout before answering.
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// The upstream connection failed after the request was sent.
    #[error("the upstream connection failed")]
    UpstreamFailed,
    /// Refused by a policy (IP filter, Host or Origin check); the reason is a fixed phrase.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No valid credentials (401 with `WWW-Authenticate`).
    #[error("authentication required: {reason}")]
    Unauthorized {
        /// The `WWW-Authenticate` value.
        challenge: String,
        /// A fixed phrase, safe to log.
        reason: &'static str,
    },
    /// Valid credentials without the required scopes or roles (403 with `WWW-Authenticate`).
    #[error("insufficient scope or role")]
    InsufficientScope {
        /// The `WWW-Authenticate` value.
        challenge: String,
    },
    /// Token keys could not be fetched (503 with `Retry-After`).
    #[error("authentication is temporarily unavailable")]
    AuthUnavailable,
    /// The request body is larger than the limit.
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    /// The request headers are too many or too large.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    /// The request could not be read.
    #[error("the request could not be read")]
    BadRequest,
    /// Over a rate limit (429 with `Retry-After`, `RateLimit-Policy`, `RateLimit`).
    #[error("rate limit exceeded, retry in {retry_after}s")]
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after: u64,
        /// `RateLimit-Policy` value.
        policy: String,
        /// `RateLimit` value.
        state: String,
    },
    /// Over a concurrency limit (429 with `Retry-After: 1`).
    #[error("too many open {} for limit {limit:?}", if *streams { "streams" } else { "requests" })]
    ConcurrencyLimited {
        /// The limit's name.
        limit: String,
        /// It was the stream count.
        streams: bool,
    },
    /// The request has no value for a limit's key, and the limit rejects such requests (400).
    #[error("limit {limit:?} counts by {key}, which this request does not have")]
    LimitKeyMissing {
        /// The limit's name.
        limit: String,
        /// The key, described.
        key: String,
    },
    /// The fleet-wide limit store is unavailable and the policy is to fail closed (503).
    #[error("rate limiting is temporarily unavailable")]
    LimitStoreUnavailable,
    /// Every host of the endpoint has an open circuit breaker (503 with `Retry-After`).
    #[error("no upstream host is available, retry in {retry_after}s")]
    CircuitOpen {
        /// Seconds until the first breaker lets a probe through.
        retry_after: u64,
    },
    /// The body is not JSON-RPC, or names a call the gateway cannot attribute, and the endpoint
    /// inspects bodies (400).
    #[error("{message}")]
    InvalidJsonRpc {
        /// -32700 (not JSON), -32600 (not a JSON-RPC message), -32601 (a near-miss of an MCP
        /// method), -32602 (a call naming no tool, prompt or resource).
        code: i64,
        /// What is wrong.
        message: String,
    },
    /// `Mcp-Method` / `Mcp-Name` disagree with the body (400, -32020).
    #[error("{0}")]
    HeaderMismatch(&'static str),
    /// A `tools/call` of a tool the client may not call (403); a batch is refused as a whole.
    #[error("tool {tool:?} is not allowed")]
    ToolDenied {
        /// The tool.
        tool: String,
    },
    /// A `tools/call` of a tool whose definition changed and is not accepted yet (403).
    #[error("tool {tool:?} changed its definition and awaits approval")]
    ToolChanged {
        /// The tool.
        tool: String,
    },
    /// Denied by a CEL rule (its status, 400 to 499).
    #[error("{message}")]
    PolicyDenied {
        /// The rule's name.
        rule: String,
        /// The status.
        status: u16,
        /// The rule's message.
        message: String,
    },
    /// The request body did not arrive in time on an inspecting endpoint (408).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A request other than POST carries a body on an inspecting endpoint (400): MCP sends
    /// JSON-RPC only in POST bodies, and a body the gateway does not inspect could still be read
    /// by the upstream.
    #[error("only a POST request may carry a body on this endpoint")]
    BodyNotAllowed,
    /// The body is larger than an inspecting endpoint can inspect (413).
    #[error("the request body is larger than the {limit} bytes this endpoint inspects")]
    InspectionTooLarge {
        /// The bound.
        limit: u64,
    },
    /// The `Mcp-Session-Id` does not name a live session of this gateway (404: start a new
    /// session).
    #[error("session not found")]
    SessionNotFound {
        /// Why, for logs and metrics.
        why: &'static str,
    },
    /// Anything else.
    #[error("internal gateway error")]
    Internal,
    /// An answer the gateway filters (`tools/list`) that it could not read exactly, so it was
    /// not passed on (502); `reason` is a fixed word (see `mcp::response::Unreadable`).
    #[error("the upstream's answer could not be read ({reason}), so it was not passed on")]
    UnreadableAnswer {
        /// Why, a fixed word.
        reason: &'static str,
    },
}

impl GatewayError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NotFound => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::UpstreamUnreachable | GatewayError::UpstreamFailed => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::Forbidden(_) => 403,
            GatewayError::Unauthorized { .. } => 401,
            GatewayError::InsufficientScope { .. } => 403,
            GatewayError::AuthUnavailable => 503,
            GatewayError::PayloadTooLarge => 413,
            GatewayError::HeadersTooLarge => 431,
            GatewayError::BadRequest => 400,
            GatewayError::RateLimited { .. } | GatewayError::ConcurrencyLimited { .. } => 429,
            GatewayError::LimitKeyMissing { .. } => 400,
            GatewayError::LimitStoreUnavailable | GatewayError::CircuitOpen { .. } => 503,
            GatewayError::SessionNotFound { .. } => 404,
            GatewayError::InvalidJsonRpc { .. } | GatewayError::HeaderMismatch(_) => 400,
            GatewayError::ToolDenied { .. } | GatewayError::ToolChanged { .. } => 403,
            GatewayError::PolicyDenied { status, .. } => *status,
            GatewayError::InspectionTooLarge { .. } => 413,
            GatewayError::BodyTimeout => 408,
            GatewayError::BodyNotAllowed => 400,
            GatewayError::Internal => 500,
            GatewayError::UnreadableAnswer { .. } => 502,
        }
    }

    /// A stable machine-readable reason (bodies, logs).
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::UpstreamUnreachable => "upstream_unreachable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::UpstreamFailed => "upstream_failed",
            GatewayError::Forbidden(reason) => reason,
            GatewayError::Unauthorized { .. } => "unauthorized",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::AuthUnavailable => "auth_unavailable",
            GatewayError::PayloadTooLarge => "payload_too_large",
            GatewayError::HeadersTooLarge => "headers_too_large",
            GatewayError::BadRequest => "bad_request",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::ConcurrencyLimited { .. } => "concurrency_limited",
            GatewayError::LimitKeyMissing { .. } => "limit_key_missing",
            GatewayError::LimitStoreUnavailable => "limit_store_unavailable",
            GatewayError::CircuitOpen { .. } => "circuit_open",
            GatewayError::SessionNotFound { .. } => "session_not_found",
            GatewayError::InvalidJsonRpc { code: -32700, .. } => "parse_error",
            GatewayError::InvalidJsonRpc { code: -32601, .. } => "method_not_found",
            GatewayError::InvalidJsonRpc { code: -32602, .. } => "invalid_params",
            GatewayError::InvalidJsonRpc { .. } => "invalid_request",
            GatewayError::HeaderMismatch(_) => "header_mismatch",
            GatewayError::ToolDenied { .. } => "tool_denied",
            GatewayError::ToolChanged { .. } => "tool_definition_changed",
            GatewayError::PolicyDenied { .. } => "policy_denied",
            GatewayError::InspectionTooLarge { .. } => "payload_too_large",
            GatewayError::BodyTimeout => "body_timeout",
            GatewayError::BodyNotAllowed => "body_not_allowed",
            GatewayError::Internal => "internal_error",
            GatewayError::UnreadableAnswer { .. } => "unreadable_answer",
        }
    }

    /// The reason with its detail, for logs (never a secret): e.g. `unauthorized: expired`.
    pub fn log_reason(&self) -> String {
        match self {
            GatewayError::Unauthorized { reason, .. } => format!("unauthorized: {reason}"),
            GatewayError::SessionNotFound { why } => format!("session_not_found: {why}"),
            GatewayError::PolicyDenied { rule, .. } => format!("policy_denied: {rule}"),
            // Fixed phrases (`mcp::attribution`), never the client's text.
            GatewayError::InvalidJsonRpc {
                code: -32601 | -32602,
                message,
            } => format!("{}: {message}", self.reason()),
            GatewayError::HeaderMismatch(why) => format!("header_mismatch: {why}"),
            GatewayError::ConcurrencyLimited { limit, .. }
            | GatewayError::LimitKeyMissing { limit, .. } => {
                format!("{}: {limit}", self.reason())
            }
            other => other.reason().to_string(),
        }
    }

    /// The JSON-RPC error code (the implementation-defined server-error range, or -32600).
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

    fn jsonrpc_code(&self) -> i64 {
        match self {
            GatewayError::BadRequest | GatewayError::BodyNotAllowed => -32600,
            // The code MCP SDKs use for an unknown session.
            GatewayError::SessionNotFound { .. } => -32001,
            GatewayError::InvalidJsonRpc { code, .. } => *code,
            // HEADER_MISMATCH (MCP 2026-07-28).
            GatewayError::HeaderMismatch(_) => -32020,
            _ => -32000,
        }
    }

    /// Fills in what only the request context knows.
    pub fn in_ctx(self, ctx: &RequestCtx) -> GatewayError {
        match self {
            GatewayError::CircuitOpen { .. } => GatewayError::CircuitOpen {
                retry_after: ctx.circuit_retry_after.unwrap_or(1),
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

/// The custom error type for "no host left to try".
pub const NO_HOST: &str = "NoUpstreamHost";
/// The custom error type for "every host's circuit breaker is open".
pub const CIRCUIT_OPEN: &str = "CircuitOpen";

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
