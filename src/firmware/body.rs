//! A response body that streams a file region from disk in fixed chunks, so memory per
//! download is one chunk in flight whatever the image size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};

/// Bytes read per disk read: large enough for few blocking-pool hops, small enough that a
/// hundred concurrent downloads stay within a few tens of megabytes.
const CHUNK: u64 = 64 * 1024;

/// Disk operations of downloads (opening the image, reading a chunk) in flight at once over
/// all downloads. Without a bound every download holds a blocking-pool thread during a boot
/// storm (170 threads for 100 downloads, a third of the memory); reads from the page cache
/// take microseconds, so a few threads keep up.
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Runs `op`, a download's disk operation, on the blocking pool within [`READS`]: a slow or
/// stalled disk then holds neither a runtime worker (whose other connections, settings files
/// of a boot storm among them, would wait behind it) nor more than that many blocking threads.
/// `Err` only when the task could not run to its end (the runtime is stopping).
pub(super) async fn on_disk<T: Send + 'static>(
    op: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    // The semaphore is never closed: a permit always comes.
    let _permit = READS.acquire().await.ok();
    tokio::task::spawn_blocking(op).await
}

type Read = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send + Sync>>;

/// The body type of every phone response: generated files in memory, images from disk.
pub type PhoneBody = BoxBody<Bytes, io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> PhoneBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// `len` bytes of `file` from offset `start`.
pub struct FileBody {
    file: Arc<File>,
    pos: u64,
    remaining: u64,
    reading: Option<Read>,
}

impl FileBody {
    pub fn new(file: File, start: u64, len: u64) -> FileBody {
        FileBody {
            file: Arc::new(file),
            pos: start,
            remaining: len,
            reading: None,
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let reading = this.reading.get_or_insert_with(|| {
            let (file, pos, want) = (this.file.clone(), this.pos, this.remaining.min(CHUNK));
            Box::pin(async move {
                on_disk(move || {
                    let mut buf = vec![0u8; want as usize];
                    let n = file.read_at(&mut buf, pos)?;
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                })
                .await
                .map_err(io::Error::other)?
            })
        });
        let done = ready!(reading.as_mut().poll(cx));
        this.reading = None;
        let chunk = match done {
            Ok(c) if c.is_empty() => {
                // The file shrank under us: end the response short rather than pad it.
                this.remaining = 0;
                return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
            }
            Ok(c) => c,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        this.pos += chunk.len() as u64;
        this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
