//! Who a request is, once authenticated, and why authentication failed. Shared by every
//! authentication method and by the policies that come after authentication.

use serde_json::Value;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT bearer token.
    Jwt,
    /// An API key from a configured header.
    ApiKey,
    /// HTTP Basic with a bcrypt-hashed password.
    Basic,
}

impl AuthMethod {
    /// Label value for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Basic => "basic",
        }
    }
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The method that authenticated it.
    pub method: AuthMethod,
    /// JWT `sub`, the API key's name, or the Basic user name.
    pub subject: String,
    /// Roles (JWT role claim, or the API key's / user's configured roles).
    pub roles: Vec<String>,
    /// Scopes (JWT `scope` / `scp`); empty for API keys and Basic.
    pub scopes: Vec<String>,
    /// The JWT's claims (`Value::Null` for other methods).
    pub claims: Value,
}

/// Why a request was not authenticated or not authorized. None of these carries a secret or
/// a token: they are safe to log and to put in an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials in the request.
    #[error("no credentials")]
    Missing,
    /// Credentials present but not valid; the reason is a short fixed phrase such as
    /// "expired", "bad signature", "unknown key", "wrong audience".
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    /// Valid credentials without the required scopes (403 `insufficient_scope`).
    #[error("insufficient scope")]
    InsufficientScope {
        /// The scopes the request needs, space-separated in answers.
        required: Vec<String>,
    },
    /// Valid credentials without a required role (403).
    #[error("missing required role")]
    Forbidden,
    /// The key source (JWKS) could not be reached and no keys are cached.
    #[error("keys unavailable")]
    KeysUnavailable,
}
