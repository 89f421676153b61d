//! What a Yealink or Poly phone ends up with from the files it is served, read the way the phone
//! reads them: for the admin view of a device's effective settings, which must show an
//! operator's static files where they replace generated ones (`y000000000066.cfg`,
//! `edgeprov-common.cfg`, a device's own `{mac}.cfg`), not only what edgeprov would generate.
//!
//! - **Yealink**: `{mac}.boot`, else `y000000000000.boot`; the boot file's `include:config`
//!   files in order (`$mac` replaced by the MAC), a later value winning, and the boot file's own
//!   `key = value` lines where they stand. Without a boot file, `{mac}.cfg`. A file whose first
//!   line is not `#!version:1.0.0.1` is ignored whole, as the phone ignores it; an include of a
//!   URL is fetched from elsewhere, so this box cannot say what it holds.
//! - **Poly**: `{mac}.cfg`, else `000000000000.cfg`; the files its `CONFIG_FILES` lists
//!   (`[PHONE_MAC_ADDRESS]` replaced by the MAC), the first listed winning, as Poly documents;
//!   within one file the first value read wins too (`settings lint` reports a setting given
//!   twice). A file that is not well-formed XML is rejected whole, as the phone rejects it.
//!
//! Pure: `load` supplies each file's bytes as the device would get them, or `None`.

use std::collections::HashMap;

use super::eval::{Origin, Setting};
use super::lines::Lines;
use super::lint_poly::poly_attributes;
use super::script::trim;

/// The first line of every Yealink file the phone reads.
const VERSION: &[u8] = b"#!version:1.0.0.1";

/// The most files one view loads: each load reads the store, and an uploaded boot or master
/// file may name any number of them. Real ones name two or three.
pub const MAX_FILES: usize = 32;

/// The files a phone read, the settings it ends up with, and what it could not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// The files read, in order.
    pub files: Vec<String>,
    /// Each setting with its effective value and the file and line that gave it, in order of
    /// first appearance.
    pub settings: Vec<Setting>,
    /// Files named but not read, each with the reason (`y000000000066.cfg: not served`).
    pub skipped: Vec<String>,
}

impl Served {
    /// `completed`, or `completed; not read: …` naming the files left out and why.
    pub fn outcome(&self) -> String {
        if self.skipped.is_empty() {
            "completed".into()
        } else {
            format!("completed; not read: {}", self.skipped.join("; "))
        }
    }

    fn set(&mut self, index: &mut HashMap<String, usize>, setting: Setting, later_wins: bool) {
        match index.get(&setting.name) {
            Some(&i) if later_wins => self.settings[i] = setting,
            Some(_) => {}
            None => {
                index.insert(setting.name.clone(), self.settings.len());
                self.settings.push(setting);
            }
        }
    }
}

fn setting(name: &str, value: &str, file: &str, line: usize) -> Setting {
    Setting {
        name: name.to_string(),
        value: value.to_string(),
        origin: Origin {
            file: file.to_string(),
            line,
        },
    }
}

/// Replaces every `token` (any ASCII case) in `text` with `with`.
fn replace_ignore_case(text: &str, token: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let token = token.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(&token) {
        out.push_str(&text[at..at + found]);
        out.push_str(with);
        at += found + token.len();
    }
    out.push_str(&text[at..]);
    out
}

