//! `edgeprov storm`'s verdict on servers that answer otherwise than edgeprov: a small static
//! file server with mutual TLS on loopback, serving the tree `--emit-static` writes (as nginx
//! does in `benches/storm-vs-nginx.sh`), edited per test. A correct server must pass, a wrong
//! one must fail with the right kind of error.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server frames its answers.
#[derive(Clone, Copy)]
enum Framing {
    /// `Content-Length` and keep-alive.
    KeepAlive,
    /// `Connection: close`, then the connection is closed.
    Close,
    /// Keep-alive headers, but the connection is closed after the first answer all the same:
    /// a server timing out an idle connection just after an answer.
    SilentClose,
    /// Keep-alive headers; the first request on a connection is answered, the next one read and
    /// the connection closed without a byte of answer: the server's idle close crossing the
    /// phone's next request.
    CloseUnderNextRequest,
    /// Only the very first request the server sees is answered; every later one, on any
    /// connection, is read and its connection closed without an answer.
    AnswerOnce,
}

/// A static file server on loopback whose CA (and key) the storm mints its phones from.
struct Server {
    addr: SocketAddr,
    pki: tempfile::TempDir,
    root: tempfile::TempDir,
}

/// A fresh PKI in a directory of its own, and the TLS configuration edgeprov's phone listener
/// builds from it.
fn phone_tls() -> (tempfile::TempDir, Arc<rustls::ServerConfig>) {
    install_provider();
    let pki = tempfile::tempdir().unwrap();
    let loaded = edgeprov::pki::Pki::load_or_init(
        pki.path(),
        &Default::default(),
        "",
        edgeprov::pki::Revocations::none(),
    )
    .unwrap();
    let config = edgeprov::pki::phone_server_config(&loaded).unwrap();
    (pki, config)
}

impl Server {
    /// Emits `phones` phones of `vendor` (MAC prefix 0200) as static files and serves them.
    fn start(vendor: &str, phones: u32, extra_emit: &[&str], framing: Framing) -> Server {
        let root = tempfile::tempdir().unwrap();
        let emitted = Command::new(BIN)
            .args(["storm", "--vendor", vendor, "--phones", &phones.to_string()])
            .args(extra_emit)
            .arg("--emit-static")
            .arg(root.path())
            .output()
            .unwrap();
        assert!(emitted.status.success(), "{emitted:?}");
        let (pki, config) = phone_tls();
        Server::serve(root, pki, config, framing)
    }

    /// Serves the files in `root` with `config`, the storm minting its phones from `pki`'s CA.
    fn serve(
        root: tempfile::TempDir,
        pki: tempfile::TempDir,
        config: Arc<rustls::ServerConfig>,
        framing: Framing,
    ) -> Server {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let dir = root.path().to_path_buf();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(listener, acceptor, dir, framing));
        });
        Server { addr, pki, root }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Runs a storm of `phones` phones against the server; the JSON report and success.
    fn storm(&self, vendor: &str, phones: u32, extra: &[&str]) -> (Value, bool) {
        let out = Command::new(BIN)
            .args(["storm", "--json", "--vendor", vendor, "--concurrency", "2"])
            .args(["--phones", &phones.to_string(), "--timeout-ms", "5000"])
            .arg("--target")
            .arg(format!("https://{}", self.addr))
            .arg("--ca-cert")
            .arg(self.pki.path().join("ca.crt"))
            .arg("--ca-key")
            .arg(self.pki.path().join("ca.key"))
            .args(extra)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        });
        (report, out.status.success())
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    root: PathBuf,
    framing: Framing,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let root = Arc::new(root);
    let answered = Arc::new(AtomicBool::new(false));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, root, answered) = (acceptor.clone(), root.clone(), answered.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut pending = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut requests = 0;
            loop {
                let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..end + 4);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                requests += 1;
                let unanswered = match framing {
                    Framing::CloseUnderNextRequest => requests > 1,
                    Framing::AnswerOnce => answered.swap(true, Ordering::SeqCst),
                    _ => false,
                };
                if unanswered {
                    let _ = tls.shutdown().await;
                    return;
                }
                let answer = answer(&root, &path, framing);
                if tls.write_all(&answer).await.is_err() {
                    return;
                }
                if matches!(framing, Framing::Close | Framing::SilentClose) {
                    let _ = tls.shutdown().await;
                    return;
                }
            }
        });
    }
}

