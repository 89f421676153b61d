//! What is acknowledged stays: restarts keep devices, PKI and token; `kill -9` right after
//! acknowledged writes loses none of them.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_devices_pki_and_token() {
    let d = Daemon::start();
    d.add_device(
        json!({"mac": "001122aabbcc", "model": "J179", "secrets": {"SIP_PASSWORD": "pw"}}),
    )
    .await;
    let ca_before = d.ca_pem();
    let server_before = std::fs::read(d.data_dir().join("pki/server.crt")).unwrap();
    let token_before = d.token.clone();
    let id = d.identity("001122aabbcc").await;

    let d = d.restart();
    assert_eq!(d.ca_pem(), ca_before, "the CA is reused, never regenerated");
    assert_eq!(
        std::fs::read(d.data_dir().join("pki/server.crt")).unwrap(),
        server_before
    );
    assert_eq!(d.token, token_before);
    let (status, v) = d.api("GET", "/devices/001122aabbcc", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["model"], "J179");
    // A certificate issued before the restart still proves the device.
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get("/001122aabbcc.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("SET SIP_PASSWORD pw"));
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let mut d = Daemon::start();
    let status = d.stop();
    assert!(status.success(), "exit status {status:?}\n{}", d.log());
    assert!(d.log().contains("stopped"));
    assert!(!d.data_dir().join("listeners.json").exists());
}

#[tokio::test]
async fn kill9_after_acknowledged_writes_loses_nothing() {
    let mut d = Daemon::start();
    for round in 0..3u8 {
        let mut macs = Vec::new();
        for i in 0..20u8 {
            let mac = format!("02000000{round:02x}{i:02x}");
            d.add_device(json!({"mac": mac, "label": format!("r{round}")}))
                .await;
            macs.push(mac);
        }
        // The CLI path too: its success message is an acknowledgement.
        let mac = format!("020000ff00{round:02x}");
        let out = d.cli(&["device", "add", "--mac", &mac, "--param", "A=b"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        macs.push(mac);

        d.kill9();
        d = d.restart();
        for mac in &macs {
            let (status, _) = d.api("GET", &format!("/devices/{mac}"), None).await;
            assert_eq!(
                status, 200,
                "device {mac} lost after kill -9 in round {round}"
            );
        }
    }
    let (_, list) = d.api("GET", "/devices", None).await;
    assert_eq!(list.as_array().unwrap().len(), 63);
}

/// A database file that is cut short, empty, or of a newer schema keeps the daemon from
/// starting with a message that names the file and says to restore a backup, and is left byte
/// for byte as it was; one altered inside a page (the daemon's start does not read every page:
/// see `store/open.rs`) is found by `edgeprov doctor`, which names the file and says the same.
#[tokio::test]
async fn a_damaged_database_is_refused_naming_the_file_and_left_as_it_is() {
    use redb::ReadableDatabase;
    let mut d = Daemon::start();
    d.add_device(json!({"mac": "001122aabbcc", "label": "damage-me-label"}))
        .await;
    assert!(d.stop().success());
    let db = d.data_dir().join("edgeprov.redb");
    let pristine = std::fs::read(&db).unwrap();

    // Every copy of the record, the live one among them (redb copies a page on write).
    let mut flipped = pristine.clone();
    let needle = b"damage-me-label";
    let at: Vec<usize> = (0..flipped.len() - needle.len())
        .filter(|&i| &flipped[i..i + needle.len()] == needle)
        .collect();
    assert!(!at.is_empty());
    for i in at {
        flipped[i] ^= 0x01;
    }
    let newer = {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("db");
        std::fs::write(&path, &pristine).unwrap();
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema_version", 99)
            .unwrap();
        tx.commit().unwrap();
        assert!(db.begin_read().is_ok());
        drop(db);
        std::fs::read(&path).unwrap()
    };
    std::fs::write(&db, &flipped).unwrap();
    let doctor = d.cli(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        !doctor.status.success(),
        "doctor passed an altered file: {said}"
    );
    assert!(
        said.lines().any(|l| l.starts_with("FAIL store")
            && l.contains(&db.display().to_string())
            && l.contains("restore the last backup")),
        "{said}"
    );
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("empty", Vec::new(), "restore the last backup"),
        (
            "a header only",
            pristine[..100].to_vec(),
            "restore the last backup",
        ),
        (
            "cut short",
            pristine[..pristine.len() / 2].to_vec(),
            "restore the last backup",
        ),
        ("a newer schema", newer, "schema version 99 is newer"),
    ];
    for (what, bytes, says) in cases {
        std::fs::write(&db, &bytes).unwrap();
        let (started, err) = run_serve(&d.config_path());
        assert!(!started, "{what}: the daemon started");
        assert!(
            err.contains(&db.display().to_string()) && err.contains(says),
            "{what}: {err}"
        );
        if what == "a newer schema" {
            // The open verifies the file before reading its schema, and that check commits in
            // redb's own way (the same data); what the newer edgeprov wrote stays.
            let file = redb::Database::open(&db).unwrap();
            let tx = file.begin_read().unwrap();
            let meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 99);
            let devices = tx
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("devices"))
                .unwrap();
            assert!(devices.get("001122aabbcc").unwrap().is_some());
        } else {
            assert!(
                std::fs::read(&db).unwrap() == bytes,
                "{what}: the file was changed"
            );
        }
    }
    std::fs::write(&db, &pristine).unwrap();
    let d = d.restart();
    let (_, v) = d.api("GET", "/devices/001122aabbcc", None).await;
    assert_eq!(v["label"], "damage-me-label");
}

/// An installer reads `journalctl -u edgeprov`, whose short output shows messages without
/// their fields: the first start says there where the administrator's token is and what to do
/// next, and says it once; every start says in words what it serves.
#[tokio::test]
async fn the_first_start_says_where_the_token_is_and_what_to_do_next() {
    let d = Daemon::start_with("[dns]\nlisten = [\"127.0.0.1:0\"]\n");
    let token_file = d.data_dir().join("admin.token");
    let config = d.config_path();
    wait_for_log(&d, "first start:").await;
    let log = d.log();
    let first: Vec<&str> = log.lines().filter(|l| l.contains("first start:")).collect();
    assert_eq!(first.len(), 1, "{log}");
    assert!(
        first[0].contains(&token_file.display().to_string()),
        "{log}"
    );
    assert!(
        first[0].contains(&format!("pki.server_names in {}", config.display())),
        "{log}"
    );
    assert!(
        !log.contains(&d.token),
        "the token itself is never logged:\n{log}"
    );
    let dns = d.dns.expect("DNS on");
    assert!(
        log.contains(&format!("admin on {}, DNS on [{dns}]", d.admin)),
        "{log}"
    );

    let d = d.restart();
    wait_for_log(&d, "stopped").await;
    for _ in 0..200 {
        if d.log().matches(", DNS on [").count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let log = d.log();
    assert_eq!(log.matches("first start:").count(), 1, "said again:\n{log}");
    assert_eq!(log.matches(", DNS on [").count(), 2, "{log}");
}
