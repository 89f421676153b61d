//! A site's operator changes its sites' devices and files, but never reads a secret: not by
//! obtaining a certificate that proves one of its devices (whoever holds one is served the
//! device's whole file: its SIP password, the site PIN and the administrator's box-wide
//! secrets), and not by downloading a static file that carries secrets. Both are the
//! administrator's; a refusal says why and is audited, an administrator's download of such a
//! file is audited too.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

const HQ: &str = "001122aabbcd";

/// A token of the operator `olivia`, who holds the site `hq` only.
async fn olivia(d: &Daemon) -> String {
    d.ensure_site("hq").await;
    d.operator_token("olivia", &["hq"]).await
}

/// The CLI run with `token` in `$EDGEPROV_TOKEN`.
fn cli_as(d: &Daemon, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(d.config_path())
        .env("EDGEPROV_TOKEN", token)
        .output()
        .unwrap()
}

/// The audit entries of `who` that answered `status`, newest first.
async fn audited(d: &Daemon, who: &str, status: u16) -> Vec<Value> {
    let (s, v) = d
        .api("GET", &format!("/audit?who={who}&status={status}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

/// Reproduces the review's finding: an operator of `hq` asked for a certificate of its device,
/// presented it on the phone listener and read the administrator's global `PROCPSWD` in the
/// device's file. Now only an administrator obtains one (API and `pki issue-device`), and the
/// operator's refusal names why.
#[tokio::test]
async fn only_an_administrator_obtains_a_certificate_proving_a_device() {
    let d = Daemon::start();
    let op = olivia(&d).await;
    d.add_device(json!({"mac": HQ, "model": "J179", "site": "hq",
        "secrets": {"SIP_PASSWORD": "pw-hq"}}))
        .await;
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"secrets": {"avaya:PROCPSWD": "GLOBALPROC99"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let (s, v) = d
        .api_with_token(
            "POST",
            &format!("/devices/{HQ}/certificate"),
            Some(json!({"days": 1})),
            Some(&op),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v.get("private_key").is_none(), "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("olivia is an operator")
            && error.contains("administrator")
            && error.contains("secrets"),
        "the refusal names why: {error}"
    );
    let (s, certs) = d
        .api("GET", &format!("/devices/{HQ}/certificates"), None)
        .await;
    assert_eq!((s, certs), (200, json!([])), "nothing was issued");
    let refusals = audited(&d, "olivia", 403).await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(
        refusals[0]["resource"],
        format!("/api/v1/devices/{HQ}/certificate")
    );
    assert!(
        refusals[0]["summary"].as_str().unwrap().contains("secrets"),
        "{refusals:?}"
    );

    // The CLI (which a PKCS#12 file is made by) says the same and writes nothing.
    let out_dir = d.dir.path().join("certs");
    let pass = d.dir.path().join("p12.pass");
    std::fs::write(&pass, "Secr3t-pw\n").unwrap();
    for pkcs12 in [false, true] {
        let mut args = vec![
            "pki",
            "issue-device",
            "--mac",
            HQ,
            "--days",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        if pkcs12 {
            args.extend(["--pkcs12", "--password-file", pass.to_str().unwrap()]);
        }
        let out = cli_as(&d, &op, &args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("administrator"), "{stderr}");
        assert!(!out_dir.exists(), "pkcs12 {pkcs12}: nothing written");
    }

    // The document says who may.
    let (_, doc) = d.api("GET", "/openapi.json", None).await;
    for (method, path) in [
        ("post", "/devices/{mac}/certificate"),
        ("post", "/scep/pending/approve"),
        ("post", "/scep/pending/{mac}/approve"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["x-access"], "administrator", "{method} {path}");
        assert!(
            op["description"]
                .as_str()
                .unwrap_or_default()
                .contains("secrets"),
            "{method} {path}: {op}"
        );
    }

    // The administrator may, and what it gets proves the device: its whole file.
    let id = d.identity(HQ).await;
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{HQ}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("GLOBALPROC99"), "{}", r.text());
}

/// `GET /files/NAME?site=S` gave a site's operator the raw bytes of a file that carries
/// secrets, unaudited. Now such a file (a line gives a password a value, or it is a device's
/// own) is refused to an operator, naming the lines found but no value; the operator still
/// lists, replaces and deletes it; an administrator's download is audited.
#[tokio::test]
async fn a_file_that_carries_secrets_is_downloaded_by_an_administrator_only() {
    let d = Daemon::start();
    let op = olivia(&d).await;
    let put = |name: &str, body: &'static str| {
        let (d, op, path) = (&d, op.clone(), format!("/files/{name}?site=hq"));
        async move { d.api_bytes("PUT", &path, body, Some(&op)).await }
    };
    let secret = "SET SIPDOMAIN example.com\nSET FORCE_SIP_PASSWORD \"hunter2-site\"\n";
    let (s, v) = put("46xxsettings.txt", secret).await;
    assert_eq!(s, 201, "the operator uploads it: {v}");
    assert_eq!(v["protected"], true, "{v}");
    let (s, v) = put(&format!("{HQ}.txt"), "SET PHNNUMOFSA 3\n").await;
    assert_eq!((s, &v["protected"]), (201, &json!(true)), "{v}");
    let (s, v) = put("plain.txt", "SET PHNNUMOFSA 2\n").await;
    assert_eq!((s, &v["protected"]), (201, &json!(false)), "{v}");

    let download = |name: &str, token: &str| {
        let (d, path, token) = (&d, format!("/files/{name}?site=hq"), token.to_string());
        async move { d.get_raw(path, &token).await }
    };
    let r = download("46xxsettings.txt", &op).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let error: Value = serde_json::from_slice(&r.body).unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.contains("line 2: FORCE_SIP_PASSWORD") && error.contains("only an administrator"),
        "names the line and who may: {error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    let r = download(&format!("{HQ}.txt"), &op).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains(&format!("device {HQ}'s own")),
        "{}",
        r.text()
    );
    let r = download("plain.txt", &op).await;
    assert_eq!((r.status, r.text().as_str()), (200, "SET PHNNUMOFSA 2\n"));

    // Listing, replacing and deleting stay the site operator's.
    let (s, v) = d
        .api_with_token("GET", "/files?site=hq", None, Some(&op))
        .await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 3), "{v}");
    let (s, v) = put("46xxsettings.txt", secret).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = d
        .api_with_token(
            "DELETE",
            &format!("/files/{HQ}.txt?site=hq"),
            None,
            Some(&op),
        )
        .await;
    assert_eq!(s, 204, "{v}");

    // The CLI says why, and prints nothing of the file.
    let out = cli_as(
        &d,
        &op,
        &["file", "get", "46xxsettings.txt", "--site", "hq"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FORCE_SIP_PASSWORD"), "{stderr}");

    let refusals = audited(&d, "olivia", 403).await;
    assert_eq!(refusals.len(), 3, "API twice, CLI once: {refusals:?}");
    assert!(
        refusals.iter().all(|e| e["summary"]
            .as_str()
            .unwrap()
            .contains("only an administrator")),
        "{refusals:?}"
    );

    // The administrator downloads it whole, and that download is audited (who, file, site).
    let r = download("46xxsettings.txt", &d.token).await;
    assert_eq!((r.status, r.text().as_str()), (200, secret));
    let r = download("plain.txt", &d.token).await;
    assert_eq!(r.status, 200);
    let (_, entries) = d.api("GET", "/audit?who=admin&method=GET", None).await;
    let downloads: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]
                .as_str()
                .unwrap()
                .starts_with("/api/v1/files/")
        })
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        downloads.len(),
        1,
        "only the file with secrets: {downloads:?}"
    );
    assert!(
        downloads[0].contains("46xxsettings.txt")
            && downloads[0].contains("site hq")
            && downloads[0].contains("line 2: FORCE_SIP_PASSWORD")
            && !downloads[0].contains("hunter2"),
        "{}",
        downloads[0]
    );
}

