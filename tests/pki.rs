//! The PKI as clients and operators see it: the server certificate, the CA's revocation list,
//! and which roots are trusted.

mod common;

use common::*;

#[tokio::test]
async fn crl_is_published_and_named_in_the_server_certificate() {
    let d = Daemon::start();
    let r = send_plain(d.http.unwrap(), get("/ca.crl", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/pkix-crl");
    let (_, crl) = x509_parser::parse_x509_crl(&r.body).expect("a DER CRL");
    let ca_pem = d.ca_pem();
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert_eq!(crl.issuer(), ca.subject());
    let now = x509_parser::time::ASN1Time::now();
    assert!(crl.next_update().unwrap() > now);
    assert_eq!(crl.iter_revoked_certificates().count(), 0);

    let server_pem = std::fs::read(d.data_dir().join("pki/server.crt")).unwrap();
    let server_der: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(&server_pem).unwrap();
    let (_, server) = x509_parser::parse_x509_certificate(&server_der).unwrap();
    let text = format!("{:?}", server.extensions());
    // Port 0 in the test config is left out of the URL.
    assert!(text.contains("http://localhost/ca.crl"), "{text}");
    assert_eq!(server.issuer(), ca.subject());
}

/// A vendor's root copied by hand into `pki/roots/` is not trusted (only roots added through the
/// API live there); before, it was skipped without a word, leaving its phones' failed
/// handshakes unexplained.
#[test]
fn a_root_copied_into_the_roots_directory_is_named_as_not_trusted() {
    let d = Daemon::start_prepared("", &[], |data| {
        let roots = data.join("pki/roots");
        std::fs::create_dir_all(&roots).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = params.self_signed(&key).unwrap();
        std::fs::write(roots.join("vendor-root.pem"), root.pem()).unwrap();
    });
    let file = d.data_dir().join("pki/roots/vendor-root.pem");
    let log = d.log();
    assert!(
        log.contains(&file.display().to_string()) && log.contains("not trusted"),
        "{log}"
    );
    assert!(
        log.contains("pki.trusted_device_roots"),
        "says what to do: {log}"
    );
}
