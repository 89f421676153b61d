//! The effective view of a Yealink or Poly device reads the files the phone would be served,
//! as the phone reads them: an operator's static common file replaces the generated one there
//! too, and the view names the file each value came from.

mod common;

use common::*;
use serde_json::{Value, json};

const YEALINK: &str = "001565aabb02";
const POLY: &str = "0004f2aabb03";

/// The value of `name` in an effective view, with the file that gave it.
fn setting<'v>(eff: &'v Value, name: &str) -> Option<(&'v str, &'v str)> {
    eff["settings"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| {
            (
                s["value"].as_str().unwrap_or_default(),
                s["file"].as_str().unwrap_or_default(),
            )
        })
}

#[tokio::test]
async fn the_effective_view_shows_an_operators_static_common_files() {
    let d = Daemon::start();
    let (s, v) = d
        .api(
            "PATCH",
            "/params/global",
            Some(json!({"params": {"ntp.server": "generated.example", "language": "de_DE"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    d.add_device(json!({"mac": YEALINK, "model": "T46S"})).await;
    d.add_device(json!({"mac": POLY, "model": "VVX_400"})).await;

    // Yealink: the family file of a T46S, replaced by the operator's.
    d.put_file(
        "y000000000066.cfg",
        "#!version:1.0.0.1\nlocal_time.ntp_server1 = static.example\nfeatures.dnd.enable = 1\n",
    )
    .await;
    let (status, eff) = d
        .api("GET", &format!("/devices/{YEALINK}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    assert_eq!(
        eff["chain"],
        json!([
            format!("{YEALINK}.boot"),
            "y000000000066.cfg",
            format!("{YEALINK}.cfg")
        ]),
        "{eff}"
    );
    assert_eq!(
        setting(&eff, "features.dnd.enable"),
        Some(("1", "y000000000066.cfg")),
        "{eff}"
    );
    // The device's own file, read after the family file, sets the NTP server again.
    assert_eq!(
        setting(&eff, "local_time.ntp_server1"),
        Some(("generated.example", format!("{YEALINK}.cfg").as_str())),
        "{eff}"
    );
    assert_eq!(eff["outcome"], "completed", "{eff}");
    // So does the CLI's view of the device, and its preview of that file.
    let out = d.cli(&["device", "effective", YEALINK]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("features.dnd.enable "))
        .unwrap_or_default();
    assert!(line.contains(" y000000000066.cfg:3"), "{text}");
    assert!(
        text.contains(&format!("# files: {YEALINK}.boot -> y000000000066.cfg")),
        "{text}"
    );
    let out = d.cli(&["render", "--mac", YEALINK, "y000000000066.cfg"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("features.dnd.enable = 1"),
        "{out:?}"
    );

    // Poly: the common file the master file lists, replaced by the operator's.
    d.put_file(
        "edgeprov-common.cfg",
        "<?xml version=\"1.0\"?>\n<polycomConfig>\n<feature feature.presence.enabled=\"1\" lcl.ml.lang=\"Francais_France\"/>\n</polycomConfig>\n",
    )
    .await;
    let (status, eff) = d
        .api("GET", &format!("/devices/{POLY}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    assert_eq!(
        eff["chain"],
        json!([
            format!("{POLY}.cfg"),
            format!("{POLY}-phone.cfg"),
            "edgeprov-common.cfg"
        ]),
        "{eff}"
    );
    assert_eq!(
        setting(&eff, "feature.presence.enabled"),
        Some(("1", "edgeprov-common.cfg")),
        "{eff}"
    );
    // Files listed first win: the device's own language, not the common file's.
    let own = format!("{POLY}-phone.cfg");
    assert_eq!(
        setting(&eff, "lcl.ml.lang"),
        Some(("German_Germany", own.as_str())),
        "{eff}"
    );
}
