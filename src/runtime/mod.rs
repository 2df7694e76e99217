//! Runtime state: the compiled snapshot and the store that swaps it.

pub mod snapshot;
pub mod store;
