//! Filtering `tools/list` answers so clients do not see tools they may not call, JSON or SSE,
//! with every other byte of the response kept: SSE events that are not a `tools/list` result pass
//! unchanged, as do the other members of the result (kept in their order, raw). The answer is
//! held only as long as needed: a JSON body until its end (bounded), an SSE stream one event at
//! a time.

use crate::mcp::tool_registry::ToolRegistry;
use crate::policy::auth::identity::Identity;
use crate::policy::tools::ToolPolicy;
use bytes::{Bytes, BytesMut};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::fmt;

/// The most of a JSON answer (or one SSE event) held for filtering.
pub const HOLD_LIMIT: usize = 8 << 20;

/// How the answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document.
    Json,
    /// An SSE stream.
    Sse,
}

/// The state of one filtered answer.
#[derive(Debug)]
pub struct ToolsFilter {
    framing: Framing,
    held: BytesMut,
}

/// Why filtering stopped (the answer is then cut: failing closed).
#[derive(Debug, thiserror::Error)]
#[error("tools/list answer larger than {HOLD_LIMIT} bytes cannot be filtered")]
pub struct TooLarge;

impl ToolsFilter {
    /// A filter for an answer framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        ToolsFilter {
            framing,
            held: BytesMut::new(),
        }
    }

    /// Takes a chunk of the answer; returns what can be sent now.
    pub fn chunk(
        &mut self,
        chunk: Option<&Bytes>,
        end: bool,
        keep: &dyn Fn(&RawValue) -> bool,
    ) -> Result<Option<Bytes>, TooLarge> {
        if let Some(c) = chunk {
            self.held.extend_from_slice(c);
        }
        if self.held.len() > HOLD_LIMIT {
            return Err(TooLarge);
        }
        match self.framing {
            Framing::Json if end => {
                let whole = self.held.split().freeze();
                Ok(Some(match filter_json(&whole, keep) {
                    Some(v) => Bytes::from(v),
                    None => whole,
                }))
            }
            Framing::Json => Ok(None),
            Framing::Sse => {
                let mut out = BytesMut::new();
                while let Some(end_at) = event_end(&self.held) {
                    let event = self.held.split_to(end_at).freeze();
                    match filter_event(&event, keep) {
                        Some(v) => out.extend_from_slice(&v),
                        None => out.extend_from_slice(&event),
                    }
                }
                if end && !self.held.is_empty() {
                    let rest = self.held.split().freeze();
                    match filter_event(&rest, keep) {
                        Some(v) => out.extend_from_slice(&v),
                        None => out.extend_from_slice(&rest),
                    }
                }
                Ok((!out.is_empty()).then(|| out.freeze()))
            }
        }
    }
}

/// Whether a tool of a `tools/list` answer is shown: it is recorded (name, definition hash),
/// then kept when the tool policy allows it and pinning does not hide it. A tool without a
/// readable name is not shown: it could not be allowed by name.
pub fn keeper<'a>(
    endpoint: &'a str,
    policy: Option<&'a ToolPolicy>,
    registry: &'a ToolRegistry,
    identity: Option<&'a Identity>,
) -> impl Fn(&RawValue) -> bool + 'a {
    move |raw| {
        let Ok(tool) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
            return false;
        };
        let Some(name) = tool.get("name").and_then(|n| n.as_str()) else {
            return false;
        };
        let shown = registry.observe(endpoint, &tool);
        shown && policy.is_none_or(|p| p.allows(name, identity))
    }
}

/// Index just past the blank line ending the first complete SSE event.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        // A line ends with \n, \r\n or \r; an empty line ends the event.
        let line_start = i;
        while i < buf.len() && buf[i] != b'\n' && buf[i] != b'\r' {
            i += 1;
        }
        let empty = i == line_start;
        match buf.get(i) {
            None => return None,
            Some(b'\r') if i + 1 == buf.len() => return None, // a \r may be half of \r\n
            Some(_) => i += line_break(buf, i),
        }
        if empty {
            return Some(i);
        }
    }
    None
}

/// A filtered event, or `None` when it carries no `tools/list` result to change.
fn filter_event(event: &[u8], keep: &dyn Fn(&RawValue) -> bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(event).ok()?;
    let lines = sse_lines(text);
    let mut data = String::new();
    let mut first_data = None;
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = bare.strip_prefix("data:") {
            first_data.get_or_insert(i);
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    let first_data = first_data?;
    let filtered = filter_json(data.as_bytes(), keep)?;
    let filtered = String::from_utf8(filtered).ok()?;
    let mut out = String::with_capacity(event.len());
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.starts_with("data:") {
            if i == first_data {
                // One `data:` line per line of the JSON (a pretty-printed answer spans several).
                let ending = &line[bare.len()..];
                for json_line in filtered.split('\n') {
                    out.push_str("data: ");
                    out.push_str(json_line.trim_end_matches('\r'));
                    out.push_str(if ending.is_empty() { "\n" } else { ending });
                }
            }
        } else {
            out.push_str(line);
        }
    }
    Some(out.into_bytes())
}

