//! Filtering `tools/list` answers so clients do not see tools they may not call, with every
//! other byte of the response kept: SSE events that are not a `tools/list` result pass
//! unchanged, as do the other members of the result (kept in their order, raw). The framing is
//! decided from the bytes, not from `Content-Type` (a client may read them either way): after an
//! optional UTF-8 BOM and JSON whitespace, `{` or `[` is one JSON document, anything else an SSE
//! stream. The answer is held only as long as needed: a JSON body until its end (bounded), an
//! SSE stream one event at a time. What cannot be read exactly (see [`crate::mcp::response`])
//! is refused: replaced by a JSON-RPC error for the request, never passed on.

use crate::mcp::response::{self, Unreadable};
use crate::mcp::tool_registry::ToolRegistry;
use crate::policy::auth::identity::Identity;
use crate::policy::tools::ToolPolicy;
use bytes::{Bytes, BytesMut};

/// The most of a JSON answer (or one SSE event) held for filtering.
pub const HOLD_LIMIT: usize = 8 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How the answer is framed, as read from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but a BOM and whitespace seen yet.
    Sniff,
    /// One JSON document.
    Json,
    /// An SSE stream.
    Sse,
    /// Refused: nothing more of the upstream's answer is passed on.
    Refused,
}

/// The state of one filtered answer.
#[derive(Debug)]
pub struct ToolsFilter {
    state: State,
    held: BytesMut,
    /// The answer was labelled `text/event-stream`: a replacement is sent as an SSE event.
    declared_sse: bool,
    /// The upstream's `Content-Length`, kept for the client (see [`ToolsFilter::fit`]).
    length: Option<Length>,
}

/// A kept `Content-Length`: what it declares, and what has been sent of it.
#[derive(Debug)]
struct Length {
    declared: usize,
    sent: usize,
}

/// What the filter sent came to more than the `Content-Length` already sent to the client: a
/// replacement longer than the answer it replaces (an answer kept at its length is at least
/// [`crate::proxy::tools_hooks`]'s minimum, which fits every replacement for an ordinary id).
/// The response cannot be completed; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the filtered answer ({sent} bytes) is longer than its Content-Length ({declared})")]
pub struct LengthExceeded {
    /// Bytes the filter had to send.
    pub sent: usize,
    /// The declared length.
    pub declared: usize,
}

/// Makes the bytes that replace an unreadable answer (or event), and logs and counts it.
pub type Replace<'a> = dyn FnMut(Unreadable) -> Vec<u8> + 'a;

impl ToolsFilter {
    /// A filter for an answer whose header says SSE (`declared_sse`) or anything else.
    pub fn new(declared_sse: bool) -> Self {
        ToolsFilter {
            state: State::Sniff,
            held: BytesMut::new(),
            declared_sse,
            length: None,
        }
    }

    /// Keeps the answer at `declared` bytes, its `Content-Length`, instead of re-framing it
    /// (chunked): see [`ToolsFilter::fit`].
    pub fn with_length(mut self, declared: usize) -> Self {
        self.length = Some(Length { declared, sent: 0 });
        self
    }

    /// What [`ToolsFilter::chunk`] returned, fitted to a kept `Content-Length`: counted, and at the
    /// end padded with line feeds up to the declared length. JSON allows whitespace after its
    /// value and SSE ignores blank lines after an event, so the padding changes nothing a client
    /// reads; an answer passed unchanged (the usual case) needs none. More than the declared
    /// length is an error (the client has the length already). Without a kept length, `sent`
    /// passes as it is.
    pub fn fit(&mut self, sent: Option<Bytes>, end: bool) -> Result<Option<Bytes>, LengthExceeded> {
        let Some(length) = self.length.as_mut() else {
            return Ok(sent);
        };
        length.sent += sent.as_ref().map_or(0, Bytes::len);
        if length.sent > length.declared {
            let err = LengthExceeded {
                sent: length.sent,
                declared: length.declared,
            };
            self.state = State::Refused;
            self.held.clear();
            return Err(err);
        }
        if !end || length.sent == length.declared {
            return Ok(sent);
        }
        let pad = length.declared - length.sent;
        length.sent = length.declared;
        let mut out = BytesMut::with_capacity(sent.as_ref().map_or(0, Bytes::len) + pad);
        if let Some(s) = &sent {
            out.extend_from_slice(s);
        }
        out.resize(out.len() + pad, b'\n');
        Ok(Some(out.freeze()))
    }

    /// Whether a replacement must be framed as an SSE event.
    pub fn declared_sse(&self) -> bool {
        self.declared_sse
    }

