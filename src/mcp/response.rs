//! Reading an upstream's answer the way the strictest reading of it and the most lenient one
//! agree, for the `tools/list` filter: a JSON-RPC message (or batch) that is exactly one JSON
//! value, no duplicated member names at any depth (names that differ only in letter case, with
//! Unicode simple folding, count as duplicates, as in requests), the MCP member names spelled
//! exactly at the levels SDKs decode into structs (message, result, tool), and, in an SSE
//! stream, only the four SSE fields. Anything else is [`Unreadable`]: the filter then refuses
//! the answer instead of passing what it could not check.

use super::inspect::fold;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Why an answer could not be read (bounded: metric label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Not UTF-8.
    NotUtf8,
    /// Not one JSON value (syntax, trailing bytes, a BOM inside, too deep).
    NotJson,
    /// An object holds a member name twice (exactly, or in another case).
    DuplicateMember,
    /// A member name of the protocol spelled in another case (`"Result"`, `"name"` with `ſ`).
    MemberCase,
    /// JSON, but not a JSON-RPC message (or a `tools` list that is not a list).
    NotJsonRpc,
    /// An SSE line that is not a comment or one of `data`, `event`, `id`, `retry`.
    SseSyntax,
    /// Larger than the filter holds.
    TooLarge,
    /// Compressed (`Content-Encoding`), so its bytes cannot be read.
    Compressed,
    /// A redirect: a client that follows it would fetch the answer around the gateway.
    Redirect,
}

impl Unreadable {
    /// Every value, for tests and documentation.
    pub const ALL: [Unreadable; 9] = [
        Unreadable::NotUtf8,
        Unreadable::NotJson,
        Unreadable::DuplicateMember,
        Unreadable::MemberCase,
        Unreadable::NotJsonRpc,
        Unreadable::SseSyntax,
        Unreadable::TooLarge,
        Unreadable::Compressed,
        Unreadable::Redirect,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Unreadable::NotUtf8 => "not_utf8",
            Unreadable::NotJson => "not_json",
            Unreadable::DuplicateMember => "duplicate_member",
            Unreadable::MemberCase => "member_case",
            Unreadable::NotJsonRpc => "not_jsonrpc",
            Unreadable::SseSyntax => "sse_syntax",
            Unreadable::TooLarge => "too_large",
            Unreadable::Compressed => "compressed",
            Unreadable::Redirect => "redirect",
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Member names of a JSON-RPC message.
const MESSAGE: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
/// Member names of a `tools/list` result.
const RESULT: &[&str] = &["tools", "nextCursor", "_meta"];
/// Member names of a tool.
const TOOL: &[&str] = &[
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
    "icons",
    "execution",
    "_meta",
];

/// A JSON-RPC answer (or batch) with the tools `keep` refuses removed from every
/// `result.tools`: `Ok(None)` when nothing changes, or why it cannot be read. Leading and
/// trailing JSON whitespace is fine; anything else around the one value is not.
pub fn filter_json(
    body: &[u8],
    keep: &dyn Fn(&serde_json::Value) -> bool,
) -> Result<Option<Vec<u8>>, Unreadable> {
    let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotUtf8)?;
    check_json(text)?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| Unreadable::NotJson)?;
        if items.is_empty() {
            return Err(Unreadable::NotJsonRpc);
        }
        let mut changed = false;
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            match filter_message(item.get(), keep)? {
                Some(v) => {
                    changed = true;
                    parts.push(v);
                }
                None => parts.push(item.get().to_string()),
            }
        }
        return Ok(changed.then(|| format!("[{}]", parts.join(",")).into_bytes()));
    }
    if !trimmed.starts_with('{') {
        return Err(Unreadable::NotJsonRpc);
    }
    // The filtered message is written without the surrounding whitespace.
    Ok(filter_message(text.trim_matches([' ', '\t', '\n', '\r']), keep)?.map(String::into_bytes))
}

