//! What one network source is, for the limits that count per source (the admin token failure
//! limit, DNS TCP connections per client, phone connections per address), and a count of
//! connections open per source that each connection leaves when it ends.
//!
//! A source is an IPv4 address, or an IPv6 /64: a single host is commonly given a whole /64 and
//! may pick any address in it, so counting single IPv6 addresses would bound nothing (and would
//! fill a table with as many entries as the host cares to use). An IPv4-mapped IPv6 address
//! (a dual-stack socket's view of an IPv4 peer) counts as its IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// What `ip` is counted as: itself (IPv4, also when written IPv4-mapped), or its IPv6 /64.
pub fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Connections open per source, at most `limit` each. A source with none open has no entry, so
/// the table never holds more entries than there are connections.
pub struct OpenPerSource {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its source's count; dropping it (the connection ended, however it
/// ended: closed, failed, timed out, or its task panicked or was cancelled) gives the place back.
pub struct SourcePlace {
    counts: Arc<OpenPerSource>,
    source: IpAddr,
}

impl OpenPerSource {
    pub fn new(limit: usize) -> Arc<OpenPerSource> {
        Arc::new(OpenPerSource {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place for one more connection from `ip`, or `None` when its source has `limit` open.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<SourcePlace> {
        let source = source(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.get(&source).copied().unwrap_or(0);
        if n >= self.limit {
            return None;
        }
        open.insert(source, n + 1);
        Some(SourcePlace {
            counts: self.clone(),
            source,
        })
    }

    /// Sources with a connection open.
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for SourcePlace {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        assert_eq!(source(ip("2001:db8:1:2:abcd::9")), ip("2001:db8:1:2::"));
        assert_eq!(source(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(source(ip("10.0.0.7")), ip("10.0.0.7"));
    }

    #[test]
    fn places_are_bounded_per_source_and_given_back_on_drop() {
        let counts = OpenPerSource::new(2);
        let one = counts.take(ip("10.0.0.1")).unwrap();
        let _two = counts.take(ip("::ffff:10.0.0.1")).unwrap();
        assert!(counts.take(ip("10.0.0.1")).is_none());
        let _other = counts.take(ip("10.0.0.2")).unwrap();
        drop(one);
        assert!(counts.take(ip("10.0.0.1")).is_some());
        assert_eq!(counts.sources(), 2);

        let v6 = counts.take(ip("2001:db8::1")).unwrap();
        let _v6 = counts.take(ip("2001:db8::ffff")).unwrap();
        assert!(counts.take(ip("2001:db8::2")).is_none(), "same /64");
        assert!(counts.take(ip("2001:db8:0:1::1")).is_some(), "next /64");
        drop(v6);
        assert!(counts.take(ip("2001:db8::3")).is_some());
    }

    /// A connection task that panics still gives its place back: the place is dropped as the
    /// task's future unwinds.
    #[tokio::test]
    async fn a_panicking_holder_gives_its_place_back() {
        let counts = OpenPerSource::new(1);
        let place = counts.take(ip("10.0.0.1")).unwrap();
        let task = tokio::spawn(async move {
            let _place = place;
            panic!("connection task failed");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(counts.sources(), 0);
        assert!(counts.take(ip("10.0.0.1")).is_some());
    }
}
