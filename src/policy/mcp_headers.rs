//! MCP inspection settings, and the 2026-07-28 header consistency check: `Mcp-Method` must name
//! the body's method and `Mcp-Name` (plain, or `=?base64?...?=`) the body's `params.name` /
//! `params.uri`. A header that disagrees with the body gets 400 with JSON-RPC error -32020
//! (HEADER_MISMATCH); policies always key on the body, never on a header alone.

use crate::config::Problem;
use crate::mcp::inspect::Inspected;
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

/// Checks `Mcp-Method` and `Mcp-Name` against the body.
pub fn check(req: &RequestHeader, body: &Inspected) -> Result<(), Mismatch> {
    // Only one copy of each can be checked, and every copy is forwarded.
    for name in ["mcp-method", "mcp-name"] {
        if req.headers.get_all(name).iter().nth(1).is_some() {
            return Err("Mcp-Method and Mcp-Name may appear once each");
        }
    }
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
