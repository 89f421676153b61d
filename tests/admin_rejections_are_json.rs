//! Requests axum's extractors refuse are answered with a JSON error like every other error of
//! the admin API: a body over its route's limit (413, saying the limit; nothing of it is
//! stored), a path segment that is not UTF-8 (400, naming it).

mod common;

use common::*;

#[tokio::test]
async fn an_oversized_body_is_refused_with_a_json_error_naming_the_limit() {
    let d = Daemon::start();
    let huge = format!(
        "{{\"mac\": \"001122aabbcc\", \"label\": \"{}\"}}",
        "x".repeat(5 << 20)
    );
    for (method, path) in [
        ("POST", "/devices"),
        ("PATCH", "/params/global"),
        ("PUT", "/files/46xxspecials.txt"),
    ] {
        let (status, v) = d
            .api_bytes(method, path, huge.clone(), Some(&d.token))
            .await;
        assert_eq!(status, 413, "{method} {path}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("request body: over the 4194304 bytes"),
            "{method} {path}: {v}"
        );
    }
    let import = "x".repeat(65 << 20);
    let (status, v) = d
        .api_bytes("POST", "/devices/import?format=csv", import, Some(&d.token))
        .await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the 67108864 bytes")),
        "{v}"
    );
    let (_, list) = d.api("GET", "/devices", None).await;
    assert_eq!(list, serde_json::json!([]));
    let (status, _) = d.api("GET", "/files/46xxspecials.txt", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_refused_with_a_json_error_naming_it() {
    let d = Daemon::start();
    for (method, path, field) in [
        ("PATCH", "/devices/%FF%FE", "mac"),
        ("PATCH", "/params/site:%FF", "layer"),
        ("PUT", "/files/%FF.txt", "name"),
    ] {
        let (status, v) = d
            .api_bytes(method, path, r#"{"label": "x"}"#, Some(&d.token))
            .await;
        assert_eq!(status, 400, "{method} {path}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("`{field}`")),
            "{method} {path}: {v}"
        );
    }
}

/// A query string the API cannot read is said in the API's words, naming the field and what it
/// takes, not axum's "Failed to deserialize query string"; a JSON body's error leaves out
/// serde's "at line 1 column N" when the body is one line, and keeps the line of a longer body.
#[tokio::test]
async fn query_and_body_errors_are_said_in_the_apis_words() {
    let d = Daemon::start();
    let (status, v) = d.api("GET", "/alarms?severity=bogus", None).await;
    assert_eq!(status, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.starts_with("query: severity: unknown value \"bogus\", expected one of "),
        "{e}"
    );
    assert!(e.contains("warning"), "the values it takes: {e}");
    assert!(!e.contains("Failed to deserialize"), "{e}");
    let (status, v) = d.api("GET", "/devices?limit=many", None).await;
    assert_eq!(status, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("query: limit: "), "{e}");

    let (status, v) = d
        .api_bytes(
            "POST",
            "/sites",
            r#"{"name": 5}"#.to_string(),
            Some(&d.token),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("request body: name: invalid type"), "{e}");
    assert!(!e.contains("at line"), "one line needs no position: {e}");
    let (status, v) = d
        .api_bytes(
            "POST",
            "/sites",
            "{\n  \"name\": \"hq\",\n  \"label\": 5\n}\n".to_string(),
            Some(&d.token),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("at line 3 column"),
        "a longer body keeps the line: {e}"
    );
}
