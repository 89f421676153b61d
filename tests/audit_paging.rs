//! The audit log is read a page at a time: `before=SEQ` gives the entries older than the last
//! one of a page, so paging with any filter sees every entry once, however many share a second
//! and however many are appended meanwhile.

mod common;

use common::*;
use serde_json::{Value, json};

fn seqs(page: &Value) -> Vec<u64> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_audit_log_pages_by_sequence_number() {
    let d = Daemon::start();
    for i in 0..5 {
        let (s, v) = d
            .api("POST", "/sites", Some(json!({"name": format!("s{i}")})))
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let filter = "resource=/api/v1/sites";
    let (s, all) = d.api("GET", &format!("/audit?{filter}"), None).await;
    assert_eq!(s, 200, "{all}");
    let all = seqs(&all);
    assert_eq!(all.len(), 5);

    let mut paged = Vec::new();
    let mut query = format!("/audit?{filter}&limit=2");
    // Three pages of two hold them all; a few more turns stop a cursor that does not advance.
    for _ in 0..6 {
        let (s, page) = d.api("GET", &query, None).await;
        assert_eq!(s, 200, "{page}");
        let page = seqs(&page);
        // A change made between pages is newer than every page to come: it is not seen.
        d.api(
            "POST",
            "/sites",
            Some(json!({"name": format!("x{}", paged.len())})),
        )
        .await;
        let Some(&last) = page.last() else { break };
        paged.extend(page);
        query = format!("/audit?{filter}&limit=2&before={last}");
    }
    assert_eq!(paged, all, "every entry once, newest first");

    // The CLI shows each entry's SEQ and says how to ask for the next page.
    let newest = all[0].to_string();
    let out = d.cli(&["audit", "--limit", "1", "--before", &newest]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&format!("{} ", newest.parse::<u64>().unwrap() - 1)),
        "{table}"
    );
    let hint = String::from_utf8(out.stderr).unwrap();
    assert!(hint.contains("--before"), "{hint}");
}

/// A page larger than the API gives was cut to 100,000 entries without a word, so a script
/// asking for more took the page for the whole log; it is refused, naming the field.
#[tokio::test]
async fn a_page_larger_than_the_api_gives_is_refused_not_cut() {
    let d = Daemon::start();
    let (s, v) = d.api("GET", "/audit?limit=100000", None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.api("GET", "/audit?limit=100001", None).await;
    assert_eq!(s, 400, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.starts_with("limit:") && error.contains("before="),
        "{v}"
    );
    let out = d.cli(&["audit", "--limit", "100001"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("limit: at most 100000"), "{stderr}");
}
