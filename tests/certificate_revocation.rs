//! Revoking a device certificate: a stolen copy stops proving the device from the next
//! handshake on, while the device's other certificates keep working; the revocation survives a
//! reload and a restart, is alarmed when presented, and is listed in the signed CRL.

mod common;

use common::*;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

const A: &str = "001122aabbcc";
const B: &str = "001122aabbcd";

fn serial_of(id: &Identity) -> String {
    let der = CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one phone with `id` gets for its own file: the status, or the TLS error.
/// What a phone with `id` gets for `mac`'s own file: the answer, or the TLS error.
async fn own_file(d: &Daemon, id: &Identity, mac: &str) -> Result<Resp, String> {
    send(
        d.https,
        client_config(&d.ca_pem(), Some(id)),
        get(&format!("/{mac}.txt"), J179_UA),
    )
    .await
}

async fn refused(d: &Daemon, id: &Identity) {
    let err = own_file(d, id, A)
        .await
        .err()
        .expect("a revoked certificate must not get an HTTP answer");
    assert!(err.to_lowercase().contains("revoked"), "{err}");
}

async fn served(d: &Daemon, id: &Identity) {
    let r = own_file(d, id, A).await.expect("served");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&format!("pw-{A}")), "{}", r.text());
}

async fn crl_serials(d: &Daemon) -> Vec<(String, Option<String>)> {
    let r = send_plain(d.http.unwrap(), get("/ca.crl", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (_, crl) = x509_parser::parse_x509_crl(&r.body).expect("a DER CRL");
    crl.iter_revoked_certificates()
        .map(|c| {
            (
                c.raw_serial().iter().map(|b| format!("{b:02x}")).collect(),
                c.reason_code().map(|(_, r)| r.to_string()),
            )
        })
        .collect()
}

/// A daemon with device A, whose own file carries its SIP password.
async fn daemon_with_a() -> Daemon {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": A,
        "model": "J179",
        "secrets": {"SIP_PASSWORD": format!("pw-{A}")},
    }))
    .await;
    d
}

