//! The OpenAPI document matches the router both ways, and one table-driven test walks every
//! documented operation: no token or a wrong one → 401; an operator outside its sites → 403
//! (or, for a listing, nothing of the other site) with an audit entry; the administrator →
//! works. A route the table has no case for fails the test, so a new route cannot be
//! forgotten.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

/// The source files under `dir`, in its subdirectories too (a module of several files).
fn sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// (method, path) of every `.route(...)` in the admin module's source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin");
    let mut out = BTreeSet::new();
    for file in sources(std::path::Path::new(dir)) {
        let src = std::fs::read_to_string(file).unwrap();
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

/// An operator's view of a route it is not meant to reach.
enum Outside {
    /// 403 for this request.
    Refused(String, Option<Value>),
    /// Answered, but nothing in the answer names the other site.
    Filtered(String),
    /// Open to every valid token.
    Open,
}

struct Case {
    /// The administrator's request and whether its status means it worked.
    admin: (String, Option<Value>),
    admin_ok: fn(u16) -> bool,
    outside: Outside,
}

const MINE: &str = "0011220000a1";
const THEIRS: &str = "0011220000b1";
/// Removed by the administrator's DELETE.
const SPARE: &str = "0011220000c1";
/// A time jobs are scheduled for, so that they wait for the test's actions.
const FAR: i64 = 4_000_000_000;

fn success(s: u16) -> bool {
    (200..300).contains(&s)
}

/// Past the guard: whatever the handler decided, it was not an authorisation refusal.
fn past_the_guard(s: u16) -> bool {
    !matches!(s, 401 | 403 | 405 | 429)
}

fn fill(path: &str, mac: &str, site: &str) -> String {
    path.replace("{mac}", mac)
        .replace("{name}", "46xxsettings.txt")
        .replace("{layer}", &format!("site:{site}"))
        .replace("{site}", site)
        .replace("{id}", "1")
        .replace("{file}", "x.bin")
        .replace("{scope}", "global")
        .replace("{fingerprint}", &"0".repeat(64))
}

/// The case for one documented operation; `None` when the table lacks it.
fn case(method: &str, path: &str, access: &str) -> Option<Case> {
    let ok = |url: String, body: Option<Value>| Case {
        admin: (url, body),
        admin_ok: success,
        outside: Outside::Open,
    };
    let sites = |admin: String, body: Option<Value>, outside: Outside| Case {
        admin: (admin, body),
        admin_ok: success,
        outside,
    };
    let refused = |url: String, body: Option<Value>| Outside::Refused(url, body);
    let on = |mac: &str, site: &str| fill(path, mac, site);
    let c = match (access, method, path) {
        ("any", _, _) => ok(path.to_string(), None),
        ("sites", "get", "/devices") => sites(
            "/devices".into(),
            None,
            refused("/devices?site=theirs".into(), None),
        ),
        ("sites", "post", "/devices") => sites(
            "/devices".into(),
            Some(json!({"mac": "0011220000d1", "model": "J179", "site": "mine"})),
            refused(
                "/devices".into(),
                Some(json!({"mac": "0011220000d2", "model": "J179", "site": "theirs"})),
            ),
        ),
        ("sites", "post", "/devices/import") => sites(
            "/devices/import?format=json".into(),
            Some(json!([{"mac": "0011220000d3", "model": "J179", "site": "mine"}])),
            refused(
                "/devices/import?format=json".into(),
                Some(json!([{"mac": "0011220000d4", "model": "J179", "site": "theirs"}])),
            ),
        ),
        ("sites", "get", "/devices/export") => sites(
            "/devices/export?format=json".into(),
            None,
            refused("/devices/export?format=json&site=theirs".into(), None),
        ),
        ("sites", "patch", "/devices/{mac}") => sites(
            on(MINE, "mine"),
            Some(json!({"label": "front desk"})),
            refused(on(THEIRS, "theirs"), Some(json!({"label": "taken"}))),
        ),
        ("sites", "delete", "/devices/{mac}") => {
            sites(on(SPARE, "mine"), None, refused(on(THEIRS, "theirs"), None))
        }
        ("sites", "patch", "/params/{layer}") => sites(
            on(MINE, "mine"),
            Some(json!({"params": {"sip.server": "pbx.mine.example"}})),
            refused(
                on(THEIRS, "theirs"),
                Some(json!({"params": {"sip.server": "pbx.evil.example"}})),
            ),
        ),
        ("sites", "get" | "put" | "delete", "/files/{name}") => sites(
            format!("{}?site=mine", on(MINE, "mine")),
            (method == "put").then(|| json!("SET X 1")),
            refused(
                format!("{}?site=theirs", on(THEIRS, "theirs")),
                (method == "put").then(|| json!("SET X 2")),
            ),
        ),
        ("sites", "get", "/files" | "/groups") => sites(
            path.into(),
            None,
            refused(format!("{path}?site=theirs"), None),
        ),
        ("sites", "get", "/jobs") => sites("/jobs".into(), None, Outside::Filtered("/jobs".into())),
        ("sites", "post", "/jobs") => sites(
            "/jobs".into(),
            Some(json!({"kind": "activate", "selection": {"site": "mine"}, "at": FAR})),
            refused(
                "/jobs".into(),
                Some(json!({"kind": "activate", "selection": {"site": "theirs"}, "at": FAR})),
            ),
        ),
        // Job 1 is the other site's, job 2 the operator's (made in the set-up).
        ("sites", _, _) if path.starts_with("/jobs/{id}") => sites(
            path.replace("{id}", "2"),
            None,
            refused(path.replace("{id}", "1"), None),
        ),
        ("sites", "get", "/sites") => {
            sites("/sites".into(), None, Outside::Filtered("/sites".into()))
        }
        // Whether MINE has a certificate to revoke depends on the order the cases run in; the
        // revocation itself is tested in tests/certificate_revocation.rs.
        ("sites", "post", "/devices/{mac}/certificates/revoke") => Case {
            admin: (on(MINE, "mine"), Some(json!({"all": true}))),
            admin_ok: past_the_guard,
            outside: refused(on(THEIRS, "theirs"), Some(json!({"all": true}))),
        },
        ("sites", "get", "/scep/pending") => sites(
            "/scep/pending?site=mine".into(),
            None,
            refused("/scep/pending?site=theirs".into(), None),
        ),
        // Nothing is held for MINE (404); the rejection itself is tested in tests/scep.rs.
        ("sites", "post", "/scep/pending/{mac}/reject") => Case {
            admin: (on(MINE, "mine"), None),
            admin_ok: past_the_guard,
            outside: refused(on(THEIRS, "theirs"), None),
        },
        // No phone has uploaded anything: the administrator's 404 is past the guard.
        ("sites", "get" | "delete", "/devices/{mac}/uploads/{name}") => {
            let of = |mac: &str| {
                path.replace("{mac}", mac)
                    .replace("{name}", &format!("{mac}-app.log"))
            };
            Case {
                admin: (of(MINE), None),
                admin_ok: past_the_guard,
                outside: refused(of(THEIRS), None),
            }
        }
        ("sites", "get" | "patch", _)
            if path.contains("{mac}") || path.contains("{site}") || path.contains("{layer}") =>
        {
            let body = (method == "patch").then(|| json!({"label": "renamed"}));
            sites(
                on(MINE, "mine"),
                body.clone(),
                refused(on(THEIRS, "theirs"), body),
            )
        }
        ("sites", _, _) => return None,
        // Administrator-only routes: the operator is refused whatever it asks.
        ("administrator", _, _) => {
            let (url, body, admin_ok): (String, Option<Value>, fn(u16) -> bool) = match (
                method, path,
            ) {
                ("post", "/sites") => (
                    "/sites".into(),
                    Some(json!({"name": "spare-site"})),
                    success,
                ),
                ("delete", "/sites/{site}") => ("/sites/spare-site".into(), None, success),
                // A device of the operator's own site: still refused (it would prove the device).
                ("post", "/devices/{mac}/certificate") => (on(MINE, "mine"), None, success),
                ("post", "/scep/pending/approve") => (
                    "/scep/pending/approve".into(),
                    Some(json!({"site": "mine"})),
                    success,
                ),
                ("post", "/tokens") => (
                    "/tokens".into(),
                    Some(json!({"user": "bob", "role": "operator", "sites": ["mine"]})),
                    success,
                ),
                ("patch", "/preferences") => (
                    "/preferences".into(),
                    Some(json!({"audit_retention_days": 400})),
                    success,
                ),
                ("post", "/dns/records") => (
                    "/dns/records".into(),
                    Some(
                        json!({"name": "prov.example.lan", "type": "A", "value": "10.0.0.9", "ttl": 60}),
                    ),
                    success,
                ),
                ("get", _) if !path.contains('{') => (path.into(), None, success),
                _ => (fill(path, MINE, "mine"), None, past_the_guard),
            };
            Case {
                admin: (url.clone(), body.clone()),
                admin_ok,
                outside: Outside::Refused(url, body),
            }
        }
        _ => return None,
    };
    Some(c)
}

#[tokio::test]
async fn document_matches_router_and_every_route_is_guarded() {
    let d = Daemon::start_with("auth_failures_per_minute = 100000");
    let (status, doc) = d.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let mut documented = BTreeSet::new();
    let mut operations = Vec::new();
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
            let access = op["x-access"].as_str().unwrap_or_default().to_string();
            operations.push((method.clone(), path.clone(), access));
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

    // Two sites with a device each, a file each, and an operator of one of them.
    for (mac, site) in [(MINE, "mine"), (THEIRS, "theirs"), (SPARE, "mine")] {
        d.add_device(json!({"mac": mac, "model": "J179", "site": site, "group": site}))
            .await;
    }
    for site in ["mine", "theirs"] {
        let (s, v) = d
            .api(
                "PUT",
                &format!("/files/46xxsettings.txt?site={site}"),
                Some(json!("SET A 1")),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    for (id, site) in [(1, "theirs"), (2, "mine")] {
        let (s, job) = d
            .api(
                "POST",
                "/jobs",
                Some(json!({"kind": "deactivate", "selection": {"site": site}, "at": FAR})),
            )
            .await;
        assert_eq!((s, job["id"].as_u64()), (201, Some(id)), "{job}");
    }
    let (s, made) = d
        .api(
            "POST",
            "/tokens",
            Some(json!({"user": "olivia", "role": "operator", "sites": ["mine"]})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let operator = made["token"].as_str().unwrap().to_string();

    let mut cases = Vec::new();
    for (method, path, access) in &operations {
        let c = case(method, path, access).unwrap_or_else(|| {
            panic!("{method} {path} (access {access:?}) has no case in this test: add one")
        });
        cases.push((method.to_uppercase(), path.clone(), c));
    }
    // Deletions last, so what they remove has served the other requests first.
    cases.sort_by_key(|(m, _, _)| m == "DELETE");

    let mut operator_refusals = 0;
    for (m, path, c) in &cases {
        let (url, body) = &c.admin;
        let (s, _) = d.api_with_token(m, url, body.clone(), None).await;
        assert_eq!(s, 401, "{m} {url} without a token");
        let (s, _) = d
            .api_with_token(m, url, body.clone(), Some("ep_wrong"))
            .await;
        assert_eq!(s, 401, "{m} {url} with a wrong token");
        match &c.outside {
            Outside::Refused(url, body) => {
                let (s, v) = d
                    .api_with_token(m, url, body.clone(), Some(&operator))
                    .await;
                assert_eq!(s, 403, "{m} {url} as an operator outside its sites: {v}");
                operator_refusals += 1;
            }
            Outside::Filtered(url) => {
                let (s, v) = d.api_with_token(m, url, None, Some(&operator)).await;
                assert_eq!(s, 200, "{m} {url} as an operator: {v}");
                assert!(
                    !v.to_string().contains("theirs"),
                    "{m} {url} shows the other site: {v}"
                );
            }
            Outside::Open => {
                let (s, _) = d.api_with_token(m, url, None, Some(&operator)).await;
                assert_eq!(s, 200, "{m} {url} is open to every token");
            }
        }
        let (s, v) = d.api(m, url, body.clone()).await;
        assert!(
            (c.admin_ok)(s) && !(s == 404 && v["error"] == "no such route"),
            "{m} {url} ({path}) as administrator: {s} {v}"
        );
        let responses = &doc["paths"][path][m.to_lowercase()]["responses"];
        assert!(
            responses.get(s.to_string()).is_some(),
            "{m} {path} answered {s}, which its responses do not list: {responses}"
        );
    }

    let (_, audit) = d
        .api("GET", "/audit?who=anonymous&limit=100000", None)
        .await;
    assert_eq!(
        audit.as_array().unwrap().len(),
        cases.len() * 2,
        "every refused token is audited"
    );
    let (_, audit) = d
        .api("GET", "/audit?who=olivia&status=403&limit=100000", None)
        .await;
    assert_eq!(
        audit.as_array().unwrap().len(),
        operator_refusals,
        "every refusal of the operator is audited under its name"
    );

    // Query parameters: an unknown one is refused naming those the route reads, which must be
    // the ones documented. A route that reads none takes any; only a GET is asked so (a
    // request that changes something would run), and a route documenting some must refuse it.
    for (method, path, _) in &operations {
        let documented: BTreeSet<String> = doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if method != "get" && documented.is_empty() {
            continue;
        }
        let url = format!("{}?bogus=1", fill(path, MINE, "mine"));
        let (s, v) = d.api(&method.to_uppercase(), &url, None).await;
        // Refused as every other bad request is: JSON naming the parameter.
        let text = v["error"].as_str().unwrap_or_default();
        let read: BTreeSet<String> = match text.split_once("unknown field `bogus`, expected ") {
            Some((_, names)) => names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect(),
            None => {
                assert_ne!(s, 400, "{method} {url}: {v}");
                BTreeSet::new()
            }
        };
        assert_eq!(
            read, documented,
            "{method} {path}: query parameters read / documented"
        );
    }
}

/// The document passes an independent OpenAPI 3 validator (Python's `openapi-spec-validator`,
/// installed by `.ci/run`; skipped with a note where it is missing).
#[tokio::test]
async fn document_is_valid_openapi() {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "openapi-spec-validator not installed (pip install openapi-spec-validator): skipped"
        );
        return;
    }
    let d = Daemon::start();
    let (status, doc) = d.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    let file = d.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docs/sync-openapi.json, the cloud side's description, passes the same validator (as the
/// OpenAPI version it declares: 3.1, whose `mutualTLS` security scheme it uses).
#[test]
fn sync_document_is_valid_openapi() {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "openapi-spec-validator not installed (pip install openapi-spec-validator): skipped"
        );
        return;
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sync-openapi.json");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", file])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every error is the API's JSON error, those axum answers before a handler runs too: a
/// method the route does not take, a body over the limit, an unknown query parameter.
#[tokio::test]
async fn errors_are_json_naming_the_cause() {
    let d = Daemon::start();
    let (s, v) = d.api("PUT", "/health", None).await;
    assert_eq!((s, v["error"].as_str()), (405, Some("method not allowed")));
    let big = vec![b' '; 5 * 1024 * 1024];
    let (s, v) = d.api_bytes("POST", "/devices", big, Some(&d.token)).await;
    assert_eq!(s, 413);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("over the 4194304 bytes"),
        "{v}"
    );
    let (s, v) = d.api("GET", "/alarms?colour=red", None).await;
    assert_eq!(s, 400);
    let message = v["error"].as_str().unwrap_or_default();
    assert!(message.contains("unknown field `colour`"), "{v}");
}
