//! Hostile requests are answered or closed without harm, and the daemon keeps serving others.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and returns what the server answered before closing (bounded wait).
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn still_serving(d: &Daemon) {
    let id = d.identity("001122aabbcc").await;
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get("/001122aabbcc.txt", J179_UA),
    )
    .await
    .expect("the daemon still serves a legitimate phone");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("SET SIP_PASSWORD s3cret"));
}

async fn daemon() -> Daemon {
    let d = Daemon::start();
    d.add_device(json!({"mac": "001122aabbcc", "secrets": {"SIP_PASSWORD": "s3cret"}}))
        .await;
    d
}

#[tokio::test]
async fn traversal_is_refused_and_alarmed() {
    let d = daemon().await;
    let http = d.http.unwrap();
    for path in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/a/..%5c..%5cwin.ini",
        "/%2E%2E/001122aabbcc.txt",
    ] {
        let resp = raw(
            http,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&resp), 400, "{path}: {resp}");
        assert!(!resp.contains("root:"), "{path}");
    }
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let t = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "path_traversal")
        .expect("traversal alarm");
    assert_eq!(t["count"], 5);
    still_serving(&d).await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let d = daemon().await;
    let http = d.http.unwrap();
    let long_url = format!(
        "GET /{}.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(2000)
    );
    let resp = raw(http, long_url.as_bytes()).await;
    assert_eq!(status_of(&resp), 414, "{resp}");

    let huge_url = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024));
    let resp = raw(http, huge_url.as_bytes()).await;
    assert!(matches!(status_of(&resp), 414 | 431 | 0), "{resp}");

    let big_header = format!(
        "GET /x.txt HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let resp = raw(http, big_header.as_bytes()).await;
    assert!(matches!(status_of(&resp), 431 | 0), "{resp}");
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let resp = raw(
        http,
        format!("GET /x.txt HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").as_bytes(),
    )
    .await;
    assert!(matches!(status_of(&resp), 431 | 400 | 0), "{resp}");

    let garbage = raw(http, b"\x16\x03\x01\x00\xff garbage\r\n\r\n").await;
    assert!(matches!(status_of(&garbage), 400 | 0), "{garbage}");
    let post = raw(http, b"POST /001122aabbcc.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&post), 405, "{post}");
    still_serving(&d).await;
}

#[tokio::test]
async fn slow_and_half_open_connections_are_closed() {
    let d = daemon().await;
    // Half-open on the TLS port: connect and say nothing. The handshake deadline (1 s in the
    // test config) closes it.
    let started = Instant::now();
    let mut idle = TcpStream::connect(d.https).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the server closes a silent TLS connection");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Slowloris on HTTP: half a request head, then nothing. The header deadline closes it.
    let mut slow = TcpStream::connect(d.http.unwrap()).await.unwrap();
    slow.write_all(b"GET /001122aabbcc.txt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut out))
        .await
        .expect("the server closes a slow request")
        .ok();
    assert!(!String::from_utf8_lossy(&out).contains("s3cret"));

    // Many idle connections at once do not stop service.
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(TcpStream::connect(d.https).await.unwrap());
    }
    still_serving(&d).await;
    drop(held);
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_closed() {
    let d = daemon().await;
    let resp = raw(
        d.https,
        b"GET /001122aabbcc.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(!resp.contains("s3cret"));
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp}");
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = raw(d.https, &junk).await;
    still_serving(&d).await;
}

/// Every listener asks the kernel to queue 4,096 connections until they are accepted (the
/// `Send-Q` that `ss` shows for a listening socket; the kernel caps it at `somaxconn`), not
/// tokio's 1,024: in a boot storm the
/// phones beyond it would have their SYNs dropped and wait a second to retry.
#[tokio::test]
async fn listeners_queue_a_storm_of_connections() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let expected = 4096.min(somaxconn).to_string();
    let d = Daemon::start();
    for addr in [d.https, d.http.unwrap(), d.admin] {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let backlog: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(backlog, [expected.as_str()], "{addr}: {text}");
    }
}

/// A listener waiting for a connection holds no slot: with a limit of one, plain HTTP is served
/// although the HTTPS listener is idle, and no connection is counted while none is open.
#[tokio::test]
async fn an_idle_listener_holds_no_connection_slot() {
    let d = Daemon::start_with("");
    let config = std::fs::read_to_string(d.config_path()).unwrap().replace(
        "header_timeout_ms = 1000",
        "header_timeout_ms = 1000\nmax_connections = 1",
    );
    std::fs::write(d.config_path(), config).unwrap();
    let d = d.restart();
    let text = d.metrics().await;
    assert_eq!(metric(&text, "edgeprov_phone_connections_limit"), 1);
    assert_eq!(metric(&text, "edgeprov_phone_connections"), 0, "{text}");

    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        raw(
            d.http.unwrap(),
            b"GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
    )
    .await
    .expect("plain HTTP is served while the HTTPS listener waits");
    assert_eq!(status_of(&answer), 200, "{answer}");
}

/// A flood of connections cannot take the box's memory: beyond `phone.max_connections` (HTTPS
/// and HTTP together) the daemon accepts no more until one closes; the waiting connection is
/// then served, and the admin API, which has its own limit, answers throughout.
#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let d = Daemon::start();
    // One address stands for every phone here: no per-address limit.
    let config = std::fs::read_to_string(d.config_path()).unwrap().replace(
        "header_timeout_ms = 1000",
        "header_timeout_ms = 30000\nmax_connections = 2\nmax_connections_per_address = 0",
    );
    std::fs::write(d.config_path(), config).unwrap();
    let d = d.restart();
    let http = d.http.unwrap();

    // Two idle connections, one on each phone port, take both slots.
    let mut held = vec![
        TcpStream::connect(d.https).await.unwrap(),
        TcpStream::connect(http).await.unwrap(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = d.metrics().await;
        assert_eq!(metric(&text, "edgeprov_phone_connections_limit"), 2);
        if metric(&text, "edgeprov_phone_connections") == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A third waits in the listen queue: its request is not answered while both are held.
    let mut third = TcpStream::connect(http).await.unwrap();
    third
        .write_all(b"GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let waited =
        tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut out)).await;
    assert!(waited.is_err(), "answered beyond the limit: {out:?}");
    assert_eq!(metric(&d.metrics().await, "edgeprov_phone_connections"), 2);

    // One closes: the third is accepted and answered.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut out))
        .await
        .expect("the waiting connection is served once a slot is free")
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&out)), 200, "{out:?}");
}

