//! Users and tokens: an operator works inside its sites and nowhere else; tokens are shown once
//! and stop working when revoked; wrong tokens are rate-limited and audited; preferences change
//! the log level and retention at runtime; sites are managed; check-ins are kept as history.

mod common;

use common::*;
use serde_json::{Value, json};

const MINE: &str = "0011220000a1";
const THEIRS: &str = "0011220000b1";

/// A token of the operator `olivia`, who holds the site `mine` only.
async fn olivia(d: &Daemon) -> String {
    d.operator_token("olivia", &["mine"]).await
}

async fn two_sites(d: &Daemon) {
    for (mac, site) in [(MINE, "mine"), (THEIRS, "theirs")] {
        d.add_device(json!({"mac": mac, "model": "J179", "site": site}))
            .await;
    }
}

#[tokio::test]
async fn an_operator_works_inside_its_sites_only() {
    let d = Daemon::start();
    two_sites(&d).await;
    // The CLI prints the new token once, on stdout alone.
    let out = d.cli(&[
        "token", "create", "--role", "operator", "--site", "mine", "--user", "olivia",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("ep_") && token.len() == 67, "{token}");
    let listed = d.cli(&["--json", "token", "list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("olivia") && !listed.contains(&token[3..]),
        "{listed}"
    );
    assert!(!listed.contains("hash"), "{listed}");

    let op = |m: &'static str, p: String, b: Option<Value>| {
        let token = token.clone();
        let d = &d;
        async move { d.api_with_token(m, &p, b, Some(&token)).await }
    };
    let (s, list) = op("GET", "/devices".into(), None).await;
    assert_eq!(s, 200);
    let macs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, [MINE], "only the operator's site is listed");

    let (s, v) = op(
        "PATCH",
        format!("/devices/{MINE}"),
        Some(json!({"label": "lobby"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["label"], "lobby");
    // Moving its own device into a site it does not have: refused, device unchanged.
    let (s, v) = op(
        "PATCH",
        format!("/devices/{MINE}"),
        Some(json!({"site": "theirs"})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (_, dev) = d.api("GET", &format!("/devices/{MINE}"), None).await;
    assert_eq!(dev["site"], "mine");

    let (s, _) = op(
        "PATCH",
        "/params/site:mine".into(),
        Some(json!({"params": {"sip.server": "pbx.mine"}})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = op("GET", "/params/global".into(), None).await;
    assert_eq!(s, 403, "the global layer is the administrator's");
    let (s, v) = op("GET", format!("/devices/{MINE}/effective"), None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = op("GET", "/backup".into(), None).await;
    assert_eq!(s, 403);

    // Its changes are audited under its name.
    let (_, audit) = d.api("GET", "/audit?who=olivia&method=PATCH", None).await;
    let statuses: Vec<u64> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 403, 200], "newest first");

    // Revoked: refused from the next request on.
    let (_, tokens) = d.api("GET", "/tokens", None).await;
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    assert_ne!(tokens[0]["last_used"], 0);
    let out = d.cli(&["token", "revoke", "--yes", &id]);
    assert!(out.status.success());
    let (s, _) = op("GET", "/devices".into(), None).await;
    assert_eq!(s, 401);
}

/// `token create` names the token's holder or makes none: without `--user` every such token
/// was named after its role, so two operators made that way were one "operator" in the audit
/// log, and each one's jobs could reach the other's sites.
#[tokio::test]
async fn a_token_is_made_only_for_a_named_user() {
    let d = Daemon::start();
    d.ensure_site("mine").await;
    for role in ["operator", "administrator"] {
        let mut args = vec!["token", "create", "--role", role];
        if role == "operator" {
            args.extend(["--site", "mine"]);
        }
        let out = d.cli(&args);
        assert!(!out.status.success(), "{role}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--user <USER>"), "{role}: {stderr}");
    }
    let (_, tokens) = d.api("GET", "/tokens", None).await;
    assert_eq!(tokens, json!([]), "no token made");

    let out = d.cli(&[
        "--json", "token", "create", "--role", "operator", "--site", "mine", "--user", "olivia",
    ]);
    assert!(out.status.success(), "{out:?}");
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&made["user"], &made["role"]),
        (&json!("olivia"), &json!("operator"))
    );
}

#[tokio::test]
async fn token_requests_are_checked() {
    let d = Daemon::start();
    for (body, field) in [
        (json!({"user": "x", "role": "operator"}), "sites"),
        (
            json!({"user": "x", "role": "administrator", "sites": ["a"]}),
            "sites",
        ),
        (
            json!({"user": "", "role": "operator", "sites": ["a"]}),
            "user",
        ),
        (json!({"user": "x", "role": "root"}), "role"),
        (
            json!({"user": "Admin", "role": "operator", "sites": ["a"]}),
            "box's own administrator",
        ),
        // Names no device's site can have: the operator would hold a site that never exists.
        (
            json!({"user": "x", "role": "operator", "sites": ["hq "]}),
            "sites: \"hq \": no spaces at the start or end",
        ),
        (
            json!({"user": "x", "role": "operator", "sites": ["a|b"]}),
            "sites: \"a|b\": no '|'",
        ),
        (
            json!({"user": "x", "role": "operator", "sites": ["s".repeat(129)]}),
            "sites:",
        ),
    ] {
        let (s, v) = d.api("POST", "/tokens", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}");
        assert!(v["error"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let (_, tokens) = d.api("GET", "/tokens", None).await;
    assert_eq!(tokens, json!([]), "nothing stored");
    // A site as long as any a device can be in may be given to an operator, who then sees it.
    let long = "s".repeat(128);
    d.add_device(json!({"mac": MINE, "model": "J179", "site": long}))
        .await;
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "lena", "role": "operator", "sites": [long]})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let lena = made["token"].as_str().unwrap();
    let (s, seen) = d.api_with_token("GET", "/devices", None, Some(lena)).await;
    assert_eq!(s, 200, "{seen}");
    assert_eq!(seen[0]["mac"], MINE);
    // A second administrator works like the box's own token, but for a backup, which holds
    // the box's token (see tests/backup.rs).
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "ada", "role": "administrator"})),
        )
        .await;
    assert_eq!(s, 201);
    let ada = made["token"].as_str().unwrap();
    let (s, _) = d
        .api_with_token("POST", "/sites", Some(json!({"name": "hq"})), Some(ada))
        .await;
    assert_eq!(s, 201);
    let (s, _) = d.api_with_token("GET", "/backup", None, Some(ada)).await;
    assert_eq!(s, 403);
}

