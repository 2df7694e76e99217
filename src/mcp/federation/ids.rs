//! Sealed ids of a federated endpoint's streams: the id of a request a server sends to the
//! client (sampling, elicitation, `roots/list`), which names the server and its own id, and the
//! SSE event id the client resumes with (`Last-Event-ID`), which holds each server's last event
//! id. Both are bound to the session they were issued in (a hash of its sealed id), so another
//! session cannot use them, and sealed like session ids ([`super::token`]).

use super::token::{open_kind, seal_kind, Refused};
use crate::mcp::session_pin::Sealer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A stable key of a session id (its sealed form, as the client holds it).
pub fn session_binding(session_token: &str) -> String {
    let d = Sha256::digest(session_token.as_bytes());
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The id of a request a server sent to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRequestId {
    /// The session ([`session_binding`]).
    #[serde(rename = "b")]
    pub binding: String,
    /// The server's alias.
    #[serde(rename = "a")]
    pub alias: String,
    /// The server's own id of the request.
    #[serde(rename = "o")]
    pub original: Value,
}

impl ServerRequestId {
    /// The sealed id (a string) the client sees.
    pub fn seal(&self, sealer: &Sealer, path: &str) -> Option<String> {
        seal_kind(sealer, "server-request", path, self)
    }

    /// Opens the id of a client's answer in session `binding`.
    pub fn open(
        sealer: &Sealer,
        path: &str,
        id: &Value,
        binding: &str,
    ) -> Result<ServerRequestId, Refused> {
        let token = id.as_str().ok_or(Refused::Invalid)?;
        let r: ServerRequestId = open_kind(sealer, "server-request", path, token)?;
        if r.binding != binding {
            return Err(Refused::Invalid);
        }
        Ok(r)
    }
}

/// An SSE event id of a federated stream: per server, the id of the last event it sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventId {
    /// The session ([`session_binding`]).
    #[serde(rename = "b")]
    pub binding: String,
    /// (alias, that server's last event id).
    #[serde(rename = "e")]
    pub last: Vec<(String, String)>,
}

impl EventId {
    /// The sealed event id.
    pub fn seal(&self, sealer: &Sealer, path: &str) -> Option<String> {
        seal_kind(sealer, "event-id", path, self)
    }

    /// Opens a `Last-Event-ID` of session `binding`.
    pub fn open(
        sealer: &Sealer,
        path: &str,
        token: &str,
        binding: &str,
    ) -> Result<EventId, Refused> {
        let e: EventId = open_kind(sealer, "event-id", path, token.trim())?;
        if e.binding != binding {
            return Err(Refused::Invalid);
        }
        Ok(e)
    }

    /// The last event id of `alias`.
    pub fn of(&self, alias: &str) -> Option<&str> {
        self.last
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, id)| id.as_str())
    }

    /// Records `id` as the last event of `alias`.
    pub fn set(&mut self, alias: &str, id: &str) {
        match self.last.iter_mut().find(|(a, _)| a == alias) {
            Some((_, last)) => *last = id.to_string(),
            None => self.last.push((alias.to_string(), id.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::session_pin::SessionsConfig;

    fn sealer() -> Sealer {
        Sealer::compile(
            &SessionsConfig {
                key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
                previous_keys: Vec::new(),
            },
            "sessions",
        )
        .unwrap_or_else(|p| panic!("{p:?}"))
    }

    #[test]
    fn a_server_request_id_opens_only_in_its_session_and_endpoint() {
        let s = sealer();
        let b = session_binding("f1.session-one");
        let id = ServerRequestId {
            binding: b.clone(),
            alias: "a".into(),
            original: serde_json::json!(7),
        };
        let t = Value::String(id.seal(&s, "/mcp").unwrap_or_default());
        assert_eq!(ServerRequestId::open(&s, "/mcp", &t, &b), Ok(id));
        let other = session_binding("f1.session-two");
        assert_ne!(other, b);
        assert_eq!(
            ServerRequestId::open(&s, "/mcp", &t, &other),
            Err(Refused::Invalid)
        );
        assert_eq!(
            ServerRequestId::open(&s, "/other", &t, &b),
            Err(Refused::Invalid)
        );
        for bad in [serde_json::json!(7), serde_json::json!("f1.x"), Value::Null] {
            assert_eq!(
                ServerRequestId::open(&s, "/mcp", &bad, &b),
                Err(Refused::Invalid)
            );
        }
        // An event id is not a server request id.
        let e = EventId {
            binding: b.clone(),
            last: vec![],
        };
        let et = Value::String(e.seal(&s, "/mcp").unwrap_or_default());
        assert!(ServerRequestId::open(&s, "/mcp", &et, &b).is_err());
    }

    #[test]
    fn an_event_id_keeps_each_servers_last_id() {
        let s = sealer();
        let b = session_binding("f1.s");
        let mut e = EventId {
            binding: b.clone(),
            last: vec![],
        };
        e.set("a", "1");
        e.set("b", "x::1");
        e.set("a", "2");
        assert_eq!(
            (e.of("a"), e.of("b"), e.of("c")),
            (Some("2"), Some("x::1"), None)
        );
        let t = e.seal(&s, "/mcp").unwrap_or_default();
        assert_eq!(EventId::open(&s, "/mcp", &t, &b), Ok(e));
        assert!(EventId::open(&s, "/mcp", &t, "other").is_err());
        assert!(EventId::open(&s, "/mcp", "a::1", &b).is_err());
    }
}
