//! A device, a move job and an operator's token name only a site that exists (a record, or a
//! device already in it): a typo (`lodnon`) is refused naming the field, the site and the
//! existing site it likely meant, instead of silently making a site nobody configured. An
//! import creates the sites it names only when told to.

mod common;

use common::*;
use serde_json::json;

async fn refused(d: &Daemon, method: &str, path: &str, body: serde_json::Value, field: &str) {
    let (s, v) = d.api(method, path, Some(body)).await;
    assert_eq!(s, 400, "{method} {path}: {v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with(&format!("{field}: ")), "{e}");
    assert!(e.contains("\"lodnon\""), "names the site: {e}");
    assert!(e.contains("did you mean \"london\""), "suggests: {e}");
}

#[tokio::test]
async fn every_operator_path_refuses_a_site_that_does_not_exist() {
    let d = Daemon::start();
    let (s, v) = d
        .api("POST", "/sites", Some(json!({"name": "london"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let dev = json!({"mac": "00:11:22:aa:bb:01", "model": "J179", "site": "lodnon"});
    refused(&d, "POST", "/devices", dev, "site").await;
    d.add_device(json!({"mac": "00:11:22:aa:bb:01", "model": "J179", "site": "london"}))
        .await;
    let patch = json!({"site": "lodnon"});
    refused(&d, "PATCH", "/devices/00:11:22:aa:bb:01", patch, "site").await;
    let job = json!({"kind": "move", "site": "lodnon", "selection": {"site": "london"}});
    refused(&d, "POST", "/jobs", job, "site").await;
    let token = json!({"user": "olivia", "role": "operator", "sites": ["lodnon"]});
    refused(&d, "POST", "/tokens", token, "sites").await;
    let (_, sites) = d.api("GET", "/sites", None).await;
    let names: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["london"], "no site was made");

    // The CLI says it on one line and fails.
    let out = d.cli(&[
        "device",
        "add",
        "--mac",
        "00:11:22:aa:bb:02",
        "--site",
        "lodnon",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lodnon") && err.contains("london"), "{err}");
}

#[tokio::test]
async fn an_import_creates_the_sites_it_names_only_when_told_to() {
    let d = Daemon::start();
    let (s, v) = d
        .api("POST", "/sites", Some(json!({"name": "london"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phones.csv");
    std::fs::write(
        &file,
        "mac,model,site\n001122aabb01,J179,lodnon\n001122aabb02,J179,paris\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = d.cli(&["device", "import", file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2: site: there is no site \"lodnon\" (did you mean \"london\"?)"),
        "{err}"
    );
    assert!(
        err.contains(":3: site: there is no site \"paris\";"),
        "{err}"
    );
    assert!(err.contains("--create-sites"), "{err}");
    let (_, health) = d.api("GET", "/health", None).await;
    assert_eq!(health["devices"], 0, "nothing imported");

    let out = d.cli(&["device", "import", file, "--create-sites"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sites created: lodnon, paris"), "{text}");
    let (s, v) = d.api("GET", "/sites/paris", None).await;
    assert_eq!((s, &v["created"]), (200, &json!(true)), "{v}");
}

/// The answer of a refused request: its status and its error message.
async fn refusal(d: &Daemon, method: &str, path: &str, body: Option<serde_json::Value>) -> String {
    let (s, v) = d.api(method, path, body).await;
    assert_eq!(s, 400, "{method} {path}: {v}");
    v["error"].as_str().unwrap().to_string()
}

/// A job's `selection.site` and the `site` filter of the device list, the export and the
/// group list name a site that exists: a typo was taken as a selection of no device, so a job reported `done` over 0
/// devices (or, scheduled for the night, did nothing then) and a listing answered an empty
/// list, each as if the site had no phones. A site that exists with no devices still selects
/// none, without complaint.
#[tokio::test]
async fn a_selection_or_a_filter_naming_no_site_is_refused() {
    let d = Daemon::start();
    d.add_device(json!({"mac": "00:11:22:aa:bb:01", "model": "J179", "site": "london"}))
        .await;
    d.ensure_site("paris").await;

    for body in [
        json!({"kind": "deactivate", "selection": {"site": "lodnon"}}),
        json!({"kind": "delete", "selection": {"site": "lodnon", "model": "J179"}, "at": 4_000_000_000u64}),
    ] {
        let e = refusal(&d, "POST", "/jobs", Some(body)).await;
        assert!(e.starts_with("selection.site: "), "{e}");
        assert!(
            e.contains("\"lodnon\"") && e.contains("did you mean \"london\""),
            "{e}"
        );
    }
    let (_, jobs) = d.api("GET", "/jobs", None).await;
    assert_eq!(jobs, json!([]), "no job was stored");

    for path in [
        "/devices?site=lodnon",
        "/devices/export?site=lodnon&format=json",
        "/groups?site=lodnon",
        "/files?site=lodnon",
        "/scep/pending?site=lodnon",
    ] {
        let e = refusal(&d, "GET", path, None).await;
        assert!(e.starts_with("site: "), "{e}");
        assert!(
            e.contains("\"lodnon\"") && e.contains("did you mean \"london\""),
            "{e}"
        );
    }

    // The CLI fails on one line naming both, for a job run now or at night alike.
    for when in [&["--wait"][..], &["--at", "+2h"][..]] {
        let mut args = vec!["job", "create", "deactivate", "--site", "lodnon"];
        args.extend_from_slice(when);
        let out = d.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("lodnon") && err.contains("london"), "{err}");
    }
    for args in [
        &["device", "list", "--site", "lodnon"][..],
        &["device", "export", "--site", "lodnon"],
    ] {
        let out = d.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("lodnon") && err.contains("london"), "{err}");
    }

    // A site that exists and has no devices is an empty answer, and an empty job.
    let (s, v) = d.api("GET", "/devices?site=paris", None).await;
    assert_eq!((s, v), (200, json!([])));
    for path in [
        "/devices/export?site=paris&format=json",
        "/groups?site=paris",
        "/files?site=paris",
        "/scep/pending?site=paris",
    ] {
        let (s, v) = d.api("GET", path, None).await;
        assert_eq!((s, v), (200, json!([])), "{path}");
    }
    // An empty `site` names no site: it lists the devices in none, as before.
    let (s, v) = d.api("GET", "/devices?site=", None).await;
    assert_eq!((s, v), (200, json!([])));
    let (s, v) = d.api("GET", "/devices?site=london", None).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    let job = json!({"kind": "deactivate", "selection": {"site": "paris"}});
    let (s, v) = d.api("POST", "/jobs", Some(job)).await;
    assert_eq!(s, 201, "{v}");
}
