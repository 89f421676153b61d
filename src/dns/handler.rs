//! The responder shared by the UDP loop and hickory-server's TCP service: access control, zone
//! answers and forwarding, as one async function over a parsed request. `TcpHandler` adapts it
//! to hickory-server's `RequestHandler`.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{
    Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
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

/// DNS over TCP through hickory-server's `Server` (framing, idle timeouts, connection tasks).
pub struct TcpHandler(pub Arc<Responder>);

fn failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let Ok(req) = Message::from_vec(request.as_slice()) else {
            return failed(request);
        };
        let Some(reply) = self.0.respond(&req, request.src().ip()).await else {
            return failed(request);
        };
        let response = MessageResponseBuilder::new(&request.queries, reply.edns.as_ref()).build(
            reply.metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "DNS reply over TCP not sent");
                failed(request)
            }
        }
    }
}
