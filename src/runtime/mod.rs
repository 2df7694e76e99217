//! Runtime state: the config file (schema, loading, checks), the compiled snapshot and the store
//! that swaps it, reloads and the file watch, health checks, TLS certificates, draining.

pub mod backend;
pub mod drain;
pub mod federation;
pub mod federation_watch;
pub mod file;
pub mod health;
pub mod host;
pub mod load;
pub mod reload;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod tls_accept;
mod validate;
pub mod watch;
