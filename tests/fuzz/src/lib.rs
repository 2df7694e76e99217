//! Fuzz targets over mcpgate's parsers. Each target takes any bytes, calls mcpgate's own
//! functions and asserts a property (a panic is the failure AFL++ records): not only "no panic",
//! but what the parser promises (a refusal or an equivalent reading, a filter that gives the same
//! output whatever the chunk split, a sealed token that opens only when sealed with the key...).
//!
//! `src/bin/fuzz.rs` runs one target under AFL++ (`cargo afl fuzz ... -- fuzz <target>`) or
//! replays files through it (`fuzz <target> FILE...`): the seeds, the corpus and the crashes kept
//! as regression inputs under `regressions/<target>/`.

pub mod config;
pub mod federation;
pub mod filter;
pub mod fold;
pub mod headers;
pub mod json;
pub mod tokens;

/// A target's check: panics when the input breaks the property.
pub type Check = fn(&[u8]);

/// Every target: its name (the corpus directory under `seeds/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("inspect", json::inspect),
    ("tools_filter", filter::tools_filter),
    ("sse_event", filter::sse_event),
    ("session_token", tokens::session_token),
    ("mcp_headers", headers::mcp_headers),
    ("jwt", tokens::jwt),
    ("config", config::config),
    ("federation_token", federation::federation_token),
    ("federation_names", federation::federation_names),
];

/// The check named `name`.
pub fn target(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Reads a fuzz input as a few control bytes and fields separated by NUL (a byte no JSON text,
/// header or token of the seeds holds, so AFL's splicing keeps fields apart).
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// The next byte (0 once the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((b, rest)) => {
                self.rest = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next field: the bytes up to the next NUL (or the end).
    pub fn field(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|b| *b == 0) {
            Some(i) => {
                let (f, rest) = self.rest.split_at(i);
                self.rest = &rest[1..];
                f
            }
            None => std::mem::take(&mut self.rest),
        }
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}
