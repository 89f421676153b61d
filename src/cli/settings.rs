//! `edgeprov settings lint|eval` (local files, no daemon needed) and `edgeprov render`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use serde_json::json;

use super::Output;
use crate::settings::{Outcome, Script, Severity, Vars, evaluate, lint};

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Check settings files: findings as FILE:LINE: message; exit status 1 if any is an error.
    Lint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evaluate FILE as a phone would: NAME=VALUE lines, then the GET chain.
    Eval {
        file: PathBuf,
        /// Where GET finds the files FILE names (default: FILE's directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A phone variable, NAME=VALUE (MODEL4, GROUP, MACADDR, SIG_IN_USE…; repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Show where each value was set.
        #[arg(long)]
        trace: bool,
    },
}

/// Runs the command; `Ok(false)` means "findings with errors" (exit status 1).
pub fn run(cmd: SettingsCmd, out: Output) -> Result<bool> {
    match cmd {
        SettingsCmd::Lint { files } => {
            let mut clean = true;
            let mut found = Vec::new();
            for path in files {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let script = Script::parse(&bytes);
                for finding in lint(&path.display().to_string(), &script) {
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
            let mut v = Vars::new();
            for item in &vars {
                let Some((name, value)) = item.split_once('=') else {
                    bail!("--var {item:?}: expected NAME=VALUE");
                };
                v.insert(name, value);
            }
            let entry = file
                .file_name()
                .and_then(|n| n.to_str())
                .context("FILE must name a file")?
                .to_string();
            // FILE itself is the entry, even when --dir names another directory.
            let entry_bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
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