/// The length of the line break at `i`: 2 for `\r\n`, 1 for `\n` or `\r`, 0 for none.
fn line_break(buf: &[u8], i: usize) -> usize {
    match (buf.get(i), buf.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\r' | b'\n'), _) => 1,
        _ => 0,
    }
}

/// The lines of an SSE event, each with its ending: `\r\n`, `\n` or a lone `\r` (all three end
/// a line for an SSE client, so all three must end one here, or a `data:` line would be missed).
fn sse_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match line_break(bytes, i) {
            0 => i += 1,
            n => {
                i += n;
                lines.push(&text[start..i]);
                start = i;
            }
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// A JSON object's members in their order, values raw.
struct Ordered(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    fn write(&self, replace: (&str, &str), out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(k.as_str()).to_string());
            out.push(':');
            out.push_str(if k == replace.0 { replace.1 } else { v.get() });
        }
        out.push('}');
    }
}

/// A JSON-RPC answer (or batch of answers) with the tools `keep` refuses removed from every
/// `result.tools`; `None` when nothing changes.
pub fn filter_json(body: &[u8], keep: &dyn Fn(&RawValue) -> bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
        let mut changed = false;
        let parts: Vec<String> = items
            .iter()
            .map(|item| match filter_message(item.get(), keep) {
                Some(v) => {
                    changed = true;
                    v
                }
                None => item.get().to_string(),
            })
            .collect();
        return changed.then(|| format!("[{}]", parts.join(",")).into_bytes());
    }
    filter_message(text, keep).map(String::into_bytes)
}

fn filter_message(text: &str, keep: &dyn Fn(&RawValue) -> bool) -> Option<String> {
    let message: Ordered = serde_json::from_str(text).ok()?;
    let result: Ordered = serde_json::from_str(message.get("result")?.get()).ok()?;
    let tools: Vec<Box<RawValue>> = serde_json::from_str(result.get("tools")?.get()).ok()?;
    let kept: Vec<&RawValue> = tools.iter().map(|t| &**t).filter(|t| keep(t)).collect();
    if kept.len() == tools.len() {
        return None;
    }
    let list = format!(
        "[{}]",
        kept.iter().map(|t| t.get()).collect::<Vec<_>>().join(",")
    );
    let mut new_result = String::new();
    result.write(("tools", &list), &mut new_result);
    let mut out = String::new();
    message.write(("result", &new_result), &mut out);
    Some(out)
}

