//! Protocol facts of federation (several MCP servers behind one endpoint): how names and
//! resource URIs are exposed and mapped back, the sealed session and cursor tokens, and how the
//! servers' answers are read and merged. No I/O here; `proxy::federation` does the talking.

pub mod ids;
pub mod merge;
pub mod names;
pub mod token;