async fn revoke(d: &Daemon, mac: &str, body: Value) -> (u16, Value) {
    d.api(
        "POST",
        &format!("/devices/{mac}/certificates/revoke"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_and_the_others_still_work() {
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
    let stolen = d.identity(A).await;
    let current = d.identity(A).await;
    let other = d.identity(B).await;
    served(&d, &stolen).await;
    served(&d, &current).await;

    // The box lists what it issued, newest first.
    let (s, list) = d
        .api("GET", &format!("/devices/{A}/certificates"), None)
        .await;
    assert_eq!(s, 200, "{list}");
    let serials: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials.len(), 2, "{list}");
    assert!(serials.contains(&serial_of(&stolen).as_str()), "{list}");
    assert!(serials.contains(&serial_of(&current).as_str()), "{list}");
    assert!(list[0].get("revoked").is_none(), "{list}");

    // Refused, and nothing revoked: another device's serial, an unknown serial, no choice,
    // two choices, a reason the box does not know, text that is not a serial.
    for (mac, body, status) in [
        (A, json!({"serial": serial_of(&other)}), 404),
        (A, json!({"serial": "0badc0de"}), 404),
        (A, json!({}), 400),
        (A, json!({"serial": serial_of(&stolen), "all": true}), 400),
        (
            A,
            json!({"serial": serial_of(&stolen), "reason": "bored"}),
            400,
        ),
        (A, json!({"serial": "not hex"}), 400),
    ] {
        let (s, v) = revoke(&d, mac, body.clone()).await;
        assert_eq!(s, status, "{body} -> {v}");
    }
    assert!(crl_serials(&d).await.is_empty());
    served(&d, &stolen).await;

    // By serial, as `openssl x509 -serial` prints it (upper case, with colons).
    let spelled = serial_of(&stolen)
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let (s, v) = revoke(
        &d,
        A,
        json!({"serial": spelled, "reason": "key_compromise"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["serial"], serial_of(&stolen));
    assert_eq!(v[0]["revoked"]["reason"], "key_compromise");

    refused(&d, &stolen).await;
    served(&d, &current).await;
    assert_eq!(own_file(&d, &other, B).await.unwrap().status, 200);
    // A phone without a certificate still gets the common files.
    let r = send(
        d.https,
        client_config(&d.ca_pem(), None),
        get("/46xxsettings.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    assert_eq!(
        crl_serials(&d).await,
        [(serial_of(&stolen), Some("KeyCompromise".to_string()))]
    );
    let (_, alarms) = d.api("GET", "/alarms?kind=revoked_certificate", None).await;
    let alarms = alarms.as_array().unwrap().clone();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], A);
    assert!(
        alarms[0]["message"]
            .as_str()
            .unwrap()
            .contains(&serial_of(&stolen)),
        "{alarms:?}"
    );
    let (_, audit) = d
        .api(
            "GET",
            &format!("/audit?resource=/api/v1/devices/{A}/certificates"),
            None,
        )
        .await;
    assert!(
        audit.to_string().contains("revoked (key_compromise)"),
        "{audit}"
    );

    // A reload rebuilds the TLS configuration: the revocation stays.
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;
    refused(&d, &stolen).await;

    // A certificate the box has no record of is revoked from its PEM, once checked to be the
    // CA's and the device's.
    let old = d.mint(A, |_| {});
    served(&d, &old).await;
    let (s, v) = revoke(&d, B, json!({"pem": old.cert_pem})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains(A), "{v}");
    let foreign = {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, A);
        p.self_signed(&key).unwrap().pem()
    };
    let (s, v) = revoke(&d, A, json!({"pem": foreign})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = revoke(&d, A, json!({"pem": old.cert_pem, "reason": "superseded"})).await;
    assert_eq!(s, 200, "{v}");
    refused(&d, &old).await;

    // One made with the CA's key outside the daemon, known only because A presented it: its
    // serial is in A's check-ins, and revoked by it.
    let elsewhere = d.mint(A, |_| {});
    served(&d, &elsewhere).await;
    let (_, history) = d
        .api("GET", &format!("/devices/{A}/checkins?limit=1"), None)
        .await;
    assert_eq!(
        history[0]["cert_serial"],
        serial_of(&elsewhere),
        "{history}"
    );
    let (s, v) = revoke(&d, B, json!({"serial": serial_of(&elsewhere)})).await;
    assert_eq!(s, 404, "B never presented it: {v}");
    let (s, v) = revoke(&d, A, json!({"serial": serial_of(&elsewhere)})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v[0].get("not_after").is_none(), "{v}");
    refused(&d, &elsewhere).await;

    // Survives a restart; then every remaining certificate of A, through the CLI.
    let d = d.restart();
    refused(&d, &stolen).await;
    served(&d, &current).await;
    let out = d.cli(&[
        "pki",
        "revoke",
        "--mac",
        A,
        "--all",
        "--reason",
        "superseded",
        "--yes",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = d.cli(&["pki", "list", "--mac", A]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("superseded").count(), 2, "{text}");
    assert!(text.contains("key_compromise"), "{text}");
    refused(&d, &current).await;
    let revoked: Vec<String> = crl_serials(&d).await.into_iter().map(|(s, _)| s).collect();
    for id in [&stolen, &current, &old, &elsewhere] {
        assert!(revoked.contains(&serial_of(id)), "{revoked:?}");
    }
    assert_eq!(own_file(&d, &other, B).await.unwrap().status, 200);
}

/// Revoking all of a device's certificates also refuses those the box has no record of and
/// never saw (made with the CA's key outside the daemon, or issued before issuance was
/// recorded): a stolen one need not be presented first, nor its PEM found. A certificate
/// issued afterwards is the device's new one and works; so does a later mint only when made
/// after the revocation. An administrator may do it for a MAC that is no longer in the
/// inventory.
#[tokio::test]
async fn revoking_all_refuses_certificates_the_box_never_saw() {
    let d = daemon_with_a().await;
    let issued = d.identity(A).await;
    let never_seen = d.mint(A, |_| {});
    let (s, v) = revoke(&d, A, json!({"all": true})).await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [serial_of(&issued)],
        "only the recorded one is listed: {v}"
    );
    refused(&d, &issued).await;
    refused(&d, &never_seen).await;

    let renewed = d.identity(A).await;
    served(&d, &renewed).await;
    let d = d.restart();
    refused(&d, &never_seen).await;
    served(&d, &renewed).await;

    const GONE: &str = "0011220000ff";
    let gone = d.mint(GONE, |_| {});
    let (s, v) = revoke(&d, GONE, json!({"all": true})).await;
    assert_eq!((s, v.clone()), (200, json!([])), "{v}");
    refused(&d, &gone).await;
    served(&d, &renewed).await;
}

/// A TLS session resumed from before the revocation carries the certificate without a new
/// handshake check: the phone listener asks again at accept, so the resumed connection proves
/// nothing and gets no secret.
#[tokio::test]
async fn a_session_resumed_from_before_the_revocation_proves_nothing() {
    let d = daemon_with_a().await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let id = d.identity(A).await;
        let tls = std::sync::Arc::new(client_config_with(&[version], &d.ca_pem(), Some(&id)));
        let fetch = || send(d.https, tls.clone(), get(&format!("/{A}.txt"), J179_UA));
        let first = fetch().await.unwrap();
        assert_eq!(first.status, 200, "{version:?}");
        assert!(first.text().contains(&format!("pw-{A}")));

        let (s, v) = revoke(&d, A, json!({"serial": serial_of(&id)})).await;
        assert_eq!(s, 200, "{v}");
        // Resumed (a full handshake would be refused at the handshake instead).
        let resumed = fetch()
            .await
            .unwrap_or_else(|e| panic!("{version:?}: the session was not resumed: {e}"));
        assert_eq!(resumed.status, 403, "{version:?}: {}", resumed.text());
        assert!(!resumed.text().contains(&format!("pw-{A}")));
    }
    let (_, alarms) = d.api("GET", "/alarms?kind=revoked_certificate", None).await;
    assert!(alarms[0]["count"].as_u64().unwrap() >= 2, "{alarms}");
}

/// A connection opened before the revocation stops proving the device at its next request.
#[tokio::test]
async fn an_open_connection_stops_proving_the_device_once_revoked() {
    use http_body_util::BodyExt;
    let d = daemon_with_a().await;
    let id = d.identity(A).await;
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), Some(&id)))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut fetch = async || {
        let r = sender
            .send_request(get(&format!("/{A}.txt"), J179_UA))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, body) = fetch().await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("pw-{A}")));

    let (s, v) = revoke(&d, A, json!({"serial": serial_of(&id)})).await;
    assert_eq!(s, 200, "{v}");
    let (status, body) = fetch().await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(&format!("pw-{A}")));
}

