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
    // Removing from the layer of a site that does not exist and holds nothing is refused as
    // setting is (it answered 200 as if it had removed something); a layer that holds
    // something stays clearable (the store's tests).
    let (status, v) = d
        .api(
            "PATCH",
            "/params/site:lab",
            Some(json!({"params": {"sip.domain": null}})),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("site lab not found"))
    );

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

/// A store from before names were checked may hold a device of site `a|b` and that site's
/// layer. The layer still gives the device its values, so it stays addressable through the
/// layer API (the `|` sent as `%7C`): readable, and clearable, though nothing new can be set in
/// it; once cleared the device no longer gets its values.
#[tokio::test]
async fn a_layer_named_with_a_separator_before_names_were_checked_can_be_read_and_cleared() {
    const MAC: &str = "001122aabbcc";
    let mut d = Daemon::start();
    d.add_device(json!({"mac": MAC, "model": "J179"})).await;
    d.stop();
    {
        // As the earlier edgeprov left it: the device in site "a|b", the site's layer set.
        use redb::ReadableTable;
        const DEVICES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("devices");
        const LAYERS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("layers");
        let db = redb::Database::open(d.data_dir().join("edgeprov.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut devices = tx.open_table(DEVICES).unwrap();
            let mut device: serde_json::Value =
                serde_json::from_slice(devices.get(MAC).unwrap().unwrap().value()).unwrap();
            device["site"] = json!("a|b");
            let bytes = serde_json::to_vec(&device).unwrap();
            devices.insert(MAC, bytes.as_slice()).unwrap();
            let layer = json!({"params": {"sip.domain": "legacy.example"}, "secrets": {}});
            let bytes = serde_json::to_vec(&layer).unwrap();
            tx.open_table(LAYERS)
                .unwrap()
                .insert("site:a|b", bytes.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let d = d.restart();
    let domain = |eff: &serde_json::Value| {
        eff["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "SIPDOMAIN")
            .map(|s| (s["value"].clone(), s["layer"].clone()))
    };
    let (s, eff) = d
        .api("GET", &format!("/devices/{MAC}/effective"), None)
        .await;
    assert_eq!(s, 200, "{eff}");
    assert_eq!(
        domain(&eff),
        Some((json!("legacy.example"), json!("site:a|b"))),
        "{eff}"
    );

    let (s, layer) = d.api("GET", "/params/site:a%7Cb", None).await;
    assert_eq!(s, 200, "{layer}");
    assert_eq!(layer["layer"], "site:a|b");
    assert_eq!(layer["params"], json!({"sip.domain": "legacy.example"}));

    let (s, v) = d
        .api(
            "PATCH",
            "/params/site:a%7Cb",
            Some(json!({"params": {"sip.domain": "new.example"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing can be set in it"),
        "{v}"
    );
    let (_, layer) = d.api("GET", "/params/site:a%7Cb", None).await;
    assert_eq!(layer["params"], json!({"sip.domain": "legacy.example"}));

    let (s, v) = d
        .api(
            "PATCH",
            "/params/site:a%7Cb",
            Some(json!({"params": {"sip.domain": null}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["params"], json!({}), "{v}");
    let (_, eff) = d
        .api("GET", &format!("/devices/{MAC}/effective"), None)
        .await;
    assert_eq!(domain(&eff), None, "{eff}");
}

/// An Avaya settings file copied from an old server that still sets `HTTPSRVR` or `TLSSRVR` to
/// it would move every phone that reads it away from this box at its next boot. The upload is
/// stored (a warning, not a refusal) and its answer, and `edgeprov file put`, name each such
/// line; the box's own names (`pki.server_names`, any case) are not warned about, nor are files
/// of other formats.
#[tokio::test]
async fn an_avaya_file_that_names_another_server_is_stored_with_a_warning() {
    let d = Daemon::start_with("[pki]\nserver_names = [\"prov.example.lan\", \"localhost\"]\n");
    let old = "## from the old server\nSET HTTPSRVR 10.9.9.9\nSET TLSSRVR \"PROV.example.lan\"\n\
               SET SIPDOMAIN example.com\nSET TLSSRVR old.example.com,prov.example.lan\n";
    let v = d.put_file("46xxspecials.txt", old).await;
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings: {v}"))
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("line 2: SET HTTPSRVR names 10.9.9.9, not this box"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("line 5: SET TLSSRVR names old.example.com, not this box"),
        "{warnings:?}"
    );
    let r = send_plain(d.http.unwrap(), get("/46xxspecials.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.text(), old, "stored as uploaded");

    let own = d
        .put_file("46xxsettings.txt", "SET HTTPSRVR prov.example.lan\n")
        .await;
    assert!(own.get("warnings").is_none(), "{own}");
    let yealink = d
        .put_file(
            "y000000000066.cfg",
            "#!version:1.0.0.1\nHTTPSRVR = 10.9.9.9\n",
        )
        .await;
    assert!(yealink.get("warnings").is_none(), "{yealink}");

    let f = d.dir.path().join("upload.txt");
    std::fs::write(&f, old).unwrap();
    let out = d.cli(&[
        "file",
        "put",
        "46xxspecials.txt",
        "--from",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: 46xxspecials.txt line 2: SET HTTPSRVR names 10.9.9.9"),
        "{stderr}"
    );
    assert!(stderr.contains("line 5: SET TLSSRVR"), "{stderr}");
}
