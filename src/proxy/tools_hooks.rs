//! `tools/list` filtering in the proxy phases: which answers are filtered (asked for
//! uncompressed when the request goes upstream, started at the response header), and each body
//! chunk through the filter of `tools_filter.rs`.

use super::tools_filter::{keeper, ToolsFilter};
use crate::error::GatewayError;
use crate::mcp::response::Unreadable;
use bytes::Bytes;

/// Whether the answer to this request is read and filtered. Clients match an answer to its
/// request by `id`, on whichever stream it arrives, so where the tool list is guarded
/// (`tools.filter_list`, or tool-definition pinning) every answer that could carry a
/// `tools/list` result is read: the answer to any POST that holds a request, and every GET
/// stream. Elsewhere: the answer to a POST that lists tools (the registry records what it shows),
/// and, on an endpoint that inspects, a GET resuming a stream (`Last-Event-ID`), which may replay
/// an earlier answer.
fn may_list_tools(ctx: &crate::proxy::ctx::RequestCtx, req: &pingora::http::RequestHeader) -> bool {
    if ctx.lists_tools() {
        return true;
    }
    let Some(ep) = ctx.endpoint() else {
        return false;
    };
    let guarded = ep.policies.tools.as_ref().is_some_and(|t| t.filter_list)
        || ep.policies.tool_registry.pinning.is_some();
    match req.method {
        http::Method::GET if guarded => true,
        http::Method::GET => {
            req.headers.contains_key("last-event-id") && ep.policies.inspection.is_some()
        }
        http::Method::POST if guarded => ctx.mcp.as_ref().is_some_and(|m| {
            m.messages()
                .iter()
                .any(|m| m.method.is_some() && m.id.is_some())
        }),
        _ => false,
    }
}

/// Before the request goes upstream: an answer that will be filtered is asked for uncompressed,
/// since a compressed one cannot be read (`Accept-Encoding` is forwarded only when
/// `input_headers` names it).
pub fn on_upstream_request(
    ctx: &crate::proxy::ctx::RequestCtx,
    req: &mut pingora::http::RequestHeader,
) {
    if may_list_tools(ctx, req) {
        req.remove_header(&http::header::ACCEPT_ENCODING);
    }
}

/// At the response header: starts filtering a successful answer that may list tools, whatever
/// its `Content-Type` says. A JSON answer of known length keeps it (see [`kept_length`]); for
/// others the length may change, so `Content-Length` goes (HTTP/1.1 answers are chunked). Other
/// statuses pass (clients read no result from them), except redirects: a client
/// that follows one (fetch, httpx) would fetch the answer around the gateway. A redirect, or an
/// answer that is compressed anyway and so cannot be read, is refused (502) rather than passed.
pub fn on_response_header(
    ctx: &mut crate::proxy::ctx::RequestCtx,
    req: &pingora::http::RequestHeader,
    resp: &mut pingora::http::ResponseHeader,
    h2: bool,
) -> pingora::Result<()> {
    let no_body = matches!(resp.status.as_u16(), 204 | 205);
    let redirect = resp.status.is_redirection() && resp.status != http::StatusCode::NOT_MODIFIED;
    if !(resp.status.is_success() || redirect) || no_body || !may_list_tools(ctx, req) {
        return Ok(());
    }
    let encoding = resp.headers.get(http::header::CONTENT_ENCODING).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    let compressed = encoding.is_some_and(|e| !e.is_empty() && e != "identity");
    if redirect || compressed {
        let why = match redirect {
            true => Unreadable::Redirect,
            false => Unreadable::Compressed,
        };
        refused(ctx.endpoint().map_or("", |ep| ep.name.as_str()), why);
        ctx.error = Some(GatewayError::UnreadableAnswer {
            reason: why.as_str(),
        });
        return Err(pingora::Error::explain(
            pingora::ErrorType::Custom(crate::error::UNREADABLE_ANSWER),
            "tools/list answer refused at its header",
        )
        .into_up());
    }
    let declared_sse = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if let Some(n) = kept_length(ctx, req, resp, declared_sse) {
        ctx.tools_filter = Some(ToolsFilter::new(declared_sse).with_length(n));
        return Ok(());
    }
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if !h2 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    ctx.tools_filter = Some(ToolsFilter::new(declared_sse));
    Ok(())
}

/// The least `Content-Length` an answer keeps, over the room its request's id needs: every
/// replacement (a JSON-RPC error naming the reason, see `UnreadableAnswer`) fits in it.
const KEPT_LENGTH_BASE: usize = 320;

