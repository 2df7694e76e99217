//! Shared helpers of the end-to-end benchmark programs (included with `#[path]`; not a crate).
//! Minimal HTTP/1.1 parsing on byte buffers: the programs must stay cheap so that the load
//! generator, the upstream and the proxy under test can share two cores.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME): the clock both ends of an SSE stream share
/// on one machine.
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
}

const RLIMIT_NOFILE: i32 = 7;

/// Raise the soft open-file limit to the hard limit; returns the resulting soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = RLimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls on a local struct of the C layout.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.cur < lim.max {
            let want = RLimit {
                cur: lim.max,
                max: lim.max,
            };
            if setrlimit(RLIMIT_NOFILE, &want) == 0 {
                lim.cur = lim.max;
            }
        }
    }
    lim.cur
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last = hay.len() - needle.len();
    let mut i = 0;
    while i <= last {
        match hay[i..=last].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// Case-insensitive header lookup in a raw header block (lines after the start line).
pub fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                return Some(trim(&line[colon + 1..]));
            }
        }
    }
    None
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub fn parse_usize(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as usize)?;
    }
    Some(n)
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// `Transfer-Encoding: chunked` wins over `Content-Length`.
pub fn framing(head: &[u8], is_response: bool) -> Framing {
    if let Some(te) = header(head, "transfer-encoding") {
        if find(&te.to_ascii_lowercase(), b"chunked").is_some() {
            return Framing::Chunked;
        }
    }
    match header(head, "content-length").and_then(parse_usize) {
        Some(n) => Framing::Length(n),
        None if is_response => Framing::Close,
        None => Framing::Length(0),
    }
}

/// Status code of a response head.
pub fn status(head: &[u8]) -> u16 {
    // "HTTP/1.1 200 OK"
    head.get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Incremental decoder of a chunked body. `feed` appends the decoded data of `input` to `out`
/// and returns how many input bytes it consumed (the rest is an incomplete chunk header) and
/// whether the terminating chunk was seen.
#[derive(Default)]
pub struct Chunked {
    /// Data bytes left in the current chunk.
    remaining: usize,
    /// Expect the CRLF that ends a chunk's data.
    crlf: bool,
    /// After the last (zero-size) chunk: trailer lines until an empty one.
    last: bool,
    pub done: bool,
}

impl Chunked {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        loop {
            if self.done {
                return i;
            }
            if self.last {
                let Some(nl) = input[i..].iter().position(|&b| b == b'\n') else {
                    return i;
                };
                let empty = nl == 0 || (nl == 1 && input[i] == b'\r');
                i += nl + 1;
                if empty {
                    self.done = true;
                }
                continue;
            }
            if self.remaining > 0 {
                let n = self.remaining.min(input.len() - i);
                out.extend_from_slice(&input[i..i + n]);
                i += n;
                self.remaining -= n;
                if self.remaining > 0 {
                    return i;
                }
                self.crlf = true;
            }
            if self.crlf {
                if input.len() - i < 2 {
                    return i;
                }
                i += 2;
                self.crlf = false;
            }
            // chunk header: HEX[;ext]\r\n
            let Some(nl) = input[i..].iter().position(|&b| b == b'\n') else {
                return i;
            };
            let line = &input[i..i + nl];
            let hex_end = line
                .iter()
                .position(|b| !b.is_ascii_hexdigit())
                .unwrap_or(line.len());
            let size =
                usize::from_str_radix(std::str::from_utf8(&line[..hex_end]).unwrap_or("0"), 16)
                    .unwrap_or(0);
            i += nl + 1;
            if size == 0 {
                self.last = true;
                continue;
            }
            self.remaining = size;
        }
    }
}

/// Sorted-sample percentiles (values in whatever unit the caller stored).
pub struct Percentiles {
    pub n: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    /// `p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. mean_us=..`, as `run.sh` parses them.
    pub fn micros(&self) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        format!(
            "p50_us={:.0} p90_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0} mean_us={:.0}",
            us(self.p50),
            us(self.p90),
            us(self.p99),
            us(self.p999),
            us(self.max),
            self.mean / 1000.0
        )
    }
}

pub fn percentiles(v: &mut [u64]) -> Percentiles {
    if v.is_empty() {
        return Percentiles {
            n: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
            mean: 0.0,
        };
    }
    v.sort_unstable();
    let at = |q: f64| v[(((v.len() as f64) * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        n: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
    }
}

/// A tokio runtime with `threads` workers (1: a current-thread runtime, the cheapest).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_split_anywhere() {
        let wire = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            let mut buf = wire[..split].to_vec();
            let used = d.feed(&buf, &mut out);
            buf.drain(..used);
            buf.extend_from_slice(&wire[split..]);
            let used = d.feed(&buf, &mut out);
            assert_eq!(used, buf.len(), "split {split}");
            assert!(d.done);
            assert_eq!(out, b"hello world");
        }
    }
}
