//! Running under systemd: the sd_notify protocol, and SIGHUP reloading certificates without
//! dropping connections.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

fn recv_until(sock: &UnixDatagram, want: &str, limit: Duration) -> Option<String> {
    recv_all_until(sock, want, limit).and_then(|mut all| all.pop())
}

/// Every message received up to and including the first with the line `want`.
fn recv_all_until(sock: &UnixDatagram, want: &str, limit: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    let mut all = Vec::new();
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = msg.lines().any(|l| l == want);
            all.push(msg);
            if found {
                return Some(all);
            }
        }
    }
    None
}

#[test]
fn notify_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::start_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = recv_until(&sock, "READY=1", Duration::from_secs(20)).expect("READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=serving phones on")),
        "{ready}"
    );
    // READY=1 means every port accepts connections already.
    for addr in [d.https, d.admin, d.http.unwrap()] {
        std::net::TcpStream::connect(addr).expect("port accepts after READY=1");
    }
    // WATCHDOG_USEC=0.4 s: pings every 0.2 s.
    let started = Instant::now();
    for _ in 0..3 {
        recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2)).expect("WATCHDOG=1 on time");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    signal(d.child.as_ref().unwrap().id(), "TERM");
    recv_until(&sock, "STOPPING=1", Duration::from_secs(10)).expect("STOPPING=1 on SIGTERM");
    assert!(d.stop_waiting().success());
}

/// A database as an edgeprov before the check-in index wrote it (schema 1): `rows` check-ins,
/// alternately of `devices[0]` and `devices[1]`, one a second.
fn schema_1_database(path: &std::path::Path, devices: [&str; 2], rows: u64) {
    use redb::TableDefinition;
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(TableDefinition::<&str, u64>::new("meta"))
        .unwrap()
        .insert("schema_version", 1)
        .unwrap();
    let mut checkins = tx
        .open_table(TableDefinition::<u64, &[u8]>::new("checkins"))
        .unwrap();
    for seq in 1..=rows {
        let record = serde_json::json!({
            "mac": devices[(seq % 2) as usize],
            "last_seen": 1_800_000_000 + seq,
            "peer_ip": "192.0.2.10",
            "user_agent": "test",
            "firmware": "",
            "file": "",
        });
        let bytes = serde_json::to_vec(&record).unwrap();
        checkins.insert(seq, bytes.as_slice()).unwrap();
    }
    drop(checkins);
    tx.commit().unwrap();
}

/// A start that upgrades a schema-1 database (indexing every check-in by device) asks systemd
/// for more time as it progresses (EXTEND_TIMEOUT_USEC, with what it is doing in STATUS), so a
/// box with a long history is not killed as a hung start, restarted and killed again; READY
/// follows, with every check-in indexed under its device.
#[tokio::test]
async fn an_upgrade_at_start_asks_for_more_time() {
    const ROWS: u64 = 2_000;
    const DEVICES: [&str; 2] = ["001122aabb00", "001122aabb01"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let d = Daemon::start_prepared("", &[("NOTIFY_SOCKET", path.to_str().unwrap())], |data| {
        schema_1_database(&data.join("edgeprov.redb"), DEVICES, ROWS)
    });
    let messages = recv_all_until(&sock, "READY=1", Duration::from_secs(20)).expect("READY=1");
    let (ready, starting) = messages.split_last().unwrap();
    assert!(!ready.contains("EXTEND_TIMEOUT_USEC="), "{ready}");
    let extended: Vec<u64> = starting
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("EXTEND_TIMEOUT_USEC="))
        })
        .map(|usec| usec.parse().unwrap())
        .collect();
    assert!(
        extended.len() >= 2 && extended.iter().all(|&usec| usec >= 10_000_000),
        "more time before the upgrade and after it: {messages:?}"
    );
    let status = |m: &String| {
        m.lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .map(str::to_owned)
    };
    let statuses: Vec<String> = starting.iter().filter_map(status).collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("upgrading the database: 0 of 2000 check-ins indexed by device")
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("upgrading the database: 2000 of 2000 check-ins indexed by device")
    );
    assert!(
        d.log().contains("database upgraded to schema 2"),
        "{}",
        d.log()
    );

    for mac in DEVICES {
        d.add_device(serde_json::json!({"mac": mac})).await;
        let (s, history) = d
            .api("GET", &format!("/devices/{mac}/checkins?limit=10000"), None)
            .await;
        assert_eq!(s, 200, "{history}");
        assert_eq!(history.as_array().unwrap().len() as u64, ROWS / 2, "{mac}");
    }
}