/// Whether the answer to this request can carry a `tools/list` result: a POST whose inspected
/// body lists tools, or, on an endpoint that inspects, a GET that resumes a stream
/// (`Last-Event-ID`), since the upstream then replays the events of an earlier answer, which may
/// be a tool list.
fn may_list_tools(ctx: &crate::proxy::ctx::RequestCtx, req: &pingora::http::RequestHeader) -> bool {
    ctx.lists_tools()
        || (req.method == http::Method::GET
            && req.headers.contains_key("last-event-id")
            && ctx
                .endpoint()
                .is_some_and(|ep| ep.policies.inspection.is_some()))
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

/// At the response header: starts filtering a successful answer that may list tools (the
/// length changes, so `Content-Length` goes; HTTP/1.1 answers are chunked). An answer that is
/// compressed anyway cannot be filtered, so it is refused (502) rather than passed whole.
pub fn on_response_header(
    ctx: &mut crate::proxy::ctx::RequestCtx,
    req: &pingora::http::RequestHeader,
    resp: &mut pingora::http::ResponseHeader,
    h2: bool,
) -> pingora::Result<()> {
    if resp.status != http::StatusCode::OK || !may_list_tools(ctx, req) {
        return Ok(());
    }
    let encoding = resp.headers.get(http::header::CONTENT_ENCODING).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    if encoding.is_some_and(|e| !e.is_empty() && e != "identity") {
        tracing::warn!("tools/list answer refused: it is compressed, so it cannot be filtered");
        return Err(pingora::Error::explain(
            pingora::ErrorType::InvalidHTTPHeader,
            "compressed tools/list answer",
        )
        .into_up());
    }
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let framing = if content_type.starts_with("text/event-stream") {
        Framing::Sse
    } else if content_type.contains("json") {
        Framing::Json
    } else {
        return Ok(());
    };
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if !h2 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    ctx.tools_filter = Some(ToolsFilter::new(framing));
    Ok(())
}

/// Each response body chunk of a filtered answer.
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
    match filter.chunk(body.as_ref(), end, &keep) {
        Ok(out) => {
            *body = out;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "tools/list answer cut: too large to filter");
            pingora::Error::e_explain(pingora::ErrorType::InternalError, "tools/list too large")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_secret(t: &RawValue) -> bool {
        !t.get().contains("\"secret")
    }

    fn all(_: &RawValue) -> bool {
        true
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"secret_x"},{"name":"add"}],"nextCursor":"c"}}"#;

    #[test]
    fn json_answers_keep_order_and_other_members() {
        let out = filter_json(LIST.as_bytes(), &no_secret).unwrap_or_default();
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"add"}],"nextCursor":"c"}}"#
        );
        assert_eq!(filter_json(LIST.as_bytes(), &all), None, "unchanged");
        assert_eq!(
            filter_json(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &no_secret),
            None
        );
        let batch = format!(r#"[{LIST},{{"jsonrpc":"2.0","id":4,"result":{{}}}}]"#);
        let out = String::from_utf8(filter_json(batch.as_bytes(), &no_secret).unwrap_or_default())
            .unwrap_or_default();
        assert!(
            !out.contains("secret") && out.contains(r#""id":4"#),
            "{out}"
        );
    }

    #[test]
    fn sse_events_split_across_chunks_are_filtered_one_by_one() {
        let stream = format!(
            ": primed\n\nid: 1\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nid: 2\nevent: message\ndata: {LIST}\n\n"
        );
        let mut f = ToolsFilter::new(Framing::Sse);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            if let Ok(Some(b)) = f.chunk(Some(&Bytes::copy_from_slice(piece)), false, &no_secret) {
                out.extend_from_slice(&b);
            }
        }
        if let Ok(Some(b)) = f.chunk(None, true, &no_secret) {
            out.extend_from_slice(&b);
        }
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(out.starts_with(": primed\n\nid: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nid: 2\nevent: message\ndata: {"), "{out}");
        assert!(
            !out.contains("secret_x") && out.contains("\"add\"") && out.ends_with("}\n\n"),
            "{out}"
        );
    }

    #[test]
    fn events_with_lone_cr_line_endings_are_filtered_too() {
        // An SSE client ends a line at a lone \r as well: such an event must not pass whole.
        let event = format!("id: 2\revent: message\rdata: {LIST}\r\r");
        let mut f = ToolsFilter::new(Framing::Sse);
        let out = f
            .chunk(Some(&Bytes::from(event)), true, &no_secret)
            .ok()
            .flatten()
            .unwrap_or_default();
        let out = String::from_utf8(out.to_vec()).unwrap_or_default();
        assert!(
            !out.contains("secret_x") && out.contains("\"add\""),
            "{out:?}"
        );
        assert!(
            out.starts_with("id: 2\revent: message\rdata: {") && out.ends_with("}\r\r"),
            "{out:?}"
        );
        assert_eq!(
            sse_lines("a\r\nb\nc\rd"),
            ["a\r\n", "b\n", "c\r", "d"],
            "every line keeps its own ending"
        );
    }

    #[test]
    fn pretty_printed_answers_over_several_data_lines_stay_valid_sse() {
        let pretty = "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 3,\n  \"result\": {\"tools\": [\n    {\"name\": \"echo\"},\n    {\"name\": \"secret_x\"}\n  ]}\n}";
        let event: String = pretty
            .lines()
            .map(|l| format!("data: {l}\r\n"))
            .collect::<String>()
            + "\r\n";
        let out = filter_event(event.as_bytes(), &no_secret).unwrap_or_default();
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(
            out.lines().all(|l| l.is_empty() || l.starts_with("data: ")),
            "{out}"
        );
        let data: String = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect::<Vec<_>>()
            .join("\n");
        let v: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        assert_eq!(
            v["result"]["tools"],
            serde_json::json!([{"name": "echo"}]),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn json_is_held_to_the_end_and_bounded() {
        let mut f = ToolsFilter::new(Framing::Json);
        let (a, b) = LIST.split_at(20);
        assert!(matches!(
            f.chunk(Some(&Bytes::from(a.to_string())), false, &no_secret),
            Ok(None)
        ));
        let out = f.chunk(Some(&Bytes::from(b.to_string())), true, &no_secret);
        assert!(matches!(out, Ok(Some(ref v)) if !v.windows(6).any(|w| w == b"secret")));
        let mut g = ToolsFilter::new(Framing::Json);
        let big = Bytes::from(vec![b' '; HOLD_LIMIT + 1]);
        assert!(g.chunk(Some(&big), false, &no_secret).is_err());
    }
}
