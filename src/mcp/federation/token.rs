//! Sealed state of a federated endpoint, so that any instance of a fleet serves any request:
//! the session id the client holds (per server: the upstream session id, the pinned host, the
//! negotiated version; bound to the identity, with an expiry) and list cursors (per server: its
//! own cursor). Both are JSON sealed with the fleet's `sessions` keys
//! ([`Sealer::seal_blob`]), the endpoint's path and the token's kind bound as associated data.

use crate::mcp::session_pin::Sealer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a token is refused (each answered 404 for a session, -32602 for a cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It does not open (tampered, other key, other endpoint, not a token).
    Invalid,
    /// Past its expiry.
    Expired,
    /// Issued to another identity.
    ForeignIdentity,
    /// Names a server no longer configured.
    ServerGone,
}

impl Refused {
    /// A fixed word for logs and answers.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refused::Invalid => "invalid_session_id",
            Refused::Expired => "session_expired",
            Refused::ForeignIdentity => "foreign_identity",
            Refused::ServerGone => "session_server_gone",
        }
    }
}

/// One server of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSession {
    /// The server's alias.
    #[serde(rename = "a")]
    pub alias: String,
    /// The host URL (as configured) that holds the session.
    #[serde(rename = "h")]
    pub host: String,
    /// The server's own session id, if it gave one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The protocol version negotiated with it.
    #[serde(rename = "v")]
    pub version: String,
}

/// A federated session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "x")]
    pub expires: u64,
    /// Whose session ([`identity_key`]).
    #[serde(rename = "i")]
    pub identity: String,
    /// The version answered to the client.
    #[serde(rename = "v")]
    pub version: String,
    /// The servers in the session.
    #[serde(rename = "s")]
    pub servers: Vec<ServerSession>,
}

/// A composite list cursor: per server still listing, its own cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "x")]
    pub expires: u64,
    /// Whose list.
    #[serde(rename = "i")]
    pub identity: String,
    /// The list method.
    #[serde(rename = "m")]
    pub method: String,
    /// (alias, that server's cursor).
    #[serde(rename = "c")]
    pub next: Vec<(String, String)>,
}

/// A stable, non-reversible key of an identity (`""` for anonymous requests).
pub fn identity_key(identity: Option<(&str, &str)>) -> String {
    match identity {
        None => String::new(),
        Some((method, subject)) => {
            let d = Sha256::digest(format!("{method}\0{subject}").as_bytes());
            d.iter().take(12).map(|b| format!("{b:02x}")).collect()
        }
    }
}

fn aad(kind: &str, path: &str) -> Vec<u8> {
    format!("mcpgate-federation\0{kind}\0{path}").into_bytes()
}

fn seal<T: Serialize>(sealer: &Sealer, kind: &str, path: &str, value: &T) -> Option<String> {
    let plain = serde_json::to_vec(value).ok()?;
    sealer.seal_blob(&aad(kind, path), &plain)
}

fn open<T: for<'de> Deserialize<'de>>(
    sealer: &Sealer,
    kind: &str,
    path: &str,
    token: &str,
) -> Result<T, Refused> {
    let plain = sealer
        .open_blob(&aad(kind, path), token)
        .ok_or(Refused::Invalid)?;
    serde_json::from_slice(&plain).map_err(|_| Refused::Invalid)
}

/// Seals `value` as a token of `kind` for the endpoint at `path` (for the other sealed ids of a
/// federated endpoint, `mcp::federation::ids`).
pub fn seal_kind<T: Serialize>(
    sealer: &Sealer,
    kind: &str,
    path: &str,
    value: &T,
) -> Option<String> {
    seal(sealer, kind, path, value)
}

/// Opens a token of `kind` for the endpoint at `path`.
pub fn open_kind<T: for<'de> Deserialize<'de>>(
    sealer: &Sealer,
    kind: &str,
    path: &str,
    token: &str,
) -> Result<T, Refused> {
    open(sealer, kind, path, token)
}

impl Session {
    /// The sealed session id; `None` when it cannot be sealed or would be too long.
    pub fn seal(&self, sealer: &Sealer, path: &str) -> Option<String> {
        seal(sealer, "session", path, self)
    }

    /// Opens a session id for `identity` at time `now` (seconds since the epoch); every server
    /// it names must pass `known`.
    pub fn open(
        sealer: &Sealer,
        path: &str,
        token: &str,
        identity: &str,
        now: u64,
        known: impl Fn(&str) -> bool,
    ) -> Result<Session, Refused> {
        let s: Session = open(sealer, "session", path, token)?;
        if s.identity != identity {
            return Err(Refused::ForeignIdentity);
        }
        if s.expires <= now {
            return Err(Refused::Expired);
        }
        if !s.servers.iter().all(|srv| known(&srv.alias)) {
            return Err(Refused::ServerGone);
        }
        Ok(s)
    }

    /// The session's entry for `alias`.
    pub fn server(&self, alias: &str) -> Option<&ServerSession> {
        self.servers.iter().find(|s| s.alias == alias)
    }
}

impl Cursor {
    /// The sealed cursor.
    pub fn seal(&self, sealer: &Sealer, path: &str) -> Option<String> {
        seal(sealer, "cursor", path, self)
    }

