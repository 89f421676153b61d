//! Requests in, replies out: dhcproto reads and writes the fixed BOOTP header; the options come
//! from the raw walk in [`super::options`] (dhcproto's option decoding loses options silently) and
//! are written by [`ReplyOptions::write`] in the order the client asked for them.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{Flags, HType, Message, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::options::{
    self, CLIENT_ID, HOST_NAME, MAX_MESSAGE_SIZE, MESSAGE_TYPE, OVERLOAD, PARAMETER_LIST,
    RELAY_AGENT_INFO, REQUESTED_IP, RawOptions, ReplyOptions, SERVER_ID, VENDOR_CLASS, WalkError,
};
use crate::model::Mac;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Where the options start: the fixed header (236 bytes) and the magic cookie.
const OPTIONS_AT: usize = 240;
/// Where the `sname` (64 bytes) and `file` (128 bytes) header fields start.
const SNAME_AT: usize = 44;
const FILE_AT: usize = 108;
/// BOOTP relays and old clients drop replies shorter than a BOOTP message.
const MIN_REPLY: usize = 300;
/// RFC 2131: every client accepts 576-byte IP datagrams; the IP and UDP headers take 28.
const MIN_MAX_MESSAGE: usize = 576;
const IP_UDP_HEADERS: usize = 28;

/// The client messages a server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
}

/// Server message types.
pub const OFFER: u8 = 2;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("shorter than a BOOTP header")]
    Short,
    #[error("wrong magic cookie")]
    Cookie,
    #[error("hardware type {htype} length {hlen}: only Ethernet clients are served")]
    Hardware { htype: u8, hlen: u8 },
    #[error(transparent)]
    Options(#[from] WalkError),
    #[error("no DHCP message type (a BOOTP client)")]
    NoType,
    #[error("message type {0} is not one a server answers")]
    NotForServer(u8),
    #[error("a BOOTREPLY")]
    Reply,
}

impl DecodeError {
    /// Broken packets, as opposed to well-formed ones that are simply not ours to answer.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            DecodeError::Short | DecodeError::Cookie | DecodeError::Options(_)
        )
    }
}

/// What the server needs from a client's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub xid: u32,
    pub broadcast: bool,
    pub hops: u8,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: Mac,
    pub chaddr: [u8; 16],
    /// Option 61, empty when absent.
    pub client_id: Vec<u8>,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Option 55: the codes the client wants, most wanted first.
    pub prl: Vec<u8>,
    /// Bytes available for the reply's DHCP message (fixed header included).
    pub max_size: usize,
    pub hostname: String,
    pub vendor_class: String,
    /// Option 82 as the relay sent it, echoed unchanged.
    pub relay_info: Vec<u8>,
}

/// Decodes a client message; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
    if bytes.len() < OPTIONS_AT {
        return Err(DecodeError::Short);
    }
    if bytes[236..OPTIONS_AT] != MAGIC {
        return Err(DecodeError::Cookie);
    }
    // dhcproto reads the fixed header only: it is handed the header and an END option. Its
    // option decoding loses options silently, and in debug builds asserts on some (a rapid
    // commit option with a length panics), so the options are never shown to it.
    let mut header = [0u8; OPTIONS_AT + 1];
    header[..OPTIONS_AT].copy_from_slice(&bytes[..OPTIONS_AT]);
    header[OPTIONS_AT] = options::END;
    let msg = Message::decode(&mut Decoder::new(&header)).map_err(|_| DecodeError::Short)?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(DecodeError::Reply);
    }
    let htype = u8::from(msg.htype());
    if msg.htype() != HType::Eth || msg.hlen() != 6 {
        return Err(DecodeError::Hardware {
            htype,
            hlen: msg.hlen(),
        });
    }
    let opts = walk_all(bytes)?;
    let kind = match opts.get(MESSAGE_TYPE) {
        None => return Err(DecodeError::NoType),
        Some([1]) => Kind::Discover,
        Some([3]) => Kind::Request,
        Some([4]) => Kind::Decline,
        Some([7]) => Kind::Release,
        Some([8]) => Kind::Inform,
        Some([t]) => return Err(DecodeError::NotForServer(*t)),
        Some(v) => {
            return Err(DecodeError::Options(WalkError::BadLength {
                code: MESSAGE_TYPE,
                len: v.len(),
                expected: "1",
            }));
        }
    };
    let max_size = match opts.get(MAX_MESSAGE_SIZE) {
        Some([a, b]) => usize::from(u16::from_be_bytes([*a, *b])).max(MIN_MAX_MESSAGE),
        _ => MIN_MAX_MESSAGE,
    } - IP_UDP_HEADERS;
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&bytes[28..44]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&chaddr[..6]);
    Ok(Request {
        kind,
        xid: msg.xid(),
        broadcast: msg.flags().broadcast(),
        hops: msg.hops(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        mac: Mac::from_octets(mac),
        chaddr,
        client_id: opts.get(CLIENT_ID).unwrap_or_default().to_vec(),
        requested_ip: opts.ip(REQUESTED_IP)?,
        server_id: opts.ip(SERVER_ID)?,
        prl: opts.get(PARAMETER_LIST).unwrap_or_default().to_vec(),
        max_size,
        hostname: opts.text(HOST_NAME),
        vendor_class: opts.text(VENDOR_CLASS),
        relay_info: opts.get(RELAY_AGENT_INFO).unwrap_or_default().to_vec(),
    })
}

