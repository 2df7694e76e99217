//! Federation (`mcp::federation`): the sealed `f1.` session ids and composite list cursors, and
//! the exposed names. Any text as a token opens nothing; a sealed session or cursor opens to
//! exactly what was sealed (with the key or a previous one, on its path, as its kind, for its
//! identity, before its expiry, each refusal for its reason); any single-byte change to a sealed
//! token is refused. Exposed names are always valid, deterministic, and split back to the alias
//! and the server's name when they were not shortened; exposed URIs split back to theirs.

use crate::tokens::sealers;
use crate::Input;
use mcpgate::mcp::federation::names::{expose, expose_uri, is_valid, split, split_uri, MAX_NAME};
use mcpgate::mcp::federation::token::{Cursor, Refused, ServerSession, Session};
use mcpgate::mcp::session_pin::{Sealer, MAX_TOKEN};
use mcpgate::runtime::federation::valid_alias;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn u64_of(input: &mut Input) -> u64 {
    let mut b = [0u8; 8];
    for x in &mut b {
        *x = input.byte();
    }
    u64::from_le_bytes(b)
}

/// Whether a sealed token of `plain_len` bytes of JSON fits in `MAX_TOKEN`: `f1.` +
/// base64url(key id, nonce, text, tag).
fn fits(plain_len: usize) -> bool {
    3 + ((4 + 12 + plain_len + 16) * 4).div_ceil(3) <= MAX_TOKEN
}

/// Replaces the byte at `at` (scaled to the length) by `with` (or, when equal, another byte).
fn mutate(token: &str, at: u8, with: u8) -> String {
    let mut b = token.as_bytes().to_vec();
    let i = usize::from(at) * b.len() / 256;
    if let Some(c) = b.get_mut(i) {
        *c = if *c == with {
            with.wrapping_add(1)
        } else {
            with
        };
    }
    text(&b)
}

/// The two tokens of the seeds that were sealed with `K1` for `/mcp` (by `make_seeds.py`, with
/// a fixed nonce, as seeds to mutate): the only texts mode 0 may open.
const SEALED_SEEDS: [&str; 2] = [
    "f1.Yw3NKT41p6NLzbOX12mFDnkkyzytEa7XVFCigw4Fp4JXMiSGTjirgzewF8rxyVM47AgKcFFsMPTV9UwACf0GvtLgzUPibVvf5vFqEQz3WubsMA3OnlMt27zrrAyimwcdQvuqXtr-fi4Qo6J3evKY5MstLbGNi2dZhvliHCB8yWNowmO_aO6F4OMWJ-PTw5tQEv5qNZ4-0DNFM5aNoAkPhqACo08iW_wrI1GUVlBVfXv8eUkBC_wNIor3Sqs-Je1zMnE-l52dtysyOXVUvDvCrOvIkqenbJ2kV-CsuPOJgw",
    "f1.Yw3NKUwWdcHPEL9M7Gjlq28jvBw4oQI7G4OrY5-vjxoyWiW397pEgeZolqGahA41ezUHs7KZB_-GakPpTW6IbYi8BaJRGZOttYJ8gLBVhwJztxZ3SxwVl9Q",
];

/// Whether `token` opens as either kind with `sealer` (a refusal other than `Invalid` means it
/// opened and was then refused for what it says).
fn opens(sealer: &Sealer, path: &str, token: &str, identity: &str, now: u64) -> bool {
    let session = Session::open(sealer, path, token, identity, now, |_| true);
    let cursors = ["tools/list", "prompts/list", "resources/list"]
        .map(|m| Cursor::open(sealer, path, token, (m, identity), now));
    session != Err(Refused::Invalid) || cursors.iter().any(|c| *c != Err(Refused::Invalid))
}

/// Both kinds opened on every sealer: what a text that was never sealed must give.
fn opens_nothing(path: &str, token: &str, identity: &str, now: u64) {
    let s = sealers();
    if path == "/mcp" && SEALED_SEEDS.contains(&token) {
        // Sealed with the key (the Python sealing of the seeds agrees with ours).
        assert!(opens(&s.k1, path, token, identity, now), "a sealed seed");
        assert!(
            opens(&s.rotated, path, token, identity, now),
            "a sealed seed, rotated"
        );
        assert!(
            !opens(&s.k2, path, token, identity, now),
            "a sealed seed, other key"
        );
        return;
    }
    for sealer in [&s.k1, &s.rotated, &s.k2] {
        assert_eq!(
            Session::open(sealer, path, token, identity, now, |_| true),
            Err(Refused::Invalid),
            "a session id never sealed opened: {token:?}"
        );
        for method in ["tools/list", "prompts/list", "resources/list"] {
            assert_eq!(
                Cursor::open(sealer, path, token, (method, identity), now),
                Err(Refused::Invalid),
                "a cursor never sealed opened: {token:?}"
            );
        }
    }
}

