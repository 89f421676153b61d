//! The responder shared by the UDP loop and the TCP connections: access control, zone answers
//! and forwarding, as one async function over a parsed request.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::Message;
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
        let served = self.zone.current();
        let recursion = self.forwarder.is_some();
        match respond::plan(&served.zone, req, self.allowed(src), recursion) {
            Plan::Drop => {
                Stats::count(&self.stats.dropped);
                None
            }
            Plan::Reply(reply) => {
                Stats::count(&self.stats.local);
                Some(reply)
            }
            Plan::Forward(query) => {
                drop(served);
                let forwarder = self.forwarder.as_ref()?;
                Stats::count(&self.stats.forwarded);
                let (answer, hit) = forwarder.resolve(&query).await;
                if hit {
                    Stats::count(&self.stats.cache_hits);
                }
                Some(match answer {
                    Some(answer) => respond::forwarded(req, &answer),
                    None => {
                        Stats::count(&self.stats.upstream_failures);
                        respond::servfail(req)
                    }
                })
            }
        }
    }
}
