//! Whether the gateway can attribute a message: policies key on the method, the tool, prompt or
//! resource a message names, and its arguments. A message that an upstream could read as a
//! policy-relevant call while the gateway cannot tell which one is refused on an inspecting
//! endpoint, never forwarded as "unknown":
//!
//! - a method that is not printable ASCII (whitespace, control, invisible, fullwidth or other
//!   look-alike characters), or that differs from one of MCP's methods only in letter case: a
//!   lenient server could trim, strip or fold it into `tools/call` (JSON-RPC -32601);
//! - a `tools/call` or `prompts/get` whose `params` is not an object with `name` a non-empty
//!   string free of control and invisible characters and of surrounding whitespace, or whose
//!   `arguments` is neither absent, `null` nor an object; a `resources/read`, `resources/subscribe`
//!   or `resources/unsubscribe` without such a string `uri` (JSON-RPC -32602).

use crate::observability::mcp::METHODS;
use serde_json::Value;

/// MCP's methods beyond the client's requests (which are `observability::mcp::METHODS`, the
/// method label values): the server's requests a client answers, and the notifications.
const OTHER_MCP_METHODS: &[&str] = &[
    "sampling/createMessage",
    "roots/list",
    "elicitation/create",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/roots/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
    "notifications/tasks/status",
    "notifications/elicitation/complete",
];

/// Every method of the MCP revisions the gateway knows, as written.
fn mcp_methods() -> impl Iterator<Item = &'static str> {
    METHODS.iter().chain(OTHER_MCP_METHODS).copied()
}

/// What a method names, which policies key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `params.name` (and `params.arguments`): `tools/call`, `prompts/get`.
    Name,
    /// `params.uri`: `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    Uri,
}

impl Target {
    /// The member of `params` that holds the target.
    pub fn member(self) -> &'static str {
        match self {
            Target::Name => "name",
            Target::Uri => "uri",
        }
    }
}

/// The target of `method`, if it names one.
pub fn target(method: &str) -> Option<Target> {
    match method {
        "tools/call" | "prompts/get" => Some(Target::Name),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some(Target::Uri),
        _ => None,
    }
}

/// Why the `params` of a message whose method has `target` cannot be attributed, if so.
pub fn params_flaw(target: Target, params: Option<&Value>) -> Option<&'static str> {
    let missing = match target {
        Target::Name => "invalid params: tools/call and prompts/get need params.name",
        Target::Uri => "invalid params: resources/read, subscribe and unsubscribe need params.uri",
    };
    let Some(Value::Object(params)) = params else {
        return Some(match params {
            None => missing,
            Some(_) => "invalid params: params must be an object",
        });
    };
    match params.get(target.member()) {
        None => return Some(missing),
        Some(Value::String(s)) if !clean(s) => {
            return Some(match target {
                Target::Name => "invalid params: params.name must be non-empty, without control or invisible characters and without surrounding whitespace",
                Target::Uri => "invalid params: params.uri must be non-empty, without control or invisible characters and without surrounding whitespace",
            })
        }
        Some(Value::String(_)) => {}
        Some(_) => {
            return Some(match target {
                Target::Name => "invalid params: params.name must be a string",
                Target::Uri => "invalid params: params.uri must be a string",
            })
        }
    }
    match (target, params.get("arguments")) {
        (Target::Name, Some(Value::Object(_) | Value::Null) | None) | (Target::Uri, _) => None,
        (Target::Name, Some(_)) => Some("invalid params: params.arguments must be an object"),
    }
}

/// A name or URI a server reads the way the gateway does: non-empty, no control or invisible
/// (format) character, no leading or trailing whitespace.
fn clean(s: &str) -> bool {
    let edges = |c: Option<char>| c.is_some_and(char::is_whitespace);
    !s.is_empty()
        && !edges(s.chars().next())
        && !edges(s.chars().next_back())
        && !s.chars().any(|c| c.is_control() || invisible(c))
}

