//! MCP inspection settings, and the 2026-07-28 header consistency check: `Mcp-Method` must name
//! the body's method and `Mcp-Name` (plain, or `=?base64?...?=`) the body's `params.name` /
//! `params.uri`. A header that disagrees with the body gets 400 with JSON-RPC error -32020
//! (HEADER_MISMATCH); policies always key on the body, never on a header alone. The same holds for
//! every `Mcp-Param-{X}` header (a tool argument a client mirrors): it must carry the value of the
//! body's argument `X`, or the request is refused before an intermediary can route on it.

use crate::config::Problem;
use crate::mcp::inspect::Inspected;
use crate::mcp::tool_registry::ParamHeader;
use crate::policy::body_limit::{parse_size, Size};
use base64::Engine;
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most a body may have to be inspected: Pingora forwards a body read before the upstream is
/// chosen from its retry buffer, which holds 64 KiB.
pub const INSPECT_LIMIT: u64 = 64 * 1024;

/// The revision from which `Mcp-Method` (and `Mcp-Name`) are required.
const STATELESS_REVISION: &str = "2026-07-28";

/// `policies.mcp:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Inspect every POST even when no other setting needs it (header consistency, MCP
    /// metrics). Tool lists, per-tool limits and CEL rules turn inspection on by themselves.
    #[serde(default)]
    pub inspect: bool,
    /// Largest body inspected (default and most: 64KiB); larger bodies on an inspecting endpoint
    /// get 413.
    #[serde(default)]
    pub max_body: Option<Size>,
    /// How long to wait for a whole body before answering 408 (default 30s).
    #[serde(default)]
    pub body_timeout: Option<String>,
}

/// Compiled inspection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inspection {
    /// Forced on.
    pub forced: bool,
    /// Body bound.
    pub max_body: u64,
    /// Wait for the whole body.
    pub body_timeout: std::time::Duration,
}

impl Inspection {
    /// Compiles `mcp:`.
    pub fn compile(cfg: &McpConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let max_body = match cfg.max_body.as_ref().map(parse_size) {
            None => INSPECT_LIMIT,
            Some(Ok(n)) if n > 0 && n <= INSPECT_LIMIT => n,
            Some(Ok(_)) => {
                return Err(vec![Problem::new(
                    format!("{at}.max_body"),
                    "must be between 1 and 64KiB (Pingora's request retry buffer)",
                )])
            }
            Some(Err(m)) => return Err(vec![Problem::new(format!("{at}.max_body"), m)]),
        };
        let body_timeout = match cfg
            .body_timeout
            .as_deref()
            .map(crate::config::parse_duration)
        {
            None => std::time::Duration::from_secs(30),
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                return Err(vec![Problem::new(
                    format!("{at}.body_timeout"),
                    "must be > 0",
                )])
            }
            Some(Err(m)) => return Err(vec![Problem::new(format!("{at}.body_timeout"), m)]),
        };
        Ok(Inspection {
            forced: cfg.inspect,
            max_body,
            body_timeout,
        })
    }
}

/// What disagrees, for the error message.
pub type Mismatch = &'static str;

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
    req.headers.get(name).map(|v| v.as_bytes())
}

/// `=?base64?...?=` decoded (canonical base64, UTF-8), or the value itself; `None` if malformed.
pub fn decode_name(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    match text
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(payload) => {
            let engine = base64::engine::general_purpose::STANDARD;
            let bytes = engine.decode(payload).ok()?;
            if engine.encode(&bytes) != payload {
                return None;
            }
            String::from_utf8(bytes).ok()
        }
        None => Some(text.to_string()),
    }
}

/// Checks `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` against the body; `declared` gives the
/// `Mcp-Param-*` headers a tool declares, when its definition is known.
pub fn check(
    req: &RequestHeader,
    body: &Inspected,
    declared: &dyn Fn(&str) -> Option<Vec<ParamHeader>>,
) -> Result<(), Mismatch> {
    // Only one copy of each can be checked, and every copy is forwarded.
    for name in ["mcp-method", "mcp-name"] {
        if req.headers.get_all(name).iter().nth(1).is_some() {
            return Err("Mcp-Method and Mcp-Name may appear once each");
        }
    }
    check_params(req, body, declared)?;
    let method_h = header(req, "mcp-method");
    let name_h = header(req, "mcp-name");
    let stateless = header(req, "mcp-protocol-version")
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v >= STATELESS_REVISION);
    let m = match body {
        Inspected::Single(m) => m,
        Inspected::Batch(_) if method_h.is_some() || name_h.is_some() => {
            return Err("Mcp-Method and Mcp-Name cannot describe a batch");
        }
        Inspected::Batch(_) => return Ok(()),
    };
    let Some(method) = m.method.as_deref() else {
        // A response (to a server request): nothing to mirror.
        return match method_h {
            Some(_) => Err("Mcp-Method header on a message without a method"),
            None => Ok(()),
        };
    };
    match method_h {
        Some(h) if h != method.as_bytes() => {
            return Err("Mcp-Method header does not match the body's method")
        }
        None if stateless => return Err("Mcp-Method header is required at 2026-07-28"),
        _ => {}
    }
    if let Some(name) = m.mirrored_name() {
        match name_h {
            Some(h) if decode_name(h).as_deref() != Some(name) => {
                return Err("Mcp-Name header does not match the body's name or uri")
            }
            None if stateless => return Err("Mcp-Name header is required at 2026-07-28"),
            _ => {}
        }
    }
    Ok(())
}

