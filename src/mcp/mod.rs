//! MCP and JSON-RPC awareness.

pub mod jsonrpc;
pub mod session_pin;
