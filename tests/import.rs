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

    // Importing again updates in place.
    let (ok, stdout, _) = run(
        &d,
        &["device", "import", dir.join("good.csv").to_str().unwrap()],
    );
    assert!(ok);
    assert!(
        stdout.contains(&format!("imported 0 new, {ROWS} updated")),
        "{stdout}"
    );

    // Export round-trips the inventory (without secret values).
    let (ok, csv, _) = run(&d, &["device", "export"]);
    assert!(ok);
    assert!(
        csv.starts_with("mac,model,serial,site,group,label,SIPDOMAIN\n"),
        "{}",
        &csv[..80]
    );
    assert_eq!(csv.lines().count(), ROWS + 1);
    assert!(!csv.contains("pw-"));
}
