//! A peer that sends refused requests as fast as it can, all on one connection, costs the box
//! one outbox entry per kind and source, not one per request (which filled the outbox while the
//! cloud was out of reach, until every phone's check-in was dropped), and at most a log line
//! per ten seconds per kind, not one per request (past journald's rate limit the box's other
//! lines would be dropped). The alarm still counts every refused request.

#[path = "common/cloud.rs"]
mod cloud;
mod common;

use std::time::{Duration, Instant};

use cloud::Cloud;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FLOOD: usize = 200;

async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_takes_one_outbox_entry_and_few_log_lines() {
    let cloud = Cloud::start("hq");
    let d = Daemon::start_with(&format!("{}outbox_max = 50\n", cloud.config()));
    let out = d.cli(&[
        "cloud",
        "register",
        "--url",
        &cloud.url(),
        "--token",
        &cloud.token(),
    ]);
    assert!(out.status.success(), "{out:?}");
    eventually(Duration::from_secs(10), "first pull", async || {
        !d.api("GET", "/sync", None).await.1["last_pull"].is_null()
    })
    .await;
    cloud.faults().down = true;
    d.add_device(json!({"mac": "001122aabbcc", "secrets": {"SIP_PASSWORD": "s3cret"}}))
        .await;

    // Pipelined on one plain HTTP connection: no certificate, so every one is refused.
    let mut requests = "GET /001122aabbcc.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(FLOOD - 1);
    requests.push_str("GET /001122aabbcc.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(d.http.unwrap())
        .await
        .unwrap();
    conn.write_all(requests.as_bytes()).await.unwrap();
    let mut answers = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answers))
        .await
        .expect("the server answers every request")
        .unwrap();
    let answers = String::from_utf8_lossy(&answers);
    assert_eq!(answers.matches("HTTP/1.1 403").count(), FLOOD);
    assert!(!answers.contains("s3cret"));

    // A phone the inventory does not know asks for its settings after the flood.
    let ua = "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:0a0b0c0d0e0f)";
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", ua))
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let alarms = alarms.as_array().unwrap();
    let refused = alarms
        .iter()
        .find(|a| a["kind"] == "secret_without_proof")
        .expect("the refusals are alarmed");
    assert_eq!(refused["count"], FLOOD, "every refusal counted");
    assert!(
        alarms.iter().all(|a| a["kind"] != "outbox_overflow"),
        "nothing was dropped: {alarms:?}"
    );
    let (_, sync) = d.api("GET", "/sync", None).await;
    assert!(
        sync["outbox"]["events"].as_u64().unwrap() <= 5,
        "one entry for the refusals: {sync}"
    );
    let lines = d
        .log()
        .lines()
        .filter(|l| l.contains("secret_without_proof"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines for {FLOOD} refusals"
    );

    cloud.faults().down = false;
    eventually(
        Duration::from_secs(20),
        "the sighting delivered",
        async || {
            cloud
                .events_of("seen_unclaimed")
                .iter()
                .any(|e| e["mac"] == "0a0b0c0d0e0f")
        },
    )
    .await;
    let refusals = cloud.events_of("refusal");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["kind"], "secret_without_proof");
}
