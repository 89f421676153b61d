//! Certificate management against the real daemon with real TLS on loopback: the overview,
//! regenerating and installing the server certificate (PEM and PKCS#12) without a restart,
//! trusted device roots for phones' client certificates, and the expiry alarm.

mod common;

use base64::Engine;
use common::*;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const MAC: &str = "001122aabbcc";

/// A CA made in the test, valid for `days`.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str, days: i64) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(days);
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf signed by `ca`: a server certificate for `localhost`, or a client one with CN = MAC.
fn leaf(ca: &TestCa, server: bool) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = if server {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "prov.test");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p
    } else {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, MAC);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    };
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert, key)
}

/// A TLS connection to the phone listener trusting `ca_pem`; the serial (hex) of the
/// certificate the server presented, or the handshake error.
async fn presented_serial(d: &Daemon, ca_pem: &str) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(d.https)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(client_config(ca_pem, None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serial_of(&tls))
}

fn serial_of(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let der = &tls.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn certs(d: &Daemon) -> Value {
    let (s, v) = d.api("GET", "/certs", None).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// An overview without `days_left`, which ticks over within a second of a certificate's
/// creation (validity periods are whole days from the second it was made).
fn stable(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            m.remove("days_left");
            for x in m.values_mut() {
                *x = stable(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = stable(x.take());
            }
        }
        _ => {}
    }
    v
}

async fn expiry_alarms(d: &Daemon) -> Vec<Value> {
    let (s, v) = d
        .api("GET", "/alarms?kind=certificate_expiring", None)
        .await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn overview_shows_ca_and_server_with_expiry() {
    let d = Daemon::start();
    let v = certs(&d).await;
    assert_eq!(v["ca"]["is_ca"], true);
    assert!(v["ca"]["days_left"].as_i64().unwrap() > 3600, "{v}");
    assert_eq!(v["server"]["source"], "generated");
    assert_eq!(v["server"]["issuer"], v["ca"]["subject"]);
    assert!(v["server"]["days_left"].as_i64().unwrap() > 800, "{v}");
    assert!(
        v["server"]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("localhost"))
    );
    assert_eq!(v["server"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["admin"]["sha256"], v["server"]["sha256"]);
    assert_eq!(v["roots"], json!([]));
    let now = edgeprov::model::now_unix();
    assert!(v["server"]["not_before"].as_i64().unwrap() <= now);
    assert!(expiry_alarms(&d).await.is_empty());
    // The serial shown is the one the listener presents.
    let serial = presented_serial(&d, &d.ca_pem()).await.unwrap();
    assert_eq!(v["server"]["serial"], serial);
}

#[tokio::test]
async fn regenerate_applies_to_new_connections_and_spares_open_ones() {
    let d = Daemon::start();
    let ca = d.ca_pem();
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let old = tokio_rustls::TlsConnector::from(client_config(&ca, None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let old_serial = serial_of(&old);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(old))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = || get("/46xxsettings.txt", J179_UA);
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);

    let (s, v) = d.api("POST", "/certs/server/regenerate", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["source"], "generated");
    let new_serial = v["server"]["serial"].as_str().unwrap().to_string();
    assert_ne!(new_serial, old_serial);

    // A new connection sees the new certificate, without a restart.
    assert_eq!(presented_serial(&d, &ca).await.unwrap(), new_serial);
    // The open connection carries on.
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);
    // The admin API presents the new certificate too, and still works.
    assert_eq!(certs(&d).await["admin"]["serial"], new_serial);
    let (_, audit) = d.api("GET", "/audit?resource=/api/v1/certs", None).await;
    assert!(
        audit.to_string().contains("server certificate regenerated"),
        "{audit}"
    );
}

fn p12(chain: &[&[u8]], key: &KeyPair, password: &str) -> String {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let mut store = KeyStore::new();
    let certs = chain.iter().map(|c| Certificate::from_der(c).unwrap());
    let key = PrivateKey::from_der(&key.serialize_der()).unwrap();
    store.add_entry(
        "server",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(b"server".as_slice(), key, certs)),
    );
    let der = store.writer(password).write().unwrap();
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[tokio::test]
async fn installed_identities_are_checked_applied_at_once_and_survive_restart() {
    let d = Daemon::start();
    let own_ca = d.ca_pem();
    let site_ca = test_ca("site CA", 3650);
    let (cert, key) = leaf(&site_ca, true);
    let serial = |c: &rcgen::Certificate| {
        let (_, p) = x509_parser::parse_x509_certificate(c.der()).unwrap();
        p.raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };

    // A key that is not the certificate's: refused, nothing changes.
    let before = certs(&d).await;
    let other = KeyPair::generate().unwrap();
    let (s, v) = d
        .api(
            "PUT",
            "/certs/server",
            Some(json!({"pem": format!("{}{}", cert.pem(), other.serialize_pem())})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("does not belong"),
        "{v}"
    );
    assert_eq!(stable(certs(&d).await), stable(before));

    // PEM: chain and key.
    let pem = format!("{}{}{}", cert.pem(), site_ca.pem, key.serialize_pem());
    let (s, v) = d
        .api("PUT", "/certs/server", Some(json!({"pem": pem})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["source"], "installed");
    assert_eq!(v["server"]["chain_len"], 2);
    assert_eq!(v["server"]["serial"], serial(&cert));
    assert_eq!(
        presented_serial(&d, &site_ca.pem).await.unwrap(),
        serial(&cert)
    );
    assert!(presented_serial(&d, &own_ca).await.is_err());
    // The admin API keeps the generated certificate: the CLI trusts only the box's CA.
    assert_eq!(v["admin"]["issuer"], v["ca"]["subject"]);
    // `edgeprov doctor` checks the installed identity's validity too.
    let doctor = d.cli(&["doctor", "--json"]);
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.contains("installed.pem valid for"), "{doctor}");

    // PKCS#12: a wrong password is refused and changes nothing.
    let (cert2, key2) = leaf(&site_ca, true);
    let file = p12(
        &[cert2.der(), site_ca_der(&site_ca).as_slice()],
        &key2,
        "s3cret",
    );
    let installed = certs(&d).await;
    let (s, v) = d
        .api(
            "PUT",
            "/certs/server",
            Some(json!({"pkcs12": file, "password": "wrong"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    assert_eq!(stable(certs(&d).await), stable(installed));
    let (s, v) = d
        .api(
            "PUT",
            "/certs/server",
            Some(json!({"pkcs12": file, "password": "s3cret"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["serial"], serial(&cert2));
    assert_eq!(
        presented_serial(&d, &site_ca.pem).await.unwrap(),
        serial(&cert2)
    );
    let (_, audit) = d.api("GET", "/audit?resource=/api/v1/certs", None).await;
    assert!(audit.to_string().contains("server identity installed"));
    assert!(!audit.to_string().contains("PRIVATE KEY"));

    // It survives a restart (and is not replaced by the automatic reissue).
    let d = d.restart();
    let v = certs(&d).await;
    assert_eq!(v["server"]["source"], "installed");
    assert_eq!(v["server"]["serial"], serial(&cert2));
    assert_eq!(
        presented_serial(&d, &site_ca.pem).await.unwrap(),
        serial(&cert2)
    );

    // Regenerate returns to a generated certificate.
    let (s, v) = d.api("POST", "/certs/server/regenerate", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["source"], "generated");
    assert_eq!(
        presented_serial(&d, &own_ca).await.unwrap(),
        v["server"]["serial"].as_str().unwrap()
    );
}

fn site_ca_der(ca: &TestCa) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Whether a client certificate issued by `ca` proves the phone: it gets its own file (200),
/// where one that proves nothing is let through the handshake and gets 403. The phone must be
/// in the inventory with a secret.
async fn proves(d: &Daemon, ca: &TestCa) -> bool {
    let r = phone_with(d, ca)
        .await
        .expect("the handshake lets a certificate through, proved or not");
    match r.status {
        200 => true,
        403 => false,
        other => panic!("{other}: {}", r.text()),
    }
}

/// A request for the phone's own file with a client certificate issued by `ca`.
async fn phone_with(d: &Daemon, ca: &TestCa) -> Result<Resp, String> {
    let (cert, key) = leaf(ca, false);
    let id = Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{MAC}.txt"), J179_UA),
    )
    .await
}

#[tokio::test]
async fn trusted_roots_admit_and_refuse_phones_without_restart() {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": MAC,
        "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-root"},
    }))
    .await;
    let vendor = test_ca("vendor device root", 3650);
    assert!(!proves(&d, &vendor).await, "unknown root");

    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": vendor.pem})))
        .await;
    assert_eq!(s, 201, "{v}");
    let fp = v[0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(v[0]["origin"], "api");
    let r = phone_with(&d, &vendor).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("SET SIP_PASSWORD pw-root"),
        "{}",
        r.text()
    );
    let (_, roots) = d.api("GET", "/certs/roots", None).await;
    assert_eq!(roots.as_array().unwrap().len(), 1);

    // Not a CA certificate; the box's own CA cannot be removed.
    let (leaf_cert, _) = leaf(&vendor, true);
    let (s, v) = d
        .api(
            "POST",
            "/certs/roots",
            Some(json!({"pem": leaf_cert.pem()})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not a CA"), "{v}");
    let ca_fp = certs(&d).await["ca"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = d
        .api("DELETE", &format!("/certs/roots/{ca_fp}"), None)
        .await;
    assert_eq!(s, 409);

    let (s, v) = d
        .api(
            "DELETE",
            &format!("/certs/roots/{}", fp.to_uppercase()),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    assert!(!proves(&d, &vendor).await, "root removed");
    let (s, _) = d.api("DELETE", &format!("/certs/roots/{fp}"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_root_expiring_within_ninety_days_raises_an_alarm_until_removed() {
    let d = Daemon::start();
    let soon = test_ca("short-lived root", 30);
    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": soon.pem})))
        .await;
    assert_eq!(s, 201, "{v}");
    let fp = v[0]["sha256"].as_str().unwrap().to_string();
    let alarms = expiry_alarms(&d).await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], format!("root:{fp}"));
    assert_eq!(alarms[0]["severity"], "major");
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(
        ["expires in 29 days", "expires in 30 days"]
            .iter()
            .any(|m| message.contains(m)),
        "{message}"
    );
    // Within 14 days: critical.
    let sooner = test_ca("very short-lived root", 10);
    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": sooner.pem})))
        .await;
    assert_eq!(s, 201, "{v}");
    let fp2 = v[0]["sha256"].as_str().unwrap().to_string();
    let alarms = expiry_alarms(&d).await;
    let critical = alarms
        .iter()
        .find(|a| a["source"] == format!("root:{fp2}"))
        .unwrap();
    assert_eq!(critical["severity"], "critical");

    for fp in [fp, fp2] {
        let (s, _) = d.api("DELETE", &format!("/certs/roots/{fp}"), None).await;
        assert_eq!(s, 204);
    }
    assert!(expiry_alarms(&d).await.is_empty());
}

#[tokio::test]
async fn cli_shows_certificates_and_manages_roots() {
    let d = Daemon::start();
    let out = d.cli(&["cert", "show"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("CERTIFICATE"), "{text}");
    assert!(
        text.contains("server") && text.contains("generated"),
        "{text}"
    );

    let out = d.cli(&["cert", "show", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stable(v), stable(certs(&d).await));

    let vendor = test_ca("vendor device root", 3650);
    let file = d.dir.path().join("vendor.pem");
    std::fs::write(&file, &vendor.pem).unwrap();
    let out = d.cli(&["cert", "root", "add", file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = added[0]["sha256"].as_str().unwrap();
    let out = d.cli(&["cert", "root", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(fp));
    let out = d.cli(&["cert", "root", "remove", "--yes", fp]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(certs(&d).await["roots"], json!([]));
}

#[tokio::test]
async fn backup_and_restore_carry_the_installed_identity_and_roots() {
    let mut d = Daemon::start();
    let site_ca = test_ca("site CA", 3650);
    let (cert, key) = leaf(&site_ca, true);
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let (s, v) = d
        .api("PUT", "/certs/server", Some(json!({"pem": pem})))
        .await;
    assert_eq!(s, 200, "{v}");
    let vendor = test_ca("vendor device root", 3650);
    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": vendor.pem})))
        .await;
    assert_eq!(s, 201, "{v}");
    let before = certs(&d).await;

    let file = d.dir.path().join("box.backup");
    let out = d.cli(&["backup", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    let out = d.cli(&["restore", "--yes", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let d = d.restart();
    let after = certs(&d).await;
    assert_eq!(after["server"]["sha256"], before["server"]["sha256"]);
    assert_eq!(after["server"]["source"], "installed");
    assert_eq!(
        stable(after["roots"].clone()),
        stable(before["roots"].clone())
    );
    assert_eq!(
        presented_serial(&d, &site_ca.pem).await.unwrap(),
        before["server"]["serial"].as_str().unwrap()
    );
}

/// A connection opened while a root was trusted stops proving the device at its next request
/// once the root is removed, as a new handshake would be refused; a connection with the box's
/// own certificate carries on across the same change.
#[tokio::test]
async fn an_open_connection_stops_proving_the_device_once_its_root_is_removed() {
    use http_body_util::BodyExt;
    let d = Daemon::start();
    d.add_device(json!({
        "mac": MAC,
        "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-root"},
    }))
    .await;
    let vendor = test_ca("vendor device root", 3650);
    let (s, v) = d
        .api("POST", "/certs/roots", Some(json!({"pem": vendor.pem})))
        .await;
    assert_eq!(s, 201, "{v}");
    let fp = v[0]["sha256"].as_str().unwrap().to_string();

    let (cert, key) = leaf(&vendor, false);
    let by_vendor = Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let own = d.identity(MAC).await;
    let mut open = Vec::new();
    for id in [&by_vendor, &own] {
        let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), Some(id)))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        open.push(sender);
    }
    let fetch = async |sender: &mut hyper::client::conn::http1::SendRequest<_>| {
        let r = sender
            .send_request(get(&format!("/{MAC}.txt"), J179_UA))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    for sender in &mut open {
        let (status, body) = fetch(sender).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("pw-root"), "{body}");
    }

    let (s, v) = d.api("DELETE", &format!("/certs/roots/{fp}"), None).await;
    assert_eq!(s, 204, "{v}");
    let (status, body) = fetch(&mut open[0]).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("pw-root"), "{body}");
    let (status, body) = fetch(&mut open[1]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("pw-root"), "{body}");
}

/// A root file under `pki/roots/` whose name is not the fingerprint of what it holds (copied or
/// renamed by hand) is listed by what it holds, and removed by that name: before, removing it
/// looked for a file of that name and failed (500), and a backup failed the same way.
#[tokio::test]
async fn a_root_file_named_for_another_certificate_is_removed_by_the_listed_fingerprint() {
    let vendor = test_ca("vendor device root", 3650);
    let misnamed = format!("{}.crt", "0".repeat(64));
    let pem = vendor.pem.clone();
    let d = Daemon::start_prepared("", &[], |data| {
        let roots = data.join("pki/roots");
        std::fs::create_dir_all(&roots).unwrap();
        std::fs::write(roots.join(&misnamed), pem).unwrap();
    });
    d.add_device(json!({"mac": MAC, "model": "J179", "secrets": {"SIP_PASSWORD": "pw-root"}}))
        .await;
    let (_, roots) = d.api("GET", "/certs/roots", None).await;
    let roots = roots.as_array().unwrap().clone();
    assert_eq!(roots.len(), 1, "{roots:?}");
    let fp = roots[0]["sha256"].as_str().unwrap().to_string();
    assert_ne!(format!("{fp}.crt"), misnamed);
    assert!(proves(&d, &vendor).await, "trusted as it is");

    let file = d.dir.path().join("box.backup");
    let out = d.cli(&["backup", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (s, v) = d.api("DELETE", &format!("/certs/roots/{fp}"), None).await;
    assert_eq!(s, 204, "{v}");
    let (_, roots) = d.api("GET", "/certs/roots", None).await;
    assert_eq!(roots, json!([]));
    assert!(!d.data_dir().join("pki/roots").join(&misnamed).exists());
    assert!(!proves(&d, &vendor).await, "root removed");
}

/// `cert regenerate` drops an installed identity, whose key edgeprov does not keep: with one
/// installed it asks first, so without a terminal it is refused (exit 2, naming --yes) and the
/// identity stays; `--yes` drops it. With the generated certificate nothing is lost, and it
/// goes on without asking, as before.
#[tokio::test]
async fn regenerating_over_an_installed_identity_asks_first() {
    let d = Daemon::start();
    let out = d.cli(&["cert", "regenerate"]);
    assert!(out.status.success(), "{out:?}");

    let site_ca = test_ca("site CA", 3650);
    let (cert, key) = leaf(&site_ca, true);
    let pem = format!("{}{}{}", cert.pem(), site_ca.pem, key.serialize_pem());
    let (s, v) = d
        .api("PUT", "/certs/server", Some(json!({"pem": pem})))
        .await;
    assert_eq!(s, 200, "{v}");
    let installed = v["server"].clone();
    assert_eq!(installed["source"], "installed");

    let out = d.cli(&["cert", "regenerate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drop the installed server identity"), "{err}");
    assert!(err.contains(installed["serial"].as_str().unwrap()), "{err}");
    assert!(err.contains("add --yes"), "{err}");
    assert_eq!(certs(&d).await["server"], installed, "nothing changed");

    let out = d.cli(&["cert", "regenerate", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(certs(&d).await["server"]["source"], "generated");
}