/// The prefix of the headers that mirror tool arguments (2026-07-28), as `http` spells names.
const PARAM_PREFIX: &str = "mcp-param-";

/// Checks every `Mcp-Param-{X}` header against the body: it must come once, on a single
/// `tools/call`, and carry the value of the argument it mirrors (plain or `=?base64?...?=`;
/// strings as they are, booleans as `true` / `false`, numbers as a JSON number of equal value).
///
/// Which argument: the one the tool declares with `x-mcp-header: X` (any path through
/// `properties`), as this process last saw the tool's definition in a relayed `tools/list`
/// answer (`declared`); a header the tool does not declare, or one whose argument is absent or
/// `null` (clients omit those), is refused. When this process has not seen the tool listed (the
/// list went through another instance of the fleet, or before a restart), no header can be
/// checked, since the argument it mirrors may have any name: it is refused too, and a client
/// recovers as the spec asks after -32020, by listing tools again and retrying. Whatever a
/// header says, the body agrees. A header that a client omitted is not required: the upstream
/// then routes on the body alone.
fn check_params(
    req: &RequestHeader,
    body: &Inspected,
    declared: &dyn Fn(&str) -> Option<Vec<ParamHeader>>,
) -> Result<(), Mismatch> {
    let mut params = req
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(PARAM_PREFIX))
        .peekable();
    if params.peek().is_none() {
        return Ok(());
    }
    let (tool, arguments) = match body {
        Inspected::Single(m) => match m.tool() {
            Some(tool) => match &m.arguments {
                Some(serde_json::Value::Object(a)) => (tool, Some(a)),
                _ => (tool, None),
            },
            None => return Err("Mcp-Param headers belong to a single tools/call"),
        },
        _ => return Err("Mcp-Param headers belong to a single tools/call"),
    };
    let declared = declared(tool);
    for (name, value) in params {
        let wanted = &name.as_str()[PARAM_PREFIX.len()..];
        if req.headers.get_all(name).iter().nth(1).is_some() {
            return Err("each Mcp-Param header may appear once");
        }
        let argument = match &declared {
            Some(list) => {
                let Some(decl) = list.iter().find(|d| d.header == wanted) else {
                    return Err("Mcp-Param header is not declared by the tool (x-mcp-header)");
                };
                let mut at = arguments.and_then(|a| a.get(decl.path.first()?));
                for member in decl.path.iter().skip(1) {
                    at = at.and_then(|v| v.get(member));
                }
                at.filter(|v| !v.is_null())
            }
            None => {
                return Err(
                    "Mcp-Param headers cannot be checked: the gateway has not seen this \
                            tool's x-mcp-header declarations in a tools/list answer (list tools, \
                            then retry)",
                )
            }
        };
        let Some(argument) = argument.filter(|_| !wanted.is_empty()) else {
            return Err("Mcp-Param header names no argument of the tools/call");
        };
        let Some(text) = decode_name(value.as_bytes()) else {
            return Err("Mcp-Param header value is not UTF-8 text or canonical =?base64?...?=");
        };
        if !agrees(argument, &text) {
            return Err("Mcp-Param header does not match the argument in the body");
        }
    }
    Ok(())
}

/// The largest integer a float holds exactly (JavaScript's safe range).
const SAFE: f64 = 9_007_199_254_740_991.0;