fn answer(root: &Path, path: &str, framing: Framing) -> Vec<u8> {
    let name = path.trim_start_matches('/');
    let file = (!name.contains('/') && !name.is_empty())
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    let (status, body) = match file {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let connection = match framing {
        Framing::Close => "connection: close\r\n",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{connection}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A server that closes the connection after every answer, as HTTP/1.1 allows, is a correct
/// server: the phones open a new connection for their next file instead of failing.
#[test]
fn a_server_that_closes_after_each_answer_passes() {
    let server = Server::start("avaya", 5, &[], Framing::Close);
    let (r, success) = server.storm("avaya", 5, &[]);
    assert!(success, "{r}");
    assert_eq!(r["ok"], 5, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["requests"], 15, "{r}");
    assert_eq!(r["full_handshakes"], 15, "{r}");
    // Said so: no reconnect.
    assert_eq!(r["reconnects"], 0, "{r}");

    // Over keep-alive, the same tree: one handshake per phone.
    let server = Server::start("avaya", 5, &[], Framing::KeepAlive);
    let (r, success) = server.storm("avaya", 5, &[]);
    assert!(success, "{r}");
    assert_eq!(r["full_handshakes"], 5, "{r}");
}

/// A server that closes a kept-alive connection without saying so (no `Connection: close`) is
/// still a server phones boot from: a phone reconnects, and a request that crossed the close
/// before any byte of its answer is asked again on a new connection (a new full handshake),
/// counted as a reconnect, not an error.
#[test]
fn a_server_that_closes_kept_alive_connections_silently_passes_with_reconnects() {
    for framing in [Framing::CloseUnderNextRequest, Framing::SilentClose] {
        let server = Server::start("avaya", 5, &[], framing);
        let (r, success) = server.storm("avaya", 5, &[]);
        assert!(success, "{r}");
        assert_eq!(r["ok"], 5, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["requests"], 15, "{r}");
        assert_eq!(r["reconnects"], 10, "{r}");
        assert_eq!(r["full_handshakes"], 15, "{r}");
    }
}

/// The retry is one: when the request asked again on a new connection goes unanswered too, the
/// phone fails with an `http` error (and does not retry forever).
#[test]
fn a_retry_that_goes_unanswered_too_is_an_error() {
    let server = Server::start("avaya", 1, &[], Framing::AnswerOnce);
    let (r, success) = server.storm("avaya", 1, &[]);
    assert!(!success, "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["requests"], 1, "{r}");
    assert_eq!(r["reconnects"], 1, "{r}");
    assert_eq!(r["full_handshakes"], 2, "{r}");
    assert_eq!(r["errors"], 1, "{r}");
    assert_eq!(r["errors_by_kind"]["http"], 1, "{r}");
    assert_eq!(r["files"]["46xxsettings.txt"]["errors"], 1, "{r}");
}

/// A server that answers 200 with an empty file, or with an HTML page for any path (a web
/// server's catch-all), gives the phones nothing to boot from: every such answer fails the check.
#[test]
fn empty_and_html_answers_fail_the_check() {
    let server = Server::start("avaya", 4, &[], Framing::KeepAlive);
    std::fs::write(server.file("J100Supgrade.txt"), "").unwrap();
    std::fs::write(
        server.file("46xxsettings.txt"),
        "<html><body><h1>Welcome to nginx!</h1></body></html>\n",
    )
    .unwrap();
    let (r, success) = server.storm("avaya", 4, &[]);
    assert!(!success, "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["errors_by_kind"]["check"], 8, "{r}");
    assert_eq!(r["files"]["J100Supgrade.txt"]["errors"], 4, "{r}");
    assert_eq!(r["files"]["46xxsettings.txt"]["errors"], 4, "{r}");
    assert_eq!(r["files"]["{mac}.txt"]["ok"], 4, "{r}");
}

/// Asked for `--firmware`, a storm whose files name no image has not shown what it was asked
/// to, and an image answered with no bytes is no image: both fail the check.
#[test]
fn firmware_named_nowhere_or_empty_fails() {
    let server = Server::start("yealink", 3, &[], Framing::KeepAlive);
    let (r, success) = server.storm("yealink", 3, &["--firmware"]);
    assert!(!success, "{r}");
    assert_eq!(r["files"]["firmware"]["errors"], 3, "{r}");
    assert_eq!(r["errors_by_kind"]["check"], 3, "{r}");

    let server = Server::start("avaya", 3, &["--firmware"], Framing::KeepAlive);
    let (r, success) = server.storm("avaya", 3, &["--firmware"]);
    assert!(success, "{r}");
    assert_eq!(r["files"]["firmware"]["ok"], 3, "{r}");
    std::fs::write(server.file("J100-IPT-SIP-R4_1_3_0_6.bin"), "").unwrap();
    let (r, success) = server.storm("avaya", 3, &["--firmware"]);
    assert!(!success, "{r}");
    assert_eq!(r["files"]["firmware"]["errors"], 3, "{r}");
}

/// A server that answers with a file far larger than any phone's (hundreds of MB where Avaya's
/// whole settings template is about 1 MB) fails the check without the simulator holding it in
/// memory: its memory stays bounded whatever the server sends.
#[test]
fn a_huge_answer_fails_without_filling_the_simulators_memory() {
    const MB: usize = 1 << 20;
    let server = Server::start("avaya", 2, &[], Framing::KeepAlive);
    let mut huge = "## padding\n".repeat(96 * MB / 11).into_bytes();
    huge.extend_from_slice(b"GET $MACADDR.txt\n");
    std::fs::write(server.file("46xxsettings.txt"), &huge).unwrap();
    drop(huge);
    let mut child = Command::new(BIN)
        .args(["storm", "--json", "--vendor", "avaya", "--concurrency", "2"])
        .args(["--phones", "2", "--timeout-ms", "60000"])
        .arg("--target")
        .arg(format!("https://{}", server.addr))
        .arg("--ca-cert")
        .arg(server.pki.path().join("ca.crt"))
        .arg("--ca-key")
        .arg(server.pki.path().join("ca.key"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success(), "peak RSS {peak_kib} KiB: {r}");
    assert_eq!(r["files"]["46xxsettings.txt"]["errors"], 2, "{r}");
    assert_eq!(r["errors_by_kind"]["check"], 2, "{r}");
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}

/// A server that sends its half of the handshake, then resets the connection when the phone
/// sends its certificate and Finished, never finishing the handshake (a server that fails or
/// is overwhelmed as it checks the phone's certificate).
fn start_resetting_mid_handshake() -> Server {
    let (pki, config) = phone_tls();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
                let mut tls =
                    rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
                // The ClientHello in, the server's flight out.
                while !tls.wants_write() {
                    if tls.read_tls(&mut tcp)? == 0 {
                        return Ok(());
                    }
                    tls.process_new_packets().map_err(std::io::Error::other)?;
                }
                while tls.wants_write() {
                    tls.write_tls(&mut tcp)?;
                }
                // The phone's flight arrives: reset instead of checking it.
                tcp.peek(&mut [0u8; 1])?;
                socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO))?;
                Ok(())
            });
        }
    });
    Server {
        addr,
        pki,
        root: tempfile::tempdir().unwrap(),
    }
}

