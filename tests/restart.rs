//! What is acknowledged stays: restarts keep devices, PKI and token; `kill -9` right after
//! acknowledged writes loses none of them.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_devices_pki_and_token() {
    let d = Daemon::start();
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179", "secrets": {"SIP_PASSWORD": "pw"}}))
        .await;
    let ca_before = d.ca_pem();
    let server_before = std::fs::read(d.data_dir().join("pki/server.crt")).unwrap();
    let token_before = d.token.clone();
    let id = d.identity("001122aabbcc").await;

    let d = d.restart();
    assert_eq!(d.ca_pem(), ca_before, "the CA is reused, never regenerated");
    assert_eq!(std::fs::read(d.data_dir().join("pki/server.crt")).unwrap(), server_before);
    assert_eq!(d.token, token_before);
    let (status, v) = d.api("GET", "/devices/001122aabbcc", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["model"], "J179");
    // A certificate issued before the restart still proves the device.
    let r = send(d.https, client_config(&d.ca_pem(), Some(&id)), get("/001122aabbcc.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("SET SIP_PASSWORD pw"));
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let mut d = Daemon::start();
    let status = d.stop();
    assert!(status.success(), "exit status {status:?}\n{}", d.log());
    assert!(d.log().contains("stopped"));
    assert!(!d.data_dir().join("listeners.json").exists());
}

#[tokio::test]
async fn kill9_after_acknowledged_writes_loses_nothing() {
    let mut d = Daemon::start();
    for round in 0..3u8 {
        let mut macs = Vec::new();
        for i in 0..20u8 {
            let mac = format!("02000000{round:02x}{i:02x}");
            d.add_device(json!({"mac": mac, "label": format!("r{round}")})).await;
            macs.push(mac);
        }
        // The CLI path too: its success message is an acknowledgement.
        let mac = format!("020000ff00{round:02x}");
        let out = d.cli(&["device", "add", "--mac", &mac, "--param", "A=b"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        macs.push(mac);

        d.kill9();
        d = d.restart();
        for mac in &macs {
            let (status, _) = d.api("GET", &format!("/devices/{mac}"), None).await;
            assert_eq!(status, 200, "device {mac} lost after kill -9 in round {round}");
        }
    }
    let (_, list) = d.api("GET", "/devices", None).await;
    assert_eq!(list.as_array().unwrap().len(), 63);
}
