//! Reading one KrakenD object: typed getters that report a wrong type with its path, and a
//! final check that every key was understood. Keys starting with `@`, `$`, `_` or `#` are
//! comments and metadata to KrakenD (its schema's `^[@$_#]` pattern) and are skipped.

use super::Cx;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One KrakenD object being read.
pub(crate) struct Obj<'a> {
    map: Option<&'a Map<String, Value>>,
    /// The KrakenD path of the object.
    pub at: String,
    used: HashSet<&'a str>,
}

impl<'a> Obj<'a> {
    /// Reads `value` at `at`; a value that is not an object is reported (as an error when
    /// `security`).
    pub(crate) fn new(value: &'a Value, at: &str, security: bool, cx: &mut Cx) -> Obj<'a> {
        let map = value.as_object();
        if map.is_none() {
            cx.problem(security, at, format!("expected an object, found {value}"));
        }
        Obj {
            map,
            at: at.to_string(),
            used: HashSet::new(),
        }
    }

    /// The path of `key` in this object.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    /// The raw value of `key`, marked as understood.
    pub(crate) fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        let v = self.map?.get(key)?;
        self.used.insert(key);
        Some(v)
    }

    /// A string value.
    pub(crate) fn str(&mut self, key: &'a str, cx: &mut Cx) -> Option<String> {
        let v = self.get(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                cx.error(self.path(key), format!("expected a string, found {v}"));
                None
            }
        }
    }

    /// A boolean value.
    pub(crate) fn bool(&mut self, key: &'a str, cx: &mut Cx) -> Option<bool> {
        let v = self.get(key)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                cx.error(self.path(key), format!("expected true or false, found {v}"));
                None
            }
        }
    }

    /// A non-negative number.
    pub(crate) fn num(&mut self, key: &'a str, cx: &mut Cx) -> Option<f64> {
        let v = self.get(key)?;
        match v.as_f64() {
            Some(n) if n >= 0.0 => Some(n),
            _ => {
                cx.error(
                    self.path(key),
                    format!("expected a non-negative number, found {v}"),
                );
                None
            }
        }
    }

    /// A non-negative whole number.
    pub(crate) fn uint(&mut self, key: &'a str, cx: &mut Cx) -> Option<u64> {
        let v = self.get(key)?;
        match v.as_u64() {
            Some(n) => Some(n),
            None => {
                cx.error(
                    self.path(key),
                    format!("expected a non-negative whole number, found {v}"),
                );
                None
            }
        }
    }

    /// A list of strings.
    pub(crate) fn strs(&mut self, key: &'a str, cx: &mut Cx) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let at = self.path(key);
        let Some(items) = v.as_array() else {
            cx.error(at, format!("expected a list of strings, found {v}"));
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => cx.error(
                    format!("{at}[{i}]"),
                    format!("expected a string, found {item}"),
                ),
            }
        }
        Some(out)
    }

    /// A KrakenD duration, as mcpgate duration text.
    pub(crate) fn duration(&mut self, key: &'a str, cx: &mut Cx) -> Option<String> {
        let s = self.str(key, cx)?;
        let d = super::duration(&s);
        if d.is_none() {
            cx.error(
                self.path(key),
                format!("invalid duration {s:?} (use e.g. 500ms, 2s, 1m)"),
            );
        }
        d
    }

    /// Marks keys as understood without reading them.
    pub(crate) fn accept(&mut self, keys: &[&'a str]) {
        for k in keys {
            if self.map.is_some_and(|m| m.contains_key(*k)) {
                self.used.insert(k);
            }
        }
    }

    /// Reports keys present here as skipped: errors when `security`, warnings otherwise.
    pub(crate) fn unsupported(&mut self, keys: &[&'a str], security: bool, why: &str, cx: &mut Cx) {
        for k in keys {
            if self.get(k).is_some() {
                cx.problem(
                    security,
                    self.path(k),
                    format!("not supported by mcpgate: {why}"),
                );
            }
        }
    }

    /// Reports every key not read (an error when `security`: an unknown key may be a
    /// protection that would silently be missing).
    pub(crate) fn finish(self, security: bool, cx: &mut Cx) {
        let Some(map) = self.map else { return };
        for key in map.keys() {
            if key.starts_with(['@', '$', '_', '#']) || self.used.contains(key.as_str()) {
                continue;
            }
            cx.problem(
                security,
                self.path(key),
                "unknown or unsupported key (mcpgate does not know what it would do)",
            );
        }
    }
}
