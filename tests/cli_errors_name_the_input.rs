//! The CLI's refusals say what was wrong with which argument or file, whatever the API answered
//! with (plain text, a JSON error instead of a report) and whatever the name holds (spaces, `/`,
//! `?`), and say it once.

mod common;

use std::process::Command;

use common::*;

/// Runs the CLI, expects a failure with nothing on stdout, and returns stderr.
fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
    stderr
}

#[test]
fn a_refused_query_value_is_named() {
    let d = Daemon::start();
    for (args, value) in [
        (&["device", "list", "--state", "weird"][..], "weird"),
        (&["alarms", "--severity", "bogus"], "bogus"),
        (&["job", "list", "--state", "later"], "later"),
    ] {
        let err = refused(&d, args);
        assert!(
            err.contains(value) && !err.contains("no detail"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn names_with_spaces_and_slashes_reach_the_api_as_names() {
    let d = Daemon::start();
    let added = d.cli(&["device", "add", "--mac", "001122aabbcc", "--model", "J179"]);
    assert!(added.status.success(), "{added:?}");
    for (args, expect) in [
        (&["site", "show", "a b"][..], "site a b not found"),
        (&["file", "get", "a b"], "file name \"a b\""),
        (
            &["file", "rm", "--yes", "../devices"],
            "file name \"../devices\"",
        ),
        (
            &["render", "--mac", "001122aabbcc", "46xxsettings.txt?x=1"],
            "46xxsettings.txt?x=1",
        ),
        (&["token", "revoke", "--yes", "a b"], "token a b not found"),
        (
            &["cert", "root", "remove", "--yes", "a/b"],
            "fingerprint: \"a/b\"",
        ),
    ] {
        let err = refused(&d, args);
        assert!(
            err.contains(expect) && !err.contains("invalid uri") && !err.contains("no such route"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_import_refused_without_a_report_says_why() {
    let d = Daemon::start();
    let csv = d.dir.path().join("devices.csv");
    std::fs::write(&csv, "mac,model\n001122aabbcc,J179\n").unwrap();
    let err = refused(
        &d,
        &["device", "import", csv.to_str().unwrap(), "--format", "xml"],
    );
    assert!(err.contains("format") && err.contains("xml"), "{err}");
}

#[test]
fn a_firmware_upload_from_a_directory_names_it() {
    let d = Daemon::start();
    let sha = "0".repeat(64);
    let added = d.cli(&[
        "firmware",
        "add",
        "FW_S_J179_R4_1_3_0_6.bin",
        "--models",
        "J179",
        "--version",
        "4.1.3.0.6",
        "--sha256",
        &sha,
    ]);
    assert!(added.status.success(), "{added:?}");
    let dir = d.dir.path().to_str().unwrap();
    let err = refused(
        &d,
        &[
            "firmware",
            "upload",
            "FW_S_J179_R4_1_3_0_6.bin",
            "--from",
            dir,
        ],
    );
    assert!(err.contains(dir), "{err}");
}

#[test]
fn a_cause_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["storm", "--phones", "2", "--emit-inventory"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    assert!(err.contains(dir.path().to_str().unwrap()), "{err}");

    let missing = dir.path().join("missing.toml");
    let out = Command::new(BIN)
        .args(["device", "list", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
}

/// Runs the CLI and expects it to refuse with exit status `code`, nothing on stdout; returns
/// stderr.
fn refused_with(d: &Daemon, code: i32, args: &[&str]) -> String {
    let out = d.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
    stderr
}

/// An expired token was right until its expiry: the CLI says to replace it, not that it is
/// mistyped, revoked or another box's, none of which is true of it.
#[tokio::test]
async fn an_expired_token_is_told_to_be_replaced() {
    let d = Daemon::start();
    let soon = edgeprov::model::now_unix() + 2;
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(serde_json::json!({"user": "temp", "role": "administrator", "expires": soon})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let token = made["token"].as_str().unwrap();
    while edgeprov::model::now_unix() <= soon {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let with = |token: &str| {
        let out = Command::new(BIN)
            .args(["device", "list", "--config"])
            .arg(d.config_path())
            .env("EDGEPROV_TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = with(token);
    assert!(
        err.contains("$EDGEPROV_TOKEN") && err.contains("expired") && err.contains("new one"),
        "{err}"
    );
    assert!(
        !err.contains("mistyped") && !err.contains("another box"),
        "{err}"
    );
    // A wrong token is still told what may be wrong with it.
    let err = with("ep_wrong");
    assert!(
        err.contains("mistyped") && !err.contains("expired"),
        "{err}"
    );
}

/// `job create` refusals name the command line's options, not the API's fields: `--to-site`
/// for a move's destination (`--site` selects), `--search` and `--seen-before` for `q` and
/// `seen_before`. Both are usage errors, checked before anything is sent.
#[test]
fn job_create_refusals_name_the_options() {
    let d = Daemon::start();
    assert!(d.cli(&["site", "create", "s"]).status.success());
    let err = refused_with(&d, 2, &["job", "create", "move", "--site", "s"]);
    assert!(
        err.contains("--to-site") && err.contains("--to-group"),
        "{err}"
    );
    assert!(!err.contains("site: a move"), "{err}");

    let err = refused_with(&d, 2, &["job", "create", "activate"]);
    for option in [
        "--mac",
        "--site",
        "--search",
        "--seen-before",
        "--seen-after",
        "--all",
    ] {
        assert!(err.contains(option), "{option}: {err}");
    }
    for field in ["macs", "seen_before", " q,", "\"all\""] {
        assert!(!err.contains(field), "{field}: {err}");
    }
    let err = refused_with(&d, 2, &["job", "create", "activate", "--mac", "00112233zz"]);
    assert!(
        err.contains("--mac: not a MAC address: \"00112233zz\""),
        "{err}"
    );
    assert!(!err.contains("selection.macs"), "{err}");
    let err = refused_with(&d, 2, &["job", "create", "activate", "--state", "gone"]);
    assert!(
        err.contains("--state") && err.contains("not a device state (active, inactive"),
        "{err}"
    );
    assert!(!err.contains("selection.state"), "{err}");
    let jobs = d.cli(&["--json", "job", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&jobs.stdout).trim(),
        "[]",
        "nothing was sent"
    );
}

/// A past `--expires` is quoted as it was typed (and in UTC), not as the Unix seconds the API
/// would have been sent.
#[test]
fn a_past_expiry_is_quoted_as_given() {
    let d = Daemon::start();
    let err = refused_with(
        &d,
        2,
        &[
            "token",
            "create",
            "--role",
            "administrator",
            "--user",
            "late",
            "--expires",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert!(
        err.contains("--expires \"2020-01-01T00:00:00Z\"") && err.contains("not in the future"),
        "{err}"
    );
    assert!(!err.contains("1577836800"), "{err}");
}

/// A file the API refuses is named: the API sees only its content.
#[test]
fn a_refused_certificate_file_is_named() {
    let d = Daemon::start();
    let key = d.dir.path().join("srv.key");
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(&key, pem).unwrap();
    let path = key.to_str().unwrap();
    let err = refused_with(&d, 1, &["cert", "root", "add", path]);
    assert!(
        err.contains(&format!("{path}: no PEM certificate")),
        "{err}"
    );
    let err = refused_with(&d, 1, &["cert", "install", "--pem", path]);
    assert!(err.contains(path), "{err}");
}

/// A sort field the API does not know is answered with the ones it does.
#[test]
fn a_refused_sort_field_lists_the_valid_ones() {
    let d = Daemon::start();
    let err = refused_with(&d, 1, &["device", "list", "--sort", "bogus"]);
    assert!(
        err.contains("\"bogus\"") && err.contains("last_seen") && err.contains("updated"),
        "{err}"
    );
}
