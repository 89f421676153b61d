//! SIP plug-and-play against the real daemon on loopback: the test plays the phone with a UDP
//! socket on 127.0.0.1, unicast to the listener and multicast to 224.0.1.75 over `lo`.
//! A ua-profile SUBSCRIBE gets a 200 OK (RFC 3261 §8.2.6) and a NOTIFY with the provisioning
//! URL; the NOTIFY is sent again until the phone answers, a bounded number of times; other SIP
//! gets no answer; garbage is counted and does not stop the service.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use serde_json::Value;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 75);

fn pnp_config(rate_limit: u32) -> String {
    format!(
        "[pnp]\nenabled = true\nlisten = \"127.0.0.1:0\"\ninterfaces = [\"lo\"]\n\
         rate_limit = {rate_limit}\n"
    )
}

fn pnp_addr(d: &Daemon) -> SocketAddr {
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.data_dir().join("listeners.json")).unwrap())
            .unwrap();
    v["pnp"].as_str().expect("pnp listener").parse().unwrap()
}

/// The value of one `/metrics` sample (`name` with its labels), 0 when absent.
fn metric(d: &Daemon, name: &str) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = rt.block_on(d.metrics());
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the sample `name` reaches `value`.
fn wait_metric(d: &Daemon, name: &str, value: u64) {
    for _ in 0..200 {
        if metric(d, name) >= value {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} never reached {value}: {}", metric(d, name));
}

struct Phone {
    socket: UdpSocket,
}

impl Phone {
    fn new() -> Phone {
        Phone::at(Ipv4Addr::LOCALHOST)
    }

    /// A phone on another loopback address (all of 127.0.0.0/8 is this host's).
    fn at(ip: Ipv4Addr) -> Phone {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Phone { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// A Yealink T46S's ua-profile SUBSCRIBE, as its PnP sends it.
    fn subscribe(&self, call_id: &str) -> String {
        let me = self.addr();
        format!(
            "SUBSCRIBE sip:001565aabbcc@224.0.1.75:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
             From: <sip:001565aabbcc@224.0.1.75:5060>;tag=phone{call_id}\r\n\
             To: <sip:001565aabbcc@224.0.1.75:5060>\r\n\
             Call-ID: {call_id}@127.0.0.1\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:{me}>\r\n\
             Accept: application/url\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Yealink SIP-T46S 66.84.0.15\r\n\
             Expires: 0\r\n\
             Event: ua-profile;profile-type=\"device\";vendor=\"Yealink\";model=\"T46S\";version=\"66.84.0.15\"\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn send(&self, to: SocketAddr, text: &[u8]) {
        self.socket.send_to(text, to).unwrap();
    }

    fn recv_within(&self, wait: Duration) -> Option<(String, SocketAddr)> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 8192];
        let got = self.socket.recv_from(&mut buf).ok();
        self.socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        got.map(|(n, from)| (String::from_utf8(buf[..n].to_vec()).unwrap(), from))
    }

    fn recv(&self) -> (String, SocketAddr) {
        self.recv_within(Duration::from_secs(5))
            .expect("an answer from the PnP service")
    }
}

/// The first value of header `name` (case-insensitive), read independently of the daemon's
/// own parser.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

fn body(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn tag(value: &str) -> &str {
    value
        .split(";tag=")
        .nth(1)
        .expect("a tag")
        .split(';')
        .next()
        .unwrap()
}

/// `subscribe` sent again inside the dialog whose To tag is `to_tag`, as request `cseq` of it
/// (a refresh, RFC 6665 §4.1.2.2): the To carries the tag, a new CSeq and a new branch.
fn in_dialog(subscribe: &str, to_tag: &str, cseq: u32) -> String {
    let to = header(subscribe, "To").unwrap();
    let via = header(subscribe, "Via").unwrap();
    subscribe
        .replace(
            &format!("To: {to}\r\n"),
            &format!("To: {to};tag={to_tag}\r\n"),
        )
        .replace("CSeq: 1 SUBSCRIBE", &format!("CSeq: {cseq} SUBSCRIBE"))
        .replace(
            via,
            &format!("{via};x={cseq}").replace(";branch=", &format!(";branch=r{cseq}")),
        )
}

/// The phone's `200 OK` to a NOTIFY, copying what RFC 3261 §8.2.6.2 says.
fn ok_to(notify: &str) -> String {
    let h = |n| header(notify, n).unwrap();
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Content-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    )
}

/// Checks the 200 to `subscribe` and the NOTIFY after it; returns the NOTIFY.
fn check_answer(d: &Daemon, phone: &Phone, subscribe: &str, server: SocketAddr) -> String {
    let (ok, from) = phone.recv();
    assert_eq!(from, server, "the answer comes from the listener");
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let via = header(&ok, "Via").unwrap();
    assert!(
        via.starts_with(header(subscribe, "Via").unwrap().trim_end_matches(";rport")),
        "{via}"
    );
    assert!(
        via.contains(&format!(";rport={}", phone.addr().port()))
            && via.contains(&format!("received={}", phone.addr().ip())),
        "{via}"
    );
    assert_eq!(header(&ok, "From"), header(subscribe, "From"));
    assert_eq!(header(&ok, "Call-ID"), header(subscribe, "Call-ID"));
    assert_eq!(header(&ok, "CSeq"), Some("1 SUBSCRIBE"));
    let to = header(&ok, "To").unwrap();
    assert!(to.starts_with(header(subscribe, "To").unwrap()), "{to}");
    let our_tag = tag(to).to_string();
    assert!(header(&ok, "Contact").is_some(), "{ok}");

    let (notify, from) = phone.recv();
    assert_eq!(from, server);
    assert!(
        notify.starts_with(&format!("NOTIFY sip:{} SIP/2.0\r\n", phone.addr())),
        "{notify}"
    );
    assert_eq!(header(&notify, "Call-ID"), header(subscribe, "Call-ID"));
    assert_eq!(header(&notify, "To"), header(subscribe, "From"));
    assert_eq!(tag(header(&notify, "From").unwrap()), our_tag);
    assert!(
        header(&notify, "CSeq").unwrap().ends_with(" NOTIFY"),
        "{notify}"
    );
    assert_eq!(header(&notify, "Event"), header(subscribe, "Event"));
    assert_eq!(header(&notify, "Content-Type"), Some("application/url"));
    assert_eq!(
        header(&notify, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    let url = format!("https://localhost:{}/", d.https.port());
    assert_eq!(body(&notify), url);
    assert_eq!(
        header(&notify, "Content-Length"),
        Some(url.len().to_string().as_str())
    );
    notify
}

#[test]
fn a_subscribe_gets_its_ok_and_a_notify_with_the_url_until_acknowledged() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = phone.subscribe("acked");
    phone.send(server, subscribe.as_bytes());
    let notify = check_answer(&d, &phone, &subscribe, server);
    phone.send(server, ok_to(&notify).as_bytes());
    wait_metric(
        &d,
        "edgeprov_pnp_notifies_total{result=\"acknowledged\"}",
        1,
    );
    assert_eq!(metric(&d, "edgeprov_pnp_subscribes_answered_total"), 1);

    // The same SUBSCRIBE again (the phone missed our 200) gets the same 200, not a new dialog.
    phone.send(server, subscribe.as_bytes());
    let (again, _) = phone.recv();
    assert!(again.starts_with("SIP/2.0 200 OK\r\n"), "{again}");
    assert_eq!(
        tag(header(&again, "To").unwrap()),
        tag(header(&notify, "From").unwrap())
    );
    // Nothing more: no retransmitted NOTIFY (due at 0.5 s and 1.5 s), no second NOTIFY.
    assert_eq!(phone.recv_within(Duration::from_secs(2)), None);
    assert_eq!(metric(&d, "edgeprov_pnp_subscribes_answered_total"), 1);
    assert_eq!(
        metric(&d, "edgeprov_pnp_notifies_total{result=\"unanswered\"}"),
        0
    );
}

#[test]
fn an_unanswered_notify_is_sent_a_bounded_number_of_times() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = phone.subscribe("silent");
    phone.send(server, subscribe.as_bytes());
    let first = check_answer(&d, &phone, &subscribe, server);
    let mut copies = 1;
    for _ in 0..30 {
        match phone.recv_within(Duration::from_secs(1)) {
            Some((again, _)) => {
                assert_eq!(again, first, "a retransmission is the same NOTIFY");
                copies += 1;
            }
            None if metric(&d, "edgeprov_pnp_notifies_total{result=\"unanswered\"}") == 1 => {
                break;
            }
            None => {}
        }
    }
    assert_eq!(
        metric(&d, "edgeprov_pnp_notifies_total{result=\"unanswered\"}"),
        1
    );
    assert_eq!(copies, 4, "sent at 0, 0.5, 1.5 and 3.5 s");
    assert_eq!(phone.recv_within(Duration::from_millis(500)), None);
}

/// A phone whose SIP stack answers from another socket than the one it subscribed from (its
/// 5060 listener, say) still ends the NOTIFY: the answer is matched by the transaction, not by
/// the source port. One from another address is not ours to take.
#[test]
fn an_answer_from_another_port_of_the_phone_ends_the_notify() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = phone.subscribe("otherport");
    phone.send(server, subscribe.as_bytes());
    let notify = check_answer(&d, &phone, &subscribe, server);

    // Both answers go out at once, well before the first retransmission (0.5 s); loopback
    // delivers them in the order sent.
    let stranger = Phone::at(Ipv4Addr::new(127, 0, 0, 2));
    stranger.send(server, ok_to(&notify).as_bytes());
    let listener = Phone::new();
    assert_ne!(listener.addr().port(), phone.addr().port());
    listener.send(server, ok_to(&notify).as_bytes());
    wait_metric(
        &d,
        "edgeprov_pnp_notifies_total{result=\"acknowledged\"}",
        1,
    );
    assert_eq!(
        metric(&d, "edgeprov_pnp_ignored_total"),
        1,
        "the stranger's"
    );
    // Nothing more: no retransmission (due at 0.5, 1.5 and 3.5 s) and none counted unanswered.
    assert_eq!(phone.recv_within(Duration::from_secs(4)), None);
    assert_eq!(
        metric(&d, "edgeprov_pnp_notifies_total{result=\"unanswered\"}"),
        0
    );
}

#[test]
fn other_sip_gets_no_answer_and_garbage_does_not_stop_the_service() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = phone.subscribe("after");
    let other = [
        subscribe
            .replace("SUBSCRIBE sip:", "INVITE sip:")
            .replace("1 SUBSCRIBE", "1 INVITE"),
        subscribe
            .replace("SUBSCRIBE sip:", "REGISTER sip:")
            .replace("1 SUBSCRIBE", "1 REGISTER"),
        subscribe
            .replace("SUBSCRIBE sip:", "OPTIONS sip:")
            .replace("1 SUBSCRIBE", "1 OPTIONS"),
        subscribe.replace("Event: ua-profile;", "Event: presence;"),
    ];
    for text in &other {
        phone.send(server, text.as_bytes());
    }
    let missing_call_id: String = subscribe
        .lines()
        .filter(|l| !l.starts_with("Call-ID"))
        .map(|l| format!("{l}\n"))
        .collect();
    let garbage: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
        vec![b'A'; 5000],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        missing_call_id.into_bytes(),
        Vec::new(),
    ];
    for g in &garbage {
        phone.send(server, g);
    }
    // Answers go out in order: the first one must be to this SUBSCRIBE, so none of the
    // messages before it was answered.
    phone.send(server, subscribe.as_bytes());
    check_answer(&d, &phone, &subscribe, server);
    assert_eq!(metric(&d, "edgeprov_pnp_ignored_total"), other.len() as u64);
    assert_eq!(
        metric(&d, "edgeprov_pnp_dropped_total{reason=\"malformed\"}"),
        garbage.len() as u64
    );
}

