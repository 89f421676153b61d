//! The CLI managing a box from another machine (`edgeprov --url https://HOST:PORT --ca-cert
//! FILE`, token in `$EDGEPROV_TOKEN`): it reads nothing of a local data directory, checks the
//! box's certificate against the given CA and the URL's host, and names what is wrong in one
//! line when it cannot.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// The daemon's certificate names only 127.0.0.1, so `localhost` is a host it does not name.
const ONLY_LOOPBACK_IP: &str = "[pki]\nserver_names = [\"127.0.0.1\"]\n";

/// `edgeprov ARGS` on "another machine": a config whose data directory is empty, run in an
/// empty directory, with `token` (if any) as `$EDGEPROV_TOKEN`.
fn remote(elsewhere: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let data = elsewhere.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = elsewhere.join("edgeprov.toml");
    std::fs::write(&config, base_config(&data, "")).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--config")
        .arg(&config)
        .current_dir(elsewhere)
        .env_remove("EDGEPROV_TOKEN")
        .env_remove("EDGEPROV_URL")
        .env_remove("EDGEPROV_CA_CERT")
        .env_remove("EDGEPROV_CONFIG");
    if let Some(token) = token {
        command.env("EDGEPROV_TOKEN", token);
    }
    command.output().expect("run edgeprov")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status and standard error of a command expected to fail, with its one line.
fn refused(out: &Output) -> (i32, String) {
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    (out.status.code().unwrap(), err)
}

/// The daemon's CA, copied to the other machine as an administrator would.
fn copied_ca(d: &Daemon, elsewhere: &Path) -> String {
    let path = elsewhere.join("box-ca.crt");
    std::fs::write(&path, d.ca_pem()).unwrap();
    path.display().to_string()
}

#[test]
fn a_box_is_listed_and_changed_by_url_with_its_ca_and_a_token() {
    let d = Daemon::start_with(ONLY_LOOPBACK_IP);
    let elsewhere = tempfile::tempdir().unwrap();
    let ca = copied_ca(&d, elsewhere.path());
    let url = format!("https://127.0.0.1:{}", d.admin.port());
    let site = remote(
        elsewhere.path(),
        Some(&d.token),
        &["--url", &url, "--ca-cert", &ca, "site", "create", "hq"],
    );
    assert!(site.status.success(), "site create: {}", stderr(&site));
    let add = remote(
        elsewhere.path(),
        Some(&d.token),
        &[
            "--url",
            &url,
            "--ca-cert",
            &ca,
            "device",
            "add",
            "--mac",
            "00:11:22:33:44:55",
            "--model",
            "J179",
            "--site",
            "hq",
        ],
    );
    assert!(add.status.success(), "device add: {}", stderr(&add));
    let list = remote(
        elsewhere.path(),
        Some(&d.token),
        &["--url", &url, "--ca-cert", &ca, "device", "list", "--json"],
    );
    assert!(list.status.success(), "device list: {}", stderr(&list));
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    let macs: Vec<&str> = listed
        .as_array()
        .or_else(|| listed["devices"].as_array())
        .expect("a list of devices")
        .iter()
        .filter_map(|d| d["mac"].as_str())
        .collect();
    assert_eq!(macs, ["001122334455"]);
    // The other machine's data directory stays as it was: nothing was read or made there.
    assert_eq!(
        std::fs::read_dir(elsewhere.path().join("data"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_box_by_url_refuses_what_cannot_be_trusted_naming_it() {
    let d = Daemon::start_with(ONLY_LOOPBACK_IP);
    let elsewhere = tempfile::tempdir().unwrap();
    let here = elsewhere.path();
    let ca = copied_ca(&d, here);
    let port = d.admin.port();
    let url = format!("https://127.0.0.1:{port}");
    let token = Some(d.token.as_str());

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = here.join("other-ca.crt");
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let other_ca = other_ca.display().to_string();
    let (code, err) = refused(&remote(
        here,
        token,
        &["--url", &url, "--ca-cert", &other_ca, "device", "list"],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not signed by the CA in") && err.contains(&other_ca),
        "{err}"
    );

    let by_name = format!("https://localhost:{port}");
    let (code, err) = refused(&remote(
        here,
        token,
        &["--url", &by_name, "--ca-cert", &ca, "device", "list"],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not name \"localhost\"") && err.contains("pki.server_names"),
        "{err}"
    );

    let plain = format!("http://127.0.0.1:{port}");
    let (code, err) = refused(&remote(
        here,
        token,
        &["--url", &plain, "--ca-cert", &ca, "device", "list"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plain http:// is refused"), "{err}");

    let (code, err) = refused(&remote(
        here,
        None,
        &["--url", &url, "--ca-cert", &ca, "device", "list"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--url needs a token: set EDGEPROV_TOKEN"),
        "{err}"
    );

    let (code, err) = refused(&remote(here, token, &["--url", &url, "device", "list"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--url needs --ca-cert FILE") && err.contains("pki/ca.crt"),
        "{err}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, err) = refused(&remote(
        here,
        token,
        &[
            "--url",
            &format!("https://127.0.0.1:{closed_port}"),
            "--ca-cert",
            &ca,
            "device",
            "list",
        ],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach the edgeprov admin API at 127.0.0.1:{closed_port}"
        )),
        "{err}"
    );

    let (code, err) = refused(&remote(
        here,
        token,
        &["--url", &url, "--ca-cert", &ca, "doctor"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("doctor works on this machine"), "{err}");
}

/// `--url` naming the box's phone port, which presents the same certificate, answered `not
/// found (HTTP 404)`, as if the device list were missing: the CLI now says that the address did
/// not answer as the admin API, perhaps a phone listener, and what `admin.listen` is for.
#[test]
fn a_url_naming_the_phone_port_is_said_to_be_no_admin_api() {
    let d = Daemon::start_with(ONLY_LOOPBACK_IP);
    let elsewhere = tempfile::tempdir().unwrap();
    let ca = copied_ca(&d, elsewhere.path());
    let phone = format!("127.0.0.1:{}", d.https.port());
    let url = format!("https://{phone}");
    for args in [
        &["device", "list"][..],
        &["device", "set", "001122334455", "--label", "x"],
    ] {
        let out = remote(
            elsewhere.path(),
            Some(&d.token),
            &[&["--url", &url, "--ca-cert", &ca][..], args].concat(),
        );
        let (code, err) = refused(&out);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{phone} did not answer as the edgeprov admin API (HTTP "
            )) && err.contains("phone listener")
                && err.contains("admin.listen"),
            "{args:?}: {err}"
        );
    }
    // The admin port still answers as before.
    let admin = format!("https://127.0.0.1:{}", d.admin.port());
    let out = remote(
        elsewhere.path(),
        Some(&d.token),
        &[
            "--url",
            &admin,
            "--ca-cert",
            &ca,
            "device",
            "show",
            "001122334455",
        ],
    );
    let (code, err) = refused(&out);
    assert_eq!(code, 1);
    assert!(
        err.contains("device 001122334455 not found (HTTP 404)"),
        "{err}"
    );
}
