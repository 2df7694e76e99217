//! The `tools/list` response filter (`proxy::tools_filter::ToolsFilter`, over
//! `mcp::response::filter_json` and `event_data`): the output is the same whatever the chunk
//! split, an answer it keeps whole passes byte for byte, filtering its own output changes nothing,
//! and the SSE event reader agrees with the WHATWG event-stream algorithm on every event it reads.

use crate::Input;
use bytes::Bytes;
use mcpgate::mcp::response::{event_data, Unreadable};
use mcpgate::proxy::tools_filter::ToolsFilter;
use serde_json::Value;

/// Which tools a run keeps.
#[derive(Clone, Copy, Debug)]
enum Keep {
    NoSecret,
    All,
    None,
    EvenName,
}

impl Keep {
    fn of(b: u8) -> Keep {
        [Keep::NoSecret, Keep::All, Keep::None, Keep::EvenName][usize::from(b % 4)]
    }

    fn keeps(self, tool: &Value) -> bool {
        // Keeping every tool (even one without a name) must leave the answer's bytes alone.
        if matches!(self, Keep::All) {
            return true;
        }
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return false;
        };
        match self {
            Keep::NoSecret => !name.starts_with("secret"),
            Keep::All => true,
            Keep::None => false,
            Keep::EvenName => name.len() % 2 == 0,
        }
    }
}

/// What one run sent, and the reasons of its replacements in order.
#[derive(Debug, PartialEq)]
struct Run {
    out: Vec<u8>,
    refused: Vec<Unreadable>,
}

/// Feeds `pieces` to a new filter; `trailing_end` sends the end as a separate empty call.
fn run(declared_sse: bool, keep: Keep, pieces: &[&[u8]], trailing_end: bool) -> Run {
    let mut f = ToolsFilter::new(declared_sse);
    let mut refused = Vec::new();
    let mut replace = |why: Unreadable| {
        refused.push(why);
        format!("<{why}>").into_bytes()
    };
    let keep_fn = move |t: &Value| keep.keeps(t);
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let end = !trailing_end && i + 1 == pieces.len();
        let chunk = Bytes::copy_from_slice(piece);
        if let Some(sent) = f.chunk(Some(&chunk), end, &keep_fn, &mut replace) {
            assert!(!sent.is_empty(), "an empty chunk sent");
            out.extend_from_slice(&sent);
        }
    }
    if trailing_end || pieces.is_empty() {
        if let Some(sent) = f.chunk(None, true, &keep_fn, &mut replace) {
            out.extend_from_slice(&sent);
        }
    }
    Run { out, refused }
}

/// The target: control byte, split count and offsets, then the answer.
pub fn tools_filter(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let declared_sse = flags & 1 == 1;
    let keep = Keep::of(flags >> 1);
    let trailing_end = flags & 8 == 8;
    let cuts: Vec<usize> = (0..input.byte() % 8)
        .map(|_| usize::from(input.byte()))
        .collect();
    let body = input.rest();

    let whole = run(declared_sse, keep, &[body], false);
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut rest = body;
    for cut in cuts {
        let (a, b) = rest.split_at(cut.min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    pieces.push(rest);
    let split = run(declared_sse, keep, &pieces, trailing_end);
    assert_eq!(
        whole,
        split,
        "the output depends on the chunk split {:?}",
        pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    let byte_by_byte: Vec<&[u8]> = body.chunks(1).collect();
    if body.len() <= 512 {
        let bytes = run(declared_sse, keep, &byte_by_byte, false);
        assert_eq!(
            whole, bytes,
            "the output differs when the answer comes byte by byte"
        );
    }
    if !whole.refused.is_empty() {
        return;
    }
    if matches!(keep, Keep::All) {
        assert_eq!(whole.out, body, "an answer kept whole was changed");
    }
    let again = run(declared_sse, keep, &[&whole.out], false);
    assert!(
        again.refused.is_empty(),
        "the filter's own output refused: {:?}",
        again.refused
    );
    assert_eq!(
        again.out, whole.out,
        "filtering the filtered output changed it"
    );
}

/// The lines of an SSE text, each with its ending (CRLF, LF or a lone CR end a line).
fn lines(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        let n = match (b[i], b.get(i + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\r' | b'\n', _) => 1,
            _ => 0,
        };
        if n == 0 {
            i += 1;
        } else {
            i += n;
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < b.len() {
        out.push(&text[start..]);
    }
    out
}

/// The target: one event's lines, read by mcpgate and by the WHATWG algorithm.
pub fn sse_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = lines(&text);
    let got = event_data(&lines);
    // The reference: https://html.spec.whatwg.org/multipage/server-sent-events.html
    let mut buffer: Option<String> = None;
    let mut first = None;
    let mut unknown = false;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(c) => (
                &line[..c],
                line[c + 1..].strip_prefix(' ').unwrap_or(&line[c + 1..]),
            ),
            None => (line, ""),
        };
        match field {
            "data" => {
                let b = buffer.get_or_insert_with(String::new);
                first.get_or_insert(i);
                b.push_str(value);
                b.push('\n');
            }
            "event" | "id" | "retry" => {}
            _ => unknown = true,
        }
    }
    match got {
        Err(Unreadable::SseSyntax) => assert!(unknown, "refused an event the standard reads"),
        Err(other) => panic!("an event refused as {other}"),
        Ok(read) => {
            assert!(!unknown, "read an event holding a field it does not know");
            let want = buffer.map(|mut b| {
                b.pop();
                (b, first.unwrap_or_default())
            });
            assert_eq!(read, want, "event data");
        }
    }
}
