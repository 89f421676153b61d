//! The main promise, end to end with real TLS: a file that carries a secret reaches only the
//! device that proves, with its client certificate, that it is that device.

mod common;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::json;

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

#[tokio::test]
async fn authorisation_matrix() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;

    // Own certificate: 200 with the secret.
    let own = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200);
    assert!(
        own.text().contains(&format!("SET SIP_PASSWORD pw-{A}")),
        "{}",
        own.text()
    );
    assert!(own.text().contains("SET SIPDOMAIN example.com"));
    assert_eq!(own.headers["cache-control"], "no-store");

    // Another device's certificate: 403, never the secret.
    let other = send(
        d.https,
        client_config(&ca, Some(&id_b)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(other.status, 403);
    assert!(!other.text().contains("pw-"));

    // No certificate over TLS: 403, no secret.
    let none = send(
        d.https,
        client_config(&ca, None),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(none.status, 403);
    assert!(!none.text().contains("pw-"));

    // Plain HTTP: 403, no secret (even claiming to be the phone in the User-Agent).
    let plain = send_plain(d.http.unwrap(), get(&format!("/{A}.txt"), J179_UA))
        .await
        .unwrap();
    assert_eq!(plain.status, 403);
    assert!(!plain.text().contains("pw-"));

    // Every refusal raised an alarm, deduplicated with a count.
    let again = send_plain(d.http.unwrap(), get(&format!("/{A}.txt"), J179_UA))
        .await
        .unwrap();
    assert_eq!(again.status, 403);
    let (status, alarms) = d.api("GET", "/alarms", None).await;
    assert_eq!(status, 200);
    let alarms = alarms.as_array().unwrap();
    let find = |kind: &str| {
        alarms
            .iter()
            .filter(|a| a["kind"] == kind)
            .collect::<Vec<_>>()
    };
    let mismatch = find("certificate_mismatch");
    assert_eq!(mismatch.len(), 1, "{alarms:?}");
    assert!(mismatch[0]["source"].as_str().unwrap().contains(B));
    let without = find("secret_without_proof");
    assert_eq!(
        without.len(),
        1,
        "one source (127.0.0.1), deduplicated: {alarms:?}"
    );
    assert_eq!(without[0]["count"], 3);
    assert!(without[0]["first"].as_i64() <= without[0]["last"].as_i64());

    // A file without secrets is served to anyone.
    d.api(
        "PATCH",
        &format!("/devices/{B}"),
        Some(json!({"secrets": {"SIP_PASSWORD": null}})),
    )
    .await;
    let open = send_plain(d.http.unwrap(), get(&format!("/{B}.txt"), J179_UA))
        .await
        .unwrap();
    assert_eq!(open.status, 200);
    assert!(!open.text().contains("SIP_PASSWORD"));
}

/// A client identity from a CA the box does not trust (named `ca_name`), its subject holding
/// `name` = `value`.
fn foreign_identity(ca_name: &str, name: DnType, value: &str) -> Identity {
    let foreign_key = KeyPair::generate().unwrap();
    let mut foreign = CertificateParams::new(Vec::<String>::new()).unwrap();
    foreign.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    foreign.distinguished_name.push(DnType::CommonName, ca_name);
    let foreign_issuer = Issuer::new(foreign, foreign_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(name, value);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Identity {
        cert_pem: leaf.signed_by(&leaf_key, &foreign_issuer).unwrap().pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// A certificate that names no device (Cisco's generic one, `S=ciscogeneric`; any without a
/// MAC) and that the box cannot verify proves nothing either, and is counted and explained
/// as one naming a device is: the metric is how an operator finds certificates that prove
/// nothing, and the alarm for a secret refused says why.
#[tokio::test]
async fn a_certificate_naming_no_device_that_proves_nothing_is_counted_and_explained() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let generic = foreign_identity("vendor CA", DnType::StateOrProvinceName, "ciscogeneric");

    let own = send(
        d.https,
        client_config(&ca, Some(&generic)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 403);
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let said: Vec<&str> = alarms
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "secret_without_proof")
        .filter_map(|a| a["message"].as_str())
        .collect();
    let why = "its client certificate proves nothing: it does not chain to the box's CA";
    assert!(said.iter().any(|m| m.contains(why)), "{said:?}");
    let text = d.metrics().await;
    assert_eq!(
        metric(&text, "edgeprov_phone_unproven_certificates_total"),
        1,
        "{text}"
    );
}

/// A certificate the box cannot verify, from a CA it does not trust or of its own CA but past
/// its end, proves nothing; but it is no reason to refuse the phone, which would then get
/// nothing at all. It gets what a phone without a certificate gets: the common files, and its
/// own file (with a secret) only with another proof. The alarm says why the certificate did
/// not prove the device, and a session resumed from such a handshake (TLS 1.3 ticket, TLS 1.2
/// session ID) proves nothing either. A revoked certificate is still refused at the handshake
/// (`certificate_revocation.rs`).
#[tokio::test]
async fn foreign_and_expired_certificates_prove_nothing_but_get_the_common_files() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();

    // A certificate from a CA the box does not trust, naming phone A.
    let rogue = foreign_identity("rogue CA", DnType::CommonName, A);
    // A certificate from the box's own CA that has expired.
    let expired = d.mint(A, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });

    for (id, why) in [
        (
            &rogue,
            "it does not chain to the box's CA or a trusted device root",
        ),
        (&expired, "it has expired"),
    ] {
        let common = send(
            d.https,
            client_config(&ca, Some(id)),
            get("/46xxsettings.txt", J179_UA),
        )
        .await
        .unwrap_or_else(|e| panic!("{why}: no HTTP answer: {e}"));
        assert_eq!(common.status, 200, "{why}");

        let own = send(
            d.https,
            client_config(&ca, Some(id)),
            get(&format!("/{A}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(own.status, 403, "{why}");
        assert!(!own.text().contains("pw-"), "{why}: {}", own.text());
        let (_, alarms) = d.api("GET", "/alarms", None).await;
        let said = alarms
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "secret_without_proof")
            .map(|a| a["message"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(
            said.iter()
                .any(|m| m.contains(&format!("its client certificate proves nothing: {why}"))),
            "{said:?}"
        );

        // Resumed sessions of that handshake prove nothing either.
        for tls in [
            client_config(&ca, Some(id)),
            tls12_session_id_client(&ca, id),
        ] {
            let (kind, first) = fetch(&d, tls.clone(), &format!("/{A}.txt")).await;
            assert_eq!(kind, rustls::HandshakeKind::Full);
            assert!(first.starts_with("HTTP/1.1 403"), "{why}: {first}");
            let (kind, resumed) = fetch(&d, tls, &format!("/{A}.txt")).await;
            assert_eq!(kind, rustls::HandshakeKind::Resumed, "{why}");
            assert!(resumed.starts_with("HTTP/1.1 403"), "{why}: {resumed}");
            assert!(!resumed.contains("pw-"), "{why}: {resumed}");
        }
    }

    // Each of those connections counted once: two certificates, six connections each.
    let text = d.metrics().await;
    assert_eq!(
        metric(&text, "edgeprov_phone_unproven_certificates_total"),
        12,
        "{text}"
    );

    // The daemon keeps serving the rightful phone its secret.
    let own = d.identity(A).await;
    let ok = send(
        d.https,
        client_config(&ca, Some(&own)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains(&format!("SET SIP_PASSWORD pw-{A}")));
}

#[tokio::test]
async fn mac_forms_resolve_to_one_device() {
    let d = Daemon::start();
    d.add_device(json!({"mac": "00:11:22:AA:BB:CC", "secrets": {"SIP_PASSWORD": "x1"}}))
        .await;
    // The same MAC in another form is the same device: a conflict.
    let (status, body) = d
        .api(
            "POST",
            "/devices",
            Some(json!({"mac": "00-11-22-aa-bb-cc"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    for form in [
        "001122AABBCC",
        "00-11-22-aa-bb-cc",
        "00:11:22:AA:BB:CC",
        "001122aabbcc",
    ] {
        let (status, v) = d.api("GET", &format!("/devices/{form}"), None).await;
        assert_eq!(status, 200, "{form}");
        assert_eq!(v["mac"], A);
    }
    let id = d.identity("00:11:22:aa:bb:cc").await;
    for path in [
        "/001122AABBCC.txt",
        "/00-11-22-aa-bb-cc.txt",
        "/001122aabbcc.txt",
    ] {
        let r = send(
            d.https,
            client_config(&d.ca_pem(), Some(&id)),
            get(path, J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains("SET SIP_PASSWORD x1"));
    }
}

#[tokio::test]
async fn etag_and_check_in() {
    let d = daemon_with_two_phones().await;
    let id = d.identity(A).await;
    let tls = client_config(&d.ca_pem(), Some(&id));
    let first = send(d.https, tls.clone(), get(&format!("/{A}.txt"), J179_UA))
        .await
        .unwrap();
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    let mut req = get(&format!("/{A}.txt"), J179_UA);
    req.headers_mut()
        .insert("if-none-match", etag.parse().unwrap());
    let second = send(d.https, tls.clone(), req).await.unwrap();
    assert_eq!(second.status, 304);
    assert!(second.body.is_empty());

    // The check-in is recorded off the request path; it shows up shortly after.
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, v) = d.api("GET", &format!("/devices/{A}"), None).await;
        if !v["checkin"].is_null() {
            seen = v["checkin"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen["firmware"], "4.1.3.0.6", "{seen}");
    assert_eq!(seen["peer_ip"], "127.0.0.1");
    assert_eq!(seen["user_agent"], J179_UA);
    assert_eq!(seen["proof"], "certificate", "{seen}");

    // A later claim of A's MAC is in A's history, but does not replace what A proved.
    let spoofed = J179_UA.replace("4.1.3.0.6", "9.9.9.9");
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &spoofed))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (_, history) = d
        .api("GET", &format!("/devices/{A}/checkins?limit=1"), None)
        .await;
    assert_eq!(history[0]["proof"], "claim", "{history}");
    let (_, device) = d.api("GET", &format!("/devices/{A}"), None).await;
    assert_eq!(device["checkin"]["proof"], "certificate", "{device}");
    assert_eq!(device["checkin"]["firmware"], "4.1.3.0.6", "{device}");

    // Naming a MAC proves nothing: the check-in says it was only claimed.
    let claims_b = J179_UA.replace(A, B);
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &claims_b))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (_, history) = d
        .api("GET", &format!("/devices/{B}/checkins?limit=1"), None)
        .await;
    assert_eq!(history[0]["file"], "46xxsettings.txt", "{history}");
    assert_eq!(history[0]["proof"], "claim", "{history}");
    assert_eq!(history[0]["user_agent"], claims_b, "{history}");
}

fn digest_header(nonce: &str, user: &str, password: &str, uri: &str) -> String {
    use md5::Digest;
    let h = |s: String| {
        md5::Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h(format!("{user}:edgeprov:{password}"));
    let ha2 = h(format!("GET:{uri}"));
    let resp = h(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    format!(
        r#"Digest username="{user}", realm="edgeprov", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", response="{resp}""#
    )
}

#[tokio::test]
async fn http_credentials_are_an_opt_in_proof_with_lockout() {
    let d = daemon_with_two_phones().await;
    let http = d.http.unwrap();
    let path = format!("/{A}.txt");

    // Not opted in: credentials are not even offered, so there is no challenge and no 401.
    let r = send_plain(http, get(&path, J179_UA)).await.unwrap();
    assert_eq!(r.status, 403);
    assert!(r.headers.get("www-authenticate").is_none());

    d.api(
        "PATCH",
        &format!("/devices/{A}"),
        Some(json!({"allow_http_auth": true, "http_credential": {"username": "j179a", "password": "right"}})),
    )
    .await;
    let challenge = send_plain(http, get(&path, J179_UA)).await.unwrap();
    assert_eq!(challenge.status, 401);
    assert!(challenge.headers.get("www-authenticate").is_some());
    let offers: Vec<String> = challenge
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        offers.iter().all(|o| !o.starts_with("Basic")),
        "no Basic on plain HTTP: {offers:?}"
    );
    let md5 = offers.iter().find(|o| o.contains("MD5")).unwrap();
    let nonce = challenge_nonce(md5);

    // Right Digest credentials over plain HTTP: the secret file.
    let mut ok = get(&path, J179_UA);
    ok.headers_mut().insert(
        "authorization",
        digest_header(nonce, "j179a", "right", &path)
            .parse()
            .unwrap(),
    );
    let r = send_plain(http, ok).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains(&format!("pw-{A}")));
    let (_, history) = d
        .api("GET", &format!("/devices/{A}/checkins?limit=1"), None)
        .await;
    assert_eq!(history[0]["file"], format!("{A}.txt"), "{history}");
    assert_eq!(history[0]["proof"], "credential", "{history}");

    // The same proof computed for a file without a secret, replayed for the secret one while
    // its nonce is fresh, opens nothing.
    let mut replayed = get(&path, J179_UA);
    replayed.headers_mut().insert(
        "authorization",
        digest_header(nonce, "j179a", "right", "/46xxsettings.txt")
            .parse()
            .unwrap(),
    );
    let r = send_plain(http, replayed).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());

    // Basic over plain HTTP is never accepted, even when right.
    let mut basic = get(&path, J179_UA);
    basic
        .headers_mut()
        .insert("authorization", "Basic ajE3OWE6cmlnaHQ=".parse().unwrap());
    let r = send_plain(http, basic).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());

    // Basic inside TLS is.
    let mut basic = get(&path, J179_UA);
    basic
        .headers_mut()
        .insert("authorization", "Basic ajE3OWE6cmlnaHQ=".parse().unwrap());
    let r = send(d.https, client_config(&d.ca_pem(), None), basic)
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // Three wrong attempts lock the credentials (auth_max_failures = 3): then even the right
    // ones are refused, and an alarm says so.
    for _ in 0..3 {
        let mut bad = get(&path, J179_UA);
        bad.headers_mut().insert(
            "authorization",
            digest_header(nonce, "j179a", "guess", &path)
                .parse()
                .unwrap(),
        );
        let r = send_plain(http, bad).await.unwrap();
        assert_eq!(r.status, 401);
        assert!(r.headers.get("www-authenticate").is_some());
    }
    let mut right = get(&path, J179_UA);
    right.headers_mut().insert(
        "authorization",
        digest_header(nonce, "j179a", "right", &path)
            .parse()
            .unwrap(),
    );
    let r = send_plain(http, right).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());
    assert!(!r.text().contains("pw-"));
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    assert!(
        alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "http_auth_lockout"),
        "{alarms}"
    );
}

#[tokio::test]
async fn alarms_filter_and_clear_audited() {
    let d = daemon_with_two_phones().await;
    let id_b = d.identity(B).await;
    let other = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id_b)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(other.status, 403);
    let plain = send_plain(d.http.unwrap(), get(&format!("/{A}.txt"), J179_UA))
        .await
        .unwrap();
    assert_eq!(plain.status, 403);

    let (_, major) = d.api("GET", "/alarms?severity=major", None).await;
    let major = major.as_array().unwrap();
    assert_eq!(major.len(), 1);
    assert_eq!(major[0]["kind"], "certificate_mismatch");
    let (_, found) = d.api("GET", "/alarms?q=WITHOUT%20PROOF", None).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (status, _) = d.api("GET", "/alarms?severity=loud", None).await;
    assert_eq!(status, 400);
    // Sorted by severity, most severe first; ascending turns it round.
    let (_, by) = d.api("GET", "/alarms?sort=severity", None).await;
    let kinds: Vec<&str> = by
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["severity"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"major"), "{by}");
    let (_, asc) = d.api("GET", "/alarms?sort=severity&order=asc", None).await;
    assert_eq!(
        asc.as_array().unwrap().last(),
        by.as_array().unwrap().first()
    );
    let (status, _) = d.api("GET", "/alarms?sort=colour", None).await;
    assert_eq!(status, 400);

    let source = major[0]["source"].clone();
    let (status, _) = d
        .api(
            "POST",
            "/alarms/clear",
            Some(json!({"kind": "certificate_mismatch", "source": source})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, left) = d.api("GET", "/alarms", None).await;
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] != "certificate_mismatch")
    );
    let (status, _) = d
        .api(
            "POST",
            "/alarms/clear",
            Some(json!({"kind": "certificate_mismatch", "source": source})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, audit) = d
        .api("GET", "/audit?resource=/api/v1/alarms/clear", None)
        .await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == 204)
        .unwrap();
    assert!(entry["summary"].as_str().unwrap().contains("cleared"));
    assert_eq!(entry["changes"]["count"]["before"], 1);
}

