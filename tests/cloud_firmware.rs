//! The cloud's firmware catalogue and policies reach phones: the real daemon registered with
//! the reference cloud (tests/common/cloud.rs) over mutual TLS on loopback, and a real
//! upstream HTTP server on loopback holding the image.

#[path = "common/cloud.rs"]
mod cloud;
mod common;

use std::time::{Duration, Instant};

use cloud::Cloud;
use common::upstream::{Mode, Upstream, image, sha256_hex};
use common::*;
use serde_json::{Value, json};

const SITE: &str = "hq";
/// The MAC in [`J179_UA`]: the phone the cloud puts at [`SITE`].
const PHONE: &str = "001122aabbcc";

/// Polls `check` until it holds or ten seconds pass.
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    eventually_within(Duration::from_secs(10), what, check).await;
}

async fn eventually_within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn release(up: &Upstream, version: &str, file: &str) -> Value {
    json!({"model": "J179", "version": version, "url": up.url(file),
           "sha256": sha256_hex(&up.image)})
}

fn policy(policy: &str) -> Value {
    json!({"site": SITE, "model": "J179", "policy": policy})
}

/// A daemon registered with `cloud`, which has put [`PHONE`] (a J179) at [`SITE`].
fn start(cloud: &Cloud) -> Daemon {
    start_with(cloud, "")
}

