//! The DNS responder: authoritative for the provisioning domain (SOA, NS, the box's names,
//! SRV/TXT discovery records, records from the config and the admin API), forwarding with a
//! cache for everything else, rate-limited per client.
//!
//! Pure parts: `record` (operator records), `zone` (the record set and lookups), `respond`
//! (request → reply), `fast` (pre-encoded hot answers), `cache`, `rrl`. I/O: `forward`
//! (upstream exchange), `server` (sockets and the UDP loop), `tcp` (the bounded TCP accept loop
//! and framing), `handler` (the responder both share), `live` (the served snapshot and its
//! reload).
//!
//! Why not hickory-server's UDP service: it routes every datagram through channels and a
//! spawned task before the handler sees it, so neither a per-client rate limit ahead of parsing
//! nor a pre-encoded fast path can be placed in front of it; at provisioning storms (hundreds of
//! phones booting at once) that path is the cost that matters. Nor its TCP service: it accepts
//! without bound and checks `allow_from` only per request (see `tcp` for what that cost).

mod cache;
mod config;
mod fast;
mod forward;
mod handler;
mod live;
pub mod record;
mod respond;
pub(crate) mod rrl;
mod server;
mod stats;
mod tcp;
pub mod zone;

use std::sync::Arc;
use std::time::Duration;

pub use config::DnsConfig;
/// Public for the `dns_query` fuzz target only: the fast path reads every datagram before
/// anything else does, with a parser of its own, and an outside crate can reach it only so.
pub use fast::{FastPath, slip};
pub use forward::{ExchangeError, exchange};
pub use handler::Responder;
pub use live::{AddError, DnsZone};
pub use record::RecordSpec;
pub use server::{DnsSockets, bind};
pub use stats::Stats;
pub use zone::Provisioning;

/// Starts serving on bound sockets until `stop` turns true, or until a part of it dies (the
/// error names it).
pub async fn serve(
    sockets: DnsSockets,
    zone: DnsZone,
    config: DnsConfig,
    stats: Arc<Stats>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let forwarder = (!config.upstream.is_empty()).then(|| {
        forward::Forwarder::new(
            config.upstream.clone(),
            Duration::from_millis(config.forward_timeout_ms),
            config.cache_size,
        )
    });
    let responder = Arc::new(Responder::new(
        zone,
        forwarder,
        config.allow_from.clone(),
        stats,
    ));
    // One budget per client over UDP and TCP, so switching transport does not double it.
    let limiter = Arc::new(rrl::SharedLimiter::new(config.rate_limit));
    server::serve(
        sockets,
        responder,
        limiter.clone(),
        tcp::Admission::new(
            config.tcp_max_connections,
            config.tcp_connections_per_client,
            limiter,
        ),
        Duration::from_millis(config.tcp_timeout_ms),
        stop,
    )
    .await
}