/// The options area, plus the `file` and `sname` fields when option 52 says they carry options.
fn walk_all(bytes: &[u8]) -> Result<RawOptions, WalkError> {
    let mut opts = options::walk(&bytes[OPTIONS_AT..])?;
    let overload = opts.get(OVERLOAD).and_then(|v| v.first().copied());
    if matches!(overload, Some(1 | 3)) {
        options::walk_into(&bytes[FILE_AT..FILE_AT + options::FILE_LEN], &mut opts)?;
    }
    if matches!(overload, Some(2 | 3)) {
        options::walk_into(&bytes[SNAME_AT..SNAME_AT + options::SNAME_LEN], &mut opts)?;
    }
    Ok(opts)
}

/// A reply to encode: the message type and addresses, the options the server always puts first,
/// and the rest.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg_type: u8,
    pub yiaddr: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    pub head: ReplyOptions,
    pub body: ReplyOptions,
}

pub fn encode(req: &Request, reply: &Reply) -> Vec<u8> {
    let mut msg = Message::default();
    msg.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(req.xid)
        .set_ciaddr(reply.ciaddr)
        .set_yiaddr(reply.yiaddr)
        .set_giaddr(req.giaddr)
        .set_chaddr(&req.chaddr[..6]);
    // A NAK through a relay must be broadcast by the relay (RFC 2131 4.3.2).
    let broadcast = req.broadcast || (reply.msg_type == NAK && !req.giaddr.is_unspecified());
    msg.set_flags(if broadcast {
        Flags::default().set_broadcast()
    } else {
        Flags::default()
    });
    let mut out = Vec::with_capacity(req.max_size.max(MIN_REPLY));
    msg.encode(&mut Encoder::new(&mut out))
        .expect("a header with no options always encodes");
    let limit = req.max_size.saturating_sub(out.len());
    let mut head = ReplyOptions::default();
    head.set(MESSAGE_TYPE, vec![reply.msg_type]);
    for (code, value) in reply.head.iter() {
        head.set(code, value.to_vec());
    }
    // RFC 6842: a client identifier is returned unaltered in every reply. A client that keys
    // itself by it (RFC 4361, several clients behind one MAC) tells its answers apart by it.
    // The head is written whatever its size, so an identifier too long to fit with it and the
    // echoed relay information is left out rather than let the reply outgrow the client's limit.
    let used: usize = head
        .iter()
        .map(|(_, v)| options::encoded_len(v.len()))
        .sum::<usize>()
        + options::encoded_len(req.relay_info.len()) * usize::from(!req.relay_info.is_empty())
        + 1;
    if !req.client_id.is_empty() && used + options::encoded_len(req.client_id.len()) <= limit {
        head.set(CLIENT_ID, req.client_id.clone());
    }
    let overflow = reply
        .body
        .write(&head, &req.prl, &req.relay_info, limit, &mut out);
    // Options that overflowed go into the header's `file` and `sname` fields (option 52 says
    // so), which the reply leaves empty otherwise.
    out[FILE_AT..FILE_AT + overflow.file.len()].copy_from_slice(&overflow.file);
    out[SNAME_AT..SNAME_AT + overflow.sname.len()].copy_from_slice(&overflow.sname);
    if out.len() < MIN_REPLY {
        out.resize(MIN_REPLY, 0);
    }
    out
}

