//! `edgeprov pki …`: device certificates — issue one for a softphone, a test or a simulator;
//! list those the box issued to a device; revoke them; approve or reject the SCEP enrolments
//! held for an operator (`scep.approval = "operator"`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::ApiClient;
use super::new_password::new_password;
use super::{Output, table, time_text};
use crate::admin::{PendingView, SiteApproval};
use crate::model::{IssuedCert, KEY_DIGITS_NAMED, RevocationReason};
use crate::pki::{DeviceIdentity, Pkcs12Form};

#[derive(Debug, Subcommand)]
pub enum PkiCmd {
    /// Issue a device certificate: writes DIR/<mac>.crt, DIR/<mac>.key and DIR/ca.crt; with
    /// --pkcs12, DIR/<mac>.p12 (key, certificate and CA, password-protected) instead of the
    /// unprotected key. Administrators only: its holder is served the device's secrets.
    #[command(
        after_help = "The box keeps no device key: a PKCS#12 file can only be made at issue.\n\nExamples:\n  edgeprov pki issue-device --mac 001122aabbcc --out ./certs\n  edgeprov pki issue-device --mac 001122aabbcc --out ./certs --pkcs12 --password-file ./p12.pass\n  edgeprov pki issue-device --mac 001122aabbcc --out ./certs --pkcs12 --legacy   # asks for the password"
    )]
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
        /// Write the identity as PKCS#12 (DIR/<mac>.p12, for softphones and phones that import
        /// one file): PBES2/AES-256 with a SHA-256 MAC. The key is written nowhere else.
        #[arg(long)]
        pkcs12: bool,
        /// With --pkcs12: 3DES with a SHA-1 MAC, for importers that refuse the modern form
        /// (often reported as a wrong password).
        #[arg(long, requires = "pkcs12")]
        legacy: bool,
        /// With --pkcs12: a file whose first line is the password (else it is asked on the
        /// terminal). Printable ASCII, not empty.
        #[arg(long, value_name = "FILE", requires = "pkcs12")]
        password_file: Option<PathBuf>,
    },
    /// The certificates the box issued to a device, newest first, with revocations.
    List {
        /// The device's MAC address.
        #[arg(long)]
        mac: String,
    },
    /// Revoke device certificates: phones presenting them are refused at the handshake from
    /// now on, and they are listed in the CRL (`/ca.crl`).
    #[command(
        after_help = "Examples:\n  edgeprov pki revoke --mac 001122aabbcc --serial 3F:1A:... --reason key-compromise\n  edgeprov pki revoke --mac 001122aabbcc --all --reason superseded --yes"
    )]
    Revoke {
        /// The device's MAC address.
        #[arg(long)]
        mac: String,
        /// One certificate the box issued to the device, by serial (as `pki list` shows it).
        #[arg(long, required_unless_present_any = ["all", "cert"], conflicts_with_all = ["all", "cert"])]
        serial: Option<String>,
        /// Every certificate the box issued to the device, and any other of its CA's for the
        /// device issued before now, even one the box has no record of.
        #[arg(long, conflicts_with = "cert")]
        all: bool,
        /// A certificate file (PEM) of the box's CA for the device, issued before the box
        /// recorded issuance.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// Why: unspecified, key-compromise, superseded or cessation-of-operation.
        #[arg(long, value_enum, default_value = "unspecified")]
        reason: Reason,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
    /// The SCEP enrolments held for approval (`scep.approval = "operator"`): device, site,
    /// model, where the request came from, when, its key, and what became of it.
    Pending {
        /// Only the devices of this site.
        #[arg(long)]
        site: Option<String>,
    },
    /// Approve held SCEP enrolments: the device's certificate is issued now, for the key its
    /// request holds, and the phone gets it at its next poll. Administrators only: the
    /// certificate proves the device to whoever sent the request.
    #[command(
        after_help = "Check the source address and key `pki pending` shows before approving: the challenge alone let the request through. --key names the key you checked: should another request have taken its place meanwhile, nothing is approved. --site names no keys: it approves whatever the site's devices sent, trusting the site's LAN, and prints what it approved.\n\nExamples:\n  edgeprov pki approve --mac 001122aabbcc --key 3f2a9c0d41e8b7a6\n  edgeprov pki approve --site hq"
    )]
    Approve {
        /// One device's request.
        #[arg(
            long,
            required_unless_present = "site",
            conflicts_with = "site",
            requires = "key"
        )]
        mac: Option<String>,
        /// With --mac: the SHA-256 of the request's key as `pki pending` shows it (its first
        /// 16 hex digits, or all 64).
        #[arg(long, value_name = "SHA256", requires = "mac")]
        key: Option<String>,
        /// Every request waiting from the site's devices.
        #[arg(long)]
        site: Option<String>,
    },
    /// Reject a device's held SCEP enrolment: its polls are answered FAILURE, and the phone
    /// may send a new request.
    Reject {
        /// The device's MAC address.
        #[arg(long)]
        mac: String,
    },
}

/// `--reason`, in the CLI's spelling of [`RevocationReason`].
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    Superseded,
    CessationOfOperation,
}

impl From<Reason> for RevocationReason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

