//! HTTP as a phone fleet uses it, on real TLS connections: conditional requests with the
//! content-hash ETag, HEAD, HTTP/1.0 clients and pipelined requests, none of which may hand a
//! secret file (or a 304 that confirms its content) to a device that has not proven it owns it.

mod common;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: &str = "001122aabbcc";
const B: &str = "001122aabbcd";

async fn daemon_with_two_phones() -> Daemon {
    let d = Daemon::start();
    for mac in [A, B] {
        d.add_device(json!({
            "mac": mac,
            "model": "J179",
            "params": {"SIPDOMAIN": "example.com"},
            "secrets": {"SIP_PASSWORD": format!("pw-{mac}")},
        }))
        .await;
    }
    d
}

fn conditional(
    path: &str,
    if_none_match: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = get(path, J179_UA);
    req.headers_mut()
        .insert("if-none-match", if_none_match.parse().unwrap());
    req
}

/// Writes `raw` on a fresh TLS connection with `id`'s certificate and reads until the server
/// closes (or 5 s pass).
async fn raw_tls(d: &Daemon, id: Option<&Identity>, raw: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), id))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server did not close: {}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// A phone (or a proxy on its way) may keep the ETag weakened as `W/"…"`; RFC 9110 compares
/// If-None-Match weakly, and firmware images already did. Settings files compared strongly,
/// so such a phone downloaded its unchanged file on every check (200 instead of 304). The weak
/// tag still proves nothing: another device, or none, gets 403 and no 304.
#[tokio::test]
async fn a_weak_etag_gets_304_only_for_the_owner() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;
    let path = format!("/{A}.txt");
    let first = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        get(&path, J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(first.status, 200);
    let etag = first.headers["etag"].to_str().unwrap().to_string();

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", W/{etag}"),
    ] {
        let own = send(
            d.https,
            client_config(&ca, Some(&id_a)),
            conditional(&path, &tag),
        )
        .await
        .unwrap();
        assert_eq!(own.status, 304, "{tag}");
        assert!(own.body.is_empty());
        assert_eq!(own.headers["etag"], etag.as_str());
        assert_eq!(own.headers["cache-control"], "no-store");

        let other = send(
            d.https,
            client_config(&ca, Some(&id_b)),
            conditional(&path, &tag),
        )
        .await
        .unwrap();
        assert_eq!(other.status, 403, "{tag}");
        assert!(other.headers.get("etag").is_none());
        let anonymous = send(d.https, client_config(&ca, None), conditional(&path, &tag))
            .await
            .unwrap();
        assert_eq!(anonymous.status, 403, "{tag}");
        assert!(anonymous.headers.get("etag").is_none());
    }
    // A changed file is sent again, weak tag or not.
    d.api(
        "PATCH",
        &format!("/devices/{A}"),
        Some(json!({"secrets": {"SIP_PASSWORD": "changed"}})),
    )
    .await;
    let changed = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        conditional(&path, &format!("W/{etag}")),
    )
    .await
    .unwrap();
    assert_eq!(changed.status, 200);
    assert!(changed.text().contains("SET SIP_PASSWORD changed"));
}

/// HEAD tells the owner what GET would (length, tag, no-store) without the body; an HTTP/1.0
/// client without a Host gets its file and the connection closed; pipelined requests on one
/// connection are each authorised on their own: the other device's file among them is 403.
#[tokio::test]
async fn head_http10_and_pipelined_requests_keep_the_promise() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;
    let path = format!("/{A}.txt");
    let got = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        get(&path, J179_UA),
    )
    .await
    .unwrap();
    let mut head = get(&path, J179_UA);
    *head.method_mut() = http::Method::HEAD;
    let r = send(d.https, client_config(&ca, Some(&id_a)), head)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers["content-length"],
        got.body.len().to_string().as_str()
    );
    assert_eq!(r.headers["etag"], got.headers["etag"]);
    assert_eq!(r.headers["cache-control"], "no-store");
    let mut head = get(&path, J179_UA);
    *head.method_mut() = http::Method::HEAD;
    let r = send(d.https, client_config(&ca, Some(&id_b)), head)
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    let old = raw_tls(&d, Some(&id_a), &format!("GET {path} HTTP/1.0\r\n\r\n")).await;
    assert!(old.starts_with("HTTP/1.0 200 "), "{old}");
    assert!(old.contains(&format!("SET SIP_PASSWORD pw-{A}")), "{old}");

    let pipelined = raw_tls(
        &d,
        Some(&id_b),
        &format!(
            "GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /{A}.txt HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /{B}.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let statuses: Vec<&str> = pipelined
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 403 Forbidden",
            "HTTP/1.1 200 OK"
        ],
        "{pipelined}"
    );
    assert!(!pipelined.contains(&format!("pw-{A}")), "{pipelined}");
    assert!(pipelined.contains(&format!("pw-{B}")), "{pipelined}");
}