/// Checks what every sealed token must do: stays in the header-safe alphabet, opens with the
/// key and a previous one, not with another key or on another path, nor once a byte changed.
fn check_sealed(
    token: &str,
    path: &str,
    open: &dyn Fn(&Sealer, &str, &str) -> bool,
    at: u8,
    with: u8,
) {
    let s = sealers();
    assert!(
        token.len() <= MAX_TOKEN && token.starts_with("f1."),
        "token {token}"
    );
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "a token outside the header-safe alphabet: {token}"
    );
    assert!(open(&s.k1, path, token), "does not open as sealed");
    assert!(
        open(&s.rotated, path, token),
        "a previous key does not open"
    );
    assert!(!open(&s.k2, path, token), "another key opened it");
    assert!(
        !open(&s.k1, &format!("{path}/"), token),
        "opened on another path"
    );
    let changed = mutate(token, at, with);
    assert!(
        !open(&s.k1, path, &changed),
        "a changed token opened: {changed}"
    );
    assert!(
        !open(&s.rotated, path, &changed),
        "a changed token opened: {changed}"
    );
}

/// A session from the input: expiry (8 bytes, little-endian), identity, version, then up to 8
/// servers, each a non-zero flags byte (odd: with a session id), alias, host, [session], version
/// (fields NUL-terminated).
fn session_of(input: &mut Input) -> Session {
    let expires = u64_of(input);
    let identity = text(input.field());
    let version = text(input.field());
    let mut servers = Vec::new();
    while servers.len() < 8 {
        let flags = input.byte();
        if flags == 0 {
            break;
        }
        let alias = text(input.field());
        let host = text(input.field());
        let session = (flags % 2 == 1).then(|| text(input.field()));
        let version = text(input.field());
        servers.push(ServerSession {
            alias,
            host,
            session,
            version,
        });
    }
    Session {
        expires,
        identity,
        version,
        servers,
    }
}

/// A cursor from the input: expiry, identity, method, then up to 8 (alias, cursor) pairs, each
/// after a non-zero byte.
fn cursor_of(input: &mut Input) -> Cursor {
    let expires = u64_of(input);
    let identity = text(input.field());
    let method = text(input.field());
    let mut next = Vec::new();
    while next.len() < 8 && input.byte() != 0 {
        let alias = text(input.field());
        next.push((alias, text(input.field())));
    }
    Cursor {
        expires,
        identity,
        method,
        next,
    }
}

fn session_case(input: &mut Input, path: &str, at: u8, with: u8) {
    let session = session_of(input);
    let Some(token) = session.seal(&sealers().k1, path) else {
        let len = serde_json::to_vec(&session).map_or(0, |v| v.len());
        assert!(
            !fits(len),
            "refused to seal a session that fits ({len} bytes)"
        );
        return;
    };
    let me = session.identity.as_str();
    let now = session.expires.saturating_sub(1);
    let expired = session.expires == 0;
    let open = |s: &Sealer, p: &str, t: &str| match Session::open(s, p, t, me, now, |_| true) {
        Ok(o) => {
            assert_eq!(o, session, "opened otherwise than sealed");
            true
        }
        Err(Refused::Expired) if expired => true,
        Err(Refused::Invalid) => false,
        Err(r) => panic!("refused for {r:?}"),
    };
    check_sealed(&token, path, &open, at, with);
    let k1 = &sealers().k1;
    let other = session.seal(k1, path);
    assert_ne!(other.as_deref(), Some(token.as_str()), "nonce reused");
    let expiry = Session::open(k1, path, &token, me, session.expires, |_| true);
    assert_eq!(expiry, Err(Refused::Expired), "open at its expiry");
    let foreign = format!("{me}x");
    let r = Session::open(k1, path, &token, &foreign, now, |_| true);
    assert_eq!(
        r,
        Err(Refused::ForeignIdentity),
        "open for another identity"
    );
    if !expired {
        let gone = Session::open(k1, path, &token, me, now, |_| false);
        let want = if session.servers.is_empty() {
            Ok(session.clone())
        } else {
            Err(Refused::ServerGone)
        };
        assert_eq!(gone, want, "a server no longer configured");
    }
    for method in ["tools/list", &session.version] {
        let c = Cursor::open(k1, path, &token, (method, me), now);
        assert_eq!(c, Err(Refused::Invalid), "a session id opened as a cursor");
    }
}

