//! mcpgate: a high-throughput gateway for the Model Context Protocol, built on Pingora.
//!
//! The file names show the architecture: `config` (schema, validation), `runtime` (the
//! compiled snapshot and its store), `proxy` (the `ProxyHttp` hooks and what they delegate to),
//! `policy` (one file per policy), `mcp` (JSON-RPC and MCP awareness), `observability`
//! (metrics, access log), `admin` (the admin listener), `server` (wiring), `demo` (the built-in
//! demo MCP server).

pub mod admin;
pub mod config;
pub mod demo;
pub mod mcp;
pub mod observability;
pub mod policy;
pub mod proxy;
pub mod runtime;
pub mod server;
