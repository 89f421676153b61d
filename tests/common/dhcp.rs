//! A minimal DHCP client for tests, acting as a relay agent (giaddr set) so that replies come
//! back by unicast to the address it is bound to: no broadcast, no privileged port needed when
//! the server listens on a high port.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use edgeprov::dhcp::options::{self, RawOptions};

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const DECLINE: u8 = 4;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;
pub const INFORM: u8 = 8;

pub struct Relay {
    pub sock: UdpSocket,
    pub giaddr: Ipv4Addr,
    pub server: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub msg_type: u8,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub options: RawOptions,
}

pub fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xed, b[0], b[1], b[2], b[3]]
}

/// A client message as a relay forwards it.
pub fn message(
    msg_type: u8,
    xid: u32,
    chaddr: [u8; 6],
    giaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    opts: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[3] = 1;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[12..16].copy_from_slice(&ciaddr.octets());
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&chaddr);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    options::put(&mut b, 53, &[msg_type]);
    for (c, v) in opts {
        options::put(&mut b, *c, v);
    }
    b.push(255);
    b
}

pub fn parse(bytes: &[u8]) -> Option<Reply> {
    if bytes.len() < 240 || bytes[0] != 2 || bytes[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let mut options = options::walk(&bytes[240..]).ok()?;
    // Option 52 (RFC 2132 9.3): more options in `file` (1), `sname` (2) or both (3), read in
    // that order after the options field, as a client reads them.
    let overload = options.get(52).and_then(|v| v.first().copied());
    if matches!(overload, Some(1 | 3)) {
        options::walk_into(&bytes[108..236], &mut options).ok()?;
    }
    if matches!(overload, Some(2 | 3)) {
        options::walk_into(&bytes[44..108], &mut options).ok()?;
    }
    let ip = |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&bytes[28..34]);
    Some(Reply {
        msg_type: *options.get(53)?.first()?,
        xid: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
        yiaddr: ip(16),
        giaddr: ip(24),
        chaddr,
        options,
    })
}

impl Relay {
    pub fn bind(giaddr: Ipv4Addr, port: u16, server: SocketAddr) -> Relay {
        let sock = UdpSocket::bind((giaddr, port)).expect("bind the relay socket");
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        Relay {
            sock,
            giaddr,
            server,
        }
    }

    pub fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap();
    }

    /// Sends and waits for the reply with the same xid (None on timeout).
    pub fn exchange(&self, bytes: &[u8]) -> Option<Reply> {
        let xid = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
        self.send(bytes);
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            if let Some(r) = parse(&buf[..n])
                && r.xid == xid
            {
                return Some(r);
            }
        }
    }

    /// DISCOVER → OFFER → REQUEST → ACK for one client; the ACK, or the reply that ended it.
    pub fn dora(
        &self,
        chaddr: [u8; 6],
        xid: u32,
        extra: &[(u8, Vec<u8>)],
    ) -> Option<(Reply, Reply)> {
        let none = Ipv4Addr::UNSPECIFIED;
        let offer = self.exchange(&message(DISCOVER, xid, chaddr, self.giaddr, none, extra))?;
        if offer.msg_type != OFFER {
            return None;
        }
        let mut opts = extra.to_vec();
        opts.push((50, offer.yiaddr.octets().to_vec()));
        opts.push((54, offer.options.get(54)?.to_vec()));
        let ack = self.exchange(&message(REQUEST, xid, chaddr, self.giaddr, none, &opts))?;
        Some((offer, ack))
    }
}
