//! What a rate or concurrency limit counts by: the whole endpoint, or one client as told by its
//! address, its authenticated identity, a request header or a JWT claim.

use crate::policy::auth::identity::{AuthMethod, Identity};
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `key:` of a limit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// All requests to the endpoint together.
    Endpoint,
    /// The client's address (after `client_address` resolution).
    #[default]
    ClientIp,
    /// The authenticated identity: JWT `sub`, API-key name or Basic user.
    Subject,
    /// The name of the API key used (requests authenticated otherwise have no key).
    ApiKey,
    /// The value of this request header.
    Header(String),
    /// The value of this JWT claim (a string or a number).
    Claim(String),
}

/// What to do with a request that has no value for the key (no header, no claim, not
/// authenticated).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MissingKey {
    /// Refuse it with 400.
    #[default]
    Reject,
    /// Count all such requests together, under one shared key.
    Shared,
}

/// What a request is, as far as limit keys go.
pub struct KeyFacts<'a> {
    /// The request header.
    pub req: &'a RequestHeader,
    /// The client address.
    pub client_ip: Option<IpAddr>,
    /// The authenticated identity.
    pub identity: Option<&'a Identity>,
    /// The tools the request calls (when inspected).
    pub tools: &'a [&'a str],
}

/// The value of a key for one request; `Missing` when the request has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    /// The value, as bytes (hashed by the stores).
    Value(Vec<u8>),
    /// The shared key of requests without a value.
    Shared,
}

impl LimitKey {
    /// The key of this request, or `None` when it has no value and `missing` says reject.
    pub fn value(&self, facts: &KeyFacts<'_>, missing: MissingKey) -> Option<KeyValue> {
        let found: Option<Vec<u8>> = match self {
            LimitKey::Endpoint => return Some(KeyValue::Shared),
            LimitKey::ClientIp => facts.client_ip.map(|ip| ip.to_string().into_bytes()),
            LimitKey::Subject => facts.identity.map(|i| i.subject.clone().into_bytes()),
            LimitKey::ApiKey => facts
                .identity
                .filter(|i| i.method == AuthMethod::ApiKey)
                .map(|i| i.subject.clone().into_bytes()),
            LimitKey::Header(name) => facts
                .req
                .headers
                .get(name.as_str())
                .map(|v| v.as_bytes().to_vec()),
            LimitKey::Claim(claim) => facts
                .identity
                .and_then(|i| i.claims.get(claim.as_str()))
                .and_then(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone().into_bytes()),
                    serde_json::Value::Number(n) => Some(n.to_string().into_bytes()),
                    serde_json::Value::Bool(b) => Some(b.to_string().into_bytes()),
                    _ => None,
                }),
        };
        match (found, missing) {
            (Some(v), _) => Some(KeyValue::Value(v)),
            (None, MissingKey::Shared) => Some(KeyValue::Shared),
            (None, MissingKey::Reject) => None,
        }
    }

    /// A problem with the key's settings (a header name that is not one), at `{at}.key`.
    pub fn check(&self, at: &str) -> Option<crate::config::Problem> {
        match self {
            LimitKey::Header(h) if http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                Some(crate::config::Problem::new(
                    format!("{at}.key.header"),
                    format!("{h:?} is not a valid header name"),
                ))
            }
            _ => None,
        }
    }

    /// Short description for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            LimitKey::Endpoint => "endpoint".into(),
            LimitKey::ClientIp => "client_ip".into(),
            LimitKey::Subject => "subject".into(),
            LimitKey::ApiKey => "api_key".into(),
            LimitKey::Header(h) => format!("header {h}"),
            LimitKey::Claim(c) => format!("claim {c}"),
        }
    }
}

impl KeyValue {
    /// Bytes for hashing (the shared key is a byte string no header value can be: it has NUL).
    pub fn bytes(&self) -> &[u8] {
        match self {
            KeyValue::Value(v) => v,
            KeyValue::Shared => b"\0shared",
        }
    }
}
