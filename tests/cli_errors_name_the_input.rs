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
