//! The data directory's file system full during admin writes: each is refused with 507 naming
//! the cause, nothing of it is stored, and once space returns the store takes writes again
//! without a restart; check-ins that could not be stored meanwhile are counted in an alarm.
//! Needs root (a tmpfs in a mount namespace of the daemon's own).

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Fills the file system of `dir` with one file, until it is full.
fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            return;
        }
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_and_they_work_again_once_space_returns() {
    let d = Daemon::start_on_tmpfs("4m");
    d.add_device(json!({"mac": "001122aabbcc", "label": "before"}))
        .await;
    let filler = d.data_dir().join("filler");
    fill(&filler);

    let refused = [
        ("POST", "/devices", json!({"mac": "001122aabbdd"})),
        ("PATCH", "/devices/001122aabbcc", json!({"label": "during"})),
        ("PATCH", "/params/global", json!({"params": {"A": "b"}})),
    ];
    for (method, path, body) in &refused {
        let (status, v) = d.api(method, path, Some(body.clone())).await;
        assert_eq!(status, 507, "{method} {path}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(
            error.contains("No space left on device") && error.contains("nothing was changed"),
            "{error}"
        );
    }
    // A phone's check-in while the disk is full cannot be stored.
    let phone = d.http.unwrap();
    let r = send_plain(phone, get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, list) = d.api("GET", "/devices", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["label"], "before");

    std::fs::remove_file(&filler).unwrap();
    // A failed attempt to open the file again is retried after a second at the earliest.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (method, path, body) in &refused {
        let (status, v) = d.api(method, path, Some(body.clone())).await;
        assert!(
            status == 200 || status == 201,
            "{method} {path}: {status} {v}"
        );
    }
    let (_, device) = d.api("GET", "/devices/001122aabbcc", None).await;
    assert_eq!(device["label"], "during");
    let (status, _) = d.api("GET", "/devices/001122aabbdd", None).await;
    assert_eq!(status, 200);
    let (_, layer) = d.api("GET", "/params/global", None).await;
    assert_eq!(layer["params"]["A"], "b", "{layer}");
    // The check-ins not stored are on record once the recorder writes again.
    let r = send_plain(phone, get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let alarm = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["source"] == "recorder: database")
        .unwrap_or_else(|| panic!("no alarm for the check-ins not stored: {alarms}"));
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("were not stored"),
        "{alarm}"
    );
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
