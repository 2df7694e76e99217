//! Header modifiers: set, append, remove, copy and rename request headers (towards the upstream)
//! and response headers (towards the client). Values are literal, or read from an environment
//! variable or a file when the config is loaded, so the upstream's own credentials can be injected
//! without clients ever seeing them. Secret values are never logged.

use crate::config::Problem;
use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One header operation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HeaderOp {
    /// Set a header, replacing any value.
    Set(HeaderValueSpec),
    /// Add a value, keeping existing ones.
    Append(HeaderValueSpec),
    /// Remove a header.
    Remove(String),
    /// Copy a header's value to another name (requests: from the client's request).
    Copy(FromTo),
    /// Copy, then remove the original.
    Rename(FromTo),
}

/// A header name and where its value comes from (exactly one of `value`, `env`, `file`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueSpec {
    /// Header name.
    pub name: String,
    /// A literal value (may use `${ENV}` like any config string).
    #[serde(default)]
    pub value: Option<String>,
    /// The name of an environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the value (trailing newline removed), e.g. a mounted secret.
    #[serde(default)]
    pub file: Option<String>,
}

/// Source and target header names.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FromTo {
    /// Source header.
    pub from: String,
    /// Target header.
    pub to: String,
}

#[derive(Debug, Clone)]
enum Op {
    Set(HeaderName, HeaderValue),
    Append(HeaderName, HeaderValue),
    Remove(HeaderName),
    Copy(HeaderName, HeaderName, bool),
}

/// A compiled list of operations, applied in order.
#[derive(Debug, Clone, Default)]
pub struct HeaderModifiers {
    ops: Vec<Op>,
}

fn name(s: &str, at: &str, problems: &mut Vec<Problem>) -> Option<HeaderName> {
    match HeaderName::from_bytes(s.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push(Problem::new(
                at,
                format!("{s:?} is not a valid header name"),
            ));
            None
        }
    }
}

fn value(spec: &HeaderValueSpec, at: &str, problems: &mut Vec<Problem>) -> Option<HeaderValue> {
    let sources = [
        spec.value.is_some(),
        spec.env.is_some(),
        spec.file.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        problems.push(Problem::new(at, "give exactly one of value, env, file"));
        return None;
    }
    let text = if let Some(v) = &spec.value {
        v.clone()
    } else if let Some(var) = &spec.env {
        match std::env::var(var) {
            Ok(v) => v,
            Err(_) => {
                problems.push(Problem::new(
                    format!("{at}.env"),
                    format!("environment variable {var} is not set"),
                ));
                return None;
            }
        }
    } else {
        let path = spec.file.as_deref().unwrap_or_default();
        match std::fs::read_to_string(path) {
            Ok(v) => v.trim_end_matches(['\n', '\r']).to_string(),
            Err(e) => {
                problems.push(Problem::new(
                    format!("{at}.file"),
                    format!("cannot read {path:?}: {e}"),
                ));
                return None;
            }
        }
    };
    match HeaderValue::from_str(&text) {
        // Values may be secrets: mark them so HTTP/2 never indexes them.
        Ok(mut v) => {
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            problems.push(Problem::new(
                at,
                "the value has characters not allowed in a header",
            ));
            None
        }
    }
}

