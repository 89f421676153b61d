//! `edgeprov device set MAC …` changes a device that exists, as `PATCH /devices/{mac}` does:
//! an installer following the docs could add a device but not change it afterwards (`device
//! add` again answered 409, `param set --layer device:M` is no layer, and there was no `device
//! set`), so a secret a moved inventory lacked could not be set from the CLI at all.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const MAC: &str = "001122aabbcc";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

/// The CLI with `input` on its standard input (not a terminal) and `args` after the daemon's
/// `--config`, or, with `remote` (URL and CA file), as another machine reaches the box.
fn cli(d: &Daemon, remote: Option<(&str, &str)>, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(BIN);
    match remote {
        Some((url, ca)) => {
            command
                .args(["--url", url, "--ca-cert", ca])
                .env("EDGEPROV_TOKEN", &d.token);
        }
        None => {
            command
                .arg("--config")
                .arg(d.config_path())
                .env_remove("EDGEPROV_TOKEN");
        }
    }
    command
        .args(args)
        .env_remove("EDGEPROV_URL")
        .env_remove("EDGEPROV_CA_CERT");
    output_with_input(command, input)
}

/// The device as the API shows it.
async fn device(d: &Daemon) -> Value {
    let (status, v) = d.api("GET", &format!("/devices/{MAC}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn device_set_changes_fields_parameters_and_secrets_of_a_device() {
    let d = Daemon::start();
    for site in ["hq", "branch"] {
        ok(&cli(&d, None, &["site", "create", site], ""));
    }
    ok(&cli(
        &d,
        None,
        &[
            "device",
            "add",
            "--mac",
            "00:11:22:AA:BB:CC",
            "--model",
            "J179",
            "--site",
            "hq",
            "--param",
            "SIPDOMAIN=old.example",
            "--param",
            "VLANTEST=30",
        ],
        "",
    ));

    // Adding it again is refused, and the refusal says what changes it instead.
    let again = cli(
        &d,
        None,
        &["device", "add", "--mac", MAC, "--site", "branch"],
        "",
    );
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        stderr(&again).contains(&format!("edgeprov device set {MAC}"))
            && stderr(&again).contains("HTTP 409"),
        "{}",
        stderr(&again)
    );

    // Fields, a parameter set and one removed, a secret read from standard input.
    let set = cli(
        &d,
        None,
        &[
            "--json",
            "device",
            "set",
            MAC,
            "--site",
            "branch",
            "--group",
            "2",
            "--label",
            "desk 12",
            "--state",
            "inactive",
            "--param",
            "SIPDOMAIN=new.example",
            "--unset",
            "VLANTEST",
            "--secret",
            "SIP_PASSWORD",
        ],
        "pw from stdin\n",
    );
    let shown: Value = serde_json::from_str(&ok(&set)).expect("one JSON document");
    assert!(!stdout(&set).contains("pw from stdin"));
    let now = device(&d).await;
    assert_eq!(shown["site"], "branch", "{shown}");
    for (field, want) in [
        ("model", "J179"),
        ("site", "branch"),
        ("group", "2"),
        ("label", "desk 12"),
        ("state", "inactive"),
    ] {
        assert_eq!(now[field], want, "{field}: {now}");
    }
    assert_eq!(
        now["params"],
        serde_json::json!({"SIPDOMAIN": "new.example"}),
        "{now}"
    );
    assert_eq!(now["secrets"], serde_json::json!(["SIP_PASSWORD"]), "{now}");

    // The value is the line read: the phone itself is served it.
    ok(&cli(
        &d,
        None,
        &["device", "set", MAC, "--state", "active"],
        "",
    ));
    let certs = d.dir.path().join("certs");
    ok(&cli(
        &d,
        None,
        &[
            "pki",
            "issue-device",
            "--mac",
            MAC,
            "--out",
            certs.to_str().unwrap(),
        ],
        "",
    ));
    let id = Identity {
        cert_pem: std::fs::read_to_string(certs.join(format!("{MAC}.crt"))).unwrap(),
        key_pem: std::fs::read_to_string(certs.join(format!("{MAC}.key"))).unwrap(),
    };
    let own = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{MAC}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200);
    assert!(
        own.text().contains("SET SIP_PASSWORD \"pw from stdin\""),
        "{}",
        own.text()
    );
}