/// Each file goes out with the media type its name says, as a web server would send it (the
/// types of nginx's `mime.types`): an operator's XML directory or Cisco configuration is XML, a
/// logo is an image, a trust certificate is one, and a name the box knows nothing of is bytes.
/// Every file was `text/plain`, whatever it held. Settings files the phones read as text stay
/// `text/plain`, on GET, HEAD and 304 alike.
#[tokio::test]
async fn each_file_kind_has_its_content_type() {
    let d = Daemon::start();
    for (name, body) in [
        ("cfg.xml", &b"<gs_provision/>\n"[..]),
        ("Logo.PNG", b"\x89PNG\r\n\x1a\n"),
        ("ring.wav", b"RIFF\0\0\0\0WAVE"),
        ("trust.pem", b"-----BEGIN CERTIFICATE-----\n"),
        ("46xxspecials.txt", b"SET FOO bar\n"),
        ("blob", b"\x00\x01binary"),
    ] {
        d.put_file(name, body.to_vec()).await;
    }
    let http = d.http.unwrap();
    for (path, want) in [
        ("/cfg.xml", "text/xml"),
        ("/provisioning/logo.png", "image/png"),
        ("/ring.wav", "audio/wav"),
        ("/trust.pem", "application/x-x509-ca-cert"),
        ("/46xxspecials.txt", "text/plain"),
        ("/blob", "application/octet-stream"),
        ("/46xxsettings.txt", "text/plain"),
        ("/J100Supgrade.txt", "text/plain"),
        ("/y000000000066.cfg", "text/plain"),
        ("/000000000000.cfg", "text/plain"),
    ] {
        let got = send_plain(http, get(path, J179_UA)).await.unwrap();
        assert_eq!(got.status, 200, "{path}: {}", got.text());
        assert_eq!(got.headers["content-type"], want, "{path}");
        let mut head = get(path, J179_UA);
        *head.method_mut() = http::Method::HEAD;
        let head = send_plain(http, head).await.unwrap();
        assert_eq!(head.headers["content-type"], want, "HEAD {path}");
        let etag = got.headers["etag"].to_str().unwrap();
        let again = send_plain(http, conditional(path, etag)).await.unwrap();
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.headers["content-type"], want, "304 {path}");
    }
}

/// Writes `request` on `stream`, shuts its write side (what a client that has nothing more to
/// say may do, HTTP/1.0 style) and reads the answer until the server closes (or 10 s pass).
async fn half_closed<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Vec<u8> {
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    assert!(read.is_ok(), "no end: {}", String::from_utf8_lossy(&out));
    out
}

/// A client may shut its side of the connection once its request is sent and still wait for
/// the answer (RFC 9112 §9.6; nginx and Apache answer it). hyper dropped such a request as
/// soon as it read the end of the stream, so a response that took a moment (a firmware image,
/// being fetched or only being opened from the cache) was never sent: the phone got an empty
/// connection. It gets the whole image now, over plain HTTP and over TLS, fetched or cached.
#[tokio::test]
async fn a_request_whose_sender_shut_its_side_is_answered() {
    use common::upstream::{Mode, Upstream, image, sha256_hex};
    const FILE: &str = "FW_S_J179_R4_1_3_0_6.bin";
    let up = Upstream::start(image(64 * 1024, 3)).await;
    up.set_default(Mode::Slow(16 * 1024, std::time::Duration::from_millis(50)));
    let d = Daemon::start_with(&format!(
        "[firmware]\nphone_wait_ms = 10000\n[[firmware.release]]\nmodels = [\"J179\"]\n\
         version = \"4.1.3.0.6\"\nfile = \"{FILE}\"\nurls = [\"{}\"]\nsha256 = \"{}\"\n",
        up.url(FILE),
        sha256_hex(&up.image)
    ));
    let request = format!("GET /{FILE} HTTP/1.0\r\nUser-Agent: {J179_UA}\r\n\r\n");
    let body_of = |out: &[u8]| -> Vec<u8> {
        let text = String::from_utf8_lossy(out);
        assert!(
            text.starts_with("HTTP/1.0 200 "),
            "{}",
            &text[..text.len().min(200)]
        );
        let head = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        out[head + 4..].to_vec()
    };
    for round in ["while it is fetched", "from the cache"] {
        let tcp = tokio::net::TcpStream::connect(d.http.unwrap())
            .await
            .unwrap();
        let body = body_of(&half_closed(tcp, &request).await);
        assert_eq!(body.as_slice(), up.image.as_slice(), "HTTP, {round}");
    }
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let body = body_of(&half_closed(tls, &request).await);
    assert_eq!(body.as_slice(), up.image.as_slice(), "HTTPS");
    assert_eq!(up.requests(), 1);
}

