//! Connecting to an upstream whose name resolves to several addresses, as Happy Eyeballs
//! (RFC 8305) does: a vendor host often has an IPv6 address that a site's network cannot
//! reach (no IPv6 route, a firewall dropping it) beside an IPv4 one that works. Connecting to
//! the addresses one after the other under one timeout spent the whole timeout on the first
//! dead one and never tried the next, so the image was never fetched.
//!
//! The order is decided without I/O ([`attempt_order`]); [`connect`] only races the sockets.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// RFC 8305 §5 "Connection Attempt Delay": how long an attempt has before the next address
/// is tried beside it (the earlier attempt goes on). 250 ms is the RFC's recommendation.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Addresses tried per connection: a name with more than this many addresses is an
/// anycast pool, and the first few stand for the rest.
const MAX_ADDRESSES: usize = 16;

/// The order to try `addrs` in (RFC 8305 §4): the resolver's first address, then the
/// families alternating, each family in the resolver's order, so that a dead family costs
/// one [`ATTEMPT_DELAY`] per address before the other family is tried.
pub(super) fn attempt_order(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = (Vec::new(), Vec::new());
    for a in addrs {
        if same.contains(a) || other.contains(a) {
            continue;
        }
        if a.is_ipv6() == first.is_ipv6() {
            same.push(*a);
        } else {
            other.push(*a);
        }
    }
    let mut out = Vec::with_capacity(same.len() + other.len());
    let (mut same, mut other) = (same.into_iter(), other.into_iter());
    loop {
        match (same.next(), other.next()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out.truncate(MAX_ADDRESSES);
    out
}

/// A TCP connection to `host:port` within `limit`: the name is resolved, and its addresses
/// are tried in [`attempt_order`], a new attempt starting every [`ATTEMPT_DELAY`] or as soon
/// as one fails, the first to connect winning (the others are dropped). The error names each
/// address and why it failed, or that it did not answer in time.
pub(super) async fn connect(host: &str, port: u16, limit: Duration) -> Result<TcpStream, String> {
    tokio::time::timeout(limit, race(host, port))
        .await
        .map_err(|_| format!("connection timed out after {} s", limit.as_secs()))?
}

async fn race(host: &str, port: u16) -> Result<TcpStream, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let order = attempt_order(&resolved);
    if order.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    let mut pending = std::collections::VecDeque::from(order);
    let mut running = JoinSet::new();
    let mut failed = Vec::new();
    loop {
        if let Some(addr) = pending.pop_front() {
            running.spawn(async move { (addr, TcpStream::connect(addr).await) });
        }
        // Until an attempt ends or the next is due; a failed attempt starts the next at once
        // (RFC 8305 §5), the earlier ones going on beside it.
        tokio::select! {
            done = running.join_next() => match done {
                Some(Ok((_, Ok(stream)))) => return Ok(stream),
                Some(Ok((addr, Err(e)))) => failed.push(format!("{addr}: {e}")),
                Some(Err(e)) => failed.push(e.to_string()),
                None if pending.is_empty() => return Err(failed.join("; ")),
                None => {}
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if !pending.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// The resolver's first family leads, then the families alternate; duplicates go.
    #[test]
    fn families_alternate_after_the_resolvers_first() {
        let got = attempt_order(&addrs(&[
            "[::1]:80",
            "[fd00::1]:80",
            "[fd00::2]:80",
            "127.0.0.1:80",
            "127.0.0.2:80",
            "[::1]:80",
        ]));
        assert_eq!(
            got,
            addrs(&[
                "[::1]:80",
                "127.0.0.1:80",
                "[fd00::1]:80",
                "127.0.0.2:80",
                "[fd00::2]:80",
            ])
        );
        let v4_first = attempt_order(&addrs(&["127.0.0.1:80", "[::1]:80", "[fd00::1]:80"]));
        assert_eq!(
            v4_first,
            addrs(&["127.0.0.1:80", "[::1]:80", "[fd00::1]:80"])
        );
        assert!(attempt_order(&[]).is_empty());
        let many: Vec<SocketAddr> = (0..40)
            .map(|i| SocketAddr::from(([127, 0, 0, i], 80)))
            .collect();
        assert_eq!(attempt_order(&many).len(), MAX_ADDRESSES);
    }

    /// A refused address is given up at once and the next tried; the error names each one.
    #[tokio::test]
    async fn every_address_refusing_names_each() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let e = connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.starts_with(&format!("127.0.0.1:{port}: ")), "{e}");
    }
}