pub async fn run(cmd: PkiCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        PkiCmd::IssueDevice {
            mac,
            out: dir,
            days,
            pkcs12,
            legacy,
            password_file,
        } => {
            let mac = super::mac_arg(&mac)?;
            // Before anything is issued: a certificate recorded for a file never written
            // would be one more to revoke.
            let pkcs12 = match pkcs12 {
                true => Some(new_password(
                    password_file.as_deref(),
                    &format!("{mac}.p12"),
                )?),
                false => None,
            };
            let value = api
                .post(
                    &format!("/devices/{mac}/certificate"),
                    &json!({ "days": days }),
                )
                .await?;
            let id: DeviceIdentity = serde_json::from_value(value)?;
            let key_file = match &pkcs12 {
                Some(password) => {
                    let form = match legacy {
                        true => Pkcs12Form::Legacy,
                        false => Pkcs12Form::Modern,
                    };
                    let p12 = id.to_pkcs12(&mac.to_string(), password, form)?;
                    (dir.join(format!("{mac}.p12")), p12, 0o600)
                }
                None => (
                    dir.join(format!("{mac}.key")),
                    id.private_key.into_bytes(),
                    0o600,
                ),
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let files = [
                (
                    dir.join(format!("{mac}.crt")),
                    id.certificate.into_bytes(),
                    0o644,
                ),
                key_file,
                (dir.join("ca.crt"), id.ca_certificate.into_bytes(), 0o644),
            ];
            for (path, bytes, mode) in &files {
                crate::fsutil::write_atomic(path, bytes, *mode)
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
        PkiCmd::List { mac } => {
            let mac = super::mac_arg(&mac)?;
            let value = api.get(&format!("/devices/{mac}/certificates")).await?;
            print_certs(value, out)
        }
        PkiCmd::Revoke {
            mac,
            serial,
            all,
            cert,
            reason,
            confirm,
        } => {
            let mac = super::mac_arg(&mac)?;
            let mut body = json!({ "reason": RevocationReason::from(reason) });
            match (serial, cert) {
                (Some(serial), _) => body["serial"] = json!(serial),
                (None, Some(path)) => {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    body["pem"] = json!(pem);
                }
                (None, None) if all => body["all"] = json!(true),
                (None, None) => anyhow::bail!("give --serial SERIAL, --all or --cert FILE"),
            }
            let which = match (&body["serial"], all) {
                (Value::String(serial), _) => format!("certificate {serial}"),
                (_, true) => "every certificate".to_string(),
                _ => "the certificate in the file".to_string(),
            };
            confirm.ask(&format!(
                "revoke {which} of device {mac}: a phone presenting it is refused from now on"
            ))?;
            let value = api
                .post(&format!("/devices/{mac}/certificates/revoke"), &body)
                .await?;
            print_certs(value, out)
        }
        PkiCmd::Pending { site } => {
            let query = site
                .map(|s| format!("?site={}", super::client::encode(&s)))
                .unwrap_or_default();
            let value = api.get(&format!("/scep/pending{query}")).await?;
            print_pending(value, out)
        }
        PkiCmd::Approve { mac, key, site } => {
            let value = match (mac, key, site) {
                (Some(mac), Some(key), _) => {
                    let mac = super::mac_arg(&mac)?;
                    let value = api
                        .post(
                            &format!("/scep/pending/{mac}/approve"),
                            &json!({ "key_sha256": key }),
                        )
                        .await?;
                    if out.json {
                        return out.print_json(&value);
                    }
                    Value::Array(vec![value])
                }
                (None, _, Some(site)) => {
                    let value = api
                        .post("/scep/pending/approve", &json!({ "site": site }))
                        .await?;
                    if out.json {
                        return out.print_json(&value);
                    }
                    let result: SiteApproval = serde_json::from_value(value)?;
                    for f in &result.failed {
                        eprintln!("{}: not approved: {}", f.mac, f.error);
                    }
                    serde_json::to_value(result.approved)?
                }
                _ => anyhow::bail!("give --mac MAC --key SHA256, or --site SITE"),
            };
            print_pending(value, out)
        }
        PkiCmd::Reject { mac } => {
            let mac = super::mac_arg(&mac)?;
            let value = api
                .post(&format!("/scep/pending/{mac}/reject"), &json!({}))
                .await?;
            if out.json {
                return out.print_json(&value);
            }
            print_pending(Value::Array(vec![value]), out)
        }
    }
}

/// The held requests as a table, each key's SHA-256 cut to the digits `pki approve --key`
/// needs (in full with --json).
fn print_pending(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let held: Vec<PendingView> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = held
        .iter()
        .map(|p| {
            vec![
                p.mac.to_string(),
                p.site.clone(),
                p.model.clone(),
                p.source.clone(),
                time_text(p.requested_at),
                p.key.clone(),
                p.key_sha256.chars().take(KEY_DIGITS_NAMED).collect(),
                match (&p.decided_by, &p.serial) {
                    (Some(by), Some(serial)) => format!("{} by {by} ({serial})", p.status),
                    (Some(by), None) => format!("{} by {by}", p.status),
                    _ => p.status.clone(),
                },
            ]
        })
        .collect();
    table::print(
        &[
            "MAC",
            "SITE",
            "MODEL",
            "SOURCE",
            "REQUESTED",
            "KEY",
            "KEY SHA256",
            "STATUS",
        ],
        &rows,
    );
    Ok(())
}

fn print_certs(value: serde_json::Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let certs: Vec<IssuedCert> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            vec![
                c.serial.clone(),
                c.issued_at.map(time_text).unwrap_or_else(|| "-".into()),
                c.not_after.map(time_text).unwrap_or_else(|| "-".into()),
                match &c.revoked {
                    Some(r) => format!("{} ({})", time_text(r.at), r.reason),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    table::print(&["SERIAL", "ISSUED", "EXPIRES", "REVOKED"], &rows);
    Ok(())
}
