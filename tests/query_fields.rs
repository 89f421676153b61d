//! A query field the admin API does not know is refused (400 naming it), never ignored: a
//! misspelt `dry_run` would apply an import the caller meant to check, and a misspelt `site`
//! would export every site or put a file for every site.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;

async fn send_text(d: &Daemon, method: &str, path: &str, body: &'static [u8]) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", d.token))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let r = send(d.admin, client_config(&d.ca_pem(), None), req)
        .await
        .unwrap();
    (r.status, r.text())
}

#[tokio::test]
async fn a_misspelt_query_field_is_refused_not_ignored() {
    let d = Daemon::start();
    let (s, v) = d
        .api("POST", "/sites", Some(serde_json::json!({"name": "hq"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let csv = b"mac,site\nc81fea83e85a,hq\n";
    let (s, text) = send_text(&d, "POST", "/devices/import?format=csv&dryrun=true", csv).await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("dryrun"), "{text}");
    let (_, health) = d.api("GET", "/health", None).await;
    assert_eq!(health["devices"], 0, "nothing imported");

    let (s, text) = send_text(&d, "GET", "/devices/export?format=csv&sites=hq", b"").await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("sites"), "{text}");

    let (s, text) = send_text(&d, "PUT", "/files/extra.txt?sit=hq", b"X=1\n").await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("sit"), "{text}");
    let (_, files) = d.api("GET", "/files", None).await;
    assert_eq!(files, serde_json::json!([]), "no file put for every site");

    let (s, text) = send_text(&d, "PUT", "/firmware/images/x.bin?ofset=5", b"").await;
    assert_eq!(s, 400, "{text}");

    // The fields the API knows still work.
    let (s, text) = send_text(&d, "POST", "/devices/import?format=csv&dry_run=true", csv).await;
    assert_eq!(s, 200, "{text}");
    let (s, text) = send_text(&d, "PUT", "/files/extra.txt?site=hq", b"X=1\n").await;
    assert_eq!(s, 201, "{text}");
}

/// A `limit` past what a route lists at once is refused naming `limit`, on every route that
/// pages, as `/audit` did: the check-in history and the rejected events cut it to 10,000
/// silently, so a script that asked for more took a short page for the whole list.
#[tokio::test]
async fn a_limit_past_the_most_is_refused_not_cut() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "001122aabbcc"}))
        .await;
    for (path, most) in [
        ("/devices/001122aabbcc/checkins?limit=10001", "10000"),
        ("/sync/rejected?limit=10001", "10000"),
        ("/audit?limit=100001", "100000"),
    ] {
        let (s, text) = send_text(&d, "GET", path, b"").await;
        assert_eq!(s, 400, "{path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let error = v["error"].as_str().unwrap();
        assert!(error.starts_with("limit: "), "{path}: {error}");
        assert!(error.contains(most), "{path}: {error}");
    }
    for path in [
        "/devices/001122aabbcc/checkins?limit=10000",
        "/sync/rejected?limit=10000",
        "/audit?limit=100000",
    ] {
        let (s, text) = send_text(&d, "GET", path, b"").await;
        assert_eq!(s, 200, "{path}: {text}");
    }
}
