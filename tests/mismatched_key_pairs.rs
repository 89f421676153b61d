//! A certificate and a private key that do not belong together (the wrong key restored, a
//! half-finished copy) are refused where they are loaded, naming both files: at start the
//! daemon does not come up; on reload it keeps the pair it runs with.

mod common;

use common::*;
use rustls_pki_types::ServerName;

/// A new private key (PEM) that belongs to no certificate of the box.
fn foreign_key() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}

/// The serial (hex) of the certificate the phone listener presents to a client trusting the CA.
async fn presented_serial(d: &Daemon) -> String {
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let der = &tls.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Before, the daemon started with the wrong CA key and signed device (and, when due, server)
/// certificates that its own handshake then refused.
#[test]
fn a_ca_key_not_of_the_ca_stops_the_start_naming_both_files() {
    let mut d = Daemon::start();
    d.stop();
    let pki = d.data_dir().join("pki");
    std::fs::write(pki.join("ca.key"), foreign_key()).unwrap();
    // A new server name makes the start issue a server certificate: none may be signed with
    // the wrong key and written over the working one.
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        format!("{config}[pki]\nserver_names = [\"localhost\", \"prov.example.lan\"]\n"),
    )
    .unwrap();
    let server_before = std::fs::read(pki.join("server.crt")).unwrap();

    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok, "started with a CA key that is not the CA's: {err}");
    let (cert, key) = (pki.join("ca.crt"), pki.join("ca.key"));
    assert!(
        err.contains(&format!(
            "{} is not the private key of the certificate {}",
            key.display(),
            cert.display()
        )),
        "{err}"
    );
    assert!(err.contains("from one backup"), "says what to do: {err}");
    assert_eq!(
        std::fs::read(pki.join("server.crt")).unwrap(),
        server_before,
        "a server certificate was issued with the wrong key"
    );
}

#[test]
fn a_server_key_not_of_the_server_certificate_stops_the_start() {
    let mut d = Daemon::start();
    d.stop();
    let pki = d.data_dir().join("pki");
    std::fs::write(pki.join("server.key"), foreign_key()).unwrap();
    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok, "started with a mismatched server pair: {err}");
    assert!(
        err.contains(&format!(
            "{} is not the private key of the certificate {}",
            pki.join("server.key").display(),
            pki.join("server.crt").display()
        )),
        "{err}"
    );
}

/// Before, the reload was refused too (rustls would not take the pair), but the error said only
/// that a TLS configuration failed, naming neither file.
#[tokio::test]
async fn a_reload_with_a_mismatched_server_pair_keeps_the_running_certificate() {
    install_provider();
    let d = Daemon::start();
    let serial = presented_serial(&d).await;
    let pki = d.data_dir().join("pki");
    std::fs::write(pki.join("server.key"), foreign_key()).unwrap();

    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "reload refused, keeping the running certificates").await;
    let log = d.log();
    assert!(
        log.contains(&format!(
            "{} is not the private key of the certificate {}",
            pki.join("server.key").display(),
            pki.join("server.crt").display()
        )),
        "{log}"
    );
    assert_eq!(
        presented_serial(&d).await,
        serial,
        "phones get the old pair"
    );
    let (status, body) = d.api("GET", "/health", None).await;
    assert_eq!(status, 200, "the admin API still presents its pair: {body}");
}
