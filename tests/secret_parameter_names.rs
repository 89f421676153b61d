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
    assert_eq!(unproven.status, 403, "{}", unproven.text());
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

/// A parameter named as a credential, set as a plain parameter of a layer or by a `set_param`
/// job, is listed by name with the layer's secrets and its value is shown nowhere: not by
/// `GET /params/{layer}`, not in the audit entries of its changes, not in the job list. The
/// layer view, the job list and the audit log showed it in clear, while the device view
/// already hid it; its change is still audited, masked.
#[tokio::test]
async fn a_layer_or_job_shows_no_value_of_a_parameter_named_as_a_credential() {
    let d = Daemon::start();
    for value in ["271828", "314159"] {
        let (s, v) = d
            .api(
                "PATCH",
                "/params/global",
                Some(json!({"params": {"PROCPSWD": value, "SIPDOMAIN": "example.com"}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["secrets"], json!(["PROCPSWD"]), "{v}");
        assert_eq!(v["params"], json!({"SIPDOMAIN": "example.com"}), "{v}");
    }
    let (_, layer) = d.api("GET", "/params/global", None).await;
    assert_eq!(layer["secrets"], json!(["PROCPSWD"]), "{layer}");
    assert!(!layer.to_string().contains("314159"), "{layer}");

    let (s, job) = d
        .api(
            "POST",
            "/jobs",
            Some(json!({
                "kind": "set_param", "name": "SIP_PASSWORD", "value": "hunter2",
                "selection": {"all": true}, "at": 1_900_000_000
            })),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let (_, jobs) = d.api("GET", "/jobs", None).await;
    assert!(!jobs.to_string().contains("hunter2"), "{jobs}");

    let (_, audit) = d
        .api("GET", "/audit?resource=/api/v1/params/global", None)
        .await;
    let entries = audit.as_array().expect("audit entries");
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(
        entries[0].to_string().contains("params.PROCPSWD"),
        "the change is audited, masked: {audit}"
    );
    let (_, all) = d.api("GET", "/audit", None).await;
    for secret in ["271828", "314159", "hunter2"] {
        assert!(!all.to_string().contains(secret), "{secret} in {all}");
    }
}

/// Credentials whose names say key, token or community, or whose value is a URL with a login,
/// set as plain global parameters, went into the Yealink common file every phone may fetch
/// (`y000000000108.cfg`), over plain HTTP too. They stay out of it now and reach only the
/// device's own file, behind its proof; a key button stays in the common file.
#[tokio::test]
async fn keys_tokens_and_url_logins_stay_out_of_the_common_file() {
    let d = Daemon::start();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {
                "yealink:static.auto_provision.aes_key_16.com": "aes-4711",
                "yealink:static.snmp.community": "snmp-4711",
                "yealink:static.auto_provision.server.url": "https://prov:url-4711@192.0.2.1/",
                "yealink:linekey.1.type": "15"
            }})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    d.add_device(json!({"mac": MAC, "model": "T46U", "state": "active"}))
        .await;
    let ua = "Yealink SIP-T46U 108.86.0.45 00:11:22:aa:bb:cc";
    let http = d.http.unwrap();

    let common = send_plain(http, get("/y000000000108.cfg", ua))
        .await
        .unwrap();
    assert_eq!(common.status, 200, "{}", common.text());
    let text = common.text();
    assert!(text.contains("linekey.1.type = 15"), "{text}");
    assert!(!text.contains("4711"), "{text}");

    let unproven = send_plain(http, get(&format!("/{MAC}.cfg"), ua))
        .await
        .unwrap();
    assert_eq!(unproven.status, 403, "{}", unproven.text());
    assert!(!unproven.text().contains("4711"), "{}", unproven.text());

    let id = d.identity(MAC).await;
    let proven = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{MAC}.cfg"), ua),
    )
    .await
    .unwrap();
    assert_eq!(proven.status, 200, "{}", proven.text());
    let text = proven.text();
    for line in [
        "static.auto_provision.aes_key_16.com = aes-4711",
        "static.snmp.community = snmp-4711",
        "static.auto_provision.server.url = https://prov:url-4711@192.0.2.1/",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}