/// Unicode format characters and other default-ignorable code points that render as nothing
/// (soft hyphen, zero-width space and joiners, bidi marks and overrides, word joiner, BOM, tags,
/// variation selectors).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Whether `method` is one a lenient server could take for an MCP method it is not: not printable
/// ASCII (0x21 to 0x7E), or one of MCP's methods in another letter case.
pub fn near_miss(method: &str) -> bool {
    if mcp_methods().any(|m| m == method) {
        return false;
    }
    !method.bytes().all(|b| b.is_ascii_graphic())
        || mcp_methods().any(|m| m.eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    use crate::mcp::inspect::{attributable as check, inspect};

    fn verdict(body: &str) -> Result<(), i64> {
        let inspected = inspect(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        check(&inspected).map_err(|u| u.code)
    }

    fn with_params(method: &str, params: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
    }

    #[test]
    fn calls_that_name_nothing_get_invalid_params() {
        for (method, member) in [
            ("tools/call", "name"),
            ("prompts/get", "name"),
            ("resources/read", "uri"),
            ("resources/subscribe", "uri"),
            ("resources/unsubscribe", "uri"),
        ] {
            let no_params = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
            assert_eq!(verdict(&no_params), Err(-32602), "{no_params}");
            for params in [
                "null".to_string(),
                r#"["x"]"#.into(),
                "[]".into(),
                r#""x""#.into(),
                "5".into(),
                "true".into(),
                "{}".into(),
                r#"{"_meta":{}}"#.into(),
                format!(r#"{{"{member}":null}}"#),
                format!(r#"{{"{member}":5}}"#),
                format!(r#"{{"{member}":{{"a":1}}}}"#),
                format!(r#"{{"{member}":["x"]}}"#),
                format!(r#"{{"{member}":true}}"#),
                format!(r#"{{"{member}":""}}"#),
                format!(r#"{{"{member}":" x"}}"#),
                format!(r#"{{"{member}":"x\n"}}"#),
                format!(r#"{{"{member}":"x\u0000"}}"#),
                format!(r#"{{"{member}":"a\u200bb"}}"#),
                format!(r#"{{"{member}":"\ufeffx"}}"#),
                format!(r#"{{"{member}":"x\u3000"}}"#),
                format!(r#"{{"{member}":"x\u202e"}}"#),
            ] {
                let body = with_params(method, &params);
                assert_eq!(verdict(&body), Err(-32602), "{body}");
            }
            let ok = with_params(method, &format!(r#"{{"{member}":"dé-mo://a b"}}"#));
            assert_eq!(verdict(&ok), Ok(()), "{ok}");
        }
        // Arguments a rule could not read as a map.
        for args in [r#"["x"]"#, r#""x""#, "1", "false"] {
            let body = with_params(
                "tools/call",
                &format!(r#"{{"name":"echo","arguments":{args}}}"#),
            );
            assert_eq!(verdict(&body), Err(-32602), "{body}");
        }
        for args in ["null", "{}", r#"{"a":[1]}"#] {
            let body = with_params(
                "tools/call",
                &format!(r#"{{"name":"echo","arguments":{args}}}"#),
            );
            assert_eq!(verdict(&body), Ok(()), "{body}");
        }
        // In a batch, one such call refuses the whole body.
        let batch = format!(
            "[{},{}]",
            with_params("tools/call", r#"{"name":"echo"}"#),
            with_params("tools/call", r#"["echo"]"#)
        );
        assert_eq!(verdict(&batch), Err(-32602));
    }

    #[test]
    fn other_methods_keep_their_params() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x/custom","params":[1,2]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ] {
            assert_eq!(verdict(body), Ok(()), "{body}");
        }
        // Outside the attributed methods, `params` must still be structured (-32600).
        let scalar = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#);
        assert!(matches!(scalar, Err(e) if e.code() == -32600));
    }

    #[test]
    fn near_miss_methods_get_method_not_found() {
        for method in [
            "Tools/Call",
            "TOOLS/CALL",
            "tools/List",
            "Initialize",
            "RESOURCES/READ",
            "Notifications/Initialized",
            " tools/call",
            "tools/call ",
            "tools/call\n",
            "tools/call\t",
            "tools/call\u{0}",
            "tools\u{200b}/call",
            "\u{feff}tools/call",
            "ｔｏｏｌｓ/ｃａｌｌ",
            "tools／call",
            "tооls/call",
            "tools/caſl",
            "tools/\u{212a}ill",
            "x/custom method",
        ] {
            let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":method,"params":{"name":"echo"}});
            assert_eq!(verdict(&body.to_string()), Err(-32601), "{method:?}");
        }
        for method in [
            "tools/call",
            "logging/setLevel",
            "sampling/createMessage",
            "x/custom",
            "vendor.example/doThing",
            "notifications/x-custom",
        ] {
            let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":method,"params":{"name":"echo"}});
            assert_eq!(verdict(&body.to_string()), Ok(()), "{method:?}");
        }
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"Tools/Call","params":{"name":"x"}}]"#;
        assert_eq!(verdict(batch), Err(-32601));
    }
}
