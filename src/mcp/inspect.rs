//! JSON-RPC inspection of a POST body, for the policies that need to know which MCP method, tool
//! or resource a request is: `method`, `id`, `params.name` / `params.uri`, the tool arguments and
//! `_meta`, for single messages and 2025-03-26 batches. The body is parsed once, bounded by the
//! size the caller read; objects with a duplicated key are refused (a gateway and a server that
//! disagree about which duplicate counts would let a request bypass a rule), as is nesting deeper
//! than serde_json's recursion limit. The bytes forwarded are the bytes read: nothing here
//! re-serialises.

use super::attribution;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// One JSON-RPC message, as far as policies care.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// `id` as JSON text (`0`, `"a"`); `None` for notifications.
    pub id: Option<Value>,
    /// `method`; `None` for responses.
    pub method: Option<String>,
    /// `params.name` (tools/call, prompts/get).
    pub name: Option<String>,
    /// `params.uri` (resources/read, subscribe, unsubscribe).
    pub uri: Option<String>,
    /// `params.arguments` (tools/call, prompts/get).
    pub arguments: Option<Value>,
    /// `params._meta`.
    pub meta: Option<Value>,
    /// Why the tool, prompt or resource this message calls cannot be told (see
    /// [`super::attribution`]); such a message is refused on an inspecting endpoint.
    pub params_flaw: Option<&'static str>,
}

impl Message {
    /// The name `Mcp-Name` mirrors for this method, if it bears one.
    pub fn mirrored_name(&self) -> Option<&str> {
        match self.method.as_deref()? {
            "tools/call" | "prompts/get" => self.name.as_deref(),
            "resources/read" => self.uri.as_deref(),
            _ => None,
        }
    }

    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        match self.method.as_deref()? {
            "tools/call" => self.name.as_deref(),
            _ => None,
        }
    }
}

/// What a POST body is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inspected {
    /// One message.
    Single(Message),
    /// A batch (2025-03-26), in order.
    Batch(Vec<Message>),
}

impl Inspected {
    /// Every message.
    pub fn messages(&self) -> &[Message] {
        match self {
            Inspected::Single(m) => std::slice::from_ref(m),
            Inspected::Batch(v) => v,
        }
    }
}

/// Why a body is not JSON-RPC.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// Not JSON (JSON-RPC -32700).
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC message (JSON-RPC -32600).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl InspectError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            InspectError::Parse(_) => -32700,
            InspectError::Invalid(_) => -32600,
        }
    }
}

/// Parses `body` (already bounded by the caller).
pub fn inspect(body: &[u8]) -> Result<Inspected, InspectError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| InspectError::Parse(e.to_string()))?;
    de.end().map_err(|e| InspectError::Parse(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(InspectError::Invalid("empty batch"));
            }
            items
                .into_iter()
                .map(message)
                .collect::<Result<_, _>>()
                .map(Inspected::Batch)
        }
        other => message(other).map(Inspected::Single),
    }
}

fn message(v: Value) -> Result<Message, InspectError> {
    let Value::Object(mut obj) = v else {
        return Err(InspectError::Invalid("a message must be an object"));
    };
    exact_names(
        &obj,
        &["jsonrpc", "id", "method", "params", "result", "error"],
    )?;
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(InspectError::Invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let id = match obj.remove("id") {
        None => None,
        Some(v @ (Value::Number(_) | Value::String(_) | Value::Null)) => Some(v),
        Some(_) => return Err(InspectError::Invalid("\"id\" must be a string or a number")),
    };
    let method = match obj.remove("method") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(InspectError::Invalid("\"method\" must be a string")),
    };
    if method.is_none() && !(obj.contains_key("result") || obj.contains_key("error")) {
        return Err(InspectError::Invalid("neither a request nor a response"));
    }
    let params = obj.remove("params");
    let target = method.as_deref().and_then(attribution::target);
    let mut m = Message {
        id,
        params_flaw: target.and_then(|t| attribution::params_flaw(t, params.as_ref())),
        method,
        ..Message::default()
    };
    match params {
        None => {}
        Some(Value::Object(mut params)) => {
            exact_names(&params, &["name", "uri", "arguments", "_meta"])?;
            m.name = take_string(&mut params, "name", target)?;
            m.uri = take_string(&mut params, "uri", target)?;
            m.arguments = params.remove("arguments");
            m.meta = params.remove("_meta");
        }
        Some(Value::Array(_)) => {}
        // A call that names nothing: `params_flaw` says why (-32602).
        Some(_) if target.is_some() => {}
        Some(_) => {
            return Err(InspectError::Invalid(
                "\"params\" must be an object or an array",
            ))
        }
    }
    Ok(m)
}

