//! Session pinning: a stateful MCP server keeps a session on the host that answered `initialize`.
//! When an endpoint has several hosts, the gateway seals the upstream's `Mcp-Session-Id` together
//! with that host into the id the client sees (AES-256-GCM, key from config, shared by the fleet),
//! and opens it on every later request to route it to the same host, from any instance. The
//! upstream sees its own id. A token that does not open, or names a host no longer configured,
//! is answered 404 so the client starts a new session, as the MCP specification prescribes.
//!
//! Token: `s1.` + base64url(nonce ‖ ciphertext ‖ tag), the plaintext being
//! `len(host) as u16 ‖ host URL ‖ upstream session id`, the endpoint's path bound as associated
//! data (a token of one endpoint does not open on another).

use crate::config::Problem;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "s1.";
const NONCE: usize = 12;
const TAG: usize = 16;
/// Longest sealed session id, issued or accepted: an upstream id of up to about 3,000 bytes
/// (with its host URL) fits. A longer one is not sealed, since the token could not be accepted
/// back.
pub const MAX_TOKEN: usize = 4096;

/// `sessions:` — how session ids are sealed when an endpoint pins sessions to hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// The sealing key: 32 random bytes, base64 (`openssl rand -base64 32`). The same on every
    /// instance of a fleet. Without it, each process makes a random key at start: sessions then
    /// survive reloads but not restarts, and do not move between instances.
    #[serde(default)]
    pub key: Option<String>,
    /// Keys still accepted when opening ids (rotation: add the new key as `key`, keep the old
    /// one here until its sessions have ended).
    #[serde(default)]
    pub previous_keys: Vec<String>,
}

/// The compiled keys (the first one seals).
#[derive(Clone)]
pub struct Sealer {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

/// What a sealed id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The host URL as configured.
    pub host: String,
    /// The upstream's own session id.
    pub session: String,
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()?;
    bytes.try_into().ok()
}

impl Sealer {
    /// Compiles `sessions:`; `None` key makes a process-wide random one.
    pub fn compile(cfg: &SessionsConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let mut keys = Vec::new();
        match &cfg.key {
            Some(k) => match decode_key(k) {
                Some(key) => keys.push(key),
                None => p.push(Problem::new(
                    format!("{at}.key"),
                    "must be 32 bytes in base64 (openssl rand -base64 32)",
                )),
            },
            None => keys.push(*random_process_key()),
        }
        for (i, k) in cfg.previous_keys.iter().enumerate() {
            match decode_key(k) {
                Some(key) => keys.push(key),
                None => p.push(Problem::new(
                    format!("{at}.previous_keys[{i}]"),
                    "must be 32 bytes in base64",
                )),
            }
        }
        if p.is_empty() {
            Ok(Sealer { keys })
        } else {
            Err(p)
        }
    }

    /// Seals `session` of `host` for the endpoint at `path`.
    pub fn seal(&self, path: &str, host: &str, session: &str) -> Option<String> {
        let key = self.keys.first()?;
        let host_len = u16::try_from(host.len()).ok()?;
        let mut plain = Vec::with_capacity(2 + host.len() + session.len());
        plain.extend_from_slice(&host_len.to_be_bytes());
        plain.extend_from_slice(host.as_bytes());
        plain.extend_from_slice(session.as_bytes());
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).ok()?;
        let mut tag = [0u8; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            key,
            Some(&nonce),
            path.as_bytes(),
            &plain,
            &mut tag,
        )
        .ok()?;
        let mut raw = Vec::with_capacity(NONCE + sealed.len() + TAG);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        raw.extend_from_slice(&tag);
        let mut out = String::from(PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        (out.len() <= MAX_TOKEN).then_some(out)
    }

    /// Opens a token sealed by this key or a previous one; `None` when it does not open.
    pub fn open(&self, path: &str, token: &str) -> Option<Opened> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let body = token.strip_prefix(PREFIX)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        if raw.len() < NONCE + TAG + 2 {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        let plain = self.keys.iter().find_map(|key| {
            decrypt_aead(
                Cipher::aes_256_gcm(),
                key,
                Some(nonce),
                path.as_bytes(),
                sealed,
                tag,
            )
            .ok()
        })?;
        let (len, rest) = plain.split_at_checked(2)?;
        let host_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (host, session) = rest.split_at_checked(host_len)?;
        Some(Opened {
            host: String::from_utf8(host.to_vec()).ok()?,
            session: String::from_utf8(session.to_vec()).ok()?,
        })
    }
}

/// Prefix of the versioned, key-identified format (federated sessions and cursors).
const BLOB_PREFIX: &str = "f1.";
const KEY_ID: usize = 4;

fn key_id(key: &[u8; 32]) -> [u8; KEY_ID] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    [d[0], d[1], d[2], d[3]]
}

