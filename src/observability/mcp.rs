//! MCP metrics from the logging phase: one count per inspected message by endpoint, MCP method,
//! tool and outcome, and tool-call durations. Label values are bounded: methods come from the
//! MCP method list (else `other`), tools from the config or the endpoint's `tools/list` answers
//! (else `other`), outcomes from a fixed list.

use super::metrics::metrics;
use crate::proxy::ctx::RequestCtx;
use crate::proxy::errors::GatewayError;
use memchr::memmem::Finder;
use std::sync::LazyLock;

/// MCP methods as label values.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// The outcome label of a request.
fn outcome(ctx: &RequestCtx, status: u16) -> &'static str {
    match &ctx.error {
        Some(
            GatewayError::ToolDenied { .. }
            | GatewayError::ToolChanged { .. }
            | GatewayError::PolicyDenied { .. }
            | GatewayError::Forbidden(_)
            | GatewayError::Unauthorized { .. }
            | GatewayError::InsufficientScope { .. },
        ) => "denied",
        Some(
            GatewayError::RateLimited { .. }
            | GatewayError::ConcurrencyLimited { .. }
            | GatewayError::LimitKeyMissing { .. }
            | GatewayError::LimitStoreUnavailable,
        ) => "limited",
        Some(
            GatewayError::InvalidJsonRpc { .. }
            | GatewayError::HeaderMismatch(_)
            | GatewayError::InspectionTooLarge { .. }
            | GatewayError::BodyTimeout
            | GatewayError::BodyNotAllowed
            | GatewayError::BadRequest
            | GatewayError::PayloadTooLarge,
        ) => "invalid",
        Some(_) => "upstream_error",
        None if status >= 500 || status == 0 => "upstream_error",
        None if status >= 400 => "error",
        None if ctx.tool_error => "tool_error",
        None => "ok",
    }
}

/// Records the inspected messages of a finished request.
pub fn record(ctx: &RequestCtx, status: u16) {
    let Some(inspected) = &ctx.mcp else {
        return;
    };
    let Some(ep) = ctx.endpoint() else {
        return;
    };
    let outcome = outcome(ctx, status);
    let m = metrics();
    for msg in inspected.messages() {
        let method = match msg.method.as_deref() {
            None => "response",
            Some(n) if n.starts_with("notifications/") => "notification",
            Some(n) => METHODS
                .iter()
                .find(|k| **k == n)
                .copied()
                .unwrap_or("other"),
        };
        let registry = &ep.policies.tool_registry;
        if let Some(t) = msg.tool() {
            // The upstream answered this call with a result that is not a tool error: it knows
            // the tool, whichever process relayed the `tools/list` that showed it. (Servers
            // answer an unknown tool with a JSON-RPC error or a tool error.)
            if ctx.tool_result && outcome == "ok" {
                registry.answered(t);
            }
        }
        let tool = msg.tool().map(|t| registry.label(t)).unwrap_or("");
        m.mcp_request(&ep.name, method, tool, outcome);
        if method == "tools/call" && ctx.upstream_sent.is_some() {
            m.tool_call(&ep.name, tool, ctx.started.elapsed().as_secs_f64());
        }
    }
}

/// Scans a `tools/call` answer for `"isError":true` outside a string (a tool error) and for a
/// `"result"` member (an answer, not a JSON-RPC error). Each chunk is searched where it lies;
/// only the last few bytes of the previous chunk are kept, so a match split across two chunks
/// is found too.
pub fn scan_tool_error(ctx: &mut RequestCtx, chunk: &[u8]) {
    if ctx.tool_error || !ctx.calls_one_tool() {
        return;
    }
    let tail = std::mem::take(&mut ctx.scan_tail);
    let head = &chunk[..chunk.len().min(KEEP)];
    let across: Vec<u8> = tail.iter().chain(head).copied().collect();
    let found = |needles: &[Finder<'static>]| {
        has(needles, None, &across) || has(needles, tail.last().copied(), chunk)
    };
    ctx.tool_result = ctx.tool_result || found(&RESULT[..]);
    ctx.tool_error = found(&NEEDLES[..]);
    let mut next = tail;
    next.extend_from_slice(&chunk[chunk.len().saturating_sub(KEEP)..]);
    let drop = next.len().saturating_sub(KEEP);
    next.drain(..drop);
    ctx.scan_tail = next;
}

/// The needles, with their searchers built once (building one costs more than a short search).
static NEEDLES: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [b"\"isError\":true".as_slice(), b"\"isError\": true"].map(Finder::new));
/// A `result` member, as JSON encoders write it.
static RESULT: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [b"\"result\":".as_slice(), b"\"result\" :"].map(Finder::new));
/// Bytes kept between chunks: one less than the longest needle.
const KEEP: usize = 15;

/// Whether `hay` holds a tool-error needle not preceded by a backslash.
#[cfg(test)]
fn has_tool_error(prev: Option<u8>, hay: &[u8]) -> bool {
    has(&NEEDLES[..], prev, hay)
}

/// Whether `hay` holds one of `needles` not preceded by a backslash (`prev`: the byte before
/// `hay`).
fn has(needles: &[Finder<'static>], prev: Option<u8>, hay: &[u8]) -> bool {
    needles.iter().any(|needle| {
        needle.find_iter(hay).any(|i| {
            let before = if i == 0 {
                prev
            } else {
                hay.get(i - 1).copied()
            };
            before != Some(b'\\')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::has_tool_error;

    #[test]
    fn tool_errors_are_found_outside_strings_only() {
        assert!(has_tool_error(
            None,
            br#"{"result":{"content":[],"isError":true}}"#
        ));
        assert!(has_tool_error(None, br#"{"isError": true}"#));
        assert!(!has_tool_error(None, br#"{"text":"say \"isError\":true"}"#));
        assert!(!has_tool_error(Some(b'\\'), br#""isError":true"#));
        assert!(!has_tool_error(None, br#"{"isError":false}"#));
        // An escaped occurrence does not hide a real one after it.
        assert!(has_tool_error(
            None,
            br#"{"text":"\"isError\":true","isError":true}"#
        ));
    }
}
