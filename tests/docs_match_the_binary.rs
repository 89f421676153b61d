//! What the README and docs/*.md show of the binary exists: every `edgeprov` command line they
//! show names real sub-commands and flags (checked against `--help` of the real binary), and
//! every metric they name is one the running daemon's `/metrics` exposes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;

/// README.md and every page of docs/, by name.
fn docs() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// `edgeprov PATH... --help`, kept per path.
struct Help(BTreeMap<Vec<String>, String>);

impl Help {
    fn of(&mut self, path: &[String]) -> &str {
        self.0.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_edgeprov"))
                .args(path)
                .arg("--help")
                .output()
                .unwrap();
            assert!(out.status.success(), "edgeprov {path:?} --help failed");
            String::from_utf8(out.stdout).unwrap()
        })
    }

    /// The sub-commands a help text lists under `Commands:`.
    fn subcommands(&mut self, path: &[String]) -> BTreeSet<String> {
        let text = self.of(path);
        let Some(start) = text.find("Commands:\n") else {
            return BTreeSet::new();
        };
        text[start + "Commands:\n".len()..]
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }
}

/// A word of a command line that can be a sub-command (or `a|b` alternatives of one).
fn command_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .split('|')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
}

/// The command lines the docs show, without `edgeprov`: in shell blocks and code spans those
/// after `edgeprov ` (strict), and code spans that start with a sub-command (`device list
/// --site hq`; not strict: `firmware cache` may be a name in prose).
fn command_lines(text: &str, top: &BTreeSet<String>) -> Vec<(String, bool)> {
    let mut lines = Vec::new();
    let mut prose = String::new();
    let mut fence = None;
    for line in text.lines() {
        if let Some(kind) = line.strip_prefix("```") {
            fence = match fence {
                None => Some(kind.to_string()),
                Some(_) => None,
            };
            continue;
        }
        match fence.as_deref() {
            Some("sh" | "bash" | "") => lines.extend(
                line.split("edgeprov ")
                    .skip(1)
                    .map(|l| (l.to_string(), true)),
            ),
            Some(_) => {}
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    // Code spans may run over a line break in the Markdown source.
    let spans = prose.split('`').skip(1).step_by(2);
    for span in spans.map(|s| s.replace('\n', " ")) {
        if let Some(rest) = span.strip_prefix("edgeprov ") {
            lines.push((rest.to_string(), true));
        } else if span
            .split_whitespace()
            .next()
            .is_some_and(|w| top.contains(w))
        {
            lines.push((span, false));
        }
    }
    lines
        .into_iter()
        .map(|(l, strict)| {
            let l = l.split('#').next().unwrap_or_default().replace('\\', "");
            (l, strict)
        })
        .collect()
}

/// Every sub-command and flag a doc shows is one `--help` lists (for `a|b` alternatives, each
/// must exist and a flag must be one of either).
#[test]
fn every_command_and_flag_the_docs_show_exists() {
    let mut help = Help(BTreeMap::new());
    let top = help.subcommands(&[]);
    assert!(top.contains("device") && top.contains("serve"), "{top:?}");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (file, text) in docs() {
        for (line, strict) in command_lines(&text, &top) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first().is_none_or(|w| !top.contains(*w)) {
                continue; // prose: "edgeprov and nginx"
            }
            let mut path: Vec<String> = Vec::new();
            let mut last: Vec<String> = Vec::new();
            let mut prose = false;
            for word in &words {
                let subs = help.subcommands(&path);
                if subs.is_empty() || !command_word(word) {
                    break;
                }
                let choices: Vec<&str> = word.split('|').collect();
                if let Some(bad) = choices.iter().find(|c| !subs.contains(**c)) {
                    if !strict && path.len() == 1 {
                        prose = true; // `firmware cache`: a name that starts with a command's
                        break;
                    }
                    wrong.push(format!("{file}: `{line}`: no sub-command {bad}"));
                    break;
                }
                path.push(choices[0].to_string());
                last = choices.iter().map(|c| c.to_string()).collect();
            }
            checked += 1;
            // `job … --wait`: the flag belongs to a sub-command the line does not name.
            if prose || words.contains(&"…") {
                continue;
            }
            let mut text = help.of(&path).to_string();
            for choice in last.iter().skip(1) {
                let mut other = path.clone();
                other.pop();
                other.push(choice.clone());
                text.push_str(help.of(&other));
            }
            for word in &words {
                let flag = word
                    .split(['=', '[', ']', ',', ')', '('])
                    .find(|w| w.starts_with("--"))
                    .unwrap_or_default();
                if flag.len() > 2
                    && !text.contains(&format!("{flag} "))
                    && !text.contains(&format!("{flag}\n"))
                {
                    wrong.push(format!(
                        "{file}: `{line}`: edgeprov {} has no {flag}",
                        path.join(" ")
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(checked > 50, "only {checked} command lines read");
}

/// Every `edgeprov_*` metric a doc names is one the running daemon exposes.
#[tokio::test]
async fn every_metric_the_docs_name_is_exposed() {
    let d = Daemon::start_with("[dns]\nlisten = [\"127.0.0.1:0\"]\n");
    let text = d.metrics().await;
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(exposed.len() > 20, "{text}");
    let mut named = 0;
    let mut wrong = Vec::new();
    for (file, doc) in docs() {
        for (i, _) in doc.match_indices("edgeprov_") {
            let before = doc[..i].chars().next_back().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' {
                continue; // part of another name, such as a test's
            }
            let name: String = doc[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.ends_with('_') {
                continue; // a file name pattern: edgeprov_*.deb
            }
            named += 1;
            if !exposed.contains(name.as_str()) {
                wrong.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "metrics named but not exposed: {wrong:#?}"
    );
    assert!(named > 5, "only {named} metric names read");

    // docs/metrics.md lists every metric exposed, with its type.
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let listed: BTreeMap<&str, &str> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let (name, rest) = l.split_once("` | ")?;
            Some((name, rest.split(" |").next()?))
        })
        .collect();
    assert_eq!(listed, types, "docs/metrics.md against /metrics");
}
