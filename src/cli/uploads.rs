//! `edgeprov device uploads list|get|rm`: what a phone uploaded (Poly logs and overrides).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::client::{ApiClient, encode};
use super::{Output, table};
use crate::admin::UploadView;

#[derive(Debug, Subcommand)]
pub enum UploadsCmd {
    /// List what the device uploaded: name, kind (log or override), size, when, from where.
    #[command(
        after_help = "Examples:\n  edgeprov device uploads list 0004f2aabbcc\n  edgeprov device uploads get 0004f2aabbcc 0004f2aabbcc-app.log -o app.log"
    )]
    List { mac: String },
    /// Download one upload, exactly as the phone sent it (an override may hold passwords).
    Get {
        mac: String,
        /// The upload's name as listed ({mac}-app.log, -boot.log, -phone.cfg, -web.cfg).
        name: String,
        /// Write it to this file instead of standard output.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Delete one upload (asks first; --yes does not).
    Rm {
        mac: String,
        name: String,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

pub async fn run(cmd: UploadsCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        UploadsCmd::List { mac } => {
            let mac = super::mac_arg(&mac)?;
            let value = api.get(&format!("/devices/{mac}/uploads")).await?;
            if out.json {
                return out.print_json(&value);
            }
            let uploads: Vec<UploadView> = serde_json::from_value(value)?;
            let rows: Vec<Vec<String>> = uploads
                .into_iter()
                .map(|u| {
                    vec![
                        u.name,
                        u.kind.as_str().into(),
                        u.size.to_string(),
                        super::time_text(u.received),
                        u.from,
                    ]
                })
                .collect();
            table::print(&["NAME", "KIND", "BYTES", "RECEIVED", "FROM"], &rows);
            Ok(())
        }
        UploadsCmd::Get {
            mac,
            name,
            out: path,
        } => {
            let mac = super::mac_arg(&mac)?;
            let bytes = api
                .get_bytes(&format!("/devices/{mac}/uploads/{}", encode(&name)))
                .await?;
            let Some(p) = path else {
                return super::write_stdout(&bytes);
            };
            // Mode 0600, as a backup is written: an override may hold passwords.
            crate::fsutil::write_atomic(&p, &bytes, 0o600)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            if out.json {
                return out.print_json(&json!({"file": p, "bytes": bytes.len()}));
            }
            println!("wrote {} ({} bytes)", p.display(), bytes.len());
            Ok(())
        }
        UploadsCmd::Rm { mac, name, confirm } => {
            let mac = super::mac_arg(&mac)?;
            confirm.ask(&format!("delete upload {name} of device {mac}"))?;
            api.delete(&format!("/devices/{mac}/uploads/{}", encode(&name)))
                .await?;
            if out.json {
                return out.print_json(&json!({"deleted": name, "mac": mac}));
            }
            println!("deleted {name} of {mac}");
            Ok(())
        }
    }
}
