//! The hot path: every positive answer of the zone pre-encoded once per zone build, keyed by
//! lower-case wire name and type. A plain query (one question, class IN, optional EDNS version
//! 0 OPT, nothing else) is answered by copying those bytes, patching the ID and RD bit and
//! copying the client's question (so its letter case is echoed) — no parse into a `Message`,
//! no allocation beyond the reply buffer. Anything else returns `None` and goes the general way.

use std::collections::HashMap;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

use super::respond::{EDNS_PAYLOAD, authoritative, encode};
use super::zone::Zone;

const HEADER: usize = 12;

struct Prebuilt {
    plain: Vec<u8>,
    edns: Vec<u8>,
}

#[derive(Default)]
pub struct FastPath {
    answers: HashMap<(Vec<u8>, u16), Prebuilt>,
}

/// A query the fast path understood.
struct Parsed {
    /// End of the question section.
    question_end: usize,
    key: (Vec<u8>, u16),
    /// `Some(payload)` when an EDNS OPT came with it.
    edns_payload: Option<u16>,
}

impl FastPath {
    /// Pre-encodes every (name, type) the zone answers positively.
    pub fn build(zone: &Zone, recursion: bool) -> FastPath {
        let mut answers = HashMap::new();
        for (name, qtype) in zone.keys() {
            let name = Name::from(name.clone());
            let mut req = Message::query();
            req.add_query(Query::query(name.clone(), qtype));
            let Some(reply) = authoritative(zone, &req, recursion) else {
                continue;
            };
            if reply.answers.is_empty() {
                continue;
            }
            let plain = encode(&reply, usize::from(u16::MAX));
            req.edns = Some(Edns::new());
            let Some(with_edns) = authoritative(zone, &req, recursion) else {
                continue;
            };
            let edns = encode(&with_edns, usize::from(u16::MAX));
            if let (Some(plain), Some(edns)) = (plain, edns) {
                answers.insert(
                    (wire_name(&name), u16::from(qtype)),
                    Prebuilt { plain, edns },
                );
            }
        }
        FastPath { answers }
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The reply to `packet`, if it is a plain query for a pre-encoded answer that fits.
    pub fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let q = parse(packet)?;
        let pre = self.answers.get(&q.key)?;
        let (bytes, limit) = match q.edns_payload {
            None => (&pre.plain, 512),
            Some(p) => (&pre.edns, usize::from(p.clamp(512, EDNS_PAYLOAD))),
        };
        if bytes.len() > limit {
            return None;
        }
        let mut out = bytes.clone();
        out[0] = packet[0];
        out[1] = packet[1];
        out[2] = (out[2] & !0x01) | (packet[2] & 0x01);
        out[HEADER..q.question_end].copy_from_slice(&packet[HEADER..q.question_end]);
        Some(out)
    }
}

/// The lower-case wire form of a name (length-prefixed labels, final zero).
fn wire_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Reads an uncompressed question name starting at `at`; returns (lower-case wire name, end).
pub(crate) fn read_name(packet: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(64);
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            name.push(0);
            return Some((name, at + 1));
        }
        if len > 63 || name.len() + len + 2 > 255 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        name.push(len as u8);
        name.extend(label.iter().map(u8::to_ascii_lowercase));
        at += 1 + len;
    }
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

