//! SCEP enrolment against the real daemon with a real third-party client (micromdm's
//! `scepclient`, Debian package `scep`): a phone of the inventory with the challenge gets a
//! certificate from the box's CA, recorded like `pki issue-device` ones and audited, and with it
//! fetches its own secret file over mutual TLS; a wrong challenge, a MAC not in the inventory and
//! a second enrolment of an enrolled phone are refused, alarmed and change nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

const A: &str = "001122aabbcc";
const UNKNOWN: &str = "001122aabbff";
const CHALLENGE: &str = "enrol-Me-2026";

/// Whether `scepclient` can be run. Missing, the test says so and skips, except under CI
/// (`CI=true`), where `.ci/run` installs it and its absence is a failure.
fn scepclient_available() -> bool {
    if Command::new("scepclient").arg("-version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "scepclient is not installed (apt-get install scep): CI must run the SCEP enrolment test"
    );
    eprintln!("scepclient not installed (apt-get install scep): skipping the SCEP enrolment test");
    false
}

/// A daemon with SCEP on, its challenge in a file only its owner reads.
fn daemon() -> (Daemon, tempfile::TempDir) {
    daemon_with("")
}

/// [`daemon`] with `extra` TOML after the `[scep]` table.
fn daemon_with(extra: &str) -> (Daemon, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let challenge = secrets.path().join("scep-challenge");
    std::fs::write(&challenge, format!("{CHALLENGE}\n")).unwrap();
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o600)).unwrap();
    // micromdm's client encrypts with single DES whatever the server advertises.
    let d = Daemon::start_with(&format!(
        "[scep]\nenabled = true\nchallenge_file = \"{}\"\nallow_single_des = true\n{extra}",
        challenge.display()
    ));
    (d, secrets)
}

/// SHA-256 of the RA certificate the daemon serves, as `scepclient -ca-fingerprint` takes it:
/// the client then encrypts to the RA alone (its default encrypts to every certificate
/// `GetCACert` gives, the CA's ECDSA one included, which RSA key transport cannot reach).
fn ra_fingerprint(d: &Daemon) -> String {
    let pem = std::fs::read_to_string(d.data_dir().join("pki/scep-ra.crt")).unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `scepclient` for `cn` with `challenge`, its key and certificate under `dir`.
fn enrol(d: &Daemon, dir: &Path, cn: &str, challenge: &str, fingerprint: &str) -> Output {
    std::fs::create_dir_all(dir).unwrap();
    let url = format!("http://{}/scep", d.http.unwrap());
    let mut child = Command::new("scepclient")
        .args(["-server-url", &url, "-challenge", challenge, "-cn", cn])
        .arg("-private-key")
        .arg(dir.join("key.pem"))
        .arg("-certificate")
        .arg(dir.join("cert.pem"))
        .args(["-ca-fingerprint", fingerprint])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a client that hangs fails the test instead of holding it.
    if wait_timeout(&mut child, std::time::Duration::from_secs(60)).is_none() {
        let _ = child.kill();
        panic!("scepclient did not finish within 60 s");
    }
    child.wait_with_output().unwrap()
}

async fn certificates_of(d: &Daemon, mac: &str) -> Vec<Value> {
    let (status, v) = d
        .api("GET", &format!("/devices/{mac}/certificates"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

async fn scep_alarms(d: &Daemon) -> Vec<Value> {
    let (status, v) = d.api("GET", "/alarms?kind=scep_refused", None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn serial_of(cert_pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_phone_enrols_with_scepclient_and_proves_itself_with_the_certificate() {
    if !scepclient_available() {
        return;
    }
    let (d, _secrets) = daemon();
    d.add_device(json!({
        "mac": A,
        "model": "J179",
        "params": {"SIPDOMAIN": "example.com"},
        "secrets": {"SIP_PASSWORD": "pw-a"},
    }))
    .await;
    let http = d.http.unwrap();

    let caps = send_plain(http, get("/scep?operation=GetCACaps", J179_UA))
        .await
        .unwrap();
    assert_eq!(caps.status, 200);
    assert!(
        caps.text().lines().any(|l| l == "POSTPKIOperation"),
        "{}",
        caps.text()
    );
    let cacert = send_plain(
        http,
        get("/cgi-bin/pkiclient.exe?operation=GetCACert", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(cacert.status, 200);
    assert_eq!(
        cacert.headers["content-type"],
        "application/x-x509-ca-ra-cert"
    );
    let ca_der = CertificateDer::from_pem_slice(d.ca_pem().as_bytes()).unwrap();
    let holds = |der: &[u8]| cacert.body.windows(der.len()).any(|w| w == der);
    assert!(holds(&ca_der), "GetCACert holds the CA certificate");
    let fingerprint = ra_fingerprint(&d);

    // The settings file tells J100 phones where to enrol: the host they reached the box at,
    // fetched over plain HTTP, and its HTTPS listener (GetCACert over HTTP could be swapped).
    let mut req = get("/46xxsettings.txt", J179_UA);
    req.headers_mut()
        .insert("host", http.to_string().parse().unwrap());
    let settings = send_plain(http, req).await.unwrap();
    assert_eq!(settings.status, 200);
    let text = settings.text();
    assert!(
        text.contains(&format!(
            "SET MYCERTURL https://127.0.0.1:{}/scep\n",
            d.https.port()
        )),
        "{text}"
    );
    assert!(
        text.contains("SET MYCERTCN $MACADDR\n") && text.contains("SET MYCERTKEYLEN 2048\n"),
        "{text}"
    );

    let work = d.dir.path().join("phones");
    let phone = work.join("a");
    let out = enrol(&d, &phone, A, CHALLENGE, &fingerprint);
    assert!(
        out.status.success(),
        "scepclient failed: {out:?}\n{}",
        d.log()
    );
    let cert_pem = std::fs::read_to_string(phone.join("cert.pem")).unwrap();
    let key_pem = std::fs::read_to_string(phone.join("key.pem")).unwrap();

    // The certificate is the box's device profile for the phone's own key.
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, [A]);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(format!("{:?}", san.value).contains(&format!("urn:dev:mac:{A}")));
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );

    // Recorded like `pki issue-device` ones, audited, counted.
    let certs = certificates_of(&d, A).await;
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["serial"], serial_of(&cert_pem));
    let listed = d.cli(&["pki", "list", "--mac", A]);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&serial_of(&cert_pem)),
        "{listed:?}"
    );
    let (status, audit) = d.api("GET", "/audit?who=scep", None).await;
    assert_eq!(status, 200);
    let entry = &audit.as_array().unwrap()[0];
    assert!(
        entry["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("issued to {A} by SCEP enrolment")),
        "{entry}"
    );
    assert_eq!(entry["source"], "127.0.0.1");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 1\n"),
        "{metrics}"
    );

    // The phone proves itself with it: its own file, with its secret, over mutual TLS.
    let id = Identity { cert_pem, key_pem };
    let own = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200, "{}", own.text());
    assert!(
        own.text().contains("SET SIP_PASSWORD pw-a"),
        "{}",
        own.text()
    );
    assert!(scep_alarms(&d).await.is_empty());

    // Refused: a wrong challenge, a MAC not in the inventory, a second enrolment of the
    // enrolled phone with the right challenge. Each is alarmed, issues nothing.
    for (dir, cn, challenge, reason) in [
        ("wrong", A, "guess", "wrong challenge password"),
        (
            "unknown",
            UNKNOWN,
            CHALLENGE,
            "not a device of the inventory",
        ),
        ("again", A, CHALLENGE, "already has a valid certificate"),
    ] {
        let out = enrol(&d, &work.join(dir), cn, challenge, &fingerprint);
        assert!(!out.status.success(), "{dir}: granted: {out:?}");
        assert!(!work.join(dir).join("cert.pem").exists(), "{dir}");
        let alarms = scep_alarms(&d).await;
        assert!(
            alarms
                .iter()
                .any(|a| a["message"].as_str().unwrap().contains(reason)),
            "{dir}: {alarms:?}"
        );
    }
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    assert!(certificates_of(&d, UNKNOWN).await.is_empty());
    let alarms = scep_alarms(&d).await;
    assert!(
        alarms
            .iter()
            .any(|a| a["source"] == format!("127.0.0.1 as {UNKNOWN}")),
        "{alarms:?}"
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"refused\"} 3\n"),
        "{metrics}"
    );

    // The phone's answer was lost: it sends its request again, with the same key and (as
    // scepclient derives it from the key) the same transactionID. It gets the certificate it
    // was granted, not a refusal as an enrolled device: nothing new is issued or alarmed.
    let lost = work.join("lost");
    std::fs::create_dir_all(&lost).unwrap();
    std::fs::copy(phone.join("key.pem"), lost.join("key.pem")).unwrap();
    let out = enrol(&d, &lost, A, CHALLENGE, &fingerprint);
    assert!(out.status.success(), "retransmission: {out:?}\n{}", d.log());
    let again = std::fs::read_to_string(lost.join("cert.pem")).unwrap();
    assert_eq!(serial_of(&again), serial_of(&id.cert_pem));
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"refused\"} 3\n")
            && metrics.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 1\n"),
        "{metrics}"
    );

    // The enrolled phone renews with the certificate it has (scepclient sends a RenewalReq
    // signed with it when its certificate file exists): no challenge needed.
    let out = enrol(&d, &phone, A, "", &fingerprint);
    assert!(out.status.success(), "renewal: {out:?}\n{}", d.log());
    assert_eq!(certificates_of(&d, A).await.len(), 2);
    let renewed = std::fs::read_to_string(phone.join("cert.pem")).unwrap();
    assert_ne!(serial_of(&renewed), serial_of(&id.cert_pem));
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"renewed\"} 1\n"),
        "{metrics}"
    );

    // Once the operator revokes the certificates, the phone may enrol again.
    let (status, v) = d
        .api(
            "POST",
            &format!("/devices/{A}/certificates/revoke"),
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let out = enrol(&d, &work.join("after-revoke"), A, CHALLENGE, &fingerprint);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(certificates_of(&d, A).await.len(), 3);
}

