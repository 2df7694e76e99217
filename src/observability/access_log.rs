//! The JSON access log: one line per request, formatted and written by a dedicated thread so the
//! request path only hands over a small record (and never blocks: when the queue is full the
//! line is dropped and counted in `mcpgate_access_log_dropped_total`).

use super::metrics::metrics;
use serde::Serialize;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord {
    /// Time the request started (Unix seconds).
    #[serde(skip)]
    pub started: Option<SystemTime>,
    /// Client address.
    pub client: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path (never the query string, which may carry secrets).
    pub path: String,
    /// Matched endpoint name.
    pub endpoint: Option<String>,
    /// Final response status sent to the client; `None` (logged as `null`) when the client got
    /// no answer (it went away first, or nothing could be sent).
    pub status: Option<u16>,
    /// How the request ended (`metrics::REQUEST_ENDS`).
    pub end: &'static str,
    /// Total duration in milliseconds.
    pub duration_ms: f64,
    /// Upstream time to first byte in milliseconds.
    pub upstream_ttfb_ms: Option<f64>,
    /// Upstream host URL.
    pub upstream: Option<String>,
    /// On a federated endpoint, the alias of the server a call was routed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes.
    pub bytes_out: usize,
    /// The response was an SSE stream.
    pub sse: bool,
    /// `MCP-Protocol-Version` of the request.
    pub mcp_protocol_version: Option<String>,
    /// A real error only, under a stable name: why the gateway refused or failed the request, or
    /// what failed upstream. `None` for every normal end (a client leaving, a stream ended).
    pub error: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    record: &'a AccessRecord,
}

/// What the writer thread receives.
enum Msg {
    Record(Box<AccessRecord>),
    /// Write out everything queued before, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

static SENDER: OnceLock<SyncSender<Msg>> = OnceLock::new();

/// Starts the writer thread. `path` is `-` for standard output or a file to append to.
/// Without a call, records are discarded.
pub fn init(path: &str) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )
    };
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_loop(rx, out))?;
    let _ = SENDER.set(tx);
    Ok(())
}

/// Whether the access log is on (check before building a record).
pub fn enabled() -> bool {
    SENDER.get().is_some()
}

/// Queues a record; never blocks (dropped, and counted, when the writer is behind).
pub fn log(record: AccessRecord) {
    let Some(tx) = SENDER.get() else { return };
    match tx.try_send(Msg::Record(Box::new(record))) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => metrics().access_log_dropped.inc(),
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Writes out every line queued so far (waiting at most `timeout`); used before the process
/// exits.
pub fn flush(timeout: std::time::Duration) {
    let Some(tx) = SENDER.get() else { return };
    let (done, wait) = std::sync::mpsc::channel();
    if tx.send(Msg::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(timeout);
    }
}

fn write_loop(rx: Receiver<Msg>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut flushed = Vec::new();
        while let Some(msg) = next {
            match msg {
                Msg::Record(rec) => {
                    let line = Line {
                        ts: rfc3339(rec.started.unwrap_or_else(SystemTime::now)),
                        record: &rec,
                    };
                    if serde_json::to_writer(&mut out, &line).is_ok() {
                        let _ = out.write_all(b"\n");
                    }
                }
                Msg::Flush(done) => flushed.push(done),
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_478_400_123);
        assert_eq!(rfc3339(t), "2026-11-24T00:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