/// One message, checked; `Ok(None)` when it keeps every tool (or lists none).
fn filter_message(
    text: &str,
    keep: &dyn Fn(&serde_json::Value) -> bool,
) -> Result<Option<String>, Unreadable> {
    let message: Ordered = serde_json::from_str(text).map_err(|_| Unreadable::NotJsonRpc)?;
    exact_names(&message, MESSAGE)?;
    let version = message.get("jsonrpc").map(|v| v.get());
    if version != Some("\"2.0\"") {
        return Err(Unreadable::NotJsonRpc);
    }
    let (method, result, error) = (
        message.get("method"),
        message.get("result"),
        message.get("error"),
    );
    // Exactly one of a request, a result or an error: a message that is two at once could be
    // read as either.
    if usize::from(method.is_some()) + usize::from(result.is_some()) + usize::from(error.is_some())
        != 1
    {
        return Err(Unreadable::NotJsonRpc);
    }
    if (result.is_some() || error.is_some()) && message.get("id").is_none() {
        return Err(Unreadable::NotJsonRpc);
    }
    let Some(result) = result else {
        return Ok(None);
    };
    if !result.get().starts_with('{') {
        return Ok(None);
    }
    let result: Ordered = serde_json::from_str(result.get()).map_err(|_| Unreadable::NotJsonRpc)?;
    exact_names(&result, RESULT)?;
    let Some(tools) = result.get("tools") else {
        return Ok(None);
    };
    let tools: Vec<&RawValue> =
        serde_json::from_str(tools.get()).map_err(|_| Unreadable::NotJsonRpc)?;
    let mut kept = Vec::with_capacity(tools.len());
    for raw in tools.iter() {
        let tool: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(|_| Unreadable::NotJson)?;
        if let Some(obj) = tool.as_object() {
            for key in obj.keys() {
                other_case(key, TOOL)?;
            }
        }
        if keep(&tool) {
            kept.push(raw.get());
        }
    }
    if kept.len() == tools.len() {
        return Ok(None);
    }
    let list = format!("[{}]", kept.join(","));
    let mut new_result = String::new();
    result.write(("tools", &list), &mut new_result);
    let mut out = String::new();
    message.write(("result", &new_result), &mut out);
    Ok(Some(out))
}

/// Refuses a member of `obj` whose name folds to one of `names` without being spelled exactly.
fn exact_names(obj: &Ordered, names: &[&str]) -> Result<(), Unreadable> {
    obj.0.iter().try_for_each(|(k, _)| other_case(k, names))
}

fn other_case(key: &str, names: &[&str]) -> Result<(), Unreadable> {
    if names.contains(&key) {
        return Ok(());
    }
    let folded = fold(key);
    match names.iter().any(|n| fold(n) == folded) {
        true => Err(Unreadable::MemberCase),
        false => Ok(()),
    }
}

/// Checks that `text` is one JSON value with no duplicated member names at any depth.
fn check_json(text: &str) -> Result<(), Unreadable> {
    let mut de = serde_json::Deserializer::from_str(text);
    let checked = Checked.deserialize(&mut de).and_then(|()| de.end());
    checked.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Unreadable::DuplicateMember,
        _ => Unreadable::NotJson,
    })
}

/// Walks a JSON value, refusing an object with two members of the same folded name.
struct Checked;

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Checked)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut large: Option<std::collections::HashSet<Cow<'de, str>>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            // Most names are lower-case ASCII already: they are their own folding.
            let folded = match key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                true => key,
                false => Cow::Owned(fold(&key)),
            };
            let fresh = match &mut large {
                Some(set) => set.insert(folded),
                None if seen.len() >= 16 => {
                    let mut set: std::collections::HashSet<Cow<'de, str>> =
                        seen.drain(..).collect();
                    let fresh = set.insert(folded);
                    large = Some(set);
                    fresh
                }
                None if seen.contains(&folded) => false,
                None => {
                    seen.push(folded);
                    true
                }
            };
            if !fresh {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value_seed(Checked)?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the text unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object's members in their order, values raw (both borrowed from the text).
struct Ordered<'de>(Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de> Deserialize<'de> for Ordered<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Ordered<'de> {
    fn get(&self, key: &str) -> Option<&'de RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn write(&self, replace: (&str, &str), out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(k.as_ref()).to_string());
            out.push(':');
            out.push_str(if k == replace.0 { replace.1 } else { v.get() });
        }
        out.push('}');
    }
}

/// The `data` of an SSE event (its `data:` lines joined with `\n`, one leading space of each
/// dropped), with the index of its first `data:` line; `None` without one. Any line other than
/// a comment or one of the four SSE fields is refused: a client that trims or ignores case in
/// field names would read a `Data:` or ` data:` line that a strict one skips.
pub fn event_data(lines: &[&str]) -> Result<Option<(String, usize)>, Unreadable> {
    let mut data: Option<(String, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.is_empty() || bare.starts_with(':') {
            continue;
        }
        let (field, value) = bare.split_once(':').unwrap_or((bare, ""));
        match field {
            "data" => {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut data {
                    Some((d, _)) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some((value.to_string(), i)),
                }
            }
            "event" | "id" | "retry" => {}
            _ => return Err(Unreadable::SseSyntax),
        }
    }
    Ok(data)
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
