//! MCP and JSON-RPC awareness.

pub mod attribution;
pub mod federation;
pub mod inspect;
pub mod jsonrpc;
pub mod response;
pub mod session_pin;
pub mod tool_registry;
