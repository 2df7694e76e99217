//! The vocabulary every part of the config shares, below every feature: `Problem` and
//! `ConfigError` (what is wrong, with its path), durations, upstream host URLs, `${ENV}`
//! substitution, the default forwarded headers. It imports nothing from the crate: the file's
//! schema, which names each feature's own config type, is `runtime/file.rs`.

pub mod env;
pub mod krakend;
mod problem;
mod values;

pub use problem::{ConfigError, Problem};
pub use values::{name_used_before, parse_duration, parse_host_url, HostUrl};

/// The request headers forwarded to the upstream when `input_headers` is not set.
pub const DEFAULT_INPUT_HEADERS: &[&str] = &[
    "Accept",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Last-Event-ID",
    "Mcp-Method",
    "Mcp-Name",
    "Mcp-Param-*",
    "traceparent",
    "tracestate",
];
