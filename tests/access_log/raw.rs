//! An HTTP/1.1 upstream written by hand, to misbehave precisely.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a [`Raw`] upstream does after reading a request.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Closes the connection without answering.
    Close,
    /// Never answers (until the test ends).
    Stall,
    /// Sends a JSON header and half of its body, then goes silent.
    StallMidBody,
    /// Starts an SSE stream, sends one event, then resets the connection.
    ResetMidStream,
}

/// An HTTP/1.1 upstream written by hand, to misbehave precisely; records each request's head
/// and body as text.
pub struct Raw {
    pub addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Raw {
    pub async fn start(behaviour: Behaviour) -> Raw {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            // Health checks connect too: bounded, and only connections that send a request count.
            for _ in 0..64 {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(conn, behaviour, seen.clone()));
            }
        });
        Raw {
            addr,
            requests,
            task,
        }
    }

    /// The requests received, once there are `n` (or after 10 s).
    pub async fn wait_requests(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.requests.lock().map(|v| v.clone()).unwrap_or_default();
            if seen.len() >= n || Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let Some(request) = read_request(&mut conn).await else {
        return;
    };
    if let Ok(mut v) = seen.lock() {
        v.push(request);
    }
    match behaviour {
        Behaviour::Close => {}
        Behaviour::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
        Behaviour::StallMidBody => {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\":")
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Behaviour::ResetMidStream => {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Linger 0: closing sends a reset, not an orderly end.
            let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
            drop(conn);
        }
    }
}

/// Reads one request head and its `content-length` body (bounded in size and time).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0usize);
                if buf.len() >= end + 4 + len {
                    return Some(text);
                }
            }
            if buf.len() > 64 * 1024 {
                return None;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}