impl HeaderModifiers {
    /// Compiles `ops` at `at`, listing every problem.
    pub fn compile(ops: &[HeaderOp], at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let p = &mut problems;
            let compiled = match op {
                HeaderOp::Set(s) => name(&s.name, &format!("{at}.set.name"), p)
                    .zip(value(s, &format!("{at}.set"), p))
                    .map(|(n, v)| Op::Set(n, v)),
                HeaderOp::Append(s) => name(&s.name, &format!("{at}.append.name"), p)
                    .zip(value(s, &format!("{at}.append"), p))
                    .map(|(n, v)| Op::Append(n, v)),
                HeaderOp::Remove(n) => name(n, &format!("{at}.remove"), p).map(Op::Remove),
                HeaderOp::Copy(ft) | HeaderOp::Rename(ft) => {
                    let kind = if matches!(op, HeaderOp::Copy(_)) {
                        "copy"
                    } else {
                        "rename"
                    };
                    name(&ft.from, &format!("{at}.{kind}.from"), p)
                        .zip(name(&ft.to, &format!("{at}.{kind}.to"), p))
                        .map(|(f, t)| Op::Copy(f, t, kind == "rename"))
                }
            };
            out.extend(compiled);
        }
        if problems.is_empty() {
            Ok(HeaderModifiers { ops: out })
        } else {
            Err(problems)
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies to the upstream request; `copy`/`rename` read from the client's request.
    pub fn apply_request(
        &self,
        client: &RequestHeader,
        req: &mut RequestHeader,
    ) -> pingora::Result<()> {
        self.apply(Some(&client.headers), req)
    }

    /// Applies to a response on its way to the client (`copy`/`rename` read the response).
    pub fn apply_response(&self, resp: &mut ResponseHeader) -> pingora::Result<()> {
        self.apply(None, resp)
    }

    /// The operations in order; `copy`/`rename` read `source`, or `target` itself when `None`.
    fn apply(
        &self,
        source: Option<&http::HeaderMap>,
        target: &mut impl Headers,
    ) -> pingora::Result<()> {
        for op in &self.ops {
            match op {
                Op::Set(n, v) => target.insert(n.clone(), v.clone())?,
                Op::Append(n, v) => target.append(n.clone(), v.clone())?,
                Op::Remove(n) => target.remove(n),
                Op::Copy(from, to, rename) => {
                    let value = source.unwrap_or_else(|| target.map()).get(from).cloned();
                    if let Some(v) = value {
                        target.insert(to.clone(), v)?;
                    }
                    if *rename {
                        target.remove(from);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What header operations need of a request or a response header (Pingora's two types have the
/// same methods but no common trait).
trait Headers {
    fn map(&self) -> &http::HeaderMap;
    fn insert(&mut self, n: HeaderName, v: HeaderValue) -> pingora::Result<()>;
    fn append(&mut self, n: HeaderName, v: HeaderValue) -> pingora::Result<()>;
    fn remove(&mut self, n: &HeaderName);
}

macro_rules! impl_headers {
    ($t:ty) => {
        impl Headers for $t {
            fn map(&self) -> &http::HeaderMap {
                &self.headers
            }
            fn insert(&mut self, n: HeaderName, v: HeaderValue) -> pingora::Result<()> {
                self.insert_header(n, v)
            }
            fn append(&mut self, n: HeaderName, v: HeaderValue) -> pingora::Result<()> {
                self.append_header(n, v).map(|_| ())
            }
            fn remove(&mut self, n: &HeaderName) {
                self.remove_header(n);
            }
        }
    };
}

impl_headers!(RequestHeader);
impl_headers!(ResponseHeader);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, value: &str) -> HeaderValueSpec {
        HeaderValueSpec {
            name: name.into(),
            value: Some(value.into()),
            env: None,
            file: None,
        }
    }

    #[test]
    fn request_operations_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "upstream-secret\n").unwrap();
        let ops = vec![
            HeaderOp::Set(HeaderValueSpec {
                name: "Authorization".into(),
                value: None,
                env: None,
                file: Some(secret.display().to_string()),
            }),
            HeaderOp::Append(spec("X-Tag", "b")),
            HeaderOp::Remove("X-Drop".into()),
            HeaderOp::Copy(FromTo {
                from: "X-User".into(),
                to: "X-Upstream-User".into(),
            }),
            HeaderOp::Rename(FromTo {
                from: "X-Old".into(),
                to: "X-New".into(),
            }),
        ];
        let m = HeaderModifiers::compile(&ops, "p").unwrap();
        let mut client = RequestHeader::build("POST", b"/", None).unwrap();
        client.insert_header("x-user", "alice").unwrap();
        client.insert_header("x-old", "v").unwrap();
        let mut up = RequestHeader::build("POST", b"/", None).unwrap();
        up.insert_header("x-tag", "a").unwrap();
        up.insert_header("x-drop", "1").unwrap();
        up.insert_header("x-old", "v").unwrap();
        m.apply_request(&client, &mut up).unwrap();
        assert_eq!(up.headers["authorization"], "upstream-secret");
        assert_eq!(up.headers.get_all("x-tag").iter().count(), 2);
        assert!(up.headers.get("x-drop").is_none());
        assert_eq!(up.headers["x-upstream-user"], "alice");
        assert_eq!(up.headers["x-new"], "v");
        assert!(up.headers.get("x-old").is_none());
    }

    #[test]
    fn problems_are_listed_with_paths() {
        let ops = vec![
            HeaderOp::Set(HeaderValueSpec {
                name: "bad name".into(),
                value: None,
                env: Some("MCPGATE_SURELY_UNSET".into()),
                file: None,
            }),
            HeaderOp::Append(HeaderValueSpec {
                name: "X".into(),
                value: Some("a".into()),
                env: Some("B".into()),
                file: None,
            }),
            HeaderOp::Set(HeaderValueSpec {
                name: "Y".into(),
                value: None,
                env: None,
                file: Some("/nonexistent/x".into()),
            }),
        ];
        let problems = HeaderModifiers::compile(&ops, "policies.request_headers").unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "policies.request_headers[0].set.name",
                "policies.request_headers[0].set.env",
                "policies.request_headers[1].append",
                "policies.request_headers[2].set.file"
            ]
        );
    }
}
