//! Pure request → response logic: what to answer, with which flags, and how a reply is cut to
//! fit a UDP datagram. The socket code only moves the bytes this produces.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::cache::Cached;
use super::zone::{Lookup, Zone};

/// The UDP payload size this server advertises and uses at most (the DNS flag day 2020 value,
/// which avoids IP fragmentation on common paths).
pub const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a parsed request.
#[derive(Debug)]
pub enum Plan {
    Reply(Message),
    /// Not ours: ask upstream, then build the reply with [`forwarded`].
    Forward(Query),
    /// Our answer is a CNAME to a name elsewhere: ask upstream for the target, then complete
    /// the answer with [`chased`].
    Chase(Message, Query),
    /// Say nothing (responses, which would let two servers loop).
    Drop,
}

/// A response skeleton for `req`: ID, opcode, RD and question copied, EDNS answered if asked.
pub fn base_reply(req: &Message, recursion: bool) -> Message {
    let mut reply = Message::response(req.metadata.id, req.metadata.op_code);
    reply.metadata.recursion_desired = req.metadata.recursion_desired;
    reply.metadata.recursion_available = recursion;
    reply.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.edns = Some(edns);
    }
    reply
}

fn error(req: &Message, recursion: bool, code: ResponseCode) -> Message {
    let mut reply = base_reply(req, recursion);
    reply.metadata.response_code = code;
    reply
}

/// Decides the answer. `allowed`: the client is inside `allow_from`; `recursion`: an upstream
/// is configured.
pub fn plan(zone: &Zone, req: &Message, allowed: bool, recursion: bool) -> Plan {
    if req.metadata.message_type != MessageType::Query {
        return Plan::Drop;
    }
    if !allowed {
        return Plan::Reply(error(req, recursion, ResponseCode::Refused));
    }
    if req.metadata.op_code != OpCode::Query {
        return Plan::Reply(error(req, recursion, ResponseCode::NotImp));
    }
    if let Some(edns) = &req.edns
        && edns.version() > 0
    {
        return Plan::Reply(error(req, recursion, ResponseCode::BADVERS));
    }
    let [query] = req.queries.as_slice() else {
        return Plan::Reply(error(req, recursion, ResponseCode::FormErr));
    };
    if query.query_class() != DNSClass::IN {
        return Plan::Reply(error(req, recursion, ResponseCode::NotImp));
    }
    if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
        return Plan::Reply(error(req, recursion, ResponseCode::Refused));
    }
    match authoritative(zone, req, recursion) {
        Some(reply) => match chase_target(zone, &reply, req, recursion) {
            Some(target) => Plan::Chase(reply, target),
            None => Plan::Reply(reply),
        },
        None if recursion => Plan::Forward(query.clone()),
        None => Plan::Reply(error(req, recursion, ResponseCode::Refused)),
    }
}

/// The zone's answer to the request's single question, or `None` when the name is not ours.
pub fn authoritative(zone: &Zone, req: &Message, recursion: bool) -> Option<Message> {
    let query = req.queries.first()?;
    let name = LowerName::from(query.name().clone());
    let mut reply = base_reply(req, recursion);
    reply.metadata.authoritative = true;
    match zone.lookup(&name, query.query_type()) {
        Lookup::Elsewhere => return None,
        Lookup::Answer {
            answers,
            additionals,
        } => {
            reply.answers = answers;
            reply.additionals = additionals;
        }
        Lookup::NoData => reply.authorities = vec![zone.negative_soa()],
        Lookup::NxDomain => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            reply.authorities = vec![zone.negative_soa()];
        }
    }
    Some(reply)
}

/// The question to ask upstream when the zone's answer ends in a CNAME whose target lies
/// outside the zone: a client that asks for recursion (a phone's stub resolver) follows no
/// CNAME itself and, given the alias alone, finds no address. A recursive server answers with
/// the whole chain (BIND restarts the query at the target, Unbound resolves the target of its
/// local data); without an upstream, or without RD, the CNAME is the answer.
fn chase_target(zone: &Zone, reply: &Message, req: &Message, recursion: bool) -> Option<Query> {
    let qtype = req.queries.first()?.query_type();
    if !recursion
        || !req.metadata.recursion_desired
        || matches!(qtype, RecordType::CNAME | RecordType::ANY)
    {
        return None;
    }
    let RData::CNAME(target) = &reply.answers.last()?.data else {
        return None;
    };
    if zone.origin().zone_of(&LowerName::from(target.0.clone())) {
        return None;
    }
    Some(Query::query(target.0.clone(), qtype))
}

