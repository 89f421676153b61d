//! Linting Yealink boot and cfg files: what a phone skips without saying so.
//!
//! A Yealink file is its version line, `#!version:1.0.0.1` exactly and first, then one
//! `key = value`, `include:config "file"` (boot files) or `#` comment a line. Without the
//! version line the phone does not read the file at all; a line of any other shape is skipped;
//! a key set twice takes the later value, which hides the earlier line from whoever reads the
//! file top down.

use std::collections::HashMap;

use super::lines::Lines;
use super::lint::{Finding, Linter};
use super::script::trim;

/// The line a Yealink file must start with.
const VERSION: &[u8] = b"#!version:1.0.0.1";

/// Lints a Yealink boot or cfg file (called `file` in findings). Findings come in line order.
pub fn lint_yealink(file: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut out = Linter::new(file);
    let lines: Vec<&[u8]> = Lines::new(bytes).map(|l| l.content).collect();
    check_version(&lines, &mut out);
    let mut keys: HashMap<&[u8], usize> = HashMap::new();
    for (line, content) in (1..).zip(&lines).skip(1) {
        check_line(line, content, &mut keys, &mut out);
    }
    out.findings.sort_by_key(|f| f.line);
    out.findings
}

fn check_version(lines: &[&[u8]], out: &mut Linter<'_>) {
    let first = lines.first().copied().unwrap_or_default();
    if trim(first) == VERSION {
        return;
    }
    let mut message = if first.starts_with(b"\xEF\xBB\xBF") {
        "line starts with a byte order mark: the phone does not see `#!version:1.0.0.1` and \
         ignores the whole file"
            .to_owned()
    } else if lines.is_empty() {
        "the file is empty: a Yealink file starts with `#!version:1.0.0.1`".to_owned()
    } else {
        format!(
            "first line is `{}`, not `#!version:1.0.0.1`: the phone ignores the whole file",
            String::from_utf8_lossy(trim(first))
        )
    };
    if let Some(at) = lines.iter().skip(1).position(|l| trim(l) == VERSION) {
        message.push_str(&format!(
            " (the version line is on line {}; it must be the first)",
            at + 2
        ));
    }
    out.error(1, message);
}

/// A key as Yealink names settings: letters, digits, `.`, `_` and `-`.
fn is_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_line<'a>(
    line: usize,
    content: &'a [u8],
    keys: &mut HashMap<&'a [u8], usize>,
    out: &mut Linter<'_>,
) {
    let text = trim(content);
    if text.is_empty() || text.starts_with(b"#") {
        return;
    }
    if let Some(target) = text.strip_prefix(b"include:config") {
        let target = trim(target);
        if target.is_empty() {
            out.warn(
                line,
                "include:config names no file: the phone ignores this line".into(),
            );
        } else if target.starts_with(b"\"") && (target.len() < 2 || !target.ends_with(b"\"")) {
            out.warn(
                line,
                "the quoted file name of include:config is never closed".into(),
            );
        }
        return;
    }
    let Some(eq) = text.iter().position(|&b| b == b'=') else {
        out.warn(
            line,
            "not `key = value`, `include:config` or a `#` comment: the phone ignores this line"
                .into(),
        );
        return;
    };
    let key = trim(&text[..eq]);
    if !is_key(key) {
        out.warn(
            line,
            format!(
                "`{}` is not a setting name (letters, digits, `.`, `_`, `-`): the phone ignores \
                 this line",
                String::from_utf8_lossy(key)
            ),
        );
        return;
    }
    if let Some(before) = keys.insert(key, line) {
        out.warn(
            line,
            format!(
                "`{}` is already set on line {before}: the phone takes this later value",
                String::from_utf8_lossy(key)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(src: &str) -> Vec<String> {
        lint_yealink("y.cfg", src.as_bytes())
            .iter()
            .map(|f| format!("{:?} {f}", f.severity))
            .collect()
    }

    #[test]
    fn a_clean_boot_and_cfg_have_no_findings() {
        let boot = "#!version:1.0.0.1\r\n## boot\r\ninclude:config \"y000000000066.cfg\"\r\n\
                    include:config $mac.cfg\r\noverwrite_mode = 1\r\n";
        assert_eq!(findings(boot), Vec::<String>::new());
        let cfg = "#!version:1.0.0.1\n\n# c\naccount.1.enable = 1\nlang.gui=English\n\
                   features.x = %NULL%\nstatic.firmware.url =\n";
        assert_eq!(findings(cfg), Vec::<String>::new());
    }

    #[test]
    fn the_version_line_must_come_first_and_exactly() {
        assert_eq!(
            findings("a = 1\n#!version:1.0.0.1\n"),
            vec![
                "Error y.cfg:1: first line is `a = 1`, not `#!version:1.0.0.1`: the phone ignores \
                 the whole file (the version line is on line 2; it must be the first)"
            ]
        );
        assert_eq!(
            findings("\u{FEFF}#!version:1.0.0.1\n"),
            vec![
                "Error y.cfg:1: line starts with a byte order mark: the phone does not see \
                 `#!version:1.0.0.1` and ignores the whole file"
            ]
        );
        assert_eq!(
            findings(""),
            vec![
                "Error y.cfg:1: the file is empty: a Yealink file starts with `#!version:1.0.0.1`"
            ]
        );
        assert_eq!(findings("#!version:1.0.0.1  \n").len(), 0);
    }

    #[test]
    fn odd_lines_and_repeated_keys() {
        assert_eq!(
            findings(
                "#!version:1.0.0.1\nSET A 1\nbad key = 1\n= 2\na.b = 1\na.b = 2\ninclude:config\n\
                 include:config \"x.cfg\na.b = 3\n"
            ),
            vec![
                "Warning y.cfg:2: not `key = value`, `include:config` or a `#` comment: the phone \
                 ignores this line",
                "Warning y.cfg:3: `bad key` is not a setting name (letters, digits, `.`, `_`, \
                 `-`): the phone ignores this line",
                "Warning y.cfg:4: `` is not a setting name (letters, digits, `.`, `_`, `-`): the \
                 phone ignores this line",
                "Warning y.cfg:6: `a.b` is already set on line 5: the phone takes this later value",
                "Warning y.cfg:7: include:config names no file: the phone ignores this line",
                "Warning y.cfg:8: the quoted file name of include:config is never closed",
                "Warning y.cfg:9: `a.b` is already set on line 6: the phone takes this later value",
            ]
        );
    }
}