    /// Opens a cursor of `method` for `identity` at `now`.
    pub fn open(
        sealer: &Sealer,
        path: &str,
        token: &str,
        (method, identity): (&str, &str),
        now: u64,
    ) -> Result<Cursor, Refused> {
        let c: Cursor = open(sealer, "cursor", path, token)?;
        if c.identity != identity {
            return Err(Refused::ForeignIdentity);
        }
        if c.method != method {
            return Err(Refused::Invalid);
        }
        if c.expires <= now {
            return Err(Refused::Expired);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::session_pin::SessionsConfig;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    fn sealer(key: &str, previous: &[&str]) -> Sealer {
        Sealer::compile(
            &SessionsConfig {
                key: Some(key.into()),
                previous_keys: previous.iter().map(|s| s.to_string()).collect(),
            },
            "sessions",
        )
        .unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn session(identity: &str) -> Session {
        Session {
            expires: 2_000,
            identity: identity.into(),
            version: "2025-06-18".into(),
            servers: vec![
                ServerSession {
                    alias: "a".into(),
                    host: "http://127.0.0.1:3001".into(),
                    session: Some("up-1".into()),
                    version: "2025-06-18".into(),
                },
                ServerSession {
                    alias: "b".into(),
                    host: "http://127.0.0.1:3002".into(),
                    session: None,
                    version: "2025-03-26".into(),
                },
            ],
        }
    }

    #[test]
    fn a_session_opens_for_its_identity_before_expiry() {
        let s = sealer(K1, &[]);
        let me = identity_key(Some(("jwt", "alice")));
        let t = session(&me).seal(&s, "/mcp").unwrap_or_default();
        assert!(t.starts_with("f1.") && t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let o = Session::open(&s, "/mcp", &t, &me, 1_000, |_| true);
        assert_eq!(o, Ok(session(&me)));
        assert_eq!(
            o.ok()
                .and_then(|o| o.server("b").map(|b| b.version.clone())),
            Some("2025-03-26".into())
        );
    }

    #[test]
    fn refusals_say_why() {
        let s = sealer(K1, &[]);
        let me = identity_key(Some(("jwt", "alice")));
        let t = session(&me).seal(&s, "/mcp").unwrap_or_default();
        let open = |tok: &str, who: &str, now: u64| {
            Session::open(&s, "/mcp", tok, who, now, |a| a != "gone")
        };
        // Expired.
        assert_eq!(open(&t, &me, 2_000), Err(Refused::Expired));
        // Another identity, and anonymous.
        let bob = identity_key(Some(("jwt", "bob")));
        assert_eq!(open(&t, &bob, 1_000), Err(Refused::ForeignIdentity));
        assert_eq!(open(&t, "", 1_000), Err(Refused::ForeignIdentity));
        // Same subject, another method: another identity.
        assert_ne!(me, identity_key(Some(("api_key", "alice"))));
        // Tampered, garbage, another endpoint, a pinning token.
        let mut b = t.clone().into_bytes();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(b).unwrap_or_default();
        for bad in [tampered.as_str(), "", "f1.", "s1.abc", "f1.!!!"] {
            assert_eq!(open(bad, &me, 1_000), Err(Refused::Invalid), "{bad:?}");
        }
        assert_eq!(
            Session::open(&s, "/other", &t, &me, 1_000, |_| true),
            Err(Refused::Invalid)
        );
        // A server no longer configured.
        let mut gone = session(&me);
        gone.servers[1].alias = "gone".into();
        let t2 = gone.seal(&s, "/mcp").unwrap_or_default();
        assert_eq!(open(&t2, &me, 1_000), Err(Refused::ServerGone));
        // Another fleet's key; a rotated key still opens.
        assert_eq!(
            Session::open(&sealer(K2, &[]), "/mcp", &t, &me, 1_000, |_| true),
            Err(Refused::Invalid)
        );
        assert!(Session::open(&sealer(K2, &[K1]), "/mcp", &t, &me, 1_000, |_| true).is_ok());
    }

    #[test]
    fn cursors_are_bound_to_method_identity_and_kind() {
        let s = sealer(K1, &[]);
        let c = Cursor {
            expires: 2_000,
            identity: String::new(),
            method: "tools/list".into(),
            next: vec![("a".into(), "p2".into())],
        };
        let t = c.seal(&s, "/mcp").unwrap_or_default();
        assert_eq!(
            Cursor::open(&s, "/mcp", &t, ("tools/list", ""), 1_000),
            Ok(c)
        );
        assert_eq!(
            Cursor::open(&s, "/mcp", &t, ("prompts/list", ""), 1_000),
            Err(Refused::Invalid)
        );
        assert_eq!(
            Cursor::open(&s, "/mcp", &t, ("tools/list", "x"), 1_000),
            Err(Refused::ForeignIdentity)
        );
        assert_eq!(
            Cursor::open(&s, "/mcp", &t, ("tools/list", ""), 3_000),
            Err(Refused::Expired)
        );
        // A cursor is not a session id, and the other way round.
        assert!(Session::open(&s, "/mcp", &t, "", 1_000, |_| true).is_err());
    }
}
