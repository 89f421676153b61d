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
