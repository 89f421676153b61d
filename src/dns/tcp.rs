//! DNS over TCP (RFC 7766): our own accept loop and framing in front of the shared responder.
//!
//! Why not hickory-server's TCP service: it accepts without bound and checks `allow_from` only
//! per request, so idle connections from anyone held a file descriptor each until the idle
//! timeout; enough of them exhausted the process's descriptors, the phone listener stopped
//! accepting, and hickory's accept loop spun logging `Too many open files`. Here every accepted
//! socket is judged at once ([`Admission`]): a source outside `allow_from`, or one over the
//! global or per-client cap, is closed before it is read, so it holds its descriptor for
//! microseconds; admitted ones are bounded by `dns.tcp_max_connections` in total and
//! `dns.tcp_connections_per_client` each, and closed when idle for `dns.tcp_timeout_ms`.
//!
//! Over the cap a connection is closed rather than left waiting in the listen queue (as the
//! phone listener does): a DNS client that gets a close falls back to its next server at once,
//! while one left queued waits out its own timeout, and a closed socket costs nothing to keep.
//!
//! Bounding connections does not bound queries: one connection can carry any number. A client's
//! queries over all its connections are paced to `dns.rate_limit` per second, out of the same
//! budget as its UDP queries (one per client over both, see `rrl`): past it each query waits
//! for its answer, and the client cannot make the responder (or the upstream it forwards to) do
//! more, nor get a second budget by switching transport. Waiting, not closing: a
//! resolver that batches a burst over TCP loses nothing, and a connection that waits holds
//! only the descriptor it was already admitted with.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::handler::Responder;
use super::respond::encode;
use super::rrl::SharedLimiter;
use super::stats::Stats;
use crate::per_source::{OpenPerSource, SourcePlace};
use crate::supervise::join_failure;

/// How long the accept loop pauses after the process ran out of descriptors (EMFILE/ENFILE) or
/// memory: the pending connection stays queued, and retrying at once would only fail again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bound on admitted TCP connections, shared by all DNS TCP listeners.
pub struct Admission {
    slots: Arc<Semaphore>,
    max: usize,
    /// Connections open per client: an IPv4 address or an IPv6 /64 (see `per_source`).
    per_client: Arc<OpenPerSource>,
    /// Queries per second per client, over all of its connections and its UDP queries.
    queries: Arc<SharedLimiter>,
}

/// Why an accepted connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAllowed,
    Full,
    ClientFull,
}

/// An admitted connection's place, in its client's count and in the total; dropping it frees
/// both.
pub struct Ticket {
    _client: SourcePlace,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    /// `queries`: the responder's per-client budgets, shared with its UDP sockets.
    pub fn new(max: usize, per_client: usize, queries: Arc<SharedLimiter>) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_client: OpenPerSource::new(per_client),
            queries,
        })
    }

    /// How long the query just read from `peer` waits before it is answered. Every admitted
    /// source is inside `allow_from`, so it is counted as one address (an IPv6 /64).
    fn pace(&self, peer: IpAddr, now: Instant) -> Duration {
        self.queries.pace(peer, true, now)
    }

    /// Admits a connection from `peer` (`allowed`: inside `allow_from`), or says why not.
    pub fn admit(&self, peer: IpAddr, allowed: bool) -> Result<Ticket, Refusal> {
        if !allowed {
            return Err(Refusal::NotAllowed);
        }
        let client = self.per_client.take(peer).ok_or(Refusal::ClientFull)?;
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        Ok(Ticket {
            _client: client,
            _slot: slot,
        })
    }

    /// Waits until every admitted connection has ended, or `limit` passed.
    async fn drained(&self, limit: Duration) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(limit, self.slots.acquire_many(all)).await;
    }
}