/// `params.<key>` when it is a string. Anything else is invalid (-32600), except in the member
/// the method names its target by, where `params_flaw` already says why (-32602).
fn take_string(
    params: &mut Map<String, Value>,
    key: &str,
    target: Option<attribution::Target>,
) -> Result<Option<String>, InspectError> {
    match params.remove(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) if target.is_some_and(|t| t.member() == key) => Ok(None),
        Some(_) => Err(InspectError::Invalid(
            "\"params.name\" and \"params.uri\" must be strings",
        )),
    }
}

/// A `serde_json::Value` that refuses objects with a duplicated key.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = Folds::default();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(&key, &out) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} (keys that differ only in letter case are duplicates)"
                )));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The keys of one object, as folded by [`fold`]. A JSON-RPC object has a handful of keys: they
/// are compared in place, with no allocation for ASCII keys. Past [`Folds::SMALL`] keys a hash
/// set takes over, so a body with thousands of keys costs linear time, not quadratic.
#[derive(Default)]
struct Folds {
    /// Folds of the non-ASCII keys (the ASCII ones are compared in place).
    non_ascii: Vec<String>,
    /// Every fold, once the object is large.
    set: Option<std::collections::HashSet<String>>,
}

impl Folds {
    const SMALL: usize = 16;

    /// Records `key`; `false` when a key of `out` has the same fold.
    fn insert(&mut self, key: &str, out: &Map<String, Value>) -> bool {
        if self.set.is_none() && out.len() >= Self::SMALL {
            self.set = Some(out.keys().map(|k| fold(k)).collect());
            self.non_ascii.clear();
        }
        if let Some(set) = &mut self.set {
            return set.insert(fold(key));
        }
        if key.is_ascii() {
            let same = |k: &str| k.eq_ignore_ascii_case(key);
            return !out.keys().any(|k| k.is_ascii() && same(k))
                && !self.non_ascii.iter().any(|f| same(f));
        }
        let folded = fold(key);
        if out
            .keys()
            .any(|k| k.is_ascii() && k.eq_ignore_ascii_case(&folded))
            || self.non_ascii.contains(&folded)
        {
            return false;
        }
        self.non_ascii.push(folded);
        true
    }
}

/// A key as a case-insensitive JSON decoder matches it. Go's `encoding/json` folds each rune with
/// the simple case mappings, `ToUpper(ToLower(r))`: `ſ` is `s`, the Kelvin sign is `k`, the
/// dotless `ı` and the dotted `İ` are `i`, `µ` is `μ`. Two keys with the same fold could be read
/// as one member by the upstream, so an object may not hold both.
pub fn fold(key: &str) -> String {
    if key.is_ascii() {
        return key.to_ascii_lowercase();
    }
    key.chars().map(fold_char).collect()
}

/// One rune folded as [`fold`] does, written as the lower case of its class (ASCII letters as
/// `to_ascii_lowercase`, so ASCII keys compare in place).
fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    // The simple lower-case mapping: the full one's first rune (only `İ` maps to two, and its
    // simple mapping is the first, `i`).
    let lower = c.to_lowercase().next().unwrap_or(c);
    // A rune whose upper case expands (`ß`) has no simple upper-case mapping: it stays.
    let mut up = lower.to_uppercase();
    let upper = match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => return lower,
    };
    let mut down = upper.to_lowercase();
    match (down.next(), down.next()) {
        (Some(d), None) => d,
        _ => upper,
    }
}