/// A Yealink phone with MAC `mac` (lower-case hex, as in file names).
pub fn yealink(mac: &str, mut load: impl FnMut(&str) -> Option<Vec<u8>>) -> Served {
    let mut out = Served::default();
    let mut index = HashMap::new();
    let boot = [format!("{mac}.boot"), "y000000000000.boot".to_string()]
        .into_iter()
        .find_map(|name| load(&name).map(|bytes| (name, bytes)));
    let Some((boot_name, boot)) = boot else {
        let own = format!("{mac}.cfg");
        match load(&own) {
            Some(bytes) => yealink_cfg(&own, &bytes, &mut out, &mut index),
            None => out.skipped.push(format!("{own}: not served")),
        }
        return out;
    };
    if !yealink_version(&boot_name, &boot, &mut out) {
        return out;
    }
    out.files.push(boot_name.clone());
    for (line, content) in (1..).zip(Lines::new(&boot).map(|l| l.content)).skip(1) {
        let text = trim(content);
        if let Some(target) = text.strip_prefix(b"include:config") {
            let target = String::from_utf8_lossy(trim(target));
            let target = target.trim_matches('"');
            if target.is_empty() {
                continue;
            }
            let name = replace_ignore_case(target, "$mac", mac);
            if name.contains("://") {
                out.skipped
                    .push(format!("{name}: fetched from another server"));
                continue;
            }
            if out.files.len() + out.skipped.len() > MAX_FILES {
                out.skipped
                    .push(format!("{name} and after: too many files"));
                break;
            }
            match load(&name) {
                Some(bytes) => yealink_cfg(&name, &bytes, &mut out, &mut index),
                None => out.skipped.push(format!("{name}: not served")),
            }
        } else if let Some((key, value)) = yealink_line(text) {
            out.set(&mut index, setting(&key, &value, &boot_name, line), true);
        }
    }
    out
}

/// Whether a Yealink file starts with its version line; notes it as skipped when not.
fn yealink_version(name: &str, bytes: &[u8], out: &mut Served) -> bool {
    let first = Lines::new(bytes)
        .next()
        .map(|l| l.content)
        .unwrap_or_default();
    let ok = trim(first) == VERSION;
    if !ok {
        out.skipped.push(format!(
            "{name}: its first line is not #!version:1.0.0.1, so the phone ignores it"
        ));
    }
    ok
}

/// `key = value`, or `None` for a comment or any other line (which the phone skips).
fn yealink_line(text: &[u8]) -> Option<(String, String)> {
    if text.is_empty() || text.starts_with(b"#") {
        return None;
    }
    let eq = text.iter().position(|&b| b == b'=')?;
    let key = trim(&text[..eq]);
    let valid = !key.is_empty()
        && key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    valid.then(|| {
        (
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(trim(&text[eq + 1..])).into_owned(),
        )
    })
}

fn yealink_cfg(name: &str, bytes: &[u8], out: &mut Served, index: &mut HashMap<String, usize>) {
    if !yealink_version(name, bytes, out) {
        return;
    }
    out.files.push(name.to_string());
    for (line, content) in (1..).zip(Lines::new(bytes).map(|l| l.content)).skip(1) {
        if let Some((key, value)) = yealink_line(trim(content)) {
            out.set(index, setting(&key, &value, name, line), true);
        }
    }
}