/// Whether a header's text carries `argument`: a string as itself, a boolean as `true` or
/// `false`, a number as a JSON number of the same value (integers exactly; `42.0` and `42` agree
/// within JavaScript's safe range). `null`, arrays and objects are never mirrored.
fn agrees(argument: &serde_json::Value, text: &str) -> bool {
    use serde_json::Value;
    match argument {
        Value::String(s) => s == text,
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        Value::Number(n) => {
            let Ok(h) = text.parse::<serde_json::Number>() else {
                return false;
            };
            if let (Some(a), Some(b)) = (n.as_i64(), h.as_i64()) {
                return a == b;
            }
            if let (Some(a), Some(b)) = (n.as_u64(), h.as_u64()) {
                return a == b;
            }
            match (n.as_f64(), h.as_f64()) {
                (Some(a), Some(b)) => a == b && a.abs() <= SAFE,
                _ => false,
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::inspect::inspect;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/mcp", None).unwrap_or_else(|e| panic!("{e}"));
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        r
    }

    fn body(s: &str) -> Inspected {
        inspect(s.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The check where tool `q` declares these `Mcp-Param-*` headers (each on the argument of
    /// its name; `State` on `ſtate`, `Tenant` on `Tenant`), and no other tool was seen listed.
    fn check(r: &RequestHeader, b: &Inspected) -> Result<(), Mismatch> {
        let q = [
            ("region", "region"),
            ("tenant", "Tenant"),
            ("ratio", "ratio"),
            ("dry", "dry"),
            ("note", "note"),
            ("state", "ſtate"),
            ("empty", "empty"),
            ("list", "list"),
            ("obj", "obj"),
        ];
        let declared = |tool: &str| {
            (tool == "q").then(|| {
                q.iter()
                    .map(|(h, a)| ParamHeader {
                        header: h.to_string(),
                        path: vec![a.to_string()],
                    })
                    .collect()
            })
        };
        super::check(r, b, &declared)
    }

    #[test]
    fn declared_param_headers_name_their_argument_by_declaration() {
        let declared = |tool: &str| {
            (tool == "deploy").then(|| {
                vec![
                    ParamHeader {
                        header: "region".into(),
                        path: vec!["target_region".into()],
                    },
                    ParamHeader {
                        header: "zone".into(),
                        path: vec!["location".into(), "zone".into()],
                    },
                    ParamHeader {
                        header: "dry".into(),
                        path: vec!["dry_run".into()],
                    },
                ]
            })
        };
        let b = body(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"target_region":"eu-west","location":{"zone":"b"},"dry_run":null,"region":"us-east"}}}"#,
        );
        let run = |h: &[(&str, &str)]| super::check(&req(h), &b, &declared);
        for good in [
            vec![],
            vec![("mcp-param-region", "eu-west")],
            vec![("Mcp-Param-REGION", "eu-west"), ("mcp-param-zone", "b")],
        ] {
            assert_eq!(run(&good), Ok(()), "{good:?}");
        }
        for bad in [
            // The argument named like the header is not the one the tool declares.
            vec![("mcp-param-region", "us-east")],
            vec![("mcp-param-zone", "a")],
            // Not declared by the tool, though an argument has that name.
            vec![("mcp-param-target_region", "eu-west")],
            // Declared, but the argument is null (clients omit such headers).
            vec![("mcp-param-dry", "null")],
            vec![("mcp-param-dry", "")],
        ] {
            assert!(run(&bad).is_err(), "{bad:?}");
        }
        // A tool whose definition this process has not seen: no header can be checked (the
        // argument it mirrors may have any name), so even one that matches a same-named
        // argument is refused; without such headers the call passes.
        let unknown = body(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other","arguments":{"region":"us-east"}}}"#,
        );
        assert!(super::check(
            &req(&[("mcp-param-region", "us-east")]),
            &unknown,
            &declared
        )
        .is_err());
        assert_eq!(super::check(&req(&[]), &unknown, &declared), Ok(()));
        // A tool seen with no declarations takes no Mcp-Param header at all.
        let none = |_: &str| Some(vec![]);
        assert!(super::check(&req(&[("mcp-param-region", "us-east")]), &unknown, &none).is_err());
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"héllo"}}"#;

    #[test]
    fn headers_must_agree_with_the_body() {
        let b = body(CALL);
        assert_eq!(
            check(&req(&[]), &b),
            Ok(()),
            "older revisions need no headers"
        );
        let b64 = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("héllo")
        );
        let ok = req(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", &b64),
        ]);
        assert_eq!(check(&ok, &b), Ok(()));
        for bad in [
            req(&[("mcp-method", "tools/list")]),
            req(&[("mcp-method", "tools/call"), ("mcp-name", "other")]),
            req(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?!!?=")]),
            req(&[("mcp-protocol-version", "2026-07-28")]),
            req(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ]),
        ] {
            assert!(check(&bad, &b).is_err(), "{:?}", bad.headers);
        }
        // A second copy could say something else to whatever reads it behind the gateway.
        let mut twice = req(&[("mcp-method", "tools/call"), ("mcp-name", "héllo")]);
        twice
            .append_header("mcp-name", "evil")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&twice, &b).is_err());
        let batch = body(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert!(check(&req(&[("mcp-method", "ping")]), &batch).is_err());
        assert_eq!(check(&req(&[]), &batch), Ok(()));
    }

    #[test]
    fn param_headers_must_carry_the_arguments() {
        let b = body(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":{"region":"eu-west","Tenant":42,"ratio":0.5,"dry":true,"note":"héllo wörld","ſtate":"on","empty":null,"list":[1],"obj":{"a":1}}}}"#,
        );
        let b64 = |s: &str| {
            format!(
                "=?base64?{}?=",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let note = b64("héllo wörld");
        let region = b64("eu-west");
        let base = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "q"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut h = base.to_vec();
            h.extend_from_slice(extra);
            req(&h)
        };
        for good in [
            vec![("mcp-param-region", "eu-west")],
            vec![("Mcp-Param-Region", region.as_str())],
            vec![("mcp-param-tenant", "42")],
            vec![("mcp-param-TENANT", "42.0")],
            vec![("mcp-param-ratio", "0.5")],
            vec![("mcp-param-dry", "true")],
            vec![("mcp-param-note", note.as_str())],
            vec![("mcp-param-state", "on")],
            vec![
                ("mcp-param-region", "eu-west"),
                ("mcp-param-tenant", "42"),
                ("mcp-param-dry", "true"),
            ],
        ] {
            assert_eq!(check(&with(&good), &b), Ok(()), "{good:?}");
        }
        for bad in [
            vec![("mcp-param-region", "us-east")],
            vec![("mcp-param-region", "EU-WEST")],
            vec![("mcp-param-region", b64("us-east").as_str())],
            vec![("mcp-param-region", "=?base64?ZXUtd2VzdA?=")],
            vec![("mcp-param-region", "=?base64?!!!?=")],
            vec![("mcp-param-tenant", "43")],
            vec![("mcp-param-tenant", "042")],
            vec![("mcp-param-tenant", "forty-two")],
            vec![("mcp-param-ratio", "0.25")],
            vec![("mcp-param-dry", "false")],
            vec![("mcp-param-dry", "True")],
            vec![("mcp-param-dry", "1")],
            vec![("mcp-param-empty", "null")],
            vec![("mcp-param-empty", "")],
            vec![("mcp-param-list", "1")],
            vec![("mcp-param-obj", "{\"a\":1}")],
            vec![("mcp-param-zone", "eu")],
            vec![("mcp-param-", "eu-west")],
            vec![("mcp-param-region", "eu-west"), ("mcp-param-zone", "a")],
        ] {
            assert!(check(&with(&bad), &b).is_err(), "{bad:?}");
        }
        // Repeated: only one copy could be checked, and an intermediary may read the other.
        let mut twice = with(&[("mcp-param-region", "eu-west")]);
        twice
            .append_header("mcp-param-region", "us-east")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&twice, &b).is_err());
        let mut same_twice = with(&[("mcp-param-region", "eu-west")]);
        same_twice
            .append_header("Mcp-Param-Region", "eu-west")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&same_twice, &b).is_err());
        // Only a single tools/call has arguments to mirror; a call without arguments has none.
        for other in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"q","arguments":{"region":"eu-west"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":{"region":"eu-west"}}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ] {
            let r = req(&[("mcp-param-region", "eu-west")]);
            assert!(check(&r, &body(other)).is_err(), "{other}");
        }
        // No Mcp-Param header: nothing to compare (the gateway does not know the declarations).
        assert_eq!(check(&req(&base), &b), Ok(()));
    }

    #[test]
    fn numbers_agree_by_value_within_the_safe_range() {
        use serde_json::json;
        for (arg, text, same) in [
            (json!(42), "42", true),
            (json!(42), "42.0", true),
            (json!(42.0), "42", true),
            (json!(42), "4.2e1", true),
            (json!(-7), "-7", true),
            (json!(u64::MAX), "18446744073709551615", true),
            (json!(u64::MAX), "18446744073709551614", false),
            (
                json!(9_007_199_254_740_993_i64),
                "9007199254740992.0",
                false,
            ),
            (json!(42), " 42", false),
            (json!(42), "+42", false),
            (json!(42), "", false),
            (json!("42"), "42", true),
            (json!(false), "false", true),
        ] {
            assert_eq!(agrees(&arg, text), same, "{arg} ~ {text:?}");
        }
    }

    #[test]
    fn base64_names_are_canonical() {
        assert_eq!(
            decode_name(b"=?base64?aMOpbGxv?=").as_deref(),
            Some("héllo")
        );
        assert_eq!(decode_name(b"plain").as_deref(), Some("plain"));
        assert_eq!(decode_name(b"=?base64?aMOpbGxw?="), Some("héllp".into()));
        assert_eq!(
            decode_name(b"=?base64?aGk?="),
            None,
            "unpadded is not canonical"
        );
    }
}
