//! Model layers name a model the way firmware does: `SIP-T54W` (a Yealink User-Agent's
//! spelling) and `T54W` (an operator's) are one model.

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
