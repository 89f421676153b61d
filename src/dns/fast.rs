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
        plain_options(&packet[question_end + 11..])?;
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

/// EDNS option code of Client Subnet (RFC 7871).
const CLIENT_SUBNET: u16 = 8;

/// `Some` when OPT options tile their RDATA exactly and none is a Client Subnet, whose contents
/// the general path's decoder validates. Anything else is a datagram the general path drops as
/// malformed, so the fast path must not answer it either.
fn plain_options(mut options: &[u8]) -> Option<()> {
    while !options.is_empty() {
        if u16_at(options, 0)? == CLIENT_SUBNET {
            return None;
        }
        options = options.get(4 + usize::from(u16_at(options, 2)?)..)?;
    }
    Some(())
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
    use crate::dns::respond::{Plan, plan, udp_limit};
    use crate::dns::zone::tests::sample;
    use hickory_proto::serialize::binary::BinEncodable;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::sync::LazyLock;

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
    fn malformed_or_client_subnet_edns_options_go_the_general_way() {
        let fast = FastPath::build(&sample(), false);
        let question = (
            wire_name(&Name::from_ascii("sip.prov.example.lan.").unwrap()),
            1,
        );
        let ask = |options: &[u8]| {
            let q = wire_query(
                0,
                false,
                std::slice::from_ref(&question),
                Some((0, 0, options.to_vec())),
            );
            fast.answer(&q)
        };
        assert!(ask(&[]).is_some());
        assert!(
            ask(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]).is_some(),
            "client cookie"
        );
        assert!(
            ask(&[0xFD, 0xE9, 0x01, 0x01, 0]).is_none(),
            "option longer than OPT"
        );
        assert!(ask(&[0, 10, 0]).is_none(), "option header cut short");
        assert!(ask(&[0, 8, 0, 4, 0, 1, 0, 0]).is_none(), "client subnet");
    }

    #[test]
    fn names_up_to_255_octets_are_read_and_longer_ones_refused() {
        let name = |len: usize| {
            let mut wire = [[63].as_slice(), &[b'A'; 63]].concat().repeat(3);
            wire.push(u8::try_from(len - 194).unwrap());
            wire.resize(len - 1, b'a');
            wire.push(0);
            wire
        };
        let longest = name(255);
        assert_eq!(
            read_name(&longest, 0),
            Some((longest.to_ascii_lowercase(), 255))
        );
        assert_eq!(read_name(&name(256), 0), None);
    }

    #[test]
    fn slip_is_no_bigger_than_the_query() {
        let (_, bytes) = query_bytes("sip.prov.example.lan.", RecordType::A, true);
        let s = slip(&bytes).unwrap();
        assert!(s.len() <= bytes.len());
        let m = Message::from_vec(&s).unwrap();
        assert!(m.metadata.truncation);
    }

    /// An EDNS version 0 OPT: payload size, flags and the options' wire form.
    type Opt = (u16, u16, Vec<u8>);

    /// A query as a stub resolver writes it, byte by byte (not through the codec the general
    /// path uses): `id`, the RD bit, the questions (class IN) and, when given, an OPT.
    fn wire_query(id: u16, rd: bool, questions: &[(Vec<u8>, u16)], edns: Option<Opt>) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend([u8::from(rd), 0]);
        b.extend(u16::try_from(questions.len()).unwrap().to_be_bytes());
        b.extend([0, 0, 0, 0, 0, u8::from(edns.is_some())]);
        for (name, qtype) in questions {
            b.extend(name);
            b.extend(qtype.to_be_bytes());
            b.extend(1u16.to_be_bytes());
        }
        if let Some((payload, flags, options)) = edns {
            b.extend([0, 0, 41]);
            b.extend(payload.to_be_bytes());
            b.extend([0, 0]); // extended RCODE, version 0
            b.extend(flags.to_be_bytes());
            b.extend(u16::try_from(options.len()).unwrap().to_be_bytes());
            b.extend(options);
        }
        b
    }

    /// What the server sends for `packet` when the fast path declines: parse, plan, encode.
    fn general(packet: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        match plan(&SAMPLE.0, &req, true, false) {
            Plan::Reply(reply) => encode(&reply, udp_limit(&req)),
            _ => None,
        }
    }

    /// `packet` with the letters of its (first) question name lower-cased.
    fn lower_name(packet: &[u8]) -> Vec<u8> {
        let mut out = packet.to_vec();
        if let Some((_, end)) = read_name(packet, HEADER) {
            out[HEADER..end].make_ascii_lowercase();
        }
        out
    }

    /// The sample zone and its fast path, built once for all cases of the properties.
    static SAMPLE: LazyLock<(Zone, FastPath)> = LazyLock::new(|| {
        let zone = sample();
        let fast = FastPath::build(&zone, false);
        (zone, fast)
    });

    /// The (wire name, type) pairs the sample zone's fast path answers, in a fixed order.
    fn known() -> Vec<(Vec<u8>, u16)> {
        let mut keys: Vec<_> = SAMPLE.1.answers.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// A question for one of the fast path's names, its letters in any case.
    fn known_question() -> impl Strategy<Value = (Vec<u8>, u16)> {
        let keys = known();
        (
            any::<Index>(),
            proptest::collection::vec(any::<bool>(), 255),
        )
            .prop_map(move |(pick, upper)| {
                let (mut name, qtype) = keys[pick.index(keys.len())].clone();
                for (b, up) in name.iter_mut().zip(upper) {
                    if up {
                        b.make_ascii_uppercase();
                    }
                }
                (name, qtype)
            })
    }

    /// An OPT with any payload size and flags, and options a resolver sends: a client
    /// cookie, padding, or one the server does not know.
    fn opt() -> impl Strategy<Value = Opt> {
        let option = prop_oneof![
            proptest::collection::vec(any::<u8>(), 8).prop_map(|c| (10u16, c)),
            (0..64usize).prop_map(|n| (12u16, vec![0; n])),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(|d| (65_001u16, d)),
        ];
        (
            any::<u16>(),
            any::<u16>(),
            proptest::collection::vec(option, 0..3),
        )
            .prop_map(|(payload, flags, options)| {
                let mut wire = Vec::new();
                for (code, data) in options {
                    wire.extend(code.to_be_bytes());
                    wire.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
                    wire.extend(data);
                }
                (payload, flags, wire)
            })
    }

    /// A plain query for a known name: any ID and RD bit, with or without EDNS.
    fn known_query() -> impl Strategy<Value = Vec<u8>> {
        (
            known_question(),
            any::<u16>(),
            any::<bool>(),
            proptest::option::of(opt()),
        )
            .prop_map(|(q, id, rd, edns)| wire_query(id, rd, &[q], edns))
    }

    /// A known query with a few bytes overwritten anywhere (header, name, type, class, OPT).
    fn mutated_query() -> impl Strategy<Value = Vec<u8>> {
        (
            known_query(),
            proptest::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        )
            .prop_map(|(mut q, edits)| {
                for (at, byte) in edits {
                    let i = at.index(q.len());
                    q[i] = byte;
                }
                q
            })
    }

    /// Asserts that a fast answer to `packet`, if any, is the general path's answer up to the
    /// letter case of names.
    fn assert_agrees(packet: &[u8]) -> Result<(), TestCaseError> {
        if let Some(got) = SAMPLE.1.answer(packet) {
            let Some(want) = general(packet) else {
                return Err(TestCaseError::fail(format!(
                    "fast path answered {packet:?}, which the general path would not"
                )));
            };
            prop_assert_eq!(Message::from_vec(&got).ok(), Message::from_vec(&want).ok());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every UDP datagram reaches these functions before anything else looks at it: no
        /// bytes may panic them, a slip (sent to clients being rate limited, and so to spoofed
        /// victims) must be a truncated reply no larger than the query, and a name read is
        /// exactly the bytes it consumed.
        #[test]
        fn arbitrary_datagrams_never_panic(
            packet in prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), mutated_query()],
            at in 0..40usize,
        ) {
            assert_agrees(&packet)?;
            if let Some(s) = slip(&packet) {
                prop_assert!(s.len() <= packet.len());
                prop_assert_eq!(&s[..2], &packet[..2], "ID");
                prop_assert_eq!(s[2] & 0x82, 0x82, "QR and TC");
                prop_assert_eq!(&s[4..12], &[0, 1, 0, 0, 0, 0, 0, 0][..], "counts");
            }
            if let Some((name, end)) = read_name(&packet, at) {
                prop_assert!(end <= packet.len() && name.len() <= 255);
                prop_assert_eq!(name, packet[at..end].to_ascii_lowercase());
            }
        }

        /// Names of up to 255 octets (RFC 1035 §3.1) are read, lower-cased, to their end; longer
        /// ones are refused rather than read past the limit the zone's keys obey.
        #[test]
        fn read_name_takes_exactly_the_names_dns_allows(
            labels in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 1..64),
                0..8,
            ),
        ) {
            let mut wire = Vec::new();
            for label in &labels {
                wire.push(u8::try_from(label.len()).unwrap());
                wire.extend(label);
            }
            wire.push(0);
            let want = (wire.len() <= 255).then(|| (wire.to_ascii_lowercase(), wire.len()));
            prop_assert_eq!(read_name(&wire, 0), want);
        }

        /// A phone's query for a provisioning name, in any letter case (0x20 randomisation),
        /// is answered from the fast path with its own ID, RD bit and question bytes, and the
        /// answer is the general path's, byte for byte once names are lower-cased.
        #[test]
        fn known_names_in_any_case_get_the_general_answer(q in known_query()) {
            let got = SAMPLE.1.answer(&q);
            prop_assert!(got.is_some(), "declined {:?}", q);
            let got = got.unwrap();
            let (_, end) = read_name(&q, HEADER).unwrap();
            prop_assert_eq!(&got[..2], &q[..2], "ID");
            prop_assert_eq!(got[2] & 0x01, q[2] & 0x01, "RD");
            prop_assert_eq!(&got[HEADER..end + 4], &q[HEADER..end + 4], "question");
            prop_assert_eq!(Some(lower_name(&got)), general(&lower_name(&q)));
            assert_agrees(&q)?;
        }

        /// Whatever a few changed bytes make of a good query, the fast path either declines
        /// it or gives the answer the general path would: it never answers a query it has
        /// misread.
        #[test]
        fn changed_queries_are_declined_or_answered_alike(q in mutated_query()) {
            assert_agrees(&q)?;
        }

        /// A good query followed by garbage, or carrying a second question, is not the plain
        /// query the fast path understands: it goes the general way.
        #[test]
        fn trailing_bytes_or_a_second_question_are_declined(
            first in known_question(),
            second in known_question(),
            garbage in proptest::collection::vec(any::<u8>(), 1..16),
            id in any::<u16>(),
            edns in proptest::option::of(opt()),
        ) {
            let mut trailing = wire_query(id, true, std::slice::from_ref(&first), edns.clone());
            trailing.extend(&garbage);
            prop_assert_eq!(SAMPLE.1.answer(&trailing), None);
            let two = wire_query(id, true, &[first, second], edns);
            prop_assert_eq!(SAMPLE.1.answer(&two), None);
        }
    }
}
