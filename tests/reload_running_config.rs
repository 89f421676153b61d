//! After a SIGHUP reload, the admin API works from the reloaded configuration, not the one the
//! daemon started with: clearing the runtime log level returns to the reloaded file's level.

mod common;

use common::{Daemon, signal, wait_for_log};
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
