//! `Mcp-Name` / `Mcp-Param-*` decoding and the header consistency check
//! (`policy::mcp_headers::{decode_name, check}`): `decode_name` gives back exactly what a
//! canonical `=?base64?...?=` or plain value carries; headers that mirror the body correctly are
//! accepted, and one changed header is refused; whatever headers come, an accepted request's
//! `Mcp-Method` and `Mcp-Name` agree with its body.

use crate::Input;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mcpgate::mcp::inspect::{inspect, Inspected};
use mcpgate::mcp::tool_registry::ParamHeader;
use mcpgate::policy::mcp_headers::{check, decode_name};
use pingora::http::RequestHeader;
use serde_json::Value;

/// A value as a client writes it: plain when it is printable ASCII that cannot be read as the
/// encoded form, else `=?base64?...?=`.
fn encode(s: &str) -> String {
    let looks_encoded = s.starts_with("=?base64?") && s.ends_with("?=");
    let plain = !s.is_empty()
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !looks_encoded;
    match plain {
        true => s.to_string(),
        false => format!("=?base64?{}?=", STANDARD.encode(s)),
    }
}

/// The text a header carries for an argument, when it can be mirrored.
fn mirror(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.abs() <= 9.0e15)
            .map(|_| n.to_string()),
        _ => None,
    }
}

/// A text that disagrees with `v` (for the changed header).
fn disagree(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("{s}x")),
        Value::Bool(b) => Some((!b).to_string()),
        Value::Number(n) => n
            .as_i64()
            .and_then(|i| i.checked_add(1))
            .map(|i| i.to_string()),
        _ => None,
    }
}

fn request(headers: &[(String, Vec<u8>)]) -> Option<RequestHeader> {
    let mut r = RequestHeader::build("POST", b"/mcp", None).ok()?;
    for (k, v) in headers {
        let value = http::HeaderValue::from_bytes(v).ok()?;
        r.append_header(k.clone(), value).ok()?;
    }
    Some(r)
}

fn header_token(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What the called tool declares: each top-level argument whose name is a header token, with
/// `x-mcp-header` equal to its name (the gateway learns these from `tools/list`).
fn declared_by_name(body: &Inspected) -> Vec<ParamHeader> {
    let Inspected::Single(m) = body else {
        return Vec::new();
    };
    match &m.arguments {
        Some(Value::Object(args)) => args
            .keys()
            .filter(|k| header_token(k))
            .map(|k| ParamHeader {
                header: k.to_ascii_lowercase(),
                path: vec![k.clone()],
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The target: a header value to decode, a body, then header name/value pairs.
pub fn mcp_headers(data: &[u8]) {
    let mut input = Input::new(data);
    let (flags, pick) = (input.byte(), input.byte());
    let raw = input.field();
    decoded(raw);
    let Ok(body) = inspect(input.field()) else {
        return;
    };
    let mut extra = Vec::new();
    loop {
        let (name, value) = (input.field(), input.field());
        if name.is_empty() && value.is_empty() {
            break;
        }
        extra.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    let stateless = flags & 1 == 1;
    let mut base = Vec::new();
    if stateless {
        base.push(("mcp-protocol-version".to_string(), b"2026-07-28".to_vec()));
    }
    consistent(&body, &base, &extra);
    let Inspected::Single(m) = &body else { return };
    // The headers a correct client sends.
    let mut good = base.clone();
    let mut wrong: Vec<(usize, Vec<u8>)> = Vec::new();
    if let Some(method) = &m.method {
        if http::HeaderValue::from_str(method).is_err() || method.trim() != method {
            return;
        }
        good.push(("mcp-method".into(), method.clone().into_bytes()));
        wrong.push((good.len() - 1, format!("{method}x").into_bytes()));
    }
    if let Some(name) = m.mirrored_name() {
        good.push(("mcp-name".into(), encode(name).into_bytes()));
        wrong.push((good.len() - 1, encode(&format!("{name}x")).into_bytes()));
    }
    if let (Some(_), Some(Value::Object(args))) = (m.tool(), &m.arguments) {
        for (k, v) in args.iter().filter(|(k, _)| header_token(k)) {
            let Some(text) = mirror(v) else { continue };
            good.push((format!("mcp-param-{k}"), encode(&text).into_bytes()));
            if let Some(bad) = disagree(v) {
                wrong.push((good.len() - 1, encode(&bad).into_bytes()));
            }
        }
    }
    let Some(req) = request(&good) else { return };
    let declared = declared_by_name(&body);
    let r = check(&req, &body, &|_| Some(declared.clone()));
    if stateless && m.method.is_none() {
        return;
    }
    assert_eq!(r, Ok(()), "refused correct headers {good:?}");
    if wrong.is_empty() {
        return;
    }
    let (i, bad) = &wrong[usize::from(pick) % wrong.len()];
    let mut changed = good.clone();
    changed[*i].1 = bad.clone();
    if let Some(req) = request(&changed) {
        assert!(
            check(&req, &body, &|_| Some(declared.clone())).is_err(),
            "accepted a changed header {:?}",
            changed[*i]
        );
    }
}

/// `decode_name` reads exactly the plain value or the canonical encoded one.
fn decoded(raw: &[u8]) {
    let got = decode_name(raw);
    let Ok(text) = std::str::from_utf8(raw) else {
        assert_eq!(got, None, "decoded a value that is not UTF-8");
        return;
    };
    match text
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        None => assert_eq!(got.as_deref(), Some(text), "a plain value read otherwise"),
        Some(payload) => {
            if let Some(s) = &got {
                assert_eq!(
                    STANDARD.encode(s),
                    payload,
                    "a non-canonical encoding accepted"
                );
            } else {
                let clean = STANDARD
                    .decode(payload)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                assert!(
                    clean.is_none_or(|s| STANDARD.encode(s) != payload),
                    "a canonical encoding refused: {text:?}"
                );
            }
        }
    }
}

/// With any headers, an accepted request's `Mcp-Method` and `Mcp-Name` name what its body does.
fn consistent(body: &Inspected, base: &[(String, Vec<u8>)], extra: &[(String, Vec<u8>)]) {
    let all: Vec<(String, Vec<u8>)> = base.iter().chain(extra).cloned().collect();
    let Some(req) = request(&all) else { return };
    let declared = declared_by_name(body);
    if check(&req, body, &|_| Some(declared.clone())).is_err() {
        return;
    }
    let get = |n: &str| req.headers.get(n).map(|v| v.as_bytes().to_vec());
    let Inspected::Single(m) = body else {
        assert!(
            get("mcp-method").is_none() && get("mcp-name").is_none(),
            "batch with headers"
        );
        return;
    };
    if let Some(h) = get("mcp-method") {
        assert_eq!(
            Some(h.as_slice()),
            m.method.as_deref().map(str::as_bytes),
            "Mcp-Method"
        );
    }
    if let (Some(h), Some(name)) = (get("mcp-name"), m.mirrored_name()) {
        assert_eq!(decode_name(&h).as_deref(), Some(name), "Mcp-Name");
    }
    let params = req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("mcp-param-"));
    if params {
        assert!(
            m.tool().is_some(),
            "Mcp-Param headers accepted on {:?}",
            m.method
        );
    }
}