/// A connection to `addr` from `source` (any 127/8 address is this machine's, so one test can
/// be several hosts).
async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(addr).await.unwrap()
}

/// A plain HTTP request for the common settings file from `source`, and what came back before
/// the server closed (nothing, when it closed without answering).
async fn settings_from(source: &str, addr: std::net::SocketAddr) -> String {
    let mut s = connect_from(source, addr).await;
    let _ = s
        .write_all(b"GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed `conn` within `within`.
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, conn.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// One address cannot take every phone connection slot. With `max_connections = 8` (so
/// `max_connections_per_address` is 2) a host opening eight idle connections, TLS and plain,
/// keeps two; the other six are closed as soon as they are accepted, before any TLS
/// handshake, counted, and logged in one line. A phone at another address is served
/// meanwhile, and the host is served again once it closes one of its two.
#[tokio::test]
async fn one_address_cannot_take_every_connection_slot() {
    let d = Daemon::start();
    let config = std::fs::read_to_string(d.config_path())
        .unwrap()
        .replace(
            "handshake_timeout_ms = 1000",
            "handshake_timeout_ms = 30000",
        )
        .replace(
            "header_timeout_ms = 1000",
            "header_timeout_ms = 30000\nmax_connections = 8",
        );
    std::fs::write(d.config_path(), config).unwrap();
    let d = d.restart();
    let http = d.http.unwrap();

    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", d.https).await);
        held.push(connect_from("127.0.0.1", http).await);
    }
    // Until the daemon has taken all eight (held or closed), so the phone comes after them.
    let refused = |text: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("edgeprov_phone_connections_refused_total{reason=\"per_address\"} ")
            })
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = d.metrics().await;
        if metric(&text, "edgeprov_phone_connections") + refused(&text) == 8 {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let phone = settings_from("127.0.0.2", http).await;
    assert_eq!(
        status_of(&phone),
        200,
        "a phone at another address is starved: {phone:?}"
    );

    let text = d.metrics().await;
    assert_eq!(metric(&text, "edgeprov_phone_connections"), 2, "{text}");
    assert_eq!(refused(&text), 6, "{text}");
    assert_eq!(
        metric(&text, "edgeprov_phone_connections_per_address_limit"),
        2
    );
    for result in ["failed", "timeout"] {
        assert!(
            text.contains(&format!(
                "edgeprov_tls_handshakes_total{{listener=\"phone\",result=\"{result}\"}} 0\n"
            )),
            "a refused connection began no handshake: {text}"
        );
    }
    let mut kept = Vec::new();
    for mut conn in held {
        if !closed(&mut conn, Duration::from_millis(200)).await {
            kept.push(conn);
        }
    }
    assert_eq!(kept.len(), 2, "the address keeps its limit of connections");
    let refused = settings_from("127.0.0.1", http).await;
    assert!(refused.is_empty(), "answered over the limit: {refused:?}");
    let lines = d
        .log()
        .matches("phone connections closed at accept")
        .count();
    assert_eq!(
        lines,
        1,
        "refusals are logged, not one line each:\n{}",
        d.log()
    );

    // One of its connections closes: the address is served again.
    drop(kept.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = settings_from("127.0.0.1", http).await;
        if status_of(&again) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {again:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clients that send requests and never read the answers cannot keep the connection slots:
/// once one has taken nothing for `phone.send_timeout_ms`, its connection is closed, on the TLS
/// port and on plain HTTP, and the phone waiting behind them is served.
#[tokio::test]
async fn clients_that_never_read_lose_their_connections() {
    let d = Daemon::start();
    // One address stands for every client here: no per-address limit.
    let config = std::fs::read_to_string(d.config_path()).unwrap().replace(
        "header_timeout_ms = 1000",
        "header_timeout_ms = 1000\nsend_timeout_ms = 1000\nmax_connections = 2\n\
         max_connections_per_address = 0",
    );
    std::fs::write(d.config_path(), config).unwrap();
    let d = d.restart();
    let http = d.http.unwrap();
    let pipelined = b"GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);

    // One flooder on each port takes both slots; the phone waits behind them.
    let tcp = TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (tls_unread, mut tls_writer) = tokio::io::split(tls);
    let requests = pipelined.clone();
    let tls_flood = tokio::spawn(async move { tls_writer.write_all(&requests).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (plain_unread, mut plain_writer) = TcpStream::connect(http).await.unwrap().into_split();
    let plain_flood = tokio::spawn(async move { plain_writer.write_all(&pipelined).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut phone = TcpStream::connect(http).await.unwrap();
    phone
        .write_all(b"GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), phone.read_to_end(&mut out))
        .await
        .expect("the phone is served once the clients that never read are closed")
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&out)), 200);
    // The phone was served once one flooder was cut; the other may still be sending (on a busy
    // machine its socket buffers take a while to fill). Reading it now would drain it, so wait
    // until the daemon holds no connection at all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !d
        .metrics()
        .await
        .contains("\nedgeprov_phone_connections 0\n")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a flooder's connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both flooders were cut off: what reached them ends, answers to only some requests.
    for (name, mut unread) in [
        (
            "TLS",
            Box::new(tls_unread) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        ),
        ("HTTP", Box::new(plain_unread)),
    ] {
        let mut got = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(10), unread.read_to_end(&mut got));
        assert!(
            ended.await.is_ok(),
            "the {name} flooder's connection is still open"
        );
        let answered = String::from_utf8_lossy(&got)
            .matches("HTTP/1.1 200")
            .count();
        assert!(answered < 20_000, "{name}: {answered}");
    }
    tls_flood.abort();
    plain_flood.abort();
}