    /// Takes a chunk of the answer; returns what can be sent now. A JSON answer that cannot be
    /// read is replaced whole by `replace`'s bytes; in an SSE stream, each event that cannot be
    /// read is, and the events after it are read in turn. An answer or event too large to hold
    /// is replaced and the rest of the answer dropped.
    pub fn chunk(
        &mut self,
        chunk: Option<&Bytes>,
        end: bool,
        keep: &dyn Fn(&serde_json::Value) -> bool,
        replace: &mut Replace<'_>,
    ) -> Option<Bytes> {
        if self.state == State::Refused {
            return None;
        }
        if let Some(c) = chunk {
            self.held.extend_from_slice(c);
        }
        let mut out = BytesMut::new();
        if let Err(why) = self.read(end, keep, replace, &mut out) {
            self.state = State::Refused;
            self.held.clear();
            out.extend_from_slice(&replace(why));
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn read(
        &mut self,
        end: bool,
        keep: &dyn Fn(&serde_json::Value) -> bool,
        replace: &mut Replace<'_>,
        out: &mut BytesMut,
    ) -> Result<(), Unreadable> {
        if self.state == State::Sniff {
            let bom = if self.held.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            let first = self.held[bom..]
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            let partial_bom = bom == 0 && !self.held.is_empty() && BOM.starts_with(&self.held);
            match first {
                _ if partial_bom && !end => {}
                Some(b'{' | b'[') => self.state = State::Json,
                Some(_) => {
                    // An SSE decoder drops one leading BOM: it is passed on, and not parsed.
                    out.extend_from_slice(&self.held.split_to(bom));
                    self.state = State::Sse;
                }
                // Nothing but whitespace: nothing that could list a tool.
                None if end => out.extend_from_slice(&self.held.split()),
                None => {}
            }
        }
        // An SSE stream is bounded per event (below), so that the same events pass or are
        // refused whatever chunks they arrive in.
        if self.state != State::Sse && self.held.len() > HOLD_LIMIT {
            return Err(Unreadable::TooLarge);
        }
        match self.state {
            State::Json if end => {
                let whole = self.held.split().freeze();
                let bom = if whole.starts_with(BOM) { BOM.len() } else { 0 };
                match response::filter_json(&whole[bom..], keep)? {
                    Some(v) => {
                        out.extend_from_slice(&whole[..bom]);
                        out.extend_from_slice(&v);
                    }
                    None => out.extend_from_slice(&whole),
                }
            }
            State::Sse => {
                while let Some(end_at) = event_end(&self.held) {
                    if end_at > HOLD_LIMIT {
                        return Err(Unreadable::TooLarge);
                    }
                    let event = self.held.split_to(end_at).freeze();
                    pass_event(&event, keep, replace, out);
                }
                if self.held.len() > HOLD_LIMIT {
                    return Err(Unreadable::TooLarge);
                }
                if end && !self.held.is_empty() {
                    let rest = self.held.split().freeze();
                    pass_event(&rest, keep, replace, out);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Appends `event` to `out`: filtered when it carries a `tools/list` result, replaced when it
/// cannot be read.
fn pass_event(
    event: &Bytes,
    keep: &dyn Fn(&serde_json::Value) -> bool,
    replace: &mut Replace<'_>,
    out: &mut BytesMut,
) {
    match filter_event(event, keep) {
        Ok(Some(v)) => out.extend_from_slice(&v),
        Ok(None) => out.extend_from_slice(event),
        Err(why) => out.extend_from_slice(&replace(why)),
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
) -> impl Fn(&serde_json::Value) -> bool + 'a {
    move |tool| {
        let Some(name) = tool.get("name").and_then(|n| n.as_str()) else {
            return false;
        };
        let shown = registry.observe(endpoint, tool);
        shown && policy.is_none_or(|p| p.allows(name, identity))
    }
}

/// Index just past the blank line ending the first complete SSE event.
pub(crate) fn event_end(buf: &[u8]) -> Option<usize> {
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

/// A filtered event, `None` when it carries no `tools/list` result to change, or why it cannot
/// be read. Every event's data is read (whatever its `event:` type): empty, or JSON-RPC.
fn filter_event(
    event: &[u8],
    keep: &dyn Fn(&serde_json::Value) -> bool,
) -> Result<Option<Vec<u8>>, Unreadable> {
    let text = std::str::from_utf8(event).map_err(|_| Unreadable::NotUtf8)?;
    let lines = sse_lines(text);
    let Some((data, first_data)) = response::event_data(&lines)? else {
        return Ok(None);
    };
    if data.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
        return Ok(None);
    }
    let Some(filtered) = response::filter_json(data.as_bytes(), keep)? else {
        return Ok(None);
    };
    let filtered = String::from_utf8(filtered).map_err(|_| Unreadable::NotUtf8)?;
    let mut out = String::with_capacity(event.len());
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_data_line(line) {
            if i == first_data {
                // One `data:` line per line of the JSON (a pretty-printed answer spans several),
                // each ended as the first data line was, but not by a lone `\r` before a line
                // that starts with `\n`: the two would read as one `\r\n` break, and a blank
                // line ending the event would be lost.
                let next_starts_with_lf = lines[i + 1..]
                    .iter()
                    .find(|l| !is_data_line(l))
                    .is_some_and(|l| l.starts_with('\n'));
                let ending = match &line[bare.len()..] {
                    "" => "\n",
                    "\r" if next_starts_with_lf => "\n",
                    ending => ending,
                };
                for json_line in filtered.split('\n') {
                    out.push_str("data: ");
                    out.push_str(json_line.trim_end_matches('\r'));
                    out.push_str(ending);
                }
            }
        } else {
            out.push_str(line);
        }
    }
    Ok(Some(out.into_bytes()))
}

/// Whether an SSE line (with its line ending) is a `data` field.
fn is_data_line(line: &str) -> bool {
    let bare = line.trim_end_matches(['\n', '\r']);
    bare.starts_with("data") && bare[4..].chars().next().is_none_or(|c| c == ':')
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
pub(crate) fn sse_lines(text: &str) -> Vec<&str> {
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

#[cfg(test)]
#[path = "tools_filter_tests.rs"]
mod tests;
