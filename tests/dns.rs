//! The DNS responder end to end: the real daemon on loopback, asked with hickory's client, with
//! `dig`, and with raw datagrams; a small upstream server started here stands in for the site's
//! resolver.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde_json::json;

/// The test zone; `dns_keys` go into the `[dns]` table.
fn zone(dns_keys: &str) -> String {
    format!(
        r#"
[pki]
server_names = ["localhost", "prov.example.lan", "127.0.0.1"]
[dns]
listen = ["127.0.0.1:0"]
domain = "prov.example.lan"
{dns_keys}
[[dns.record]]
name = "sip.prov.example.lan"
type = "A"
value = "10.0.0.10"
"#
    )
}

/// Forty A records on one name: about 700 bytes, more than a plain UDP reply may carry.
fn big_rrset() -> String {
    (1..=40)
        .map(|i| {
            format!(
                "[[dns.record]]\nname = \"big.prov.example.lan\"\ntype = \"A\"\nvalue = \"10.9.0.{i}\"\n"
            )
        })
        .collect()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

async fn udp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(3)))
        .build();
    let (client, bg) = Client::from_sender(stream);
    tokio::spawn(bg);
    client
}

async fn tcp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (stream, sender) = TcpClientStream::new(
        server,
        None,
        Some(Duration::from_secs(3)),
        TokioRuntimeProvider::default(),
    );
    let (client, bg) = Client::new(stream.await.unwrap(), sender);
    tokio::spawn(bg);
    client
}

async fn ask(client: &mut Client<TokioRuntimeProvider>, n: &str, t: RecordType) -> Message {
    client
        .query(name(n), DNSClass::IN, t)
        .await
        .expect("DNS answer")
        .into_message()
}

