//! The admin preview and `settings eval` give a script the variables the phone itself has:
//! `$MODEL` is the whole model and `$MODEL4` its first four characters, so a 9641GS runs the
//! `IF $MODEL4 SEQ 9641` sections of a `46xxsettings.txt`, as the phone does.

mod common;

use common::*;
use serde_json::{Value, json};

const J179: &str = "c81fea83e85a";
const GS: &str = "001122aabbcc";

/// Branches on `$MODEL4` and, after that, on the whole `$MODEL`.
const SETTINGS: &str = "IF $MODEL4 SEQ J179 GOTO J179\n\
    IF $MODEL4 SEQ 9641 GOTO 9641\n\
    SET BRANCH none\n\
    GOTO WHOLE\n\
    # J179\n\
    SET BRANCH j179\n\
    GOTO WHOLE\n\
    # 9641\n\
    SET BRANCH 9641\n\
    # WHOLE\n\
    IF $MODEL SEQ 9641GS GOTO GS\n\
    GOTO END\n\
    # GS\n\
    SET VARIANT gs\n\
    # END\n";

fn setting<'v>(eff: &'v Value, name: &str) -> Option<&'v str> {
    eff["settings"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["value"].as_str())
}

#[tokio::test]
async fn the_preview_runs_the_sections_of_the_phones_first_four_characters() {
    let d = Daemon::start();
    d.add_device(json!({"mac": J179, "model": "J179"})).await;
    d.add_device(json!({"mac": GS, "model": "9641GS"})).await;
    d.put_file("46xxsettings.txt", SETTINGS).await;

    let (status, eff) = d
        .api("GET", &format!("/devices/{J179}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    assert_eq!(
        eff["chain"],
        json!(["J100Supgrade.txt", "46xxsettings.txt"])
    );
    assert_eq!(setting(&eff, "BRANCH"), Some("j179"), "{eff}");
    assert_eq!(setting(&eff, "VARIANT"), None, "{eff}");

    let (status, eff) = d
        .api("GET", &format!("/devices/{GS}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    assert_eq!(eff["vendor"], "avaya", "{eff}");
    assert_eq!(
        eff["chain"],
        json!(["96x1Supgrade.txt", "46xxsettings.txt"])
    );
    assert_eq!(setting(&eff, "BRANCH"), Some("9641"), "{eff}");
    assert_eq!(setting(&eff, "VARIANT"), Some("gs"), "{eff}");
    assert_eq!(eff["outcome"], "completed");
}

#[test]
fn settings_eval_takes_model4_from_the_whole_model() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("46xxsettings.txt");
    std::fs::write(&file, SETTINGS).unwrap();
    let file = file.to_str().unwrap();
    let eval = |var: &str| {
        std::process::Command::new(BIN)
            .args(["settings", "eval", file, "--var", var])
            .output()
            .unwrap()
    };

    let out = eval("MODEL=9641GS");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("BRANCH=9641\n"), "{text}");
    assert!(text.contains("VARIANT=gs\n"), "{text}");

    // A MODEL4 no phone can have is refused, naming the option and what to give instead.
    let out = eval("MODEL4=9641GS");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--var \"MODEL4=9641GS\""), "{err}");
    assert!(err.contains("--var MODEL=9641GS"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// A model layer named for a whole model (`model:9641GS`) is rendered into `46xxsettings.txt`
/// as a test of `$MODEL`, which a 9641GS has, not of `$MODEL4` (`9641`), which can never equal
/// it; the preview and `settings eval` run it as the phone does.
#[tokio::test]
async fn a_whole_models_layer_reaches_its_phones_through_the_settings_file() {
    let d = Daemon::start();
    d.add_device(json!({"mac": GS, "model": "9641GS"})).await;
    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:9641GS",
            Some(json!({"params": {"avaya:ENABLE_OPUS": "1"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let file = d
        .get_raw(format!("/devices/{GS}/files/46xxsettings.txt"), &d.token)
        .await;
    assert_eq!(file.status, 200, "{}", file.text());
    let text = file.text();
    assert!(text.contains("IF $MODEL SEQ 9641GS GOTO"), "{text}");
    assert!(!text.contains("$MODEL4 SEQ 9641GS"), "{text}");

    // `settings eval` of the file alone (no `{mac}.txt` beside it): the section is reached.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("46xxsettings.txt");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["settings", "eval", path.to_str().unwrap()])
        .args(["--var", "MODEL=9641GS"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ENABLE_OPUS=1\n"), "{out:?}");

    // The preview runs the same section, before the device's own file sets it again.
    let (status, eff) = d
        .api("GET", &format!("/devices/{GS}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    assert_eq!(setting(&eff, "ENABLE_OPUS"), Some("1"), "{eff}");
}
