//! A server's SSE stream read event by event (across chunk boundaries, with the tools filter's
//! SSE parser), each event rewritten for the client: the `id` of a JSON-RPC request the server
//! sends (sampling, elicitation, `roots/list`) is replaced by a sealed one naming the server,
//! and the server's own event `id:` is taken out, for the caller to replace with a sealed
//! composite. Everything else of an event passes as it came (line endings made `\n`).

use crate::mcp::response;
use crate::proxy::tools_filter::{event_end, sse_lines};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// The most of one event held (larger ones pass unread).
const HOLD_LIMIT: usize = crate::proxy::tools_filter::HOLD_LIMIT;

/// Splits a byte stream into complete SSE events.
#[derive(Debug, Default)]
pub struct Splitter {
    held: BytesMut,
}

impl Splitter {
    /// Takes a chunk; returns the events it completes (each with its blank line).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.held.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = event_end(&self.held) {
            out.push(self.held.split_to(end).freeze());
        }
        if self.held.len() > HOLD_LIMIT {
            out.push(self.held.split().freeze());
        }
        out
    }

    /// The rest at the end of the stream (an unterminated last event), if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }
}

/// The state of one routed SSE answer (`stream_relay.rs`): its events so far, its server, and
/// the last event id it sent.
#[derive(Debug)]
pub struct RelayEvents {
    /// The answer split into events.
    pub split: Splitter,
    /// The server's alias.
    pub alias: String,
    /// The session binding and the server's last event id.
    pub last: crate::mcp::federation::ids::EventId,
}

/// One event rewritten for the client.
#[derive(Debug, PartialEq)]
pub enum Rewritten {
    /// The event's lines, each ended by `\n`, without its `id:` field and its blank line; the
    /// server's event id, if it had one; and the server request it carries, if any (its method).
    Event {
        lines: String,
        id: Option<String>,
        request: Option<String>,
    },
    /// An event that cannot be read (not UTF-8, not SSE): passed unchanged.
    Raw(Bytes),
}

/// Rewrites one event; `seal` makes the client's id of a server request from the server's id.
pub fn rewrite(event: &Bytes, seal: &mut dyn FnMut(&Value) -> Option<String>) -> Rewritten {
    let Ok(text) = std::str::from_utf8(event) else {
        return Rewritten::Raw(event.clone());
    };
    let lines = sse_lines(text);
    let Ok(data) = response::event_data(&lines) else {
        return Rewritten::Raw(event.clone());
    };
    let mut request = None;
    let replaced = data.and_then(|(data, first)| {
        let mut msg: Value = serde_json::from_str(&data).ok()?;
        let method = msg.get("method")?.as_str()?.to_string();
        let own = msg.get("id").filter(|id| !id.is_null())?.clone();
        let sealed = seal(&own)?;
        msg["id"] = Value::String(sealed);
        request = Some(method);
        Some((serde_json::to_string(&msg).ok()?, first))
    });
    let mut out = String::with_capacity(event.len() + 128);
    let mut id = None;
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.is_empty() {
            continue;
        }
        let field = bare.split_once(':').map_or(bare, |(f, _)| f);
        match (field, &replaced) {
            ("id", _) => {
                let v = bare.get(2..).unwrap_or("");
                let v = v.strip_prefix(':').unwrap_or(v);
                id = Some(v.strip_prefix(' ').unwrap_or(v).to_string());
            }
            ("data", Some((json, first))) => {
                if i == *first {
                    out.push_str("data: ");
                    out.push_str(json);
                    out.push('\n');
                }
            }
            _ => {
                out.push_str(bare);
                out.push('\n');
            }
        }
    }
    Rewritten::Event {
        lines: out,
        id,
        request,
    }
}

/// An event's bytes for the client: `lines`, then `id: {id}` when given, then the blank line.
pub fn frame(lines: &str, id: Option<&str>) -> Bytes {
    let mut out = String::with_capacity(lines.len() + id.map_or(0, str::len) + 8);
    out.push_str(lines);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seal(v: &Value) -> Option<String> {
        Some(format!("sealed-{v}"))
    }

    #[test]
    fn events_split_across_any_chunks() {
        let stream =
            b"id: 1\nevent: message\ndata: {\"a\":1}\n\n: keep\n\nid: 2\r\ndata: x\r\n\r\n";
        for cut in 0..stream.len() {
            let mut s = Splitter::default();
            let mut events = s.push(&stream[..cut]);
            events.extend(s.push(&stream[cut..]));
            assert_eq!(events.len(), 3, "cut at {cut}");
            assert_eq!(s.finish(), None);
            assert_eq!(events.concat(), stream.to_vec());
        }
    }

    #[test]
    fn a_server_request_gets_a_sealed_id_and_the_event_id_is_taken_out() {
        let ev = Bytes::from_static(
            b"event: message\r\nid: s1::4\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"sampling/createMessage\",\"params\":{}}\r\n\r\n",
        );
        let Rewritten::Event { lines, id, request } = rewrite(&ev, &mut seal) else {
            panic!("readable");
        };
        assert_eq!(id.as_deref(), Some("s1::4"));
        assert_eq!(request.as_deref(), Some("sampling/createMessage"));
        let data: Value = serde_json::from_str(
            lines
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or(""),
        )
        .unwrap_or(Value::Null);
        assert_eq!(data["id"], json!("sealed-3"));
        assert_eq!(data["method"], json!("sampling/createMessage"));
        assert!(lines.starts_with("event: message\n"), "{lines}");
        assert!(frame(&lines, Some("E")).ends_with(b"\nid: E\n\n"));
    }

    #[test]
    fn notifications_responses_and_unreadable_events_keep_their_data() {
        for data in [
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
            "not json",
        ] {
            let ev = Bytes::from(format!("data: {data}\n\n"));
            let r = rewrite(&ev, &mut seal);
            assert_eq!(
                r,
                Rewritten::Event {
                    lines: format!("data: {data}\n"),
                    id: None,
                    request: None
                }
            );
        }
        let bad = Bytes::from_static(b"Data: x\n\n");
        assert_eq!(rewrite(&bad, &mut seal), Rewritten::Raw(bad.clone()));
        let multi =
            Bytes::from_static(b"data: {\"id\":1,\ndata: \"method\":\"roots/list\"}\nid\n\n");
        let Rewritten::Event { lines, id, request } = rewrite(&multi, &mut seal) else {
            panic!("readable");
        };
        assert_eq!(
            (id.as_deref(), request.as_deref()),
            (Some(""), Some("roots/list"))
        );
        assert_eq!(lines.matches("data:").count(), 1, "{lines}");
    }
}
