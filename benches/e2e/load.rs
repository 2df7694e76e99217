//! Fixed-rate (open-loop) HTTP/1.1 load generator for the end-to-end benchmark
//! (`benches/e2e/run.sh`): wrk cannot hold a fixed rate, and this is smaller to build than oha.
//!
//! `--connections` keep-alive connections share `--rate` requests a second: connection k sends
//! its j-th request at `start + (k + j*C)/rate`. Latency runs from the scheduled time when the
//! previous answer on the connection came too late to send on time (coordinated-omission
//! correction, as wrk2 does), otherwise from the actual send (tokio's timer is 1 ms coarse and
//! its lateness is ours, not the server's). The first `--warmup` seconds are not recorded. Ends
//! with one line:
//!
//! `RESULT rate=.. sent=.. ok=.. non2xx=.. errors=.. late=.. achieved_rps=.. p50_us=.. p90_us=..
//!  p99_us=.. p999_us=.. max_us=.. mean_us=..`

#[path = "common.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{find, framing, status, Chunked, Framing};

#[derive(Parser, Debug)]
#[command(about = "Fixed-rate HTTP/1.1 load generator for the end-to-end benchmark")]
struct Args {
    /// Target address (IP:port).
    #[arg(long)]
    addr: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/mcp")]
    path: String,
    /// Method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Request body file (default: none).
    #[arg(long)]
    body_file: Option<String>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Requests a second, all connections together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds to measure (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the same rate before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Runtime threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Default)]
struct ConnStats {
    sent: u64,
    ok: u64,
    non2xx: u64,
    errors: u64,
    /// Sends that left after their scheduled time because the previous answer was late.
    late: u64,
    lat_ns: Vec<u64>,
}

fn main() {
    let args = Args::parse();
    common::raise_nofile();
    let rt = common::runtime(args.threads);
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let body = match &args.body_file {
        Some(p) => std::fs::read(p).expect("read body file"),
        None => Vec::new(),
    };
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        args.method, args.path, args.addr
    );
    for h in &args.headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() || args.method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(&body);
    let req: Arc<[u8]> = Arc::from(req);

    let c = args.connections.max(1);
    let period = Duration::from_secs_f64(c as f64 / args.rate);
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut handles = Vec::new();
    for k in 0..c {
        let first = start + Duration::from_secs_f64(k as f64 / args.rate);
        handles.push(tokio::spawn(conn(
            args.addr,
            req.clone(),
            first,
            period,
            measure_from,
            end,
        )));
    }
    let mut total = ConnStats::default();
    for h in handles {
        if let Ok(s) = h.await {
            total.sent += s.sent;
            total.ok += s.ok;
            total.non2xx += s.non2xx;
            total.errors += s.errors;
            total.late += s.late;
            total.lat_ns.extend_from_slice(&s.lat_ns);
        }
    }
    let p = common::percentiles(&mut total.lat_ns);
    println!(
        "RESULT rate={} sent={} ok={} non2xx={} errors={} late={} achieved_rps={:.1} {}",
        args.rate,
        total.sent,
        total.ok,
        total.non2xx,
        total.errors,
        total.late,
        p.n as f64 / args.duration,
        p.micros(),
    );
}

async fn conn(
    addr: SocketAddr,
    req: Arc<[u8]>,
    first: Instant,
    period: Duration,
    measure_from: Instant,
    end: Instant,
) -> ConnStats {
    let mut st = ConnStats::default();
    let mut s: Option<TcpStream> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut body: Vec<u8> = Vec::with_capacity(4096);
    let mut j: u32 = 0;
    loop {
        let sched = first + period * j;
        j += 1;
        if sched >= end {
            return st;
        }
        let now = Instant::now();
        let late = now > sched;
        if !late {
            tokio::time::sleep_until(sched.into()).await;
        }
        let measured = sched >= measure_from;
        if s.is_none() {
            match TcpStream::connect(addr).await {
                Ok(c) => {
                    let _ = c.set_nodelay(true);
                    s = Some(c);
                }
                Err(_) => {
                    st.errors += measured as u64;
                    continue;
                }
            }
        }
        let sock = s.as_mut().unwrap();
        let sent_at = Instant::now();
        st.sent += measured as u64;
        let res = exchange(sock, &req, &mut buf, &mut body).await;
        let done = Instant::now();
        match res {
            Ok((code, keep)) => {
                if measured {
                    if (200..300).contains(&code) {
                        st.ok += 1;
                    } else {
                        st.non2xx += 1;
                    }
                    let from = if late {
                        st.late += 1;
                        sched
                    } else {
                        sent_at
                    };
                    st.lat_ns.push(done.duration_since(from).as_nanos() as u64);
                }
                if !keep {
                    s = None;
                }
            }
            Err(_) => {
                st.errors += measured as u64;
                s = None;
                buf.clear();
            }
        }
    }
}

/// One request and its whole response; returns the status and whether the connection stays
/// open.
async fn exchange(
    s: &mut TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    s.write_all(req).await?;
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        if s.read_buf(buf).await? == 0 {
            return Err(eof());
        }
    };
    let head = &buf[..head_end];
    let code = status(head);
    let keep = !common::header(head, "connection")
        .map(|v| v.eq_ignore_ascii_case(b"close"))
        .unwrap_or(false);
    let f = framing(head, true);
    buf.drain(..head_end);
    match f {
        Framing::Length(n) => {
            while buf.len() < n {
                if s.read_buf(buf).await? == 0 {
                    return Err(eof());
                }
            }
            buf.drain(..n);
        }
        Framing::Chunked => {
            let mut d = Chunked::default();
            loop {
                body.clear();
                let used = d.feed(buf, body);
                buf.drain(..used);
                if d.done {
                    break;
                }
                if s.read_buf(buf).await? == 0 {
                    return Err(eof());
                }
            }
        }
        Framing::Close => {
            while s.read_buf(buf).await? != 0 {
                buf.clear();
            }
            buf.clear();
            return Ok((code, false));
        }
    }
    Ok((code, keep))
}
