//! `param unset` of a name a layer does not hold (`sip.sever` for `sip.server`, `site:HQ` for
//! the site `hq`) reported success and was audited as a change. The API now lists such names
//! (`not_set`) and audits no change when nothing changed; the CLI warns naming them and fails
//! when none of its names was set; a site that does not exist is refused as `param set`
//! refuses it.

mod common;

use std::process::Output;

use common::*;
use serde_json::{Value, json};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest audit entry of a `PATCH` of `path`.
async fn last_patch(d: &Daemon, path: &str) -> Value {
    let (status, log) = d.api("GET", "/audit?method=PATCH", None).await;
    assert_eq!(status, 200, "{log}");
    log.as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"].as_str().is_some_and(|r| r.ends_with(path)))
        .cloned()
        .unwrap_or_else(|| panic!("no PATCH of {path} in {log}"))
}

#[tokio::test]
async fn unsetting_a_name_that_is_not_set_says_so_and_changes_nothing() {
    let d = Daemon::start();
    ok(&d.cli(&[
        "param",
        "set",
        "--layer",
        "global",
        "sip.server=pbx.example.com",
        "sip.transport=tls",
    ]));

    // A typo alone: refused (exit 1) naming it, the layer as it was, no change audited.
    let typo = d.cli(&["param", "unset", "--layer", "global", "sip.sever"]);
    assert_eq!(typo.status.code(), Some(1), "{}", stderr(&typo));
    let err = stderr(&typo);
    assert!(
        err.contains("nothing removed") && err.contains("global") && err.contains("sip.sever"),
        "{err}"
    );
    let (_, layer) = d.api("GET", "/params/global", None).await;
    assert_eq!(
        layer["params"],
        json!({"sip.server": "pbx.example.com", "sip.transport": "tls"})
    );
    let entry = last_patch(&d, "/params/global").await;
    assert_eq!(
        entry["summary"], "parameters of global unchanged: not set there: sip.sever",
        "{entry}"
    );
    assert_eq!(entry["changes"], json!({}), "{entry}");

    // One set, one not: the set one is removed, the other named in a warning; exit 0.
    let some = d.cli(&[
        "param",
        "unset",
        "--layer",
        "global",
        "sip.transport",
        "sip.sever",
    ]);
    ok(&some);
    let warning = stderr(&some);
    assert!(
        warning.contains("warning")
            && warning.contains("sip.sever")
            && !warning.contains("sip.transport"),
        "{warning}"
    );
    let (_, layer) = d.api("GET", "/params/global", None).await;
    assert_eq!(layer["params"], json!({"sip.server": "pbx.example.com"}));
    let entry = last_patch(&d, "/params/global").await;
    assert_eq!(entry["summary"], "parameters of global changed", "{entry}");

    // The API's answer names them; a removal that removes something lists none.
    let (status, answer) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"sip.server": null, "ADMIN_PIN": null}, "secrets": {"ADMIN_PIN": null}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["not_set"], json!(["ADMIN_PIN"]), "{answer}");
    let (_, answer) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"VLANTEST": "5"}})),
        )
        .await;
    assert!(answer.get("not_set").is_none(), "{answer}");
}

#[tokio::test]
async fn a_site_layer_of_a_site_that_does_not_exist_is_refused_naming_it() {
    let d = Daemon::start();
    ok(&d.cli(&["site", "create", "hq"]));
    ok(&d.cli(&["param", "set", "--layer", "site:hq", "sip.server=pbx.hq"]));

    let set = d.cli(&["param", "set", "--layer", "site:HQ", "sip.server=x"]);
    let unset = d.cli(&["param", "unset", "--layer", "site:HQ", "sip.server"]);
    for out in [&set, &unset] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
        assert!(stderr(out).contains("site HQ not found"), "{}", stderr(out));
    }
    let (_, layer) = d.api("GET", "/params/site:hq", None).await;
    assert_eq!(layer["params"], json!({"sip.server": "pbx.hq"}));

    // The site's own layer is cleared as before.
    ok(&d.cli(&["param", "unset", "--layer", "site:hq", "sip.server"]));
    let (_, layer) = d.api("GET", "/params/site:hq", None).await;
    assert_eq!(layer["params"], json!({}));
}