#[tokio::test]
async fn authoritative_answers_over_udp_with_hickory_client() {
    let d = Daemon::start_with(&zone(""));
    let mut c = udp_client(d.dns.unwrap()).await;

    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 0, 0, 10)));

    // Case-insensitive; the question is echoed as asked.
    let m = ask(&mut c, "SIP.Prov.Example.LAN.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "SIP.Prov.Example.LAN.");

    // Discovery: SRV at the real HTTPS port, with the target's address as an extra.
    let m = ask(
        &mut c,
        "_avaya-ep-config._tcp.prov.example.lan.",
        RecordType::SRV,
    )
    .await;
    let RData::SRV(srv) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(srv.port, d.https.port());
    assert_eq!(srv.target, name("prov.example.lan."));
    assert!(
        m.additionals
            .iter()
            .any(|r| r.record_type() == RecordType::A)
    );
    let m = ask(&mut c, "_http._tcp.prov.example.lan.", RecordType::SRV).await;
    let RData::SRV(srv) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(srv.port, d.http.unwrap().port());

    let m = ask(
        &mut c,
        "_avaya-ep-config._tcp.prov.example.lan.",
        RecordType::TXT,
    )
    .await;
    assert_eq!(
        m.answers[0].data.to_string(),
        format!("https://prov.example.lan:{}/", d.https.port())
    );

    // Apex records; NODATA and NXDOMAIN carry the SOA.
    let m = ask(&mut c, "prov.example.lan.", RecordType::SOA).await;
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    let m = ask(&mut c, "prov.example.lan.", RecordType::NS).await;
    assert_eq!(m.answers[0].record_type(), RecordType::NS);
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let m = ask(&mut c, "nothing.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);

    // No upstream configured: other names are refused.
    let m = ask(&mut c, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn large_answer_truncates_over_udp_and_is_whole_over_tcp() {
    let d = Daemon::start_with(&format!("{}{}", zone(""), big_rrset()));
    let server = d.dns.unwrap();
    // Plain UDP without EDNS: 512 bytes at most, so TC is set.
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("big.prov.example.lan."),
        RecordType::A,
    ));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n <= 512);
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert!(m.metadata.truncation);

    let mut c = tcp_client(server).await;
    let m = ask(&mut c, "big.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 40);
    assert!(!m.metadata.truncation);
}

fn dig_available() -> bool {
    let found = Command::new("dig").arg("-v").output().is_ok();
    if !found {
        eprintln!("dig not installed (apt-get install bind9-dnsutils): skipping the dig checks");
    }
    found
}

fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=3", "+tries=1"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn dig_sees_a_correct_server() {
    if !dig_available() {
        return;
    }
    let d = Daemon::start_with(&format!("{}{}", zone(""), big_rrset()));
    let s = d.dns.unwrap();
    let out = dig(s, &["sip.prov.example.lan", "A"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("10.0.0.10"),
        "{out}"
    );
    assert!(out.contains(" aa"), "AA flag: {out}");
    assert!(out.contains("EDNS: version: 0"), "EDNS answered: {out}");
    let out = dig(s, &["+short", "prov.example.lan", "AAAA"]);
    assert!(out.trim().is_empty(), "{out}");
    let out = dig(s, &["_https._tcp.prov.example.lan", "SRV"]);
    assert!(
        out.contains(&format!("0 0 {} prov.example.lan.", d.https.port())),
        "{out}"
    );
    assert!(
        out.contains("ADDITIONAL: 2"),
        "OPT plus the target's A: {out}"
    );
    let out = dig(
        s,
        &["+short", "_avaya-ep-config._tcp.prov.example.lan", "TXT"],
    );
    assert!(out.contains("https://prov.example.lan:"), "{out}");
    let out = dig(s, &["no.prov.example.lan", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    // Without EDNS the 40-record answer does not fit: dig sees TC and retries over TCP.
    let out = dig(s, &["+noedns", "big.prov.example.lan", "A"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 40"), "{out}");
}

/// A tiny upstream resolver on loopback: answers every A question with 192.0.2.1 (TTL 300),
/// and counts the questions it got.
async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut reply = Message::response(req.metadata.id, req.metadata.op_code);
            reply.metadata.recursion_available = true;
            reply.queries = req.queries.clone();
            let q = &req.queries[0];
            if q.name().to_ascii().starts_with("missing") {
                reply.metadata.response_code = ResponseCode::NXDomain;
            } else {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A::new(192, 0, 2, 1)),
                ));
            }
            let _ = sock.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    (addr, count)
}

#[tokio::test]
async fn forwards_with_cache_and_fails_fast_when_upstream_is_down() {
    let (upstream, count) = fake_upstream().await;
    let d = Daemon::start_with(&zone(&format!("upstream = [\"{upstream}\"]")));
    let mut c = udp_client(d.dns.unwrap()).await;

    let m = ask(&mut c, "www.example.com.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
    assert!(!m.metadata.authoritative);
    assert!(m.metadata.recursion_available);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let m = ask(&mut c, "WWW.example.com.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    assert!(m.answers[0].ttl <= 300);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "second answer came from the cache"
    );

    // Own zone is never forwarded.
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // Upstream NXDOMAIN without an SOA is passed on but not cached (RFC 2308).
    let m = ask(&mut c, "missing.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let text = d.metrics().await;
    assert_eq!(metric(&text, "edgeprov_dns_forwarded_total"), 3, "{text}");
    assert_eq!(metric(&text, "edgeprov_dns_cache_hits_total"), 1);
    assert_eq!(metric(&text, "edgeprov_dns_upstream_failures_total"), 0);
    assert!(metric(&text, "edgeprov_dns_local_total") >= 1);

    // Upstream down: a closed port on loopback.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let d2 = Daemon::start_with(&zone(&format!("upstream = [\"{dead_addr}\"]")));
    let mut c2 = udp_client(d2.dns.unwrap()).await;
    let started = Instant::now();
    let m = ask(&mut c2, "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let m = ask(&mut c2, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1, "own zone still served");
    let text = d2.metrics().await;
    assert_eq!(
        metric(&text, "edgeprov_dns_upstream_failures_total"),
        1,
        "{text}"
    );
}

/// One question over UDP with the RD bit as given; the reply.
async fn ask_rd(server: SocketAddr, n: &str, t: RecordType, rd: bool) -> Message {
    let mut q = Message::query();
    q.metadata.recursion_desired = rd;
    q.add_query(hickory_proto::op::Query::query(name(n), t));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let m = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

/// A zone name that is an alias for a name elsewhere (a cloud provisioning host): a phone's
/// stub resolver asks for its address with RD set and follows no CNAME itself. The box gave
/// the CNAME alone, so the phone found no address; it now asks upstream for the target and
/// answers with the whole chain, as a recursive server does. Without RD (a resolver asking)
/// the CNAME alone is still the authoritative answer.
#[tokio::test]
async fn a_cname_to_a_name_elsewhere_is_followed_for_a_stub_resolver() {
    let (upstream, count) = fake_upstream().await;
    let d = Daemon::start_with(&zone(&format!(
        r#"upstream = ["{upstream}"]
[[dns.record]]
name = "cloud.prov.example.lan"
type = "CNAME"
value = "prov.cloud.example.com."
[[dns.record]]
name = "gone.prov.example.lan"
type = "CNAME"
value = "missing.cloud.example.com."
"#
    )));
    let server = d.dns.unwrap();
    let target = name("prov.cloud.example.com.");
    for rd_client in [udp_client(server).await, tcp_client(server).await] {
        let mut c = rd_client;
        let m = ask(&mut c, "Cloud.prov.example.lan.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries[0].name().to_ascii(), "Cloud.prov.example.lan.");
        let answers: Vec<(Name, RData)> = m
            .answers
            .iter()
            .map(|r| (r.name.clone(), r.data.clone()))
            .collect();
        assert_eq!(
            answers,
            vec![
                (
                    name("cloud.prov.example.lan."),
                    RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone()))
                ),
                (target.clone(), RData::A(A::new(192, 0, 2, 1))),
            ],
            "{m:?}"
        );
        assert!(
            !m.metadata.authoritative,
            "the target's address is not ours"
        );
        assert!(m.metadata.recursion_available);
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the target came from the cache the second time"
    );

    let m = ask_rd(server, "cloud.prov.example.lan.", RecordType::A, false).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);

    // The target's own answer code: NXDOMAIN with the chain (RFC 6604).
    let m = ask_rd(server, "gone.prov.example.lan.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
}

/// ANY over UDP, where the source is not proven, is what a reflection attack sends: every RRset
/// at the name in one answer. The box answered with all of them (SOA, NS and the address at the
/// apex, and the address again as an additional record). Now UDP gets the first RRset only
/// (RFC 8482, BIND's minimal-any), and TCP the whole set.
#[tokio::test]
async fn any_over_udp_is_one_rrset_and_whole_over_tcp() {
    let d = Daemon::start_with(&zone(""));
    let server = d.dns.unwrap();
    let types = |m: &Message| {
        let mut t: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        t.dedup();
        t
    };
    let udp = ask_rd(server, "Prov.Example.Lan.", RecordType::ANY, false).await;
    assert_eq!(udp.metadata.response_code, ResponseCode::NoError);
    assert!(udp.metadata.authoritative);
    assert_eq!(types(&udp), vec![RecordType::SOA], "{udp:?}");
    assert!(udp.additionals.is_empty(), "{udp:?}");
    assert_eq!(udp.queries[0].name().to_ascii(), "Prov.Example.Lan.");

    let mut tcp = tcp_client(server).await;
    let whole = ask(&mut tcp, "prov.example.lan.", RecordType::ANY).await;
    for t in [RecordType::SOA, RecordType::NS, RecordType::A] {
        assert!(
            types(&whole).contains(&t),
            "{t} missing over TCP: {whole:?}"
        );
    }
    // The apex's address answers the NS target too: once, in the answer section.
    assert!(
        whole.additionals.iter().all(|r| !whole.answers.contains(r)),
        "an answer repeated as an additional record: {whole:?}"
    );
    // A question for one type is answered as before over UDP.
    let mut c = udp_client(server).await;
    let ns = ask(&mut c, "prov.example.lan.", RecordType::NS).await;
    assert_eq!(types(&ns), vec![RecordType::NS]);
    assert!(!ns.additionals.is_empty(), "the NS target's address");
}

/// An upstream that swallows every question (a resolver behind a dead route): each forwarded
/// question waits `forward_timeout_ms`. Phones keep asking for names elsewhere meanwhile, and a
/// UDP socket takes at most 1,024 such questions in flight; the zone's own answers that are not
/// pre-encoded (no such type for a name, no such name) went the same way and were dropped with
/// them, so a phone asking for the box's AAAA got nothing. They are answered at once.
#[tokio::test]
async fn own_answers_are_not_held_behind_questions_for_a_silent_upstream() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = silent.local_addr().unwrap();
    let d = Daemon::start_with(&zone(&format!(
        "upstream = [\"{upstream}\"]\nforward_timeout_ms = 20000\nrate_limit = 0"
    )));
    let server = d.dns.unwrap();
    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..1500u32 {
        let mut q = Message::query();
        q.add_query(hickory_proto::op::Query::query(
            name(&format!("host{i}.example.com.")),
            RecordType::A,
        ));
        flood.send_to(&q.to_vec().unwrap(), server).unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = udp_client(server).await;
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.answers.is_empty(), "{m:?}");
    let m = ask(&mut c, "nothing.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    drop(silent);
}

/// With the first of two upstreams silent, only the first forwarded name waits its timeout:
/// the silent one is then asked after the other, instead of every uncached name waiting for it.
#[tokio::test]
async fn a_silent_first_upstream_holds_up_one_name_not_every_name() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap();
    let (alive, count) = fake_upstream().await;
    let d = Daemon::start_with(&zone(&format!(
        "upstream = [\"{dead}\", \"{alive}\"]\nforward_timeout_ms = 2000"
    )));
    let mut c = udp_client(d.dns.unwrap()).await;
    let started = Instant::now();
    let m = ask(&mut c, "one.example.com.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for n in ["two", "three"] {
        let started = Instant::now();
        let m = ask(&mut c, &format!("{n}.example.com."), RecordType::A).await;
        assert_eq!(m.answers.len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{n}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
    drop(silent);
}

#[tokio::test]
async fn api_record_is_answered_at_once_and_survives_restart() {
    let d = Daemon::start_with(&zone(""));
    let (status, v) = d
        .api(
            "POST",
            "/dns/records",
            Some(json!({"name": "pbx.prov.example.lan", "type": "A", "value": "10.0.0.20"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let mut c = udp_client(d.dns.unwrap()).await;
    let m = ask(&mut c, "pbx.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 0, 0, 20)));

    // Bad input names the field and changes nothing.
    let (status, v) = d
        .api(
            "POST",
            "/dns/records",
            Some(json!({"name": "pbx.other.lan", "type": "A", "value": "10.0.0.21"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("name:"), "{v}");
    let (status, v) = d
        .api(
            "POST",
            "/dns/records",
            Some(json!({"name": "x.prov.example.lan", "type": "A", "value": "nope"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("value:"), "{v}");

    let d = d.restart();
    let mut c = udp_client(d.dns.unwrap()).await;
    let m = ask(&mut c, "pbx.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1, "record survives restart");
    let (status, v) = d.api("GET", "/dns/records", None).await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);

    let (status, _) = d.api("DELETE", &format!("/dns/records/{id}"), None).await;
    assert_eq!(status, 204);
    let m = ask(&mut c, "pbx.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (status, _) = d.api("DELETE", &format!("/dns/records/{id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn garbage_and_truncated_packets_do_not_stop_the_service() {
    use tokio::io::AsyncWriteExt;
    let d = Daemon::start_with(&zone(""));
    let server = d.dns.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("sip.prov.example.lan."),
        RecordType::A,
    ));
    let good = q.to_vec().unwrap();
    // Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let len = (next() % 700) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 {
            junk = good[..(i % good.len())].to_vec();
        }
        sock.send_to(&junk, server).await.unwrap();
    }
    sock.send_to(&vec![0u8; 9000], server).await.unwrap();
    // Fewer junk connections than `dns.tcp_connections_per_client` (16): the server may not
    // have seen every close yet when the real client connects, and over the cap it would be
    // refused by design, which is not what this test is about.
    for i in 0..12 {
        let mut tcp = tokio::net::TcpStream::connect(server).await.unwrap();
        let len = (next() % 300) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            junk = [&[0u8, 200][..], &good[..10]].concat();
        }
        let _ = tcp.write_all(&junk).await;
        drop(tcp);
    }
    let mut c = udp_client(server).await;
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    let mut t = tcp_client(server).await;
    let m = ask(&mut t, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn rate_limit_caps_answers_per_client() {
    let d = Daemon::start_with(&zone("rate_limit = 20"));
    let server = d.dns.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("sip.prov.example.lan."),
        RecordType::A,
    ));
    let bytes = q.to_vec().unwrap();
    for _ in 0..200 {
        sock.send_to(&bytes, server).await.unwrap();
    }
    let (mut full, mut slipped) = (0, 0);
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            slipped += 1;
        } else {
            full += 1;
        }
    }
    assert!(full <= 40, "{full} full answers for 200 queries at 20/s");
    assert!(slipped > 0 && slipped < 200, "{slipped}");
}

#[tokio::test]
async fn refuses_clients_outside_allow_from() {
    let d = Daemon::start_with(&zone("allow_from = [\"10.0.0.0/8\"]"));
    let mut c = udp_client(d.dns.unwrap()).await;
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn dns_check_cli_reports_what_is_served() {
    let d = Daemon::start_with(&zone(""));
    let out = d.cli(&["dns", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("_avaya-ep-config._tcp.prov.example.lan."),
        "{text}"
    );
    assert!(text.contains("https://prov.example.lan:"), "{text}");

    // A config that disagrees with the running responder is reported.
    let cfg = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        cfg.replace("[dns]\n", "[dns]\nsettings_url = \"https://elsewhere/\"\n"),
    )
    .unwrap();
    let out = d.cli(&["dns", "check"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("elsewhere"), "{text}");
}

/// A TCP connection to `server` from `source`: every 127/8 address is this machine's, so one
/// test can be several clients.
async fn connect_from(source: &str, server: SocketAddr) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(server).await.unwrap()
}

/// Whether the server closed `conn` within `within` (end of stream or a reset).
async fn closed(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, conn.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// One length-prefixed query over an open connection, and its answer.
async fn ask_over(conn: &mut tokio::net::TcpStream, n: &str) -> Message {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(name(n), RecordType::A));
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    conn.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut reply).await.unwrap();
    Message::from_vec(&reply).unwrap()
}

#[tokio::test]
async fn tcp_connections_are_capped_per_client_and_in_total() {
    let d = Daemon::start_with(&zone(
        "allow_from = [\"127.0.0.0/29\"]\ntcp_max_connections = 6\n\
         tcp_connections_per_client = 4\ntcp_timeout_ms = 20000",
    ));
    let server = d.dns.unwrap();
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(connect_from("127.0.0.1", server).await);
    }
    let mut fifth = connect_from("127.0.0.1", server).await;
    assert!(
        closed(&mut fifth, Duration::from_secs(2)).await,
        "over the per-client cap"
    );
    let _second = [
        connect_from("127.0.0.2", server).await,
        connect_from("127.0.0.2", server).await,
    ];
    let mut seventh = connect_from("127.0.0.3", server).await;
    assert!(
        closed(&mut seventh, Duration::from_secs(2)).await,
        "over the total cap"
    );
    for conn in &mut first {
        assert!(!closed(conn, Duration::from_millis(100)).await, "admitted");
    }
    let m = ask_over(&mut first[0], "sip.prov.example.lan.").await;
    assert_eq!(m.answers.len(), 1, "an admitted connection is served");

    // A source outside allow_from is closed at once, not after the idle timeout.
    let started = Instant::now();
    let mut stranger = connect_from("127.0.0.9", server).await;
    assert!(closed(&mut stranger, Duration::from_secs(2)).await);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A closed connection frees its place.
    drop(first.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from("127.0.0.3", server).await;
    assert_eq!(
        ask_over(&mut again, "sip.prov.example.lan.")
            .await
            .answers
            .len(),
        1
    );
    let metrics = d.metrics().await;
    assert_eq!(metric(&metrics, "edgeprov_dns_tcp_refused_total"), 3);
    assert!(
        metrics.contains("# HELP edgeprov_dns_tcp_refused_total DNS TCP connections closed"),
        "{metrics}"
    );
}

/// Bounding connections does not bound queries: one client's queries over TCP, over all its
/// connections, are held to `rate_limit` per second by making their answers wait, and another
/// client is not slowed by it.
#[tokio::test]
async fn tcp_queries_are_paced_per_client() {
    let d = Daemon::start_with(&zone("allow_from = [\"127.0.0.0/29\"]\nrate_limit = 10"));
    let server = d.dns.unwrap();
    let mut conns = [
        connect_from("127.0.0.1", server).await,
        connect_from("127.0.0.1", server).await,
    ];
    // 30 queries: the first 10 at once (one second's burst), the other 20 at 10 a second.
    let started = Instant::now();
    for i in 0..30 {
        let m = ask_over(&mut conns[i % 2], "sip.prov.example.lan.").await;
        assert_eq!(m.answers.len(), 1, "query {i} answered in full");
    }
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(1_700)..Duration::from_secs(10)).contains(&took),
        "30 queries at 10/s with a burst of 10 took {took:?}"
    );
    let other = Instant::now();
    let mut third = connect_from("127.0.0.2", server).await;
    for _ in 0..5 {
        ask_over(&mut third, "sip.prov.example.lan.").await;
    }
    assert!(
        other.elapsed() < Duration::from_millis(500),
        "another client"
    );
    let metrics = d.metrics().await;
    assert!(
        metric(&metrics, "edgeprov_dns_rate_limited_total") >= 19,
        "{metrics}"
    );
}

/// `n` queries for one name from a UDP socket on `source`, all sent at once; answers how many
/// came back whole and how many truncated (the rate limiter's slip), as soon as every query is
/// answered or none more came for half a second.
async fn udp_burst(source: &str, server: SocketAddr, n: usize) -> (usize, usize) {
    let sock = tokio::net::UdpSocket::bind(format!("{source}:0"))
        .await
        .unwrap();
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("sip.prov.example.lan."),
        RecordType::A,
    ));
    let bytes = q.to_vec().unwrap();
    for _ in 0..n {
        sock.send_to(&bytes, server).await.unwrap();
    }
    let (mut full, mut slipped) = (0, 0);
    let mut buf = vec![0u8; 2048];
    while full + slipped < n
        && let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        match Message::from_vec(&buf[..len]).unwrap().metadata.truncation {
            true => slipped += 1,
            false => full += 1,
        }
    }
    (full, slipped)
}

/// `dns.rate_limit` is one budget per client over UDP and TCP together: a client that spent it
/// over UDP finds its TCP answers paced, and one that spent it over TCP finds its UDP answers
/// truncated or dropped, instead of getting the limit again over the other transport.
#[tokio::test]
async fn udp_and_tcp_share_one_rate_budget_per_client() {
    let d = Daemon::start_with(&zone("allow_from = [\"127.0.0.0/29\"]\nrate_limit = 10"));
    let server = d.dns.unwrap();

    // UDP first: ten answers spend the second's budget, so ten queries over TCP then take
    // most of a second (a tenth each), where a budget of their own would answer them at once.
    assert_eq!(udp_burst("127.0.0.1", server, 10).await, (10, 0));
    let mut conn = connect_from("127.0.0.1", server).await;
    let started = Instant::now();
    for i in 0..10 {
        let m = ask_over(&mut conn, "sip.prov.example.lan.").await;
        assert_eq!(m.answers.len(), 1, "TCP query {i} answered in full");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600),
        "ten TCP queries after the UDP budget was spent took only {took:?}"
    );

    // TCP first: ten answers at once spend the budget, so a UDP burst right after is held
    // back (a whole answer only for what refilled meanwhile).
    let mut conn = connect_from("127.0.0.2", server).await;
    let started = Instant::now();
    for _ in 0..10 {
        ask_over(&mut conn, "sip.prov.example.lan.").await;
    }
    let spent = started.elapsed();
    assert!(
        spent < Duration::from_millis(800),
        "the burst took {spent:?}"
    );
    // What refilled since the burst began: a tenth of a second per answer (and one begun).
    let refilled = (spent.as_secs_f64() * 10.0).ceil() as usize + 1;
    let (full, slipped) = udp_burst("127.0.0.2", server, 10).await;
    assert!(
        full <= refilled && slipped > 0,
        "{full} whole and {slipped} truncated UDP answers after the TCP budget was spent \
         ({refilled} refilled)"
    );
}

#[tokio::test]
async fn idle_tcp_connections_from_strangers_do_not_starve_the_phone_listener() {
    let d = Daemon::start_with(&zone("allow_from = [\"10.0.0.0/8\"]"));
    let pid = d.child.as_ref().unwrap().id().to_string();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:256"])
        .status()
        .expect("prlimit runs");
    assert!(limited.success());
    let server = d.dns.unwrap();
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(connect_from("127.0.0.1", server).await);
    }
    let mut c = udp_client(server).await;
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let phone = tokio::time::timeout(
        Duration::from_secs(5),
        send_plain(d.http.unwrap(), get("/46xxsettings.txt", J179_UA)),
    )
    .await
    .expect("the phone listener answers")
    .expect("the phone listener answers");
    assert_eq!(phone.status, 200, "{}", phone.text());
    for i in [0, held.len() - 1] {
        assert!(
            closed(&mut held[i], Duration::from_secs(2)).await,
            "a stranger is closed"
        );
    }
}

/// A boot storm from one voice VLAN: 250 phones in one /24, inside `allow_from`, each asking
/// twice at once, all answered at the default rate limit.
#[tokio::test]
async fn a_boot_storm_from_one_subnet_is_not_one_client() {
    let d = Daemon::start_with(&zone(""));
    let server = d.dns.unwrap();
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("sip.prov.example.lan."),
        RecordType::A,
    ));
    let bytes = q.to_vec().unwrap();
    let mut phones = Vec::new();
    for host in 1..=250 {
        let sock = tokio::net::UdpSocket::bind(format!("127.0.0.{host}:0"))
            .await
            .unwrap();
        phones.push(sock);
    }
    // Within a quarter of a second, in batches that fit the server's socket buffer.
    for batch in phones.chunks(25) {
        for sock in batch {
            sock.send_to(&bytes, server).await.unwrap();
            sock.send_to(&bytes, server).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut full, mut other) = (0, 0);
    let mut buf = vec![0u8; 2048];
    for sock in &phones {
        for _ in 0..2 {
            let wait = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf));
            let Ok(Ok((n, _))) = wait.await else { break };
            let m = Message::from_vec(&buf[..n]).unwrap();
            match m.metadata.truncation || m.answers.is_empty() {
                true => other += 1,
                false => full += 1,
            }
        }
    }
    assert_eq!((full, other), (500, 0));
}

/// RFC 1034 §3.6.2: a CNAME is refused where other data is (configured, generated or stored),
/// other data where a CNAME is; the error names `name` and nothing is stored.
#[tokio::test]
async fn a_cname_is_refused_beside_other_data() {
    let d = Daemon::start_with(&zone(""));
    let post = |name: &str, rtype: &str, value: &str| {
        let body = json!({"name": name, "type": rtype, "value": value});
        d.api("POST", "/dns/records", Some(body))
    };
    for owner in ["sip.prov.example.lan", "_https._tcp.prov.example.lan"] {
        let (status, v) = post(owner, "CNAME", "other.example.com").await;
        assert_eq!(status, 409, "{owner}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("name:"), "{v}");
    }
    let (status, v) = post("alias.prov.example.lan", "CNAME", "other.example.com").await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = post("alias.prov.example.lan", "A", "10.0.0.30").await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("name:"), "{v}");
    let (_, v) = d.api("GET", "/dns/records", None).await;
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "only the alias is stored: {v}"
    );

    let mut c = udp_client(d.dns.unwrap()).await;
    let m = ask(&mut c, "sip.prov.example.lan.", RecordType::AAAA).await;
    assert!(m.answers.is_empty(), "sip is no alias: {m:?}");
    let m = ask(&mut c, "alias.prov.example.lan.", RecordType::A).await;
    assert!(
        m.answers
            .iter()
            .all(|r| r.record_type() == RecordType::CNAME),
        "{m:?}"
    );
}

/// Adding and deleting a record through the API were entered with the path alone (`created`,
/// `DELETE /dns/records/1`, no changes): the log did not say which record was added or gone.
#[tokio::test]
async fn api_record_changes_are_audited_with_the_record() {
    let d = Daemon::start_with(&zone(""));
    let (status, v) = d
        .api(
            "POST",
            "/dns/records",
            Some(json!({"name": "pbx.prov.example.lan", "type": "A", "value": "10.0.0.20"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let (status, _) = d.api("DELETE", &format!("/dns/records/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, entries) = d
        .api("GET", "/audit?resource=/api/v1/dns/records", None)
        .await;
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let summaries: Vec<&str> = entries
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            format!("DNS record {id} (pbx.prov.example.lan A) deleted"),
            format!("DNS record {id} (pbx.prov.example.lan A) added"),
        ],
        "newest first"
    );
    assert_eq!(entries[0]["changes"]["value"]["before"], "10.0.0.20");
    assert_eq!(entries[1]["changes"]["value"]["after"], "10.0.0.20");
}
