//! The responder shared by the UDP loop and the TCP connections: access control, zone answers
//! and forwarding, as one async function over a parsed request.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, Query};
use ipnet::IpNet;

use super::forward::Forwarder;
use super::live::DnsZone;
use super::respond::{self, Plan};
use super::stats::Stats;

pub struct Responder {
    pub zone: DnsZone,
    forwarder: Option<Forwarder>,
    allow: Vec<IpNet>,
    pub stats: Arc<Stats>,
}

impl Responder {
    pub fn new(
        zone: DnsZone,
        forwarder: Option<Forwarder>,
        allow: Vec<IpNet>,
        stats: Arc<Stats>,
    ) -> Responder {
        Responder {
            zone,
            forwarder,
            allow,
            stats,
        }
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// The reply to `req` from `src`, or `None` when nothing should be sent.
    pub async fn respond(&self, req: &Message, src: IpAddr) -> Option<Message> {
        match self.local(req, src) {
            Local::Reply(reply) => reply,
            Local::Forward { query, partial } => {
                Some(self.forward(req, &query, partial.as_ref()).await)
            }
        }
    }

    /// What the zone and access control decide without any I/O: the reply (`None`: send
    /// nothing), or the question to forward. The UDP loop answers the first kind on its own
    /// thread, so answers of the zone never wait behind questions for a slow upstream.
    pub fn local(&self, req: &Message, src: IpAddr) -> Local {
        let served = self.zone.current();
        let recursion = self.forwarder.is_some();
        match respond::plan(&served.zone, req, self.allowed(src), recursion) {
            Plan::Drop => {
                Stats::count(&self.stats.dropped);
                Local::Reply(None)
            }
            Plan::Reply(reply) => {
                Stats::count(&self.stats.local);
                Local::Reply(Some(reply))
            }
            Plan::Forward(query) => Local::Forward {
                query,
                partial: None,
            },
            Plan::Chase(partial, query) => Local::Forward {
                query,
                partial: Some(partial),
            },
        }
    }

    /// The reply to `req` once `query` is asked upstream (or found in the cache): its own
    /// question, or the target of the zone's CNAME answer `partial`, which the answer completes.
    pub async fn forward(
        &self,
        req: &Message,
        query: &Query,
        partial: Option<&Message>,
    ) -> Message {
        let Some(forwarder) = self.forwarder.as_ref() else {
            // `plan` forwards only when a forwarder exists.
            return respond::servfail(req);
        };
        Stats::count(&self.stats.forwarded);
        let (answer, hit) = forwarder.resolve(query).await;
        if hit {
            Stats::count(&self.stats.cache_hits);
        }
        match answer {
            Some(answer) => match partial {
                Some(partial) => respond::chased(partial, &answer),
                None => respond::forwarded(req, &answer),
            },
            None => {
                Stats::count(&self.stats.upstream_failures);
                respond::servfail(req)
            }
        }
    }
}

/// What [`Responder::local`] decided.
pub enum Local {
    /// Answered (or to be dropped, `None`) without leaving the box.
    Reply(Option<Message>),
    /// Ask upstream with [`Responder::forward`]: a question not ours, or the target of the
    /// zone's CNAME answer `partial`.
    Forward {
        query: Query,
        partial: Option<Message>,
    },
}
