//! The integration test binary: the real `mcpgate` binary in front of real upstreams, all on
//! ephemeral loopback ports, started and stopped by the tests.

mod support;
mod tls;
mod tools_filter;
mod tools_length;
mod tools_streams;
mod tracing;
mod upstreams;

mod access_log;
mod admin;
mod attribution;
mod auth;
mod circuit_breaker;
mod cli;
mod demo;
mod errors;
mod federation;
mod http1;
mod krakend;
mod limits;
mod mcp_client;
mod mcp_policies;
mod mcp_session;
mod metrics;
mod pinning;
mod redis_limits;
mod relay;
mod reload;
mod runtime_model;
mod security;
mod streaming;
mod upgrade;
mod upstream_selection;