impl Sealer {
    /// Seals `plain` with `aad` bound, in the versioned format `f1.` + base64url(key id (4) ‖
    /// nonce ‖ ciphertext ‖ tag): the key id tells which key of a rotation opens it. `None`
    /// when the result would be longer than [`MAX_TOKEN`].
    pub fn seal_blob(&self, aad: &[u8], plain: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).ok()?;
        let mut tag = [0u8; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            key,
            Some(&nonce),
            aad,
            plain,
            &mut tag,
        )
        .ok()?;
        let mut raw = Vec::with_capacity(KEY_ID + NONCE + sealed.len() + TAG);
        raw.extend_from_slice(&key_id(key));
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        raw.extend_from_slice(&tag);
        let mut out = String::from(BLOB_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        (out.len() <= MAX_TOKEN).then_some(out)
    }

    /// Opens a [`Sealer::seal_blob`] token with the key its id names; `None` when it does not
    /// open (unknown key, other `aad`, tampered, other format).
    pub fn open_blob(&self, aad: &[u8], token: &str) -> Option<Vec<u8>> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.strip_prefix(BLOB_PREFIX)?)
            .ok()?;
        if raw.len() < KEY_ID + NONCE + TAG {
            return None;
        }
        let (kid, rest) = raw.split_at(KEY_ID);
        let (nonce, rest) = rest.split_at(NONCE);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        let key = self.keys.iter().find(|k| key_id(k) == kid)?;
        decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad, sealed, tag).ok()
    }
}

/// The key of this process when none is configured (made once, kept across reloads).
fn random_process_key() -> &'static [u8; 32] {
    static KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
        let mut k = [0u8; 32];
        if getrandom::fill(&mut k).is_err() {
            // No OS randomness: fall back on the clock and address entropy; pinning still works
            // within this process, which is all a process key promises.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            k[..16].copy_from_slice(&t.to_le_bytes());
        }
        k
    });
    &KEY
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    #[test]
    fn seals_and_opens_and_binds_the_path() {
        let s = sealer(K1, &[]);
        let t = s
            .seal("/mcp", "http://10.0.0.1:3000", "abc-123")
            .unwrap_or_default();
        assert!(t.starts_with("s1.") && t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let o = s.open("/mcp", &t).unwrap_or_else(|| panic!("opens"));
        assert_eq!(o.host, "http://10.0.0.1:3000");
        assert_eq!(o.session, "abc-123");
        assert_eq!(s.open("/other", &t), None, "bound to the endpoint path");
        let t2 = s
            .seal("/mcp", "http://10.0.0.1:3000", "abc-123")
            .unwrap_or_default();
        assert_ne!(t, t2, "random nonce");
    }

    #[test]
    fn every_token_issued_is_accepted_back() {
        let s = sealer(K1, &[]);
        let long = "x".repeat(2500);
        let t = s
            .seal("/mcp", "http://10.0.0.1:3000", &long)
            .unwrap_or_default();
        assert!(t.len() <= MAX_TOKEN, "{}", t.len());
        let opened = s.open("/mcp", &t).map(|o| o.session);
        assert_eq!(opened.as_deref(), Some(long.as_str()));
        // Too long to be accepted back: not issued at all.
        let too_long = "x".repeat(MAX_TOKEN);
        assert_eq!(s.seal("/mcp", "http://10.0.0.1:3000", &too_long), None);
    }

    #[test]
    fn rotation_accepts_previous_keys_only() {
        let old = sealer(K1, &[]);
        let t = old.seal("/mcp", "h", "sid").unwrap_or_default();
        assert!(sealer(K2, &[K1]).open("/mcp", &t).is_some());
        assert!(sealer(K2, &[]).open("/mcp", &t).is_none());
    }

    #[test]
    fn garbage_and_tampering_never_open() {
        let s = sealer(K1, &[]);
        let t = s.seal("/mcp", "h", "sid").unwrap_or_default();
        let mut bytes = t.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap_or_default();
        for bad in [
            "",
            "s1.",
            "s1.!!!!",
            "plain-upstream-id",
            &tampered,
            &"s1.".repeat(500),
            "s1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(s.open("/mcp", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn blobs_carry_a_key_id_and_bind_their_data() {
        let s = sealer(K1, &[]);
        let t = s.seal_blob(b"aad", b"hello").unwrap_or_default();
        assert!(t.starts_with("f1."));
        assert_eq!(s.open_blob(b"aad", &t).as_deref(), Some(&b"hello"[..]));
        assert_eq!(s.open_blob(b"other", &t), None);
        assert!(s.open("/mcp", &t).is_none(), "not a pinning token");
        // Rotation: the new key's sealer opens the old key's blob by its id.
        assert!(sealer(K2, &[K1]).open_blob(b"aad", &t).is_some());
        assert!(sealer(K2, &[]).open_blob(b"aad", &t).is_none());
        let mut b = t.into_bytes();
        let i = b.len() - 3;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(b).unwrap_or_default();
        assert_eq!(s.open_blob(b"aad", &tampered), None);
    }

    #[test]
    fn bad_keys_are_config_errors() {
        let e = Sealer::compile(
            &SessionsConfig {
                key: Some("short".into()),
                previous_keys: vec!["x".into()],
            },
            "sessions",
        )
        .err()
        .unwrap_or_default();
        let paths: Vec<_> = e.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["sessions.key", "sessions.previous_keys[0]"]);
    }
}
