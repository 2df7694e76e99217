//! A fast MCP-shaped upstream for the end-to-end benchmark (`benches/e2e/run.sh`).
//!
//! Hand-rolled HTTP/1.1 with keep-alive and pipelining on a small tokio runtime, so that it
//! costs as little CPU as possible next to the proxy under test:
//!
//! - `POST /mcp`: a ~1 KB JSON-RPC result (`application/json`, `Content-Length`), echoing the
//!   request's `id`. When the `Accept` header asks for `text/event-stream` without
//!   `application/json`, or on `POST /mcp-sse`: the same result as a short SSE answer (one
//!   `event: message`, chunked).
//! - `GET /mcp` (or `/mcp-sse`) with `Accept: text/event-stream`: a long SSE stream; every
//!   `--interval` one `event: message` whose data carries `"t":<ns since the Unix epoch>` taken
//!   just before the write, so a client computes relay latency. SIGUSR1 pauses and resumes every
//!   stream's events (to measure a gateway holding idle streams).
//! - `DELETE /mcp`: 202.
//! - `GET /stats`: `{"connections":N,"requests":N,"streams":N}`: connections accepted and requests
//!   answered so far, streams open now (to see whether a proxy reuses its upstream connections).
//!
//! Prints `LISTEN <addr>` on stdout once bound (use `--listen 127.0.0.1:0` for an ephemeral port).

#[path = "common.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{find, framing, header, Chunked, Framing};

