//! The firmware fetch against upstreams that misbehave at the network level: a name whose
//! addresses do not all answer. Loopback only; the daemon resolves names from an `/etc/hosts`
//! of its own mount namespace.

mod common;

use std::net::{Ipv6Addr, SocketAddr};

use common::upstream::{Mode, Upstream, image, sha256_hex};
use common::*;

const FILE: &str = "FW_S_J179_R4_1_3_0_6.bin";

/// A listening socket on `[::1]:port` whose accept queue is full: the kernel drops every
/// further SYN, so a connection to it neither completes nor is refused, as with an IPv6
/// address a firewall drops. Both sockets must live as long as the test.
async fn dead_ipv6_port(port: u16) -> (tokio::net::TcpListener, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v6().unwrap();
    socket
        .bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        .unwrap();
    let listener = socket.listen(0).unwrap();
    let filler = tokio::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port))
        .await
        .unwrap();
    (listener, filler)
}

/// The release's host resolves to `::1` first (RFC 6724 prefers it) and to `127.0.0.1`; the
/// IPv6 port does not answer, the IPv4 one serves the image. The fetch used to spend its
/// whole 10 s connect timeout on `::1`, never try `127.0.0.1`, and fail with
/// `firmware_upstream_unreachable`, so the phone got 503 and no image ever came; now the
/// addresses are raced as RFC 8305 says, and the phone gets the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_ipv6_address_does_not_answer_is_fetched_over_ipv4() {
    let up = Upstream::start(image(256 * 1024, 7)).await;
    let port = up.addr.port();
    let _dead = dead_ipv6_port(port).await;
    let release = format!(
        "[firmware]\nphone_wait_ms = 8000\n[[firmware.release]]\nmodels = [\"J179\"]\n\
         version = \"4.1.3.0.6\"\nfile = \"{FILE}\"\nurls = [\"http://fw.test:{port}/{FILE}\"]\n\
         sha256 = \"{}\"\n",
        sha256_hex(&up.image)
    );
    let d = Daemon::start_with_hosts(&release, "::1 fw.test\n127.0.0.1 fw.test\n");

    let got = send_plain(d.http.unwrap(), get(&format!("/{FILE}"), J179_UA))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}\n{}", got.text(), d.log());
    assert_eq!(sha256_hex(&got.body), sha256_hex(&up.image));
    assert_eq!(up.requests(), 1);
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    assert!(
        !alarms.to_string().contains("firmware_upstream_unreachable"),
        "{alarms}"
    );
}

/// The unreachable alarms of this daemon, by source.
async fn unreachable_sources(d: &Daemon) -> Vec<String> {
    let (status, alarms) = d
        .api("GET", "/alarms?kind=firmware_upstream_unreachable", None)
        .await;
    assert_eq!(status, 200, "{alarms}");
    let mut sources: Vec<String> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    sources
}

/// `firmware_upstream_unreachable` used to stay raised after the operator, the upstream being
/// down, uploaded the image by hand: phones were served it, and the alarm still sent someone to
/// fix an upstream it no longer depended on. Caching the image now clears the alarm of every
/// release naming it, by upload or by a later fetch, and only theirs: another image's upstream
/// still down keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_the_image_clears_its_upstream_unreachable_alarm() {
    let up = Upstream::start(image(300_000, 61)).await;
    let other = Upstream::start(image(200_000, 62)).await;
    up.set_default(Mode::Error);
    other.set_default(Mode::Error);
    let release = |file: &str, models: &str, up: &Upstream| {
        format!(
            "[[firmware.release]]\nmodels = [\"{models}\"]\nversion = \"1\"\nfile = \"{file}\"\n\
             urls = [\"{}\"]\nsha256 = \"{}\"\nsize = {}\n",
            up.url(file),
            sha256_hex(&up.image),
            up.image.len()
        )
    };
    let d = Daemon::start_with(&format!(
        "{}{}",
        release(FILE, "J179", &up),
        release("other.bin", "K175", &other)
    ));
    for file in [FILE, "other.bin"] {
        let got = send_plain(d.http.unwrap(), get(&format!("/{file}"), J179_UA))
            .await
            .unwrap();
        assert_eq!(got.status, 503, "{file}: {}", got.text());
    }
    let (mine, others) = (up.url(FILE), other.url("other.bin"));
    let mut both = vec![mine.clone(), others.clone()];
    both.sort();
    assert_eq!(unreachable_sources(&d).await, both);

    // The operator uploads the image by hand.
    let path = d.dir.path().join("fw.bin");
    std::fs::write(&path, up.image.as_slice()).unwrap();
    let o = d.cli(&["firmware", "upload", FILE, "--from", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(unreachable_sources(&d).await, vec![others.clone()]);
    let got = send_plain(d.http.unwrap(), get(&format!("/{FILE}"), J179_UA))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());

    // The other upstream comes back: an operator's change asks it again, and its fetch
    // clears its alarm too.
    other.set_default(Mode::Normal);
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let got = send_plain(d.http.unwrap(), get("/other.bin", J179_UA))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(unreachable_sources(&d).await, Vec::<String>::new());
}
