//! The PKI as clients see it: the server certificate and the CA's revocation list.

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