/// The request forms phones send for one file all reach it: another letter case (of the name
/// and of the MAC), the doubled slash of a provisioning URL ending in `/`, a query string, a
/// directory from an option 242/66 URL, percent-encoding, the absolute form, and HTTP/1.0
/// without a Host.
#[tokio::test]
async fn the_request_forms_phones_send_reach_their_file() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let fetch = |path: String| {
        let tls = client_config(&ca, Some(&id_a));
        async move {
            let r = send(d.https, tls, get(&path, J179_UA)).await.unwrap();
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            r.text()
        }
    };
    let settings = fetch("/46xxsettings.txt".into()).await;
    for path in [
        "/46XXSETTINGS.TXT",
        "//46xxsettings.txt",
        "/46xxsettings.txt?mac=001122aabbcc",
        "/provisioning/46xxsettings.txt",
        "/46xx%73ettings%2Etxt",
        "https://localhost/46xxsettings.txt",
    ] {
        assert_eq!(fetch(path.into()).await, settings, "{path}");
    }
    let own = fetch(format!("/{A}.txt")).await;
    assert!(own.contains(&format!("pw-{A}")), "{own}");
    for path in [
        format!("/{}.txt", A.to_uppercase()),
        format!("/{A}/{A}.TXT"),
    ] {
        assert_eq!(fetch(path.clone()).await, own, "{path}");
    }
    let old = raw_tls(&d, Some(&id_a), "GET //46xxsettings.txt HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.0 200 "), "{old}");
    assert!(old.ends_with(&settings), "{old}");
}

/// Names match in any letter case, and every spelling of a common file is one file: the same
/// bytes and ETag (so a phone's If-None-Match holds whichever spelling it used), rendered and
/// kept once per generation.
#[tokio::test]
async fn every_spelling_of_a_common_file_is_the_same_file() {
    let d = daemon_with_two_phones().await;
    let tls = client_config(&d.ca_pem(), None);
    let mut seen = Vec::new();
    for name in ["46xxsettings.txt", "46XXSETTINGS.TXT", "46xXsettings.txt"] {
        let r = send(d.https, tls.clone(), get(&format!("/{name}"), J179_UA))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        seen.push((r.headers["etag"].clone(), r.body));
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    let r = send(
        d.https,
        tls,
        conditional("/46XXsettings.TXT", seen[0].0.to_str().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 304);
}

/// Writes `raw` on a fresh plain-HTTP connection and reads until the server closes.
async fn raw_plain(d: &Daemon, raw: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(d.http.unwrap())
        .await
        .unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server did not close");
    String::from_utf8_lossy(&out).into_owned()
}

/// The firmware URL a Yealink file names points where the phone reached the box: the
/// authority of an absolute-form target wins over Host (RFC 9112 §3.2.2); an HTTP/1.0 request
/// without Host (which named no firmware at all: a phone that silently never upgrades) gets the
/// box's first `pki.server_names` entry with the port it came in on.
#[tokio::test]
async fn the_firmware_url_names_the_box_as_the_request_reached_it() {
    let d = Daemon::start_with("[pki]\nserver_names = [\"prov.example.lan\", \"localhost\"]\n");
    d.add_device(json!({"mac": "001565aaa937", "model": "T46S"}))
        .await;
    let (s, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(
                json!({"file": "t46s.rom", "models": ["T46S"], "version": "66.86.0.15",
                        "sha256": "ab".repeat(32)}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let ua = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:a9:37";
    let url = |base: &str| format!("static.firmware.url = {base}/firmware/t46s.rom\n");

    let absolute = raw_tls(
        &d,
        None,
        &format!(
            "GET https://box.example.lan:8443/y000000000066.cfg HTTP/1.1\r\nHost: localhost\r\n\
             User-Agent: {ua}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    assert!(
        absolute.contains(&url("https://box.example.lan:8443")),
        "{absolute}"
    );

    let absolute = raw_plain(
        &d,
        &format!(
            "GET http://10.0.0.5/y000000000066.cfg HTTP/1.1\r\nHost: localhost\r\n\
             User-Agent: {ua}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(absolute.contains(&url("http://10.0.0.5")), "{absolute}");

    let no_host = raw_plain(
        &d,
        &format!("GET /y000000000066.cfg HTTP/1.0\r\nUser-Agent: {ua}\r\n\r\n"),
    )
    .await;
    assert!(no_host.starts_with("HTTP/1.0 200"), "{no_host}");
    let port = d.http.unwrap().port();
    assert!(
        no_host.contains(&url(&format!("http://prov.example.lan:{port}"))),
        "{no_host}"
    );

    let no_host = raw_tls(
        &d,
        None,
        &format!("GET /y000000000066.cfg HTTP/1.0\r\nUser-Agent: {ua}\r\n\r\n"),
    )
    .await;
    let port = d.https.port();
    assert!(
        no_host.contains(&url(&format!("https://prov.example.lan:{port}"))),
        "{no_host}"
    );
}
