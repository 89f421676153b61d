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
