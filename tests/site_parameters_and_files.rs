//! A site's parameters and static files, like its firmware policies, need the site to exist
//! (through the API and the CLI), and go when the site is deleted.

mod common;

use common::*;
use serde_json::json;

/// Answers the status and error message of a static file upload through the API.
async fn put(d: &Daemon, name_and_query: &str, body: &str) -> (u16, String) {
    let (status, v) = d
        .api_bytes(
            "PUT",
            &format!("/files/{name_and_query}"),
            body.to_string(),
            Some(&d.token),
        )
        .await;
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_sites_parameters_and_files_need_the_site_and_go_with_it() {
    let d = Daemon::start();
    let domain = json!({"params": {"sip.domain": "lab.example"}});

    // Through the API: 404 naming the site, and nothing stored.
    let (status, v) = d
        .api("PATCH", "/params/site:lab", Some(domain.clone()))
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("site lab not found"))
    );
    assert_eq!(
        put(&d, "46xxsettings.txt?site=lab", "SET X 1\n").await,
        (404, "site lab not found".to_string())
    );
    let (_, layer) = d.api("GET", "/params/site:lab", None).await;
    assert_eq!(layer["params"], json!({}), "{layer}");
    let (_, files) = d.api("GET", "/files", None).await;
    assert_eq!(files, json!([]));

    // Through the CLI: it fails, and says which site.
    let upload = d.dir.path().join("46xxsettings.txt");
    std::fs::write(&upload, "SET X 1\n").unwrap();
    let from = upload.to_str().unwrap();
    for args in [
        vec![
            "param",
            "set",
            "--layer",
            "site:lab",
            "sip.domain=lab.example",
        ],
        vec![
            "file",
            "put",
            "46xxsettings.txt",
            "--from",
            from,
            "--site",
            "lab",
        ],
    ] {
        let out = d.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("site lab not found"), "{args:?}: {err}");
    }
    // Removing needs no site: what an earlier version left can be cleared.
    let (status, v) = d
        .api(
            "PATCH",
            "/params/site:lab",
            Some(json!({"params": {"sip.domain": null}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // A site of that name exists: both are stored; the box-wide file is no site's.
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "lab"}))).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = d
        .api("PATCH", "/params/site:lab", Some(domain.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    let out = d.cli(&[
        "file",
        "put",
        "46xxsettings.txt",
        "--from",
        from,
        "--site",
        "lab",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.put_file("46xxsettings.txt", "SET BOX 1\n").await;

    // Deleting the site deletes its parameters and its file, audited, and nothing else.
    let (status, v) = d.api("DELETE", "/sites/lab", None).await;
    assert_eq!(status, 204, "{v}");
    let (_, layer) = d.api("GET", "/params/site:lab", None).await;
    assert_eq!(layer["params"], json!({}), "{layer}");
    let (_, files) = d.api("GET", "/files", None).await;
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["site"], "", "{files:?}");
    let (_, audit) = d.api("GET", "/audit", None).await;
    assert!(
        audit
            .to_string()
            .contains("site lab deleted with its static files"),
        "{audit}"
    );

    // A later site of the name starts without them.
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "lab"}))).await;
    assert_eq!(status, 201, "{v}");
    let (_, layer) = d.api("GET", "/params/site:lab", None).await;
    assert_eq!(layer["params"], json!({}), "{layer}");
    let out = d.cli(&["file", "get", "46xxsettings.txt", "--site", "lab"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "SET BOX 1\n",
        "the site's phones get the box-wide file, not the deleted site's"
    );
}
