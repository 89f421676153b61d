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
        #[command(flatten)]
        page: super::page::PageArgs,
    },
    /// Print option definitions for an external DHCP server.
    ///
    /// The URL is dhcp.provisioning_url, else https://<first pki.server_names>:<port of the
    /// first phone.https_listen>/. No daemon is needed, except when that port is 0 (chosen at
    /// start-up): then the running daemon's port is used.
    ///
    /// Example: edgeprov dhcp options --format kea >> /etc/kea/edgeprov-options.json
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
    let DhcpCmd::Leases {
        mac,
        ip,
        state,
        page,
    } = cmd
    else {
        bail!("not a leases command");
    };
    let mut query = page.query();
    query.extend(
        [("mac", mac), ("ip", ip), ("state", state)]
            .into_iter()
            .filter_map(|(k, v)| {
                v.map(|v| {
                    format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
            }),
    );
    let (value, total) = api
        .get_page(&format!("/dhcp/leases?{}", query.join("&")))
        .await?;
    if out.json {
        return page.print_json(out, &value, total);
    }
    let leases: Vec<LeaseView> = serde_json::from_value(value)?;
    let shown = leases.len();
    let rows: Vec<Vec<String>> = leases
        .into_iter()
        .map(|l| {
            vec![
                l.ip.to_string(),
                l.mac.colon_form(),
                l.state.as_str().to_string(),
                super::time_text(l.expires),
                table::clip(l.hostname),
                l.vendor_class,
            ]
        })
        .collect();
    table::print(
        &["IP", "MAC", "STATE", "EXPIRES", "HOST", "VENDOR CLASS"],
        &rows,
    );
    page.say_footer(shown, total);
    Ok(())
}

/// The bound HTTPS address to build the URL from, when the configured port is 0: the kernel
/// chose it when the daemon started, so only the running daemon knows it, and a DHCP server
/// told port 0 sends phones nowhere.
fn https_port(config: &Config) -> Result<Option<std::net::SocketAddr>> {
    let configured = config.phone.https_listen.first();
    if !config.dhcp.provisioning_url.is_empty() || configured.is_none_or(|a| a.port() != 0) {
        return Ok(None);
    }
    match super::running::listeners(config).and_then(|l| l.phone_https.first().copied()) {
        Some(bound) => Ok(Some(bound)),
        None => bail!(
            "phone.https_listen has port 0, so the port is not fixed: the kernel chooses it \
             when the daemon starts, and the daemon of {} is not running. Set a fixed port \
             (phone.https_listen) or dhcp.provisioning_url, or start the daemon and run this \
             again",
            config.data_dir.display()
        ),
    }
}

pub fn options(cmd: DhcpCmd, config: &Config, out: Output) -> Result<()> {
    let DhcpCmd::Options { format } = cmd else {
        bail!("not an options command");
    };
    let url = crate::dhcp::provisioning_url_bound(config, https_port(config)?)
        .map_err(anyhow::Error::msg)?;
    let formats: Vec<&str> = match format.as_deref() {
        Some(f) => vec![f],
        None => external::FORMATS.to_vec(),
    };
    let mut texts = serde_json::Map::new();
    for (i, f) in formats.iter().enumerate() {
        let Some(text) = external::render(f, &url, config.dhcp.sson_option, config.dhcp.url_option)
        else {
            return Err(super::UsageError(format!(
                "--format {f:?}: expected one of {}",
                external::FORMATS.join(", ")
            ))
            .into());
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
