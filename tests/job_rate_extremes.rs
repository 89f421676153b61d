//! A job whose rate is vanishingly small (one device every 10^20 seconds) is accepted as the API
//! documents ("more than 0") and must not kill the job runner: its first device is processed at
//! once, and stopping it lets the next job run.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn job(d: &Daemon, id: u64) -> Value {
    let (status, v) = d.api("GET", &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn wait_for(d: &Daemon, id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = job(d, id).await;
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not get there: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tiny_rate_neither_kills_the_runner_nor_blocks_later_jobs() {
    let d = Daemon::start();
    for m in ["020000000001", "020000000002"] {
        d.add_device(json!({"mac": m, "model": "J179", "site": "hq", "state": "inactive"}))
            .await;
    }
    let (status, v) = d
        .api(
            "POST",
            "/jobs",
            Some(json!({"kind": "activate", "rate": 1e-20,
                        "selection": {"macs": ["020000000001", "020000000002"]}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let slow = v["id"].as_u64().unwrap();
    let j = wait_for(&d, slow, |j| j["counts"]["ok"] == 1).await;
    assert_eq!(j["state"], "running", "{j}");

    let (status, v) = d.api("POST", &format!("/jobs/{slow}/stop"), None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = d
        .api(
            "POST",
            "/jobs",
            Some(json!({"kind": "deactivate", "selection": {"macs": ["020000000001"]}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let next = v["id"].as_u64().unwrap();
    let j = wait_for(&d, next, |j| j["state"] == "done").await;
    assert_eq!(j["counts"]["ok"], 1, "{j}");
}