#[tokio::test]
async fn device_set_refuses_what_it_cannot_do_and_changes_nothing() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": MAC, "model": "J179", "site": "london"}))
        .await;
    let before = device(&d).await;
    let usage: [(&[&str], &str); 5] = [
        (&["device", "set", MAC], "nothing to change"),
        (
            &[
                "device",
                "set",
                MAC,
                "--secret",
                "SIP_PASSWORD=in-plain-sight",
            ],
            "never from the command line",
        ),
        (
            &["device", "set", MAC, "--state", "gone"],
            "not a device state",
        ),
        (
            &["device", "set", MAC, "--param", "SIPDOMAIN"],
            "NAME=VALUE",
        ),
        (&["device", "set", "00:11", "--label", "x"], "00:11"),
    ];
    for (args, says) in usage {
        let out = cli(&d, None, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        // The value given in the wrong place is not repeated to the terminal or a CI log.
        assert!(!stderr(&out).contains("in-plain-sight"), "{}", stderr(&out));
    }
    // The daemon's refusals: a site that does not exist, a device that does not exist, a
    // secret whose value never came.
    let refused: [(&[&str], &str); 3] = [
        (
            &["device", "set", MAC, "--site", "lodnon", "--label", "moved"],
            "there is no site \"lodnon\" (did you mean \"london\"?)",
        ),
        (
            &["device", "set", "0011220000ff", "--label", "x"],
            "device 0011220000ff not found",
        ),
        (
            &[
                "device",
                "set",
                MAC,
                "--label",
                "x",
                "--secret",
                "SIP_PASSWORD",
            ],
            "--secret SIP_PASSWORD: no value on standard input",
        ),
    ];
    for (args, says) in refused {
        let out = cli(&d, None, args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let mut after = device(&d).await;
    after["updated"] = before["updated"].clone();
    assert_eq!(after, before, "nothing changed");
}

#[tokio::test]
async fn device_set_works_from_another_machine_by_url() {
    let d = Daemon::start_with("[pki]\nserver_names = [\"127.0.0.1\", \"localhost\"]\n");
    d.add_device(serde_json::json!({"mac": MAC, "model": "J179"}))
        .await;
    let ca = d.dir.path().join("copied-ca.crt");
    std::fs::write(&ca, d.ca_pem()).unwrap();
    let url = format!("https://127.0.0.1:{}", d.admin.port());
    let out = cli(
        &d,
        Some((&url, ca.to_str().unwrap())),
        &[
            "device",
            "set",
            MAC,
            "--label",
            "by url",
            "--secret",
            "ADMIN_PIN",
        ],
        "4711\n",
    );
    let table = ok(&out);
    assert!(
        table.contains("by url") && !table.contains("4711"),
        "{table}"
    );
    let now = device(&d).await;
    assert_eq!(now["label"], "by url");
    assert_eq!(now["secrets"], serde_json::json!(["ADMIN_PIN"]), "{now}");
}

/// `device set --unset` of a name the device does not have says so, as `param unset` does: a
/// warning when something else was done, a failure (exit 1) when nothing was; the answer of
/// `PATCH` names it in `not_set`, and a patch that changes nothing is not audited as a change.
#[tokio::test]
async fn unsetting_what_a_device_does_not_have_is_said() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": MAC, "model": "J179",
        "params": {"SIPDOMAIN": "example.com"}, "secrets": {"ADMIN_PIN": "1234"}}))
        .await;

    let typo = cli(
        &d,
        None,
        &["device", "set", MAC, "--unset", "SIPDOMIAN"],
        "",
    );
    assert_eq!(typo.status.code(), Some(1), "{}", stderr(&typo));
    assert!(
        stderr(&typo).contains(&format!(
            "nothing removed: not set in device {MAC}: SIPDOMIAN"
        )),
        "{}",
        stderr(&typo)
    );
    assert!(stdout(&typo).is_empty(), "{}", stdout(&typo));
    let (_, log) = d.api("GET", "/audit?method=PATCH", None).await;
    assert_eq!(
        log[0]["summary"],
        format!("device {MAC} unchanged: not set on it: SIPDOMIAN"),
        "{log}"
    );
    assert_eq!(log[0]["changes"], serde_json::json!({}), "{log}");

    // With a change besides: done, and the name missing is a warning.
    let some = cli(
        &d,
        None,
        &[
            "--json",
            "device",
            "set",
            MAC,
            "--label",
            "desk 3",
            "--unset",
            "SIPDOMIAN",
            "--unset",
            "ADMIN_PIN",
        ],
        "",
    );
    let shown: Value = serde_json::from_str(&ok(&some)).expect("one JSON document");
    assert_eq!(
        shown["not_set"],
        serde_json::json!(["SIPDOMIAN"]),
        "{shown}"
    );
    assert!(
        stderr(&some).contains("warning: not set in device")
            && stderr(&some).contains("SIPDOMIAN")
            && !stderr(&some).contains("ADMIN_PIN"),
        "{}",
        stderr(&some)
    );
    let now = device(&d).await;
    assert_eq!(now["label"], "desk 3");
    assert_eq!(now["secrets"], serde_json::json!([]), "{now}");
    assert_eq!(
        now["params"],
        serde_json::json!({"SIPDOMAIN": "example.com"})
    );
}
