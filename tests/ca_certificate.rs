//! Phones learn to trust the box from the box: its CA certificate is served to anyone, over
//! plain HTTP first, at the name their settings give (`TRUSTCERTS edgeprov-ca.crt`).

mod common;

use common::*;

/// A client that trusts only what the box served, and offers no certificate of its own.
fn trusting(pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    client_config(pem, None)
}

#[tokio::test]
async fn the_ca_certificate_is_served_to_anyone_and_is_what_https_needs() {
    let d = Daemon::start();
    let plain = d.http.unwrap();

    let r = send_plain(plain, get("/edgeprov-ca.crt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/x-x509-ca-cert");
    assert_eq!(r.text(), d.ca_pem());
    let etag = r.headers["etag"].to_str().unwrap().to_string();

    // What it served is enough to fetch over HTTPS from the box.
    let over_tls = send(
        d.https,
        trusting(&r.text()),
        get("/46xxsettings.txt", J179_UA),
    )
    .await
    .expect("the served CA certificate lets a client verify the box's HTTPS");
    assert_eq!(over_tls.status, 200);

    // Under the directory a phone's settings name, in another letter case, and over HTTPS.
    for path in ["/avaya/edgeprov-ca.crt", "/EDGEPROV-CA.CRT"] {
        let r = send_plain(plain, get(path, J179_UA)).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), d.ca_pem(), "{path}");
    }
    let r = send(
        d.https,
        trusting(&d.ca_pem()),
        get("/edgeprov-ca.crt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.text(), d.ca_pem());

    // A phone that has it already is told so.
    let mut again = get("/edgeprov-ca.crt", J179_UA);
    again
        .headers_mut()
        .insert("if-none-match", etag.parse().unwrap());
    let r = send_plain(plain, again).await.unwrap();
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    // Counted as its own kind of file.
    let text = d.metrics().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("edgeprov_phone_requests_total{file=\"ca\",status=\"200\"}")),
        "{text}"
    );
}
