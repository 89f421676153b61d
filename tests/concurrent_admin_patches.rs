//! Two administrators patching different fields of the same record at the same moment: each
//! change is kept. A patch that read the record, then wrote it back whole in a second
//! transaction, put back the other field as it was before the other patch committed.

mod common;

use common::Daemon;
use serde_json::json;

const ROUNDS: u32 = 40;

#[tokio::test]
async fn concurrent_site_patches_keep_both_fields() {
    let d = Daemon::start();
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(status, 201, "{v}");
    for round in 0..ROUNDS {
        let label = format!("round {round}");
        let allow = round % 2 == 0;
        let (a, b) = tokio::join!(
            d.api("PATCH", "/sites/hq", Some(json!({"label": label}))),
            d.api(
                "PATCH",
                "/sites/hq",
                Some(json!({"allow_http_auth": allow}))
            ),
        );
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(b.0, 200, "{}", b.1);
        let (status, site) = d.api("GET", "/sites/hq", None).await;
        assert_eq!(status, 200, "{site}");
        assert_eq!(
            (site["label"].as_str(), site["allow_http_auth"].as_bool()),
            (Some(label.as_str()), Some(allow)),
            "round {round}: one of the two patches was lost"
        );
    }
}

#[tokio::test]
async fn concurrent_site_creations_are_one_created_one_conflict() {
    let d = Daemon::start();
    for round in 0..ROUNDS {
        let name = format!("s{round}");
        let (a, b) = tokio::join!(
            d.api("POST", "/sites", Some(json!({"name": name, "label": "a"}))),
            d.api("POST", "/sites", Some(json!({"name": name, "label": "b"}))),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {} / {}", a.1, b.1);
        let winner = if a.0 == 201 { "a" } else { "b" };
        let (_, site) = d.api("GET", &format!("/sites/{name}"), None).await;
        assert_eq!(
            site["label"], winner,
            "round {round}: the refused creation overwrote the site"
        );
    }
}

#[tokio::test]
async fn concurrent_preference_patches_keep_both_fields() {
    let d = Daemon::start();
    for round in 0..ROUNDS {
        let checkin = 10 + round;
        let audit = 100 + round;
        let (a, b) = tokio::join!(
            d.api(
                "PATCH",
                "/preferences",
                Some(json!({"checkin_retention_days": checkin}))
            ),
            d.api(
                "PATCH",
                "/preferences",
                Some(json!({"audit_retention_days": audit}))
            ),
        );
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(b.0, 200, "{}", b.1);
        let (_, prefs) = d.api("GET", "/preferences", None).await;
        assert_eq!(
            (
                prefs["checkin_retention_days"].as_u64(),
                prefs["audit_retention_days"].as_u64()
            ),
            (Some(u64::from(checkin)), Some(u64::from(audit))),
            "round {round}: one of the two patches was lost"
        );
    }
}

#[tokio::test]
async fn concurrent_parameter_patches_of_one_layer_keep_both() {
    let d = Daemon::start();
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(status, 201, "{v}");
    for round in 0..ROUNDS {
        let (a, b) = tokio::join!(
            d.api(
                "PATCH",
                "/params/site:hq",
                Some(json!({"params": {"SIPDOMAIN": format!("r{round}.example")}}))
            ),
            d.api(
                "PATCH",
                "/params/site:hq",
                Some(json!({"params": {"NTPSRVR": format!("10.0.0.{round}")}}))
            ),
        );
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(b.0, 200, "{}", b.1);
        let (status, layer) = d.api("GET", "/params/site:hq", None).await;
        assert_eq!(status, 200, "{layer}");
        assert_eq!(
            (
                layer["params"]["SIPDOMAIN"].as_str(),
                layer["params"]["NTPSRVR"].as_str()
            ),
            (
                Some(format!("r{round}.example").as_str()),
                Some(format!("10.0.0.{round}").as_str())
            ),
            "round {round}: one of the two patches was lost"
        );
    }
}