/// A token may be made to expire: it works until then and is refused after, with a 401 that
/// says it expired (only its holder, who has the secret, hears that), entered in the audit log
/// under its user and counted as a wrong token is. Listings show the expiry; a token made
/// without one never expires; an expiry already past is refused at creation.
#[tokio::test]
async fn a_token_works_until_it_expires_and_is_refused_after() {
    let mut d = Daemon::start();
    let now = edgeprov::model::now_unix();
    let (s, v) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "late", "role": "administrator", "expires": now - 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("expires:"), "{v}");

    let soon = now + 4;
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "temp", "role": "administrator", "expires": soon})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(made["expires"], soon);
    let temp = made["token"].as_str().unwrap().to_string();
    let temp_id = made["id"].as_str().unwrap().to_string();
    // The CLI takes a relative time as `job create --at` does.
    let out = d.cli(&[
        "token",
        "create",
        "--role",
        "administrator",
        "--user",
        "ops",
        "--expires",
        "+90d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = d.cli(&[
        "token",
        "create",
        "--role",
        "administrator",
        "--user",
        "forever",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, listed) = d.api("GET", "/tokens", None).await;
    let expiry = |user: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["user"] == user)
            .map(|t| t["expires"].clone())
            .unwrap()
    };
    assert_eq!(expiry("temp"), soon);
    let in_90_days = expiry("ops").as_i64().unwrap() - now;
    assert!(
        (90 * 86_400..90 * 86_400 + 60).contains(&in_90_days),
        "{listed}"
    );
    assert_eq!(expiry("forever"), Value::Null, "no expiry unless asked for");
    let table = String::from_utf8(d.cli(&["token", "list"]).stdout).unwrap();
    assert!(
        table.contains("EXPIRES") && table.contains("never"),
        "{table}"
    );

    let (s, _) = d.api_with_token("GET", "/devices", None, Some(&temp)).await;
    assert_eq!(s, 200, "before its expiry");
    while edgeprov::model::now_unix() < soon {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (s, v) = d.api_with_token("GET", "/devices", None, Some(&temp)).await;
    assert_eq!(s, 401, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(&temp_id) && error.contains("expired"), "{v}");
    let (s, v) = d
        .api_with_token("GET", "/devices", None, Some("ep_guess"))
        .await;
    assert_eq!(s, 401);
    assert!(!v["error"].as_str().unwrap().contains("expired"), "{v}");
    let (s, _) = d.api_with_token("GET", "/devices", None, Some(&ops)).await;
    assert_eq!(s, 200, "a token expiring later still works");
    let table = String::from_utf8(d.cli(&["token", "list"]).stdout).unwrap();
    assert!(table.contains("(expired)"), "{table}");

    assert!(d.stop().success());
    let db = d.data_dir().join("edgeprov.redb");
    let store = edgeprov::store::Store::open(&db).unwrap();
    let refused: Vec<(String, String)> = store
        .list_audit(100, |e| e.status == 401)
        .unwrap()
        .into_iter()
        .map(|e| (e.who, e.summary))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(
        refused[1].0, "temp",
        "the expired token's user: {refused:?}"
    );
    assert!(refused[1].1.contains("expired"), "{refused:?}");
    assert_eq!(
        refused[0],
        (
            "anonymous".to_string(),
            "refused: missing or wrong bearer token".to_string()
        )
    );
}