#[derive(Parser, Debug)]
#[command(about = "MCP-shaped upstream for the end-to-end benchmark")]
struct Args {
    /// Listen address (port 0: ephemeral; the bound address is printed as `LISTEN addr`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Runtime threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Time between two events of a GET stream, e.g. 1s, 250ms.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Size of the JSON-RPC result in bytes (approximately).
    #[arg(long, default_value_t = 1024)]
    result_bytes: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s}"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" | "" => n,
        "us" => n / 1e6,
        _ => return Err(format!("bad duration unit in {s}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

struct Shared {
    interval: Duration,
    /// JSON-RPC result body, split around the request id.
    json_prefix: Vec<u8>,
    json_suffix: Vec<u8>,
    paused: AtomicBool,
    streams: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
}

fn main() {
    let args = Args::parse();
    common::raise_nofile();
    let rt = common::runtime(args.threads);
    rt.block_on(serve(args));
}

async fn serve(args: Args) {
    // A ~1 KB tools/call result, shaped like an MCP server's answer.
    let filler_len = args.result_bytes.saturating_sub(160).max(1);
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(filler_len)
        .collect();
    let json_prefix = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
    let json_suffix = format!(
        ",\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{filler}\"}}],\"structuredContent\":{{\"ok\":true,\"n\":42}},\"isError\":false}}}}"
    )
    .into_bytes();
    let shared = Arc::new(Shared {
        interval: args.interval,
        json_prefix,
        json_suffix,
        paused: AtomicBool::new(false),
        streams: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });

    let sock = socket2::Socket::new(
        socket2::Domain::for_address(args.listen),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    sock.set_reuse_address(true).ok();
    sock.bind(&args.listen.into()).expect("bind");
    sock.listen(8192).expect("listen");
    sock.set_nonblocking(true).expect("nonblocking");
    let listener = TcpListener::from_std(sock.into()).expect("listener");
    println!("LISTEN {}", listener.local_addr().expect("addr"));

    {
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(mut sig) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            else {
                return;
            };
            while sig.recv().await.is_some() {
                let was = shared.paused.fetch_xor(true, Ordering::Relaxed);
                eprintln!(
                    "upstream: events {} ({} streams open)",
                    if was { "resumed" } else { "paused" },
                    shared.streams.load(Ordering::Relaxed)
                );
            }
        });
    }

    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = connection(stream, shared).await;
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("upstream: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

enum Kind {
    Json,
    SseAnswer,
    Stream,
    Delete,
    Stats,
    NotFound,
    MethodNotAllowed,
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    let mut body: Vec<u8> = Vec::new();
    let mut eof = false;
    loop {
        // Answer every complete request in the buffer (pipelining), then write once.
        let mut consumed = 0;
        let mut stream_after: Option<usize> = None;
        let mut close = false;
        loop {
            let rest = &buf[consumed..];
            let Some(end) = find(rest, b"\r\n\r\n") else {
                break;
            };
            let head = &rest[..end + 4];
            let f = framing(head, false);
            // body
            body.clear();
            let body_start = end + 4;
            let used = match f {
                Framing::Length(n) => {
                    if rest.len() < body_start + n {
                        break;
                    }
                    body.extend_from_slice(&rest[body_start..body_start + n]);
                    body_start + n
                }
                Framing::Chunked => {
                    let mut d = Chunked::default();
                    let n = d.feed(&rest[body_start..], &mut body);
                    if !d.done {
                        break;
                    }
                    body_start + n
                }
                Framing::Close => unreachable!(),
            };
            let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(0);
            let line = &head[..line_end];
            let mut parts = line.split(|&b| b == b' ');
            let method = parts.next().unwrap_or(b"");
            let path = parts.next().unwrap_or(b"");
            let path = path.split(|&b| b == b'?').next().unwrap_or(b"");
            let accept = header(head, "accept").unwrap_or(b"");
            let wants_sse = find(accept, b"text/event-stream").is_some();
            let wants_json = find(accept, b"application/json").is_some();
            if header(head, "connection")
                .map(|v| v.eq_ignore_ascii_case(b"close"))
                .unwrap_or(false)
            {
                close = true;
            }
            let kind = match (method, path) {
                (b"POST", b"/mcp") if wants_sse && !wants_json => Kind::SseAnswer,
                (b"POST", b"/mcp") => Kind::Json,
                (b"POST", b"/mcp-sse") => Kind::SseAnswer,
                (b"GET", b"/mcp" | b"/mcp-sse") if wants_sse => Kind::Stream,
                (b"GET", b"/mcp" | b"/mcp-sse") => Kind::MethodNotAllowed,
                (b"DELETE", b"/mcp" | b"/mcp-sse") => Kind::Delete,
                (_, b"/mcp" | b"/mcp-sse") => Kind::MethodNotAllowed,
                (b"GET", b"/stats") => Kind::Stats,
                _ => Kind::NotFound,
            };
            consumed += used;
            shared.requests.fetch_add(1, Ordering::Relaxed);
            match kind {
                Kind::Json => json_answer(&shared, &body, &mut out),
                Kind::SseAnswer => sse_answer(&shared, &body, &mut out),
                Kind::Delete => out.extend_from_slice(
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
                ),
                Kind::Stats => {
                    let body = format!(
                        "{{\"connections\":{},\"requests\":{},\"streams\":{}}}",
                        shared.connections.load(Ordering::Relaxed),
                        shared.requests.load(Ordering::Relaxed),
                        shared.streams.load(Ordering::Relaxed)
                    );
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                }
                Kind::NotFound => out.extend_from_slice(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                ),
                Kind::MethodNotAllowed => out.extend_from_slice(
                    b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, POST, DELETE\r\nContent-Length: 0\r\n\r\n",
                ),
                Kind::Stream => {
                    stream_after = Some(consumed);
                    break;
                }
            }
            if close {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        buf.drain(..consumed);
        if stream_after.is_some() {
            return sse_stream(stream, shared).await;
        }
        if close || eof {
            return Ok(());
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            eof = true;
            if buf.is_empty() {
                return Ok(());
            }
        }
    }
}

/// The request's JSON-RPC id (number or string), or `null`.
fn request_id(body: &[u8]) -> &[u8] {
    let Some(p) = find(body, b"\"id\"") else {
        return b"null";
    };
    let rest = &body[p + 4..];
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        return b"null";
    };
    let rest = common::trim(&rest[colon + 1..]);
    if rest.first() == Some(&b'"') {
        match rest[1..].iter().position(|&b| b == b'"') {
            Some(q) => &rest[..q + 2],
            None => b"null",
        }
    } else {
        let end = rest
            .iter()
            .position(|&b| b == b',' || b == b'}' || b == b' ')
            .unwrap_or(rest.len());
        if end == 0 {
            b"null"
        } else {
            &rest[..end]
        }
    }
}

fn json_answer(shared: &Shared, body: &[u8], out: &mut Vec<u8>) {
    let id = request_id(body);
    let len = shared.json_prefix.len() + id.len() + shared.json_suffix.len();
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&shared.json_prefix);
    out.extend_from_slice(id);
    out.extend_from_slice(&shared.json_suffix);
}

fn sse_answer(shared: &Shared, body: &[u8], out: &mut Vec<u8>) {
    let id = request_id(body);
    let len = b"event: message\ndata: ".len()
        + shared.json_prefix.len()
        + id.len()
        + shared.json_suffix.len()
        + 2;
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(&shared.json_prefix);
    out.extend_from_slice(id);
    out.extend_from_slice(&shared.json_suffix);
    out.extend_from_slice(b"\n\n\r\n0\r\n\r\n");
}

/// A long GET stream: one event per interval until the client goes away.
async fn sse_stream(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await?;
    shared.streams.fetch_add(1, Ordering::Relaxed);
    struct Gauge<'a>(&'a AtomicU64);
    impl Drop for Gauge<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _g = Gauge(&shared.streams);
    let (mut rd, mut wr) = stream.split();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + shared.interval,
        shared.interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut sink = [0u8; 512];
    let mut chunk: Vec<u8> = Vec::with_capacity(256);
    loop {
        tokio::select! {
            r = rd.read(&mut sink) => {
                match r {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {} // ignore anything the client sends
                }
            }
            _ = tick.tick() => {
                if shared.paused.load(Ordering::Relaxed) {
                    continue;
                }
                seq += 1;
                let t = common::now_unix_ns();
                let data = format!(
                    "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"level\":\"info\",\"data\":{{\"seq\":{seq},\"t\":{t}}}}}}}\n\n"
                );
                chunk.clear();
                chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                chunk.extend_from_slice(data.as_bytes());
                chunk.extend_from_slice(b"\r\n");
                wr.write_all(&chunk).await?;
            }
        }
    }
}
