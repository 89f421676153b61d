//! Bulk jobs against the real daemon: a scheduled job runs at its time and not before; pause,
//! resume and stop behave as docs/jobs.md says; a running job cannot be deleted; a job survives
//! a restart and continues where it was; bad bodies name the field; every kind changes the
//! devices; an operator's running job changes only devices in the sites it may still change;
//! the CLI creates, follows, lists and shows jobs.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

fn mac(i: usize) -> String {
    format!("0200000000{i:02x}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Adds `n` active J179 devices to `site`, MACs `mac(first)…`.
async fn add_devices(d: &Daemon, first: usize, n: usize, site: &str) -> Vec<String> {
    let mut macs = Vec::new();
    for i in first..first + n {
        d.add_device(json!({"mac": mac(i), "model": "J179", "site": site, "group": "1"}))
            .await;
        macs.push(mac(i));
    }
    macs
}

async fn create(d: &Daemon, body: Value) -> u64 {
    if let Some(site) = body["site"].as_str() {
        d.ensure_site(site).await;
    }
    let (status, v) = d.api("POST", "/jobs", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_u64().unwrap()
}

async fn job(d: &Daemon, id: u64) -> Value {
    let (status, v) = d.api("GET", &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn device(d: &Daemon, m: &str) -> (u16, Value) {
    d.api("GET", &format!("/devices/{m}"), None).await
}

/// Polls the job until `done` says so, or fails after `secs` seconds.
async fn wait_for(d: &Daemon, id: u64, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(d, id).await;
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not get there: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state(j: &Value) -> &str {
    j["state"].as_str().unwrap()
}

fn ok_count(j: &Value) -> u64 {
    j["counts"]["ok"].as_u64().unwrap()
}

async fn finished(d: &Daemon, id: u64) -> Value {
    wait_for(d, id, 30, |j| {
        ["done", "failed", "stopped"].contains(&state(j))
    })
    .await
}

#[tokio::test]
async fn scheduled_job_runs_at_its_time_and_not_before() {
    let d = Daemon::start();
    let macs = add_devices(&d, 1, 3, "hq").await;
    add_devices(&d, 10, 1, "branch").await;
    let at = now() + 3;
    let id = create(
        &d,
        json!({"kind": "deactivate", "selection": {"site": "hq"}, "at": at}),
    )
    .await;
    // Up to a second before its time: still waiting, nothing touched.
    while now() < at - 1 {
        let j = job(&d, id).await;
        assert_eq!(state(&j), "scheduled", "{j}");
        assert_eq!(j["results"], json!([]));
        for m in &macs {
            assert_eq!(device(&d, m).await.1["state"], "active");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let j = finished(&d, id).await;
    assert_eq!(state(&j), "done", "{j}");
    assert!(j["started"].as_i64().unwrap() >= at, "{j}");
    assert_eq!(j["created_by"], "admin", "the caller's user name");
    assert_eq!(
        j["counts"],
        json!({"total": 3, "ok": 3, "failed": 0, "skipped": 0, "pending": 0})
    );
    let results: Vec<&str> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mac"].as_str().unwrap())
        .collect();
    assert_eq!(results, macs.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "ok" && r["detail"] == "active → inactive"),
        "{j}"
    );
    for m in &macs {
        assert_eq!(device(&d, m).await.1["state"], "inactive");
    }
    assert_eq!(device(&d, &mac(10)).await.1["state"], "active");
    let (_, list) = d.api("GET", "/jobs?state=done", None).await;
    assert_eq!(list[0]["id"], id);
    assert!(list[0].get("results").is_none());
}

#[tokio::test]
async fn pause_holds_a_running_job_and_resume_completes_it() {
    let d = Daemon::start();
    let macs = add_devices(&d, 1, 10, "hq").await;
    let id = create(
        &d,
        json!({"kind": "set_param", "name": "SIPDOMAIN", "value": "sip.example.com",
               "selection": {"site": "hq"}, "rate": 4}),
    )
    .await;
    wait_for(&d, id, 20, |j| ok_count(j) >= 2).await;
    let (status, paused) = d.api("POST", &format!("/jobs/{id}/pause"), None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(state(&paused), "paused");
    let held = ok_count(&paused);
    assert!(held < 10, "{paused}");
    let (status, again) = d.api("POST", &format!("/jobs/{id}/pause"), None).await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["error"].as_str().unwrap().contains("paused"),
        "{again}"
    );

    // Four devices' worth of time: no progress while paused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let j = job(&d, id).await;
    assert_eq!((state(&j), ok_count(&j)), ("paused", held), "{j}");
    let set = |v: &Value| v["params"]["SIPDOMAIN"] == "sip.example.com";
    let mut changed = 0;
    for m in &macs {
        changed += usize::from(set(&device(&d, m).await.1));
    }
    assert_eq!(changed as u64, held);

    let (status, resumed) = d.api("POST", &format!("/jobs/{id}/resume"), None).await;
    assert_eq!(status, 200, "{resumed}");
    let j = finished(&d, id).await;
    assert_eq!(state(&j), "done", "{j}");
    assert_eq!(ok_count(&j), 10);
    for m in &macs {
        assert!(set(&device(&d, m).await.1), "{m}");
    }
    let (status, v) = d.api("POST", &format!("/jobs/{id}/resume"), None).await;
    assert_eq!(status, 409, "{v}");
}

#[tokio::test]
async fn stop_skips_the_rest_and_only_a_job_not_running_can_be_deleted() {
    let d = Daemon::start();
    let macs = add_devices(&d, 1, 10, "hq").await;
    let id = create(
        &d,
        json!({"kind": "move", "site": "branch", "selection": {"macs": macs}, "rate": 4}),
    )
    .await;
    wait_for(&d, id, 20, |j| ok_count(j) >= 2).await;
    let (status, v) = d.api("DELETE", &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(
        v["error"],
        format!("job {id}: cannot delete a running job: pause or stop it first")
    );

    let (status, stopped) = d.api("POST", &format!("/jobs/{id}/stop"), None).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(state(&stopped), "stopped");
    let done = ok_count(&stopped);
    assert_eq!(stopped["counts"]["skipped"].as_u64().unwrap(), 10 - done);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let j = job(&d, id).await;
    assert_eq!(j["counts"], stopped["counts"]);
    for r in j["results"].as_array().unwrap() {
        let (_, dev) = device(&d, r["mac"].as_str().unwrap()).await;
        match r["status"].as_str().unwrap() {
            "ok" => assert_eq!(dev["site"], "branch"),
            "skipped" => assert_eq!(dev["site"], "hq", "skipped devices are untouched"),
            other => panic!("unexpected result {other}: {j}"),
        }
    }
    let (status, v) = d.api("POST", &format!("/jobs/{id}/resume"), None).await;
    assert_eq!(status, 409, "{v}");

    let (status, _) = d.api("DELETE", &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = d.api("GET", &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 404);

    // A scheduled job can be cancelled outright; ids are not reused.
    let later = create(
        &d,
        json!({"kind": "delete", "selection": {"all": true}, "at": now() + 3600}),
    )
    .await;
    assert!(later > id);
    let (status, _) = d.api("DELETE", &format!("/jobs/{later}"), None).await;
    assert_eq!(status, 204);
    let (_, audit) = d.api("GET", "/audit?resource=/api/v1/jobs", None).await;
    let summaries: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert!(
        summaries.contains(&format!("job {id} running → stopped").as_str()),
        "{summaries:?}"
    );
    assert!(summaries.contains(&format!("job {id} (move) created").as_str()));
}

/// A new operator token for `olivia` over `sites`: its secret and its id.
async fn operator(d: &Daemon, sites: &[&str]) -> (String, String) {
    for site in sites {
        d.ensure_site(site).await;
    }
    let (status, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "olivia", "role": "operator", "sites": sites})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["token"].as_str().unwrap().to_string();
    (secret, made["id"].as_str().unwrap().to_string())
}

/// Creates a job with an operator's token.
async fn create_as(d: &Daemon, token: &str, body: Value) -> Value {
    let (status, v) = d
        .api_with_token("POST", "/jobs", Some(body), Some(token))
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

/// An administrator moves device `i` to a site the operator does not have.
async fn move_to_secret_site(d: &Daemon, i: usize) {
    d.ensure_site("secret-site").await;
    let (status, v) = d
        .api(
            "PATCH",
            &format!("/devices/{}", mac(i)),
            Some(json!({"site": "secret-site"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// Waits for the first of a 0.5-device-per-second job's devices, then does `meanwhile`, which
/// must happen before the job reaches its second device two seconds later; checked by the
/// second device still being pending afterwards, so the test cannot pass on a lost race.
async fn between_first_and_second<F: Future<Output = ()>>(d: &Daemon, id: u64, meanwhile: F) {
    wait_for(d, id, 20, |j| ok_count(j) >= 1).await;
    meanwhile.await;
    let j = job(d, id).await;
    assert_eq!(
        j["results"][1]["status"], "pending",
        "too slow: the job reached its second device first: {j}"
    );
}

#[tokio::test]
async fn an_operators_running_job_changes_only_devices_it_may_still_change() {
    let d = Daemon::start();
    add_devices(&d, 1, 3, "hq").await;
    let (olivia, olivia_id) = operator(&d, &["hq"]).await;

    // An administrator moves a device out of the operator's site while its job runs.
    let j = create_as(
        &d,
        &olivia,
        json!({"kind": "delete", "selection": {"site": "hq"}, "rate": 0.5}),
    )
    .await;
    assert_eq!(
        j["sites"],
        json!(["hq"]),
        "the creator's sites, stored with the job"
    );
    let id = j["id"].as_u64().unwrap();
    between_first_and_second(&d, id, move_to_secret_site(&d, 2)).await;
    let (status, v) = d
        .api_with_token(
            "DELETE",
            &format!("/devices/{}", mac(2)),
            None,
            Some(&olivia),
        )
        .await;
    assert_eq!(status, 403, "the operator may not delete it by hand: {v}");
    let j = finished(&d, id).await;
    assert_eq!(state(&j), "done", "a skipped device is no failure: {j}");
    assert_eq!(
        j["counts"],
        json!({"total": 3, "ok": 2, "failed": 0, "skipped": 1, "pending": 0})
    );
    assert_eq!(
        j["results"][1],
        json!({"mac": mac(2), "status": "skipped", "detail": "moved out of the job's sites"})
    );
    let (status, dev) = device(&d, &mac(2)).await;
    assert_eq!((status, dev["site"].as_str()), (200, Some("secret-site")));
    for m in [mac(1), mac(3)] {
        assert_eq!(device(&d, &m).await.0, 404, "{m} deleted");
    }
    let (status, seen) = d
        .api_with_token("GET", &format!("/jobs/{id}"), None, Some(&olivia))
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["results"], j["results"], "the operator sees why");
    assert!(
        !seen.to_string().contains("secret-site"),
        "the other site is not named to the operator: {seen}"
    );

    // A listed MAC that was not in the inventory when the job started, created in another
    // site before the job reached it.
    add_devices(&d, 4, 1, "hq").await;
    let j = create_as(
        &d,
        &olivia,
        json!({"kind": "delete", "selection": {"site": "hq", "macs": [mac(4), mac(9)]},
               "rate": 0.5}),
    )
    .await;
    let id = j["id"].as_u64().unwrap();
    between_first_and_second(&d, id, async {
        add_devices(&d, 9, 1, "secret-site").await;
    })
    .await;
    let j = finished(&d, id).await;
    assert_eq!(
        j["results"][1],
        json!({"mac": mac(9), "status": "skipped", "detail": "moved out of the job's sites"})
    );
    assert_eq!(device(&d, &mac(9)).await.0, 200, "not deleted");

    // The operator's sites cut while its job runs (its token replaced by one for another
    // site): the job acts with the rights its creator has at each step.
    add_devices(&d, 5, 2, "hq").await;
    let j = create_as(
        &d,
        &olivia,
        json!({"kind": "deactivate", "selection": {"site": "hq"}, "rate": 0.5}),
    )
    .await;
    let id = j["id"].as_u64().unwrap();
    between_first_and_second(&d, id, async {
        operator(&d, &["branch"]).await;
        let (status, _) = d.api("DELETE", &format!("/tokens/{olivia_id}"), None).await;
        assert_eq!(status, 204);
    })
    .await;
    let j = finished(&d, id).await;
    assert_eq!(
        j["results"][1],
        json!({"mac": mac(6), "status": "skipped", "detail": "in a site olivia does not have now"})
    );
    assert_eq!(device(&d, &mac(5)).await.1["state"], "inactive");
    assert_eq!(device(&d, &mac(6)).await.1["state"], "active");
}

#[tokio::test]
async fn a_running_job_continues_after_a_restart_and_a_crash() {
    let d = Daemon::start();
    let macs = add_devices(&d, 1, 12, "hq").await;
    let id = create(
        &d,
        json!({"kind": "set_param", "name": "VLAN", "value": "20",
               "selection": {"site": "hq"}, "rate": 4}),
    )
    .await;
    let before = wait_for(&d, id, 20, |j| ok_count(j) >= 2).await;
    let d = d.restart();
    let mid = wait_for(&d, id, 20, |j| ok_count(j) >= 5).await;
    assert_eq!(
        mid["started"], before["started"],
        "continued, not started again"
    );
    let mut d = d;
    d.kill9();
    let d = d.restart();
    let j = finished(&d, id).await;
    assert_eq!(state(&j), "done", "{j}");
    assert_eq!(
        j["started"], before["started"],
        "continued, not started again"
    );
    assert_eq!(j["counts"]["total"], 12);
    assert_eq!(ok_count(&j), 12);
    assert_eq!(j["results"].as_array().unwrap().len(), 12);
    for m in &macs {
        assert_eq!(device(&d, m).await.1["params"]["VLAN"], "20");
    }
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let d = Daemon::start();
    for (body, field) in [
        (json!({"selection": {"all": true}}), "kind:"),
        (
            json!({"kind": "reboot", "selection": {"all": true}}),
            "kind:",
        ),
        (json!({"kind": "delete"}), "selection:"),
        (json!({"kind": "delete", "selection": {}}), "selection:"),
        (
            json!({"kind": "delete", "selection": {"macs": ["nope"]}}),
            "selection.macs:",
        ),
        (
            json!({"kind": "delete", "selection": {"state": "sleepy"}}),
            "selection.state:",
        ),
        (
            json!({"kind": "delete", "selection": {"sites": "hq"}}),
            "selection.sites:",
        ),
        (json!({"kind": "move", "selection": {"all": true}}), "site:"),
        (
            json!({"kind": "set_param", "name": "X", "selection": {"all": true}}),
            "value:",
        ),
        (
            json!({"kind": "set_param", "name": "bad name", "value": "1", "selection": {"all": true}}),
            "name:",
        ),
        (
            json!({"kind": "set_param", "name": "SIPDOMAIN", "value": "a\"b", "selection": {"all": true}}),
            "value:",
        ),
        (
            json!({"kind": "delete", "selection": {"all": true}, "rate": "fast"}),
            "rate:",
        ),
        (
            json!({"kind": "delete", "selection": {"all": true}, "rate": -1}),
            "rate:",
        ),
        (
            json!({"kind": "delete", "selection": {"all": true}, "at": "2030-01-01"}),
            "at:",
        ),
        (
            json!({"kind": "activate", "selection": {"all": true}, "name": "X"}),
            "name:",
        ),
    ] {
        let (status, v) = d.api("POST", "/jobs", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with(field), "{body}: {msg}");
    }
    let (status, v) = d.api("GET", "/jobs/x", None).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = d.api("POST", "/jobs/99/pause", None).await;
    assert_eq!(status, 404);
    let (_, jobs) = d.api("GET", "/jobs", None).await;
    assert_eq!(jobs, json!([]), "nothing was created");
}

#[tokio::test]
async fn every_kind_changes_the_devices() {
    let d = Daemon::start();
    let macs = add_devices(&d, 1, 3, "hq").await;
    let sel = json!({"macs": macs});
    let run = |body: Value| {
        let d = &d;
        async move {
            let id = create(d, body).await;
            finished(d, id).await
        }
    };

    let j = run(json!({"kind": "deactivate", "selection": sel})).await;
    assert_eq!(state(&j), "done", "{j}");
    for m in &macs {
        assert_eq!(device(&d, m).await.1["state"], "inactive");
    }
    let j = run(json!({"kind": "activate", "selection": {"state": "inactive"}})).await;
    assert_eq!(j["counts"]["ok"], 3, "{j}");
    for m in &macs {
        assert_eq!(device(&d, m).await.1["state"], "active");
    }

    run(json!({"kind": "move", "site": "branch", "group": "7", "selection": sel})).await;
    for m in &macs {
        let (_, v) = device(&d, m).await;
        assert_eq!(
            (v["site"].as_str(), v["group"].as_str()),
            (Some("branch"), Some("7"))
        );
    }

    run(json!({"kind": "set_param", "name": "SIPDOMAIN", "value": "a.example", "selection": {"site": "branch"}})).await;
    let j = run(
        json!({"kind": "set_param", "name": "SIP_PASSWORD", "value": "s3cret",
                       "secret": true, "selection": sel}),
    )
    .await;
    assert_ne!(j["value"], "s3cret", "a secret value is never shown: {j}");
    for m in &macs {
        let (_, v) = device(&d, m).await;
        assert_eq!(v["params"]["SIPDOMAIN"], "a.example");
        assert_eq!(v["secrets"], json!(["SIP_PASSWORD"]));
    }
    run(json!({"kind": "set_param", "name": "SIPDOMAIN", "value": null, "selection": sel})).await;
    assert_eq!(device(&d, &macs[0]).await.1["params"], json!({}));

    // A cloud-managed device keeps its state; the job reports it and ends failed.
    in_cloud_state(&d, &mac(20), "activated", "branch").await;
    let j = run(json!({"kind": "deactivate", "selection": {"macs": [mac(20), macs[0]]}})).await;
    assert_eq!(state(&j), "failed", "{j}");
    assert_eq!(j["results"][0]["status"], "failed");
    assert!(
        j["results"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("cloud")
    );
    assert_eq!(j["results"][1]["status"], "ok");
    assert_eq!(device(&d, &mac(20)).await.1["state"], "activated");

    let j = run(json!({"kind": "firmware_prefetch", "selection": sel})).await;
    assert_eq!(state(&j), "done", "{j}");
    assert!(
        j["results"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("no firmware"),
        "{j}"
    );

    let j =
        run(json!({"kind": "delete", "selection": {"macs": [macs[0], macs[1], mac(99)]}})).await;
    assert_eq!(j["counts"]["ok"], 2, "{j}");
    assert_eq!(j["results"][2]["detail"], "not in the inventory");
    assert_eq!(device(&d, &macs[0]).await.0, 404);
    assert_eq!(device(&d, &macs[1]).await.0, 404);
    assert_eq!(device(&d, &macs[2]).await.0, 200);
}

/// A job that ends without a failure but left devices as they were (skipped as out of its
/// sites, or not reached before a stop) makes `job wait` fail, saying how many and why.
#[tokio::test]
async fn waiting_on_a_job_that_skipped_devices_fails_and_says_why() {
    let d = Daemon::start();
    add_devices(&d, 1, 3, "hq").await;
    let (olivia, _) = operator(&d, &["hq"]).await;
    let j = create_as(
        &d,
        &olivia,
        json!({"kind": "deactivate", "selection": {"site": "hq"}, "rate": 0.5}),
    )
    .await;
    let id = j["id"].as_u64().unwrap();
    between_first_and_second(&d, id, move_to_secret_site(&d, 2)).await;
    let out = d.cli(&["job", "wait", &id.to_string()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "job {id} done, but 1 of 3 devices were skipped and left as they were: \
             moved out of the job's sites (1)"
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains("3 total, 2 ok, 0 failed, 1 skipped"),
        "{stdout}"
    );

    // Stopped before its last devices: those are skipped too.
    add_devices(&d, 4, 3, "hq").await;
    let id = create(
        &d,
        json!({"kind": "activate", "selection": {"macs": [mac(4), mac(5), mac(6)]},
               "rate": 0.5}),
    )
    .await;
    wait_for(&d, id, 20, |j| ok_count(j) >= 1).await;
    let (status, v) = d.api("POST", &format!("/jobs/{id}/stop"), None).await;
    assert_eq!(status, 200, "{v}");
    let out = d.cli(&["job", "wait", &id.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "job {id} stopped, but 2 of 3 devices were skipped and left as they were: \
             job stopped before this device (2)"
        )),
        "{stderr}"
    );

    // A job that reached every device still succeeds.
    let out = d.cli(&["job", "create", "activate", "--site", "hq", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn cli_creates_follows_lists_and_shows_jobs() {
    let d = Daemon::start();
    add_devices(&d, 1, 3, "hq").await;
    d.ensure_site("branch").await;
    let out = d.cli(&[
        "job",
        "create",
        "move",
        "--site",
        "hq",
        "--to-site",
        "branch",
        "--wait",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("job 1 done: 3/3 devices"), "{stderr}");
    assert!(stdout.contains("devices     3 total, 3 ok"), "{stdout}");
    assert!(stdout.contains("sites       all\n"), "{stdout}");
    assert!(stdout.contains(&format!("{}  ok", mac(1))), "{stdout}");
    assert_eq!(device(&d, &mac(1)).await.1["site"], "branch");

    let out = d.cli(&["job", "create", "delete", "--all", "--at", "+1h", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("job 2 (delete) scheduled"));

    let out = d.cli(&["job", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID  KIND"), "{stdout}");
    assert!(lines[1].starts_with("2   delete  scheduled"), "{stdout}");
    assert!(lines[2].starts_with("1   move    done"), "{stdout}");

    let out = d.cli(&["job", "pause", "2"]);
    assert!(out.status.success());
    let out = d.cli(&["job", "show", "2", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "paused");
    let out = d.cli(&["job", "create", "move", "--all"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--to-site"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["job", "delete", "2", "--yes"]);
    assert!(out.status.success());
    let out = d.cli(&["job", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_prefetch_fetches_each_image_once_for_the_selected_devices() {
    use common::upstream::{Upstream, image, sha256_hex};
    let up = Upstream::start(image(200_000, 7)).await;
    let file = "FW_S_J179_R4_1_3_0_6.bin";
    let d = Daemon::start_with(&format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"4.1.3.0.6\"\nfile = \"{file}\"\nurls = [\"{}\"]\nsha256 = \"{}\"\n",
        up.url(file),
        sha256_hex(&up.image)
    ));
    add_devices(&d, 1, 2, "hq").await;
    d.add_device(json!({"mac": mac(3), "model": "K175", "site": "hq"}))
        .await;
    let id = create(
        &d,
        json!({"kind": "firmware_prefetch", "selection": {"site": "hq"}}),
    )
    .await;
    let j = finished(&d, id).await;
    assert_eq!(state(&j), "done", "{j}");
    let details: Vec<&str> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details[0], format!("{file} cached"));
    assert_eq!(details[1], format!("{file} cached"));
    assert!(details[2].contains("no firmware"), "{details:?}");
    assert_eq!(up.requests(), 1, "one download for both devices");
}

/// A prefetch skips a device moved out of the operator's site without fetching its image: the
/// image its new site's policy points at is none of the operator's business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_prefetch_fetches_nothing_for_a_device_moved_out() {
    use common::upstream::{Upstream, image, sha256_hex};
    let up = Upstream::start(image(200_000, 7)).await;
    let file = "FW_S_J179_R4_1_3_0_6.bin";
    let d = Daemon::start_with(&format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"4.1.3.0.6\"\nfile = \"{file}\"\nurls = [\"{}\"]\nsha256 = \"{}\"\n",
        up.url(file),
        sha256_hex(&up.image)
    ));
    d.add_device(json!({"mac": mac(1), "model": "K175", "site": "hq"}))
        .await;
    add_devices(&d, 2, 1, "hq").await;
    let (olivia, _) = operator(&d, &["hq"]).await;
    let j = create_as(
        &d,
        &olivia,
        json!({"kind": "firmware_prefetch", "selection": {"site": "hq"}, "rate": 0.5}),
    )
    .await;
    let id = j["id"].as_u64().unwrap();
    between_first_and_second(&d, id, move_to_secret_site(&d, 2)).await;
    let j = finished(&d, id).await;
    assert_eq!(
        j["results"][1],
        json!({"mac": mac(2), "status": "skipped", "detail": "moved out of the job's sites"})
    );
    assert_eq!(up.requests(), 0, "nothing fetched for the skipped device");
}

/// A job lists the sites it may change devices in, its creator's: another operator of the
/// same site read from it the names of its creator's other sites, sites it does not hold. An
/// operator sees only its own of them.
#[tokio::test]
async fn an_operator_does_not_learn_another_operators_sites_from_a_job() {
    let d = Daemon::start();
    let mut tokens = Vec::new();
    for (user, sites) in [
        ("bea", json!(["hq", "secret-lab"])),
        ("olivia", json!(["hq"])),
    ] {
        for site in sites.as_array().unwrap() {
            d.ensure_site(site.as_str().unwrap()).await;
        }
        let (s, v) = d
            .api(
                "POST",
                "/tokens",
                Some(json!({"user": user, "role": "operator", "sites": sites})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        tokens.push(v["token"].as_str().unwrap().to_string());
    }
    let (s, job) = d
        .api_with_token(
            "POST",
            "/jobs",
            Some(json!({"kind": "deactivate", "selection": {"site": "hq"}, "at": now() + 3600})),
            Some(&tokens[0]),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    assert_eq!(
        job["sites"],
        json!(["hq", "secret-lab"]),
        "its creator sees its own"
    );
    let id = job["id"].as_u64().unwrap();
    let (s, one) = d
        .api_with_token("GET", &format!("/jobs/{id}"), None, Some(&tokens[1]))
        .await;
    assert_eq!(s, 200, "{one}");
    let (s, list) = d
        .api_with_token("GET", "/jobs", None, Some(&tokens[1]))
        .await;
    assert_eq!(s, 200, "{list}");
    let (s, paused) = d
        .api_with_token("POST", &format!("/jobs/{id}/pause"), None, Some(&tokens[1]))
        .await;
    assert_eq!(s, 200, "{paused}");
    for shown in [&one, &list[0], &paused] {
        assert_eq!(shown["sites"], json!(["hq"]), "{shown}");
    }
    let (_, by_admin) = d.api("GET", &format!("/jobs/{id}"), None).await;
    assert_eq!(by_admin["sites"], json!(["hq", "secret-lab"]));
}

/// Puts a device in a state of the cloud's lifecycle as an inventory moved from a box the
/// cloud manages brings it: the admin API sets only the states managed here.
async fn in_cloud_state(d: &Daemon, m: &str, state: &str, site: &str) {
    d.ensure_site(site).await;
    let rows = json!([{"mac": m, "model": "J179", "site": site, "state": state}]);
    let (status, v) = d
        .api("POST", "/devices/import?format=json", Some(rows))
        .await;
    assert_eq!(status, 200, "{v}");
}

/// A device managed here is `active` or `inactive`: the admin API refuses to put it in a state
/// of the cloud's lifecycle, naming the states it takes. It accepted one, after which every
/// activate and deactivate job refused the device ("change it in the cloud") on a box that has
/// no cloud. A device the cloud's lifecycle holds may still be set, as before: to another of
/// the cloud's states, or back to one managed here, after which jobs reach it.
#[tokio::test]
async fn a_device_managed_here_is_not_put_in_a_cloud_state() {
    let d = Daemon::start();
    let local = add_devices(&d, 1, 1, "hq").await.remove(0);
    for state in ["deactivated", "activated", "released"] {
        let (s, v) = d
            .api(
                "PATCH",
                &format!("/devices/{local}"),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!(s, 400, "{state}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.starts_with("state: ") && e.contains(state), "{e}");
        assert!(
            e.contains("\"active\"") && e.contains("\"inactive\""),
            "{e}"
        );
    }
    let new = json!({"mac": mac(2), "model": "J179", "site": "hq", "state": "deactivated"});
    let (s, v) = d.api("POST", "/devices", Some(new)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("state: "), "{v}");
    assert_eq!(device(&d, &mac(2)).await.0, 404, "not added");

    let out = d.cli(&["device", "set", &local, "--state", "deactivated"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("deactivated") && err.contains("inactive"),
        "{err}"
    );
    assert_eq!(
        device(&d, &local).await.1["state"],
        "active",
        "left as it was"
    );

    // What it is for, a device managed here taken out of service, a job does.
    let id = create(
        &d,
        json!({"kind": "deactivate", "selection": {"macs": [local]}}),
    )
    .await;
    let j = finished(&d, id).await;
    assert_eq!((state(&j), ok_count(&j)), ("done", 1), "{j}");
    assert_eq!(device(&d, &local).await.1["state"], "inactive");

    // A device in the cloud's lifecycle moves within it, or back to one managed here.
    let cloud = mac(3);
    in_cloud_state(&d, &cloud, "activated", "hq").await;
    for state in ["deactivated", "active"] {
        let (s, v) = d
            .api(
                "PATCH",
                &format!("/devices/{cloud}"),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!((s, &v["state"]), (200, &json!(state)), "{v}");
    }
    let id = create(
        &d,
        json!({"kind": "deactivate", "selection": {"macs": [cloud]}}),
    )
    .await;
    let j = finished(&d, id).await;
    assert_eq!((state(&j), ok_count(&j)), ("done", 1), "{j}");
}
