//! Backup → wipe → restore gives back the same devices, parameters, PKI and tokens (the box's
//! own and those made through the API); a bad or wrongly unlocked backup changes nothing.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn backup_wipe_restore() {
    let mut d = Daemon::start();
    d.add_device(
        json!({"mac": "001122aabbcc", "model": "J179", "secrets": {"SIP_PASSWORD": "pw"}}),
    )
    .await;
    let (s, _) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"sip.server": "pbx.example.com"}})),
        )
        .await;
    assert_eq!(s, 200);
    let id = d.identity("001122aabbcc").await;
    d.ensure_site("hq").await;
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "olivia", "role": "operator", "sites": ["hq"]})),
        )
        .await;
    assert_eq!(s, 201);
    let operator = made["token"].as_str().unwrap().to_string();
    // A bulk delete due in an hour: restoring must not make it again by itself.
    let (s, job) = d
        .api(
            "POST",
            "/jobs",
            Some(json!({"kind": "delete", "selection": {"all": true}, "at": 1_900_000_000})),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let ca = d.ca_pem();
    let token = d.token.clone();
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("pass"), "correct horse battery\n").unwrap();
    let file = dir.join("box.backup");
    let out = d.cli(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--passphrase-file",
        dir.join("pass").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(12).any(|w| w == b"001122aabbcc"),
        "encrypted"
    );

    // Restoring while the daemon runs is refused.
    let out = d.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        dir.join("pass").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));

    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();

    // A wrong passphrase changes nothing.
    std::fs::write(dir.join("wrong"), "guess\n").unwrap();
    let out = d.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        dir.join("wrong").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert!(!d.data_dir().exists());

    let out = d.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        dir.join("pass").to_str().unwrap(),
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("restored 1 devices"), "{said}");
    assert!(
        said.contains(&format!("jobs {} were pending", job["id"])),
        "{said}"
    );

    let d = d.restart();
    assert_eq!(d.ca_pem(), ca, "same CA");
    assert_eq!(d.token, token, "same token");
    let (s, _) = d
        .api_with_token("GET", "/devices", None, Some(&operator))
        .await;
    assert_eq!(s, 200, "the operator's token works again");
    let (_, p) = d.api("GET", "/params/global", None).await;
    assert_eq!(p["params"]["sip.server"], "pbx.example.com");
    let (_, restored_job) = d.api("GET", &format!("/jobs/{}", job["id"]), None).await;
    assert_eq!(restored_job["state"], "paused", "{restored_job}");
    // The phone's certificate from before still proves it, and its secret is back.
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

