//! The DHCP decode path on arbitrary bytes: it must never panic, and whatever it accepts must
//! encode into a reply that fits the size the client allows.
#![no_main]

use std::net::Ipv4Addr;

use edgeprov::dhcp::options::ReplyOptions;
use edgeprov::dhcp::packet::{OFFER, Reply, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode(data) {
        let mut body = ReplyOptions::default();
        body.set(242, vec![b'x'; 300]);
        let reply = Reply {
            msg_type: OFFER,
            yiaddr: Ipv4Addr::new(10, 0, 0, 1),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            head: ReplyOptions::default(),
            body,
        };
        let out = encode(&req, &reply);
        assert!(out.len() <= req.max_size.max(300));
    }
});
