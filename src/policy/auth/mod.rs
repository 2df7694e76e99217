//! Authentication methods and the identity they produce.

pub mod api_key;
pub mod basic;
pub mod identity;
