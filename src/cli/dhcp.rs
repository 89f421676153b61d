//! `edgeprov dhcp leases|options`.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::client::ApiClient;
use super::{Output, table};
use crate::admin::LeaseView;
use crate::config::Config;
use crate::dhcp::external;

#[derive(Debug, Subcommand)]
pub enum DhcpCmd {
    /// List leases (stored: acknowledged, released and declined).
    Leases {
        /// Only this device's leases.
        #[arg(long)]
        mac: Option<String>,
        /// Only the lease of this address.
        #[arg(long)]
        ip: Option<String>,
        /// offered, bound, released, declined or expired.
        #[arg(long)]
        state: Option<String>,
    },
    /// Print option definitions for an external DHCP server (no daemon needed).
    Options {
        /// isc, kea, dnsmasq or netsh; all of them when not given.
        #[arg(long)]
        format: Option<String>,
    },
}

impl DhcpCmd {
    /// Whether the command talks to the daemon.
    pub fn needs_api(&self) -> bool {
        matches!(self, DhcpCmd::Leases { .. })
    }
}

pub async fn leases(cmd: DhcpCmd, api: &ApiClient, out: Output) -> Result<()> {
    let DhcpCmd::Leases { mac, ip, state } = cmd else {
        bail!("not a leases command");
    };
    let query: Vec<String> = [("mac", mac), ("ip", ip), ("state", state)]
        .into_iter()
        .filter_map(|(k, v)| {
            v.map(|v| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
        })
        .collect();
    let path = if query.is_empty() {
        "/dhcp/leases".to_string()
    } else {
        format!("/dhcp/leases?{}", query.join("&"))
    };
    let value = api.get(&path).await?;
    if out.json {
        return out.print_json(&value);
    }
    let leases: Vec<LeaseView> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = leases
        .into_iter()
        .map(|l| {
            vec![
                l.ip.to_string(),
                l.mac.colon_form(),
                l.state.as_str().to_string(),
                super::time_text(l.expires),
                l.hostname,
                l.vendor_class,
            ]
        })
        .collect();
    table::print(
        &["IP", "MAC", "STATE", "EXPIRES", "HOST", "VENDOR CLASS"],
        &rows,
    );
    Ok(())
}

pub fn options(cmd: DhcpCmd, config: &Config, out: Output) -> Result<()> {
    let DhcpCmd::Options { format } = cmd else {
        bail!("not an options command");
    };
    let url = crate::dhcp::provisioning_url(config).map_err(anyhow::Error::msg)?;
    let formats: Vec<&str> = match format.as_deref() {
        Some(f) => vec![f],
        None => external::FORMATS.to_vec(),
    };
    let mut texts = serde_json::Map::new();
    for (i, f) in formats.iter().enumerate() {
        let Some(text) = external::render(f, &url, config.dhcp.sson_option, config.dhcp.url_option)
        else {
            bail!(
                "--format {f:?}: expected one of {}",
                external::FORMATS.join(", ")
            );
        };
        if out.json {
            texts.insert(f.to_string(), text.into());
            continue;
        }
        if i > 0 {
            println!();
        }
        print!("{text}");
    }
    if out.json {
        out.print_json(&texts.into())?;
    }
    Ok(())
}