/// Refuses a member whose name folds to one of `names` without being spelled exactly: the
/// gateway reads the exact name, and a case-insensitive upstream would read the other one.
fn exact_names(obj: &Map<String, Value>, names: &[&str]) -> Result<(), InspectError> {
    for key in obj.keys() {
        let other_case = match key.is_ascii() {
            true => names.iter().any(|n| n.eq_ignore_ascii_case(key)),
            false => names.contains(&fold(key).as_str()),
        };
        if other_case && !names.contains(&key.as_str()) {
            return Err(InspectError::Invalid(
                "member names are case-sensitive (\"Method\" is not \"method\")",
            ));
        }
    }
    Ok(())
}

/// Why the gateway cannot attribute a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unattributable {
    /// -32601 (a near-miss method) or -32602 (params).
    pub code: i64,
    /// What is wrong, a fixed phrase (safe to log).
    pub message: &'static str,
}

/// Checks every message of a body (a batch is refused as a whole).
pub fn attributable(body: &Inspected) -> Result<(), Unattributable> {
    body.messages().iter().try_for_each(check_one)
}

fn check_one(m: &Message) -> Result<(), Unattributable> {
    if m.method.as_deref().is_some_and(attribution::near_miss) {
        return Err(Unattributable {
            code: -32601,
            message: "method not found: a method must be printable ASCII, and MCP's methods are case-sensitive",
        });
    }
    match m.params_flaw {
        Some(message) => Err(Unattributable {
            code: -32602,
            message,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Message {
        match inspect(body.as_bytes()) {
            Ok(Inspected::Single(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn every_message_shape() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":1}}}"#,
        );
        assert_eq!(m.id, Some(Value::from(0)));
        assert_eq!(m.tool(), Some("echo"));
        assert_eq!(m.mirrored_name(), Some("echo"));
        assert_eq!(m.arguments, Some(serde_json::json!({"text":"hi"})));
        assert_eq!(m.meta, Some(serde_json::json!({"progressToken":1})));
        let m = one(
            r#"{"jsonrpc":"2.0","id":"a-1","method":"resources/read","params":{"uri":"demo://readme"}}"#,
        );
        assert_eq!(m.id, Some(Value::from("a-1")));
        assert_eq!(m.mirrored_name(), Some("demo://readme"));
        assert_eq!(m.tool(), None);
        let m = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(
            (m.id, m.method.as_deref()),
            (None, Some("notifications/initialized"))
        );
        let m = one(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#);
        assert_eq!(m.method, None);
        let m = one(r#"{"jsonrpc":"2.0","id":7.5,"error":{"code":-1,"message":"x"}}"#);
        assert!(m.id.is_some());
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]}"#);
        assert_eq!(m.name, None);
        match inspect(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}]"#) {
            Ok(Inspected::Batch(v)) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_bodies_get_the_right_code() {
        for (body, code) in [
            ("", -32700),
            ("{", -32700),
            ("not json", -32700),
            (r#"{"jsonrpc":"2.0","id":1,"method":"a"} trailing"#, -32700),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#,
                -32700,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"bad"}}"#,
                -32700,
            ),
            ("[]", -32600),
            ("42", -32600),
            (r#"{"id":1,"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"1.0","id":1,"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"2.0","id":{},"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"2.0","id":1,"method":5}"#, -32600),
            (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x/custom","params":{"name":3}}"#,
                -32600,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","uri":3}}"#,
                -32600,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","params":"x"}"#,
                -32600,
            ),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 3]"#, -32600),
        ] {
            match inspect(body.as_bytes()) {
                Err(e) => assert_eq!(e.code(), code, "{body}: {e}"),
                Ok(v) => panic!("{body} accepted: {v:?}"),
            }
        }
    }

    #[test]
    fn names_a_case_insensitive_upstream_would_read_differently_are_refused() {
        // Go's encoding/json matches member names case-insensitively (ſ as s, the Kelvin sign
        // as k), the last match winning: each of these would let a denied call through as
        // something the gateway read as harmless.
        for (body, code) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"denied"}}"#,
                -32700,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","Name":"denied"}}"#,
                -32700,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"path":"a","PATH":"b"}}}"#,
                -32700,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","paramſ":1,"params":2}}"#,
                -32700,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"Method":"tools/call"}"#,
                -32600,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"denied"}}"#,
                -32600,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"denied"}}"#,
                -32600,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"\u{212a}ey\":1,\"key\":2}}",
                -32700,
            ),
        ] {
            match inspect(body.as_bytes()) {
                Err(e) => assert_eq!(e.code(), code, "{body}: {e}"),
                Ok(v) => panic!("{body} accepted: {v:?}"),
            }
        }
        // The same in large objects (past the in-place comparison) and in either order.
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
        for extra in [r#""K7":0"#, r#""\u017f":0,"s":1"#, r#""s":1,"\u017f":0"#] {
            for body in [
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{{},{extra}}}}}"#,
                    many.join(",")
                ),
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"x":1,"k7":7,{extra}}}}}"#
                ),
            ] {
                let out = inspect(body.as_bytes());
                assert!(
                    matches!(&out, Err(e) if e.code() == -32700),
                    "{body}: {out:?}"
                );
            }
        }
        let distinct = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{{}}}}}"#,
            many.join(",")
        );
        assert!(inspect(distinct.as_bytes()).is_ok());
        // Different names that merely look alike stay distinct, and other members keep any case.
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"Text":"a","text2":"b"}}}"#,
        );
        assert_eq!(m.tool(), Some("echo"));
    }

    /// Found with the fuzz target `inspect`, whose oracle models Go's fold (inputs kept in
    /// tests/fuzz/regressions/inspect/): runes that Go's
    /// `encoding/json` folds onto a protocol member or onto another key, which the old fold
    /// (full lower case, with only `ſ` and `ς` mapped) let through: `"urı"` read as `"uri"` by a Go
    /// server would name another resource than the gateway checked.
    #[test]
    fn runes_go_folds_onto_other_names_are_refused() {
        for (body, code) in [
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{\"uri\":\"a://ok\",\"ur\u{131}\":\"a://denied\"}}",
                -32700,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{\"ur\u{131}\":\"a://denied\"}}",
                -32600,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"\u{130}d\":2,\"id\":1,\"method\":\"ping\"}",
                -32700,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"\u{b5}\":1,\"\u{3bc}\":2}}}",
                -32700,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"\u{3b2}\":1,\"\u{3d0}\":2}}}",
                -32700,
            ),
        ] {
            match inspect(body.as_bytes()) {
                Err(e) => assert_eq!(e.code(), code, "{body}: {e}"),
                Ok(v) => panic!("{body} accepted: {v:?}"),
            }
        }
        for (a, b) in [
            ("ı", "i"),
            ("İ", "i"),
            ("K", "k"),
            ("ſ", "s"),
            ("ς", "σ"),
            ("µ", "μ"),
            ("ẞ", "ß"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} {b}");
        }
        for (a, b) in [("ß", "ss"), ("ı", "l"), ("é", "e")] {
            assert_ne!(fold(a), fold(b), "{a} {b}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"arguments":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            inspect(deep.as_bytes()),
            Err(InspectError::Parse(_))
        ));
    }

    /// Malformed, truncated, mutated and invalid-UTF-8 bodies never panic (a bounded
    /// deterministic fuzz loop over mutations of valid messages).
    #[test]
    fn mutations_never_panic() {
        let seeds: [&[u8]; 3] = [
            br#"{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,2.5,null,true]}}}"#,
            br#"[{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"a://b"}},{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}]"#,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{\"k\":\"\u{00e9}\\u0000\"}}}".as_bytes(),
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = [
            b'{', b'}', b'[', b']', b'"', b'\\', b',', b':', 0xff, 0xc3, 0x00, b'0',
        ];
        for round in 0..20_000u32 {
            let seed = seeds[(round % 3) as usize];
            let mut body = seed.to_vec();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % body.len().max(1);
                match next() % 4 {
                    0 => body.truncate(i),
                    1 if !body.is_empty() => {
                        let at = i.min(body.len() - 1);
                        body[at] = specials[(next() % 12) as usize];
                    }
                    2 => body.insert(i.min(body.len()), specials[(next() % 12) as usize]),
                    _ if i < body.len() => {
                        body.remove(i);
                    }
                    _ => {}
                }
            }
            let _ = inspect(&body);
        }
        // Huge strings stay within what was read.
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#,
            "n".repeat(1 << 20)
        );
        assert_eq!(one(&big).name.map(|n| n.len()), Some(1 << 20));
    }
}