/// While `[scep]` is off (the default), the SCEP paths are no endpoint at all.
#[tokio::test]
async fn scep_is_not_served_unless_enabled() {
    let d = Daemon::start();
    let r = send_plain(d.http.unwrap(), get("/scep?operation=GetCACaps", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(!d.data_dir().join("pki/scep-ra.crt").exists());
    let settings = send_plain(d.http.unwrap(), get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    assert!(!settings.text().contains("MYCERT"), "{}", settings.text());
}

/// A challenge file every user may read stops the start, naming the file.
#[test]
fn a_challenge_file_every_user_may_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let challenge: PathBuf = dir.path().join("challenge");
    std::fs::write(&challenge, "x\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("edgeprov.toml");
    std::fs::write(
        &config,
        base_config(
            &dir.path().join("data"),
            &format!(
                "[scep]\nenabled = true\nchallenge_file = \"{}\"\n",
                challenge.display()
            ),
        ),
    )
    .unwrap();
    let (ok, log) = run_serve(&config);
    assert!(!ok, "{log}");
    assert!(
        log.contains("scep.challenge_file") && log.contains("every user"),
        "{log}"
    );
}

/// A stand-in SCEP server on loopback that answers GetCACaps and GetCACert with the daemon's
/// answers and keeps the first PKIOperation body it is sent (answering 500), so the test can
/// send scepclient's real message to the daemon the way Avaya phones do: by GET, base64 in the
/// URL. One request per connection (`Connection: close`), at most `limit` connections.
async fn capture_server(
    caps: Vec<u8>,
    cacert: Vec<u8>,
    limit: usize,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Option<Vec<u8>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..limit {
            let (mut s, _) = listener.accept().await.ok()?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                assert!(buf.len() < 64 * 1024, "request head too long");
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let (status, ctype, body): (&str, &str, &[u8]) = if head.contains("GetCACaps") {
                ("200 OK", "text/plain", &caps)
            } else if head.contains("GetCACert") {
                ("200 OK", "application/x-x509-ca-ra-cert", &cacert)
            } else {
                let _ = s
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return Some(buf[head_end..head_end + length].to_vec());
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.ok()?;
            s.write_all(body).await.ok()?;
        }
        None
    });
    (addr, task)
}

/// Avaya phones send PKIOperation by GET, the message base64 in the URL: the message a real
/// client made, sent that way (with its `+`, `/` and `=` percent-encoded, and once more raw),
/// is granted and answered as a CertRep.
#[tokio::test]
async fn a_pki_operation_by_get_is_granted() {
    use base64::Engine;
    if !scepclient_available() {
        return;
    }
    // Certificates of 5 days, under the 30 days the expiry alarm warns at.
    let (d, _secrets) = daemon_with("cert_days = 5\n[pki]\ndevice_cert_warn_days = 30\n");
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    let http = d.http.unwrap();
    let caps = send_plain(http, get("/scep?operation=GetCACaps", J179_UA))
        .await
        .unwrap();
    let cacert = send_plain(http, get("/scep?operation=GetCACert", J179_UA))
        .await
        .unwrap();
    let fingerprint = ra_fingerprint(&d);
    let (addr, captured) = capture_server(caps.body, cacert.body, 8).await;

    let dir = d.dir.path().join("phone");
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{addr}/scep");
    let client = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            Command::new("scepclient")
                .args(["-server-url", &url, "-challenge", CHALLENGE, "-cn", A])
                .arg("-private-key")
                .arg(dir.join("key.pem"))
                .args(["-ca-fingerprint", &fingerprint])
                .output()
                .unwrap()
        }
    });
    let message = tokio::time::timeout(std::time::Duration::from_secs(60), captured)
        .await
        .expect("scepclient sent no PKIOperation within 60 s")
        .unwrap()
        .expect("the PKIOperation body");
    let _ = client.await;
    assert!(message.len() > 500, "{} bytes", message.len());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&message);

    let encoded: String = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let r = send_plain(
        http,
        get(
            &format!("/scep?operation=PKIOperation&message={encoded}"),
            J179_UA,
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/x-pki-message");
    let certs = certificates_of(&d, A).await;
    assert_eq!(certs.len(), 1, "{certs:?}");
    let (_, audit) = d.api("GET", "/audit?who=scep", None).await;
    assert_eq!(audit[0]["method"], "GET", "{audit}");
    // The expiry alarm sees the certificate, as one `pki issue-device` made.
    let life = certs[0]["not_after"].as_i64().unwrap() - certs[0]["issued_at"].as_i64().unwrap();
    assert!(
        (5 * 86_400 - 60..=5 * 86_400 + 60).contains(&life),
        "{certs:?}"
    );
    let (_, alarms) = d
        .api("GET", "/alarms?kind=device_certs_expiring", None)
        .await;
    let alarms = alarms.as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert!(
        alarms[0]["message"].as_str().unwrap().contains(A),
        "{alarms:?}"
    );

    // The same message again, raw in the URL as some phones send it: read the same way
    // (`+` is not a space), and, being a retransmission (same transactionID, same key),
    // answered SUCCESS with the certificate already issued rather than refused.
    let raw = b64.replace('=', "%3D");
    let r = send_plain(
        http,
        get(
            &format!("/scep?operation=PKIOperation&message={raw}"),
            J179_UA,
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let status = edgeprov::scep::read_header(&r.body)
        .unwrap()
        .printable_attribute(&der::asn1::ObjectIdentifier::new_unwrap(
            "2.16.840.1.113733.1.9.3",
        ));
    assert_eq!(status.as_deref(), Some("0"), "pkiStatus SUCCESS");
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    let alarms = scep_alarms(&d).await;
    assert!(alarms.is_empty(), "{alarms:?}");
}

fn post(path: &str, body: Vec<u8>) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap()
}

/// What is not a SCEP message is answered 400 (a body over the bound 413), alarmed, and counted
/// against its source: past `scep.refusals_per_minute` the source gets 429 unread. Other
/// methods and unknown operations are refused, and nothing is issued.
#[tokio::test]
async fn hostile_requests_are_refused_and_limited_per_source() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let challenge = secrets.path().join("c");
    std::fs::write(&challenge, "x-challenge\n").unwrap();
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start_with(&format!(
        "[scep]\nenabled = true\nchallenge_file = \"{}\"\nrefusals_per_minute = 3\n",
        challenge.display()
    ));
    let http = d.http.unwrap();
    let op = "/scep?operation=PKIOperation";

    let r = send_plain(http, post(op, vec![0x30; 70 * 1024]))
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    let r = send_plain(http, post(op, b"\x30\x82\xff\xff garbage".to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not a SCEP pkiMessage"), "{}", r.text());
    let r = send_plain(
        http,
        get(
            "/scep?operation=PKIOperation&message=%%%not-base64",
            J179_UA,
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // Three refusals this minute: the next is not read.
    let r = send_plain(http, post(op, b"anything".to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.headers.contains_key("retry-after"));
    // Capabilities and the CA certificates stay available to everyone, over HTTPS too (a
    // phone enrolling has no client certificate).
    let r = send_plain(http, get("/scep?operation=GetCACaps", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = send(
        d.https,
        client_config(&d.ca_pem(), None),
        get("/cgi-bin/pkiclient.exe?operation=GetCACert", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/x-x509-ca-ra-cert");
    // One alarm for the source, counting its refusals, with the latest one's reason.
    let alarms = scep_alarms(&d).await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["count"], 3);
    assert!(
        alarms[0]["message"]
            .as_str()
            .unwrap()
            .contains("the message is not base64"),
        "{alarms:?}"
    );

    let r = send_plain(http, get("/scep?operation=Nonsense", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let put = http::Request::builder()
        .method("PUT")
        .uri(op)
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = send_plain(http, put).await.unwrap();
    assert_eq!(r.status, 405);

    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"refused\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"rate_limited\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 0\n"),
        "{metrics}"
    );
}

/// Phones of one MAC enrolling at the same moment (a cloned phone, a replayed request): one
/// certificate is issued, the others are refused as for an enrolled device. The check that
/// the device has none and the recording of the one issued are one step.
#[tokio::test]
async fn simultaneous_enrolments_of_one_device_issue_one_certificate() {
    if !scepclient_available() {
        return;
    }
    let (d, _secrets) = daemon();
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    let http = d.http.unwrap();
    let r = send_plain(http, get("/scep?operation=GetCACert", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let fingerprint = ra_fingerprint(&d);
    let work = d.dir.path().join("clones");
    // Keys first (scepclient makes one when missing), so the requests leave together.
    let mut runs = Vec::new();
    for i in 0..8 {
        let dir = work.join(format!("c{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let pkcs1 = pem::encode(&pem::Pem::new(
            "RSA PRIVATE KEY",
            rsa_pkcs1_of_pkcs8(&key.serialize_der()),
        ));
        std::fs::write(dir.join("key.pem"), pkcs1).unwrap();
        runs.push(dir);
    }
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|dir| s.spawn(|| enrol(&d, dir, A, CHALLENGE, &fingerprint)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(granted, 1, "{outs:#?}");
    assert_eq!(certificates_of(&d, A).await.len(), 1);
}

/// The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (scepclient reads PKCS#1 PEM).
fn rsa_pkcs1_of_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    use x509_parser::der_parser::der::parse_der;
    let (_, info) = parse_der(pkcs8).unwrap();
    let items = info.as_sequence().unwrap();
    items[2].as_slice().unwrap().to_vec()
}

/// A PKIOperation body trickled in more slowly than `phone.header_timeout_ms` (1 s in the
/// tests' config) is answered 408 rather than holding its connection.
#[tokio::test]
async fn a_body_that_comes_too_slowly_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (d, _secrets) = daemon();
    let mut s = tokio::net::TcpStream::connect(d.http.unwrap())
        .await
        .unwrap();
    s.write_all(
        b"POST /scep?operation=PKIOperation HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1000\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut chunk = [0u8; 1024];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

/// After `scep.open_until` the challenge enrols no one: a device of the inventory with the
/// right challenge is refused "enrolment closed", and a device marked inactive is refused as
/// such; nothing is issued.
#[tokio::test]
async fn after_open_until_the_challenge_enrols_no_one() {
    if !scepclient_available() {
        return;
    }
    let (d, _secrets) = daemon_with("open_until = \"2020-01-01T00:00:00Z\"\n");
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    d.add_device(json!({"mac": UNKNOWN, "model": "J179", "state": "inactive"}))
        .await;
    let cacert = send_plain(d.http.unwrap(), get("/scep?operation=GetCACert", J179_UA))
        .await
        .unwrap();
    assert_eq!(cacert.status, 200);
    let fingerprint = ra_fingerprint(&d);
    let work = d.dir.path().join("phones");
    for (mac, reason) in [(A, "enrolment closed"), (UNKNOWN, "marked inactive")] {
        let out = enrol(&d, &work.join(mac), mac, CHALLENGE, &fingerprint);
        assert!(!out.status.success(), "{mac}: granted: {out:?}");
        assert!(certificates_of(&d, mac).await.is_empty());
        let alarms = scep_alarms(&d).await;
        assert!(
            alarms
                .iter()
                .any(|a| a["message"].as_str().unwrap().contains(reason)),
            "{mac}: {alarms:?}"
        );
    }
}

/// SCEP's attribute OIDs, as a client names them.
const PKI_STATUS: &str = "2.16.840.1.113733.1.9.3";
const FAIL_INFO: &str = "2.16.840.1.113733.1.9.4";

/// A SCEP client built in the test from the library's own message parts (as its unit tests
/// build theirs): an RSA key, the self-signed certificate that signs its messages, and the
/// certificate requests for that key. Unlike `scepclient` it can send a CertPoll.
struct TestClient {
    key: rcgen::KeyPair,
    cert: Vec<u8>,
    /// The key as the RA holds its own: it signs the client's messages and opens the answers
    /// encrypted to it.
    rsa: edgeprov::scep::RsaKey,
}

impl TestClient {
    fn new() -> TestClient {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "SCEP SIGNER");
        let cert = params.self_signed(&key).unwrap().der().to_vec();
        TestClient {
            rsa: edgeprov::scep::RsaKey::new(cert.clone(), &key.serialize_der()).unwrap(),
            cert,
            key,
        }
    }

    /// A PKCS#10 request for the client's key naming `cn`, with the challenge.
    fn csr(&self, cn: &str, challenge: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let mut value = vec![0x13, challenge.len() as u8];
        value.extend_from_slice(challenge.as_bytes());
        let mut set = vec![0x31, value.len() as u8];
        set.extend(value);
        let attr = rcgen::Attribute {
            oid: &[1, 2, 840, 113549, 1, 9, 7],
            values: set,
        };
        params
            .serialize_request_with_attributes(&self.key, vec![attr])
            .unwrap()
            .der()
            .to_vec()
    }

    /// A pkiMessage of `kind` for transaction `tx` carrying `content`, encrypted to the RA.
    fn message(&self, ra_cert: &[u8], kind: &str, tx: &str, content: &[u8]) -> Vec<u8> {
        use der::Decode;
        use edgeprov::scep::reply::{any, attribute, enveloped, printable, signed};
        let oid = der::asn1::ObjectIdentifier::new_unwrap;
        let ra = x509_cert::Certificate::from_der(ra_cert).unwrap();
        let envelope = enveloped(content, edgeprov::scep::ContentCipher::Aes128Cbc, &ra).unwrap();
        let nonce = der::asn1::OctetString::new(*b"poll-nonce-16-by").unwrap();
        let attrs = vec![
            attribute(oid("2.16.840.1.113733.1.9.2"), printable(kind).unwrap()).unwrap(),
            attribute(oid("2.16.840.1.113733.1.9.7"), printable(tx).unwrap()).unwrap(),
            attribute(oid("2.16.840.1.113733.1.9.5"), any(&nonce).unwrap()).unwrap(),
        ];
        signed(&envelope, attrs, &self.cert, &|m| {
            edgeprov::scep::RaKey::sign_sha256(&self.rsa, m)
        })
        .unwrap()
    }

    fn pkcs_req(&self, ra_cert: &[u8], tx: &str, cn: &str) -> Vec<u8> {
        self.message(ra_cert, "19", tx, &self.csr(cn, CHALLENGE))
    }

    /// A CertPoll for transaction `tx` of the request whose subject is `CN=cn`.
    fn cert_poll(&self, ra_cert: &[u8], tx: &str, cn: &str) -> Vec<u8> {
        use std::str::FromStr;
        let content = der::Encode::to_der(&edgeprov::scep::poll::IssuerAndSubject {
            issuer: x509_cert::name::Name::from_str("CN=edgeprov device CA").unwrap(),
            subject: x509_cert::name::Name::from_str(&format!("CN={cn}")).unwrap(),
        })
        .unwrap();
        self.message(ra_cert, "20", tx, &content)
    }

    /// The certificate a CertRep SUCCESS carries (its signature checked by
    /// [`pki_operation`]), opened with the client's key as a client does: the signed content
    /// is an envelope to the client's certificate, holding a certificates-only SignedData.
    fn issued(&self, rep: &[u8]) -> Vec<u8> {
        use cms::content_info::ContentInfo;
        use cms::enveloped_data::{EnvelopedData, RecipientInfo};
        use der::Decode;
        let outer: cms::signed_data::SignedData = ContentInfo::from_der(rep)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let econtent: der::asn1::OctetString = outer
            .encap_content_info
            .econtent
            .unwrap()
            .decode_as()
            .unwrap();
        let env: EnvelopedData = ContentInfo::from_der(econtent.as_bytes())
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let Some(RecipientInfo::Ktri(ktri)) = env.recip_infos.0.iter().next() else {
            panic!("no key transport recipient: {:?}", env.recip_infos)
        };
        let key = edgeprov::scep::RaKey::decrypt_key(&self.rsa, ktri.enc_key.as_bytes()).unwrap();
        let eci = &env.encrypted_content;
        let (cipher, iv) =
            edgeprov::scep::ContentCipher::from_algorithm(&eci.content_enc_alg).unwrap();
        let encrypted = eci.encrypted_content.as_ref().unwrap().as_bytes();
        let content = cipher.decrypt(&key, &iv, encrypted).unwrap();
        let ci = ContentInfo::from_der(&content).unwrap();
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        match sd.certificates.unwrap().0.into_vec().remove(0) {
            cms::cert::CertificateChoices::Certificate(c) => der::Encode::to_der(&c).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// The client's identity on the mutual-TLS listener with certificate `cert` (DER).
    fn identity(&self, cert: &[u8]) -> Identity {
        Identity {
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec())),
            key_pem: self.key.serialize_pem(),
        }
    }
}

/// The RA certificate (DER) the daemon serves, which requests are encrypted to: made at the
/// first GetCACert, as a client asks for it.
async fn ra_cert(d: &Daemon) -> Vec<u8> {
    let r = send_plain(d.http.unwrap(), get("/scep?operation=GetCACert", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let pem = std::fs::read_to_string(d.data_dir().join("pki/scep-ra.crt")).unwrap();
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Sends a pkiMessage by POST; answers the CertRep, whose RA signature verified, with its
/// pkiStatus and failInfo.
async fn pki_operation(d: &Daemon, message: Vec<u8>) -> (Vec<u8>, String, Option<String>) {
    let r = send_plain(
        d.http.unwrap(),
        post("/scep?operation=PKIOperation", message),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), d.log());
    assert_eq!(r.headers["content-type"], "application/x-pki-message");
    let signed = edgeprov::scep::read_header(&r.body).unwrap();
    signed.verify_signature().unwrap();
    assert_eq!(
        signed.header.signer_der,
        ra_cert(d).await,
        "signed by the RA"
    );
    let attr = |oid| signed.printable_attribute(&der::asn1::ObjectIdentifier::new_unwrap(oid));
    let (status, fail) = (attr(PKI_STATUS).unwrap(), attr(FAIL_INFO));
    (r.body.clone(), status, fail)
}

async fn alarms_of(d: &Daemon, kind: &str) -> Vec<Value> {
    let (status, v) = d.api("GET", &format!("/alarms?kind={kind}"), None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

async fn pending_list(d: &Daemon) -> Vec<Value> {
    let (status, v) = d.api("GET", "/scep/pending", None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

const PENDING: &str = "3";
const SUCCESS: &str = "0";
const FAILURE: &str = "2";

/// With `approval = "operator"` a request that passes every check is answered PENDING, issues
/// nothing and raises a `scep_pending` alarm; a poll before approval stays PENDING, another
/// key's request for the device is refused, a poll for an unknown transaction is answered
/// badCertId. Once the admin API approves it, the poll (and the request sent again) gets the
/// certificate, recorded and audited as an immediate grant is, and with it the phone fetches
/// its own secret file over mutual TLS.
#[tokio::test]
async fn with_operator_approval_an_enrolment_waits_for_the_operator() {
    let (d, _secrets) = daemon_with("approval = \"operator\"\n");
    d.add_device(json!({
        "mac": A, "model": "J179", "site": "hq",
        "secrets": {"SIP_PASSWORD": "pw-a"},
    }))
    .await;
    let ra = ra_cert(&d).await;
    let phone = TestClient::new();

    let (_, status, fail) = pki_operation(&d, phone.pkcs_req(&ra, "tx-a", A)).await;
    assert_eq!((status.as_str(), fail), (PENDING, None));
    assert!(certificates_of(&d, A).await.is_empty(), "nothing issued");
    let held = pending_list(&d).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (&held[0]["mac"], &held[0]["status"], &held[0]["source"]),
        (&json!(A), &json!("pending"), &json!("127.0.0.1"))
    );
    assert_eq!(
        (&held[0]["site"], &held[0]["model"], &held[0]["key"]),
        (&json!("hq"), &json!("J179"), &json!("RSA 2048"))
    );
    let alarms = alarms_of(&d, "scep_pending").await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], format!("127.0.0.1 as {A}"));
    assert!(
        alarms[0]["message"].as_str().unwrap().contains(A),
        "{alarms:?}"
    );

    // Polled before the approval: still pending, and counted once.
    let (_, status, _) = pki_operation(&d, phone.cert_poll(&ra, "tx-a", A)).await;
    assert_eq!(status, PENDING);
    let (_, status, _) = pki_operation(&d, phone.pkcs_req(&ra, "tx-a", A)).await;
    assert_eq!(status, PENDING, "the request sent again is a poll");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"pending\"} 1\n")
            && metrics.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 0\n"),
        "{metrics}"
    );
    // Someone else with the challenge cannot put his key in its place, nor poll for it.
    let intruder = TestClient::new();
    let (_, status, fail) = pki_operation(&d, intruder.pkcs_req(&ra, "tx-b", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("2")));
    let (_, status, fail) = pki_operation(&d, intruder.cert_poll(&ra, "tx-a", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("4")));
    let (_, status, fail) = pki_operation(&d, phone.cert_poll(&ra, "tx-unknown", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("4")));
    assert_eq!(
        pending_list(&d).await[0]["key_sha256"],
        held[0]["key_sha256"]
    );

    let checked = Some(json!({ "key_sha256": held[0]["key_sha256"] }));
    let (status, approved) = d
        .api(
            "POST",
            &format!("/scep/pending/{A}/approve"),
            checked.clone(),
        )
        .await;
    assert_eq!(status, 200, "{approved}\n{}", d.log());
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], "admin");
    // The alarm asked for this decision; it is made, so it is gone.
    let alarms = alarms_of(&d, "scep_pending").await;
    assert!(alarms.is_empty(), "{alarms:?}");
    let certs = certificates_of(&d, A).await;
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["serial"], approved["serial"]);
    let (_, audit) = d.api("GET", "/audit?who=scep", None).await;
    let summary = audit[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("issued to {A} by SCEP enrolment"))
            && summary.contains("approved by admin"),
        "{audit}"
    );
    assert_eq!(audit[0]["source"], "127.0.0.1", "the phone's address");
    let (_, audit) = d
        .api("GET", "/audit?resource=/api/v1/scep/pending", None)
        .await;
    assert!(
        audit[0]["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("SCEP enrolment of {A} approved")),
        "{audit}"
    );
    // Approved once: a second approval is a conflict and issues nothing.
    let (status, v) = d
        .api("POST", &format!("/scep/pending/{A}/approve"), checked)
        .await;
    assert_eq!(status, 409, "{v}");

    let (rep, status, _) = pki_operation(&d, phone.cert_poll(&ra, "tx-a", A)).await;
    assert_eq!(status, SUCCESS);
    let cert = phone.issued(&rep);
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let (_, signer) = x509_parser::parse_x509_certificate(&phone.cert).unwrap();
    assert_eq!(
        parsed.public_key().raw,
        signer.public_key().raw,
        "issued for the key of the request"
    );
    let serial: String = parsed
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(json!(serial), certs[0]["serial"]);
    // The request sent again gets the same certificate, not a refusal as an enrolled device.
    let (rep, status, _) = pki_operation(&d, phone.pkcs_req(&ra, "tx-a", A)).await;
    assert_eq!(status, SUCCESS);
    assert_eq!(phone.issued(&rep), cert);

    let own = send(
        d.https,
        client_config(&d.ca_pem(), Some(&phone.identity(&cert))),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200, "{}", own.text());
    assert!(
        own.text().contains("SET SIP_PASSWORD pw-a"),
        "{}",
        own.text()
    );
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 1\n")
            && metrics.contains("edgeprov_scep_enrolments_total{result=\"pending\"} 1\n"),
        "{metrics}"
    );

    // Its certificate revoked, a poll is refused, and the same request sent again is a new
    // one, held for the operator again, as the revocation meant the device to enrol again.
    let (status, v) = d
        .api(
            "POST",
            &format!("/devices/{A}/certificates/revoke"),
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, status, fail) = pki_operation(&d, phone.cert_poll(&ra, "tx-a", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("2")));
    let (_, status, _) = pki_operation(&d, phone.pkcs_req(&ra, "tx-a", A)).await;
    assert_eq!(status, PENDING);
    assert_eq!(pending_list(&d).await[0]["status"], "pending");
}

/// A CertPoll is looked up under the device its subject names: someone with the challenge
/// who copies a phone's transactionID (in clear in the message) into a request of his own, for
/// a device that sorts before the phone's, neither makes the phone's polls fail nor gets an
/// answer to his own polls naming the phone. An approval names the key the operator checked:
/// another key is a conflict naming both and issues nothing, none is refused, and the CLI
/// shows the key's first digits and approves with them.
#[tokio::test]
async fn a_poll_and_an_approval_are_for_the_request_they_name() {
    const LOW: &str = "001122000001";
    let (d, _secrets) = daemon_with("approval = \"operator\"\n");
    for mac in [A, LOW] {
        d.add_device(json!({"mac": mac, "model": "J179", "site": "hq"}))
            .await;
    }
    let ra = ra_cert(&d).await;
    let (phone, intruder) = (TestClient::new(), TestClient::new());
    let (_, status, _) = pki_operation(&d, phone.pkcs_req(&ra, "tx-phone", A)).await;
    assert_eq!(status, PENDING);
    let (_, status, _) = pki_operation(&d, intruder.pkcs_req(&ra, "tx-phone", LOW)).await;
    assert_eq!(status, PENDING, "held for its own device, whatever its ID");
    let (_, status, fail) = pki_operation(&d, phone.cert_poll(&ra, "tx-phone", A)).await;
    assert_eq!(
        (status.as_str(), fail),
        (PENDING, None),
        "the phone's poll finds its own request"
    );
    for cn in [A, "softphone"] {
        let (_, status, fail) = pki_operation(&d, intruder.cert_poll(&ra, "tx-phone", cn)).await;
        assert_eq!(
            (status.as_str(), fail.as_deref()),
            (FAILURE, Some("4")),
            "{cn}"
        );
    }

    let listed = pending_list(&d).await;
    let key_of = |mac: &str| {
        let held = listed.iter().find(|p| p["mac"] == mac).unwrap();
        held["key_sha256"].as_str().unwrap().to_string()
    };
    let (phone_key, intruder_key) = (key_of(A), key_of(LOW));
    assert_eq!(phone_key.len(), 64);
    let path = format!("/scep/pending/{A}/approve");
    let (status, v) = d.api("POST", &path, None).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = d
        .api("POST", &path, Some(json!({"key_sha256": "12zz"})))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("key_sha256"), "{v}");
    let (status, v) = d
        .api("POST", &path, Some(json!({"key_sha256": intruder_key})))
        .await;
    assert_eq!(status, 409, "{v}");
    let said = v.to_string();
    assert!(
        said.contains(&phone_key) && said.contains(&intruder_key),
        "{said}"
    );
    assert!(certificates_of(&d, A).await.is_empty(), "nothing issued");

    let alarms = alarms_of(&d, "scep_pending").await;
    let alarm = alarms
        .iter()
        .find(|a| a["source"] == format!("127.0.0.1 as {A}"));
    let message = alarm.unwrap()["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("--mac {A} --key {}", &phone_key[..16])),
        "{message}"
    );
    let out = d.cli(&["pki", "pending"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&phone_key[..16]) && !table.contains(&phone_key),
        "{table}"
    );
    let out = d.cli(&["pki", "approve", "--mac", A]);
    assert!(!out.status.success(), "no key named: {out:?}");
    let out = d.cli(&["pki", "approve", "--mac", A, "--key", &intruder_key[..16]]);
    assert!(!out.status.success(), "another key: {out:?}");
    assert!(certificates_of(&d, A).await.is_empty(), "nothing issued");
    let out = d.cli(&["pki", "approve", "--mac", A, "--key", &phone_key[..16]]);
    assert!(out.status.success(), "{out:?}");
    let (rep, status, _) = pki_operation(&d, phone.cert_poll(&ra, "tx-phone", A)).await;
    assert_eq!(status, SUCCESS);
    let cert = phone.issued(&rep);
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let (_, signer) = x509_parser::parse_x509_certificate(&phone.cert).unwrap();
    assert_eq!(parsed.public_key().raw, signer.public_key().raw);
    let (_, status, _) = pki_operation(&d, intruder.cert_poll(&ra, "tx-phone", LOW)).await;
    assert_eq!(status, PENDING, "the other request is left waiting");
}

/// Held requests are kept in the store: after a restart a poll is still answered PENDING.
/// One rejected (CLI) is answered FAILURE badRequest and the phone may ask again; approving a
/// site (CLI) grants the requests of its devices only; deleting a device removes its request.
#[tokio::test]
async fn held_requests_survive_a_restart_and_are_rejected_or_approved_by_site() {
    const B: &str = "001122aabbdd";
    const C: &str = "001122aabbee";
    let (d, secrets) = daemon_with("approval = \"operator\"\n");
    d.add_device(json!({"mac": A, "model": "J179", "site": "hq"}))
        .await;
    d.add_device(json!({"mac": B, "model": "J179", "site": "hq"}))
        .await;
    d.add_device(json!({"mac": C, "model": "J179", "site": "branch"}))
        .await;
    let ra = ra_cert(&d).await;
    let phones: Vec<TestClient> = (0..3).map(|_| TestClient::new()).collect();
    for (phone, mac) in phones.iter().zip([A, B, C]) {
        let (_, status, _) =
            pki_operation(&d, phone.pkcs_req(&ra, &format!("tx-{mac}"), mac)).await;
        assert_eq!(status, PENDING, "{mac}");
    }

    let d = d.restart();
    let _secrets = secrets;
    assert_eq!(ra_cert(&d).await, ra);
    let (_, status, _) = pki_operation(&d, phones[0].cert_poll(&ra, &format!("tx-{A}"), A)).await;
    assert_eq!(status, PENDING, "held across the restart");
    assert_eq!(pending_list(&d).await.len(), 3);

    let out = d.cli(&["pki", "reject", "--mac", B]);
    assert!(out.status.success(), "{out:?}");
    // Decided: B's alarm is cleared, A's and C's still wait.
    let pending_sources: Vec<Value> = alarms_of(&d, "scep_pending")
        .await
        .iter()
        .map(|a| a["source"].clone())
        .collect();
    assert_eq!(pending_sources.len(), 2, "{pending_sources:?}");
    assert!(
        !pending_sources.contains(&json!(format!("127.0.0.1 as {B}"))),
        "{pending_sources:?}"
    );
    let (_, status, fail) =
        pki_operation(&d, phones[1].cert_poll(&ra, &format!("tx-{B}"), B)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("2")));
    let refusals = alarms_of(&d, "scep_refused").await;
    assert!(
        refusals
            .iter()
            .any(|a| a["message"].as_str().unwrap().contains("rejected by admin")),
        "{refusals:?}"
    );
    // Rejected, it holds no place: the phone's next request (a new key) is held at once.
    let again = TestClient::new();
    let (_, status, _) = pki_operation(&d, again.pkcs_req(&ra, "tx-again", B)).await;
    assert_eq!(status, PENDING);
    let out = d.cli(&["pki", "reject", "--mac", B]);
    assert!(out.status.success(), "{out:?}");

    // An operator of the branch sees its requests only (an approval is the administrator's:
    // tested below).
    let bob = &d.operator_token("bob", &["branch"]).await;
    let (status, seen) = d
        .api_with_token("GET", "/scep/pending", None, Some(bob))
        .await;
    assert_eq!(status, 200, "{seen}");
    let macs: Vec<&Value> = seen.as_array().unwrap().iter().map(|p| &p["mac"]).collect();
    assert_eq!(macs, [&json!(C)], "{seen}");
    for path in [
        format!("/scep/pending/{A}/approve"),
        format!("/scep/pending/{A}/reject"),
    ] {
        let (status, v) = d.api_with_token("POST", &path, None, Some(bob)).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    let (status, v) = d
        .api_with_token(
            "POST",
            "/scep/pending/approve",
            Some(json!({"site": "hq"})),
            Some(bob),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(certificates_of(&d, A).await.is_empty());

    let held = pending_list(&d).await;
    let a_key = held.iter().find(|p| p["mac"] == A).unwrap()["key_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let out = d.cli(&["pki", "approve", "--site", "hq"]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(A) && !listed.contains(C), "{listed}");
    assert!(
        listed.contains(&a_key[..16]),
        "what it approved, with the key: {listed}"
    );
    let (_, status, _) = pki_operation(&d, phones[0].cert_poll(&ra, &format!("tx-{A}"), A)).await;
    assert_eq!(status, SUCCESS);
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    assert!(certificates_of(&d, B).await.is_empty());
    assert!(certificates_of(&d, C).await.is_empty());
    let (_, status, _) = pki_operation(&d, phones[2].cert_poll(&ra, &format!("tx-{C}"), C)).await;
    assert_eq!(status, PENDING, "another site's request is left waiting");
    let out = d.cli(&["pki", "pending", "--site", "branch"]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(C) && listed.contains("pending") && !listed.contains(A),
        "{listed}"
    );

    let (status, _) = d.api("DELETE", &format!("/devices/{C}"), None).await;
    assert_eq!(status, 204);
    let left: Vec<Value> = pending_list(&d).await;
    assert!(left.iter().all(|p| p["mac"] != C), "{left:?}");
    let (_, status, fail) =
        pki_operation(&d, phones[2].cert_poll(&ra, &format!("tx-{C}"), C)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("4")));
}

/// An operator who holds the challenge (it is in every phone of the site, and `approval =
/// "operator"` is for where it cannot be kept close) sent a request for a device of its site
/// with its own key, approved it, and got a certificate proving the device: its whole file,
/// secrets included. An approval is the administrator's; the operator still sees and rejects
/// its sites' requests.
#[tokio::test]
async fn an_operator_may_reject_but_not_approve_an_enrolment() {
    let (d, _secrets) = daemon_with("approval = \"operator\"\n");
    d.add_device(json!({"mac": A, "model": "J179", "site": "hq"}))
        .await;
    let olivia = &d.operator_token("olivia", &["hq"]).await;
    let ra = ra_cert(&d).await;
    let own = TestClient::new();
    let (_, status, _) = pki_operation(&d, own.pkcs_req(&ra, "tx-olivia", A)).await;
    assert_eq!(status, PENDING);
    let (status, seen) = d
        .api_with_token("GET", "/scep/pending?site=hq", None, Some(olivia))
        .await;
    assert_eq!(status, 200, "{seen}");
    let key = seen[0]["key_sha256"].as_str().unwrap().to_string();

    for (path, body) in [
        (
            format!("/scep/pending/{A}/approve"),
            json!({"key_sha256": key}),
        ),
        ("/scep/pending/approve".to_string(), json!({"site": "hq"})),
    ] {
        let (status, v) = d
            .api_with_token("POST", &path, Some(body), Some(olivia))
            .await;
        assert_eq!(status, 403, "{path}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(
            error.contains("administrator") && error.contains("secrets"),
            "{path}: {error}"
        );
    }
    assert!(certificates_of(&d, A).await.is_empty(), "nothing issued");
    let (_, status, _) = pki_operation(&d, own.cert_poll(&ra, "tx-olivia", A)).await;
    assert_eq!(status, PENDING, "no certificate for the operator's key");

    let (status, v) = d
        .api_with_token(
            "POST",
            &format!("/scep/pending/{A}/reject"),
            None,
            Some(olivia),
        )
        .await;
    assert_eq!((status, &v["status"]), (200, &json!("rejected")), "{v}");
    let (_, status, fail) = pki_operation(&d, own.cert_poll(&ra, "tx-olivia", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("2")));
}

/// The default (`approval = "challenge"`) is unchanged: the request is granted at once and
/// nothing is held. A CertPoll, for which no request is ever held then, is answered badCertId.
#[tokio::test]
async fn by_default_the_challenge_grants_at_once_and_a_poll_finds_nothing() {
    let (d, _secrets) = daemon();
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    let ra = ra_cert(&d).await;
    let phone = TestClient::new();
    let (rep, status, _) = pki_operation(&d, phone.pkcs_req(&ra, "tx-a", A)).await;
    assert_eq!(status, SUCCESS);
    let cert = phone.issued(&rep);
    assert_eq!(certificates_of(&d, A).await.len(), 1);
    assert!(pending_list(&d).await.is_empty());
    assert!(alarms_of(&d, "scep_pending").await.is_empty());
    let (_, status, fail) = pki_operation(&d, phone.cert_poll(&ra, "tx-a", A)).await;
    assert_eq!((status.as_str(), fail.as_deref()), (FAILURE, Some("4")));
    let own = send(
        d.https,
        client_config(&d.ca_pem(), Some(&phone.identity(&cert))),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200, "{}", own.text());
}

/// A real client through the whole wait: `scepclient`, answered PENDING, sends its request
/// again every 30 seconds (it speaks no CertPoll); once the operator approves it, the next
/// one gets the certificate, with which the phone proves itself on the mutual-TLS listener.
#[tokio::test]
async fn scepclient_waits_while_pending_and_gets_the_certificate_once_approved() {
    if !scepclient_available() {
        return;
    }
    let (d, _secrets) = daemon_with("approval = \"operator\"\n");
    d.add_device(json!({
        "mac": A, "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-a"},
    }))
    .await;
    let _ = ra_cert(&d).await;
    let fingerprint = ra_fingerprint(&d);
    let phone = d.dir.path().join("phone");
    let client = tokio::task::spawn_blocking({
        let (url, phone) = (format!("http://{}/scep", d.http.unwrap()), phone.clone());
        move || {
            std::fs::create_dir_all(&phone).unwrap();
            let mut child = Command::new("scepclient")
                .args(["-server-url", &url, "-challenge", CHALLENGE, "-cn", A])
                .arg("-private-key")
                .arg(phone.join("key.pem"))
                .arg("-certificate")
                .arg(phone.join("cert.pem"))
                .args(["-ca-fingerprint", &fingerprint])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // One wait of 30 s after the PENDING, and the exchanges around it.
            if wait_timeout(&mut child, std::time::Duration::from_secs(120)).is_none() {
                let _ = child.kill();
                panic!("scepclient did not finish within 120 s");
            }
            child.wait_with_output().unwrap()
        }
    });

    // Bounded: the request is held within 30 s or the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let key = loop {
        let held = pending_list(&d).await;
        if let Some(p) = held.first().filter(|p| p["status"] == "pending") {
            break p["key_sha256"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request held within 30 s: {held:?}\n{}",
            d.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(certificates_of(&d, A).await.is_empty());
    let (status, v) = d
        .api(
            "POST",
            &format!("/scep/pending/{A}/approve"),
            Some(json!({ "key_sha256": key })),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let out = client.await.unwrap();
    assert!(
        out.status.success(),
        "scepclient failed: {out:?}\n{}",
        d.log()
    );
    let cert_pem = std::fs::read_to_string(phone.join("cert.pem")).unwrap();
    assert_eq!(json!(serial_of(&cert_pem)), v["serial"]);
    let key_pem = std::fs::read_to_string(phone.join("key.pem")).unwrap();
    let own = send(
        d.https,
        client_config(&d.ca_pem(), Some(&Identity { cert_pem, key_pem })),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200, "{}", own.text());
    assert!(
        own.text().contains("SET SIP_PASSWORD pw-a"),
        "{}",
        own.text()
    );
}
