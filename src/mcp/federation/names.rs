//! Exposed names. Tools and prompts are `{alias}_{name}` (aliases have no `_`, so a name splits
//! at its first `_`), or the server's own name when prefixing is off. Every exposed name matches
//! `^[A-Za-z0-9_-]{1,64}$` (the spec allows 128 characters and `.`; LLM APIs do not): a longer
//! name, or one with other characters, is shortened deterministically to its valid head plus
//! `-` and 8 hex digits of a SHA-256 of the whole name, so every instance of a fleet computes
//! the same name. A shortened name cannot be split back: the gateway finds every name in the
//! server's list before routing a call. Resource URIs are `{alias}+{uri}` (a valid URI scheme, split at the first `+`).

use sha2::{Digest, Sha256};

/// Longest exposed tool or prompt name.
pub const MAX_NAME: usize = 64;
const HASH_HEX: usize = 8;

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `name` is a valid exposed name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.chars().all(valid_char)
}

/// The exposed name of `name` of the server `alias`.
pub fn expose(alias: &str, name: &str, prefix: bool) -> String {
    let full = if prefix {
        format!("{alias}_{name}")
    } else {
        name.to_string()
    };
    if is_valid(&full) {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let head: String = full
        .chars()
        .map(|c| if valid_char(c) { c } else { '-' })
        .take(MAX_NAME - HASH_HEX - 1)
        .collect();
    format!("{head}-{hash}")
}

/// Splits a prefixed exposed name into its alias and the rest (the server's name, unless the
/// name was shortened).
pub fn split(exposed: &str) -> Option<(&str, &str)> {
    let (alias, rest) = exposed.split_once('_')?;
    (!alias.is_empty() && !rest.is_empty()).then_some((alias, rest))
}

/// The exposed URI of a server's resource (or URI template).
pub fn expose_uri(alias: &str, uri: &str) -> String {
    format!("{alias}+{uri}")
}

/// The alias and the server's own URI of an exposed URI.
pub fn split_uri(exposed: &str) -> Option<(&str, &str)> {
    let (alias, rest) = exposed.split_once('+')?;
    let ok = !alias.is_empty()
        && !rest.is_empty()
        && alias
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    ok.then_some((alias, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_split_at_the_first_underscore() {
        assert_eq!(expose("fs", "read_file", true), "fs_read_file");
        assert_eq!(split("fs_read_file"), Some(("fs", "read_file")));
        assert_eq!(expose("fs", "read_file", false), "read_file");
        assert_eq!(expose("my-db", "q", true), "my-db_q");
        assert_eq!(split("my-db_q"), Some(("my-db", "q")));
        for bad in ["nounderscore", "_x", "fs_", ""] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }

    #[test]
    fn long_or_odd_names_are_shortened_the_same_way_everywhere() {
        let long = "t".repeat(100);
        let a = expose("demo", &long, true);
        assert_eq!(a.len(), MAX_NAME, "{a}");
        assert!(is_valid(&a));
        assert!(a.starts_with("demo_ttt"));
        assert_eq!(a, expose("demo", &long, true), "deterministic");
        // Another name with the same head gets another hash.
        let other = format!("{}u", "t".repeat(99));
        assert_ne!(a, expose("demo", &other, true));
        // Another server: another name.
        assert_ne!(a, expose("demp", &long, true));
        // Characters outside [A-Za-z0-9_-] are replaced, and the hash tells names apart.
        let dotted = expose("fs", "files.read", true);
        assert!(
            is_valid(&dotted) && dotted.starts_with("fs_files-read-"),
            "{dotted}"
        );
        assert_ne!(dotted, expose("fs", "files-read", true));
        assert_eq!(expose("fs", "files-read", true), "fs_files-read");
        // Exactly 64 characters fit as they are.
        let fits = "x".repeat(MAX_NAME - 3);
        assert_eq!(expose("ab", &fits, true), format!("ab_{fits}"));
        assert!(!is_valid(&format!("ab_{fits}x")));
        // Unprefixed names obey the same rule.
        let u = expose("demo", &long, false);
        assert!(is_valid(&u) && u.len() == MAX_NAME);
    }

    #[test]
    fn uris_map_back() {
        let e = expose_uri("docs", "file:///readme.txt");
        assert_eq!(e, "docs+file:///readme.txt");
        assert_eq!(split_uri(&e), Some(("docs", "file:///readme.txt")));
        // A `+` later in the URI stays in it.
        let e = expose_uri("a1", "mem://x+y");
        assert_eq!(split_uri(&e), Some(("a1", "mem://x+y")));
        for bad in ["file:///x", "+x", "Docs+x", "docs+", "do_cs+x"] {
            assert_eq!(split_uri(bad), None, "{bad}");
        }
    }
}
