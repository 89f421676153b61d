//! Inventory import at scale: a dry run reports exactly the bad rows, an import with bad rows
//! changes nothing, a clean one applies whole; export gives the inventory back.

mod common;

use common::*;
use serde_json::Value;

const ROWS: usize = 100_000;

fn inventory(bad: &[usize]) -> String {
    let mut csv = String::from("mac,model,site,group,label,SIPDOMAIN,secret:SIP_PASSWORD\n");
    for i in 0..ROWS {
        let line = i + 2;
        if bad.contains(&line) {
            match line % 3 {
                0 => csv.push_str("zz:zz,J179,hq,1,bad mac,example.com,pw\n"),
                1 => csv.push_str(&format!(
                    "02{:010x},J179,hq,1,quote,\"say \"\"hi\"\"\",pw\n",
                    i
                )),
                _ => csv.push_str("020000000000,J179,hq,1,duplicate of line 2,example.com,pw\n"),
            }
        } else {
            let site = if i % 2 == 0 { "hq" } else { "branch" };
            csv.push_str(&format!(
                "02{i:010x},J179,{site},{},desk {i},example.com,pw-{i}\n",
                i % 10
            ));
        }
    }
    csv
}

fn run(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = d.cli(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn import_is_all_or_nothing_and_reports_every_bad_row() {
    let d = Daemon::start();
    d.ensure_site("hq").await;
    d.ensure_site("branch").await;
    let dir = d.dir.path().to_path_buf();
    let bad_lines = [4usize, 5000, 77_777];
    std::fs::write(dir.join("bad.csv"), inventory(&bad_lines)).unwrap();
    let bad = dir.join("bad.csv");

    let (ok, stdout, _) = run(
        &d,
        &[
            "device",
            "import",
            bad.to_str().unwrap(),
            "--dry-run",
            "--json",
        ],
    );
    assert!(!ok);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, bad_lines.map(|l| l as u64), "{}", report["errors"]);
    assert_eq!(report["rows"], ROWS);
    assert_eq!(report["applied"], false);

    let (ok, _, stderr) = run(&d, &["device", "import", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{}:5000: ", bad.display())),
        "{stderr}"
    );
    let (_, count) = d.api("GET", "/health", None).await;
    assert_eq!(count["devices"], 0, "nothing applied");

    std::fs::write(dir.join("good.csv"), inventory(&[])).unwrap();
    let (ok, stdout, stderr) = run(
        &d,
        &["device", "import", dir.join("good.csv").to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("{ROWS} rows: imported {ROWS} new, 0 updated")),
        "{stdout}"
    );
    let (_, health) = d.api("GET", "/health", None).await;
    assert_eq!(health["devices"], ROWS);

    // Filters at that size.
    let (status, page) = d
        .api("GET", "/devices?site=hq&group=4&sort=label&limit=5", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page.as_array().unwrap().len(), 5);
    assert!(
        page.as_array()
            .unwrap()
            .iter()
            .all(|v| v["site"] == "hq" && v["group"] == "4")
    );
    let (_, found) = d.api("GET", "/devices?q=desk%2099999", None).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["secrets"], serde_json::json!(["SIP_PASSWORD"]));

    // Importing the same file again changes nothing, and says so.
    let (ok, stdout, _) = run(
        &d,
        &["device", "import", dir.join("good.csv").to_str().unwrap()],
    );
    assert!(ok);
    assert!(
        stdout.contains(&format!("imported 0 new, 0 updated, {ROWS} unchanged")),
        "{stdout}"
    );

    // Export round-trips the inventory (secrets by name, in empty columns, never values).
    let (ok, csv, _) = run(&d, &["device", "export"]);
    assert!(ok);
    assert!(
        csv.starts_with("mac,model,serial,site,group,label,state,SIPDOMAIN,secret:SIP_PASSWORD\n"),
        "{}",
        &csv[..80]
    );
    assert_eq!(csv.lines().count(), ROWS + 1);
    assert!(!csv.contains("pw-"));

    // One site's devices: every other row of the inventory is at "branch".
    let (ok, csv, stderr) = run(&d, &["device", "export", "--site", "branch"]);
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), ROWS / 2);
    assert!(rows.iter().all(|r| r.contains(",branch,")), "{}", rows[0]);
}