/// Where a reply goes (RFC 2131 4.1): to the relay on the server port; a NAK is broadcast; a
/// client that has an address (renewing, informing) gets it unicast, whatever its broadcast
/// flag says (the flag is for clients without an address: a renewal from a relayed VLAN comes
/// straight from the phone, and a broadcast answer would stay on this host's own link);
/// everything else is broadcast. Unicasting an offer to an address the client does not have
/// yet would need a raw socket to bypass ARP; RFC 2131 allows broadcasting instead.
pub fn destination(req: &Request, msg_type: u8, server_port: u16) -> SocketAddrV4 {
    let client_port = server_port.wrapping_add(1);
    if !req.giaddr.is_unspecified() {
        SocketAddrV4::new(req.giaddr, server_port)
    } else if msg_type != NAK && !req.ciaddr.is_unspecified() {
        SocketAddrV4::new(req.ciaddr, client_port)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client message with the given options (code, value) after the message type.
    pub fn request_bytes(msg_type: u8, mac: [u8; 6], opts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&mac);
        b[236..240].copy_from_slice(&MAGIC);
        options::put(&mut b, MESSAGE_TYPE, &[msg_type]);
        for (c, v) in opts {
            options::put(&mut b, *c, v);
        }
        b.push(options::END);
        b
    }

    #[test]
    fn decodes_a_discover_with_vendor_class_after_an_option_dhcproto_chokes_on() {
        let b = request_bytes(
            1,
            [0xc8, 0x1f, 0xea, 1, 2, 3],
            &[
                (150, &[10, 0, 0, 1, 10, 0, 0, 2]),
                (60, b"ccp.avaya.com"),
                (55, &[1, 3, 242]),
                (12, b"AVX010203"),
            ],
        );
        let r = decode(&b).unwrap();
        assert_eq!(r.kind, Kind::Discover);
        assert_eq!(r.vendor_class, "ccp.avaya.com");
        assert_eq!(r.prl, vec![1, 3, 242]);
        assert_eq!(r.hostname, "AVX010203");
        assert_eq!(r.mac.to_string(), "c81fea010203");
        assert_eq!(r.max_size, 548);
    }

    #[test]
    fn malformed_packets_are_told_apart() {
        let good = request_bytes(1, [1; 6], &[]);
        assert_eq!(decode(&good[..100]), Err(DecodeError::Short));
        let mut cookie = good.clone();
        cookie[236] = 0;
        assert_eq!(decode(&cookie), Err(DecodeError::Cookie));
        let mut cut = good[..240].to_vec();
        cut.extend_from_slice(&[53, 1, 1, 60, 20, b'x']);
        assert!(decode(&cut).unwrap_err().is_malformed());
        let bad_len = request_bytes(1, [1; 6], &[(50, &[1, 2, 3])]);
        assert!(decode(&bad_len).unwrap_err().is_malformed());
        let offer = request_bytes(2, [1; 6], &[]);
        assert_eq!(decode(&offer), Err(DecodeError::NotForServer(2)));
    }

    #[test]
    fn options_that_make_dhcproto_assert_are_fine() {
        // Rapid commit (80) must be empty; dhcproto debug-asserts on a length.
        let b = request_bytes(1, [1; 6], &[(80, &[1]), (60, b"yealink")]);
        assert_eq!(decode(&b).unwrap().vendor_class, "yealink");
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder, whether as a whole packet or as the options
        /// after a valid header.
        #[test]
        fn arbitrary_bytes_never_panic(
            whole in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let _ = decode(&whole);
            let mut b = request_bytes(1, [1; 6], &[]);
            b.truncate(243);
            b.extend_from_slice(&tail);
            if let Ok(req) = decode(&b) {
                let reply = Reply {
                    msg_type: OFFER,
                    yiaddr: Ipv4Addr::new(10, 0, 0, 1),
                    ciaddr: Ipv4Addr::UNSPECIFIED,
                    head: ReplyOptions::default(),
                    body: ReplyOptions::default(),
                };
                let out = encode(&req, &reply);
                proptest::prop_assert!(out.len() <= req.max_size.max(MIN_REPLY));
            }
        }
    }

    #[test]
    fn overloaded_file_field_is_read() {
        let mut b = request_bytes(1, [1; 6], &[(52, &[1])]);
        b[108..112].copy_from_slice(&[60, 2, b'h', b'i']);
        b[112] = 255;
        assert_eq!(decode(&b).unwrap().vendor_class, "hi");
    }

    #[test]
    fn reply_echoes_relay_info_last_and_pads() {
        let mut b = request_bytes(1, [1; 6], &[(82, &[1, 2, 0xAB, 0xCD]), (55, &[6])]);
        b[24..28].copy_from_slice(&[10, 78, 0, 1]);
        let req = decode(&b).unwrap();
        let mut head = ReplyOptions::default();
        head.set(SERVER_ID, vec![10, 77, 0, 1]);
        let mut body = ReplyOptions::default();
        body.set(6, vec![10, 77, 0, 1]);
        let out = encode(
            &req,
            &Reply {
                msg_type: OFFER,
                yiaddr: Ipv4Addr::new(10, 78, 0, 100),
                ciaddr: Ipv4Addr::UNSPECIFIED,
                head,
                body,
            },
        );
        assert!(out.len() >= MIN_REPLY);
        assert_eq!(out[0], 2);
        assert_eq!(&out[24..28], &[10, 78, 0, 1]);
        assert_eq!(&out[16..20], &[10, 78, 0, 100]);
        assert_eq!(&out[240..243], &[53, 1, OFFER]);
        assert_eq!(&out[243..245], &[54, 4]);
        let tail = [82, 4, 1, 2, 0xAB, 0xCD, 255];
        let end = out.iter().rposition(|b| *b == 255).unwrap();
        assert_eq!(&out[end - 6..=end], &tail);
        assert_eq!(
            destination(&req, OFFER, 67),
            SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 1), 67)
        );
    }

    #[test]
    fn destinations_follow_rfc_2131() {
        let b = request_bytes(3, [1; 6], &[]);
        let mut req = decode(&b).unwrap();
        assert_eq!(
            destination(&req, ACK, 67),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
        );
        req.ciaddr = Ipv4Addr::new(10, 77, 0, 100);
        assert_eq!(
            destination(&req, ACK, 67),
            SocketAddrV4::new(req.ciaddr, 68)
        );
        assert_eq!(
            destination(&req, NAK, 6767),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 6768)
        );
        // A renewing client that sets the broadcast flag still has an address to answer to.
        req.broadcast = true;
        assert_eq!(
            destination(&req, ACK, 67),
            SocketAddrV4::new(req.ciaddr, 68)
        );
        req.ciaddr = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            destination(&req, ACK, 67),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
        );
    }

    #[test]
    fn the_client_identifier_is_echoed_in_every_reply() {
        let id = [0xff, 0, 0, 0, 1, 0, 1, 0, 1, 0x2b, 0x3c, 0x4d];
        let req = decode(&request_bytes(3, [1; 6], &[(61, &id)])).unwrap();
        for msg_type in [OFFER, ACK, NAK] {
            let out = encode(
                &req,
                &Reply {
                    msg_type,
                    yiaddr: Ipv4Addr::UNSPECIFIED,
                    ciaddr: Ipv4Addr::UNSPECIFIED,
                    head: ReplyOptions::default(),
                    body: ReplyOptions::default(),
                },
            );
            let opts = options::walk(&out[OPTIONS_AT..]).unwrap();
            assert_eq!(
                opts.get(CLIENT_ID),
                Some(&id[..]),
                "message type {msg_type}"
            );
        }
        let plain = decode(&request_bytes(3, [1; 6], &[])).unwrap();
        let reply = Reply {
            msg_type: ACK,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            head: ReplyOptions::default(),
            body: ReplyOptions::default(),
        };
        let opts = options::walk(&encode(&plain, &reply)[OPTIONS_AT..]).unwrap();
        assert_eq!(opts.get(CLIENT_ID), None);
        // Identifier and relay information of 255 bytes each cannot both fit in 548 bytes:
        // the reply stays within the client's limit.
        let long = vec![7u8; 255];
        let big = decode(&request_bytes(3, [1; 6], &[(61, &long), (82, &long)])).unwrap();
        let out = encode(&big, &reply);
        assert!(out.len() <= big.max_size, "{} bytes", out.len());
    }
}
