//! The CLI covers the API's filters: devices by when they were last seen (`--seen-before`,
//! `--seen-after`) in `device list` and in `job create` selections, groups and static files by
//! site; and a page printed with `--json` says the list's total on stderr.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SEEN: &str = "001122334455";
const SILENT: &str = "001122334466";

/// Runs the CLI with `--json`, expects success, and returns the document and stderr.
fn json_out(d: &Daemon, args: &[&str]) -> (Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = d.cli(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (value, stderr)
}

/// The `field` of every element of a JSON array.
fn each(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

/// One phone checks in, one never does: "silent for a while" selects the second, in a listing
/// and in a job, with the time written as `job create --at` takes it.
#[tokio::test]
async fn devices_are_selected_by_when_they_were_last_seen() {
    let d = Daemon::start();
    for mac in [SEEN, SILENT] {
        d.add_device(json!({"mac": mac, "model": "J179"})).await;
    }
    let ua = format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{SEEN})");
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &ua))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.api("GET", &format!("/devices/{SEEN}"), None).await.1["checkin"].is_null() {
        assert!(Instant::now() < deadline, "the check-in was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let macs = |filter: &[&str]| {
        let mut args = vec!["device", "list"];
        args.extend_from_slice(filter);
        each(&json_out(&d, &args).0, "mac")
    };
    assert_eq!(macs(&["--seen-before", "-1h"]), [SILENT]);
    assert_eq!(macs(&["--seen-after=-1h"]), [SEEN]);
    let in_an_hour = (edgeprov::model::now_unix() + 3600).to_string();
    assert_eq!(macs(&["--seen-before", &in_an_hour]), [SEEN, SILENT]);
    assert_eq!(
        macs(&[
            "--seen-after",
            "2000-01-01T00:00:00Z",
            "--seen-before",
            "+1h"
        ]),
        [SEEN]
    );

    let out = d.cli(&["device", "list", "--seen-after", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--seen-after \"yesterday\""), "{err}");

    let before = edgeprov::model::now_unix() - 3600;
    let (job, _) = json_out(
        &d,
        &[
            "job",
            "create",
            "deactivate",
            "--seen-before",
            "-1h",
            "--wait",
        ],
    );
    let sent = job["selection"]["seen_before"].as_i64().unwrap();
    assert!((before..before + 60).contains(&sent), "{job}");
    assert_eq!(each(&job["results"], "mac"), [SILENT], "{job}");
    for (mac, state) in [(SEEN, "active"), (SILENT, "inactive")] {
        let (_, v) = d.api("GET", &format!("/devices/{mac}"), None).await;
        assert_eq!(v["state"], state, "{mac}: {v}");
    }
}

/// `group list --site` and `file list --site` pass the API's `site` filter on.
#[tokio::test]
async fn groups_and_files_are_listed_by_site() {
    let d = Daemon::start();
    d.add_device(json!({"mac": SEEN, "site": "hq", "group": "desk"}))
        .await;
    d.add_device(json!({"mac": SILENT, "site": "branch", "group": "lobby"}))
        .await;
    d.put_file("46xxspecials.txt?site=hq", "SET A 1\n").await;
    d.put_file("46xxspecials.txt?site=branch", "SET A 2\n")
        .await;
    d.put_file("46xxspecials.txt", "SET A 3\n").await;

    let (groups, _) = json_out(&d, &["group", "list", "--site", "hq"]);
    assert_eq!(groups, json!([{"name": "desk", "devices": 1}]));
    let (groups, _) = json_out(&d, &["group", "list"]);
    assert_eq!(each(&groups, "name"), ["desk", "lobby"]);

    let (files, _) = json_out(&d, &["file", "list", "--site", "branch"]);
    assert_eq!(each(&files, "site"), ["branch"], "{files}");
    let (files, _) = json_out(&d, &["file", "list"]);
    assert_eq!(files.as_array().unwrap().len(), 3, "{files}");
}

/// A `--json` page is the API's array on stdout, as ever; the list's total goes to stderr
/// as under a table, only when the page leaves entries out.
#[tokio::test]
async fn a_json_page_says_the_total_on_stderr() {
    let d = Daemon::start();
    for mac in [SEEN, SILENT] {
        d.add_device(json!({"mac": mac})).await;
    }
    let (page, stderr) = json_out(&d, &["device", "list", "--limit", "1"]);
    assert_eq!(each(&page, "mac"), [SEEN]);
    assert_eq!(
        stderr.trim(),
        "showing 1 of 2; --offset 1 for the next page"
    );
    let (page, stderr) = json_out(&d, &["device", "list"]);
    assert_eq!(each(&page, "mac"), [SEEN, SILENT]);
    assert_eq!(stderr, "");
}