fn cursor_case(input: &mut Input, path: &str, at: u8, with: u8) {
    let cursor = cursor_of(input);
    let Some(token) = cursor.seal(&sealers().k1, path) else {
        let len = serde_json::to_vec(&cursor).map_or(0, |v| v.len());
        assert!(
            !fits(len),
            "refused to seal a cursor that fits ({len} bytes)"
        );
        return;
    };
    let key = (cursor.method.as_str(), cursor.identity.as_str());
    let now = cursor.expires.saturating_sub(1);
    let expired = cursor.expires == 0;
    let open = |s: &Sealer, p: &str, t: &str| match Cursor::open(s, p, t, key, now) {
        Ok(o) => {
            assert_eq!(o, cursor, "opened otherwise than sealed");
            true
        }
        Err(Refused::Expired) if expired => true,
        Err(Refused::Invalid) => false,
        Err(r) => panic!("refused for {r:?}"),
    };
    check_sealed(&token, path, &open, at, with);
    let k1 = &sealers().k1;
    let other = cursor.seal(k1, path);
    assert_ne!(other.as_deref(), Some(token.as_str()), "nonce reused");
    let expiry = Cursor::open(k1, path, &token, key, cursor.expires);
    assert_eq!(expiry, Err(Refused::Expired), "open at its expiry");
    let foreign = format!("{}x", cursor.identity);
    let r = Cursor::open(k1, path, &token, (key.0, &foreign), now);
    assert_eq!(
        r,
        Err(Refused::ForeignIdentity),
        "open for another identity"
    );
    let method = format!("{}x", cursor.method);
    let r = Cursor::open(k1, path, &token, (&method, key.1), now);
    assert_eq!(r, Err(Refused::Invalid), "open for another list method");
    let s = Session::open(k1, path, &token, key.1, now, |_| true);
    assert_eq!(s, Err(Refused::Invalid), "a cursor opened as a session id");
}

/// The token target. Mode 0: any text as a session id or cursor (and the path) opens nothing;
/// 1: a session is sealed and checked; 2: a cursor.
pub fn federation_token(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte() % 3;
    let (at, with) = (input.byte(), input.byte());
    let path = text(input.field());
    match mode {
        0 => {
            let identity = text(input.field());
            let token = text(input.rest());
            opens_nothing(&path, &token, &identity, u64::from(at));
        }
        1 => session_case(&mut input, &path, at, with),
        _ => cursor_case(&mut input, &path, at, with),
    }
}

/// The names target: a flags byte, an alias, a name (or URI).
pub fn federation_names(data: &[u8]) {
    let mut input = Input::new(data);
    let prefix = input.byte() % 2 == 1;
    let alias = text(input.field());
    let name = text(input.rest());

    let exposed = expose(&alias, &name, prefix);
    assert!(is_valid(&exposed), "an invalid exposed name: {exposed:?}");
    assert!(exposed.len() <= MAX_NAME, "too long: {exposed:?}");
    assert_eq!(exposed, expose(&alias, &name, prefix), "not deterministic");
    let full = if prefix {
        format!("{alias}_{name}")
    } else {
        name.clone()
    };
    if is_valid(&full) {
        assert_eq!(exposed, full, "a valid name was changed");
    } else {
        // Shortened: a valid head, `-` and 8 hex digits of the whole name.
        let (head, hash) = exposed.split_at(exposed.len() - 9);
        assert!(hash.starts_with('-'), "{exposed:?}");
        assert!(
            hash[1..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{exposed:?}"
        );
        let mapped: String = full
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(head.len())
            .collect();
        assert_eq!(head, mapped, "the head is not the name's valid head");
    }
    if prefix && valid_alias(&alias) && is_valid(&full) && !name.is_empty() {
        assert_eq!(
            split(&exposed),
            Some((alias.as_str(), name.as_str())),
            "no round trip"
        );
    }
    if let Some((a, rest)) = split(&exposed) {
        assert!(
            !a.contains('_') && !a.is_empty() && !rest.is_empty(),
            "{exposed:?}"
        );
        assert_eq!(format!("{a}_{rest}"), exposed, "split loses characters");
    }
    // Resource URIs: the name read as a URI.
    let uri = expose_uri(&alias, &name);
    match split_uri(&uri) {
        Some((a, u)) => {
            assert_eq!(expose_uri(a, u), uri, "split_uri loses characters");
            if !alias.contains('+') {
                assert_eq!((a, u), (alias.as_str(), name.as_str()), "no URI round trip");
            }
        }
        None => assert!(
            !valid_alias(&alias) || name.is_empty(),
            "a valid alias's URI does not split: {uri:?}"
        ),
    }
    if let Some((a, u)) = split_uri(&name) {
        assert_eq!(format!("{a}+{u}"), name, "split_uri loses characters");
        assert!(!a.contains('+'), "{name:?}");
    }
}
