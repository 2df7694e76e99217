//! Metrics, the access log and process logging.

pub mod access_log;
pub mod federation_metrics;
pub mod mcp;
pub mod metrics;
pub mod otel;
pub mod outcome;

/// Sets up `tracing` for process logs (stderr; level from `MCPGATE_LOG`, default `info`).
/// Pingora's own `log` records are bridged into it.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
