//! `edgeprov pki issue-device`: a client certificate for a softphone, a test or a simulator.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::Output;
use super::client::ApiClient;
use crate::model::Mac;
use crate::pki::DeviceIdentity;

#[derive(Debug, Subcommand)]
pub enum PkiCmd {
    /// Issue a device certificate: writes DIR/<mac>.crt, DIR/<mac>.key and DIR/ca.crt.
    IssueDevice {
        /// The device's MAC address (the certificate's subject).
        #[arg(long)]
        mac: String,
        /// The directory to write the files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

pub async fn run(cmd: PkiCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        PkiCmd::IssueDevice {
            mac,
            out: dir,
            days,
        } => {
            let mac = Mac::parse(&mac)?;
            let value = api
                .post(
                    &format!("/devices/{mac}/certificate"),
                    &json!({ "days": days }),
                )
                .await?;
            let id: DeviceIdentity = serde_json::from_value(value)?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let files = [
                (dir.join(format!("{mac}.crt")), id.certificate, 0o644),
                (dir.join(format!("{mac}.key")), id.private_key, 0o600),
                (dir.join("ca.crt"), id.ca_certificate, 0o644),
            ];
            for (path, text, mode) in &files {
                crate::fsutil::write_atomic(path, text.as_bytes(), *mode)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let written: Vec<String> = files.iter().map(|f| f.0.display().to_string()).collect();
            if out.json {
                return out.print_json(&json!({ "mac": mac, "files": written }));
            }
            for w in written {
                println!("wrote {w}");
            }
            Ok(())
        }
    }
}