/// A Poly phone with MAC `mac` (lower-case hex, as in file names).
pub fn poly(mac: &str, mut load: impl FnMut(&str) -> Option<Vec<u8>>) -> Served {
    let mut out = Served::default();
    let mut index = HashMap::new();
    let master = [format!("{mac}.cfg"), "000000000000.cfg".to_string()]
        .into_iter()
        .find_map(|name| load(&name).map(|bytes| (name, bytes)));
    let Some((master_name, master)) = master else {
        out.skipped
            .push(format!("{mac}.cfg and 000000000000.cfg: not served"));
        return out;
    };
    let attributes = match poly_attributes(&master) {
        Ok(a) => a,
        Err((line, why)) => {
            out.skipped.push(format!(
                "{master_name}: line {line}: {why}, so the phone rejects it"
            ));
            return out;
        }
    };
    out.files.push(master_name);
    let listed = attributes
        .into_iter()
        .find(|(name, _, _)| name == "CONFIG_FILES")
        .map(|(_, value, _)| value)
        .unwrap_or_default();
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = replace_ignore_case(name, "[PHONE_MAC_ADDRESS]", mac);
        if out.files.len() + out.skipped.len() > MAX_FILES {
            out.skipped
                .push(format!("{name} and after: too many files"));
            break;
        }
        let Some(bytes) = load(&name) else {
            out.skipped.push(format!("{name}: not served"));
            continue;
        };
        match poly_attributes(&bytes) {
            Ok(attributes) => {
                out.files.push(name.clone());
                for (key, value, line) in attributes {
                    // Namespace declarations are XML's, not settings.
                    if key == "xmlns" || key.starts_with("xmlns:") || key.starts_with("xsi:") {
                        continue;
                    }
                    out.set(&mut index, setting(&key, &value, &name, line), false);
                }
            }
            Err((line, why)) => out.skipped.push(format!(
                "{name}: line {line}: {why}, so the phone rejects it"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "001565aabbcc";

    fn files(list: &[(&str, &str)]) -> impl FnMut(&str) -> Option<Vec<u8>> {
        let map: HashMap<String, Vec<u8>> = list
            .iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn value<'s>(served: &'s Served, name: &str) -> Option<(&'s str, &'s str, usize)> {
        served
            .settings
            .iter()
            .find(|s| s.name == name)
            .map(|s| (s.value.as_str(), s.origin.file.as_str(), s.origin.line))
    }

    #[test]
    fn yealink_reads_the_boot_files_includes_in_order_later_values_winning() {
        let served = yealink(
            MAC,
            files(&[
                (
                    "y000000000000.boot",
                    "#!version:1.0.0.1\nlocal_time.time_zone = -8:00\ninclude:config \"y000000000066.cfg\"\ninclude:config $MAC.cfg\ninclude:config http://elsewhere.example/x.cfg\n",
                ),
                (
                    "y000000000066.cfg",
                    "#!version:1.0.0.1\n# operator's file\nlang.gui = English\naccount.1.label = shared\nnot a line\n",
                ),
                (
                    "001565aabbcc.cfg",
                    "#!version:1.0.0.1\r\naccount.1.label = own\r\n",
                ),
            ]),
        );
        assert_eq!(
            served.files,
            [
                "y000000000000.boot",
                "y000000000066.cfg",
                "001565aabbcc.cfg"
            ]
        );
        assert_eq!(
            value(&served, "local_time.time_zone"),
            Some(("-8:00", "y000000000000.boot", 2))
        );
        assert_eq!(
            value(&served, "lang.gui"),
            Some(("English", "y000000000066.cfg", 3))
        );
        assert_eq!(
            value(&served, "account.1.label"),
            Some(("own", "001565aabbcc.cfg", 2))
        );
        assert_eq!(
            served.outcome(),
            "completed; not read: http://elsewhere.example/x.cfg: fetched from another server"
        );
    }

    #[test]
    fn yealink_ignores_a_file_without_its_version_line() {
        let served = yealink(
            MAC,
            files(&[
                (
                    "001565aabbcc.boot",
                    "#!version:1.0.0.1\ninclude:config \"y000000000066.cfg\"\n",
                ),
                ("y000000000066.cfg", "lang.gui = English\n"),
            ]),
        );
        assert!(served.settings.is_empty(), "{served:?}");
        assert!(
            served
                .outcome()
                .contains("y000000000066.cfg: its first line")
        );
    }

    #[test]
    fn poly_reads_the_master_files_list_first_listed_winning() {
        let served = poly(
            MAC,
            files(&[
                (
                    "000000000000.cfg",
                    "<?xml version=\"1.0\"?>\n<APPLICATION APP_FILE_PATH=\"sip.ld\" CONFIG_FILES=\"[PHONE_MAC_ADDRESS]-phone.cfg, site.cfg, missing.cfg, broken.cfg\"/>\n",
                ),
                (
                    "001565aabbcc-phone.cfg",
                    "<polycomConfig><reg reg.1.address=\"201\"/></polycomConfig>",
                ),
                (
                    "site.cfg",
                    "<polycomConfig xmlns:xsi=\"x\">\n<reg reg.1.address=\"999\" reg.1.label=\"A &amp; B\"/>\n</polycomConfig>",
                ),
                ("broken.cfg", "<polycomConfig><a x=\"1\"></polycomConfig>"),
            ]),
        );
        assert_eq!(
            served.files,
            ["000000000000.cfg", "001565aabbcc-phone.cfg", "site.cfg"]
        );
        assert_eq!(
            value(&served, "reg.1.address"),
            Some(("201", "001565aabbcc-phone.cfg", 1))
        );
        assert_eq!(
            value(&served, "reg.1.label"),
            Some(("A & B", "site.cfg", 2))
        );
        assert_eq!(value(&served, "xmlns:xsi"), None);
        let outcome = served.outcome();
        assert!(outcome.contains("missing.cfg: not served"), "{outcome}");
        assert!(outcome.contains("broken.cfg: line 1"), "{outcome}");
    }
}