async fn server_cert(d: &Daemon) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn has_name(der: &[u8], name: &str) -> bool {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .any(|n| matches!(n, x509_parser::extensions::GeneralName::DNSName(s) if *s == name))
}

#[tokio::test]
async fn sighup_reloads_certificates_and_keeps_open_connections() {
    let d = Daemon::start_with("[pki]\nserver_names = [\"localhost\", \"127.0.0.1\"]\n");
    d.add_device(serde_json::json!({"mac": "001122aabbcc", "params": {"SIPDOMAIN": "x"}}))
        .await;
    let before = server_cert(&d).await;
    assert!(!has_name(&before, "reloaded.example"));

    // An open keep-alive connection.
    let tcp = tokio::net::TcpStream::connect(d.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut ask = || {
        sender.send_request(
            http::Request::builder()
                .uri("/001122aabbcc.txt")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    assert_eq!(ask().await.unwrap().status(), 200);

    // A bad config is refused and the old one kept.
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(d.config_path(), format!("{config}\nbogus_key = 1\n")).unwrap();
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "reload refused").await;
    assert_eq!(server_cert(&d).await, before);

    // A new server name: the certificate is reissued and new handshakes get it.
    std::fs::write(
        d.config_path(),
        config.replace(
            "server_names = [\"localhost\", \"127.0.0.1\"]",
            "server_names = [\"localhost\", \"127.0.0.1\", \"reloaded.example\"]",
        ),
    )
    .unwrap();
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;
    let after = server_cert(&d).await;
    assert_ne!(after, before);
    assert!(has_name(&after, "reloaded.example"));

    // The connection opened before the reload still works.
    let resp = ask().await.expect("the open connection survives a reload");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("SET SIPDOMAIN x"));
}

/// `systemctl reload` only sends SIGHUP and returns: the status line (`systemctl status`) is
/// where the administrator sees that the file was refused and why, or which changed keys wait
/// for a restart.
#[test]
fn the_status_says_what_a_reload_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::start_with_env("", &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    recv_until(&sock, "READY=1", Duration::from_secs(20)).expect("READY=1");
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    let status_after_reload = |sock: &UnixDatagram| {
        signal(d.child.as_ref().unwrap().id(), "HUP");
        recv_until(sock, "RELOADING=1", Duration::from_secs(10)).expect("RELOADING=1");
        let ready = recv_until(sock, "READY=1", Duration::from_secs(10)).expect("READY=1");
        ready
            .lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .unwrap_or_default()
            .to_string()
    };

    std::fs::write(d.config_path(), format!("{config}\nbogus_key = 1\n")).unwrap();
    let status = status_after_reload(&sock);
    assert!(status.starts_with("serving phones on"), "{status}");
    assert!(status.contains("reload refused"), "{status}");
    assert!(status.contains("bogus_key"), "{status}");

    std::fs::write(
        d.config_path(),
        config.replace("max_connections", "x").replace(
            "auth_lockout_secs = 60",
            "auth_lockout_secs = 60\nmax_connections = 100",
        ),
    )
    .unwrap();
    let status = status_after_reload(&sock);
    assert!(
        status.contains("applied at the next restart: phone.max_connections"),
        "{status}"
    );
    assert!(!status.contains("refused"), "{status}");

    std::fs::write(d.config_path(), &config).unwrap();
    let status = status_after_reload(&sock);
    assert!(!status.contains(';'), "{status}");
    assert!(d.stop().success());
}

/// DNS makes its records from `pki.server_names` at start: a reload that changes them says so
/// in the status, and keeps saying so at every reload until the restart that applies it.
#[test]
fn server_names_dns_was_made_from_wait_for_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::start_with_env(
        "[dns]\nlisten = [\"127.0.0.1:0\"]\ndomain = \"prov.example.lan\"\n",
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    recv_until(&sock, "READY=1", Duration::from_secs(20)).expect("READY=1");
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        format!("{config}[pki]\nserver_names = [\"box.prov.example.lan\", \"127.0.0.1\"]\n"),
    )
    .unwrap();
    for reload in 1..=2 {
        signal(d.child.as_ref().unwrap().id(), "HUP");
        recv_until(&sock, "RELOADING=1", Duration::from_secs(10)).expect("RELOADING=1");
        let ready = recv_until(&sock, "READY=1", Duration::from_secs(10)).expect("READY=1");
        assert!(
            ready.contains("applied at the next restart: pki.server_names"),
            "reload {reload}: {ready}"
        );
    }
    assert!(d.stop().success());
}

