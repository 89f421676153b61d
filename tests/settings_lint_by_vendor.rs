//! `edgeprov settings lint` checks each file by the rules of the phones that read it: the
//! field files from /work/shared/fixtures lint clean or with only the findings they deserve,
//! and Yealink and Poly files are no longer read as 46xx scripts.

mod common;

use std::path::Path;
use std::process::Output;

use common::BIN;
use edgeprov::settings::{FileKind, lint_file};
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

fn lint(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(["settings", "lint"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A Poly configuration file as edgeprov renders one, with a comment and an entity.
const POLY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
    <!-- site settings -->\n\
    <polycomConfig>\n  <reg\n    reg.1.address=\"201\"\n    reg.1.label=\"Sales &amp; Support\"/>\n\
    </polycomConfig>\n";

#[test]
fn every_field_file_gets_only_the_findings_it_deserves() {
    // The Yealink boot file: version line, key = value lines, include:config lines. Read as a
    // 46xx script, each of its settings was "not a statement or comment".
    let teams = format!("{FIXTURES}/yealink-teams.y000000000000.boot");
    let out = lint(&[&teams]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "");

    for clean in ["opensip-j100.46xxsettings.txt", "sip-9600.46xxsettings.txt"] {
        let out = lint(&[&format!("{FIXTURES}/{clean}")]);
        assert_eq!(out.status.code(), Some(0), "{clean}: {out:?}");
        assert_eq!(stdout(&out), "", "{clean}");
    }

    // The IP Office file keeps its real findings: a jump to a commented-out label (twice), the
    // line after an unconditional GOTO, and a value on the line after its SET.
    let ipo = format!("{FIXTURES}/ipo11-autogen-b.46xxsettings.txt");
    let out = lint(&[&ipo, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<(u64, &str)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            (118, "error"),
            (119, "error"),
            (130, "warning"),
            (261, "warning"),
            (262, "warning")
        ]
    );
}

#[test]
fn yealink_files_are_checked_as_yealink_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Named as a phone's own file, not XML: a Yealink cfg. A key set twice is reported and the
    // later value named as the one the phone takes; a stray line is reported.
    let cfg = write(
        d,
        "001565aaa937.cfg",
        "#!version:1.0.0.1\naccount.1.label = A\nSET X 1\naccount.1.label = B\n",
    );
    let out = lint(&[&cfg]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "{cfg}:3: not `key = value`, `include:config` or a `#` comment: the phone ignores \
             this line\n\
             {cfg}:4: `account.1.label` is already set on line 2: the phone takes this later \
             value\n"
        )
    );

    // Without its version line the phone reads none of it: an error, exit status 1.
    let bare = write(d, "y000000000066.cfg", "account.1.label = A\n");
    let out = lint(&[&bare]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "{bare}:1: first line is `account.1.label = A`, not `#!version:1.0.0.1`: the phone \
             ignores the whole file\n"
        )
    );
}

