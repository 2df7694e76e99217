//! Authentication methods and the identity they produce.

pub mod identity;
