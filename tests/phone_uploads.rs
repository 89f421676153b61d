//! Poly phones upload their logs and overrides to the running daemon, over real TLS with their
//! own certificates: stored per device under the rule of a file with a secret, bounded in size
//! and in total, listed and downloaded through the admin API, gone with their device, kept
//! across a restart.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: &str = "0004f2000001";
const B: &str = "0004f2000002";
const UA: &str = "FileTransport PolycomVVX-VVX_400-UA/6.4.0.1 Type/Application";

/// Small bounds, so that a few requests reach them.
const LIMITS: &str = "[uploads]\nmax_file_bytes = 1000\nmax_total_bytes = 2500\n";

fn put(path: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method("PUT")
        .uri(path)
        .header("host", "localhost")
        .header("user-agent", UA)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn method(m: &str, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(m)
        .uri(path)
        .header("host", "localhost")
        .header("user-agent", UA)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// `len` bytes a log could hold, different for each `seed`.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i as u8).wrapping_add(seed)) % 26)
        .collect()
}

async fn uploads(d: &Daemon, mac: &str) -> Vec<Value> {
    let (status, v) = d.api("GET", &format!("/devices/{mac}/uploads"), None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn names(list: &[Value]) -> Vec<&str> {
    list.iter().map(|u| u["name"].as_str().unwrap()).collect()
}

async fn download(d: &Daemon, mac: &str, name: &str) -> Resp {
    d.get_raw(format!("/devices/{mac}/uploads/{name}"), &d.token)
        .await
}

/// A PUT whose body comes chunked, without a length, over TLS as device `id`: the status line
/// and headers of the answer.
async fn put_chunked(d: &Daemon, id: &Identity, path: &str, chunks: usize, size: usize) -> String {
    let tls = client_config(&d.ca_pem(), Some(id));
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {UA}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for i in 0..chunks {
        let chunk = content(size, i as u8);
        // The server may answer and close once it has read past its bound.
        if stream
            .write_all(format!("{size:x}\r\n").as_bytes())
            .await
            .is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    read_head(&mut stream).await
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// The status line and headers of the next answer on `stream`, read byte by byte so that
/// nothing after them is taken.
async fn read_head(stream: &mut Tls) -> String {
    let mut answer = Vec::new();
    let read = async {
        while !answer.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(b) => answer.push(b),
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A PUT over TLS as device `id` of a body of `len` bytes, stopped once the server has said
/// `100 Continue`: it has then authorised the upload, taken its slot and begun reading the
/// body, which is sent with [`finish`].
async fn put_started(d: &Daemon, id: &Identity, path: &str, len: usize) -> Tls {
    let tls = client_config(&d.ca_pem(), Some(id));
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {UA}\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream
}

/// Sends the body of a [`put_started`] upload: the status line and headers of its answer.
async fn finish(mut stream: Tls, body: &[u8]) -> String {
    stream.write_all(body).await.unwrap();
    read_head(&mut stream).await
}

#[tokio::test]
async fn poly_phones_upload_logs_and_overrides() {
    let d = Daemon::start_with(LIMITS);
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "model": "VVX_400",
            "secrets": {"line.1.password": format!("pw-{mac}")}}))
            .await;
    }
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;
    let as_a = || client_config(&ca, Some(&id_a));
    let as_b = || client_config(&ca, Some(&id_b));

    // The master file sends the phone's uploads to their own directories.
    let master = send_plain(d.http.unwrap(), get("/000000000000.cfg", UA))
        .await
        .unwrap();
    assert_eq!(master.status, 200);
    assert!(
        master.text().contains(" LOG_FILE_DIRECTORY=\"logs\" ")
            && master
                .text()
                .contains(" OVERRIDES_DIRECTORY=\"overrides\" "),
        "{}",
        master.text()
    );

    // Its own certificate: 201 for a new log, 204 when it replaces it, under any leading
    // directory and in any letter case.
    let first = content(400, 1);
    let r = send(d.https, as_a(), put(&format!("/logs/{A}-app.log"), first))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let log = content(500, 2);
    let upper = A.to_uppercase();
    let r = send(
        d.https,
        as_a(),
        put(&format!("/prov/logs/{upper}-app.log"), log.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());

    let list = uploads(&d, A).await;
    assert_eq!(names(&list), [format!("{A}-app.log")]);
    assert_eq!(list[0]["kind"], "log");
    assert_eq!(list[0]["size"], 500);
    assert_eq!(list[0]["from"], "127.0.0.1");
    assert!(list[0]["received"].as_i64().unwrap() > 1_700_000_000);
    let got = download(&d, A, &format!("{A}-app.log")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, log, "the exact bytes");

    // Another device's certificate, no certificate, plain HTTP: refused as a secret file is,
    // with its alarms, and nothing stored.
    let stranger = content(300, 9);
    let r = send(
        d.https,
        as_b(),
        put(&format!("/logs/{A}-app.log"), stranger.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let r = send(
        d.https,
        client_config(&ca, None),
        put(&format!("/logs/{A}-boot.log"), stranger.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let r = send_plain(
        d.http.unwrap(),
        put(&format!("/logs/{A}-boot.log"), stranger.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(names(&uploads(&d, A).await), [format!("{A}-app.log")]);
    assert_eq!(download(&d, A, &format!("{A}-app.log")).await.body, log);
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let kinds: Vec<&str> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"certificate_mismatch"), "{alarms}");
    assert!(kinds.contains(&"secret_without_proof"), "{alarms}");

    // Over max_file_bytes: 413, declared or chunked, and nothing stored.
    let r = send(
        d.https,
        as_a(),
        put(&format!("/logs/{A}-boot.log"), content(1001, 3)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    let answer = put_chunked(&d, &id_a, &format!("/logs/{A}-boot.log"), 8, 300).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(names(&uploads(&d, A).await), [format!("{A}-app.log")]);
    // A chunked body within the bound is taken.
    let answer = put_chunked(&d, &id_b, &format!("/logs/{B}-boot.log"), 4, 200).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // An override is read back by its own device only; edgeprov's own per-device file of that
    // name is still what the provisioning directory serves.
    let overrides = b"<PHONE_CONFIG><OVERRIDES up.backlight.idleIntensity=\"1\" \
                      device.auth.localAdminPassword=\"typed-on-phone\"/></PHONE_CONFIG>"
        .to_vec();
    let mut padded = overrides.clone();
    padded.resize(900, b' ');
    let r = send(
        d.https,
        as_a(),
        put(&format!("/overrides/{A}-phone.cfg"), padded.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let own = send(
        d.https,
        as_a(),
        get(&format!("/overrides/{A}-phone.cfg"), UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200);
    assert_eq!(own.body, padded);
    assert_eq!(own.headers["cache-control"], "no-store");
    for refused in [
        send(
            d.https,
            as_b(),
            get(&format!("/overrides/{A}-phone.cfg"), UA),
        )
        .await,
        send(
            d.https,
            client_config(&ca, None),
            get(&format!("/overrides/{A}-phone.cfg"), UA),
        )
        .await,
        send_plain(
            d.http.unwrap(),
            get(&format!("/overrides/{A}-phone.cfg"), UA),
        )
        .await,
    ] {
        let refused = refused.unwrap();
        assert_eq!(refused.status, 403);
        assert!(!refused.text().contains("typed-on-phone"));
    }
    let none = send(d.https, as_a(), get(&format!("/overrides/{A}-web.cfg"), UA))
        .await
        .unwrap();
    assert_eq!(none.status, 404);
    let rendered = send(d.https, as_a(), get(&format!("/{A}-phone.cfg"), UA))
        .await
        .unwrap();
    assert_eq!(rendered.status, 200);
    assert!(
        rendered.text().contains("pw-0004f2000001"),
        "{}",
        rendered.text()
    );
    // Logs are not served back to phones.
    let r = send(d.https, as_a(), get(&format!("/logs/{A}-app.log"), UA))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Nothing else is writable; a 405 on an upload path names PUT.
    let r = send(
        d.https,
        as_a(),
        put(&format!("/{A}-phone.cfg"), b"x".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, &r.headers["allow"]),
        (405, &"GET, HEAD".parse().unwrap())
    );
    let r = send(
        d.https,
        as_a(),
        method("DELETE", &format!("/logs/{A}-app.log")),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, &r.headers["allow"]),
        (405, &"GET, HEAD, PUT".parse().unwrap())
    );

    // Held now: A's log 500, B's log 800, A's override 900 = 2200 of 2500. A log of 700 drops
    // the oldest log (A's app log), not the older override.
    let r = send(
        d.https,
        as_a(),
        put(&format!("/logs/{A}-boot.log"), content(700, 4)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        names(&uploads(&d, A).await),
        [format!("{A}-boot.log"), format!("{A}-phone.cfg")]
    );
    assert_eq!(names(&uploads(&d, B).await), [format!("{B}-boot.log")]);
    // An override of 1000 takes the room of both logs left.
    let r = send(
        d.https,
        as_b(),
        put(&format!("/overrides/{B}-web.cfg"), content(1000, 5)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(names(&uploads(&d, A).await), [format!("{A}-phone.cfg")]);
    assert_eq!(names(&uploads(&d, B).await), [format!("{B}-web.cfg")]);
    // Only overrides are held (1900): one more that does not fit is refused, with an alarm
    // naming the device, and nothing of it is stored.
    let r = send(
        d.https,
        as_a(),
        put(&format!("/overrides/{A}-web.cfg"), content(700, 6)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(names(&uploads(&d, A).await), [format!("{A}-phone.cfg")]);
    let (_, alarms) = d.api("GET", "/alarms?kind=upload_storage_full", None).await;
    let alarms = alarms.as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], A);
    assert!(
        alarms[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{A}-web.cfg")),
        "{alarms:?}"
    );

    let metrics = d.metrics().await;
    for line in [
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"stored\"} 3",
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"replaced\"} 1",
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"refused\"} 3",
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"too_large\"} 2",
        "edgeprov_phone_uploads_total{kind=\"override\",result=\"stored\"} 2",
        "edgeprov_phone_uploads_total{kind=\"override\",result=\"no_room\"} 1",
    ] {
        assert!(metrics.contains(&format!("{line}\n")), "{line}:\n{metrics}");
    }
    // The 405s above (a PUT on edgeprov's own file, a DELETE of a log) were no uploads.
    assert!(
        !metrics.contains("edgeprov_phone_requests_total{file=\"upload\",status=\"405\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgeprov_phone_requests_total{file=\"other\",status=\"405\"} 2\n"),
        "{metrics}"
    );

    // Deleting one upload through the API is audited.
    let (status, v) = d
        .api("DELETE", &format!("/devices/{B}/uploads/{B}-web.cfg"), None)
        .await;
    assert_eq!(status, 204, "{v}");
    assert!(uploads(&d, B).await.is_empty());
    let (_, audit) = d.api("GET", "/audit", None).await;
    assert!(
        audit
            .to_string()
            .contains(&format!("upload {B}-web.cfg of device {B} deleted")),
        "{audit}"
    );

    // The upload survives a restart.
    let d = d.restart();
    let got = download(&d, A, &format!("{A}-phone.cfg")).await;
    assert_eq!((got.status, got.body), (200, padded));
    // It gave out what the user typed into the phone: audited, as a backup is; the log
    // downloaded above is not.
    let (_, audit) = d.api("GET", "/audit", None).await;
    let audit = audit.to_string();
    assert!(
        audit.contains(&format!(
            "override {A}-phone.cfg of device {A} downloaded (900 bytes)"
        )),
        "{audit}"
    );
    assert!(
        !audit.contains(&format!("{A}-app.log of device {A} downloaded")),
        "{audit}"
    );

    // Deleting the device deletes its uploads: added again, it has none.
    let (status, v) = d.api("DELETE", &format!("/devices/{A}"), None).await;
    assert_eq!(status, 204, "{v}");
    d.add_device(json!({"mac": A, "model": "VVX_400"})).await;
    assert!(uploads(&d, A).await.is_empty());
}

/// An operator sees the uploads of its sites' devices only, through the API and the CLI.
#[tokio::test]
async fn uploads_are_scoped_to_the_callers_sites_and_shown_by_the_cli() {
    let d = Daemon::start_with(LIMITS);
    d.add_device(json!({"mac": A, "model": "VVX_400", "site": "mine"}))
        .await;
    d.add_device(json!({"mac": B, "model": "VVX_400", "site": "theirs"}))
        .await;
    let ca = d.ca_pem();
    for mac in [A, B] {
        let id = d.identity(mac).await;
        let r = send(
            d.https,
            client_config(&ca, Some(&id)),
            put(&format!("/logs/{mac}-boot.log"), content(100, 7)),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // The phone's user typed a password into its web page: the override carries it.
    let typed = br#"<PHONE_CONFIG><OVERRIDES reg.1.auth.password="typed-pw"/></PHONE_CONFIG>"#;
    let id = d.identity(A).await;
    let r = send(
        d.https,
        client_config(&ca, Some(&id)),
        put(&format!("/overrides/{A}-web.cfg"), typed.to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let token = d.operator_token("olga", &["mine"]).await;
    let own = d
        .get_raw(format!("/devices/{A}/uploads/{A}-boot.log"), &token)
        .await;
    assert_eq!((own.status, own.body), (200, content(100, 7)));
    // An override is the administrator's to download: secret values are write-only for an
    // operator. Listing it is not refused.
    let override_path = format!("/devices/{A}/uploads/{A}-web.cfg");
    let refused = d.get_raw(override_path.clone(), &token).await;
    let said = String::from_utf8_lossy(&refused.body).to_string();
    assert_eq!(refused.status, 403, "{said}");
    assert!(
        said.contains("only an administrator may download override") && !said.contains("typed-pw"),
        "{said}"
    );
    let listed = d.get_raw(format!("/devices/{A}/uploads"), &token).await;
    assert_eq!(listed.status, 200);
    assert!(String::from_utf8_lossy(&listed.body).contains(&format!("{A}-web.cfg")));
    let admin = d.get_raw(override_path, &d.token).await;
    assert_eq!((admin.status, admin.body), (200, typed.to_vec()));
    for path in [
        format!("/devices/{B}/uploads"),
        format!("/devices/{B}/uploads/{B}-boot.log"),
    ] {
        assert_eq!(d.get_raw(path.clone(), &token).await.status, 403, "{path}");
    }
    let (status, _) = d
        .api_with_token(
            "DELETE",
            &format!("/devices/{B}/uploads/{B}-boot.log"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(uploads(&d, B).await.len(), 1);

    let out = d.cli(&["device", "uploads", "list", A]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains(&format!("{A}-boot.log")) && text.contains("log"),
        "{text}"
    );
    let file = d.dir.path().join("boot.log");
    let out = d.cli(&[
        "device",
        "uploads",
        "get",
        A,
        &format!("{A}-boot.log"),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), content(100, 7));
    // Owner only, as a backup: an override written so may hold passwords.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let out = d.cli(&[
        "--json",
        "device",
        "uploads",
        "rm",
        A,
        &format!("{A}-boot.log"),
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = uploads(&d, A).await;
    assert_eq!(left.len(), 1, "only the override is left: {left:?}");
}

/// With `[uploads] enabled = false` a PUT is refused as any other method phones may not use,
/// and its `Allow` does not offer PUT; nothing is stored.
#[tokio::test]
async fn with_uploads_off_a_put_is_405_and_stores_nothing() {
    let d = Daemon::start_with("[uploads]\nenabled = false\n");
    d.add_device(json!({"mac": A, "model": "VVX_400"})).await;
    let id = d.identity(A).await;
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        put(&format!("/logs/{A}-app.log"), content(10, 1)),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, &r.headers["allow"]),
        (405, &"GET, HEAD".parse().unwrap())
    );
    assert!(uploads(&d, A).await.is_empty());
}

/// Uploads are in the database, so a backup carries them and a restore brings them back.
#[tokio::test]
async fn a_backup_carries_the_uploads() {
    let mut d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "VVX_400"})).await;
    let id = d.identity(A).await;
    let overrides = content(300, 8);
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        put(&format!("/overrides/{A}-web.cfg"), overrides.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let file = d.dir.path().join("box.backup");
    let out = d.cli(&["backup", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    let out = d.cli(&["restore", file.to_str().unwrap(), "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = d.restart();
    let got = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/overrides/{A}-web.cfg"), UA),
    )
    .await
    .unwrap();
    assert_eq!((got.status, got.body), (200, overrides));
}

/// `d` restarted to wait 10 s for a body (`phone.header_timeout_ms`) instead of the test
/// daemon's 1 s: these tests keep a body open while they make other requests, which a loaded
/// machine (the whole suite on two cores) may take longer than a second to answer.
fn patient(d: Daemon) -> Daemon {
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    let slow = config.replace("header_timeout_ms = 1000", "header_timeout_ms = 10000");
    assert_ne!(
        slow, config,
        "the test daemon's body timeout is no longer where it was"
    );
    std::fs::write(d.config_path(), slow).unwrap();
    d.restart()
}

/// Uploads being read hold their bodies in memory: at most `uploads.max_in_flight` of them at
/// once for the whole daemon (one more is 503 with `Retry-After`, before its body is read),
/// and one per device (a second is 409); a slot is given back once its upload is stored.
#[tokio::test]
async fn uploads_in_flight_are_bounded_for_the_daemon_and_one_per_device() {
    let d = patient(Daemon::start_with("[uploads]\nmax_in_flight = 1\n"));
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "model": "VVX_400"})).await;
    }
    let ca = d.ca_pem();
    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;
    let as_a = || client_config(&ca, Some(&id_a));
    let as_b = || client_config(&ca, Some(&id_b));

    let held = put_started(&d, &id_a, &format!("/logs/{A}-app.log"), 300).await;
    let r = send(
        d.https,
        as_a(),
        put(&format!("/logs/{A}-boot.log"), content(10, 1)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let r = send(
        d.https,
        as_b(),
        put(&format!("/logs/{B}-app.log"), content(10, 2)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.headers["retry-after"], "5");
    assert!(uploads(&d, B).await.is_empty());

    let answer = finish(held, &content(300, 3)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    for (id, path) in [
        (as_b(), format!("/logs/{B}-app.log")),
        (as_a(), format!("/logs/{A}-boot.log")),
    ] {
        let r = send(d.https, id, put(&path, content(10, 4))).await.unwrap();
        assert_eq!(r.status, 201, "{path}: {}", r.text());
    }
    assert_eq!(
        names(&uploads(&d, A).await),
        [format!("{A}-app.log"), format!("{A}-boot.log")]
    );
    let metrics = d.metrics().await;
    for line in [
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"busy\"} 1",
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"in_progress\"} 1",
        "edgeprov_phone_uploads_total{kind=\"log\",result=\"stored\"} 3",
    ] {
        assert!(metrics.contains(&format!("{line}\n")), "{line}:\n{metrics}");
    }
}

/// The request is authorised before its body comes: a device deactivated, or a certificate
/// revoked, while it comes gets nothing stored (403).
#[tokio::test]
async fn a_device_deactivated_or_a_certificate_revoked_while_the_body_comes_gets_nothing_stored() {
    let d = patient(Daemon::start());
    d.add_device(json!({"mac": A, "model": "VVX_400"})).await;
    let id = d.identity(A).await;
    let path = format!("/overrides/{A}-web.cfg");

    let held = put_started(&d, &id, &path, 100).await;
    let (status, v) = d
        .api(
            "PATCH",
            &format!("/devices/{A}"),
            Some(json!({"state": "inactive"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let answer = finish(held, &content(100, 1)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(uploads(&d, A).await.is_empty());

    let (status, v) = d
        .api(
            "PATCH",
            &format!("/devices/{A}"),
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let held = put_started(&d, &id, &path, 100).await;
    let (status, v) = d
        .api(
            "POST",
            &format!("/devices/{A}/certificates/revoke"),
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let answer = finish(held, &content(100, 2)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(uploads(&d, A).await.is_empty());
}

/// A Digest response to a challenge with `nonce`, for `method` and `uri`.
fn digest_header(method: &str, nonce: &str, uri: &str) -> String {
    use md5::Digest;
    let h = |s: String| {
        md5::Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h("poly-a:edgeprov:right".to_string());
    let ha2 = h(format!("{method}:{uri}"));
    let resp = h(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    format!(
        r#"Digest username="poly-a", realm="edgeprov", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", response="{resp}""#
    )
}

/// `req` over plain HTTP with Digest credentials: a challenge first (from a log's path, which
/// offers one over plain HTTP), then the answer to it.
async fn with_digest(d: &Daemon, req: http::Request<Full<Bytes>>) -> Resp {
    let http = d.http.unwrap();
    let probe = put(&format!("/logs/{A}-app.log"), Vec::new());
    let challenge = send_plain(http, probe).await.unwrap();
    assert_eq!(challenge.status, 401, "{}", challenge.text());
    let md5 = challenge
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|o| o.contains("MD5"))
        .unwrap();
    let (method, uri) = (req.method().to_string(), req.uri().to_string());
    let mut req = req;
    req.headers_mut().insert(
        "authorization",
        digest_header(&method, challenge_nonce(&md5), &uri)
            .parse()
            .unwrap(),
    );
    send_plain(http, req).await.unwrap()
}

/// With its per-device Digest credentials a phone sends its logs over plain HTTP; an override
/// neither goes nor comes back over plain HTTP (Digest does not protect a body), only over
/// HTTPS, where HEAD answers its length. A percent-encoded path is the file it decodes to.
#[tokio::test]
async fn with_digest_credentials_logs_come_over_http_and_overrides_only_over_https() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "VVX_400"})).await;
    let (status, v) = d
        .api(
            "PATCH",
            &format!("/devices/{A}"),
            Some(json!({"allow_http_auth": true,
                "http_credential": {"username": "poly-a", "password": "right"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let log = content(200, 1);
    let r = with_digest(&d, put(&format!("/logs/{A}-app.log"), log.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(download(&d, A, &format!("{A}-app.log")).await.body, log);

    let secret = b"device.auth.localAdminPassword=\"typed-on-phone\"".to_vec();
    let r = with_digest(
        &d,
        put(&format!("/overrides/{A}-phone.cfg"), secret.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("HTTPS is required"), "{}", r.text());
    assert_eq!(names(&uploads(&d, A).await), [format!("{A}-app.log")]);
    let (_, alarms) = d
        .api("GET", "/alarms?kind=secret_without_proof", None)
        .await;
    assert!(
        alarms.to_string().contains(&format!(
            "{A}-phone.cfg: an override was sent over plain HTTP"
        )),
        "{alarms}"
    );

    // Over HTTPS it is taken, and read back there only.
    let id = d.identity(A).await;
    let as_a = || client_config(&d.ca_pem(), Some(&id));
    let r = send(
        d.https,
        as_a(),
        put(&format!("/overrides/{A}-phone.cfg"), secret.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = with_digest(&d, get(&format!("/overrides/{A}-phone.cfg"), UA)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("HTTPS is required"), "{}", r.text());
    assert!(!r.text().contains("typed-on-phone"));
    let head = send(
        d.https,
        as_a(),
        method("HEAD", &format!("/overrides/{A}-phone.cfg")),
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers["content-length"],
        secret.len().to_string().as_str()
    );
    assert_eq!(head.headers["cache-control"], "no-store");
    assert!(head.body.is_empty());

    // `%2D` is `-` and `%6C` `l`: the boot log, as any other spelling of it.
    let r = send(
        d.https,
        as_a(),
        put(
            &format!("/prov%20dir/%6Cogs/{A}%2Dboot.log"),
            content(50, 2),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        names(&uploads(&d, A).await),
        [
            format!("{A}-app.log"),
            format!("{A}-boot.log"),
            format!("{A}-phone.cfg")
        ]
    );
}
