//! The accept loop shared by the phone service and the admin API: TCP accept, the TLS handshake
//! inside the connection's own task (with a deadline, so half-open sockets cannot pile up), then
//! hyper HTTP/1.1 with a header deadline and bounded header size. Each connection keeps its
//! peer certificate, which is why this is a hand-written hyper-util loop and not a framework's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request head accepted (request line + headers); beyond it hyper answers 431.
const MAX_HEAD: usize = 16 * 1024;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The verified leaf certificate the client presented, if any.
    pub client_cert: Option<CertificateDer<'static>>,
}

pub struct Limits {
    /// Where handshake results are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub handshake: Duration,
    pub header: Duration,
}

/// Where the TLS configuration comes from; read at each handshake so a reload (new
/// certificate) applies to new connections while open ones continue.
pub type TlsSource = Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>;

/// Accepts until `stop` changes, serving each connection with the service `make` builds for it.
/// Connections are registered with `graceful` so shutdown can drain them.
pub async fn accept_loop<F, S, B>(
    listener: TcpListener,
    tls: Option<TlsSource>,
    limits: Arc<Limits>,
    make: F,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
) where
    F: Fn(ConnInfo) -> S + Send + Sync + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Linux copies TCP_NODELAY from the listener to every socket it accepts: one setsockopt
    // per listener instead of one per connection.
    let _ = socket2::SockRef::from(&listener).set_tcp_nodelay(true);
    let make = Arc::new(make);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let make = make.clone();
        let limits = limits.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header)
                .max_buf_size(MAX_HEAD);
            match tls {
                None => {
                    let info = ConnInfo {
                        peer,
                        tls: false,
                        client_cert: None,
                    };
                    let conn =
                        builder.serve_connection(TokioIo::new(UntilEof::new(tcp)), make(info));
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(source) => {
                    let config = source.read().unwrap_or_else(|p| p.into_inner()).clone();
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let stream =
                        match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => {
                                limits.metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                                s
                            }
                            Ok(Err(e)) => {
                                limits
                                    .metrics
                                    .handshakes_failed
                                    .fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                limits
                                    .metrics
                                    .handshakes_timed_out
                                    .fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    let info = ConnInfo {
                        peer,
                        tls: true,
                        client_cert,
                    };
                    let conn =
                        builder.serve_connection(TokioIo::new(UntilEof::new(stream)), make(info));
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
}

/// A connection that skips the shutdown once its peer has closed: hyper shuts a connection down
/// when it reads end-of-stream, and a TLS stream's shutdown writes a close_notify and a TCP FIN
/// to a peer that is gone (one more write and a reset per phone). Dropping the socket closes it.
struct UntilEof<S> {
    inner: S,
    peer_closed: bool,
}

impl<S> UntilEof<S> {
    fn new(inner: S) -> Self {
        UntilEof {
            inner,
            peer_closed: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UntilEof<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.peer_closed = true;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UntilEof<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
