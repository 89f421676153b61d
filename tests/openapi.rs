//! The OpenAPI document matches the router both ways, and every route refuses a missing or
//! wrong token (audited) and works for the administrator.

mod common;

use std::collections::BTreeSet;

use common::*;

/// (method, path) of every `.route(...)` in the admin module's source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            // The whole call: up to the parenthesis that closes `.route(`.
            let (mut depth, mut end) = (1, 0);
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let call = &rest[..end];
            let path = call.split('"').nth(1).unwrap().to_string();
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = call.match_indices(&format!("{method}(")).any(|(k, _)| {
                    k == 0
                        || !call.as_bytes()[k - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[k - 1] != b'_'
                });
                if called {
                    out.insert((method.to_string(), path.clone()));
                }
            }
        }
    }
    out
}

fn sample(path: &str) -> String {
    path.replace("{mac}", "001122aabbcc")
        .replace("{name}", "46xxsettings.txt")
        .replace("{layer}", "global")
        .replace("{id}", "1")
        .replace("{file}", "x.bin")
        .replace("{scope}", "global")
        .replace("{fingerprint}", &"0".repeat(64))
}

#[tokio::test]
async fn document_matches_router_and_every_route_is_guarded() {
    let d = Daemon::start();
    let (status, doc) = d.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].is_object(), "{method} {path} has responses");
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routed = routes_in_source();
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not routed"
    );
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented"
    );

    d.add_device(serde_json::json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    for (method, path) in &documented {
        let url = sample(path);
        let m = method.to_uppercase();
        let (s, _) = d.api_with_token(&m, &url, None, None).await;
        assert_eq!(s, 401, "{m} {url} without a token");
        let (s, _) = d.api_with_token(&m, &url, None, Some("ep_wrong")).await;
        assert_eq!(s, 401, "{m} {url} with a wrong token");
        if m == "GET" {
            let (s, body) = d.api(&m, &url, None).await;
            assert!(s != 401 && s != 405, "{m} {url} as administrator: {s}");
            assert!(
                !(s == 404 && body["error"] == "no such route"),
                "{m} {url} is routed"
            );
        }
    }
    let (_, audit) = d
        .api("GET", "/audit?who=anonymous&limit=100000", None)
        .await;
    assert_eq!(
        audit.as_array().unwrap().len(),
        documented.len() * 2,
        "every refusal is audited"
    );
}