/// The fields of one message in the journal's native protocol: `NAME=value` lines, or `NAME`, a
/// 64-bit little-endian length and that many bytes, for values that may hold a newline.
fn journal_fields(mut msg: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while let Some(end) = msg.iter().position(|&b| b == b'\n' || b == b'=') {
        let name = String::from_utf8_lossy(&msg[..end]).into_owned();
        let (value, rest) = if msg[end] == b'=' {
            let line = msg[end + 1..].iter().position(|&b| b == b'\n').unwrap();
            (&msg[end + 1..end + 1 + line], &msg[end + 2 + line..])
        } else {
            let len = u64::from_le_bytes(msg[end + 1..end + 9].try_into().unwrap()) as usize;
            (&msg[end + 9..end + 9 + len], &msg[end + 10 + len..])
        };
        fields.push((name, String::from_utf8_lossy(value).into_owned()));
        msg = rest;
    }
    fields
}

/// Started by systemd, the daemon logs to the journal with fields under their own names, so
/// that `journalctl -u edgeprov DEVICE=001122aabbcc` (the README's example) finds a phone's
/// requests. The journal socket is one the test binds, in a mount namespace of the daemon's own
/// with a fresh `/run`: the daemon finds it where systemd's would be.
#[tokio::test]
async fn journal_fields_are_named_as_the_readme_filters_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    let text = base_config(&dir.path().join("data"), "")
        .replace("log_level = \"info\"", "log_level = \"debug\"");
    std::fs::write(&config, text).unwrap();
    let journal = dir.path().join("journal");
    // The daemon ends with the receiver (PR_SET_PDEATHSIG), which the test's Daemon kills.
    let receiver = "import ctypes, os, signal, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('/run/systemd/journal/socket')
s.settimeout(0.1)
env = dict(os.environ, JOURNAL_STREAM='0:0')
env.pop('RUST_LOG', None)
d = subprocess.Popen([sys.argv[1], 'serve', '--config', sys.argv[2]], env=env,
    preexec_fn=lambda: ctypes.CDLL(None).prctl(1, signal.SIGKILL))
out = open(sys.argv[3], 'ab')
while d.poll() is None:
    try:
        m = s.recv(1 << 20)
    except socket.timeout:
        continue
    out.write(len(m).to_bytes(8, 'little') + m)
    out.flush()
";
    let child = std::process::Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
             exec python3 -c \"$0\" \"$1\" \"$2\" \"$3\"",
            receiver,
            BIN,
        ])
        .arg(&config)
        .arg(&journal)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listeners = dir.path().join("data/listeners.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !listeners.exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let bound: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&listeners).unwrap()).unwrap();
    let addr = |v: &serde_json::Value| v.as_str().unwrap().parse().unwrap();
    let d = Daemon {
        https: addr(&bound["phone_https"][0]),
        http: bound["phone_http"].get(0).map(addr),
        admin: addr(&bound["admin"]),
        dns: None,
        token: std::fs::read_to_string(dir.path().join("data/admin.token"))
            .unwrap()
            .trim()
            .to_string(),
        child: Some(child),
        dir,
    };
    d.add_device(serde_json::json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    let id = d.identity("001122aabbcc").await;
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get("/001122aabbcc.txt", "AVAYA/J179-4.1.3.0.6"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = std::fs::read(&journal).unwrap_or_default();
        let mut rest = bytes.as_slice();
        let mut messages = Vec::new();
        while rest.len() >= 8 {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            messages.push(journal_fields(&rest[8..8 + len]));
            rest = &rest[8 + len..];
        }
        let request = messages.iter().find(|m| {
            m.iter()
                .any(|(k, v)| k == "MESSAGE" && v == "phone request")
        });
        if let Some(m) = request {
            let has = |k: &str, v: &str| m.iter().any(|(a, b)| a == k && b == v);
            assert!(has("DEVICE", "001122aabbcc"), "{m:?}");
            assert!(
                has("PATH", "/001122aabbcc.txt") && has("STATUS", "200"),
                "{m:?}"
            );
            assert!(has("SYSLOG_IDENTIFIER", "edgeprov"), "{m:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no phone request logged: {messages:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
