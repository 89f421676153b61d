//! A connection that counts the bytes read from it, so the simulator can tell a request the
//! server never began to answer (safe to retry on a new connection, as HTTP clients do with an
//! idempotent GET) from an answer broken off part way (an error). Over TLS it counts plaintext:
//! session tickets and alerts are not answer bytes. Over the socket it counts every record, so
//! the simulator can tell whether a TLS 1.3 server sent anything after the handshake.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many bytes the connection has read so far; shared with the connection's own task.
#[derive(Debug, Clone, Default)]
pub struct BytesRead(Arc<AtomicU64>);

impl BytesRead {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `inner`, counting into `read` every byte read from it.
pub struct Counted<S> {
    inner: S,
    read: BytesRead,
}

impl<S> Counted<S> {
    pub fn new(inner: S) -> (Counted<S>, BytesRead) {
        let read = BytesRead::default();
        (
            Counted {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len().saturating_sub(before);
        self.read.0.fetch_add(got as u64, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_what_is_read_not_what_is_written() {
        let (a, mut b) = tokio::io::duplex(64);
        let (mut counted, read) = Counted::new(a);
        counted.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(read.get(), 0);
        b.write_all(b"HTTP/1.1").await.unwrap();
        let mut buf = [0u8; 8];
        counted.read_exact(&mut buf).await.unwrap();
        assert_eq!(read.get(), 8);
    }
}
