//! SSE load client for the end-to-end benchmark (`benches/e2e/run.sh`).
//!
//! Opens `--streams` concurrent `GET` SSE streams at `--rate` new streams a second, waits until
//! every one answered (or failed), prints `READY ...`, then holds them for `--hold` seconds,
//! counting events and measuring relay latency (receive time minus the `"t":<ns>` upstream send
//! time carried in each event; both from CLOCK_REALTIME on one machine). Latency is recorded only
//! during the hold, once every stream is open. Ends with one `RESULT ...` line:
//!
//! `RESULT streams=N open_ok=.. open_fail=.. non200=.. closed_early=.. events=.. lat_n=..
//!  p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. mean_us=.. open_s=.. hold_s=..`

#[path = "common.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use common::{find, framing, status, Chunked, Framing};

#[derive(Parser, Debug)]
#[command(about = "SSE stream load client for the end-to-end benchmark")]
struct Args {
    /// Target address (IP:port).
    #[arg(long)]
    addr: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/mcp")]
    path: String,
    /// Concurrent streams.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// New streams a second while opening.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds to hold the streams once all are open.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Give up waiting for streams to open after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    open_timeout: f64,
    /// Runtime threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Source addresses to spread connections over (e.g. 127.0.0.2), round robin; default:
    /// the kernel's choice.
    #[arg(long = "bind")]
    binds: Vec<std::net::IpAddr>,
}

#[derive(Default)]
struct StreamStats {
    open_ok: bool,
    open_fail: bool,
    non200: bool,
    closed_early: bool,
    events: u64,
    lat_ns: Vec<u64>,
}

struct Shared {
    opened: AtomicUsize,
    failed: AtomicUsize,
    holding: AtomicBool,
}

fn main() {
    let args = Args::parse();
    let nofile = common::raise_nofile();
    if (nofile as usize) < args.streams + 64 {
        eprintln!(
            "sse_client: open-file limit {nofile} is too low for {} streams",
            args.streams
        );
    }
    let rt = common::runtime(args.threads);
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n",
        args.path, args.addr
    );
    for h in &args.headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let req: Arc<[u8]> = Arc::from(req.into_bytes());
    let shared = Arc::new(Shared {
        opened: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        holding: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(args.streams);
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(1.0));
    for i in 0..args.streams {
        tokio::time::sleep_until((t0 + gap.mul_f64(i as f64)).into()).await;
        let bind = if args.binds.is_empty() {
            None
        } else {
            Some(args.binds[i % args.binds.len()])
        };
        handles.push(tokio::spawn(one_stream(
            args.addr,
            bind,
            req.clone(),
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    // Wait for every stream to answer or fail.
    let deadline = t0 + Duration::from_secs_f64(args.open_timeout);
    loop {
        let done = shared.opened.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
        if done >= args.streams || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let open_s = t0.elapsed().as_secs_f64();
    shared.holding.store(true, Ordering::Relaxed);
    println!(
        "READY open_ok={} open_fail={} open_s={open_s:.2}",
        shared.opened.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed)
    );
    let hold_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    shared.holding.store(false, Ordering::Relaxed);
    let hold_s = hold_start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);

    let mut total = StreamStats::default();
    let (mut ok, mut fail, mut non200, mut early) = (0usize, 0usize, 0usize, 0usize);
    for h in handles {
        if let Ok(s) = h.await {
            ok += s.open_ok as usize;
            fail += s.open_fail as usize;
            non200 += s.non200 as usize;
            early += s.closed_early as usize;
            total.events += s.events;
            total.lat_ns.extend_from_slice(&s.lat_ns);
        }
    }
    let p = common::percentiles(&mut total.lat_ns);
    println!(
        "RESULT streams={} open_ok={ok} open_fail={fail} non200={non200} closed_early={early} events={} lat_n={} {} open_s={open_s:.2} hold_s={hold_s:.2}",
        args.streams,
        total.events,
        p.n,
        p.micros(),
    );
}

async fn connect(addr: SocketAddr, bind: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    match bind {
        None => TcpStream::connect(addr).await,
        Some(ip) => {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await
        }
    }
}

async fn one_stream(
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
    req: Arc<[u8]>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> StreamStats {
    let mut st = StreamStats::default();
    let fail = |st: &mut StreamStats| {
        st.open_fail = true;
        shared.failed.fetch_add(1, Ordering::Relaxed);
    };
    let mut s = match connect(addr, bind).await {
        Ok(s) => s,
        Err(e) => {
            if shared.failed.load(Ordering::Relaxed) < 3 {
                eprintln!("sse_client: connect: {e}");
            }
            fail(&mut st);
            return st;
        }
    };
    let _ = s.set_nodelay(true);
    if s.write_all(&req).await.is_err() {
        fail(&mut st);
        return st;
    }
    // Response head.
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        let r = tokio::select! {
            r = s.read_buf(&mut buf) => r,
            _ = stop.changed() => { fail(&mut st); return st; }
        };
        match r {
            Ok(0) | Err(_) => {
                fail(&mut st);
                return st;
            }
            Ok(_) => {}
        }
    };
    let code = status(&buf[..head_end]);
    if code != 200 {
        if shared.failed.load(Ordering::Relaxed) < 3 {
            eprintln!(
                "sse_client: status {code}: {}",
                String::from_utf8_lossy(&buf[..head_end.min(buf.len())]).trim()
            );
        }
        st.non200 = true;
        fail(&mut st);
        return st;
    }
    let chunked = framing(&buf[..head_end], true) == Framing::Chunked;
    buf.drain(..head_end);
    st.open_ok = true;
    shared.opened.fetch_add(1, Ordering::Relaxed);

    let mut dec = Chunked::default();
    let mut data: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // Decode what arrived, then split complete events.
        if !buf.is_empty() {
            let now = common::now_unix_ns();
            if chunked {
                let used = dec.feed(&buf, &mut data);
                buf.drain(..used);
            } else {
                data.extend_from_slice(&buf);
                buf.clear();
            }
            let holding = shared.holding.load(Ordering::Relaxed);
            let mut start = 0;
            while let Some(p) = find(&data[start..], b"\n\n") {
                let ev = &data[start..start + p];
                start += p + 2;
                if let Some(tp) = find(ev, b"\"t\":") {
                    let digits = &ev[tp + 4..];
                    let end = digits
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .unwrap_or(digits.len());
                    if let Some(t) = common::parse_usize(&digits[..end]) {
                        if holding {
                            st.events += 1;
                            st.lat_ns.push(now.saturating_sub(t as u64));
                        }
                    }
                }
            }
            data.drain(..start);
            if dec.done {
                st.closed_early = true;
                return st;
            }
        }
        let r = tokio::select! {
            r = s.read_buf(&mut buf) => r,
            _ = stop.changed() => return st,
        };
        match r {
            Ok(0) | Err(_) => {
                st.closed_early = true;
                return st;
            }
            Ok(_) => {}
        }
    }
}
