//! A parameter whose name says it holds a credential is a secret wherever it is set: Avaya's
//! `PROCPSWD` (the craft procedures password) and `DOT1XPSWD`, a `SIP_SECRET`, set as plain
//! parameters, stay out of the files every phone may fetch and put a per-device file behind the
//! device's proof, exactly as the same names do in an uploaded static file.

mod common;

use common::*;
use serde_json::json;

const MAC: &str = "001122aabbcc";

#[tokio::test]
async fn parameters_named_as_credentials_are_secrets() {
    let d = Daemon::start();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"PROCPSWD": "271828", "SIPDOMAIN": "example.com"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    d.add_device(json!({
        "mac": MAC, "model": "J179", "state": "active",
        "params": {"DOT1XPSWD": "hunter2", "avaya:SIP_SECRET": "s3"}
    }))
    .await;
    let http = d.http.unwrap();

    let common = send_plain(http, get("/46xxsettings.txt", "curl/8"))
        .await
        .unwrap();
    assert_eq!(common.status, 200);
    assert!(
        common.text().contains("SIPDOMAIN example.com"),
        "{}",
        common.text()
    );
    assert!(!common.text().contains("271828"), "{}", common.text());

    let unproven = send_plain(http, get(&format!("/{MAC}.txt"), J179_UA))
        .await
        .unwrap();
    assert_eq!(unproven.status, 401, "{}", unproven.text());
    for secret in ["271828", "hunter2", "s3"] {
        assert!(!unproven.text().contains(secret), "{}", unproven.text());
    }

    let id = d.identity(MAC).await;
    let proven = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{MAC}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(proven.status, 200);
    let text = proven.text();
    for line in [
        "SET PROCPSWD 271828",
        "SET DOT1XPSWD hunter2",
        "SET SIP_SECRET s3",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

/// A secret stays a secret in every spelling of its name: `SIP_TOKEN` declared secret globally
/// and `avaya:sip_token` set plainly at a group reach the same Avaya setting (phones upper-case
/// names), so the group's value stays out of `46xxsettings.txt`, which every phone may fetch.
#[tokio::test]
async fn a_secret_in_another_spelling_stays_out_of_the_common_file() {
    let d = Daemon::start();
    for (layer, body) in [
        ("global", json!({"secrets": {"SIP_TOKEN": "global-token"}})),
        (
            "group:2",
            json!({"params": {"avaya:sip_token": "group-token", "SIPDOMAIN": "g2.example"}}),
        ),
    ] {
        let (s, v) = d
            .api("PATCH", &format!("/params/{layer}"), Some(body))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let common = send_plain(d.http.unwrap(), get("/46xxsettings.txt", "curl/8"))
        .await
        .unwrap();
    assert_eq!(common.status, 200);
    let text = common.text();
    assert!(text.contains("SET SIPDOMAIN g2.example"), "{text}");
    assert!(!text.contains("token"), "{text}");
}
