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

/// One parameter tells every phone to trust the box: `tls.trusted_ca = "edgeprov-ca.crt"`
/// becomes Avaya's `TRUSTCERTS` file name (fetched from the settings file's server) and
/// Yealink's `static.trusted_certificates.url`, a URL of this box under the address the phone
/// reached it at; both lead to the CA certificate.
#[tokio::test]
async fn one_parameter_points_avaya_and_yealink_phones_at_it() {
    let d = Daemon::start();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(serde_json::json!({"params": {"tls.trusted_ca": "edgeprov-ca.crt"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let plain = d.http.unwrap();

    let avaya = send_plain(plain, get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    assert!(
        avaya.text().contains("SET TRUSTCERTS edgeprov-ca.crt"),
        "{}",
        avaya.text()
    );

    let yealink_ua = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:a9:37";
    let mut ask = get("/y000000000066.cfg", yealink_ua);
    ask.headers_mut().insert(
        "host",
        format!("localhost:{}", plain.port()).parse().unwrap(),
    );
    let family = send_plain(plain, ask).await.unwrap();
    assert_eq!(family.status, 200);
    let url = family
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("static.trusted_certificates.url = "))
        .unwrap_or_else(|| panic!("no trusted certificates URL in\n{}", family.text()))
        .to_string();
    let path = url
        .strip_prefix(&format!("http://localhost:{}", plain.port()))
        .unwrap_or_else(|| panic!("{url} is not this box as the phone reached it"));
    let ca = send_plain(plain, get(path, yealink_ua)).await.unwrap();
    assert_eq!(ca.status, 200, "{url}");
    assert_eq!(ca.text(), d.ca_pem());
}
