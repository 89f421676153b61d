//! What is left of a request body the API refused before reading it (a 413 over its route's
//! limit or over the free disk, a 401) is read and thrown away *after* the answer is sent, before
//! the connection closes. The client is still sending it: had the connection closed with its
//! bytes unread, the kernel would reset it, and a client that has not yet read the answer (the
//! CLI uploading an inventory too large) would see "broken pipe" instead of the JSON error
//! saying the limit. The answer goes first, so a refusal never waits for the body it refuses;
//! nginx's lingering close does the same. Reading is bounded in time, and a client that asked
//! `Expect: 100-continue` is not read from at all: it waits for the answer before sending.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use tokio::time::Sleep;

/// The longest a refused body is read: far more than a loopback or LAN client needs to finish a
/// 64 MiB upload, short enough that a client trickling bytes holds the connection briefly.
const DRAIN_FOR: Duration = Duration::from_secs(10);

/// Where the body a handler dropped unread comes back to.
#[derive(Clone, Default)]
pub struct Leftover(Arc<Mutex<Option<Body>>>);

impl Leftover {
    /// Gives the request a body that hands itself back here when the handler drops it.
    /// A request that expects `100 Continue` keeps its body: reading it would ask for it.
    pub fn watch(&self, req: Request) -> Request {
        let expects_continue = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            return req;
        }
        let slot = self.0.clone();
        req.map(|inner| {
            Body::new(Returning {
                inner: Some(inner),
                slot,
            })
        })
    }

    /// `answer` with what the client still sends of a body the handler left unread read and
    /// discarded after it, for at most [`DRAIN_FOR`]: the answer is flushed first, and the
    /// connection is kept open until the client has sent the rest.
    pub fn after(&self, answer: Response) -> Response {
        let left = self.0.lock().ok().and_then(|mut slot| slot.take());
        let Some(left) = left else { return answer };
        answer.map(|answer| {
            Body::new(ThenDrain {
                answer,
                answered: false,
                left: Some(left),
                until: Box::pin(tokio::time::sleep(DRAIN_FOR)),
            })
        })
    }
}

/// A response body that, once sent, reads the refused request body to its end before it ends
/// itself: the server flushes the answer while this waits, and closes only after.
struct ThenDrain {
    answer: Body,
    answered: bool,
    left: Option<Body>,
    until: Pin<Box<Sleep>>,
}

impl http_body::Body for ThenDrain {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if !this.answered {
            match ready!(Pin::new(&mut this.answer).poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame)),
                None => this.answered = true,
            }
        }
        while let Some(left) = this.left.as_mut() {
            if this.until.as_mut().poll(cx).is_ready() {
                this.left = None;
                break;
            }
            match Pin::new(left).poll_frame(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(_) => this.left = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_none() && (self.answered || self.answer.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.answer.size_hint()
    }
}

/// A request body that, when dropped before its end, puts the rest back in the slot.
struct Returning {
    inner: Option<Body>,
    slot: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for Returning {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(inner) = self
            .inner
            .take()
            .filter(|b| !http_body::Body::is_end_stream(b))
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(inner);
        }
    }
}
