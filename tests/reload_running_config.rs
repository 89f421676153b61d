//! After a SIGHUP reload, the admin API works from the reloaded configuration, not the one the
//! daemon started with: clearing the runtime log level returns to the reloaded file's level.

mod common;

use common::{Daemon, get, send_plain, signal, wait_for_log};
use serde_json::json;

#[tokio::test]
async fn clearing_the_runtime_log_level_returns_to_the_reloaded_one() {
    let d = Daemon::start();
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        config.replace("log_level = \"info\"", "log_level = \"debug\""),
    )
    .unwrap();
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;

    let (s, v) = d
        .api("PATCH", "/preferences", Some(json!({"log_level": "warn"})))
        .await;
    assert_eq!(s, 200, "{v}");
    let pruned_before = d.log().matches("pruned").count();
    // Back to the configuration's level (debug since the reload); the retention pass this
    // change runs then logs its debug lines.
    let (s, v) = d
        .api("PATCH", "/preferences", Some(json!({"log_level": null})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        d.log().matches("pruned").count() > pruned_before,
        "debug lines after clearing the runtime level:\n{}",
        d.log()
    );
}

/// A runtime level outlives a reload: a changed `log_level` in the file then seems to do
/// nothing, so the reload says which level is in force and how to return to the file's (it
/// said only "reloaded"), even when the runtime level is one (`error`) that lets no warning
/// through.
#[tokio::test]
async fn a_reload_names_the_runtime_level_that_outranks_the_file() {
    let d = Daemon::start();
    let note = "`edgeprov prefs set --log-level config` returns to the configuration's";
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;
    assert!(
        !d.log().contains(note),
        "no runtime level yet:\n{}",
        d.log()
    );

    let (s, v) = d
        .api("PATCH", "/preferences", Some(json!({"log_level": "error"})))
        .await;
    assert_eq!(s, 200, "{v}");
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        config.replace("log_level = \"info\"", "log_level = \"warn\""),
    )
    .unwrap();
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, note).await;
    assert!(
        d.log().contains(
            "\"error\" set by `edgeprov prefs set --log-level` is in force, not the configuration's \"warn\""
        ),
        "{}",
        d.log()
    );
}

/// A reload whose file names another data directory keeps the running one (it is logged as
/// needing a restart): the certificates still come from the box's CA, so the CLI and the phones
/// still trust the box, no second CA is made, and a backup still reads the running directory.
#[tokio::test]
async fn a_new_data_dir_waits_for_the_restart_and_the_certificates_stay() {
    let d = Daemon::start();
    let ca = d.ca_pem();
    let elsewhere = d.dir.path().join("elsewhere");
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    let data = format!("data_dir = \"{}\"", d.data_dir().display());
    assert!(config.contains(&data), "{config}");
    std::fs::write(
        d.config_path(),
        config.replace(&data, &format!("data_dir = \"{}\"", elsewhere.display())),
    )
    .unwrap();
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;
    assert!(d.log().contains("data_dir"), "{}", d.log());

    assert!(!elsewhere.join("pki").exists(), "a second CA was made");
    assert_eq!(d.ca_pem(), ca);
    let (s, v) = d.api("GET", "/health", None).await;
    assert_eq!(s, 200, "the box's CA no longer verifies it: {v}");
    let (s, _) = d.api_bytes("GET", "/backup", "", Some(&d.token)).await;
    assert_eq!(s, 200, "backup after the reload");
}

/// A debugging session started with `RUST_LOG` outlives a reload: the file's level applies
/// when there is no `RUST_LOG`, as at start.
#[tokio::test]
async fn a_reload_keeps_the_rust_log_level() {
    let d = Daemon::start_with_env("", &[("RUST_LOG", "debug")]);
    let phone = |d: &Daemon| {
        let http = d.http.unwrap();
        async move {
            send_plain(http, get("/46xxsettings.txt", "test"))
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(phone(&d).await, 200);
    signal(d.child.as_ref().unwrap().id(), "HUP");
    wait_for_log(&d, "configuration and certificates reloaded").await;
    let before = d.log().matches("phone request").count();
    assert!(before >= 1, "debug lines before the reload:\n{}", d.log());
    assert_eq!(phone(&d).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        d.log().matches("phone request").count() > before,
        "debug lines after the reload:\n{}",
        d.log()
    );
}

/// A blank runtime level parsed as a filter with no directives, and a word that is no level
/// (`inof`) as a filter for that target alone: the change was stored and the daemon logged
/// (next to) nothing from then on, not even errors. Both are refused, naming `log_level` (and
/// the word), and the level in force stays.
#[tokio::test]
async fn a_blank_or_misspelt_runtime_log_level_is_refused_and_the_level_kept() {
    let d = Daemon::start();
    let (s, v) = d
        .api("PATCH", "/preferences", Some(json!({"log_level": "debug"})))
        .await;
    assert_eq!(s, 200, "{v}");
    for bad in ["", "  ", "inof", "warn,hyper"] {
        let (s, v) = d
            .api("PATCH", "/preferences", Some(json!({"log_level": bad})))
            .await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("log_level: "), "{bad:?}: {v}");
        if let Some(word) = bad.split(',').next_back().filter(|w| !w.trim().is_empty()) {
            assert!(
                error.contains(&format!("{word:?} is not a level")),
                "{bad:?}: {v}"
            );
        }
    }
    let (s, v) = d.api("GET", "/preferences", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["log_level"], "debug", "{v}");
}
