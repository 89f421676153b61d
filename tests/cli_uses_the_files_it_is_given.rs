//! The CLI reads and writes the files named on its command line: `backup --out NAME` in the
//! current directory, `settings eval FILE --dir DIR` evaluating FILE itself (DIR is only where
//! its GETs are found), and a directory given as FILE refused by name.

mod common;

use std::process::Command;

use common::*;

#[test]
fn backup_to_a_bare_file_name_writes_it_in_the_current_directory() {
    let d = Daemon::start();
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["backup", "--out", "box.tar", "--config"])
        .arg(d.config_path())
        .current_dir(cwd.path())
        .env_remove("EDGEPROV_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote box.tar"));
    let written = std::fs::metadata(cwd.path().join("box.tar")).unwrap();
    assert!(written.len() > 0);
}

#[test]
fn settings_eval_evaluates_the_file_given_and_gets_from_dir() {
    let here = tempfile::tempdir().unwrap();
    let there = tempfile::tempdir().unwrap();
    let file = here.path().join("46xxsettings.txt");
    std::fs::write(&file, "SET MINE 1\nGET extra.txt\n").unwrap();
    std::fs::write(there.path().join("46xxsettings.txt"), "SET OTHER 1\n").unwrap();
    std::fs::write(there.path().join("extra.txt"), "SET EXTRA 2\n").unwrap();
    let out = Command::new(BIN)
        .args(["settings", "eval"])
        .arg(&file)
        .arg("--dir")
        .arg(there.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("MINE=1") && stdout.contains("EXTRA=2"),
        "{stdout}"
    );
    assert!(!stdout.contains("OTHER"), "{stdout}");
}

#[test]
fn settings_eval_of_a_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["settings", "eval"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(dir.path().to_str().unwrap()) && stderr.contains("directory"),
        "{stderr}"
    );
}