#[tokio::test]
async fn the_sample_inventory_imports_and_serves_each_vendor() {
    let d = Daemon::start();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/inventory-sample.csv");
    let (ok, stdout, stderr) = run(&d, &["device", "import", sample, "--create-sites"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("4 rows: imported 4 new"), "{stdout}");
    for (mac, file, want) in [
        (
            "c81fea83e85a",
            "c81fea83e85a.txt",
            "SET FORCE_SIP_PASSWORD s3cret-201",
        ),
        (
            "001565aaa937",
            "001565aaa937.cfg",
            "account.1.password = s3cret-203",
        ),
        (
            "0004f2123456",
            "0004f2123456-phone.cfg",
            "reg.1.auth.password=\"s3cret-301\"",
        ),
    ] {
        let id = d.identity(mac).await;
        let r = send(
            d.https,
            client_config(&d.ca_pem(), Some(&id)),
            get(&format!("/{file}"), "test"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{file}");
        assert!(r.text().contains(want), "{file}: {}", r.text());
    }
}

/// An export, edited and imported again, changes what was edited and keeps what an export
/// cannot carry: the phone still gets its secret, and a device taken out of service stays out.
#[tokio::test]
async fn an_edited_export_imported_again_keeps_secrets_and_state() {
    let d = Daemon::start();
    d.ensure_site("hq").await;
    let dir = d.dir.path().to_path_buf();
    let (a, b) = ("c81fea83e85a", "c81fea83e85b");
    std::fs::write(
        dir.join("first.csv"),
        format!(
            "mac,model,site,label,line.1.user,sip.server,secret:line.1.password\n\
             {a},J179,hq,Reception,201,pbx.example.com,s3cret-201\n\
             {b},J179,hq,Spare,202,pbx.example.com,s3cret-202\n"
        ),
    )
    .unwrap();
    let (ok, _, stderr) = run(
        &d,
        &["device", "import", dir.join("first.csv").to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    let (status, _) = d
        .api(
            "PATCH",
            &format!("/devices/{b}"),
            Some(serde_json::json!({"state": "inactive"})),
        )
        .await;
    assert_eq!(status, 200);

    let (ok, csv, _) = run(&d, &["device", "export"]);
    assert!(ok);
    assert!(!csv.contains("s3cret"), "{csv}");
    std::fs::write(dir.join("edited.csv"), csv.replace("Reception", "Lobby")).unwrap();
    let (ok, stdout, stderr) = run(
        &d,
        &["device", "import", dir.join("edited.csv").to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("imported 0 new, 1 updated, 1 unchanged"),
        "{stdout}"
    );

    let (_, device_a) = d.api("GET", &format!("/devices/{a}"), None).await;
    assert_eq!(device_a["label"], "Lobby");
    assert_eq!(device_a["secrets"], serde_json::json!(["line.1.password"]));
    let (_, device_b) = d.api("GET", &format!("/devices/{b}"), None).await;
    assert_eq!(device_b["state"], "inactive");

    let id = d.identity(a).await;
    let r = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{a}.txt"), "test"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("s3cret-201"), "{}", r.text());

    // A file of only some columns changes only those.
    std::fs::write(dir.join("labels.csv"), format!("mac,label\n{a},Hall\n")).unwrap();
    let (ok, _, stderr) = run(
        &d,
        &["device", "import", dir.join("labels.csv").to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    let (_, device_a) = d.api("GET", &format!("/devices/{a}"), None).await;
    assert_eq!(device_a["label"], "Hall");
    assert_eq!(device_a["model"], "J179");
    assert_eq!(device_a["site"], "hq");
    assert_eq!(device_a["params"]["line.1.user"], "201");

    // An operator of hq may relabel its device without naming the site, but neither move it
    // out nor make a device outside its sites.
    let (_, made) = d
        .api(
            "POST",
            "/tokens",
            Some(serde_json::json!({"user": "olivia", "role": "operator", "sites": ["hq"]})),
        )
        .await;
    let operator = made["token"].as_str().unwrap().to_string();
    let import = |rows: Value| {
        let (d, operator) = (&d, operator.clone());
        async move {
            d.api_with_token(
                "POST",
                "/devices/import?format=json",
                Some(rows),
                Some(&operator),
            )
            .await
        }
    };
    let (status, report) = import(serde_json::json!([{"mac": a, "label": "Desk 1"}])).await;
    assert_eq!(status, 200, "{report}");
    let (status, refusal) = import(serde_json::json!([{"mac": a, "site": "branch"}])).await;
    assert_eq!(status, 403, "{refusal}");
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("line 1: site \"branch\""),
        "{refusal}"
    );
    let (status, _) = import(serde_json::json!([{"mac": "c81fea83e85c", "label": "x"}])).await;
    assert_eq!(status, 403);
    let (_, device_a) = d.api("GET", &format!("/devices/{a}"), None).await;
    assert_eq!(
        (device_a["label"].as_str(), device_a["site"].as_str()),
        (Some("Desk 1"), Some("hq"))
    );
}

/// Posts a body as it is (CSV or JSON text) to the admin API.
async fn post(d: &Daemon, path: &str, body: Vec<u8>) -> (u16, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1{path}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", d.token))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let r = send(d.admin, client_config(&d.ca_pem(), None), req)
        .await
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// The daemon's peak resident memory so far, in KiB.
fn peak_kib(d: &Daemon) -> u64 {
    let pid = d.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Bodies made to be many times larger once read (4,000 long column names over rows of empty
/// cells; 16 MiB of bad elements) cost about what they weigh, and their reports are bounded.
#[tokio::test]
async fn hostile_bodies_cost_about_their_size() {
    let d = Daemon::start();
    let mut csv = String::from("mac");
    for i in 0..4000 {
        csv.push_str(&format!(",P{i:04}_{}", "X".repeat(115)));
    }
    csv.push('\n');
    let row = ",".repeat(4000) + "\n";
    while csv.len() < 8 << 20 {
        csv.push_str(&row);
    }
    let mut json = b"[0".to_vec();
    while json.len() < 16 << 20 {
        json.extend_from_slice(b",0");
    }
    json.push(b']');
    for (format, body) in [("csv", csv.into_bytes()), ("json", json)] {
        let before = peak_kib(&d);
        let (status, report) = post(
            &d,
            &format!("/devices/import?format={format}&dry_run=true"),
            body,
        )
        .await;
        assert_eq!(status, 400, "{format}");
        let errors = report["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1001, "{format}");
        assert!(
            errors[1000]["error"]
                .as_str()
                .unwrap()
                .contains("more bad rows"),
            "{format}: {}",
            errors[1000]
        );
        assert_eq!(report["bad_rows"], report["rows"], "{format}");
        let grown_mib = (peak_kib(&d) - before) / 1024;
        assert!(
            grown_mib < 200,
            "{format}: peak memory grew by {grown_mib} MiB"
        );
    }
}

/// What `GET /devices/export?format=json` gives, posted back, is taken and changes nothing.
#[tokio::test]
async fn a_json_export_imports_again_unchanged() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({
        "mac": "c81fea83e85a", "model": "J179", "site": "hq", "label": "Reception",
        "params": {"sip.server": "pbx.example.com", "SIPDOMAIN": ""},
        "secrets": {"line.1.password": "s3cret"},
        "allow_http_auth": true,
        "http_credential": {"username": "desk", "password": "pw"},
    }))
    .await;
    d.add_device(serde_json::json!({"mac": "c81fea83e85b", "state": "inactive"}))
        .await;
    let (_, before) = d.api("GET", "/devices", None).await;
    // A second later, so that a device written again would show it in its updated time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, export) = d.api("GET", "/devices/export?format=json", None).await;
    assert_eq!(status, 200);
    let (status, report) = d
        .api("POST", "/devices/import?format=json", Some(export))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["created"].as_u64(),
            report["updated"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2)),
        "{report}"
    );
    let (_, after) = d.api("GET", "/devices", None).await;
    assert_eq!(after, before, "not even a device's updated time");
}

/// A CSV export gives back what each device sets: a parameter set to "" (overriding the
/// global value) stays set, and no parameter turns into a secret on the way.
#[tokio::test]
async fn a_csv_export_imports_again_unchanged() {
    let d = Daemon::start();
    let (status, _) = d
        .api(
            "PATCH",
            "/params/global",
            Some(serde_json::json!({"params": {"SIPDOMAIN": "global.example"}})),
        )
        .await;
    assert_eq!(status, 200);
    d.add_device(serde_json::json!({
        "mac": "c81fea83e85a", "model": "J179", "params": {"SIPDOMAIN": ""}
    }))
    .await;
    d.add_device(serde_json::json!({
        "mac": "c81fea83e85b", "model": "J179", "params": {"VLAN": "20"}
    }))
    .await;
    // Secrets, and a parameter whose name makes it one: the export lists their names in
    // empty `secret:` columns, and the import keeps each device's values.
    d.add_device(serde_json::json!({
        "mac": "c81fea83e85c", "model": "J179",
        "params": {"admin.password": "27182"}, "secrets": {"SIP_PASSWORD": "pw-c"}
    }))
    .await;
    let (_, before) = d.api("GET", "/devices", None).await;
    let (ok, csv, stderr) = run(&d, &["device", "export"]);
    assert!(ok, "{stderr}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",secret:SIP_PASSWORD,secret:admin.password")
            && !csv.contains("pw-c")
            && !csv.contains("27182"),
        "{csv}"
    );
    let file = d.dir.path().join("export.csv");
    std::fs::write(&file, &csv).unwrap();
    let (ok, stdout, stderr) = run(&d, &["device", "import", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 new, 0 updated, 3 unchanged"), "{stdout}");
    // c has both, as a secret and as a parameter named as one: it is not said to lack them.
    assert!(!stderr.contains("c81fea83e85c"), "{stderr}");
    let (_, after) = d.api("GET", "/devices", None).await;
    for (b, a) in before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
    {
        assert_eq!(
            (&b["params"], &b["secrets"]),
            (&a["params"], &a["secrets"]),
            "{csv}"
        );
    }
    assert_eq!(after[0]["params"]["SIPDOMAIN"], "");
}

/// An inventory moved to a new box through CSV keeps each device's state: the export had no
/// state column, so a deactivated device came back active on the new box.
#[tokio::test]
async fn a_csv_export_moved_to_a_new_box_keeps_device_states() {
    let old = Daemon::start();
    let (gone, kept) = ("c81fea83e85a", "c81fea83e85b");
    // The admin API sets only the states managed here; the cloud's come with an inventory.
    let rows = serde_json::json!([{"mac": gone, "model": "J179", "state": "deactivated"}]);
    let (status, v) = old
        .api("POST", "/devices/import?format=json", Some(rows))
        .await;
    assert_eq!(status, 200, "{v}");
    old.add_device(serde_json::json!({"mac": kept, "model": "J179"}))
        .await;
    let (ok, csv, stderr) = run(&old, &["device", "export"]);
    assert!(ok, "{stderr}");

    let new = Daemon::start();
    let file = new.dir.path().join("moved.csv");
    std::fs::write(&file, &csv).unwrap();
    let (ok, stdout, stderr) = run(&new, &["device", "import", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported 2 new"), "{stdout}");
    let (_, device) = new.api("GET", &format!("/devices/{gone}"), None).await;
    assert_eq!(device["state"], "deactivated", "{csv}");
    let (_, device) = new.api("GET", &format!("/devices/{kept}"), None).await;
    assert_eq!(device["state"], "active", "{csv}");

    // A state no device can have refuses the whole file, naming its line and column.
    let bad = new.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!("mac,label,state\n{kept},Lobby,inactive\nc81fea83e85c,Hall,gone\n"),
    )
    .unwrap();
    let (ok, _, stderr) = run(&new, &["device", "import", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.csv:3: state (column 3): \"gone\" is not a device state"),
        "{stderr}"
    );
    let (_, device) = new.api("GET", &format!("/devices/{kept}"), None).await;
    assert_eq!(
        (&device["state"], &device["label"]),
        (&"active".into(), &"".into())
    );
    let (status, _) = new.api("GET", "/devices/c81fea83e85c", None).await;
    assert_eq!(status, 404);
}

/// An export moved to another box lists secret names without their values: the import says
/// how many were not set and which devices have none, instead of dropping them silently, and
/// a device that has the secret keeps it.
#[tokio::test]
async fn secrets_an_export_lists_without_values_are_reported_not_dropped() {
    let old = Daemon::start();
    let (a, b) = ("c81fea83e85a", "c81fea83e85b");
    old.add_device(serde_json::json!({"mac": a, "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-a", "ADMIN_PIN": "1234"}}))
        .await;
    old.add_device(serde_json::json!({"mac": b, "model": "J179"}))
        .await;
    let new = Daemon::start();
    new.add_device(serde_json::json!({"mac": b, "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-b"}}))
        .await;
    let (ok, exported, stderr) = run(&old, &["device", "export", "--format", "json"]);
    assert!(ok, "{stderr}");
    // The CSV export has a `secret:` column for each secret name a listed device has (it had
    // none, and its import on a new box said nothing), marked `(not exported)` for the devices
    // that have it: b's cells are empty (then every cell was, and b was reported as lacking
    // secrets it never had), so CSV names the same secrets JSON lists.
    let (ok, csv, stderr) = run(&old, &["device", "export"]);
    assert!(ok, "{stderr}");
    assert!(
        csv.starts_with(
            "mac,model,serial,site,group,label,state,secret:ADMIN_PIN,secret:SIP_PASSWORD\n"
        ) && !csv.contains("pw-a")
            && !csv.contains("1234"),
        "{csv}"
    );
    for (format, text, listed, lacking) in [("json", exported, 2, 1), ("csv", csv, 2, 1)] {
        let file = new.dir.path().join(format!("moved.{format}"));
        std::fs::write(&file, &text).unwrap();
        let (ok, stdout, stderr) = run(&new, &["device", "import", file.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains(&format!(
                "{listed} secret parameters listed without values (an export never carries \
                 them) were not set"
            )),
            "{format}: {stdout}"
        );
        let lack = format!("{lacking} devices have no value for some");
        assert!(stdout.contains(&lack), "{format}: {stdout}");
        assert!(
            stderr.contains(&format!(
                "device {a}: secrets listed without a value, not set, and the device has none: \
                 ADMIN_PIN, SIP_PASSWORD"
            )),
            "{format}: {stderr}"
        );
        let (ok, json, _) = run(
            &new,
            &[
                "--json",
                "device",
                "import",
                "--dry-run",
                file.to_str().unwrap(),
            ],
        );
        assert!(ok);
        let report: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            report["secrets_without_values"], listed,
            "{format}: {report}"
        );
        assert_eq!(
            report["devices_missing_secrets"], lacking,
            "{format}: {report}"
        );
        assert_eq!(report["secrets_missing"][0]["mac"], a, "{format}: {report}");
    }
    let (_, device) = new.api("GET", &format!("/devices/{b}"), None).await;
    assert_eq!(
        device["secrets"],
        serde_json::json!(["SIP_PASSWORD"]),
        "b keeps its own"
    );
}

/// A parameter may not be named `secret:…` (a CSV import reads such a column as a secret), on
/// any path that writes parameters; the refusal names the parameter.
#[tokio::test]
async fn a_parameter_named_secret_is_refused_everywhere() {
    let d = Daemon::start();
    let params = serde_json::json!({"secret:ADMIN_PIN": "1234"});
    let device = serde_json::json!({"mac": "c81fea83e85a", "params": params});
    let csv = b"mac,secret:secret:ADMIN_PIN\nc81fea83e85a,1234\n".to_vec();
    for (method, path, body) in [
        ("POST", "/devices", device.clone()),
        (
            "POST",
            "/devices/import?format=json",
            serde_json::json!([device]),
        ),
        (
            "PATCH",
            "/params/global",
            serde_json::json!({"params": params}),
        ),
        (
            "PATCH",
            "/params/site:hq",
            serde_json::json!({"secrets": params}),
        ),
    ] {
        let (status, v) = d.api(method, path, Some(body)).await;
        assert_eq!(status, 400, "{method} {path}: {v}");
        assert!(
            v.to_string().contains("secret:ADMIN_PIN"),
            "{method} {path}: {v}"
        );
    }
    let (status, v) = post(&d, "/devices/import", csv).await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("secret:ADMIN_PIN"), "{v}");
    d.add_device(serde_json::json!({"mac": "c81fea83e85a"}))
        .await;
    let (status, v) = d
        .api(
            "PATCH",
            "/devices/c81fea83e85a",
            Some(serde_json::json!({"params": params})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (_, health) = d.api("GET", "/health", None).await;
    assert_eq!(health["devices"], 1);
}

/// Outer spaces are refused wherever a device's fields are written (not trimmed by the CSV
/// import only, which changed a model, and so its layer, on the way).
#[tokio::test]
async fn outer_spaces_are_refused_wherever_a_device_is_written() {
    let d = Daemon::start();
    let (status, v) = d
        .api(
            "POST",
            "/devices",
            Some(serde_json::json!({"mac": "c81fea83e85a", "model": "J179 "})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("model: "), "{v}");
    let csv = b"mac,model,label\nc81fea83e85a,J179,\" Desk 1 \"\n".to_vec();
    let (status, v) = post(&d, "/devices/import", csv).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    d.add_device(serde_json::json!({"mac": "c81fea83e85a"}))
        .await;
    let (status, v) = d
        .api(
            "PATCH",
            "/devices/c81fea83e85a",
            Some(serde_json::json!({"site": " hq"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

/// A `|` in a site, group or model name is refused wherever a name enters (the API, the CSV
/// import, a bulk move, a layer, the CLI), as the cloud's pull refuses it: the store joins names
/// with it in keys. A serial is free text and may hold one.
#[tokio::test]
async fn a_separator_in_a_name_is_refused_wherever_a_name_enters() {
    let d = Daemon::start();
    let no_pipe = |v: &Value, field: &str| {
        let e = v["error"].as_str().unwrap_or_default();
        e.starts_with(&format!("{field}: ")) && e.contains("no '|'")
    };
    for field in ["site", "group", "model"] {
        let (status, v) = d
            .api(
                "POST",
                "/devices",
                Some(serde_json::json!({"mac": "c81fea83e85a", field: "a|b"})),
            )
            .await;
        assert_eq!(status, 400, "{field}: {v}");
        assert!(no_pipe(&v, field), "{field}: {v}");
    }
    let csv = b"mac,site\nc81fea83e85a,a|b\n".to_vec();
    let (status, v) = post(&d, "/devices/import", csv).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert!(v.to_string().contains("no '|'"), "{v}");

    d.add_device(serde_json::json!({"mac": "c81fea83e85a", "serial": "SN|1"}))
        .await;
    let (status, v) = d
        .api(
            "PATCH",
            "/devices/c81fea83e85a",
            Some(serde_json::json!({"group": "1|2"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(no_pipe(&v, "group"), "{v}");
    let (status, v) = d
        .api(
            "POST",
            "/jobs",
            Some(serde_json::json!({"kind": "move", "site": "a|b", "selection": {"all": true}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(no_pipe(&v, "site"), "{v}");
    let (status, v) = d
        .api(
            "PATCH",
            "/params/site:a%7Cb",
            Some(serde_json::json!({"params": {"sip.domain": "x.example"}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let out = d.cli(&["device", "add", "--mac", "c81fea83e85b", "--site", "a|b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("site: no '|'"), "{err}");

    let (_, devices) = d.api("GET", "/devices", None).await;
    let devices = devices.to_string();
    assert!(
        !devices.contains("a|b") && !devices.contains("1|2"),
        "{devices}"
    );
    assert!(devices.contains("SN|1"), "{devices}");
}

/// A site name a device may carry can always be given a site layer, and a longer one is refused
/// wherever it could be written.
#[tokio::test]
async fn every_site_a_device_can_name_can_have_a_layer() {
    let d = Daemon::start();
    let longest = "s".repeat(128);
    d.add_device(serde_json::json!({"mac": "c81fea83e85a", "site": longest}))
        .await;
    let (status, v) = d
        .api(
            "PATCH",
            &format!("/params/site:{longest}"),
            Some(serde_json::json!({"params": {"VLAN": "20"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = d.api("GET", &format!("/sites/{longest}"), None).await;
    assert_eq!(status, 200, "{v}");
    let longer = "s".repeat(200);
    let (status, v) = d
        .api(
            "POST",
            "/devices",
            Some(serde_json::json!({"mac": "c81fea83e85b", "site": longer})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = d
        .api(
            "POST",
            "/devices/import?format=json",
            Some(serde_json::json!([{"mac": "c81fea83e85b", "site": longer}])),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

/// The CLI names the line of a pretty-printed JSON file where the bad value is.
#[tokio::test]
async fn the_cli_names_the_line_of_a_bad_json_element() {
    let d = Daemon::start();
    let file = d.dir.path().join("devices.json");
    std::fs::write(
        &file,
        "[\n  {\n    \"mac\": \"c81fea83e85a\",\n    \"label\": \"Desk 1\"\n  },\n  {\n    \"mac\": \"not-a-mac\"\n  }\n]\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&d, &["device", "import", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{}:7: element 2: mac: ", file.display())),
        "{stderr}"
    );
}

/// An applied import says in the audit log which devices it created, updated and left as they
/// were, and how.
#[tokio::test]
async fn an_import_leaves_its_changes_in_the_audit_log() {
    let d = Daemon::start();
    d.add_device(serde_json::json!({"mac": "c81fea83e85a", "label": "Reception"}))
        .await;
    d.add_device(serde_json::json!({"mac": "c81fea83e85b", "label": "Spare"}))
        .await;
    let csv = b"mac,label\nc81fea83e85a,Lobby\nc81fea83e85b,Spare\nc81fea83e85c,New\n".to_vec();
    let (status, v) = post(&d, "/devices/import", csv).await;
    assert_eq!(status, 200, "{v}");
    let (_, entries) = d
        .api("GET", "/audit?resource=/api/v1/devices/import", None)
        .await;
    let changes = &entries[0]["changes"];
    assert_eq!(
        changes["updated"]["c81fea83e85a"],
        serde_json::json!({"label": {"before": "Reception", "after": "Lobby"}}),
        "{changes}"
    );
    assert_eq!(changes["unchanged"], serde_json::json!(["c81fea83e85b"]));
    assert_eq!(changes["created"]["c81fea83e85c"]["label"]["after"], "New");
    assert!(
        entries[0]["summary"]
            .as_str()
            .unwrap()
            .contains("1 created, 1 updated, 1 unchanged"),
        "{}",
        entries[0]
    );
}