/// Expired tokens count towards the limit on wrong tokens: each refusal is an audit entry, which
/// a script left running with an expired token must not be able to ask for without bound.
#[tokio::test]
async fn an_expired_token_counts_as_a_failure() {
    let d = Daemon::start_with("auth_failures_per_minute = 2");
    let soon = edgeprov::model::now_unix() + 3;
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "temp", "role": "administrator", "expires": soon})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let temp = made["token"].as_str().unwrap();
    while edgeprov::model::now_unix() < soon {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            d.api_with_token("GET", "/devices", None, Some(temp))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test]
async fn wrong_tokens_are_rate_limited_and_audited() {
    let d = Daemon::start_with("auth_failures_per_minute = 3");
    for _ in 0..3 {
        let (s, _) = d
            .api_with_token("GET", "/devices", None, Some("ep_guess"))
            .await;
        assert_eq!(s, 401);
    }
    let (s, v) = d
        .api_with_token("GET", "/devices", None, Some("ep_guess"))
        .await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"].as_str().unwrap().contains("try again"), "{v}");
    // The address is held off, whatever it presents, until the minute is over.
    let (s, _) = d.api("GET", "/health", None).await;
    assert_eq!(s, 429);
    let (s, _) = d.api_with_token("GET", "/health", None, None).await;
    assert_eq!(s, 429);

    let mut d = d;
    assert!(d.stop().success());
    let db = d.data_dir().join("edgeprov.redb");
    let store = edgeprov::store::Store::open(&db).unwrap();
    let entries = store.list_audit(100, |_| true).unwrap();
    let statuses: Vec<u16> = entries.iter().rev().map(|e| e.status).collect();
    // One entry for the lockout, not one for each request it holds off.
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert!(
        entries
            .iter()
            .all(|e| e.who == "anonymous" && e.source == "127.0.0.1")
    );
}

/// Requests without any token were neither counted nor bounded: each cost a durable audit entry
/// holding the whole path the client chose. They are counted as wrong tokens are, the address
/// is held off after the limit, and an entry keeps 512 bytes of the path at most.
#[tokio::test]
async fn requests_without_a_token_are_limited_and_their_entries_bounded() {
    let mut d = Daemon::start_with("auth_failures_per_minute = 3");
    let long = format!("/devices/x{}", "a".repeat(15_000));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (s, _) = d.api_with_token("GET", &long, None, None).await;
        statuses.push(s);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    assert!(d.stop().success());
    let db = d.data_dir().join("edgeprov.redb");
    let store = edgeprov::store::Store::open(&db).unwrap();
    let entries = store.list_audit(100, |_| true).unwrap();
    assert_eq!(entries.len(), 4, "three refusals and the lockout");
    for e in &entries {
        assert!(
            e.resource.len() <= 512 + '…'.len_utf8(),
            "{}",
            e.resource.len()
        );
        assert!(
            e.resource.starts_with("/api/v1/devices/xaaa"),
            "{}",
            e.resource
        );
    }
}