/// The alarm for expiring device certificates in the daemon: issuing one that runs out within
/// `pki.device_cert_warn_days` raises one `device_certs_expiring` alarm naming the device and
/// counting it; another device's counts into the same alarm; a new certificate for one device
/// and the revocation of the other's clear it. It survives a restart (checked at start).
#[tokio::test]
async fn device_certificates_expiring_raise_one_alarm_until_renewed_or_revoked() {
    let d = Daemon::start_with("[pki]\ndevice_cert_warn_days = 20\n");
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "model": "J179"})).await;
    }
    let issue = async |mac: &str, days: u32| {
        let (s, v) = d
            .api(
                "POST",
                &format!("/devices/{mac}/certificate"),
                Some(json!({ "days": days })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    };
    let alarm = async || -> Option<Value> {
        let (_, v) = d
            .api("GET", "/alarms?kind=device_certs_expiring", None)
            .await;
        v.as_array().unwrap().first().cloned()
    };
    issue(A, 3650).await;
    assert_eq!(alarm().await, None);
    issue(B, 10).await;
    let a = alarm().await.expect("raised at issue");
    assert_eq!(a["source"], "device_certs");
    assert_eq!(a["severity"], "warning");
    let message = a["message"].as_str().unwrap();
    assert!(
        message.starts_with("1 device certificate ") && message.contains(B),
        "{message}"
    );
    issue(A, 5).await;
    let message = alarm().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("1 device certificate ") && message.contains(B),
        "A's latest certificate is the ten-year one: {message}"
    );

    let mut d = d;
    d.stop();
    let d = d.restart();
    let (_, v) = d
        .api("GET", "/alarms?kind=device_certs_expiring", None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let (s, v) = d
        .api(
            "POST",
            &format!("/devices/{B}/certificates/revoke"),
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = d
        .api("GET", "/alarms?kind=device_certs_expiring", None)
        .await;
    assert_eq!(v, json!([]), "cleared once no certificate is due");
}

/// Every edgeprov box names its CA alike ("edgeprov device CA"), so a second box's CA trusted
/// as a device root (phones moved between sites, a restored backup of another site) issues
/// certificates naming this box's CA as their issuer. Which CA issued a certificate is decided
/// by its key, not its issuer's name: such a certificate whose serial is one this box revoked
/// is not refused, nor is it caught by a "revoke all" of its device, and its check-in records
/// no serial of this box's CA; this box's own revoked certificate is still refused.
#[tokio::test]
async fn a_namesake_cas_certificate_is_not_refused_by_our_revocations() {
    let d = daemon_with_a().await;
    let ours = d.identity(A).await;
    let (s, v) = revoke(&d, A, json!({"serial": serial_of(&ours)})).await;
    assert_eq!(s, 200, "{v}");

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "edgeprov");
    ca.distinguished_name
        .push(DnType::CommonName, "edgeprov device CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let our_ca = CertificateDer::from_pem_slice(d.ca_pem().as_bytes()).unwrap();
    let their_ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    let subject = |der: &CertificateDer<'_>| {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        c.subject().as_raw().to_vec()
    };
    assert_eq!(subject(&our_ca), subject(&their_ca), "the same name");
    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": ca_pem})))
        .await;
    assert_eq!(s, 201, "{v}");

    let namesake = rcgen::Issuer::new(ca, ca_key);
    let theirs = |serial: &[u8]| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, A);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        p.use_authority_key_identifier_extension = true;
        Identity {
            cert_pem: p.signed_by(&key, &namesake).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    };
    let ours_serial: Vec<u8> = (0..serial_of(&ours).len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&serial_of(&ours)[i..i + 2], 16).unwrap())
        .collect();
    let same_serial = theirs(&ours_serial);
    assert_eq!(serial_of(&same_serial), serial_of(&ours));
    served(&d, &same_serial).await;
    refused(&d, &ours).await;

    let (_, history) = d
        .api("GET", &format!("/devices/{A}/checkins?limit=1"), None)
        .await;
    assert_eq!(history[0]["proof"], "certificate", "{history}");
    assert!(
        history[0].get("cert_serial").is_none(),
        "not a certificate of this box's CA: {history}"
    );

    // "Revoke all" of A: this box's certificates of A before it, not the namesake's.
    let before = theirs(&[0x11, 0x22]);
    let (s, v) = revoke(&d, A, json!({"all": true})).await;
    assert_eq!(s, 200, "{v}");
    served(&d, &before).await;
    refused(
        &d,
        &d.mint(A, |p| p.not_before = time::OffsetDateTime::UNIX_EPOCH),
    )
    .await;
}
