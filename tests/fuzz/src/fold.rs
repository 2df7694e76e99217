//! An independent model of how a case-insensitive JSON decoder matches member names: Go's
//! `encoding/json` (Go 1.21 and later) folds each name rune by rune, ASCII letters to upper case
//! and any other rune `r` to `unicode.ToUpper(unicode.ToLower(r))` (simple, one-to-one case
//! mappings), and a member matches a field when the folds are equal. The fuzz targets use it as
//! the oracle for mcpgate's duplicate-member and member-case checks.

/// Go's simple lower-case mapping of `c` (the full mapping's first rune: the only rune whose full
/// lower-case mapping has two runes, U+0130, maps simply to its first one).
fn simple_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Go's simple upper-case mapping of `c`: the full mapping when it is one rune. A rune whose full
/// upper-case mapping expands (`ß` to `SS`) has no simple mapping to an ASCII letter; it is kept.
fn simple_upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// A member name as Go's `encoding/json` folds it.
pub fn go_fold(name: &str) -> String {
    name.chars()
        .map(|c| match c.is_ascii() {
            true => c.to_ascii_uppercase(),
            false => simple_upper(simple_lower(c)),
        })
        .collect()
}

/// Whether `a` and `b` name the same member for such a decoder.
pub fn same_member(a: &str, b: &str) -> bool {
    go_fold(a) == go_fold(b)
}

/// Every object in `v` holds no two members of the same fold; `Err` names the first pair.
pub fn distinct_members(v: &serde_json::Value) -> Result<(), (String, String)> {
    match v {
        serde_json::Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            for (i, a) in keys.iter().enumerate() {
                if let Some(b) = keys[i + 1..].iter().find(|b| same_member(a, b)) {
                    return Err(((*a).clone(), (*b).clone()));
                }
            }
            map.values().try_for_each(distinct_members)
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(distinct_members),
        _ => Ok(()),
    }
}

/// The member of `obj` spelled otherwise than `names` but read as one of them, if any.
pub fn other_spelling<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    names: &[&str],
) -> Option<&'a str> {
    obj.keys()
        .map(String::as_str)
        .find(|k| !names.contains(k) && names.iter().any(|n| same_member(k, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_go() {
        for (a, b) in [
            ("id", "ID"),
            ("uri", "URI"),
            ("uri", "ur\u{131}"),
            ("id", "\u{130}d"),
            ("key", "\u{212a}ey"),
            ("params", "param\u{17f}"),
            ("\u{b5}", "\u{3bc}"),
            ("\u{3c2}", "\u{3c3}"),
        ] {
            assert!(same_member(a, b), "{a} {b}");
        }
        for (a, b) in [("ss", "\u{df}"), ("id", "i d"), ("a", "b")] {
            assert!(!same_member(a, b), "{a} {b}");
        }
    }
}
