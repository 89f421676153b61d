//! Model layers name a model the way firmware does: `SIP-T54W` (a Yealink User-Agent's
//! spelling) and `T54W` (an operator's) are one model. So do the device filters: the
//! inventory listing (API and CLI) and a job's selection by model.

mod common;

use common::*;
use serde_json::json;

const MAC: &str = "001565aabb01";

#[tokio::test]
async fn a_model_layer_reaches_a_device_of_either_spelling_and_a_second_spelling_is_refused() {
    let d = Daemon::start();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:T54W",
            Some(json!({"params": {"ntp.server": "ntp.t54w.example"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    d.add_device(json!({"mac": MAC, "model": "SIP-T54W"})).await;

    let file = d
        .get_raw(format!("/devices/{MAC}/files/{MAC}.cfg"), &d.token)
        .await;
    assert_eq!(file.status, 200, "{}", file.text());
    let text = file.text();
    assert!(
        text.contains("local_time.ntp_server1 = ntp.t54w.example"),
        "{text}"
    );

    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:SIP-T54W",
            Some(json!({"params": {"ntp.server": "other.example"}})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("is the same model as the existing layer model:T54W"),
        "{v}"
    );
    let (s, v) = d.api("GET", "/params/model:SIP-T54W", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["params"], json!({}), "nothing was stored: {v}");
}

/// `model=T54W` finds the `SIP-T54W` and `t54w` devices as the model layer does, in the API's
/// listing, the CLI's and a job's selection; another vendor's `SIP-` model stays its own.
#[tokio::test]
async fn a_model_filter_finds_every_spelling_of_the_model() {
    let d = Daemon::start();
    for (mac, model) in [
        ("001565aabb01", "SIP-T54W"),
        ("001565aabb02", "t54w"),
        ("001565aabb03", "T46S"),
        ("001565aabb04", "J179"),
    ] {
        d.add_device(json!({"mac": mac, "model": model})).await;
    }
    let yealink_t54w = json!(["001565aabb01", "001565aabb02"]);
    let listed = |v: &serde_json::Value| -> serde_json::Value {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["mac"].clone())
            .collect()
    };
    for spelling in ["T54W", "SIP-T54W", "sip-t54w"] {
        let (s, v) = d
            .api("GET", &format!("/devices?model={spelling}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(listed(&v), yealink_t54w, "model={spelling}: {v}");
    }
    let (_, v) = d.api("GET", "/devices?model=SIP-J179", None).await;
    assert_eq!(listed(&v), json!([]), "SIP-J179 is no J179: {v}");

    let out = d.cli(&["--json", "device", "list", "--model", "T54W"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed(&v), yealink_t54w, "CLI: {v}");

    let (s, v) = d
        .api(
            "POST",
            "/jobs",
            Some(
                json!({"kind": "set_param", "name": "SIPDOMAIN", "value": "t54w.example",
                        "selection": {"model": "T54W"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let job = loop {
        let (_, j) = d.api("GET", &format!("/jobs/{id}"), None).await;
        if ["done", "failed", "stopped"].contains(&j["state"].as_str().unwrap_or_default()) {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "{j}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["counts"]["ok"], 2, "{job}");
    for (mac, set) in [
        ("001565aabb01", true),
        ("001565aabb02", true),
        ("001565aabb03", false),
        ("001565aabb04", false),
    ] {
        let (_, v) = d.api("GET", &format!("/devices/{mac}"), None).await;
        assert_eq!(
            v["params"].get("SIPDOMAIN").is_some(),
            set,
            "{mac} {}: {v}",
            v["model"]
        );
    }
}
