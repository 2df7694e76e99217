//! MCP metrics' vocabulary: the `mcp_method` label values (`METHODS`, else `other`), and the
//! byte patterns of a tool error in a `tools/call` answer. `proxy/accounting.rs` reads the
//! request and records one count per inspected message by endpoint, method, tool (from the
//! config or the endpoint's `tools/list` answers, else `other`) and outcome, and tool-call
//! durations.

use memchr::memmem::Finder;
use std::sync::LazyLock;

/// MCP's client request methods, the `mcp_method` label values (also the first part of the
/// method list that inspection knows, `mcp/attribution.rs`).
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// The needles, with their searchers built once (building one costs more than a short search).
pub static NEEDLES: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [b"\"isError\":true".as_slice(), b"\"isError\": true"].map(Finder::new));
/// A `result` member, as JSON encoders write it.
pub static RESULT: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [b"\"result\":".as_slice(), b"\"result\" :"].map(Finder::new));
/// Bytes kept between chunks: one less than the longest needle.
pub const KEEP: usize = 15;

/// Whether `hay` holds a tool-error needle not preceded by a backslash.
#[cfg(test)]
fn has_tool_error(prev: Option<u8>, hay: &[u8]) -> bool {
    has(&NEEDLES[..], prev, hay)
}

/// Whether `hay` holds one of `needles` not preceded by a backslash (`prev`: the byte before
/// `hay`).
pub fn has(needles: &[Finder<'static>], prev: Option<u8>, hay: &[u8]) -> bool {
    needles.iter().any(|needle| {
        needle.find_iter(hay).any(|i| {
            let before = if i == 0 {
                prev
            } else {
                hay.get(i - 1).copied()
            };
            before != Some(b'\\')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::has_tool_error;

    #[test]
    fn tool_errors_are_found_outside_strings_only() {
        assert!(has_tool_error(
            None,
            br#"{"result":{"content":[],"isError":true}}"#
        ));
        assert!(has_tool_error(None, br#"{"isError": true}"#));
        assert!(!has_tool_error(None, br#"{"text":"say \"isError\":true"}"#));
        assert!(!has_tool_error(Some(b'\\'), br#""isError":true"#));
        assert!(!has_tool_error(None, br#"{"isError":false}"#));
        // An escaped occurrence does not hide a real one after it.
        assert!(has_tool_error(
            None,
            br#"{"text":"\"isError\":true","isError":true}"#
        ));
    }
}