/// The zone's CNAME answer `partial` completed with upstream's answer for its target: the chain
/// first, then the target's records, with the target's response code (RFC 6604). Not
/// authoritative, since the target's records are not ours.
pub fn chased(partial: &Message, answer: &Cached) -> Message {
    let mut reply = partial.clone();
    reply.metadata.authoritative = false;
    reply.metadata.response_code = answer.rcode;
    reply.answers.extend(answer.answers.iter().cloned());
    reply.authorities = answer.authorities.clone();
    reply.additionals = answer.additionals.clone();
    reply
}

/// The reply to a forwarded question, from upstream's (possibly cached) answer.
pub fn forwarded(req: &Message, answer: &Cached) -> Message {
    let mut reply = base_reply(req, true);
    reply.metadata.response_code = answer.rcode;
    reply.answers = answer.answers.clone();
    reply.authorities = answer.authorities.clone();
    reply.additionals = answer.additionals.clone();
    reply
}

pub fn servfail(req: &Message) -> Message {
    error(req, true, ResponseCode::ServFail)
}

/// A reply as sent over UDP: an answer to an ANY question keeps its first RRset only and no
/// additional records (RFC 8482 4.2, BIND's `minimal-any`). Over UDP the source is not proven,
/// and every RRset at a name in one answer is the reflection an ANY query is sent to get; a
/// client that wants them all asks over TCP, where the reply is whole.
pub fn for_udp(mut reply: Message) -> Message {
    let any = reply
        .queries
        .first()
        .is_some_and(|q| q.query_type() == RecordType::ANY);
    if let (true, Some(first)) = (any, reply.answers.first()) {
        let kept = first.record_type();
        reply.answers.retain(|r| r.record_type() == kept);
        reply.additionals.clear();
    }
    reply
}

/// The largest UDP reply the client accepts: 512 without EDNS (RFC 1035), else what it
/// advertised, never more than we advertise.
pub fn udp_limit(req: &Message) -> usize {
    match &req.edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
        None => 512,
    }
}

/// Encodes a reply; if it exceeds `limit`, sends header, question and OPT only, with TC set, so
/// the client retries over TCP (rather than a partial record set it might cache).
pub fn encode(reply: &Message, limit: usize) -> Option<Vec<u8>> {
    let full = to_bytes(reply)?;
    if full.len() <= limit {
        return Some(full);
    }
    let cut = reply.truncate();
    to_bytes(&cut).filter(|b| b.len() <= limit)
}

fn to_bytes(msg: &Message) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    match msg.emit(&mut enc) {
        Ok(()) => Some(buf),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a DNS reply");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zone::tests::sample;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType, edns: bool) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            m.edns = Some(Edns::new());
        }
        m
    }

    fn reply(p: Plan) -> Message {
        match p {
            Plan::Reply(m) => m,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn authoritative_flags_and_codes() {
        let z = sample();
        let r = reply(plan(
            &z,
            &query("sip.prov.example.lan.", RecordType::A, false),
            true,
            false,
        ));
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        let r = reply(plan(
            &z,
            &query("no.prov.example.lan.", RecordType::A, false),
            true,
            false,
        ));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities.len(), 1);
        let r = reply(plan(
            &z,
            &query("sip.prov.example.lan.", RecordType::TXT, false),
            true,
            false,
        ));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn elsewhere_is_refused_or_forwarded() {
        let z = sample();
        let q = query("example.com.", RecordType::A, false);
        let r = reply(plan(&z, &q, true, false));
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(matches!(plan(&z, &q, true, true), Plan::Forward(_)));
        let r = reply(plan(
            &z,
            &query("sip.prov.example.lan.", RecordType::A, false),
            false,
            true,
        ));
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn edns_is_echoed_and_limits_payload() {
        let z = sample();
        let q = query("sip.prov.example.lan.", RecordType::A, true);
        let r = reply(plan(&z, &q, true, false));
        assert_eq!(r.edns.as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
        assert_eq!(udp_limit(&q), 512);
        let mut bad = q.clone();
        bad.edns.as_mut().unwrap().set_version(1);
        let r = reply(plan(&z, &bad, true, false));
        assert_eq!(r.metadata.response_code, ResponseCode::BADVERS);
    }

    #[test]
    fn oversized_reply_is_truncated() {
        let z = sample();
        let q = query("sip.prov.example.lan.", RecordType::A, false);
        let mut r = reply(plan(&z, &q, true, false));
        let one = r.answers[0].clone();
        for i in 0..100u8 {
            let mut rec = one.clone();
            rec.data = hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(10, 1, 0, i));
            r.answers.push(rec);
        }
        let bytes = encode(&r, 512).unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        assert!(back.answers.is_empty());
        assert_eq!(back.queries.len(), 1);
    }

    #[test]
    fn responses_are_dropped() {
        let z = sample();
        let mut q = query("sip.prov.example.lan.", RecordType::A, false);
        q.metadata.message_type = MessageType::Response;
        assert!(matches!(plan(&z, &q, true, false), Plan::Drop));
    }
}