#[tokio::test]
async fn preferences_change_the_log_level_and_retention_at_runtime() {
    let d = Daemon::start();
    let (s, p) = d.api("GET", "/preferences", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        p,
        json!({"log_level": null, "checkin_retention_days": 30, "audit_retention_days": 365})
    );

    let (s, _) = d
        .api(
            "PATCH",
            "/preferences",
            Some(json!({"audit_retention_days": 90})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(!d.log().contains("pruned"), "debug lines are off at info");
    let (s, _) = d
        .api("PATCH", "/preferences", Some(json!({"log_level": "debug"})))
        .await;
    assert_eq!(s, 200);
    let (s, _) = d
        .api(
            "PATCH",
            "/preferences",
            Some(json!({"checkin_retention_days": 7})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        d.log().contains("pruned"),
        "debug lines appear at once:\n{}",
        d.log()
    );

    for (body, field) in [
        (json!({"log_level": "nonsense=[["}), "log_level"),
        (json!({"audit_retention_days": 0}), "audit_retention_days"),
        (
            json!({"checkin_retention_days": 100000}),
            "checkin_retention_days",
        ),
        (json!({"colour": 1}), "colour"),
    ] {
        let (s, v) = d.api("PATCH", "/preferences", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}");
        assert!(v["error"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let (_, p) = d.api("GET", "/preferences", None).await;
    assert_eq!(
        p,
        json!({"log_level": "debug", "checkin_retention_days": 7, "audit_retention_days": 90})
    );
    // Kept across a restart.
    let d = d.restart();
    let (_, after) = d.api("GET", "/preferences", None).await;
    assert_eq!(after, p);
}

#[tokio::test]
async fn sites_are_managed_and_checkins_kept() {
    let d = Daemon::start();
    two_sites(&d).await;
    let (s, _) = d
        .api(
            "POST",
            "/sites",
            Some(json!({"name": "branch", "label": "Branch office"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, v) = d
        .api("POST", "/sites", Some(json!({"name": "branch"})))
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = d
        .api("POST", "/sites", Some(json!({"name": "no spaces"})))
        .await;
    assert_eq!(s, 400, "{v}");
    // A label is printed in tables: a terminal escape in it is refused, on creation and change.
    let escape = "Lobby\u{1b}]0;owned\u{7}";
    let (s, v) = d
        .api(
            "POST",
            "/sites",
            Some(json!({"name": "lobby", "label": escape})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("label:"), "{v}");
    let (s, v) = d
        .api("PATCH", "/sites/branch", Some(json!({"label": escape})))
        .await;
    assert_eq!(s, 400, "{v}");
    let (_, branch) = d.api("GET", "/sites/branch", None).await;
    assert_eq!(branch["label"], "Branch office", "{branch}");
    let (_, sites) = d.api("GET", "/sites", None).await;
    let summary: Vec<(String, u64)> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("branch".into(), 0),
            ("mine".into(), 1),
            ("theirs".into(), 1)
        ]
    );
    let (s, v) = d.api("DELETE", "/sites/mine", None).await;
    assert_eq!(s, 409, "a site with devices stays: {v}");
    assert!(v["error"].as_str().unwrap().contains(MINE), "{v}");
    let (s, _) = d.api("DELETE", "/sites/branch", None).await;
    assert_eq!(s, 204);
    let out = d.cli(&["site", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mine") && !text.contains("branch"), "{text}");

    // Two fetches by the phone, two check-ins in its history, newest first.
    let id = d.identity(MINE).await;
    let tls = client_config(&d.ca_pem(), Some(&id));
    for file in ["/46xxsettings.txt", &format!("/{MINE}.txt")] {
        let r = send(d.https, tls.clone(), get(file, J179_UA))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{file}");
    }
    let (s, history) = d
        .api("GET", &format!("/devices/{MINE}/checkins"), None)
        .await;
    assert_eq!(s, 200);
    let files: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, [format!("{MINE}.txt").as_str(), "46xxsettings.txt"]);
}

#[tokio::test]
async fn an_operators_job_stays_inside_its_site() {
    let d = Daemon::start();
    two_sites(&d).await;
    let token = olivia(&d).await;
    // No site named: refused; the other site as a move target: refused.
    let (s, v) = d
        .api_with_token(
            "POST",
            "/jobs",
            Some(json!({"kind": "deactivate", "selection": {"all": true}})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("selection.site"),
        "{v}"
    );
    let (s, _) = d
        .api_with_token(
            "POST",
            "/jobs",
            Some(json!({"kind": "move", "site": "theirs", "selection": {"site": "mine"}})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 403);
    // Listing the other site's device by MAC does not reach it.
    let (s, job) = d
        .api_with_token(
            "POST",
            "/jobs",
            Some(json!({"kind": "deactivate", "selection": {"site": "mine", "macs": [MINE, THEIRS]}})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, j) = d
            .api_with_token("GET", &format!("/jobs/{id}"), None, Some(&token))
            .await;
        if j["state"] == "done" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job did not finish: {j}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, mine) = d.api("GET", &format!("/devices/{MINE}"), None).await;
    let (_, theirs) = d.api("GET", &format!("/devices/{THEIRS}"), None).await;
    assert_eq!(
        (mine["state"].as_str(), theirs["state"].as_str()),
        (Some("inactive"), Some("active"))
    );
    // The administrator's job on the other site is not the operator's to see.
    let (_, other) = d
        .api("POST", "/jobs", Some(json!({"kind": "activate", "selection": {"site": "theirs"}, "at": 4_000_000_000i64})))
        .await;
    let (s, _) = d
        .api_with_token("GET", &format!("/jobs/{}", other["id"]), None, Some(&token))
        .await;
    assert_eq!(s, 403);
    let (_, list) = d.api_with_token("GET", "/jobs", None, Some(&token)).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// The preview of "the file a device gets" rendered any per-device file its name asked for: an
/// operator of one site, asking with its own device for the other site's device's file, read
/// that device's parameters and its site's layer. Another device's file is not this device's.
#[tokio::test]
async fn a_preview_never_renders_another_devices_file() {
    let d = Daemon::start();
    for (mac, site) in [(MINE, "mine"), (THEIRS, "theirs")] {
        d.add_device(json!({"mac": mac, "model": "T46S", "site": site}))
            .await;
    }
    let (s, v) = d
        .api(
            "PATCH",
            "/params/site:theirs",
            Some(json!({"params": {"yealink:account.1.label": "THEIRS-ONLY"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let token = olivia(&d).await;
    let preview = |name: String| d.get_raw(format!("/devices/{MINE}/files/{name}"), &token);
    let own = preview(format!("{MINE}.cfg")).await;
    assert_eq!(own.status, 200, "{}", own.text());
    let other = preview(format!("{THEIRS}.cfg")).await;
    assert_eq!(other.status, 404, "{}", other.text());
    assert!(!other.text().contains("THEIRS-ONLY"), "{}", other.text());
}

/// `GET /files/NAME?site=S` read the file as a phone of S gets it: the site's own, else the
/// box-wide one. An operator of S so downloaded, unmasked, a box-wide file (with its
/// passwords) that only an administrator may read. An operator gets the site's own file only.
#[tokio::test]
async fn an_operator_downloads_only_its_sites_own_files() {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "mine"}))).await;
    assert_eq!(s, 201, "{v}");
    d.put_file("common.cfg", "SET ADMIN_PASSWORD box-wide-secret\n")
        .await;
    d.put_file("own.cfg?site=mine", "SET A 1\n").await;
    let token = olivia(&d).await;
    let download = |path: &str| d.get_raw(format!("/files/{path}"), &token);
    let own = download("own.cfg?site=mine").await;
    assert_eq!((own.status, own.text().as_str()), (200, "SET A 1\n"));
    let r = download("common.cfg").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = download("common.cfg?site=mine").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!r.text().contains("box-wide-secret"), "{}", r.text());
}

/// A refusal over another site's device named that device's site ("site theirs is not
/// assigned to olivia"), so an operator could learn, MAC by MAC, the sites it does not hold.
/// The refusal names the device, not its site.
#[tokio::test]
async fn a_refusal_does_not_name_another_sites_name() {
    let d = Daemon::start();
    two_sites(&d).await;
    let token = olivia(&d).await;
    for (method, path, body) in [
        ("GET", format!("/devices/{THEIRS}"), None),
        (
            "PATCH",
            format!("/devices/{THEIRS}"),
            Some(json!({"label": "x"})),
        ),
        ("DELETE", format!("/devices/{THEIRS}"), None),
        ("GET", format!("/devices/{THEIRS}/checkins"), None),
        ("GET", format!("/devices/{THEIRS}/effective"), None),
        ("GET", format!("/devices/{THEIRS}/certificates"), None),
    ] {
        let (s, v) = d.api_with_token(method, &path, body, Some(&token)).await;
        assert_eq!(s, 403, "{method} {path}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(!error.contains("theirs"), "{method} {path}: {error}");
        assert!(error.contains(THEIRS), "{method} {path}: {error}");
    }
    let csv = format!("mac,label\n{THEIRS},x\n");
    let (s, v) = d
        .api_bytes("POST", "/devices/import", csv, Some(&token))
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(!v.to_string().contains("theirs"), "{v}");
}

/// The box's own token is rotated as README says: stopped, its file deleted, started again, the
/// daemon makes a new one and refuses the old one; a token of one's own written into the file
/// is taken as it is.
#[tokio::test]
async fn the_box_token_is_rotated_by_a_restart_without_its_file() {
    let mut d = Daemon::start();
    let old = d.token.clone();
    assert!(d.stop().success());
    std::fs::remove_file(d.data_dir().join("admin.token")).unwrap();
    let mut d = d.restart();
    assert_ne!(d.token, old);
    let (s, _) = d.api_with_token("GET", "/devices", None, Some(&old)).await;
    assert_eq!(s, 401, "the old box token still works");
    let (s, v) = d.api("GET", "/backup", None).await;
    assert_eq!(s, 200, "the new one is the box's own: {v}");

    assert!(d.stop().success());
    let chosen = "ep_chosen_by_the_administrator_0123456789";
    std::fs::write(d.data_dir().join("admin.token"), format!("{chosen}\n")).unwrap();
    let d = d.restart();
    assert_eq!(d.token, chosen);
    let (s, _) = d.api("GET", "/devices", None).await;
    assert_eq!(s, 200);
}

/// A deleted site is taken from every token that held it, in the deletion's transaction: a
/// token kept the name, so a site made again later under it gave that token's holder the new
/// site's devices, and `token list` went on showing a site that did not exist. The audit entry
/// names the tokens changed.
#[tokio::test]
async fn a_deleted_site_grants_nothing_to_the_tokens_that_held_it() {
    let d = Daemon::start();
    for site in ["site31", "hq"] {
        d.ensure_site(site).await;
    }
    let mut made = Vec::new();
    for (user, sites) in [("zed", json!(["site31", "hq"])), ("amy", json!(["site31"]))] {
        let body = json!({"user": user, "role": "operator", "sites": sites});
        let (s, v) = d.api("POST", "/tokens", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        made.push((
            v["id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        ));
    }
    let (zed, amy) = (&made[0], &made[1]);

    let out = d.cli(&["site", "delete", "site31", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, tokens) = d.api("GET", "/tokens", None).await;
    let sites_of = |id: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()["sites"]
            .clone()
    };
    assert_eq!(sites_of(&zed.0), json!(["hq"]), "{tokens}");
    assert_eq!(sites_of(&amy.0), json!([]), "{tokens}");

    let (_, audit) = d.api("GET", "/audit?method=DELETE", None).await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["summary"]
                .as_str()
                .unwrap()
                .starts_with("site site31 deleted")
        })
        .unwrap_or_else(|| panic!("no entry: {audit}"));
    let summary = entry["summary"].as_str().unwrap();
    assert!(
        summary.contains(&zed.0) && summary.contains(&amy.0),
        "{summary}"
    );
    assert!(
        summary.contains("zed") && summary.contains("amy"),
        "{summary}"
    );

    // The name made again is a new site: no token made before gets it.
    d.add_device(json!({"mac": MINE, "model": "J179", "site": "site31"}))
        .await;
    for (_, secret) in [zed, amy] {
        let (s, v) = d
            .api_with_token("GET", "/devices?site=site31", None, Some(secret))
            .await;
        assert_eq!(s, 403, "{v}");
        let (s, v) = d
            .api_with_token("GET", &format!("/devices/{MINE}"), None, Some(secret))
            .await;
        assert_eq!(s, 403, "{v}");
    }
    let (s, v) = d
        .api_with_token("GET", "/devices?site=hq", None, Some(&zed.1))
        .await;
    assert_eq!((s, v), (200, json!([])), "zed keeps hq");
}

/// An operator's health answer counts the devices of its sites only: it counted every device
/// of the box, which told the operator of phones in sites it may not see. An administrator's
/// counts them all, as monitoring expects.
#[tokio::test]
async fn an_operators_health_counts_only_its_sites_devices() {
    let d = Daemon::start();
    two_sites(&d).await;
    d.add_device(json!({"mac": "0011220000c1", "model": "J179"}))
        .await;
    let token = olivia(&d).await;
    let (s, v) = d.api_with_token("GET", "/health", None, Some(&token)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["status"], &v["devices"]),
        (&json!("ok"), &json!(1)),
        "{v}"
    );
    let (s, v) = d.api("GET", "/health", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["devices"], 3, "{v}");
}