#[test]
fn a_multicast_subscribe_over_loopback_is_answered() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    socket2::SockRef::from(&phone.socket)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    let subscribe = phone.subscribe("multicast");
    phone.send(
        SocketAddr::from((GROUP, server.port())),
        subscribe.as_bytes(),
    );
    check_answer(&d, &phone, &subscribe, server);
}

#[test]
fn subscribes_over_the_rate_limit_are_dropped_unread() {
    let d = Daemon::start_with(&pnp_config(1));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    for n in 0..5 {
        phone.send(server, phone.subscribe(&format!("burst{n}")).as_bytes());
    }
    let limited = "edgeprov_pnp_dropped_total{reason=\"rate_limited\"}";
    for _ in 0..200 {
        let seen = metric(&d, "edgeprov_pnp_subscribes_answered_total") + metric(&d, limited);
        if seen == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&d, limited) >= 1);
    assert_eq!(
        metric(&d, "edgeprov_pnp_subscribes_answered_total") + metric(&d, limited),
        5
    );
}

/// A SUBSCRIBE inside a dialog this service does not know (a refresh sent after our restart,
/// or a To tag never ours) gets 481 Call/Transaction Does Not Exist (RFC 3261 §12.2.2), which
/// makes the phone start a new subscription, and no NOTIFY.
#[test]
fn a_subscribe_in_a_dialog_we_do_not_know_gets_481_and_no_notify() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = in_dialog(&phone.subscribe("restarted"), "gone", 2);
    phone.send(server, subscribe.as_bytes());
    let (answer, from) = phone.recv();
    assert_eq!(from, server);
    assert!(
        answer.starts_with("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"),
        "{answer}"
    );
    assert_eq!(header(&answer, "To"), header(&subscribe, "To"));
    assert_eq!(header(&answer, "From"), header(&subscribe, "From"));
    assert_eq!(header(&answer, "Call-ID"), header(&subscribe, "Call-ID"));
    assert_eq!(header(&answer, "CSeq"), Some("2 SUBSCRIBE"));
    let via = header(&answer, "Via").unwrap();
    assert!(via.contains(";branch=r2z9hG4bKrestarted"), "{via}");
    assert!(via.contains("received=127.0.0.1"), "{via}");
    assert_eq!(phone.recv_within(Duration::from_secs(1)), None, "no NOTIFY");
    assert_eq!(metric(&d, "edgeprov_pnp_subscribes_answered_total"), 0);
    assert_eq!(
        metric(
            &d,
            "edgeprov_pnp_subscribes_refused_total{reason=\"no_dialog\"}"
        ),
        1
    );

    // The new subscription the phone then starts is answered as any.
    let fresh = phone.subscribe("restarted2");
    phone.send(server, fresh.as_bytes());
    check_answer(&d, &phone, &fresh, server);
}

