//! `edgeprov cert …`: the box's own certificates — show them with expiry, regenerate the server
//! certificate, install a server identity (PEM or PKCS#12), add or remove trusted device roots.
//! Changes apply to the running daemon at once. (Device certificates: `edgeprov pki`.)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, ApiRefusal, encode};
use super::{Output, table, time_text};
use crate::pki::{CertInfo, CertOverview, RootInfo, ServerSource};

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// The CA, the server certificate phones get, the admin certificate and the trusted device
    /// roots, with expiry.
    Show,
    /// Issue a new server certificate from the CA; drops an installed identity (asks first
    /// when one is installed: its key is not kept; --yes does not).
    Regenerate {
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
    /// Install the server identity phones get, from PEM (chain and key) or PKCS#12.
    Install {
        /// A PEM file with the certificate chain and its (unencrypted) private key.
        #[arg(long, value_name = "FILE", required_unless_present = "pkcs12")]
        pem: Option<PathBuf>,
        /// A PKCS#12 (.p12/.pfx) file.
        #[arg(long, value_name = "FILE", conflicts_with = "pem")]
        pkcs12: Option<PathBuf>,
        /// A file whose first line is the PKCS#12 password (none: an empty password).
        #[arg(long, value_name = "FILE", requires = "pkcs12")]
        password_file: Option<PathBuf>,
    },
    /// Trusted device roots besides the CA.
    #[command(subcommand)]
    Root(RootCmd),
}

#[derive(Debug, Subcommand)]
pub enum RootCmd {
    /// List the trusted device roots.
    List,
    /// Trust the CA certificates in a PEM file for phones' client certificates.
    Add { file: PathBuf },
    /// Stop trusting a root added with `cert root add`, by SHA-256 fingerprint (asks first;
    /// --yes does not).
    Remove {
        fingerprint: String,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn text(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).with_context(|| format!("{} is not text", path.display()))
}

pub async fn run(cmd: CertCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        CertCmd::Show => show(api.get("/certs").await?, out),
        CertCmd::Regenerate { confirm } => {
            // Only an installed identity is lost: its key came from outside and is not kept,
            // so going back to it needs the file it came from. A generated one is made anew.
            let now: CertOverview = serde_json::from_value(api.get("/certs").await?)?;
            if now.server.source == ServerSource::Installed {
                confirm.ask(&format!(
                    "drop the installed server identity (serial {}, issued by {}) and present \
                     a certificate from the box's CA instead",
                    now.server.cert.serial, now.server.cert.issuer
                ))?;
            }
            show(api.post("/certs/server/regenerate", &json!({})).await?, out)
        }
        CertCmd::Install {
            pem,
            pkcs12,
            password_file,
        } => {
            let file = pem.clone().or_else(|| pkcs12.clone());
            let body = match (pem, pkcs12) {
                (Some(pem), _) => json!({ "pem": text(&pem)? }),
                (None, Some(p12)) => {
                    let password = match password_file {
                        Some(f) => text(&f)?.lines().next().unwrap_or_default().to_string(),
                        None => String::new(),
                    };
                    json!({
                        "pkcs12": base64::engine::general_purpose::STANDARD.encode(read(&p12)?),
                        "password": password,
                    })
                }
                (None, None) => {
                    return Err(super::UsageError("give --pem FILE or --pkcs12 FILE".into()).into());
                }
            };
            let installed = api.put_json("/certs/server", &body).await;
            show(
                installed.map_err(|e| match &file {
                    Some(f) => ApiRefusal::naming_file(e, f),
                    None => e,
                })?,
                out,
            )
        }
        CertCmd::Root(RootCmd::List) => roots(api.get("/certs/roots").await?, out),
        CertCmd::Root(RootCmd::Add { file }) => {
            let added = api
                .post("/certs/roots", &json!({ "pem": text(&file)? }))
                .await
                .map_err(|e| ApiRefusal::naming_file(e, &file))?;
            roots(added, out)
        }
        CertCmd::Root(RootCmd::Remove {
            fingerprint,
            confirm,
        }) => {
            confirm.ask(&format!(
                "stop trusting device root {fingerprint}: phones with certificates from it are \
                 refused from now on"
            ))?;
            api.delete(&format!("/certs/roots/{}", encode(&fingerprint)))
                .await?;
            if out.json {
                return out.print_json(&json!({ "removed": fingerprint }));
            }
            println!("removed {fingerprint}");
            Ok(())
        }
    }
}

fn row(what: &str, from: &str, c: &CertInfo) -> Vec<String> {
    vec![
        what.to_string(),
        from.to_string(),
        c.subject.clone(),
        time_text(c.not_after),
        c.days_left.to_string(),
        c.sha256.clone(),
    ]
}

const HEADERS: [&str; 6] = [
    "CERTIFICATE",
    "FROM",
    "SUBJECT",
    "EXPIRES",
    "DAYS",
    "SHA-256",
];

fn root_row(r: &RootInfo) -> Vec<String> {
    let from = match &r.path {
        Some(p) => format!("config {p}"),
        None => "api".to_string(),
    };
    row("root", &from, &r.cert)
}

fn show(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let o: CertOverview = serde_json::from_value(value)?;
    let source = serde_json::to_value(o.server.source)?;
    let mut rows = vec![
        row("ca", "generated", &o.ca),
        row(
            "server",
            source.as_str().unwrap_or_default(),
            &o.server.cert,
        ),
        row("admin", "generated", &o.admin),
    ];
    rows.extend(o.roots.iter().map(root_row));
    table::print(&HEADERS, &rows);
    if !o.server.cert.names.is_empty() {
        println!("\nserver names: {}", o.server.cert.names.join(", "));
    }
    Ok(())
}

fn roots(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let list: Vec<RootInfo> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = list.iter().map(root_row).collect();
    table::print(&HEADERS, &rows);
    Ok(())
}