fn parse(packet: &[u8]) -> Option<Parsed> {
    if packet.len() < HEADER + 5 {
        return None;
    }
    // QR=0, opcode QUERY, AA and TC clear; RD may be anything.
    if packet[2] & 0xFE != 0 {
        return None;
    }
    let counts = [
        u16_at(packet, 4)?,
        u16_at(packet, 6)?,
        u16_at(packet, 8)?,
        u16_at(packet, 10)?,
    ];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let (name, at) = read_name(packet, HEADER)?;
    let qtype = u16_at(packet, at)?;
    if u16_at(packet, at + 2)? != 1 {
        return None;
    }
    let question_end = at + 4;
    let mut edns_payload = None;
    if counts[3] == 1 {
        // OPT: root name, type 41, class = payload, TTL = ext-rcode/version/flags, options.
        let opt = packet.get(question_end..question_end + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != 41 || opt[6] != 0 {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        if question_end + 11 + rdlen != packet.len() {
            return None;
        }
        edns_payload = Some(u16::from_be_bytes([opt[3], opt[4]]));
    } else if question_end != packet.len() {
        return None;
    }
    if qtype == u16::from(RecordType::ANY) {
        return None;
    }
    Some(Parsed {
        question_end,
        key: (name, qtype),
        edns_payload,
    })
}

/// A minimal truncated reply (header and question, TC set) for a rate-limited client: no
/// larger than the query, so it amplifies nothing, yet a real resolver retries over TCP.
pub fn slip(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < HEADER || packet[2] & 0x80 != 0 || u16_at(packet, 4)? != 1 {
        return None;
    }
    let (_, at) = read_name(packet, HEADER)?;
    let end = at + 4;
    let mut out = packet.get(..end)?.to_vec();
    out[2] = (out[2] & 0x79) | 0x82; // QR, TC; keep opcode and RD
    out[3] = 0;
    out[6..12].fill(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::respond::{Plan, plan};
    use crate::dns::zone::tests::sample;
    use hickory_proto::serialize::binary::BinEncodable;

    fn query_bytes(name: &str, t: RecordType, edns: bool) -> (Message, Vec<u8>) {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            m.edns = Some(Edns::new());
        }
        let b = m.to_bytes().unwrap();
        (m, b)
    }

    #[test]
    fn fast_answer_equals_general_answer() {
        let z = sample();
        let fast = FastPath::build(&z, false);
        assert!(!fast.is_empty());
        for (name, t, edns) in [
            ("sip.prov.example.lan.", RecordType::A, false),
            ("_https._tcp.prov.example.lan.", RecordType::SRV, true),
            ("prov.example.lan.", RecordType::SOA, false),
        ] {
            let (msg, bytes) = query_bytes(name, t, edns);
            let got = fast.answer(&bytes).expect("fast path answers");
            let Plan::Reply(general) = plan(&z, &msg, true, false) else {
                panic!()
            };
            assert_eq!(got, encode(&general, 4096).unwrap(), "{name} {t}");
        }
    }

    #[test]
    fn echoes_question_case_and_id() {
        let z = sample();
        let fast = FastPath::build(&z, false);
        let (msg, bytes) = query_bytes("SIP.prov.EXAMPLE.lan.", RecordType::A, false);
        let got = Message::from_vec(&fast.answer(&bytes).unwrap()).unwrap();
        assert_eq!(got.metadata.id, msg.metadata.id);
        assert!(got.metadata.recursion_desired);
        assert_eq!(got.queries[0].name().to_ascii(), "SIP.prov.EXAMPLE.lan.");
    }

    #[test]
    fn declines_what_it_does_not_know() {
        let fast = FastPath::build(&sample(), false);
        let (_, bytes) = query_bytes("nope.prov.example.lan.", RecordType::A, false);
        assert!(fast.answer(&bytes).is_none());
        let (_, mut bytes) = query_bytes("sip.prov.example.lan.", RecordType::A, false);
        bytes.push(0);
        assert!(fast.answer(&bytes).is_none(), "trailing bytes");
        assert!(fast.answer(&bytes[..15]).is_none());
        assert!(fast.answer(&[]).is_none());
    }

    #[test]
    fn slip_is_no_bigger_than_the_query() {
        let (_, bytes) = query_bytes("sip.prov.example.lan.", RecordType::A, true);
        let s = slip(&bytes).unwrap();
        assert!(s.len() <= bytes.len());
        let m = Message::from_vec(&s).unwrap();
        assert!(m.metadata.truncation);
    }
}