/// An HTTP credential proves a device as its certificate does: an operator of `hq` gave its
/// device one it chose and read the global `PROCPSWD` from the device's file over plain HTTP.
/// Giving one (create, change, import) is the administrator's; allowing HTTP credentials and
/// removing one stay the site's.
#[tokio::test]
async fn only_an_administrator_gives_a_device_an_http_credential() {
    let d = Daemon::start();
    let op = olivia(&d).await;
    d.add_device(json!({"mac": HQ, "model": "J179", "site": "hq"}))
        .await;
    let credential = json!({"username": "u", "password": "chosen-by-olivia"});
    let refused = |(s, v): (u16, Value), field: &str| {
        assert_eq!(s, 403, "{v}");
        let error = v["error"].as_str().unwrap();
        assert!(
            error.starts_with(field) && error.contains("only an administrator"),
            "{error}"
        );
        assert!(!error.contains("chosen-by-olivia"), "{error}");
    };
    let patch = json!({"allow_http_auth": true, "http_credential": credential});
    refused(
        d.api_with_token("PATCH", &format!("/devices/{HQ}"), Some(patch), Some(&op))
            .await,
        "http_credential",
    );
    let new = json!({"mac": "001122aabbce", "model": "J179", "site": "hq",
        "http_credential": credential});
    refused(
        d.api_with_token("POST", "/devices", Some(new), Some(&op))
            .await,
        "http_credential",
    );
    let rows = json!([{"mac": HQ, "http_credential": credential}]).to_string();
    refused(
        d.api_bytes("POST", "/devices/import?format=json", rows, Some(&op))
            .await,
        "element 1, line 1: http_credential",
    );
    let (_, device) = d.api("GET", &format!("/devices/{HQ}"), None).await;
    assert!(device["http_username"].is_null(), "{device}");
    let (s, _) = d.api("GET", "/devices/001122aabbce", None).await;
    assert_eq!(s, 404, "not created");

    let (s, v) = d
        .api_with_token(
            "PATCH",
            &format!("/devices/{HQ}"),
            Some(json!({"allow_http_auth": true, "http_credential": null})),
            Some(&op),
        )
        .await;
    assert_eq!((s, &v["allow_http_auth"]), (200, &json!(true)), "{v}");
    let (s, v) = d
        .api(
            "PATCH",
            &format!("/devices/{HQ}"),
            Some(json!({"http_credential": credential})),
        )
        .await;
    assert_eq!((s, &v["http_username"]), (200, &json!("u")), "{v}");
}