/// A reset during the handshake is a `tls` error whatever the TLS version. With TLS 1.3 the
/// phone's handshake ends before the server has checked its certificate, and the reset used to
/// surface under the first request as an `http` error ("the connection broke after the
/// handshake").
#[test]
fn a_reset_during_the_handshake_is_a_tls_error_with_tls_1_2_and_1_3() {
    let server = start_resetting_mid_handshake();
    for tls in ["1.2", "1.3"] {
        let (r, success) = server.storm("avaya", 3, &["--tls", tls]);
        assert!(!success, "TLS {tls}: {r}");
        assert_eq!(r["ok"], 0, "TLS {tls}: {r}");
        assert_eq!(r["errors"], 3, "TLS {tls}: {r}");
        assert_eq!(r["errors_by_kind"]["tls"], 3, "TLS {tls}: {r}");
        assert_eq!(
            r["files"]["J100Supgrade.txt"]["errors"], 3,
            "TLS {tls}: {r}"
        );
    }
}

/// A server with edgeprov's server certificate that trusts another CA's phones only: it
/// refuses every phone's certificate with an alert.
fn start_refusing_the_phones() -> Server {
    let (pki, _) = phone_tls();
    let (other, _) = phone_tls();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(other.path().join("ca.crt")).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let chain = CertificateDer::pem_file_iter(pki.path().join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path().join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    Server::serve(
        tempfile::tempdir().unwrap(),
        pki,
        Arc::new(config),
        Framing::KeepAlive,
    )
}

/// A refused certificate is a `tls` error whatever the TLS version. A TLS 1.3 phone finishes
/// its half of the handshake before the server refuses its certificate; when the connection's
/// own task read the server's alert before the phone's first request went out, the request
/// failed with only "connection closed", and the phone was counted as an `http` error.
#[test]
fn a_refused_certificate_is_a_tls_error_with_tls_1_2_and_1_3() {
    const PHONES: u32 = 60;
    let server = start_refusing_the_phones();
    for tls in ["1.2", "1.3"] {
        let (r, success) = server.storm("avaya", PHONES, &["--tls", tls]);
        assert!(!success, "TLS {tls}: {r}");
        assert_eq!(r["ok"], 0, "TLS {tls}: {r}");
        assert_eq!(r["errors"], PHONES, "TLS {tls}: {r}");
        assert_eq!(r["errors_by_kind"]["tls"], PHONES, "TLS {tls}: {r}");
    }
}

/// A storm at the open-file limit it was checked against (`--concurrency 192` needs 256 open
/// files) holds one socket per phone, even when every file is a new connection: a phone closes
/// its last connection before it opens the next. It used to open the next while the last was
/// still closing, two sockets a phone, and most connections failed as `refused`.
#[test]
fn a_storm_at_the_open_file_limit_holds_one_socket_per_phone() {
    const PHONES: u32 = 384;
    let server = Server::start("avaya", PHONES, &[], Framing::KeepAlive);
    for mode in ["--resume-sessions", "--tls=any"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
            .arg(BIN)
            .args(["storm", "--json", "--vendor", "avaya", mode])
            .args(["--phones", &PHONES.to_string(), "--concurrency", "192"])
            .args(["--timeout-ms", "20000", "--target"])
            .arg(format!("https://{}", server.addr))
            .arg("--ca-cert")
            .arg(server.pki.path().join("ca.crt"))
            .arg("--ca-key")
            .arg(server.pki.path().join("ca.key"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let r: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{mode}: {e}: {stderr}"));
        assert!(out.status.success(), "{mode}: {r} {stderr}");
        assert_eq!(r["concurrency"], 192, "{mode}: {r}");
        assert_eq!(r["ok"], PHONES, "{mode}: {r}");
        assert_eq!(r["errors"], 0, "{mode}: {r}");
    }
}

/// A handshake the server refused is no handshake, whatever the TLS version: it is in neither
/// `full_handshakes`, `handshakes_per_s` nor `handshake_ms`. A TLS 1.3 phone finishes its half
/// before the server refuses its certificate (with an alert) or resets the connection, and such
/// handshakes used to be counted as full ones where the same refusals with TLS 1.2 were not.
#[test]
fn a_refused_handshake_is_not_counted() {
    for (server, how) in [
        (start_refusing_the_phones(), "refused"),
        (start_resetting_mid_handshake(), "reset"),
    ] {
        for tls in ["1.2", "1.3"] {
            let (r, success) = server.storm("avaya", 6, &["--tls", tls]);
            assert!(!success, "{how} TLS {tls}: {r}");
            assert_eq!(r["errors_by_kind"]["tls"], 6, "{how} TLS {tls}: {r}");
            assert_eq!(r["full_handshakes"], 0, "{how} TLS {tls}: {r}");
            assert_eq!(r["handshakes_per_s"], 0.0, "{how} TLS {tls}: {r}");
            assert_eq!(r["handshake_ms"]["count"], 0, "{how} TLS {tls}: {r}");
        }
    }
}
