//! Reading the config file: parse (YAML or JSON), substitute `${ENV}`, check the structure
//! against the JSON Schema (every problem at once), deserialize, run the semantic checks
//! (`validate.rs`); then compile it into a `Snapshot` (`compile`), for the start and for reloads.

use super::file::FileConfig;
use super::snapshot::Snapshot;
use super::validate;
use crate::config::{env, ConfigError, Problem};
use serde_json::Value;
use std::path::Path;

/// The JSON Schema of the config file, as generated from the Rust types.
pub fn schema_json() -> Value {
    serde_json::to_value(schemars::schema_for!(FileConfig)).unwrap_or(Value::Null)
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    load_read(path, std::fs::read(path))
}

/// Parses and validates what reading the config file at `path` gave (for a caller that also
/// needs the bytes, such as a reload that fingerprints them).
pub fn load_read(path: &Path, read: std::io::Result<Vec<u8>>) -> Result<FileConfig, ConfigError> {
    let source_name = path.display().to_string();
    let fail = |message: String| ConfigError {
        source_name: source_name.clone(),
        problems: vec![Problem::new("", message)],
    };
    let bytes = read.map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| fail(format!("cannot read the file: not UTF-8 ({e})")))?;
    let json = path.extension().is_some_and(|e| e == "json");
    load_str(&text, json, &source_name)
}

/// Parses and validates config text (`json` selects the JSON parser; YAML otherwise).
pub fn load_str(text: &str, json: bool, source_name: &str) -> Result<FileConfig, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        source_name: source_name.to_string(),
        problems,
    };
    let mut value: Value = if json {
        serde_json::from_str(text).map_err(|e| fail(vec![Problem::new("", format!("{e}"))]))?
    } else {
        // Through the YAML crate's own value first: it refuses duplicate keys (a silent "last
        // one wins" would hide a mistake), which a JSON map would not.
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
            .and_then(serde_yaml_ng::from_value)
            .map_err(|e| fail(vec![Problem::new("", format!("invalid YAML: {e}"))]))?
    };
    if value.is_null() {
        return Err(fail(vec![Problem::new("", "the file is empty")]));
    }
    let mut problems = Vec::new();
    if crate::config::krakend::is_krakend(&value) {
        // A KrakenD file: read into mcpgate's own shape, then checked like any mcpgate file.
        let t = crate::config::krakend::translate(&value);
        for w in &t.warnings {
            tracing::warn!("{source_name}: {w} (KrakenD setting skipped)");
        }
        problems.extend(t.errors);
        value = t.config;
    }
    env::substitute(&mut value, "", &mut problems);
    // Structural problems are reported, then the offending values are pruned so the semantic
    // checks can still run on everything else.
    let pruned = schema_check(&value, &mut problems);
    match serde_json::from_value::<FileConfig>(pruned.clone()) {
        Ok(config) => validate::check(&config, &mut problems),
        Err(e) if problems.is_empty() => problems.push(Problem::new("", e.to_string())),
        Err(_) => validate::check_leniently(&pruned, &mut problems),
    }
    if problems.is_empty() {
        serde_json::from_value(value).map_err(|e| fail(vec![Problem::new("", e.to_string())]))
    } else {
        problems.dedup();
        Err(fail(problems))
    }
}

/// Reports every structural problem (found with the JSON Schema) and returns a copy of `value`
/// without the offending object members.
fn schema_check(value: &Value, problems: &mut Vec<Problem>) -> Value {
    let schema = schema_json();
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new("", format!("internal schema error: {e}")));
            return value.clone();
        }
    };
    let mut pruned = value.clone();
    for e in validator.iter_errors(value) {
        let pointer = e.instance_path().as_str().to_string();
        problems.push(Problem::new(pointer_to_path(value, &pointer), describe(&e)));
        match e.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                if let Some(Value::Object(map)) = pruned.pointer_mut(&pointer) {
                    for key in unexpected {
                        map.remove(key);
                    }
                }
            }
            _ => {
                if let Some((parent, key)) = pointer.rsplit_once('/') {
                    if let Some(Value::Object(map)) = pruned.pointer_mut(parent) {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                }
            }
        }
    }
    pruned
}

/// A readable message for a schema violation.
fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let text = e.to_string();
    // `additionalProperties` messages name the unknown keys; make them read as such.
    if let Some(rest) = text.strip_prefix("Additional properties are not allowed (") {
        if let Some(keys) = rest.split(" were unexpected)").next() {
            return format!("unknown key {}", keys.trim_end_matches(" was unexpected)"));
        }
    }
    // Type mismatches: `5 is not of types "null", "string"` reads better as what was expected.
    for sep in [" is not of types ", " is not of type "] {
        if let Some((found, types)) = text.split_once(sep) {
            let wanted: Vec<&str> = types
                .split(", ")
                .map(|t| t.trim_matches('"'))
                .filter(|t| *t != "null")
                .collect();
            return format!("expected {}, found {found}", wanted.join(" or "));
        }
    }
    text
}

/// Turns a JSON pointer (`/endpoints/1/backend`) into `endpoints[1].backend`.
pub(crate) fn pointer_to_path(root: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut node = Some(root);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{seg}]"));
                node = seg.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&seg);
                node = other.and_then(|v| v.get(&seg));
            }
        }
    }
    out
}

/// Compiles a validated config as snapshot `generation`.
pub fn compile(
    cfg: FileConfig,
    source_name: &str,
    generation: u64,
) -> Result<Snapshot, ConfigError> {
    Snapshot::compile(cfg, generation).map_err(|problems: Vec<Problem>| ConfigError {
        source_name: source_name.to_string(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused() {
        let e = load_str(
            "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\nendpoints: []\n",
            false,
            "dup.yaml",
        )
        .expect_err("duplicate key");
        assert!(e.problems[0].message.contains("duplicate"), "{e}");
    }

    #[test]
    fn minimal_config_is_valid() {
        let text = "listen: 127.0.0.1:8080\nadmin: 127.0.0.1:9090\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n";
        let cfg = load_str(text, false, "t").expect("valid");
        assert_eq!(cfg.endpoints.len(), 1);
    }

    #[test]
    fn pointer_paths_read_like_the_file() {
        let v: Value = serde_json::json!({"endpoints": [{}, {"backend": {"hosts": ["x"]}}]});
        assert_eq!(
            pointer_to_path(&v, "/endpoints/1/backend/hosts/0"),
            "endpoints[1].backend.hosts[0]"
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let text = r#"
listen: 127.0.0.1:8080
bogus: 1
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:3000]
      idle_timeout: 5x
  - path: mcp2
    backend:
      hosts: ["htp:/x"]
"#;
        let err = load_str(text, false, "t").expect_err("invalid");
        let all = err.to_string();
        assert!(all.contains("unknown key"), "{all}");
        assert!(all.contains("bogus"), "{all}");
        assert!(
            all.contains("endpoints[0].backend.idle_timeout: invalid duration \"5x\""),
            "{all}"
        );
        assert!(all.contains("endpoints[1].path"), "{all}");
        assert!(
            all.contains("endpoints[1].backend.hosts[0]: invalid URL \"htp:/x\""),
            "{all}"
        );
    }
}
