//! mcpgate YAML from a translated config, with comments where a setting changes meaning
//! (`mcpgate convert`).

use serde_json::Value;

/// Keys in the order a reader expects them; others follow alphabetically.
const ORDER: &[&str] = &[
    "listen",
    "admin",
    "tracing",
    "redis",
    "client_address",
    "policies",
    "endpoints",
    "path",
    "name",
    "methods",
    "input_headers",
    "input_query_strings",
    "hosts",
];

/// The config as YAML, each note written as a comment above the setting it concerns.
pub fn to_commented_yaml(config: &Value, notes: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Converted from a KrakenD configuration by `mcpgate convert`.\n# Comments mark settings whose meaning differs from KrakenD's.\n",
    );
    if let Value::Object(_) = config {
        map(config, "", 0, notes, &mut out);
    }
    out
}

fn comments(path: &str, indent: usize, notes: &[(String, String)], out: &mut String) {
    for (p, text) in notes {
        if p == path && !text.is_empty() {
            out.push_str(&format!("{:indent$}# {text}\n", ""));
        }
    }
}

fn scalar(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| v.to_string())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn ordered(v: &Value) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = v.as_object().into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| {
        (
            ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()),
            (*k).clone(),
        )
    });
    entries
}

/// Writes the members of an object at `indent`; `first_prefix` replaces the indentation of
/// the first line (for list items).
fn map(v: &Value, path: &str, indent: usize, notes: &[(String, String)], out: &mut String) {
    for (k, val) in ordered(v) {
        let here = join(path, k);
        comments(&here, indent, notes, out);
        out.push_str(&format!(
            "{:indent$}{}:",
            "",
            scalar(&Value::String(k.clone()))
        ));
        value(val, &here, indent, notes, out);
    }
}

/// Writes what follows `key:` (a scalar on the same line, a block below).
fn value(val: &Value, here: &str, indent: usize, notes: &[(String, String)], out: &mut String) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(val, here, indent + 2, notes, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{here}[{i}]");
                comments(&ipath, indent + 2, notes, out);
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        map(item, &ipath, indent + 4, notes, &mut inner);
                        // The first line of the item goes after "- ".
                        let body = inner.trim_start_matches(' ');
                        out.push_str(&format!("{:w$}- {body}", "", w = indent + 2));
                    }
                    _ => out.push_str(&format!("{:w$}- {}\n", "", scalar(item), w = indent + 2)),
                }
            }
        }
        _ => out.push_str(&format!(" {}\n", scalar(val))),
    }
}