/// Accept errors after which accepting again at once would fail the same way.
fn exhausted(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

/// Accepts on `listeners` until `stop` turns true, then lets open connections finish their
/// current message (at most `idle` more).
/// Ends early with an error if an accept loop panics.
pub async fn serve(
    listeners: Vec<TcpListener>,
    responder: Arc<Responder>,
    admission: Arc<Admission>,
    idle: Duration,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(
            listener,
            responder.clone(),
            admission.clone(),
            idle,
            stop.clone(),
        ));
    }
    while let Some(done) = loops.join_next().await {
        if let Err(e) = done
            && let Some(reason) = join_failure(e)
        {
            return Err(format!("TCP accept loop {reason}"));
        }
    }
    admission.drained(idle).await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    responder: Arc<Responder>,
    admission: Arc<Admission>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) if exhausted(&e) => {
                tracing::warn!(error = %e, "DNS TCP accept failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            // The peer gave up between SYN and accept, and the like: nothing to wait for.
            Err(e) => {
                tracing::debug!(error = %e, "DNS TCP accept failed");
                continue;
            }
        };
        let ticket = match admission.admit(peer.ip(), responder.allowed(peer.ip())) {
            Ok(t) => t,
            Err(why) => {
                Stats::count(&responder.stats.tcp_refused);
                tracing::debug!(%peer, ?why, "DNS TCP connection closed at once");
                drop(tcp);
                continue;
            }
        };
        let (responder, admission, stop) = (responder.clone(), admission.clone(), stop.clone());
        tokio::spawn(async move {
            let _ticket = ticket;
            if let Err(e) = connection(tcp, peer, &responder, &admission, idle, stop).await {
                tracing::debug!(%peer, error = %e, "DNS TCP connection ended with an error");
            }
        });
    }
}

/// Serves one connection: length-prefixed messages answered in order, each after the wait its
/// client's rate asks for, until the peer closes, sends something that is not a query, stays
/// idle for `idle`, or the service stops.
async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    admission: &Admission,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let read = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            read = tokio::time::timeout(idle, read_frame(&mut tcp, &mut buf)) => read,
        };
        match read {
            Err(_) | Ok(Ok(false)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(true)) => {}
        }
        let wait = admission.pace(peer.ip(), Instant::now());
        if !wait.is_zero() {
            Stats::count(&responder.stats.rate_limited);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Garbage ends the connection: there is no message ID to answer it under.
        let Ok(req) = Message::from_vec(&buf) else {
            Stats::count(&responder.stats.dropped);
            return Ok(());
        };
        let Some(reply) = responder.respond(&req, peer.ip()).await else {
            continue;
        };
        let Some(bytes) = encode(&reply, usize::from(u16::MAX)) else {
            return Ok(());
        };
        let len = u16::try_from(bytes.len()).expect("encode keeps within the limit");
        let mut framed = Vec::with_capacity(2 + bytes.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        tokio::time::timeout(idle, tcp.write_all(&framed))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    }
}

/// Reads one length-prefixed message into `buf`; `false` when the peer closed cleanly first.
async fn read_frame(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 2];
    match tcp.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    tcp.read_exact(buf).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn unlimited() -> Arc<SharedLimiter> {
        Arc::new(SharedLimiter::new(0))
    }

    #[test]
    fn disallowed_sources_are_refused_before_counting() {
        let a = Admission::new(1, 1, unlimited());
        assert_eq!(
            a.admit(ip("192.0.2.1"), false).err(),
            Some(Refusal::NotAllowed)
        );
        assert!(a.admit(ip("192.0.2.1"), true).is_ok());
    }

    #[test]
    fn caps_per_client_and_in_total_and_frees_on_drop() {
        let a = Admission::new(3, 2, unlimited());
        let one = a.admit(ip("10.0.0.1"), true).unwrap();
        let _two = a.admit(ip("10.0.0.1"), true).unwrap();
        assert_eq!(
            a.admit(ip("10.0.0.1"), true).err(),
            Some(Refusal::ClientFull)
        );
        let _three = a.admit(ip("10.0.0.2"), true).unwrap();
        assert_eq!(a.admit(ip("10.0.0.3"), true).err(), Some(Refusal::Full));
        drop(one);
        assert!(a.admit(ip("10.0.0.1"), true).is_ok());
        assert_eq!(
            a.per_client.sources(),
            2,
            "a refused client leaves no entry"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_v4_as_v4() {
        let a = Admission::new(10, 1, unlimited());
        let _x = a.admit(ip("2001:db8::1"), true).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8::2"), true).err(),
            Some(Refusal::ClientFull)
        );
        assert!(a.admit(ip("2001:db8:0:1::1"), true).is_ok());
        let _v4 = a.admit(ip("10.0.0.9"), true).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:10.0.0.9"), true).err(),
            Some(Refusal::ClientFull)
        );
    }
}
