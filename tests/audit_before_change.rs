//! A change and its audit entry are two commits; the entry is written first, so a daemon killed
//! between them never leaves a change that the log does not show: the entry stays, saying the
//! daemon stopped before the request was answered.

mod common;

use std::time::Duration;

use common::*;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

async fn entries_for(d: &Daemon, resource: &str) -> Vec<Value> {
    let (s, v) = d
        .api("GET", &format!("/audit?resource={resource}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

/// Sends an upload to `resource` whose body never finishes: its handler waits for the rest.
async fn unfinished_upload(
    d: &Daemon,
    resource: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(d.admin).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "PUT {resource} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100\r\n\r\nSET X 1\n",
        d.token
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

#[tokio::test]
async fn a_request_is_audited_before_it_can_change_anything() {
    let mut d = Daemon::start();
    let resource = "/api/v1/files/slow.txt";

    let tls = unfinished_upload(&d, resource).await;

    let mut pending = Vec::new();
    for _ in 0..200 {
        pending = entries_for(&d, resource).await;
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["status"], 0, "{pending:?}");
    assert_eq!(pending[0]["method"], "PUT");
    assert_eq!(pending[0]["who"], "admin");

    // Killed before the request ends: the entry survives, and nothing was stored.
    d.kill9();
    drop(tls);
    let d = d.restart();
    let after = entries_for(&d, resource).await;
    assert_eq!(after, pending);
    assert!(
        after[0]["summary"]
            .as_str()
            .unwrap()
            .contains("stopped before it answered"),
        "{after:?}"
    );
    let (s, _) = d.api("GET", "/files/slow.txt", None).await;
    assert_eq!(s, 404);

    // A request that ends completes its own entry: one entry, with the outcome.
    let (s, v) = d
        .api(
            "POST",
            "/devices",
            Some(json!({"mac": "001122aabbcc", "model": "J179"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let done = entries_for(&d, "/api/v1/devices").await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["status"], 201);
    assert_eq!(done[0]["who"], "admin");
    assert!(
        done[0]["seq"].as_u64().unwrap() > after[0]["seq"].as_u64().unwrap(),
        "{done:?}"
    );
}

/// A client that goes away in the middle of its body leaves an entry with the outcome, not a
/// "started" one; a caller the guard refuses is entered once, after the fact, with no
/// "started" entry before it.
#[tokio::test]
async fn a_request_whose_client_goes_away_is_still_entered_whole() {
    let d = Daemon::start();
    let resource = "/api/v1/files/cut.txt";
    let tls = unfinished_upload(&d, resource).await;
    for _ in 0..200 {
        if !entries_for(&d, resource).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(tls);
    let mut entries = Vec::new();
    for _ in 0..200 {
        entries = entries_for(&d, resource).await;
        if entries.len() == 1 && entries[0]["status"] != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_ne!(entries[0]["status"], 0, "{entries:?}");
    assert_eq!(entries[0]["who"], "admin");

    let (s, _) = d
        .api_with_token(
            "POST",
            "/devices",
            Some(json!({"mac": "001122aabbcc"})),
            Some("wrong-token"),
        )
        .await;
    assert_eq!(s, 401);
    let refused = entries_for(&d, "/api/v1/devices").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 401);
}

/// The newest entry for `resource` (a PATCH or an import).
async fn last_change(d: &Daemon, resource: &str) -> Value {
    let entries = entries_for(d, resource).await;
    entries
        .iter()
        .find(|e| e["method"] != "GET")
        .cloned()
        .unwrap_or_else(|| panic!("no change entered for {resource}: {entries:?}"))
}

/// Views list a secret's name, never its value, so a new SIP password (on a device, a layer
/// or through an import) or a new HTTP password gave an entry with an empty difference: the
/// log did not show a secret was changed. The entry names it, its values masked.
#[tokio::test]
async fn a_changed_secret_value_is_entered_masked() {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": "001122aabb01", "model": "J179", "site": "hq",
        "secrets": {"SIP_PASSWORD": "old-pw-1"},
        "http_credential": {"username": "desk", "password": "old-http-1"},
    }))
    .await;
    let masked = json!({"before": "********", "after": "********"});

    let (s, v) = d
        .api(
            "PATCH",
            "/devices/001122aabb01",
            Some(json!({"secrets": {"SIP_PASSWORD": "new-pw-2"},
                        "http_credential": {"username": "desk", "password": "new-http-2"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let e = last_change(&d, "/api/v1/devices/001122aabb01").await;
    assert_eq!(e["changes"]["secrets.SIP_PASSWORD"], masked, "{e}");
    assert_eq!(e["changes"]["http_credential.password"], masked, "{e}");

    for value in ["one", "two"] {
        let (s, v) = d
            .api(
                "PATCH",
                "/params/site:hq",
                Some(json!({"secrets": {"line.1.password": format!("layer-{value}")}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let e = last_change(&d, "/api/v1/params/site:hq").await;
    assert_eq!(e["changes"]["secrets.line.1.password"], masked, "{e}");

    let csv = "mac,model,site,secret:SIP_PASSWORD\n001122aabb01,J179,hq,import-pw-3\n";
    let (s, v) = d
        .api_bytes("POST", "/devices/import?format=csv", csv, Some(&d.token))
        .await;
    assert_eq!(s, 200, "{v}");
    let e = last_change(&d, "/api/v1/devices/import").await;
    assert_eq!(
        e["changes"]["updated"]["001122aabb01"]["secrets.SIP_PASSWORD"], masked,
        "{e}"
    );

    let (_, all) = d.api("GET", "/audit", None).await;
    let all = all.to_string();
    for secret in [
        "old-pw-1",
        "new-pw-2",
        "old-http-1",
        "new-http-2",
        "layer-one",
        "layer-two",
        "import-pw-3",
    ] {
        assert!(!all.contains(secret), "{secret} in the audit log: {all}");
    }
}

/// A static file's upload and removal were entered with the path alone (`created`, no
/// changes): the entry did not say which site's file it was (the site is in the query) nor
/// that its content was replaced. It says both now, the content masked.
#[tokio::test]
async fn static_file_changes_name_their_site_and_content() {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 201, "{v}");
    d.put_file("desk.cfg?site=hq", "A=1\n").await;
    d.put_file("desk.cfg?site=hq", "A=2\n").await;
    let (s, v) = d
        .api_bytes("DELETE", "/files/desk.cfg?site=hq", "", Some(&d.token))
        .await;
    assert_eq!(s, 204, "{v}");
    let entries = entries_for(&d, "/api/v1/files/desk.cfg").await;
    let summaries: Vec<&str> = entries
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "static file desk.cfg of site hq deleted",
            "static file desk.cfg of site hq stored",
            "static file desk.cfg of site hq stored",
        ],
        "newest first: {entries:?}"
    );
    assert_eq!(entries[2]["changes"]["site"]["after"], "hq", "{entries:?}");
    assert_eq!(
        entries[1]["changes"]["content"],
        json!({"before": "********", "after": "********"}),
        "{entries:?}"
    );
    assert_eq!(entries[0]["changes"]["size"]["before"], 4, "{entries:?}");
    assert!(!serde_json::to_string(&entries).unwrap().contains("A=2"));
}

/// A refused change's entry says why, as the client was told: it said only "bad request" or
/// "conflict", so an auditor could not tell what was wrong with a refused change.
#[tokio::test]
async fn a_refused_change_is_entered_with_its_reason() {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 409, "{v}");
    let told = v["error"].as_str().unwrap().to_string();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"vlan.id": "9999"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let bad = v["error"].as_str().unwrap().to_string();

    let conflict = entries_for(&d, "/api/v1/sites").await;
    assert_eq!(conflict[0]["status"], 409, "{conflict:?}");
    assert_eq!(
        conflict[0]["summary"],
        format!("conflict: {told}"),
        "{conflict:?}"
    );
    let refused = entries_for(&d, "/api/v1/params/global").await;
    assert_eq!(refused[0]["status"], 400, "{refused:?}");
    assert_eq!(
        refused[0]["summary"],
        format!("bad request: {bad}"),
        "{refused:?}"
    );
    assert!(bad.contains("vlan.id"), "{bad}");
    let (s, v) = d.api("GET", "/params/global", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains("9999"), "nothing was stored: {v}");

    // An import refused for a bad row says how many and the first, not a cell's value.
    let csv = "mac,model,site,secret:SIP_PASSWORD\nnot-a-mac,J179,hq,cell-secret\n";
    let (s, v) = d
        .api_bytes("POST", "/devices/import?format=csv", csv, Some(&d.token))
        .await;
    assert_eq!(s, 400, "{v}");
    let import = entries_for(&d, "/api/v1/devices/import").await;
    let summary = import[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("bad request: 1 bad row(s), nothing imported; line 2: mac: "),
        "{import:?}"
    );
    assert!(!summary.contains("cell-secret"), "{summary}");
}
