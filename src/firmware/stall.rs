//! When an image transfer (a download from an upstream, an operator's upload) counts as
//! stalled: less than [`STALL_BYTES`] received in `firmware.stall_secs`. Either kind holds the
//! image's one flight while it runs, so one that trickles or stops sending would otherwise keep
//! every phone from the image (answered 503 after `firmware.phone_wait_ms`) for as long as its
//! connection stays open, with nothing saying why.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};

/// About 2 KiB/s at the default 30 s: far below any working link, far above a trickle.
pub(super) const STALL_BYTES: u64 = 64 * 1024;

/// Reads a body frame by frame, in windows of `firmware.stall_secs`.
pub(super) struct Stall {
    window: Duration,
    since: Instant,
    received: u64,
}

/// The frame a body gave, or `None` at its end.
type Next<E> = Option<Result<Frame<Bytes>, E>>;

impl Stall {
    pub(super) fn new(window: Duration) -> Stall {
        Stall {
            window,
            since: Instant::now(),
            received: 0,
        }
    }

    /// The body's next frame; `Err` naming the stall once a window ends with less than
    /// [`STALL_BYTES`] received.
    pub(super) async fn frame<B>(&mut self, body: &mut B) -> Result<Next<B::Error>, String>
    where
        B: Body<Data = Bytes> + Unpin,
    {
        loop {
            let left = self.window.saturating_sub(self.since.elapsed());
            match tokio::time::timeout(left, body.frame()).await {
                Ok(next) => {
                    if let Some(Ok(frame)) = &next
                        && let Some(data) = frame.data_ref()
                    {
                        self.received += data.len() as u64;
                    }
                    return Ok(next);
                }
                Err(_) if self.received >= STALL_BYTES => {
                    (self.since, self.received) = (Instant::now(), 0);
                }
                Err(_) => {
                    return Err(format!(
                        "stalled: {} bytes received in {} s (firmware.stall_secs)",
                        self.received,
                        self.window.as_secs()
                    ));
                }
            }
        }
    }
}
