//! SIP plug-and-play on arbitrary datagrams (anyone on the network may multicast to port
//! 5060): reading one must not panic, and the answers built from a SUBSCRIBE it accepts (the
//! 200 OK, a refusal, the NOTIFY) must read back as SIP with the request's Call-ID, so nothing
//! a phone sends can break the framing of what the box sends.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use edgeprov::pnp::message::{MAX_HEADERS, MAX_MESSAGE, Message, StartLine};
use edgeprov::pnp::profile::{
    Incoming, Local, Refusal, body_for, classify, notify, ok_response, refusal,
};
use libfuzzer_sys::fuzz_target;

/// An answer copies the request's headers, so one built from a datagram near the reader's
/// bounds may pass them: longer than a datagram it reads, or with more header lines (each Via
/// value of the request is a Via line of its own in the answer). Those are not read back.
fn reads_back(bytes: &[u8], call_id: &str) {
    let lines = bytes
        .split(|&b| b == b'\n')
        .take_while(|l| *l != b"\r")
        .count();
    if bytes.len() > MAX_MESSAGE || lines > MAX_HEADERS + 1 {
        return;
    }
    let message = Message::parse(bytes)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)));
    assert_eq!(message.header("call-id"), Some(call_id));
}

fuzz_target!(|data: &[u8]| {
    let Ok(Incoming::Subscribe(sub)) = classify(data) else {
        return;
    };
    let source = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 5060));
    let local = Local(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 5060)));
    let ok = ok_response(&sub, source, local, "t1");
    reads_back(&ok, &sub.call_id);
    for why in [Refusal::NoDialog, Refusal::OutOfOrder] {
        reads_back(&refusal(&sub, source, why), &sub.call_id);
    }
    let url = body_for(&sub.device, "https://192.0.2.1/");
    let request = notify(&sub, local, "t1", "z9hG4bK1", 1, &url);
    reads_back(&request, &sub.call_id);
    let Ok(parsed) = Message::parse(&request) else {
        return;
    };
    assert!(matches!(
        parsed.start,
        StartLine::Request {
            method: "NOTIFY",
            ..
        }
    ));
    assert_eq!(parsed.body, url.as_bytes());
});
