//! Runtime state: the compiled snapshot, the store that swaps it, reloads, and the state that
//! outlives a snapshot.

pub mod drain;
pub mod reload;
pub mod shared;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod watch;