/// [`start`] with `extra` TOML in the config.
fn start_with(cloud: &Cloud, extra: &str) -> Daemon {
    cloud.set_device(PHONE, "activated", SITE, json!({}));
    let d = Daemon::start_with(&format!("{}{extra}", cloud.config()));
    let out = d.cli(&[
        "cloud",
        "register",
        "--url",
        &cloud.url(),
        "--token",
        &cloud.token(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// The upgrade script the phone at [`SITE`] is served.
async fn upgrade_script(d: &Daemon) -> String {
    let r = send_plain(d.http.unwrap(), get("/J100Supgrade.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.text()
}

async fn wait_for_script(d: &Daemon, what: &str, check: impl Fn(&str) -> bool) {
    eventually(what, async || check(&upgrade_script(d).await)).await;
}

/// Downloads an image through the box, as the phone does; returns the status and the hash.
async fn fetch(d: &Daemon, file: &str) -> (u16, String) {
    let r = send_plain(d.http.unwrap(), get(&format!("/{file}"), J179_UA))
        .await
        .unwrap();
    (r.status, sha256_hex(&r.body))
}

/// A release and a `latest` policy set in the cloud make the phone at the site load the image
/// through the box: fetched upstream once, checked against the cloud's hash, served again from
/// the cache. The listing says the release is the cloud's, and a local delete is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_release_and_latest_policy_reach_the_phone() {
    let up = Upstream::start(image(64 * 1024, 7)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![release(&up, "4.1.3.0.7", "j179-cloud.bin")]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    wait_for_script(&d, "the cloud's release in the upgrade script", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            fetch(&d, "j179-cloud.bin").await,
            (200, sha256_hex(&up.image))
        );
    }
    assert_eq!(up.requests(), 1, "one upstream fetch");

    let (status, v) = d.api("GET", "/firmware", None).await;
    assert_eq!(status, 200);
    let r = &v["releases"][0];
    assert_eq!(
        (r["file"].as_str(), r["source"].as_str()),
        (Some("j179-cloud.bin"), Some("cloud")),
        "{v}"
    );
    assert_eq!(
        v["policies"]["cloud:site:hq"],
        json!({"J179": "latest"}),
        "{v}"
    );
    let (status, v) = d
        .api("DELETE", "/firmware/releases/j179-cloud.bin", None)
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(v.to_string().contains("the cloud's"), "{v}");
    // The refusal says why, without "already exists" tacked on (it used to end so).
    assert!(
        v["error"].as_str().unwrap().ends_with("for its model"),
        "{v}"
    );
}

/// The operator's `off` for the site overrides the cloud's `latest`, and later pulls leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_off_overrides_the_clouds_latest() {
    let up = Upstream::start(image(4096, 8)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![release(&up, "4.1.3.0.7", "j179-cloud.bin")]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    wait_for_script(&d, "the cloud's release", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/site:hq",
            Some(json!({"J179": "off"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(!upgrade_script(&d).await.contains("APPNAME"));
    // A pull that changes the cloud's policy does not touch the local one.
    cloud.set_policies(vec![policy("4.1.3.0.7")]);
    eventually("the cloud's new policy pulled", async || {
        let (_, v) = d.api("GET", "/firmware/policies", None).await;
        v["cloud:site:hq"] == json!({"J179": "4.1.3.0.7"})
    })
    .await;
    let (_, v) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(v["site:hq"], json!({"J179": "off"}), "{v}");
    assert!(!upgrade_script(&d).await.contains("APPNAME"));
}

/// The cloud pins a version, then withdraws its release: the phone is not moved to another
/// version but told no firmware, the image is no longer served, and a pin alarm names the
/// cloud's policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_the_cloud_removes() {
    let old = Upstream::start(image(4096, 9)).await;
    let new = Upstream::start(image(4096, 10)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![
        release(&old, "4.1.3.0.6", "j179-old.bin"),
        release(&new, "4.1.3.0.7", "j179-new.bin"),
    ]);
    cloud.set_policies(vec![policy("4.1.3.0.6")]);
    let d = start(&cloud);
    wait_for_script(&d, "the pinned release", |s| {
        s.contains("SET APPNAME j179-old.bin")
    })
    .await;
    assert_eq!(
        fetch(&d, "j179-old.bin").await,
        (200, sha256_hex(&old.image))
    );

    let mut withdrawn = release(&old, "4.1.3.0.6", "j179-old.bin");
    withdrawn["removed"] = json!(true);
    cloud.set_firmware(vec![withdrawn, release(&new, "4.1.3.0.7", "j179-new.bin")]);
    wait_for_script(&d, "no firmware for the orphaned pin", |s| {
        !s.contains("APPNAME")
    })
    .await;
    assert_eq!(fetch(&d, "j179-old.bin").await.0, 404);
    let (_, alarms) = d
        .api("GET", "/alarms?kind=firmware_pin_orphaned", None)
        .await;
    let sources: Vec<&str> = alarms
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["source"].as_str())
        .collect();
    assert_eq!(sources, ["cloud:site:hq J179=4.1.3.0.6"], "{alarms}");
}

/// What was last pulled keeps working with no cloud: after a restart with the cloud down the
/// phone is still told the cloud's release and gets its image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_cloud_down_serves_the_last_pulled_state() {
    let up = Upstream::start(image(4096, 11)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![release(&up, "4.1.3.0.7", "j179-cloud.bin")]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    wait_for_script(&d, "the cloud's release", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    cloud.faults().down = true;
    let d = d.restart();
    assert!(
        upgrade_script(&d)
            .await
            .contains("SET APPNAME j179-cloud.bin")
    );
    assert_eq!(
        fetch(&d, "j179-cloud.bin").await,
        (200, sha256_hex(&up.image))
    );
    assert_eq!(up.requests(), 1);
}

/// A pull that changes the cloud's catalogue clears the failed fetches remembered for 10
/// seconds, as an operator's change does: the cloud's corrected URL is tried at the phone's
/// next request, not 10 seconds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_cloud_url_is_tried_at_once() {
    let bad = Upstream::start(image(4096, 12)).await;
    bad.set_default(Mode::Error);
    let good = Upstream::start(image(4096, 12)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![release(&bad, "4.1.3.0.7", "j179-cloud.bin")]);
    let d = start(&cloud);
    wait_for_script(&d, "the cloud's release", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    assert_ne!(fetch(&d, "j179-cloud.bin").await.0, 200);
    assert!(bad.requests() > 0);
    let failed_at = Instant::now();

    cloud.set_firmware(vec![release(&good, "4.1.3.0.7", "j179-cloud.bin")]);
    eventually_within(
        Duration::from_secs(5),
        "the corrected URL fetched",
        async || fetch(&d, "j179-cloud.bin").await == (200, sha256_hex(&good.image)),
    )
    .await;
    assert!(failed_at.elapsed() < Duration::from_secs(10));
    assert_eq!(good.requests(), 1);
}

/// The alarms of `kind`, by source.
async fn alarm_sources(d: &Daemon, kind: &str) -> Vec<String> {
    let (status, v) = d.api("GET", &format!("/alarms?kind={kind}"), None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["source"].as_str().map(str::to_string))
        .collect()
}

/// A release the config drops is kept while the cloud's pin needs it. Kept releases were
/// checked again after local changes only: when the cloud then brought its own release of the
/// pinned version, the kept one (a local release, which wins over the cloud's of its model and
/// version) went on being served instead, the cloud's was refused, and the pin alarm said the
/// kept release stood in for a missing one. The pull now drops it, as a local change would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_kept_for_a_cloud_pin_gives_way_to_the_clouds_release_of_the_version() {
    let local = Upstream::start(image(4096, 13)).await;
    let up = Upstream::start(image(4096, 14)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_policies(vec![policy("4.1.3.0.6")]);
    let configured = format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"4.1.3.0.6\"\n\
         file = \"j179-local.bin\"\nurls = [\"{}\"]\nsha256 = \"{}\"\n",
        local.url("j179-local.bin"),
        sha256_hex(&local.image)
    );
    let d = start_with(&cloud, &configured);
    wait_for_script(&d, "the local release for the cloud's pin", |s| {
        s.contains("SET APPNAME j179-local.bin")
    })
    .await;

    // The config drops it: kept for the cloud's pin, and the alarm says so.
    std::fs::write(d.config_path(), base_config(&d.data_dir(), &cloud.config())).unwrap();
    let d = d.restart();
    let s = upgrade_script(&d).await;
    assert!(s.contains("SET APPNAME j179-local.bin"), "{s}");
    let pin = "cloud:site:hq J179=4.1.3.0.6";
    eventually("the pin alarm", async || {
        alarm_sources(&d, "firmware_pin_orphaned").await == [pin]
    })
    .await;

    cloud.set_firmware(vec![release(&up, "4.1.3.0.6", "j179-cloud.bin")]);
    wait_for_script(&d, "the cloud's release of the pinned version", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    assert_eq!(
        fetch(&d, "j179-cloud.bin").await,
        (200, sha256_hex(&up.image))
    );
    assert_eq!(
        fetch(&d, "j179-local.bin").await.0,
        404,
        "the kept release went"
    );
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(!list.to_string().contains("j179-local.bin"), "{list}");
    eventually("the pin alarm cleared", async || {
        alarm_sources(&d, "firmware_pin_orphaned").await.is_empty()
    })
    .await;
    assert_eq!(
        alarm_sources(&d, "firmware_cloud_refused").await,
        Vec::<String>::new()
    );
}

/// The cache holds images by hash, not by release: when the cloud changes a release's SHA-256
/// (an image re-spun under the same name), the image cached under the old hash is never served
/// for it. Bytes that do not match the new hash are refused (503, the phone retries), and the
/// image that does is fetched at the phone's next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_hash_the_cloud_changes_is_not_served_from_the_old_image() {
    let old = Upstream::start(image(4096, 15)).await;
    let new = Upstream::start(image(4096, 16)).await;
    let cloud = Cloud::start(SITE);
    cloud.set_firmware(vec![release(&old, "4.1.3.0.7", "j179-cloud.bin")]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    wait_for_script(&d, "the cloud's release", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    assert_eq!(
        fetch(&d, "j179-cloud.bin").await,
        (200, sha256_hex(&old.image))
    );

    // The new hash, the URL still giving the old bytes.
    let mut respun = release(&old, "4.1.3.0.7", "j179-cloud.bin");
    respun["sha256"] = json!(sha256_hex(&new.image));
    cloud.set_firmware(vec![respun]);
    eventually("the new hash pulled", async || {
        let (_, v) = d.api("GET", "/firmware", None).await;
        v["releases"][0]["sha256"] == json!(sha256_hex(&new.image))
    })
    .await;
    assert_eq!(fetch(&d, "j179-cloud.bin").await.0, 503);

    cloud.set_firmware(vec![release(&new, "4.1.3.0.7", "j179-cloud.bin")]);
    eventually("the new image served", async || {
        fetch(&d, "j179-cloud.bin").await == (200, sha256_hex(&new.image))
    })
    .await;
}

/// The messages of the alarms of `kind`, by source.
async fn alarm_messages(d: &Daemon, kind: &str) -> Vec<(String, String)> {
    let (status, v) = d.api("GET", &format!("/alarms?kind={kind}"), None).await;
    assert_eq!(status, 200, "{v}");
    let text = |a: &Value, k: &str| a[k].as_str().unwrap_or_default().to_string();
    let mut out: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (text(a, "source"), text(a, "message")))
        .collect();
    out.sort();
    out
}

/// A release the cloud sends with a field the box cannot take (a SHA-256 that is not one, a
/// relative URL) rejected the whole page: the phone's device, the site's other release and
/// every later page waited for the cloud to fix it. It is now refused alone, with a
/// `firmware_cloud_refused` alarm naming it and the field, and the rest of the page applies.
/// A valid release the cloud then breaks stops being served (its old image is no longer the
/// cloud's); fixed, it is served again and the alarms clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_bad_fields_is_refused_alone_and_the_page_applies() {
    let up = Upstream::start(image(4096, 16)).await;
    let cloud = Cloud::start(SITE);
    let good = release(&up, "4.1.3.0.7", "j179-cloud.bin");
    let bad_hash = json!({"model": "J169", "version": "4.0", "url": up.url("j169.bin"),
                          "sha256": "zz"});
    let relative = json!({"model": "J139", "version": "4.0", "url": "j139.bin",
                          "sha256": sha256_hex(&up.image)});
    cloud.set_firmware(vec![good.clone(), bad_hash, relative]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    wait_for_script(&d, "the page's valid release in the upgrade script", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    let (status, device) = d.api("GET", &format!("/devices/{PHONE}"), None).await;
    assert_eq!(status, 200, "the page's device applied: {device}");
    assert_eq!(
        alarm_sources(&d, "sync_rejected").await,
        Vec::<String>::new()
    );
    let refused = alarm_messages(&d, "firmware_cloud_refused").await;
    let sources: Vec<&str> = refused.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        sources,
        ["cloud firmware J139 4.0", "cloud firmware J169 4.0"],
        "{refused:?}"
    );
    assert!(refused[0].1.contains("url: \"j139.bin\""), "{refused:?}");
    assert!(refused[1].1.contains("sha256 \"zz\""), "{refused:?}");
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(!list.to_string().contains("j169.bin"), "{list}");

    let mut broken = good.clone();
    broken["sha256"] = json!("not a hash");
    cloud.set_firmware(vec![broken]);
    wait_for_script(&d, "the broken release no longer served", |s| {
        !s.contains("j179-cloud.bin")
    })
    .await;
    assert_eq!(fetch(&d, "j179-cloud.bin").await.0, 404);
    eventually("the broken release alarmed", async || {
        alarm_sources(&d, "firmware_cloud_refused").await.len() == 3
    })
    .await;
    let sources = alarm_sources(&d, "firmware_cloud_refused").await;
    assert!(
        sources.contains(&"cloud firmware J179 4.1.3.0.7".to_string()),
        "{sources:?}"
    );

    // Fixed, corrected and withdrawn: the protocol is upsert-only, so a refusal stands until
    // the cloud sends its release again.
    let fixed = json!({"model": "J169", "version": "4.0", "url": up.url("j169.bin"),
                       "sha256": sha256_hex(&up.image)});
    let withdrawn = json!({"model": "J139", "version": "4.0", "url": "j139.bin",
                           "sha256": "zz", "removed": true});
    cloud.set_firmware(vec![good, fixed, withdrawn]);
    wait_for_script(&d, "the fixed release served again", |s| {
        s.contains("SET APPNAME j179-cloud.bin")
    })
    .await;
    eventually("the refusal alarms cleared", async || {
        alarm_sources(&d, "firmware_cloud_refused").await.is_empty()
    })
    .await;
    assert_eq!(
        fetch(&d, "j179-cloud.bin").await,
        (200, sha256_hex(&up.image))
    );
}

/// A release the box could not even read as one (a required field missing, a field of the
/// wrong JSON type) failed the page's parse: the whole page was rejected, its devices and its
/// other releases with it, and the sync stalled on it for good. It is now refused alone, as
/// one with a bad value is: a `firmware_cloud_refused` alarm names it and the field, the
/// release of its model and version pulled before stops being served, and the rest of the
/// page applies. One that names no model or version is alarmed by its place in the list,
/// until the cloud next sends its releases without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_release_is_refused_alone_and_the_page_applies() {
    let up = Upstream::start(image(4096, 17)).await;
    let cloud = Cloud::start(SITE);
    let good = release(&up, "4.1.3.0.7", "j179-cloud.bin");
    let j169 = json!({"model": "J169", "version": "4.0", "url": up.url("j169.bin"),
                      "sha256": sha256_hex(&up.image)});
    cloud.set_firmware(vec![good.clone(), j169.clone()]);
    cloud.set_policies(vec![policy("latest")]);
    let d = start(&cloud);
    eventually("the J169 release pulled", async || {
        let (_, list) = d.api("GET", "/firmware", None).await;
        list.to_string().contains("j169.bin")
    })
    .await;

    let mut no_hash = j169.clone();
    no_hash.as_object_mut().unwrap().remove("sha256");
    let wrong_type = json!({"model": "J139", "version": "4.0", "url": up.url("j139.bin"),
                            "sha256": 12});
    let no_version = json!({"model": "J159", "url": up.url("j159.bin"),
                            "sha256": sha256_hex(&up.image)});
    cloud.set_firmware(vec![good.clone(), no_hash, wrong_type, no_version]);
    // Set after the releases: every page that brings it brings them too.
    const OTHER: &str = "001122aabbcd";
    cloud.set_device(OTHER, "claimed", SITE, json!({}));
    eventually("the page's new device applied", async || {
        d.api("GET", &format!("/devices/{OTHER}"), None).await.0 == 200
    })
    .await;
    let (_, sync) = d.api("GET", "/sync", None).await;
    assert_eq!(sync["cursor"], cloud.log_len().to_string(), "{sync}");
    assert_eq!(
        alarm_sources(&d, "sync_rejected").await,
        Vec::<String>::new()
    );
    eventually("the unreadable releases alarmed", async || {
        alarm_sources(&d, "firmware_cloud_refused").await.len() == 3
    })
    .await;
    let refused = alarm_messages(&d, "firmware_cloud_refused").await;
    let sources: Vec<&str> = refused.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        sources,
        [
            "cloud firmware J139 4.0",
            "cloud firmware J169 4.0",
            "cloud firmware[3]"
        ],
        "{refused:?}"
    );
    let says = |i: usize, parts: &[&str]| {
        for part in parts {
            assert!(refused[i].1.contains(part), "{part}: {refused:?}");
        }
    };
    says(
        0,
        &[
            "firmware[2]",
            "file j139.bin",
            "sha256: invalid type: integer `12`",
        ],
    );
    says(
        1,
        &["firmware[1]", "file j169.bin", "missing field `sha256`"],
    );
    says(
        2,
        &["model J159", "file j159.bin", "missing field `version`"],
    );
    let (_, list) = d.api("GET", "/firmware", None).await;
    let list = list.to_string();
    assert!(list.contains("j179-cloud.bin"), "{list}");
    assert!(
        !list.contains("j169.bin"),
        "the old J169 still served: {list}"
    );
    assert!(
        upgrade_script(&d)
            .await
            .contains("SET APPNAME j179-cloud.bin")
    );

    // Fixed and withdrawn, and the nameless one no longer sent: every alarm clears.
    let withdrawn = json!({"model": "J139", "version": "4.0", "url": up.url("j139.bin"),
                           "sha256": "zz", "removed": true});
    cloud.set_firmware(vec![good, j169, withdrawn]);
    eventually("the refusal alarms cleared", async || {
        alarm_sources(&d, "firmware_cloud_refused").await.is_empty()
    })
    .await;
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(list.to_string().contains("j169.bin"), "{list}");
}
