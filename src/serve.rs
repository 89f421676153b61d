//! The accept loop shared by the phone service and the admin API: TCP accept, the TLS handshake
//! inside the connection's own task (with a deadline, so half-open sockets cannot pile up), then
//! hyper HTTP/1.1 with a header deadline and bounded header size. Each connection keeps its
//! peer certificate, which is why this is a hand-written hyper-util loop and not a framework's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::log_throttle::LogThrottle;
use crate::per_source::{OpenPerSource, SourcePlace};

/// Largest request head accepted (request line + headers); beyond it hyper answers 431.
const MAX_HEAD: usize = 16 * 1024;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The port of the listener the connection came in on.
    pub local_port: u16,
    pub tls: bool,
    /// The verified leaf certificate the client presented, if any.
    pub client_cert: Option<CertificateDer<'static>>,
    /// The certificates the client sent after its leaf, to check the chain again later.
    pub client_intermediates: Vec<CertificateDer<'static>>,
    /// The TLS configuration whose verifier accepted that certificate; weak, so that an open
    /// connection does not keep a replaced configuration's session cache alive.
    pub verified_by: Weak<rustls::ServerConfig>,
    /// Whether that verifier proved the certificate rather than only letting it through
    /// (`pki::proven`); `false` also when it is not known, and then it is checked again.
    pub proved: bool,
}

pub struct Limits {
    /// Where handshake results are counted.
    pub handshakes: Arc<crate::metrics::Handshakes>,
    pub handshake: Duration,
    pub header: Duration,
    /// How long a response may wait for its peer to take any of its bytes.
    pub send: Duration,
    /// Shared by the listeners these limits are for.
    pub connections: Arc<ConnectionLimit>,
}

/// How many connections the listeners sharing it may hold open at once. Each open connection
/// holds about 24 KB of TLS and HTTP buffers; at the limit each accept loop holds the one
/// connection it accepted last (its socket only, unread) and accepts no more, so further
/// connections wait in the kernel's listen queue (and, when that is full, phones retry their
/// SYN) instead of taking memory until the box runs out.
///
/// Within that, each source address (an IPv4 address or IPv6 /64, see `per_source`) may hold
/// at most `per_address`: otherwise one host holding idle connections, or flooding handshakes,
/// could take every slot and starve every other phone. A connection beyond it is closed as
/// soon as it is accepted, before anything is read or a handshake started, so refusing it
/// costs the box next to nothing and holds no slot.
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
    /// Connections open per source address; `None`: no per-address limit.
    per_address: Option<Arc<OpenPerSource>>,
    /// Connections closed at accept because their address had `per_address` open.
    refused_per_address: AtomicU64,
    /// A host that floods connections must not flood the journal too (the metric counts every
    /// refusal).
    refusal_log: Mutex<LogThrottle>,
}

/// An accepted connection's address already has its limit of connections open.
struct OverAddressLimit;

