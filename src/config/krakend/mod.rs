//! KrakenD configuration files (`krakend.json`, version 3), read into mcpgate's own config
//! structures so that validation, `-t`, hot reload and the schema apply to them unchanged.
//!
//! A file is a KrakenD file when it is an object whose `endpoints[]` items have `endpoint` and
//! `backend` (mcpgate's have `path`), or whose `version` is a number. Each KrakenD setting is
//! translated into the mcpgate config value it means; a setting mcpgate cannot honour is a
//! problem with its KrakenD path: an error when it protects something (auth, policies, filters,
//! limits), a warning when it is cosmetic (debug endpoints, logging details).

mod auth;
mod cel;
mod endpoint;
mod inherited;
mod martian;
mod obj;
mod ratelimit;
mod service;
mod traffic;
mod yaml;

pub use yaml::to_commented_yaml;

use super::Problem;
use serde_json::Value;

/// What translating a KrakenD file gave.
#[derive(Debug, Default)]
pub struct Translation {
    /// The config, in mcpgate's own shape (validated afterwards like any mcpgate file).
    pub config: Value,
    /// Settings that cannot be honoured and protect something: the file is refused.
    pub errors: Vec<Problem>,
    /// Settings without an mcpgate equivalent that protect nothing: printed, then skipped.
    pub warnings: Vec<Problem>,
    /// Where a setting changes meaning: mcpgate config path -> comment (for `mcpgate convert`).
    pub notes: Vec<(String, String)>,
}

/// Whether `value` looks like a KrakenD configuration.
pub fn is_krakend(value: &Value) -> bool {
    let Some(map) = value.as_object() else {
        return false;
    };
    if map.get("version").is_some_and(Value::is_number) {
        return true;
    }
    map.get("endpoints")
        .and_then(Value::as_array)
        .is_some_and(|eps| {
            !eps.is_empty()
                && eps.iter().all(|e| {
                    e.get("endpoint").is_some() && e.get("backend").is_some_and(Value::is_array)
                })
        })
}

/// Translates a KrakenD configuration into mcpgate's config shape.
pub fn translate(value: &Value) -> Translation {
    let mut cx = Cx::default();
    let config = service::translate(value, &mut cx);
    Translation {
        config,
        errors: cx.errors,
        warnings: cx.warnings,
        notes: cx.notes,
    }
}

/// The problems and notes collected while translating.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    notes: Vec<(String, String)>,
}

impl Cx {
    /// A setting that cannot be honoured and protects something.
    pub(crate) fn error(&mut self, at: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(Problem::new(at, msg));
    }

    /// A setting that is skipped and protects nothing.
    pub(crate) fn warn(&mut self, at: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push(Problem::new(at, msg));
    }

    /// A comment for `mcpgate convert` on the mcpgate setting at `path`.
    pub(crate) fn note(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.notes.push((path.into(), msg.into()));
    }

    /// Either kind, by `security`.
    pub(crate) fn problem(
        &mut self,
        security: bool,
        at: impl Into<String>,
        msg: impl Into<String>,
    ) {
        if security {
            self.error(at, msg)
        } else {
            self.warn(at, msg)
        }
    }
}

/// A KrakenD duration (`2s`, `500ms`, `1m30s`, `1.5s`) as mcpgate text (`2s`, `500ms`, `1500ms`).
pub(crate) fn duration(text: &str) -> Option<String> {
    let t = text.trim();
    if super::parse_duration(t).is_ok() {
        return Some(t.to_string());
    }
    // Fractional or nanosecond/microsecond units: go through milliseconds.
    let mut rest = t;
    let mut millis = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        millis += n * scale;
        rest = &rest[unit_end..];
    }
    let ms = millis.round();
    (1.0..1e12)
        .contains(&ms)
        .then(|| format!("{}ms", ms as u64))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_docs;
