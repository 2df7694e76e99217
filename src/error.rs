//! What the gateway refuses or fails with, as plain values: every `GatewayError` with its HTTP
//! status, stable reason, log detail and JSON-RPC code, and the names of the gateway's custom
//! Pingora errors. Policies return these; `proxy/errors.rs` is the one place that turns them
//! into responses.

use http::header::HeaderValue;

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
    /// A required server of a federated endpoint failed at initialize (502).
    #[error("the required MCP server {server:?} did not initialize")]
    FederatedServerFailed {
        /// The server's alias (from the config).
        server: String,
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
            GatewayError::FederatedServerFailed { .. } => 502,
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
            GatewayError::FederatedServerFailed { .. } => "federated_server_failed",
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
            GatewayError::FederatedServerFailed { server } => {
                format!("federated_server_failed: {server}")
            }
            GatewayError::ConcurrencyLimited { limit, .. }
            | GatewayError::LimitKeyMissing { limit, .. } => {
                format!("{}: {limit}", self.reason())
            }
            other => other.reason().to_string(),
        }
    }

    /// The JSON-RPC error code (the implementation-defined server-error range, or -32600).
    pub fn jsonrpc_code(&self) -> i64 {
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
}

/// The custom error type for "no host left to try".
pub const NO_HOST: &str = "NoUpstreamHost";
/// The custom error type for "every host's circuit breaker is open".
pub const CIRCUIT_OPEN: &str = "CircuitOpen";
/// The custom Pingora error for an answer the tools filter refuses at its header (compressed, a
/// redirect): the request context says which (`GatewayError::UnreadableAnswer`).
pub const UNREADABLE_ANSWER: &str = "UnreadableAnswer";
