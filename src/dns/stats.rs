//! DNS counters for the metrics, kept lock-free because the UDP loop answers on its own thread.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    /// Answered from the zone (pre-encoded fast path or planned reply).
    pub local: AtomicU64,
    /// Sent to an upstream resolver, or answered from its cache.
    pub forwarded: AtomicU64,
    /// Forwarded queries answered from the cache.
    pub cache_hits: AtomicU64,
    /// Forwarded queries no upstream answered (SERVFAIL).
    pub upstream_failures: AtomicU64,
    /// Not answered: refused by `allow_from`, unparseable, or too many in flight.
    pub dropped: AtomicU64,
    /// Held back by rate limiting: over UDP slipped or dropped, over TCP delayed.
    pub rate_limited: AtomicU64,
    /// TCP connections closed as soon as accepted: the source is outside `allow_from`, or over
    /// `tcp_max_connections` / `tcp_connections_per_client`.
    pub tcp_refused: AtomicU64,
}

impl Stats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(name, value)` of every counter, for rendering.
    pub fn view(&self) -> [(&'static str, u64); 7] {
        [
            ("local", self.local.load(Ordering::Relaxed)),
            ("forwarded", self.forwarded.load(Ordering::Relaxed)),
            ("cache_hits", self.cache_hits.load(Ordering::Relaxed)),
            (
                "upstream_failures",
                self.upstream_failures.load(Ordering::Relaxed),
            ),
            ("dropped", self.dropped.load(Ordering::Relaxed)),
            ("rate_limited", self.rate_limited.load(Ordering::Relaxed)),
            ("tcp_refused", self.tcp_refused.load(Ordering::Relaxed)),
        ]
    }
}
