//! mcpgate: a high-throughput gateway for the Model Context Protocol, built on Pingora.
//!
//! Layers, each importing only from the ones below it (README, "Layers"): `config` and `error`
//! (the shared vocabulary: config problems and values, `GatewayError`); `observability`
//! (metrics, access log, spans; fed plain records); `mcp` (JSON-RPC and MCP protocol facts);
//! `policy` (one file per feature); `runtime` (the config file, the compiled snapshot, its
//! store, reloads); `proxy` (the `ProxyHttp` hooks and what they delegate to); then `server`,
//! `admin` and `demo`.

pub mod admin;
pub mod config;
pub mod demo;
pub mod error;
pub mod mcp;
pub mod observability;
pub mod policy;
pub mod proxy;
pub mod runtime;
pub mod server;