/// The `Content-Length` a filtered answer keeps, if any. A JSON answer of known length (the
/// usual answer to a call) keeps it: the filter holds it whole anyway, an answer it does not
/// change passes as it is, and one it shortens is padded ([`ToolsFilter::fit`]). So the client
/// gets the upstream's framing, in as few writes, instead of a chunked answer. Not kept: SSE
/// answers (streamed event by event), answers framed by `Transfer-Encoding`, lengths under the
/// room a replacement needs, over the hold limit (refused as too large), and answers to batches
/// (one replacement per id) or to requests the gateway did not read.
fn kept_length(
    ctx: &crate::proxy::ctx::RequestCtx,
    req: &pingora::http::RequestHeader,
    resp: &pingora::http::ResponseHeader,
    declared_sse: bool,
) -> Option<usize> {
    if declared_sse || resp.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    // Only an answer labelled JSON: one whose bytes turn out to be SSE is filtered event by
    // event, and its replacements could outgrow the length.
    let json = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    if !json {
        return None;
    }
    let mut values = resp.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let digits = value.as_bytes();
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let id_room = match (&req.method, ctx.mcp.as_ref()) {
        (&http::Method::GET, _) => "null".len(),
        (&http::Method::POST, Some(crate::mcp::inspect::Inspected::Single(m))) => match &m.id {
            None => "null".len(),
            Some(id) => id_room(id)?,
        },
        _ => return None,
    };
    (n >= KEPT_LENGTH_BASE + id_room && n <= super::tools_filter::HOLD_LIMIT).then_some(n)
}

/// The most bytes an id takes in a replacement, written as the request wrote it: a string at
/// worst escapes every byte (`\u00XX`); an integer has at most 20 digits and a sign. Other ids
/// (fractions and exponents, whose written length is not bounded) keep no length: `None`.
fn id_room(id: &serde_json::Value) -> Option<usize> {
    match id {
        serde_json::Value::String(s) => Some(2 + 6 * s.len()),
        serde_json::Value::Null => Some("null".len()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(21),
        _ => None,
    }
}

/// Logs and counts a refused answer.
fn refused(endpoint: &str, why: Unreadable) {
    tracing::warn!(
        endpoint,
        reason = why.as_str(),
        "tools/list answer refused: it cannot be read exactly, so it cannot be filtered"
    );
    crate::observability::metrics::metrics().response_filter_refused(endpoint, why.as_str());
}

/// Each response body chunk of a filtered answer. What cannot be read is replaced by a
/// JSON-RPC error for the request (`id` from the request; `null` on a resumed GET stream), as an
/// SSE event when the answer was labelled SSE: the status line has gone out with the upstream's
/// header by then, so the error is in the body (`data.status` 502).
pub fn on_body(
    ctx: &mut crate::proxy::ctx::RequestCtx,
    body: &mut Option<Bytes>,
    end: bool,
) -> pingora::Result<()> {
    let Some(filter) = ctx.tools_filter.as_mut() else {
        return Ok(());
    };
    let snapshot = ctx.snapshot.clone();
    let Some(ep) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return Ok(());
    };
    let keep = keeper(
        &ep.name,
        ep.policies.tools.as_ref().filter(|t| t.filter_list),
        &ep.policies.tool_registry,
        ctx.identity.as_deref(),
    );
    let declared_sse = filter.declared_sse();
    let request = &ctx.body;
    let mut first = None;
    let mut replace = |why: Unreadable| {
        refused(&ep.name, why);
        let err = GatewayError::UnreadableAnswer {
            reason: why.as_str(),
        };
        let shape = crate::mcp::jsonrpc::request_shape(&request.bytes());
        let error = err.jsonrpc_body(shape.as_ref());
        first.get_or_insert(err);
        match declared_sse {
            true => [b"event: message\ndata: ".as_slice(), &error, b"\n\n"].concat(),
            false => error,
        }
    };
    let sent = filter.chunk(body.as_ref(), end, &keep, &mut replace);
    let fitted = filter.fit(sent, end);
    if let Some(err) = first {
        ctx.error.get_or_insert(err);
    }
    match fitted {
        Ok(sent) => {
            *body = sent;
            Ok(())
        }
        Err(e) => {
            *body = None;
            tracing::warn!(endpoint = %ep.name, error = %e, "tools/list answer refused; its replacement does not fit the length already sent, so the connection is closed");
            Err(pingora::Error::explain(
                pingora::ErrorType::Custom(crate::error::UNREADABLE_ANSWER),
                e.to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::RequestShape;

    /// Every replacement fits the least kept length for its id: the longest reason, with ids
    /// written as compactly and as escaped as JSON allows.
    #[test]
    fn every_replacement_fits_a_kept_length() {
        let ids = [
            serde_json::json!(null),
            serde_json::json!(7),
            serde_json::json!(-12345678901234567i64),
            serde_json::json!(1.5e300),
            serde_json::json!(""),
            serde_json::json!("a"),
            serde_json::json!("x".repeat(200)),
        ];
        for id in ids {
            let written = serde_json::to_string(&id).unwrap_or_default();
            // The same string with every character escaped, as a client may write it.
            let escaped = match &id {
                serde_json::Value::String(s) => {
                    let mut e = String::from('"');
                    for c in s.chars() {
                        e.push_str(&format!("\\u{:04x}", c as u32));
                    }
                    e.push('"');
                    e
                }
                _ => written.clone(),
            };
            for raw in [written, escaped] {
                let shape = RequestShape::Single { id: raw.clone() };
                for why in Unreadable::ALL {
                    let body = GatewayError::UnreadableAnswer {
                        reason: why.as_str(),
                    }
                    .jsonrpc_body(Some(&shape));
                    let Some(room) = id_room(&id) else {
                        continue;
                    };
                    assert!(
                        body.len() <= KEPT_LENGTH_BASE + room,
                        "{} bytes for id {raw} ({why:?})",
                        body.len()
                    );
                }
            }
        }
    }
}