/// An encrypted backup restored without its passphrase is refused with the flag that gives it:
/// "give its passphrase" alone left the administrator to find `--passphrase-file` in the help.
#[test]
fn restoring_an_encrypted_backup_without_a_passphrase_names_the_flag() {
    let mut d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("pass"), "correct horse battery\n").unwrap();
    let file = dir.join("box.backup");
    let out = d.cli(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--passphrase-file",
        dir.join("pass").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    d.stop();
    let marker = d.data_dir().join("marker");
    std::fs::write(&marker, "still here").unwrap();
    let out = d.cli(&["restore", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--passphrase-file"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "still here");
}

#[test]
fn a_damaged_backup_is_refused_before_anything_is_replaced() {
    let mut d = Daemon::start();
    d.stop();
    let dir = d.dir.path().to_path_buf();
    let marker = d.data_dir().join("marker");
    std::fs::write(&marker, "still here").unwrap();
    let mut junk = b"EDGEPROV-BACKUP-1\n".to_vec();
    junk.extend_from_slice(&[0u8; 4096]);
    std::fs::write(dir.join("junk.backup"), &junk).unwrap();
    let out = d.cli(&[
        "restore",
        "--yes",
        dir.join("junk.backup").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("backup lacks"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "still here");
}

/// Makes a directory unwritable to everyone until dropped: as root with the immutable attribute
/// (permissions do not bind root), else by its mode. Stands for a packaged install, where the
/// service may write inside `/var/lib/edgeprov` and not in `/var/lib`.
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(dir: &std::path::Path) -> Unwritable {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if root {
            let done = std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .unwrap();
            assert!(done.success(), "chattr +i {}", dir.display());
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        assert!(
            std::fs::create_dir(dir.join("probe")).is_err(),
            "{} is still writable",
            dir.display()
        );
        Unwritable(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// The daemon makes a backup writing only inside its data directory: a packaged install runs it
/// as the service user under `ProtectSystem=strict`, where the data directory's parent is
/// read-only (a snapshot staged beside the data directory failed there with 500).
#[tokio::test]
async fn a_backup_is_made_when_only_the_data_directory_is_writable() {
    let d = Daemon::start();
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("box.backup");
    let out = {
        let _sealed = Unwritable::new(d.dir.path());
        d.cli(&["backup", "--out", file.to_str().unwrap()])
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"EDGEPROV-BACKUP-1\n"));
    assert!(bytes.windows(12).any(|w| w == b"001122aabbcc"));
    let left: Vec<_> = std::fs::read_dir(d.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".backup"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

/// A backup holds every secret, the CA key and the box's token, yet taking one left no audit
/// entry (reads were not audited): who took one, from where, and whether it was encrypted is
/// now entered.
#[tokio::test]
async fn taking_a_backup_is_audited() {
    let d = Daemon::start();
    let (s, _) = d.api_bytes("GET", "/backup", "", Some(&d.token)).await;
    assert_eq!(s, 200);
    let (s, entries) = d.api("GET", "/audit?resource=/api/v1/backup", None).await;
    assert_eq!(s, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["who"], "admin");
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[0]["source"], "127.0.0.1");
    let summary = entries[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("backup taken") && summary.contains("not encrypted"),
        "{summary}"
    );
}

/// `backup --out` into a directory that does not exist, or onto a directory, fails at once,
/// naming the path, before the backup is downloaded: the audit log holds no backup taken. It
/// used to download the whole backup first and fail only when writing it.
#[tokio::test]
async fn a_backup_that_cannot_be_written_is_not_taken() {
    let d = Daemon::start();
    let missing = d.dir.path().join("no/such/dir/box.backup");
    let dir = d.dir.path().to_path_buf();
    for out in [&missing, &dir] {
        let run = d.cli(&["backup", "--out", out.to_str().unwrap()]);
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(out.to_str().unwrap()), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (s, entries) = d.api("GET", "/audit?resource=/api/v1/backup", None).await;
    assert_eq!(s, 200, "{entries}");
    assert_eq!(entries, json!([]), "no backup was taken");
}

/// A backup holds the box's own token, which no revocation reaches: an administrator's API
/// token (revocable) took one and so kept the box's token after its own was revoked. Only the
/// box's own token takes a backup.
#[tokio::test]
async fn only_the_boxs_own_token_takes_a_backup() {
    let d = Daemon::start();
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "remote-admin", "role": "administrator"})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let api_token = made["token"].as_str().unwrap().to_string();
    let (s, v) = d.api_bytes("GET", "/backup", "", Some(&api_token)).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("box's own"), "{v}");
    // Still an administrator for everything else.
    let (s, _) = d.api_bytes("GET", "/tokens", "", Some(&api_token)).await;
    assert_eq!(s, 200);
    let (s, _) = d.api_bytes("GET", "/backup", "", Some(&d.token)).await;
    assert_eq!(s, 200);
}

/// A restore never swaps the data directory from under a running daemon, even one whose
/// `listeners.json` is not there (a start still opening or upgrading the database writes it
/// only later): the daemon's acknowledged writes would go on into the directory moved aside.
#[tokio::test]
async fn a_restore_is_refused_while_a_daemon_runs_on_the_data_directory() {
    let d = Daemon::start();
    d.add_device(json!({"mac": "001122aabbcc"})).await;
    let archive = d.dir.path().join("box.bak");
    let out = d.cli(&["backup", "--out", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listeners = d.data_dir().join("listeners.json");
    let kept = std::fs::read(&listeners).unwrap();
    std::fs::remove_file(&listeners).unwrap();

    let out = d.cli(&["restore", "--yes", archive.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "restored under a running daemon: {err}"
    );
    assert!(err.contains("daemon is running"), "{err}");
    let beside: Vec<_> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data."))
        .collect();
    assert!(
        beside.is_empty(),
        "the data directory was moved: {beside:?}"
    );

    std::fs::write(&listeners, kept).unwrap();
    d.add_device(json!({"mac": "001122aabbdd"})).await;
    let d = d.restart();
    let (status, _) = d.api("GET", "/devices/001122aabbdd", None).await;
    assert_eq!(
        status, 200,
        "a write acknowledged after the refused restore was lost"
    );
}

/// Restoring replaces the whole data directory, so it asks first like every other command that
/// takes something away: without a terminal and without --yes a good backup is refused (exit 2,
/// naming --yes) once it is known to open, and the data directory stays as it was.
#[test]
fn restore_asks_first() {
    let mut d = Daemon::start();
    let file = d.dir.path().join("box.backup");
    let out = d.cli(&["backup", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    d.stop();
    let marker = d.data_dir().join("marker");
    std::fs::write(&marker, "still here").unwrap();
    let out = d.cli(&["restore", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add --yes"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "still here");
}

/// A passphrase is taken as its file's first line, byte for byte: one with a space at an end, or
/// with letters beyond ASCII, restores the backup it sealed. The daemon took it from an HTTP
/// header, whose value the server trims and reads as ASCII only: a trailing space sealed the
/// backup under another passphrase than the one its file held (the backup never restored),
/// and `pässwort` was refused as "not text".
#[test]
fn a_passphrase_restores_its_backup_whatever_its_characters() {
    let mut d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    let mut files = Vec::new();
    for (i, pass) in [" padded secret ", "pässwort ✓", "\ttabbed"]
        .iter()
        .enumerate()
    {
        let pass_file = dir.join(format!("pass{i}"));
        std::fs::write(&pass_file, format!("{pass}\n")).unwrap();
        let file = dir.join(format!("box{i}.backup"));
        let out = d.cli(&[
            "backup",
            "--out",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{pass:?}: {out:?}");
        files.push((pass, pass_file, file));
    }
    d.stop();
    for (pass, pass_file, file) in &files {
        std::fs::remove_dir_all(d.data_dir()).unwrap();
        let out = d.cli(&[
            "restore",
            "--yes",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{pass:?}: {out:?}");
        assert!(d.data_dir().join("edgeprov.redb").exists(), "{pass:?}");
    }
}

/// An empty `X-Backup-Passphrase` (or one of spaces alone, which HTTP empties) is refused: it
/// sealed a backup under the empty passphrase, which `edgeprov restore` refuses to be given,
/// so the backup could never be restored.
#[tokio::test]
async fn an_empty_backup_passphrase_is_refused() {
    let d = Daemon::start();
    for value in ["", "   "] {
        let req = http::Request::builder()
            .method("GET")
            .uri("/api/v1/backup")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", d.token))
            .header("x-backup-passphrase", value)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = send(d.admin, client_config(&d.ca_pem(), None), req)
            .await
            .unwrap();
        assert_eq!(resp.status, 400, "{value:?}: {}", resp.text());
        assert!(
            resp.text().contains("X-Backup-Passphrase: empty"),
            "{value:?}: {}",
            resp.text()
        );
    }
}