/// A refresh inside a dialog we know gets its 200 in that dialog and a NOTIFY that goes on
/// from the last one's CSeq (RFC 3261 §12.2.1.1: a request in a dialog takes the next local
/// CSeq), not one that starts again at 1, which the phone would refuse as out of order.
#[test]
fn a_refresh_in_a_dialog_we_know_goes_on_from_its_cseq() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let phone = Phone::new();
    let subscribe = phone.subscribe("refresh");
    phone.send(server, subscribe.as_bytes());
    let first = check_answer(&d, &phone, &subscribe, server);
    phone.send(server, ok_to(&first).as_bytes());
    let our_tag = tag(header(&first, "From").unwrap()).to_string();

    let refresh = in_dialog(&subscribe, &our_tag, 2);
    phone.send(server, refresh.as_bytes());
    let (ok, _) = phone.recv();
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(header(&ok, "To"), header(&refresh, "To"), "the tag kept");
    assert_eq!(header(&ok, "CSeq"), Some("2 SUBSCRIBE"));
    let (notify, _) = phone.recv();
    assert!(notify.starts_with("NOTIFY "), "{notify}");
    assert_eq!(header(&notify, "CSeq"), Some("2 NOTIFY"));
    assert_eq!(header(&notify, "From"), header(&first, "From"));
    assert_eq!(header(&notify, "To"), header(&first, "To"));
    assert_eq!(header(&notify, "Call-ID"), header(&first, "Call-ID"));
    assert_ne!(
        header(&notify, "Via"),
        header(&first, "Via"),
        "a new branch"
    );
    assert_eq!(body(&notify), body(&first));
    phone.send(server, ok_to(&notify).as_bytes());
    wait_metric(
        &d,
        "edgeprov_pnp_notifies_total{result=\"acknowledged\"}",
        2,
    );
    assert_eq!(metric(&d, "edgeprov_pnp_subscribes_answered_total"), 2);
}

