//! Payload limits: the request body (413; refused before connecting when `Content-Length` says so,
//! counted while streaming otherwise) and the request headers' count and size (431).

use crate::config::Problem;
use crate::error::GatewayError;
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A size: a number of bytes, or text such as `512KiB`, `4MiB`, `1MB`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// With a unit: B, KB, KiB, MB, MiB, GB, GiB.
    Text(String),
}

/// Request size limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body (default `4MiB`).
    #[serde(default)]
    pub max_body: Option<Size>,
    /// Largest total size of the request headers, names and values (default `32KiB`).
    #[serde(default)]
    pub max_header_bytes: Option<Size>,
    /// Most request header fields (default 100).
    #[serde(default)]
    pub max_headers: Option<usize>,
}

/// The compiled limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body in bytes.
    pub max_body: u64,
    max_header_bytes: u64,
    max_headers: usize,
}

/// Parses a [`Size`].
pub fn parse_size(size: &Size) -> Result<u64, String> {
    let text = match size {
        Size::Bytes(n) => return Ok(*n),
        Size::Text(t) => t.trim(),
    };
    let bad = || format!("invalid size {text:?} (use e.g. 65536, 512KiB, 4MiB, 1MB)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().map_err(|_| bad())?;
    let mult: u64 = match text[split..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

impl Limits {
    /// Compiles `cfg` at `at`, listing every problem.
    pub fn compile(cfg: &LimitsConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut size = |v: &Option<Size>, key: &str, default: u64| match v.as_ref().map(parse_size)
        {
            None => default,
            Some(Ok(n)) if n > 0 => n,
            Some(Ok(_)) => {
                problems.push(Problem::new(
                    format!("{at}.{key}"),
                    "must be greater than zero",
                ));
                default
            }
            Some(Err(m)) => {
                problems.push(Problem::new(format!("{at}.{key}"), m));
                default
            }
        };
        let max_body = size(&cfg.max_body, "max_body", 4 << 20);
        let max_header_bytes = size(&cfg.max_header_bytes, "max_header_bytes", 32 << 10);
        if cfg.max_headers == Some(0) {
            problems.push(Problem::new(
                format!("{at}.max_headers"),
                "must be at least 1",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            max_body,
            max_header_bytes,
            max_headers: cfg.max_headers.unwrap_or(100),
        })
    }

    /// Checks the header section (the request line included) and a declared `Content-Length`.
    pub fn check_request(&self, req: &RequestHeader) -> Result<(), GatewayError> {
        let count = req.headers.len();
        // `METHOD SP target SP HTTP/1.1 CRLF`
        let request_line = req.method.as_str().len() + req.raw_path().len() + 12;
        let bytes: usize = request_line
            + req
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if count > self.max_headers || bytes as u64 > self.max_header_bytes {
            return Err(GatewayError::HeadersTooLarge);
        }
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(GatewayError::PayloadTooLarge);
        }
        Ok(())
    }

    /// Counts a streamed body chunk; `seen` is the running total.
    pub fn count(&self, seen: &mut u64, chunk: usize) -> Result<(), GatewayError> {
        *seen += chunk as u64;
        if *seen > self.max_body {
            Err(GatewayError::PayloadTooLarge)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Size::Bytes(10)), Ok(10));
        assert_eq!(parse_size(&Size::Text("4MiB".into())), Ok(4 << 20));
        assert_eq!(parse_size(&Size::Text("1 MB".into())), Ok(1_000_000));
        assert!(parse_size(&Size::Text("4 parsecs".into())).is_err());
        assert!(parse_size(&Size::Text("99999999999999GiB".into())).is_err());
    }

    #[test]
    fn declared_length_and_streaming_count() {
        let l = Limits::compile(
            &LimitsConfig {
                max_body: Some(Size::Bytes(10)),
                ..Default::default()
            },
            "p",
        )
        .unwrap();
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        r.insert_header("content-length", "10").unwrap();
        assert!(l.check_request(&r).is_ok(), "exactly the limit is allowed");
        r.insert_header("content-length", "11").unwrap();
        assert_eq!(l.check_request(&r), Err(GatewayError::PayloadTooLarge));
        let mut seen = 0;
        assert!(l.count(&mut seen, 6).is_ok());
        assert!(l.count(&mut seen, 4).is_ok());
        assert_eq!(l.count(&mut seen, 1), Err(GatewayError::PayloadTooLarge));
    }

    #[test]
    fn header_limits() {
        let l = Limits::compile(
            &LimitsConfig {
                max_headers: Some(2),
                ..Default::default()
            },
            "p",
        )
        .unwrap();
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        r.insert_header("a", "1").unwrap();
        r.insert_header("b", "2").unwrap();
        assert!(l.check_request(&r).is_ok());
        r.insert_header("c", "3").unwrap();
        assert_eq!(l.check_request(&r), Err(GatewayError::HeadersTooLarge));
    }

    #[test]
    fn the_request_line_counts_toward_the_header_bytes() {
        let l = Limits::compile(
            &LimitsConfig {
                max_header_bytes: Some(Size::Bytes(100)),
                ..Default::default()
            },
            "p",
        )
        .unwrap();
        let mut r = RequestHeader::build("GET", b"/mcp", None).unwrap();
        r.insert_header("host", "a").unwrap();
        assert!(l.check_request(&r).is_ok(), "a short line and header fit");
        // 3 + 80 + 12 = 95 bytes of request line, plus `host: a` (9): over 100, while
        // the header fields alone (9 bytes) are far under it.
        let long = format!("/mcp?{}", "q".repeat(75));
        let mut r = RequestHeader::build("GET", long.as_bytes(), None).unwrap();
        r.insert_header("host", "a").unwrap();
        assert_eq!(l.check_request(&r), Err(GatewayError::HeadersTooLarge));
        let fits = format!("/mcp?{}", "q".repeat(70));
        let mut r = RequestHeader::build("GET", fits.as_bytes(), None).unwrap();
        r.insert_header("host", "a").unwrap();
        assert!(l.check_request(&r).is_ok(), "90 + 9 bytes fit in 100");
    }
}
