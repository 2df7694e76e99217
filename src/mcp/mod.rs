//! MCP and JSON-RPC awareness.

pub mod jsonrpc;