/// One host cannot hold more than its share of the transaction table: its SUBSCRIBEs beyond
/// 16 in hand are dropped and counted, while another host's is still answered.
#[test]
fn one_source_holds_at_most_its_share_of_subscribes() {
    let d = Daemon::start_with(&pnp_config(100));
    let server = pnp_addr(&d);
    let flood = Phone::new();
    let sent = 24u64;
    for n in 0..sent {
        flood.send(server, flood.subscribe(&format!("flood{n}")).as_bytes());
    }
    let per_source = "edgeprov_pnp_dropped_total{reason=\"source_busy\"}";
    wait_metric(&d, per_source, sent - 16);
    assert_eq!(metric(&d, "edgeprov_pnp_subscribes_answered_total"), 16);
    assert_eq!(metric(&d, per_source), sent - 16);
    assert_eq!(metric(&d, "edgeprov_pnp_dropped_total{reason=\"busy\"}"), 0);

    let phone = Phone::at(Ipv4Addr::new(127, 0, 0, 3));
    let subscribe = phone.subscribe("another");
    phone.send(server, subscribe.as_bytes());
    check_answer(&d, &phone, &subscribe, server);
    assert_eq!(metric(&d, per_source), sent - 16);
}

/// A port another program holds (a PBX on this box) and an interface that does not exist fail
/// the start, naming the key.
#[test]
fn a_taken_port_or_a_missing_interface_fails_the_start_naming_the_key() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (pnp, key, detail) in [
        (
            format!("[pnp]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
            "(pnp.listen)",
            port.to_string(),
        ),
        (
            "[pnp]\nenabled = true\nlisten = \"127.0.0.1:0\"\ninterfaces = [\"nosuch0\"]\n".into(),
            "(pnp.interfaces)",
            "interface \"nosuch0\"".into(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgeprov.toml");
        std::fs::write(&path, base_config(&dir.path().join("data"), &pnp)).unwrap();
        let (ok, err) = run_serve(&path);
        assert!(!ok, "{pnp}");
        assert!(err.contains(key) && err.contains(&detail), "{err}");
    }
}
