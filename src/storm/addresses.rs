//! The addresses the target's host resolved to, tried in turn as curl and browsers do: a name
//! often resolves to more than one (`localhost` to ::1 and 127.0.0.1), and a server listening
//! on one of them refuses the others.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;

use super::stats::ErrorKind;

/// The target's addresses, and which of them took the last connection.
pub struct Addresses {
    list: Vec<SocketAddr>,
    /// Index into `list` of the address that last took a connection: later phones start there,
    /// so that a storm does not pay a refused connection per phone before the one that works.
    preferred: AtomicUsize,
}

impl Addresses {
    /// `list` in the resolver's order (the first is tried first until one accepts).
    pub fn new(list: Vec<SocketAddr>) -> Self {
        Addresses {
            list,
            preferred: AtomicUsize::new(0),
        }
    }

    /// A TCP connection to the preferred address, else to each of the others in the resolver's
    /// order (wrapping round); the one that takes it becomes the preferred. `Refused` only when
    /// every address failed. An address that drops the connection attempt instead of refusing
    /// it holds the phone until its `--timeout-ms`, which bounds the connect and the handshake
    /// together.
    pub async fn connect(&self) -> Result<TcpStream, ErrorKind> {
        let n = self.list.len();
        let first = self.preferred.load(Ordering::Relaxed);
        for i in (0..n).map(|k| (first + k) % n) {
            if let Ok(tcp) = TcpStream::connect(self.list[i]).await {
                self.preferred.store(i, Ordering::Relaxed);
                return Ok(tcp);
            }
        }
        Err(ErrorKind::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn listening() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    /// A loopback port nothing listens on: one that was just bound and closed again.
    async fn closed() -> SocketAddr {
        listening().await.1
    }

    #[tokio::test]
    async fn a_refused_address_is_passed_over_for_the_next() {
        let (_open, open) = listening().await;
        let addrs = Addresses::new(vec![closed().await, open]);
        let tcp = addrs.connect().await.unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), open);
        assert_eq!(addrs.preferred.load(Ordering::Relaxed), 1);
    }

    /// Later connections go to the address that took the last one first, and go back down
    /// the list when that one stops taking them.
    #[tokio::test]
    async fn the_address_that_took_the_last_connection_is_tried_first() {
        let (_a, a) = listening().await;
        let (b_listener, b) = listening().await;
        let addrs = Addresses::new(vec![a, b]);
        addrs.preferred.store(1, Ordering::Relaxed);
        assert_eq!(addrs.connect().await.unwrap().peer_addr().unwrap(), b);
        drop(b_listener);
        assert_eq!(addrs.connect().await.unwrap().peer_addr().unwrap(), a);
        assert_eq!(addrs.preferred.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn every_address_refusing_is_a_refused_connection() {
        let addrs = Addresses::new(vec![closed().await, closed().await]);
        assert!(matches!(addrs.connect().await, Err(ErrorKind::Refused)));
        assert!(matches!(
            Addresses::new(Vec::new()).connect().await,
            Err(ErrorKind::Refused)
        ));
    }
}