impl ConnectionLimit {
    /// `per_address`: connections one source address may have open; 0 for no such limit.
    pub fn new(max: usize, per_address: usize) -> Self {
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_address: (per_address > 0).then(|| OpenPerSource::new(per_address)),
            refused_per_address: AtomicU64::new(0),
            refusal_log: Mutex::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections one source address may have open; 0 when there is no such limit.
    pub fn per_address(&self) -> usize {
        self.per_address.as_ref().map_or(0, |p| p.limit())
    }

    /// Connections closed at accept because their address had its limit open.
    pub fn refused_per_address(&self) -> u64 {
        self.refused_per_address.load(Ordering::Relaxed)
    }

    /// `peer`'s place in its address's count (`None` when there is no per-address limit), or
    /// the refusal, counted and logged, when the address already has its limit open.
    fn address_place(&self, peer: SocketAddr) -> Result<Option<SourcePlace>, OverAddressLimit> {
        let Some(per_address) = &self.per_address else {
            return Ok(None);
        };
        if let Some(place) = per_address.take(peer.ip()) {
            return Ok(Some(place));
        }
        self.refused_per_address.fetch_add(1, Ordering::Relaxed);
        let due = self
            .refusal_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .occurred(Instant::now());
        if let Some(refused) = due {
            tracing::warn!(
                peer = %peer.ip(),
                refused,
                limit = per_address.limit(),
                "phone connections closed at accept: their address already had \
                 phone.max_connections_per_address open (logged at most every 10 s; \
                 edgeprov_phone_connections_refused_total counts them all)"
            );
        }
        Err(OverAddressLimit)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Waits for a free slot; the connection holds it until it ends.
    async fn slot(&self) -> OwnedSemaphorePermit {
        match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed; should it be, wait for shutdown instead.
            Err(_) => std::future::pending().await,
        }
    }
}

/// A listener's TLS configuration, and what its verifier proved of the client certificates it
/// let through: one lookup table per configuration's roots, read with it so that a connection
/// is never judged by another configuration's table.
#[derive(Clone)]
pub struct TlsSetup {
    pub config: Arc<rustls::ServerConfig>,
    /// `None` where every client certificate let through is proved (or none is asked for).
    pub proven: Option<Arc<crate::pki::Proven>>,
}

/// Where the TLS configuration comes from; read at each handshake so a reload (new
/// certificate) applies to new connections while open ones continue.
pub type TlsSource = Arc<std::sync::RwLock<TlsSetup>>;

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
    let local_port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        // Accept first, then wait for a slot: a listener waiting for a connection must not hold
        // a slot meanwhile, or an idle listener (plain HTTP when phones use HTTPS) would keep it
        // from the others, count as an open connection, and with a limit below the number of
        // listeners starve a listener altogether. At the limit each listener holds at most this
        // one accepted connection; the rest wait in the kernel's listen queue.
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
        // Over its address's limit: closed now, unread, before it waits for a slot.
        let Ok(place) = limits.connections.address_place(peer) else {
            drop(tcp);
            continue;
        };
        let slot = tokio::select! {
            _ = stop.changed() => break,
            slot = limits.connections.slot() => slot,
        };
        let make = make.clone();
        let limits = limits.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // Both are given back when the task ends, however it ends (also by a panic).
            let _slot = slot;
            let _place = place;
            let mut builder = http1::Builder::new();
            // A client may shut its side once its request is sent and wait for the answer
            // (RFC 9112 §9.6; nginx and Apache answer it). Without half-close, hyper drops the
            // request in flight when it reads that end of stream, so any answer that takes a
            // moment (a firmware image, even one only opened from the cache) is never sent. A
            // peer that went away instead is found out at the first write, within the send
            // deadline.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header)
                .half_close(true)
                .max_buf_size(MAX_HEAD);
            match tls {
                None => {
                    let info = ConnInfo {
                        peer,
                        local_port,
                        tls: false,
                        client_cert: None,
                        client_intermediates: Vec::new(),
                        verified_by: Weak::new(),
                        proved: false,
                    };
                    let io = SendDeadline::new(UntilEof::new(tcp), limits.send);
                    let conn = builder.serve_connection(TokioIo::new(io), make(info));
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(source) => {
                    let setup = source.read().unwrap_or_else(|p| p.into_inner()).clone();
                    let acceptor = tokio_rustls::TlsAcceptor::from(setup.config.clone());
                    let accept = acceptor.accept(HoldTicket::new(tcp)).into_fallible();
                    let mut stream = match tokio::time::timeout(limits.handshake, accept).await {
                        Ok(Ok(s)) => {
                            limits.handshakes.ok.fetch_add(1, Ordering::Relaxed);
                            s
                        }
                        Ok(Err((e, io))) => {
                            io.send_held_now();
                            limits.handshakes.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            limits.handshakes.timed_out.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    stream.get_mut().0.release();
                    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
                    let owned = |c: &CertificateDer<'_>| c.clone().into_owned();
                    let proved = match (&setup.proven, chain.first()) {
                        (Some(proven), Some(leaf)) => proven.holds(leaf),
                        (None, Some(_)) => true,
                        (_, None) => false,
                    };
                    let info = ConnInfo {
                        peer,
                        local_port,
                        tls: true,
                        client_cert: chain.first().map(owned),
                        client_intermediates: chain.iter().skip(1).map(owned).collect(),
                        verified_by: Arc::downgrade(&setup.config),
                        proved,
                    };
                    let io = SendDeadline::new(UntilEof::new(stream), limits.send);
                    let conn = builder.serve_connection(TokioIo::new(io), make(info));
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
}

/// A connection whose peer must keep taking what is sent: a write, flush or shutdown that makes
/// no progress for `limit` fails with `TimedOut`, which ends the connection and frees its slot.
/// hyper has no write timeout of its own, and its header deadline does not run while a response
/// waits to be sent, so a client that sends requests and never reads the answers would
/// otherwise hold its connection (and one of the listener's connection slots) for ever.
struct SendDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write waits for the peer; any progress stops it.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        SendDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes on what a write-side poll of the inner stream gave, or the timeout once a wait
    /// for the peer has lasted `limit`.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took nothing of the response within the send timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.deadline(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.deadline(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.deadline(cx, polled)
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

/// The TCP stream under a TLS server connection. A TLS 1.3 server sends its session ticket
/// after the client's Finished, when the handshake is over, as a write of its own; the phone
/// does not wait for it. This keeps that write (during the handshake, an encrypted record after
/// the first flight) and sends it in the same `writev` as the first response: one loopback send
/// per phone fewer. Until `release`, a flush does not send what is kept; after it, every write
/// and flush sends it first. An encrypted alert that fails the handshake is kept the same way
/// and sent by `send_held_now`.
struct HoldTicket {
    tcp: TcpStream,
    /// Set until the handshake has finished.
    handshaking: bool,
    /// Cleared when a handshake write was only partly sent: the next write continues a record,
    /// so its first byte says nothing.
    at_record_start: bool,
    held: Vec<u8>,
}

/// TLS record content type of encrypted TLS 1.3 records.
const APPLICATION_DATA: u8 = 0x17;

impl HoldTicket {
    fn new(tcp: TcpStream) -> Self {
        HoldTicket {
            tcp,
            handshaking: true,
            at_record_start: true,
            held: Vec::new(),
        }
    }

    /// The handshake is over: what is kept goes out with the next write or flush.
    fn release(&mut self) {
        self.handshaking = false;
    }

    /// After a failed handshake: sends what is kept (an alert) if the socket takes it now.
    fn send_held_now(&self) {
        if !self.held.is_empty() {
            let _ = self.tcp.try_write(&self.held);
        }
    }

    /// Writes what is kept, then as much of `bufs` as the socket takes; counts only bytes of
    /// `bufs`.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            slices.push(io::IoSlice::new(&self.held));
            slices.extend(bufs.iter().map(|b| io::IoSlice::new(b)));
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let held = self.held.len();
            if n > held {
                self.held.clear();
                return Poll::Ready(Ok(n - held));
            }
            self.held.drain(..n);
        }
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
}

impl AsyncRead for HoldTicket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for HoldTicket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| b[0]);
        if this.handshaking && this.at_record_start && first == Some(APPLICATION_DATA) {
            let len = bufs.iter().map(|b| b.len()).sum();
            this.held.reserve(len);
            bufs.iter().for_each(|b| this.held.extend_from_slice(b));
            return Poll::Ready(Ok(len));
        }
        let sent = this.poll_send(cx, bufs);
        if this.handshaking
            && let Poll::Ready(Ok(n)) = sent
        {
            this.at_record_start = n == bufs.iter().map(|b| b.len()).sum::<usize>();
        }
        sent
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.handshaking {
            std::task::ready!(self.poll_send(cx, &[]))?;
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send(cx, &[]))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_limit_is_refused_and_counted() {
        let limit = ConnectionLimit::new(10, 2);
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let first = limit.address_place(a).ok().flatten().unwrap();
        let _second = limit.address_place(a).ok().flatten().unwrap();
        assert!(limit.address_place(a).is_err());
        assert!(limit.address_place(b).is_ok(), "another address");
        assert_eq!(limit.refused_per_address(), 1);
        drop(first);
        assert!(limit.address_place(a).is_ok(), "a place given back");

        let unlimited = ConnectionLimit::new(10, 0);
        assert_eq!(unlimited.per_address(), 0);
        assert!(
            unlimited.address_place(a).ok().unwrap().is_none(),
            "not counted"
        );
    }

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

    #[tokio::test]
    async fn a_record_written_after_the_first_flight_goes_out_with_the_next_write() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut phone = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut server = HoldTicket::new(listener.accept().await.unwrap().0);
        let mut got = [0u8; 16];

        server.write_all(&[0x16, 1]).await.unwrap();
        server.flush().await.unwrap();
        phone.read_exact(&mut got[..2]).await.unwrap();
        assert_eq!(got[..2], [0x16, 1]);

        server.write_all(&[APPLICATION_DATA, 2]).await.unwrap();
        server.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            phone.try_read(&mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        server.release();
        server.write_all(b"ok").await.unwrap();
        server.flush().await.unwrap();
        phone.read_exact(&mut got[..4]).await.unwrap();
        assert_eq!(got[..4], [APPLICATION_DATA, 2, b'o', b'k']);
    }
}
