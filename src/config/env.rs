//! `${VAR}` substitution in string values (after parsing, so a value can never inject YAML).
//!
//! `${VAR}` takes the variable (an error if it is unset), `${VAR:-default}` falls back to
//! `default` when the variable is unset or empty (as in the shell), and `$${` stands for a
//! literal `${`.

use super::Problem;
use serde_json::Value;

/// Substitutes in every string of `value`; problems are reported with their paths.
pub fn substitute(value: &mut Value, path: &str, problems: &mut Vec<Problem>) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, |k| std::env::var(k).ok()) {
            Ok(out) => *s = out,
            Err(msg) => problems.push(Problem::new(path, msg)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), problems);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute(item, &child, problems);
            }
        }
        _ => {}
    }
}

/// Expands `${...}` references in `input` using `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated \"${{\" in {input:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_escapes() {
        assert_eq!(
            expand("Bearer ${TOKEN}", env).as_deref(),
            Ok("Bearer s3cret")
        );
        assert_eq!(expand("${NOPE:-x}", env).as_deref(), Ok("x"));
        assert_eq!(expand("${EMPTY:-x}", env).as_deref(), Ok("x"));
        assert_eq!(expand("[${EMPTY}]", env).as_deref(), Ok("[]"));
        assert_eq!(expand("$${TOKEN}", env).as_deref(), Ok("${TOKEN}"));
        assert!(expand("${NOPE}", env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand("${TOKEN", env).is_err());
        assert!(expand("${BAD-NAME}", env).is_err());
    }
}
