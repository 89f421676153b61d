//! A vendor's download server double on loopback: plain HTTP/1.1 written by hand so a test can
//! count requests, cut a transfer midway, send wrong bytes or send slowly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the next request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Sends the head (announcing the whole length) and only this many body bytes, then closes.
    CutAfter(usize),
    /// The same length, one byte different.
    WrongBytes,
    /// Chunks of this many bytes with a pause between them.
    Slow(usize, Duration),
    /// 503 Service Unavailable.
    Error,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub image: Arc<Vec<u8>>,
    requests: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
    /// One mode per coming request; `Normal` once empty.
    script: Arc<Mutex<VecDeque<Mode>>>,
    /// The default when the script is empty.
    default: Arc<Mutex<Mode>>,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

/// A deterministic pseudo-random image.
pub fn image(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Upstream {
    pub async fn start(image: Vec<u8>) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: listener.local_addr().unwrap(),
            image: Arc::new(image),
            requests: Arc::default(),
            sent: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Mode::Normal)),
            ranges: Arc::default(),
            heads: Arc::default(),
        };
        let (image, requests, sent, script, default, ranges, heads) = (
            up.image.clone(),
            up.requests.clone(),
            up.sent.clone(),
            up.script.clone(),
            up.default.clone(),
            up.ranges.clone(),
            up.heads.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let mode = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(*default.lock().unwrap());
                let (image, requests, sent, ranges, heads) = (
                    image.clone(),
                    requests.clone(),
                    sent.clone(),
                    ranges.clone(),
                    heads.clone(),
                );
                tokio::spawn(async move {
                    let seen = (&*ranges, &*heads);
                    let _ = serve(sock, mode, &image, &requests, &sent, seen).await;
                });
            }
        });
        up
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://{}/{file}", self.addr)
    }

    pub fn push(&self, mode: Mode) {
        self.script.lock().unwrap().push_back(mode);
    }

    pub fn set_default(&self, mode: Mode) {
        *self.default.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Body bytes written so far, over all requests.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Every request head so far, as text.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The `Range` header of every request so far.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    mode: Mode,
    image: &[u8],
    requests: &AtomicUsize,
    sent: &AtomicU64,
    (ranges, heads): (&Mutex<Vec<Option<String>>>, &Mutex<Vec<String>>),
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut sock).await? else {
        return Ok(());
    };
    requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap().push(text.clone());
    let range = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("range: ")
                .or_else(|| l.strip_prefix("Range: "))
        })
        .map(|s| s.trim().to_string());
    ranges.lock().unwrap().push(range.clone());
    if mode == Mode::Error {
        sock.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await?;
        return Ok(());
    }
    let mut body = image.to_vec();
    if mode == Mode::WrongBytes {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < body.len());
    let (status, slice) = match start {
        Some(s) => (
            format!(
                "206 Partial Content\r\ncontent-range: bytes {s}-{}/{}",
                body.len() - 1,
                body.len()
            ),
            &body[s..],
        ),
        None => ("200 OK".to_string(), &body[..]),
    };
    sock.write_all(
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            slice.len()
        )
        .as_bytes(),
    )
    .await?;
    match mode {
        Mode::CutAfter(n) => {
            let n = n.min(slice.len());
            sock.write_all(&slice[..n]).await?;
            sent.fetch_add(n as u64, Ordering::SeqCst);
            sock.flush().await?;
            // Dropping the socket mid-body is the cut.
        }
        Mode::Slow(chunk, pause) => {
            for c in slice.chunks(chunk) {
                sock.write_all(c).await?;
                sent.fetch_add(c.len() as u64, Ordering::SeqCst);
                tokio::time::sleep(pause).await;
            }
        }
        _ => {
            sock.write_all(slice).await?;
            sent.fetch_add(slice.len() as u64, Ordering::SeqCst);
        }
    }
    sock.shutdown().await
}

/// Reads an HTTP request head up to its blank line; `None` when the client closed first.
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}
