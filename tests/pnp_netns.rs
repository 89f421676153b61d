//! SIP plug-and-play as a site runs it, in network namespaces this test creates: the daemon
//! with the default `[pnp]` (`0.0.0.0:5060`, `interfaces = []`: the group joined on every
//! multicast link) and a phone on another link multicasting its SUBSCRIBE from port 5060 and
//! answering the NOTIFY from another port.
//!
//! ```text
//!  phone ns: p0 10.77.0.2/24 ◀──▶ s0 10.77.0.1/24 server ns: edgeprov
//! ```
//!
//! No address outside these namespaces is used. Skips, saying why, without root or `ip`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::netns::{self, Lab};
use common::{BIN, base_config};

const PHONE_ENV: &str = "EDGEPROV_PNP_PHONE";

#[test]
fn a_phone_on_another_link_is_answered_over_multicast_with_the_defaults() {
    if let Some(why) = netns::unavailable() {
        println!(
            "SKIP a_phone_on_another_link_is_answered_over_multicast_with_the_defaults: {why}"
        );
        return;
    }
    let mut lab = Lab {
        prefix: format!("epp{}", std::process::id()),
        roles: &["s", "p"],
        children: Vec::new(),
    };
    let (s, p) = (lab.ns("s"), lab.ns("p"));
    for ns in [&s, &p] {
        lab.ip(&["netns", "add", ns]);
        lab.ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    lab.ip(&[
        "-n", &s, "link", "add", "s0", "type", "veth", "peer", "name", "p0", "netns", &p,
    ]);
    lab.ip(&["-n", &s, "addr", "add", "10.77.0.1/24", "dev", "s0"]);
    lab.ip(&["-n", &p, "addr", "add", "10.77.0.2/24", "dev", "p0"]);
    lab.ip(&["-n", &s, "link", "set", "s0", "up"]);
    lab.ip(&["-n", &p, "link", "set", "p0", "up"]);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("edgeprov.toml");
    let extra = "[pki]\nserver_names = [\"10.77.0.1\"]\n[pnp]\nenabled = true\n";
    std::fs::write(&config, base_config(&data, extra)).unwrap();
    let log_path = dir.path().join("daemon.log");
    let daemon = lab
        .exec("s", &[BIN, "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "edgeprov=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    lab.children.push(daemon);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("listeners.json").exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let listeners: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("listeners.json")).unwrap()).unwrap();
    assert_eq!(listeners["pnp"], "0.0.0.0:5060");
    let https: SocketAddr = listeners["phone_https"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let phone = lab
        .exec("p", &[std::env::current_exe().unwrap().to_str().unwrap()])
        .args(["--exact", "phone", "--nocapture", "--test-threads=1"])
        .env(PHONE_ENV, "10.77.0.2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&phone.stdout);
    let expected = format!("PHONE-OK https://10.77.0.1:{}/", https.port());
    assert!(
        phone.status.success() && text.contains(&expected),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&phone.stderr),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    // The phone's answer, from another port than its SUBSCRIBE's, ended the NOTIFY.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("PnP: NOTIFY acknowledged") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the answer was not taken:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// Not a test on its own: the phone the test above runs inside the phone namespace. It does
/// nothing unless that test started it.
#[test]
fn phone() {
    let Ok(me) = std::env::var(PHONE_ENV) else {
        return;
    };
    let me: Ipv4Addr = me.parse().unwrap();
    let socket = UdpSocket::bind((me, 5060)).unwrap();
    socket2::SockRef::from(&socket)
        .set_multicast_if_v4(&me)
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let subscribe = format!(
        "SUBSCRIBE sip:MAC%3a000413aabbcc@224.0.1.75 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me}:5060;rport\r\n\
         From: <sip:MAC%3a000413aabbcc@224.0.1.75>;tag=658512961\r\n\
         To: <sip:MAC%3a000413aabbcc@224.0.1.75>\r\n\
         Call-ID: 1930770594@{me}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Event: ua-profile;profile-type=\"device\";vendor=\"Yealink\";model=\"T54W\";version=\"96.86.0.70\"\r\n\
         Expires: 0\r\n\
         Accept: application/url\r\n\
         Contact: <sip:{me}:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    // Boot-time multicast may leave before the link is ready: a phone repeats it, so do we.
    let server = SocketAddr::from((Ipv4Addr::new(10, 77, 0, 1), 5060));
    let mut buf = [0u8; 4096];
    let mut ok = None;
    for _ in 0..5 {
        socket
            .send_to(subscribe.as_bytes(), (Ipv4Addr::new(224, 0, 1, 75), 5060))
            .unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            ok = Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
            break;
        }
    }
    let (ok, from) = ok.expect("a 200 OK to the multicast SUBSCRIBE");
    assert_eq!(from, server);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(header(&ok, "Contact"), "<sip:10.77.0.1:5060>");
    let (n, from) = socket.recv_from(&mut buf).expect("a NOTIFY");
    assert_eq!(from, server);
    let notify = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        notify.starts_with(&format!("NOTIFY sip:{me}:5060 SIP/2.0\r\n")),
        "{notify}"
    );
    let answer = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Content-Length: 0\r\n\r\n",
        header(&notify, "Via"),
        header(&notify, "From"),
        header(&notify, "To"),
        header(&notify, "Call-ID"),
        header(&notify, "CSeq"),
    );
    // Answered from another socket than the one that subscribed, as a phone whose SIP stack
    // answers from its listener does: the daemon matches the answer by its transaction.
    let listener = UdpSocket::bind((me, 0)).unwrap();
    listener.send_to(answer.as_bytes(), server).unwrap();
    let body = notify.split_once("\r\n\r\n").unwrap().1;
    println!("PHONE-OK {body}");
}
