//! `--json` makes every command print one JSON document on stdout: the commands that print a
//! file (render, file get, device export, dhcp options, settings lint and eval) and those that
//! only confirm (file rm, token revoke, firmware rm, site delete) included.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Runs the CLI with `--json`, expects success and returns the one JSON document it printed.
fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = d.cli(&all);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn commands_that_print_files_or_confirm_print_json() {
    let d = Daemon::start();
    let added = d.cli(&["device", "add", "--mac", "001122aabbcc", "--model", "J179"]);
    assert!(added.status.success(), "{added:?}");

    let rendered = json(&d, &["render", "--mac", "001122aabbcc", "46xxsettings.txt"]);
    assert_eq!(rendered["name"], "46xxsettings.txt");
    assert!(
        rendered["content"].as_str().unwrap().contains("GET "),
        "{rendered}"
    );

    let exported = json(&d, &["device", "export"]);
    assert_eq!(exported[0]["mac"], "001122aabbcc");

    let static_file = d.dir.path().join("46xxspecials.txt");
    std::fs::write(&static_file, "SET FOO 1\n").unwrap();
    let put = d.cli(&[
        "file",
        "put",
        "46xxspecials.txt",
        "--from",
        static_file.to_str().unwrap(),
    ]);
    assert!(put.status.success(), "{put:?}");
    let got = json(&d, &["file", "get", "46xxspecials.txt"]);
    assert_eq!(got["content"], "SET FOO 1\n");
    let removed = json(&d, &["file", "rm", "--yes", "46xxspecials.txt"]);
    assert_eq!(removed["removed"], "46xxspecials.txt");

    assert!(d.cli(&["site", "create", "hq"]).status.success());
    let token = json(
        &d,
        &[
            "token", "create", "--role", "operator", "--site", "hq", "--user", "olivia",
        ],
    );
    let id = token["id"].as_str().unwrap().to_string();
    let revoked = json(&d, &["token", "revoke", "--yes", &id]);
    assert_eq!(revoked["revoked"], id);

    let sha = "0".repeat(64);
    let release = d.cli(&[
        "firmware",
        "add",
        "fw.bin",
        "--models",
        "J179",
        "--version",
        "1",
        "--sha256",
        &sha,
    ]);
    assert!(release.status.success(), "{release:?}");
    let removed = json(&d, &["firmware", "rm", "--yes", "fw.bin"]);
    assert_eq!(removed["removed"], "fw.bin");

    let site = d.cli(&["site", "create", "branch"]);
    assert!(site.status.success(), "{site:?}");
    let deleted = json(&d, &["site", "delete", "--yes", "branch"]);
    assert_eq!(deleted["deleted"], "branch");

    let options = json(&d, &["dhcp", "options", "--format", "isc"]);
    assert!(
        options["isc"].as_str().unwrap().contains("242"),
        "{options}"
    );
}

#[test]
fn settings_lint_and_eval_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("46xxsettings.txt");
    std::fs::write(&file, "SET A 1\nNOT A STATEMENT\nGET extra.txt\n").unwrap();
    std::fs::write(dir.path().join("extra.txt"), "SET B 2\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg(&file)
            .arg("--json")
            .output()
            .unwrap()
    };
    let lint = run(&["settings", "lint"]);
    let findings: Value = serde_json::from_slice(&lint.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&lint.stdout));
    });
    assert_eq!(findings[0]["line"], 2, "{findings}");
    assert_eq!(findings[0]["severity"], "warning", "{findings}");
    assert!(lint.status.success(), "{lint:?}");

    let eval = run(&["settings", "eval"]);
    assert!(eval.status.success(), "{eval:?}");
    let v: Value = serde_json::from_slice(&eval.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&eval.stdout));
    });
    assert_eq!(v["settings"][1]["name"], "B", "{v}");
    assert_eq!(v["settings"][1]["file"], "extra.txt", "{v}");
    assert_eq!(v["completed"], true, "{v}");
}

/// Commands that write their result to a file print, with `--json`, one document saying what
/// they wrote: `device export --out` and `storm --emit-inventory` printed nothing at all.
#[test]
fn commands_that_write_a_file_print_json_saying_so() {
    let d = Daemon::start();
    let added = d.cli(&["device", "add", "--mac", "001122aabbcc", "--model", "J179"]);
    assert!(added.status.success(), "{added:?}");
    let file = d.dir.path().join("devices.json");
    let exported = json(&d, &["device", "export", "--out", file.to_str().unwrap()]);
    assert_eq!(exported["file"], file.to_str().unwrap(), "{exported}");
    assert_eq!(exported["format"], "json", "{exported}");
    let written = std::fs::read(&file).unwrap();
    assert_eq!(exported["bytes"], written.len(), "{exported}");
    let devices: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(devices[0]["mac"], "001122aabbcc");

    let csv = d.dir.path().join("devices.csv");
    let out = d.cli(&["device", "export", "--out", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&format!("wrote {} (csv, ", csv.display())),
        "{said}"
    );

    let inventory = d.dir.path().join("storm.csv");
    let emitted = json(
        &d,
        &[
            "storm",
            "--phones",
            "3",
            "--emit-inventory",
            inventory.to_str().unwrap(),
        ],
    );
    assert_eq!(
        emitted["inventory"],
        inventory.to_str().unwrap(),
        "{emitted}"
    );
    assert_eq!(emitted["phones"], 3, "{emitted}");
    assert_eq!(
        std::fs::read_to_string(&inventory).unwrap().lines().count(),
        4
    );
}
