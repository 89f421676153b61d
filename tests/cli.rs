//! The `edgeprov` CLI against a running daemon: tables for people, JSON for scripts, errors on
//! stderr with a non-zero exit.

mod common;

use common::*;
use serde_json::Value;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn device_lifecycle_and_certificates() {
    let d = Daemon::start();
    d.ensure_site("hq").await;
    let added = ok(&d.cli(&[
        "device",
        "add",
        "--mac",
        "00:11:22:AA:BB:CC",
        "--model",
        "J179",
        "--site",
        "hq",
        "--group",
        "2",
        "--param",
        "SIPDOMAIN=example.com",
        "--secret",
        "SIP_PASSWORD=pw 1",
        "--json",
    ]));
    let v: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(v["mac"], "001122aabbcc");
    assert_eq!(
        v["secrets"],
        serde_json::json!(["SIP_PASSWORD"]),
        "secret values are never shown"
    );
    assert!(!added.contains("pw 1"));

    let table = ok(&d.cli(&["device", "list"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("MAC"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("001122aabbcc") && row.contains("J179") && row.contains("hq"),
        "{row}"
    );

    let list: Value = serde_json::from_str(&ok(&d.cli(&["--json", "device", "list"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let shown = ok(&d.cli(&["device", "show", "001122AABBCC"]));
    assert!(
        shown.contains("param SIPDOMAIN") && shown.contains("example.com"),
        "{shown}"
    );
    assert!(shown.contains("secret SIP_PASSWORD") && !shown.contains("pw 1"));

    // A certificate from the CLI proves the device to the phone service.
    let out_dir = d.dir.path().join("certs");
    ok(&d.cli(&[
        "pki",
        "issue-device",
        "--mac",
        "00-11-22-aa-bb-cc",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    let id = Identity {
        cert_pem: std::fs::read_to_string(out_dir.join("001122aabbcc.crt")).unwrap(),
        key_pem: std::fs::read_to_string(out_dir.join("001122aabbcc.key")).unwrap(),
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out_dir.join("001122aabbcc.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ca = std::fs::read_to_string(out_dir.join("ca.crt")).unwrap();
    assert_eq!(ca, d.ca_pem());
    let r = send(
        d.https,
        client_config(&ca, Some(&id)),
        get("/001122aabbcc.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("SET SIP_PASSWORD \"pw 1\""),
        "{}",
        r.text()
    );

    // A refusal shows up in `edgeprov alarms`.
    let r = send_plain(d.http.unwrap(), get("/001122aabbcc.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let alarms = ok(&d.cli(&["alarms"]));
    assert!(alarms.contains("secret_without_proof"), "{alarms}");
    let alarms: Value = serde_json::from_str(&ok(&d.cli(&["alarms", "--json"]))).unwrap();
    assert_eq!(alarms[0]["kind"], "secret_without_proof");
    let source = alarms[0]["source"].as_str().unwrap().to_string();
    let none = ok(&d.cli(&["alarm", "--severity", "warning", "--search", "no such text"]));
    assert!(!none.contains("secret_without_proof"), "{none}");
    ok(&d.cli(&["alarm", "clear", "secret_without_proof", &source]));
    let alarms: Value = serde_json::from_str(&ok(&d.cli(&["alarms", "--json"]))).unwrap();
    assert_eq!(alarms, serde_json::json!([]), "cleared");
    let history = ok(&d.cli(&["device", "history", "001122aabbcc"]));
    assert!(history.contains("001122aabbcc.txt"), "{history}");

    ok(&d.cli(&["device", "remove", "001122aabbcc", "--yes"]));
    let gone = d.cli(&["device", "show", "001122aabbcc"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}

#[test]
fn errors_go_to_stderr_with_a_non_zero_exit() {
    let d = Daemon::start();
    for (args, expect) in [
        (
            vec!["device", "add", "--mac", "not-a-mac"],
            "not a MAC address",
        ),
        (
            vec![
                "device",
                "add",
                "--mac",
                "001122aabbcc",
                "--param",
                "NOEQUALS",
            ],
            "NAME=VALUE",
        ),
        (
            vec![
                "device",
                "add",
                "--mac",
                "001122aabbcc",
                "--param",
                "BAD NAME=x",
            ],
            "parameter name",
        ),
        (
            vec![
                "device",
                "add",
                "--mac",
                "001122aabbcc",
                "--secret",
                "PW=a\"b",
            ],
            "double quotes",
        ),
        (vec!["device", "show", "001122aabbcc"], "not found"),
        // No `[cloud] ca_file`: no cloud to sync with, not "sync requested", nor "register
        // first", which would be refused too.
        (
            vec!["cloud", "sync"],
            "cloud sync is not configured: [cloud] ca_file",
        ),
    ] {
        let out = d.cli(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Nothing half-written: the refused adds left no device behind.
    let list = ok(&d.cli(&["device", "list", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap(),
        serde_json::json!([])
    );

    // A wrong token is refused with a clear message.
    let out = std::process::Command::new(BIN)
        .args(["device", "list", "--config"])
        .arg(d.config_path())
        .env("EDGEPROV_TOKEN", "ep_wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));
}

#[tokio::test]
async fn admin_api_requires_the_token() {
    // Sixteen refusals from one address: past the default limit, which would answer 429.
    let d = Daemon::start_with("auth_failures_per_minute = 100");
    for (method, path) in [
        ("GET", "/health"),
        ("GET", "/devices"),
        ("POST", "/devices"),
        ("GET", "/devices/001122aabbcc"),
        ("PATCH", "/devices/001122aabbcc"),
        ("DELETE", "/devices/001122aabbcc"),
        ("POST", "/devices/001122aabbcc/certificate"),
        ("GET", "/alarms"),
    ] {
        let (status, _) = d.api_with_token(method, path, None, None).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = d.api_with_token(method, path, None, Some("ep_wrong")).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    let (status, v) = d.api("GET", "/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    let (status, v) = d
        .api(
            "POST",
            "/devices",
            Some(serde_json::json!({"mac": "001122aabbcc", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
}

#[tokio::test]
async fn changes_and_refusals_are_audited_with_differences() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "001122aabbcc", "params": {"SIPDOMAIN": "a.example"}}))
        .await;
    let (s, _) = d
        .api(
            "PATCH",
            "/devices/001122aabbcc",
            Some(serde_json::json!({"params": {"SIPDOMAIN": "b.example"}, "secrets": {"PW": "x"}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = d
        .api_with_token("DELETE", "/devices/001122aabbcc", None, Some("ep_wrong"))
        .await;
    assert_eq!(s, 401);
    let (s, log) = d.api("GET", "/audit", None).await;
    assert_eq!(s, 200);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    // Newest first: the refused delete, the change, the creation.
    assert_eq!(log[0]["who"], "anonymous");
    assert_eq!(log[0]["status"], 401);
    assert_eq!(log[0]["source"], "127.0.0.1");
    assert_eq!(log[1]["method"], "PATCH");
    assert_eq!(
        log[1]["changes"]["params.SIPDOMAIN"],
        serde_json::json!({"before": "a.example", "after": "b.example"})
    );
    assert_eq!(
        log[1]["changes"]["secrets"]["after"],
        serde_json::json!(["PW"]),
        "secret names, never values"
    );
    assert!(!log[1].to_string().contains("\"x\""));
    assert_eq!(log[2]["summary"], "device 001122aabbcc added");
    let (_, only) = d.api("GET", "/audit?who=anonymous", None).await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    // Search in summaries and differences.
    let (_, found) = d.api("GET", "/audit?q=B.EXAMPLE", None).await;
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["method"], "PATCH");
}

/// `edgeprov audit` filters as `GET /audit` does: by status, method, source, time and text as
/// well as by user and path. It took only --who, --resource, --limit and --before, so finding
/// the refusals of the last hour meant paging through the whole log.
#[tokio::test]
async fn the_audit_command_takes_the_filters_of_the_api() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "001122aabbcc", "params": {"SIPDOMAIN": "a.example"}}))
        .await;
    let (s, _) = d
        .api(
            "PATCH",
            "/devices/001122aabbcc",
            Some(serde_json::json!({"params": {"SIPDOMAIN": "b.example"}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = d
        .api_with_token("DELETE", "/devices/001122aabbcc", None, Some("ep_wrong"))
        .await;
    assert_eq!(s, 401);
    let audit = |args: &[&str]| {
        let mut all = vec!["--json", "audit"];
        all.extend_from_slice(args);
        let out = ok(&d.cli(&all));
        let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
        entries
            .iter()
            .map(|e| format!("{} {}", e["method"].as_str().unwrap(), e["status"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(audit(&[]), ["DELETE 401", "PATCH 200", "POST 201"]);
    assert_eq!(audit(&["--status", "401"]), ["DELETE 401"]);
    assert_eq!(audit(&["--method", "patch"]), ["PATCH 200"]);
    assert_eq!(audit(&["--search", "B.EXAMPLE"]), ["PATCH 200"]);
    assert_eq!(
        audit(&["--source", "127.0.0.1", "--status", "201"]),
        ["POST 201"]
    );
    assert!(audit(&["--source", "::1"]).is_empty());
    // Times as other commands take them, and before now as -DURATION.
    assert_eq!(audit(&["--since", "-1h", "--status", "200"]), ["PATCH 200"]);
    assert_eq!(audit(&["--since=-1h"]).len(), 3);
    assert!(audit(&["--until", "-1h"]).is_empty());
    assert!(audit(&["--since", "+1h"]).is_empty());
    assert_eq!(audit(&["--until", "2100-01-01T00:00:00Z"]).len(), 3);
    assert!(
        audit(&["--since", "4102444800"]).is_empty(),
        "2100 in Unix seconds"
    );

    let out = d.cli(&["audit", "--since", "yesterday"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--since \"yesterday\""), "{stderr}");
    let table = ok(&d.cli(&["audit", "--who", "anonymous", "--status", "401"]));
    assert!(
        table.contains("DELETE /api/v1/devices/001122aabbcc"),
        "{table}"
    );
    assert!(!table.contains("PATCH"), "{table}");
}

/// A vocabulary parameter whose values are constrained (a VLAN id is 1-4094) can be unset:
/// removing it sets no value, so there is none to check, on a layer and on a device.
#[tokio::test]
async fn a_constrained_parameter_can_be_unset() {
    let d = Daemon::start();
    ok(&d.cli(&["param", "set", "--layer", "global", "vlan.id=20"]));
    ok(&d.cli(&["param", "unset", "--layer", "global", "vlan.id"]));
    let (_, layer) = d.api("GET", "/params/global", None).await;
    assert!(layer["params"].get("vlan.id").is_none(), "{layer}");

    d.add_device(serde_json::json!({"mac": "001122334455", "params": {"vlan.id": "30"}}))
        .await;
    let (status, device) = d
        .api(
            "PATCH",
            "/devices/001122334455",
            Some(serde_json::json!({"params": {"vlan.id": null}})),
        )
        .await;
    assert_eq!(status, 200, "{device}");
    assert!(device["params"].get("vlan.id").is_none(), "{device}");
}

/// `limit=0` asks for nothing and gets nothing, from the audit log and from a device's history.
#[tokio::test]
async fn a_limit_of_zero_lists_nothing() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "001122334455"}))
        .await;
    let (_, one) = d.api("GET", "/audit?limit=1", None).await;
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    let (_, none) = d.api("GET", "/audit?limit=0", None).await;
    assert_eq!(none, serde_json::json!([]));
    let out = ok(&d.cli(&["--json", "audit", "--limit", "0"]));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([])
    );

    let ua = "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:001122334455)";
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", ua))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, one) = d
            .api("GET", "/devices/001122334455/checkins?limit=1", None)
            .await;
        if one.as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check-in was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, none) = d
        .api("GET", "/devices/001122334455/checkins?limit=0", None)
        .await;
    assert_eq!(none, serde_json::json!([]));
}

/// A daemon that takes connections but never answers them (stopped with SIGSTOP: the kernel
/// still accepts) does not hang the CLI: it gives up after its connect limit, naming the
/// address, with a non-zero exit, so a script going through many sites carries on.
#[test]
fn a_daemon_that_does_not_answer_is_given_up_on() {
    let d = Daemon::start();
    let pid = d.child.as_ref().unwrap().id();
    signal(pid, "STOP");
    let mut cli = std::process::Command::new(BIN)
        .args(["device", "list", "--config"])
        .arg(d.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exit = wait_timeout(&mut cli, std::time::Duration::from_secs(30));
    signal(pid, "CONT");
    if exit.is_none() {
        let _ = cli.kill();
    }
    let out = cli.wait_with_output().unwrap();
    assert!(exit.is_some(), "the CLI still waits after 30 s");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&d.admin.to_string()), "{err}");
    assert!(err.contains("did not answer"), "{err}");
}
/// Device 001122aabbcc's own Avaya file, fetched with a certificate `pki issue-device` made
/// for it: what the phone itself would be served.
async fn own_file(d: &Daemon) -> String {
    let certs = d.dir.path().join("certs");
    ok(&d.cli(&[
        "pki",
        "issue-device",
        "--mac",
        "001122aabbcc",
        "--out",
        certs.to_str().unwrap(),
    ]));
    let id = Identity {
        cert_pem: std::fs::read_to_string(certs.join("001122aabbcc.crt")).unwrap(),
        key_pem: std::fs::read_to_string(certs.join("001122aabbcc.key")).unwrap(),
    };
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get("/001122aabbcc.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    r.text()
}

/// `--secret NAME` keeps a secret's value off the command line (`ps`, shell history): without a
/// terminal, `device add` and `param set` read one line of standard input for each, in order,
/// and the phone gets those values; too few lines is refused, naming the secret, and nothing is
/// changed. The only way used to be `--secret NAME=VALUE`, and `NAME` alone was a usage error.
#[tokio::test]
async fn secret_values_come_from_standard_input_not_the_command_line() {
    let d = Daemon::start();
    let out = d.cli_with_input(
        &[
            "device",
            "add",
            "--mac",
            "001122aabbcc",
            "--model",
            "J179",
            "--secret",
            "SIP_PASSWORD",
            "--secret",
            "PROCPSWD",
        ],
        "pw from stdin\n271828\n",
    );
    let added = ok(&out);
    assert!(
        !added.contains("pw from stdin") && !added.contains("271828"),
        "{added}"
    );
    let out = d.cli_with_input(
        &[
            "param",
            "set",
            "--layer",
            "model:J179",
            "--secret",
            "SIP_PASSWORD",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret SIP_PASSWORD") && err.contains("standard input"),
        "{err}"
    );
    let layer: Value = serde_json::from_str(&ok(&d.cli(&[
        "--json",
        "param",
        "show",
        "--layer",
        "model:J179",
    ])))
    .unwrap();
    assert_eq!(
        layer["secrets"],
        serde_json::json!([]),
        "nothing changed: {layer}"
    );
    ok(&d.cli_with_input(
        &[
            "param",
            "set",
            "--layer",
            "global",
            "SIPDOMAIN=example.com",
            "--secret",
            "SIP_PASSWORD",
        ],
        "layer pw\r\n",
    ));
    let layer: Value = serde_json::from_str(&ok(
        &d.cli(&["--json", "param", "show", "--layer", "global"])
    ))
    .unwrap();
    assert_eq!(
        layer["secrets"],
        serde_json::json!(["SIP_PASSWORD"]),
        "{layer}"
    );

    let text = own_file(&d).await;
    assert!(
        text.contains("SET SIP_PASSWORD \"pw from stdin\""),
        "{text}"
    );
    assert!(text.contains("271828"), "{text}");
}

/// `job create set-param --secret --set NAME` takes the value the way `param set --secret NAME`
/// does, off the command line (here: standard input), and the device gets it; `--set NAME`
/// alone used to be a usage error, leaving `--set NAME=VALUE`, in `ps` and the shell's history.
#[tokio::test]
async fn a_secret_set_by_a_job_comes_from_standard_input() {
    let d = Daemon::start();
    ok(&d.cli(&["device", "add", "--mac", "001122aabbcc", "--model", "J179"]));
    let out = d.cli_with_input(
        &[
            "job",
            "create",
            "set-param",
            "--mac",
            "001122aabbcc",
            "--secret",
            "--set",
            "SIP_PASSWORD",
            "--wait",
        ],
        "job pw\n",
    );
    ok(&out);
    let jobs = ok(&d.cli(&["--json", "job", "list"]));
    assert!(!jobs.contains("job pw"), "{jobs}");

    let text = own_file(&d).await;
    assert!(text.contains("SET SIP_PASSWORD \"job pw\""), "{text}");
}

/// An installer scripting against a box learns from `--help` alone how the CLI finds the
/// daemon and its token and what the exit statuses mean: `edgeprov --help` names the
/// environment variables and the statuses, and every command's `--help` says where the token
/// comes from. Neither said a word of `EDGEPROV_TOKEN` or of the statuses.
#[test]
fn help_names_the_environment_and_the_exit_statuses() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        ok(&out)
    };
    let top = help(&[]);
    for wanted in [
        "EDGEPROV_CONFIG",
        "EDGEPROV_TOKEN",
        "admin.token",
        "listeners.json",
        "UTC",
        "Exit status: 0 done; 1 failed",
        "2 called wrongly",
        "141",
    ] {
        assert!(
            top.contains(wanted),
            "edgeprov --help lacks {wanted:?}:\n{top}"
        );
    }
    for command in [&["device", "list"][..], &["backup"], &["param", "set"]] {
        let text = help(command);
        assert!(
            text.contains("$EDGEPROV_TOKEN"),
            "{command:?} --help:\n{text}"
        );
    }
}

/// `edgeprov device list | head`: the reader closes the pipe after the lines it wants, and the
/// command ends quietly with the status a shell gives a program ended by SIGPIPE (141), not
/// with a panic and its backtrace on the terminal.
#[test]
fn a_listing_whose_reader_stops_early_ends_quietly() {
    let d = Daemon::start();
    let csv: String = std::iter::once("mac,model,serial,site,group,label\n".to_string())
        .chain((0..2000).map(|i| format!("02aa00{i:06x},J179,,hq,1,desk {i}\n")))
        .collect();
    let file = d.dir.path().join("devices.csv");
    std::fs::write(&file, csv).unwrap();
    ok(&d.cli(&["site", "create", "hq"]));
    ok(&d.cli(&["device", "import", file.to_str().unwrap()]));

    let mut child = std::process::Command::new(BIN)
        .args(["device", "list", "--config"])
        .arg(d.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the table (~100 KB, more than a pipe holds) is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// `edgeprov device export | head`: an export (a file's bytes, not a table) whose reader goes
/// away ends as quietly as a listing does, with 141, for CSV and JSON alike; it used to end
/// with `edgeprov: Broken pipe (os error 32)` and status 1, as if the export had failed.
#[test]
fn an_export_whose_reader_stops_early_ends_quietly() {
    let d = Daemon::start();
    let csv: String = std::iter::once("mac,model,serial,site,group,label\n".to_string())
        .chain((0..2000).map(|i| format!("02aa00{i:06x},J179,,hq,1,desk {i} by the window\n")))
        .collect();
    let file = d.dir.path().join("devices.csv");
    std::fs::write(&file, csv).unwrap();
    ok(&d.cli(&["site", "create", "hq"]));
    ok(&d.cli(&["device", "import", file.to_str().unwrap()]));

    for format in ["csv", "json"] {
        let mut child = std::process::Command::new(BIN)
            .args(["device", "export", "--format", format, "--config"])
            .arg(d.config_path())
            .env_remove("EDGEPROV_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the export (over 100 KB, more than a pipe holds) is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{format}: {err}");
        assert!(err.is_empty(), "{format}: {err}");
    }
}

/// With `phone.https_listen` on port 0 (the kernel's choice), `dhcp options` gives the port the
/// running daemon is bound to, and with the daemon stopped says the port is not fixed: it used
/// to print port 0, sending phones nowhere.
#[test]
fn dhcp_options_name_the_port_the_daemon_listens_on() {
    let mut d = Daemon::start();
    let port = d.https.port();
    let isc = ok(&d.cli(&["dhcp", "options", "--format", "isc"]));
    assert!(isc.contains(&format!(":{port}/")), "{isc}");
    assert!(!isc.contains(":0/"), "{isc}");
    let all: Value = serde_json::from_str(&ok(&d.cli(&["--json", "dhcp", "options"]))).unwrap();
    for (format, text) in all.as_object().unwrap() {
        let text = text.as_str().unwrap();
        assert!(text.contains(&port.to_string()), "{format}: {text}");
    }

    d.stop();
    let out = d.cli(&["dhcp", "options", "--format", "isc"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("phone.https_listen has port 0"), "{err}");
    assert!(err.contains("not fixed"), "{err}");
}

/// A refused token names where it came from and what to do, and a daemon whose admin
/// certificate the configured CA does not vouch for is named as another daemon, not reported as
/// a bare `UnknownIssuer`; a missing CA file says what it is for.
#[test]
fn connection_errors_say_what_to_do() {
    let d = Daemon::start();
    let cli_with = |config: &std::path::Path, token: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["device", "list", "--config"]).arg(config);
        match token {
            Some(t) => cmd.env("EDGEPROV_TOKEN", t),
            None => cmd.env_remove("EDGEPROV_TOKEN"),
        };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = cli_with(&d.config_path(), Some("ep_wrong"));
    assert!(
        err.contains("refused the token in $EDGEPROV_TOKEN"),
        "{err}"
    );
    assert!(err.contains("edgeprov token create"), "{err}");

    // Another configuration pointing at this daemon's admin port: its own token and CA.
    let other = d.dir.path().join("other");
    std::fs::create_dir_all(other.join("pki")).unwrap();
    let config = d.dir.path().join("other.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[admin]\nlisten = \"{}\"\n",
            other.display(),
            d.admin
        ),
    )
    .unwrap();
    std::fs::write(other.join("admin.token"), "ep_not_this_boxs\n").unwrap();
    std::fs::copy(d.data_dir().join("pki/ca.crt"), other.join("pki/ca.crt")).unwrap();
    let token_file = other.join("admin.token").display().to_string();
    let err = cli_with(&config, None);
    assert!(
        err.contains(&format!("refused the token in {token_file}")),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");

    let ca_path = other.join("pki/ca.crt").display().to_string();
    std::fs::remove_file(other.join("pki/ca.crt")).unwrap();
    let err = cli_with(&config, None);
    assert!(
        err.contains(&format!("the box's CA certificate {ca_path}")),
        "{err}"
    );
    assert!(err.contains("run as root or the daemon's user"), "{err}");

    let elsewhere = tempfile::tempdir().unwrap();
    install_provider();
    edgeprov::pki::Pki::load_or_init(
        elsewhere.path(),
        &Default::default(),
        "",
        edgeprov::pki::Revocations::none(),
    )
    .unwrap();
    std::fs::copy(elsewhere.path().join("ca.crt"), other.join("pki/ca.crt")).unwrap();
    let err = cli_with(&config, Some(&d.token));
    assert!(
        err.contains(&format!("the box's CA in {ca_path} does not vouch for")),
        "{err}"
    );
    assert!(err.contains("give its --config"), "{err}");
}

/// Removing, deleting and revoking ask first: without a terminal to ask on they are refused
/// (exit 2, naming --yes) and change nothing; on a terminal only `y` goes on. They used to act at
/// once, so a mistyped MAC or site name in a loop over sites was gone for good.
#[tokio::test]
async fn destructive_commands_ask_first() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "001122aabbcc", "site": "hq"}))
        .await;
    ok(&d.cli(&["site", "create", "branch"]));
    let token: Value = serde_json::from_str(&ok(&d.cli(&[
        "--json", "token", "create", "--role", "operator", "--site", "hq", "--user", "vera",
    ])))
    .unwrap();
    let token_id = token["id"].as_str().unwrap().to_string();
    let static_file = d.dir.path().join("specials.txt");
    std::fs::write(&static_file, "SET FOO 1\n").unwrap();
    ok(&d.cli(&[
        "file",
        "put",
        "46xxspecials.txt",
        "--from",
        static_file.to_str().unwrap(),
    ]));
    let sha = "0".repeat(64);
    ok(&d.cli(&[
        "firmware",
        "add",
        "fw.bin",
        "--models",
        "J179",
        "--version",
        "1",
        "--sha256",
        &sha,
    ]));
    ok(&d.cli(&["job", "create", "activate", "--all", "--at", "+1h"]));
    let certs = d.dir.path().join("certs");
    ok(&d.cli(&[
        "pki",
        "issue-device",
        "--mac",
        "001122aabbcc",
        "--out",
        certs.to_str().unwrap(),
    ]));
    let state = || async {
        let mut all = Vec::new();
        for path in [
            "/devices",
            "/sites",
            "/tokens",
            "/files",
            "/firmware",
            "/jobs",
            "/devices/001122aabbcc/certificates",
        ] {
            let (status, v) = d.api("GET", path, None).await;
            assert_eq!(status, 200, "{path}: {v}");
            all.push(v.to_string());
        }
        all
    };
    let before = state().await;
    for args in [
        &["device", "remove", "001122aabbcc"][..],
        &["site", "delete", "branch"],
        &["token", "revoke", &token_id],
        &["pki", "revoke", "--mac", "001122aabbcc", "--all"],
        &["file", "rm", "46xxspecials.txt"],
        &["firmware", "rm", "fw.bin"],
        &["job", "delete", "1"],
        &["job", "create", "delete", "--all"],
    ] {
        let out = d.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("add --yes"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(state().await, before, "nothing changed");

    // On a terminal (script(1) gives the command one): "n" keeps the device, "y" removes it.
    let on_terminal = |answer: &str| {
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec"])
            .arg(format!(
                "{BIN} device remove 001122aabbcc --config {}",
                d.config_path().display()
            ))
            .arg("/dev/null")
            .env_remove("EDGEPROV_TOKEN");
        output_with_input(script, answer)
    };
    let out = on_terminal("n\n");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("remove device 001122aabbcc"), "{said}");
    assert!(said.contains("not confirmed"), "{said}");
    assert_eq!(state().await, before, "nothing changed");
    let out = on_terminal("y\n");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("removed 001122aabbcc"), "{said}");
    let (status, _) = d.api("GET", "/devices/001122aabbcc", None).await;
    assert_eq!(status, 404);
}

/// A value the CLI checks itself (a MAC, a NAME=VALUE item, a format, a storm bound) is a
/// usage error: exit 2, as clap gives for an unknown option, naming the flag; a refusal by the
/// daemon stays 1. They all exited 1, so a script could not tell "called wrongly" from "failed".
#[test]
fn usage_errors_exit_2_naming_the_input() {
    let d = Daemon::start();
    let inventory = d.dir.path().join("never.csv");
    for (args, expect) in [
        (
            &["dhcp", "options", "--format", "foo"][..],
            "--format \"foo\"",
        ),
        (
            &["device", "add", "--mac", "not-a-mac"],
            "not a MAC address",
        ),
        (
            &[
                "device",
                "add",
                "--mac",
                "001122aabbcc",
                "--param",
                "NOEQUALS",
            ],
            "--param \"NOEQUALS\"",
        ),
        (
            &["device", "export", "--json", "--format", "csv"],
            "--json exports JSON",
        ),
        (
            &["job", "create", "set-param", "--all", "--set", "NOEQUALS"],
            "--set \"NOEQUALS\"",
        ),
        (&["render", "--mac", "zz", "46xxsettings.txt"], "\"zz\""),
        (&["pki", "list", "--mac", "zz"], "\"zz\""),
        (
            &[
                "storm",
                "--phones",
                "0",
                "--emit-inventory",
                inventory.to_str().unwrap(),
            ],
            "--phones must be",
        ),
        (
            &["param", "set", "NOEQUALS"],
            "\"NOEQUALS\": expected NAME=VALUE",
        ),
        (&["param", "set"], "nothing to set"),
        (
            &["firmware", "policy", "global", "J179"],
            "\"J179\": expected MODEL=POLICY",
        ),
        (
            &["firmware", "policy", "global", "J179=latest", "J179=off"],
            "J179",
        ),
        (&["job", "create", "set-param", "--all"], "--set NAME=VALUE"),
        (
            &["job", "create", "activate", "--all", "--at", "soon"],
            "--at \"soon\"",
        ),
        (&["audit", "--since", "yesterday"], "--since \"yesterday\""),
        (
            &[
                "token",
                "create",
                "--role",
                "operator",
                "--user",
                "u",
                "--expires",
                "+1y",
            ],
            "--expires \"+1y\"",
        ),
        (&["site", "set", "hq"], "nothing to change"),
        (&["prefs", "set"], "nothing to change"),
        (
            &[
                "settings",
                "eval",
                "--var",
                "MODEL4=J179G",
                "46xxsettings.txt",
            ],
            "MODEL4",
        ),
    ] {
        let out = d.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert!(!inventory.exists());
    let out = d.cli(&["device", "show", "001122aabbcc"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A box whose certificate names only its LAN name (`pki.server_names = ["prov.example.com"]`)
/// is still reachable by its own CLI: the admin certificate is checked against a name it was
/// issued for, still under the box's CA. Every command failed with "certificate not valid for
/// name 127.0.0.1".
#[test]
fn the_cli_reaches_a_box_whose_names_are_only_lan_ones() {
    let d = Daemon::start_with("[pki]\nserver_names = [\"prov.example.com\"]\n");
    let listed = ok(&d.cli(&["--json", "device", "list"]));
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap(),
        serde_json::json!([])
    );
}

/// The other commands that take something away for good ask first too: `dns records remove`
/// and `cert root remove` without a terminal are refused (exit 2, naming --yes) and leave the
/// record and the root trusted; with --yes they go.
#[tokio::test]
async fn record_and_root_removal_ask_first() {
    let d = Daemon::start_with(
        r#"
[dns]
listen = ["127.0.0.1:0"]
domain = "prov.example.lan"
"#,
    );
    let (status, record) = d
        .api(
            "POST",
            "/dns/records",
            Some(serde_json::json!({"name": "pbx.prov.example.lan", "type": "A", "value": "10.0.0.20"})),
        )
        .await;
    assert_eq!(status, 201, "{record}");
    let record_id = record["id"].as_u64().unwrap().to_string();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vendor device root");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&key).unwrap();
    let pem = d.dir.path().join("vendor.pem");
    std::fs::write(&pem, root.pem()).unwrap();
    let added: Value = serde_json::from_str(&ok(&d.cli(&[
        "--json",
        "cert",
        "root",
        "add",
        pem.to_str().unwrap(),
    ])))
    .unwrap();
    let fp = added[0]["sha256"].as_str().unwrap().to_string();
    let state = || async {
        let (s1, records) = d.api("GET", "/dns/records", None).await;
        let (s2, certs) = d.api("GET", "/certs", None).await;
        assert_eq!((s1, s2), (200, 200));
        (records, certs["roots"].clone())
    };
    let before = state().await;
    assert_eq!(before.0.as_array().unwrap().len(), 1);
    assert_eq!(before.1.as_array().unwrap().len(), 1);
    for args in [
        &["dns", "records", "remove", &record_id][..],
        &["cert", "root", "remove", &fp],
    ] {
        let out = d.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("add --yes"), "{args:?}: {err}");
        assert!(err.contains("nothing changed"), "{args:?}: {err}");
    }
    assert_eq!(state().await, before, "nothing changed");
    ok(&d.cli(&["dns", "records", "remove", "--yes", &record_id]));
    ok(&d.cli(&["cert", "root", "remove", "--yes", &fp]));
    let (records, roots) = state().await;
    assert_eq!(records, serde_json::json!([]));
    assert_eq!(roots, serde_json::json!([]));
}

/// `doctor` tells whether the kernel keeps the clock synchronised (adjtimex(2), no network):
/// one `clock` check that says "synchronised" or, as a warning with what to do, that it is not
/// (or could not be read). Which of them depends on this machine, so only the form is checked;
/// the judgement is unit-tested in `cli::doctor::clock`.
#[test]
fn doctor_says_whether_the_clock_is_synchronised() {
    let d = Daemon::start();
    let out = d.cli(&["doctor", "--json"]);
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let clock: Vec<&Value> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["area"] == "clock"
                && ["synchronised", "adjtimex"]
                    .iter()
                    .any(|w| c["message"].as_str().unwrap().contains(w))
        })
        .collect();
    assert_eq!(clock.len(), 1, "{checks}");
    let check = clock[0];
    match check["level"].as_str().unwrap() {
        "ok" => assert_eq!(check["fix"], "", "{check}"),
        "warn" => assert!(
            check["fix"]
                .as_str()
                .unwrap()
                .contains("timedatectl set-ntp true"),
            "{check}"
        ),
        other => panic!("an unsynchronised clock is a warning, not {other}: {check}"),
    }
}