#[tokio::test]
async fn metrics_count_requests_and_handshakes() {
    let d = daemon_with_two_phones().await;
    let id = d.identity(A).await;
    for _ in 0..2 {
        let r = send(
            d.https,
            client_config(&d.ca_pem(), Some(&id)),
            get(&format!("/{A}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let _ = send_plain(d.http.unwrap(), get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    let text = d.metrics().await;
    assert!(
        text.contains("edgeprov_phone_requests_total{file=\"device\",status=\"200\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("edgeprov_phone_requests_total{file=\"common\",status=\"200\"} 1\n"),
        "{text}"
    );
    // The two phone handshakes only: the admin API's (issuing the certificate, this scrape)
    // are counted apart.
    assert!(
        text.contains("edgeprov_tls_handshakes_total{listener=\"phone\",result=\"ok\"} 2\n"),
        "{text}"
    );
    let admin = "edgeprov_tls_handshakes_total{listener=\"admin\",result=\"ok\"} ";
    assert!(
        text.lines()
            .any(|l| l.strip_prefix(admin).is_some_and(|n| n != "0")),
        "{text}"
    );
    assert!(text.contains("\nedgeprov_devices 2\n"), "{text}");
}

/// Requests are labelled by the file they resolved to, not by their raw path: every spelling
/// of a file (percent-encoded, doubled slashes, under a directory, in upper case) counts as
/// that file's kind, a device's own file as `device` whatever MAC it names, and a firmware
/// image as `firmware`. No path and no MAC ever becomes a label.
#[tokio::test]
async fn metrics_label_requests_by_the_file_they_resolve_to() {
    let d = daemon_with_two_phones().await;
    let (status, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(
                json!({"file": "j179.bin", "models": ["J179"], "version": "1.0",
                "sha256": "a".repeat(64), "size": 1,
                "urls": ["http://127.0.0.1:9/j179.bin"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let http = d.http.unwrap();
    for path in [
        "/46xx%73ettings.txt",
        "//46xxsettings.txt",
        "/provisioning/46xxsettings.txt",
        "/46XXSETTINGS.TXT",
        "/Provisioning//46xXsettings.txt",
    ] {
        let r = send_plain(http, get(path, J179_UA)).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let id = d.identity(A).await;
    let upper = A.to_uppercase();
    for path in [format!("/{A}.txt"), format!("/provisioning/{upper}.TXT")] {
        let r = send(
            d.https,
            client_config(&d.ca_pem(), Some(&id)),
            get(&path, J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let _ = send_plain(http, get("/firmware/j179.bin", J179_UA))
        .await
        .unwrap();
    let text = d.metrics().await;
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("edgeprov_phone_requests_total{"))
        .collect();
    assert!(
        requests.contains(&"edgeprov_phone_requests_total{file=\"common\",status=\"200\"} 5"),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"edgeprov_phone_requests_total{file=\"device\",status=\"200\"} 2"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.starts_with("edgeprov_phone_requests_total{file=\"firmware\",")),
        "{requests:?}"
    );
    for l in &requests {
        let label = l["edgeprov_phone_requests_total{file=\"".len()..]
            .split('"')
            .next()
            .unwrap();
        assert!(
            ["device", "common", "firmware", "crl", "ca", "other"].contains(&label),
            "{l}"
        );
    }
}

/// A TLS 1.2 client that resumes by session ID only (no session tickets), as some phone stacks
/// do, with `id`'s certificate.
fn tls12_session_id_client(ca_pem: &str, id: &Identity) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::client::{Resumption, Tls12Resumption};
    let mut config = client_config_with(&[&rustls::version::TLS12], ca_pem, Some(id));
    config.resumption =
        Resumption::in_memory_sessions(8).tls12_resumption(Tls12Resumption::SessionIdOnly);
    std::sync::Arc::new(config)
}

/// Fetches `path` over a new connection; returns how the handshake went and the response head
/// and body.
async fn fetch(
    d: &Daemon,
    tls: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
) -> (rustls::HandshakeKind, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let kind = stream.get_ref().1.handshake_kind().unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {J179_UA}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    (kind, String::from_utf8_lossy(&response).into_owned())
}

/// A session resumed by TLS 1.2 session ID still carries the certificate its full handshake
/// proved: the phone gets its own secret on the resumed connection, another phone's resumed
/// session still gets 403.
#[tokio::test]
async fn a_resumed_tls12_session_still_proves_its_device() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let a = tls12_session_id_client(&ca, &d.identity(A).await);
    let b = tls12_session_id_client(&ca, &d.identity(B).await);

    let (kind, first) = fetch(&d, a.clone(), &format!("/{A}.txt")).await;
    assert_eq!(kind, rustls::HandshakeKind::Full);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (kind, resumed) = fetch(&d, a, &format!("/{A}.txt")).await;
    assert_eq!(kind, rustls::HandshakeKind::Resumed);
    assert!(resumed.starts_with("HTTP/1.1 200"), "{resumed}");
    assert!(
        resumed.contains(&format!("SET SIP_PASSWORD pw-{A}")),
        "{resumed}"
    );

    fetch(&d, b.clone(), &format!("/{B}.txt")).await;
    let (kind, other) = fetch(&d, b, &format!("/{A}.txt")).await;
    assert_eq!(kind, rustls::HandshakeKind::Resumed);
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    assert!(!other.contains("pw-"), "{other}");
}

/// A resumed TLS session carries the certificate of its full handshake without the validity
/// check a new handshake makes: once that certificate has expired, the resumed connection
/// proves nothing and gets no secret, in TLS 1.3 (tickets) and TLS 1.2 (session IDs).
#[tokio::test]
async fn a_session_resumed_after_its_certificate_expired_proves_nothing() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let expiring = d.mint(A, |p| {
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::seconds(3);
    });
    let clients = [
        client_config(&ca, Some(&expiring)),
        tls12_session_id_client(&ca, &expiring),
    ];
    for tls in &clients {
        let (kind, first) = fetch(&d, tls.clone(), &format!("/{A}.txt")).await;
        assert_eq!(kind, rustls::HandshakeKind::Full);
        assert!(
            first.contains(&format!("SET SIP_PASSWORD pw-{A}")),
            "{first}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;

    // A new handshake lets the expired certificate through, proving nothing...
    let fresh = send(
        d.https,
        client_config(&ca, Some(&expiring)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(fresh.status, 403);
    assert!(!fresh.text().contains("pw-"));
    // ...and a session resumed from before the expiry proves nothing either.
    for tls in clients {
        let (kind, resumed) = fetch(&d, tls, &format!("/{A}.txt")).await;
        assert_eq!(kind, rustls::HandshakeKind::Resumed);
        assert!(resumed.starts_with("HTTP/1.1 403"), "{resumed}");
        assert!(!resumed.contains("pw-"), "{resumed}");
    }
}

/// Basic credentials on plain HTTP are refused unread, but the phone has sent its password in
/// clear: nothing told the operator, who kept a credential anyone on the segment may now hold.
/// An alarm names the device and says to change it; the file still goes to nobody.
#[tokio::test]
async fn basic_credentials_sent_in_clear_raise_an_alarm() {
    let d = daemon_with_two_phones().await;
    d.api(
        "PATCH",
        &format!("/devices/{A}"),
        Some(json!({"allow_http_auth": true, "http_credential": {"username": "j179a", "password": "right"}})),
    )
    .await;
    let mut basic = get(&format!("/{A}.txt"), J179_UA);
    basic
        .headers_mut()
        .insert("authorization", "Basic ajE3OWE6cmlnaHQ=".parse().unwrap());
    let r = send_plain(d.http.unwrap(), basic).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());
    assert!(!r.text().contains("pw-"));
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let in_clear = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "http_auth_failed")
        .unwrap_or_else(|| panic!("no http_auth_failed alarm: {alarms}"));
    let message = in_clear["message"].as_str().unwrap();
    assert!(message.contains(A), "{message}");
    assert!(message.contains("plain HTTP"), "{message}");
}