#[test]
fn poly_files_are_checked_as_xml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write(d, "001122aabbcc-phone.cfg", POLY);
    let also_good = write(d, "site.cfg", POLY);
    let out = lint(&[&good, &also_good]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "");

    let twice = write(
        d,
        "000000000000.cfg",
        "<?xml version=\"1.0\"?>\n<APPLICATION\n  APP_FILE_PATH=\"sip.ld\"\n  APP_FILE_PATH=\"x.ld\"/>\n",
    );
    let out = lint(&[&twice]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "{twice}:4: attribute `APP_FILE_PATH` appears twice in one element (first on line \
             3): not well-formed XML, the phone rejects the whole file\n"
        )
    );

    let unclosed = write(
        d,
        "poly.xml",
        "<polycomConfig>\n<reg reg.1.address=\"1\">\n",
    );
    let out = lint(&[&unclosed]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).starts_with(&format!("{unclosed}:2: element `<reg>` is never closed")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_file_of_no_telling_kind_is_an_error_until_kind_says_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unknown = write(d, "settings.conf", "## nothing but a comment\n");
    let clean = write(d, "46xxspecials.txt", "SET A 1\n");
    let out = lint(&[&clean, &unknown]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        "",
        "nothing is linted before every kind is known"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{unknown}: cannot tell")), "{err}");
    assert!(err.contains("--kind avaya|yealink|poly"), "{err}");

    let out = lint(&[&unknown, "--kind", "yealink"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).starts_with(&format!("{unknown}:1: first line is")),
        "{}",
        stdout(&out)
    );
    let out = lint(&[&unknown, "--kind", "avaya"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Content tells a file with no telling name.
    let xml = write(d, "phone-settings", POLY);
    let out = lint(&[&xml]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "");

    let out = lint(&[&unknown, "--kind", "cisco"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("avaya|yealink|poly"),
        "{out:?}"
    );
}

#[test]
fn settings_eval_refuses_yealink_and_poly_files() {
    let teams = format!("{FIXTURES}/yealink-teams.y000000000000.boot");
    let dir = tempfile::tempdir().unwrap();
    let poly = write(dir.path(), "001122aabbcc-phone.cfg", POLY);
    for (file, kind) in [(teams.as_str(), "yealink"), (poly.as_str(), "poly")] {
        let out = std::process::Command::new(BIN)
            .args(["settings", "eval", file])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(stdout(&out), "", "no empty result that looks complete");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{file}: a {kind} file has no script to evaluate")),
            "{err}"
        );
    }
}

/// Bytes rich in XML and cfg tokens, so generated inputs reach the interesting paths.
fn markup_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"<a".to_vec()),
        Just(b"</a>".to_vec()),
        Just(b"/>".to_vec()),
        Just(b">".to_vec()),
        Just(b" x=\"1\"".to_vec()),
        Just(b" x='&amp;'".to_vec()),
        Just(b"<!--".to_vec()),
        Just(b"-->".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"]]>".to_vec()),
        Just(b"<?xml version=\"1.0\"?>".to_vec()),
        Just(b"<!DOCTYPE a [".to_vec()),
        Just(b"#!version:1.0.0.1".to_vec()),
        Just(b"include:config \"".to_vec()),
        Just(b"a.b = 1".to_vec()),
        Just(b"&#x".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just("\u{FEFF}".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

/// Physical lines as the linters count them (LF, CRLF or lone CR; a last unended line).
fn line_count(bytes: &[u8]) -> usize {
    let text = bytes.split(|&b| b == b'\n' || b == b'\r');
    let ends = bytes.windows(2).filter(|w| w == b"\r\n").count();
    text.count() - ends - usize::from(bytes.last().is_none_or(|&b| b == b'\n' || b == b'\r'))
}

proptest! {
    #[test]
    fn any_bytes_lint_without_panics_at_lines_of_the_file(bytes in markup_bytes()) {
        let lines = line_count(&bytes).max(1);
        for kind in [FileKind::Avaya, FileKind::Yealink, FileKind::Poly] {
            for finding in lint_file("f", &bytes, kind) {
                prop_assert!(finding.line >= 1 && finding.line <= lines, "{kind} {finding}");
            }
        }
        let _ = FileKind::of("f", &bytes);
    }

    /// Any values, escaped as the renderer escapes them, make a clean Poly file.
    #[test]
    fn escaped_attribute_values_lint_clean(values in proptest::collection::vec("[^\\p{Cc}]{0,20}", 1..6)) {
        let escape = |v: &str| {
            v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
        };
        let attrs: String = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("\n    reg.{i}.label=\"{}\"", escape(v)))
            .collect();
        let file = format!("<?xml version=\"1.0\"?>\n<polycomConfig>\n  <reg{attrs}/>\n</polycomConfig>\n");
        prop_assert_eq!(lint_file("p.cfg", file.as_bytes(), FileKind::Poly), vec![]);
    }
}

/// Given the box's names, `settings lint` warns (exit 0) about each `SET HTTPSRVR`/`TLSSRVR`
/// of an Avaya file that names another server, in line order with the other findings; without
/// them it cannot tell the box's own names from others and says nothing of it.
#[test]
fn given_the_boxs_names_a_server_setting_naming_another_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "46xxspecials.txt",
        "SET HTTPSRVR 10.9.9.9\nSET TLSSRVR prov.example.lan\nSET SIPDOMAIN a b\n",
    );
    let out = lint(&[&file, "--server-name", "prov.example.lan"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:1: SET HTTPSRVR names 10.9.9.9, not this box"
        )),
        "{text}"
    );
    assert!(lines[1].starts_with(&format!("{file}:3: ")), "{text}");

    let out = lint(&[&file]);
    assert!(!stdout(&out).contains("HTTPSRVR"), "{out:?}");
}
