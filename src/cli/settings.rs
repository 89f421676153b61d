//! `edgeprov settings lint|eval` (local files, no daemon needed) and `edgeprov render`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use serde_json::json;

use super::{Output, UsageError};
use crate::settings::{
    FILE_KINDS, FileKind, Outcome, Severity, Vars, evaluate, foreign_servers, lint_file, model4,
};

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Check settings files by the rules of their format: findings as FILE:LINE: message;
    /// exit status 1 if any is an error.
    ///
    /// Avaya files (46xxsettings.txt, upgrade scripts, {mac}.txt, any .txt) get the 46xx
    /// script rules: GOTO targets, labels, quotes, unknown variables and operators, lengths.
    /// Yealink files (.boot, y0000000000NN.cfg, a .cfg that is not XML) must start with
    /// `#!version:1.0.0.1`; other lines must be `key = value`, `include:config` or `#`
    /// comments, and a key set twice is reported (the phone takes the later value). Poly files
    /// (000000000000.cfg, {mac}-phone.cfg, a .cfg or .xml that is XML) must be well-formed XML
    /// with one value per attribute; a setting given in two elements is reported. The name
    /// decides first, then the extension, then the content; a file none of them tells is an
    /// error: give its format with --kind.
    Lint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The format of every FILE, when its name and content do not tell it.
        #[arg(long, value_name = "avaya|yealink|poly")]
        kind: Option<FileKind>,
        /// A name or address of the box the files are for (its pki.server_names; repeatable):
        /// an Avaya file's SET HTTPSRVR or TLSSRVR naming any other server is warned about,
        /// since it moves the phones that read it away from the box.
        #[arg(long = "server-name", value_name = "NAME")]
        server_names: Vec<String>,
    },
    /// Evaluate an Avaya FILE as a phone would: NAME=VALUE lines, then the GET chain.
    ///
    /// Only the 46xx script language has conditions and GET chains to evaluate: Yealink and
    /// Poly files are read top down with the later value winning, which `settings lint`
    /// reports.
    Eval {
        file: PathBuf,
        /// Where GET finds the files FILE names (default: FILE's directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A phone variable, NAME=VALUE (MODEL, MODEL4, GROUP, MACADDR, SIG_IN_USE…;
        /// repeatable). MODEL is the whole model (9641GS); MODEL4, its first four characters
        /// (9641), is taken from MODEL when not given.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Show where each value was set.
        #[arg(long)]
        trace: bool,
    },
}

/// The variables of `--var NAME=VALUE` items, completed as a phone completes them: a phone
/// with a `MODEL` has its first four characters as `MODEL4` ([`model4`]), so `--var
/// MODEL=9641GS` alone runs the `IF $MODEL4 SEQ 9641` sections. A `MODEL4` of more than four
/// characters is refused: no phone has one, and conditions on it would never match.
fn phone_vars(items: &[String]) -> Result<Vars> {
    let mut v = Vars::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            return Err(UsageError(format!("--var {item:?}: expected NAME=VALUE")).into());
        };
        if name.eq_ignore_ascii_case("MODEL4") && value.chars().count() > 4 {
            return Err(UsageError(format!(
                "--var {item:?}: a phone's MODEL4 is at most four characters, the first four of \
                 its model ({}); give the whole model as --var MODEL={value}",
                model4(value)
            ))
            .into());
        }
        v.insert(name, value);
    }
    if v.get(b"MODEL4").is_none()
        && let Some(model) = v.get(b"MODEL")
    {
        let four = model4(model);
        v.insert("MODEL4", four);
    }
    Ok(v)
}

/// Runs the command; `Ok(false)` means "findings with errors" (exit status 1).
pub fn run(cmd: SettingsCmd, out: Output) -> Result<bool> {
    match cmd {
        SettingsCmd::Lint {
            files,
            kind,
            server_names,
        } => {
            // Every file is read and its format known before any is linted, so a file that
            // cannot be read or told stops the run before it prints a partial result.
            let mut inputs = Vec::new();
            for path in files {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let name = path.display().to_string();
                let Some(kind) = kind.or_else(|| FileKind::of(&name, &bytes)) else {
                    bail!(
                        "{name}: cannot tell whether Avaya (46xx script), Yealink (cfg) or Poly \
                         (XML) phones read it from its name or content; say which with --kind \
                         {FILE_KINDS}"
                    );
                };
                inputs.push((name, bytes, kind));
            }
            let mut clean = true;
            let mut found = Vec::new();
            for (name, bytes, kind) in inputs {
                let mut findings = lint_file(&name, &bytes, kind);
                if kind == FileKind::Avaya && !server_names.is_empty() {
                    findings.extend(foreign_servers(&name, &bytes, &server_names));
                    findings.sort_by_key(|f| f.line);
                }
                for finding in findings {
                    clean &= finding.severity != Severity::Error;
                    if out.json {
                        let severity = match finding.severity {
                            Severity::Warning => "warning",
                            Severity::Error => "error",
                        };
                        found.push(json!({
                            "file": finding.file,
                            "line": finding.line,
                            "severity": severity,
                            "message": finding.message,
                        }));
                    } else {
                        println!("{finding}");
                    }
                }
            }
            if out.json {
                out.print_json(&found.into())?;
            }
            Ok(clean)
        }
        SettingsCmd::Eval {
            file,
            dir,
            vars,
            trace,
        } => {
            let dir =
                dir.unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default());
            let v = phone_vars(&vars)?;
            let entry = file
                .file_name()
                .and_then(|n| n.to_str())
                .context("FILE must name a file")?
                .to_string();
            // FILE itself is the entry, even when --dir names another directory.
            let entry_bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // Read as a script, a Yealink or Poly file sets nothing, and "completed" with no
            // settings would say its phones get nothing from it.
            if let Some(other @ (FileKind::Yealink | FileKind::Poly)) =
                FileKind::of(&file.display().to_string(), &entry_bytes)
            {
                bail!(
                    "{}: a {other} file has no script to evaluate (only Avaya files do); its \
                     phones take each setting's last value in the file: check it with \
                     `edgeprov settings lint`",
                    file.display()
                );
            }
            let eval = evaluate(&entry, &v, |name: &str| {
                if name == entry {
                    return Some(entry_bytes.clone());
                }
                // GET names a file in DIR; a name that climbs out of it is a failed fetch.
                let safe =
                    !name.contains('/') && !name.contains('\\') && name != ".." && !name.is_empty();
                safe.then(|| std::fs::read(dir.join(name)).ok()).flatten()
            });
            if out.json {
                let settings: Vec<_> = eval
                    .settings
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name,
                            "value": s.value,
                            "file": s.origin.file,
                            "line": s.origin.line,
                        })
                    })
                    .collect();
                out.print_json(&json!({
                    "settings": settings,
                    "files": eval.files,
                    "outcome": eval.outcome.to_string(),
                    "completed": eval.outcome == Outcome::Completed,
                }))?;
                return Ok(eval.outcome == Outcome::Completed);
            }
            for s in &eval.settings {
                if trace {
                    println!(
                        "{}={}  # {}:{}",
                        s.name, s.value, s.origin.file, s.origin.line
                    );
                } else {
                    println!("{}={}", s.name, s.value);
                }
            }
            println!("# GET chain: {}", eval.files.join(" -> "));
            println!("# {}", eval.outcome);
            Ok(eval.outcome == Outcome::Completed)
        }
    }
}
