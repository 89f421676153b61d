//! `edgeprov file list|put|get|rm`: static files that override generated ones.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::client::{ApiClient, encode};
use super::{Output, table};
use crate::admin::StaticFileView;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum FileCmd {
    /// List static files.
    List {
        /// Only this site's files (not the box-wide ones).
        #[arg(long)]
        site: Option<String>,
    },
    /// Upload FILE as NAME (box-wide, or for one site with --site).
    Put {
        name: String,
        /// The local file to upload.
        #[arg(long = "from", value_name = "FILE")]
        from: PathBuf,
        /// Only for this site's phones (default: every phone).
        #[arg(long)]
        site: Option<String>,
    },
    /// Print a static file. One that carries secrets (PROOF NEEDED) only for an administrator,
    /// and audited.
    Get {
        name: String,
        /// The site's file instead of the box-wide one.
        #[arg(long)]
        site: Option<String>,
    },
    /// Delete a static file (asks first; --yes does not).
    Rm {
        name: String,
        /// The site's file instead of the box-wide one.
        #[arg(long)]
        site: Option<String>,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

fn query(site: &Option<String>) -> String {
    site.as_ref()
        .map(|s| format!("?site={}", encode(s)))
        .unwrap_or_default()
}

pub async fn run(cmd: FileCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        FileCmd::List { site } => {
            let v = api.get(&format!("/files{}", query(&site))).await?;
            if out.json {
                return out.print_json(&v);
            }
            let files: Vec<StaticFileView> = serde_json::from_value(v)?;
            let rows: Vec<Vec<String>> = files
                .into_iter()
                .map(|f| {
                    vec![
                        f.name,
                        if f.site.is_empty() {
                            "(all)".into()
                        } else {
                            f.site
                        },
                        f.size.to_string(),
                        if f.protected { "yes" } else { "no" }.into(),
                    ]
                })
                .collect();
            table::print(&["NAME", "SITE", "BYTES", "PROOF NEEDED"], &rows);
        }
        FileCmd::Put { name, from, site } => {
            let bytes =
                std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            let v = api
                .put_bytes(&format!("/files/{}{}", encode(&name), query(&site)), bytes)
                .await?;
            if out.json {
                return out.print_json(&v);
            }
            println!("stored {name}");
            let stored: StaticFileView = serde_json::from_value(v)?;
            if !stored.secrets.is_empty() {
                println!(
                    "it holds secrets ({}): served only to a device of the inventory that proves who it is",
                    stored.secrets.join(", ")
                );
            }
            for warning in &stored.warnings {
                eprintln!("warning: {name} {warning}");
            }
        }
        FileCmd::Get { name, site } => {
            let bytes = api
                .get_bytes(&format!("/files/{}{}", encode(&name), query(&site)))
                .await?;
            if out.json {
                let content = String::from_utf8(bytes.to_vec())
                    .map_err(|_| anyhow::anyhow!("{name} is not text: leave out --json"))?;
                return out.print_json(&json!({
                    "name": name,
                    "site": site.unwrap_or_default(),
                    "content": content,
                }));
            }
            super::write_stdout(&bytes)?;
        }
        FileCmd::Rm {
            name,
            site,
            confirm,
        } => {
            confirm.ask(&match &site {
                Some(site) => format!("delete static file {name} of site {site}"),
                None => format!("delete static file {name}"),
            })?;
            api.delete(&format!("/files/{}{}", encode(&name), query(&site)))
                .await?;
            if out.json {
                return out.print_json(&json!({"removed": name, "site": site.unwrap_or_default()}));
            }
            println!("removed {name}");
        }
    }
    Ok(())
}
