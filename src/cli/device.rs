//! `edgeprov device add|list|show|remove`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::ApiClient;
use super::{Output, table};
use crate::admin::DeviceView;
use crate::model::Mac;

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Add a device to the inventory.
    Add {
        #[arg(long)]
        mac: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// A parameter, NAME=VALUE (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A secret parameter only the device itself may read, NAME=VALUE (repeatable).
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
    },
    /// List the inventory.
    List,
    /// Show one device.
    Show { mac: String },
    /// Remove a device.
    Remove { mac: String },
}

fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--{flag} {item:?}: expected NAME=VALUE");
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn mac(text: &str) -> Result<Mac> {
    Ok(Mac::parse(text)?)
}

pub async fn run(cmd: DeviceCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        DeviceCmd::Add {
            mac: m,
            model,
            serial,
            site,
            group,
            label,
            params,
            secrets,
        } => {
            let body = json!({
                "mac": mac(&m)?,
                "model": model.unwrap_or_default(),
                "serial": serial.unwrap_or_default(),
                "site": site.unwrap_or_default(),
                "group": group.unwrap_or_default(),
                "label": label.unwrap_or_default(),
                "params": pairs("param", &params)?,
                "secrets": pairs("secret", &secrets)?,
            });
            let created = api.post("/devices", &body).await?;
            show(created, out)
        }
        DeviceCmd::List => {
            let list = api.get("/devices").await?;
            if out.json {
                return out.print_json(&list);
            }
            let devices: Vec<DeviceView> = serde_json::from_value(list)?;
            let rows: Vec<Vec<String>> = devices
                .into_iter()
                .map(|d| {
                    vec![
                        d.mac.to_string(),
                        d.model,
                        d.site,
                        d.group,
                        format!("{:?}", d.state).to_lowercase(),
                        d.checkin
                            .map(|c| super::time_text(c.last_seen))
                            .unwrap_or_else(|| "never".into()),
                        d.label,
                    ]
                })
                .collect();
            table::print(
                &[
                    "MAC",
                    "MODEL",
                    "SITE",
                    "GROUP",
                    "STATE",
                    "LAST SEEN",
                    "LABEL",
                ],
                &rows,
            );
            Ok(())
        }
        DeviceCmd::Show { mac: m } => {
            let d = api.get(&format!("/devices/{}", mac(&m)?)).await?;
            show(d, out)
        }
        DeviceCmd::Remove { mac: m } => {
            let m = mac(&m)?;
            api.delete(&format!("/devices/{m}")).await?;
            if out.json {
                return out.print_json(&json!({ "removed": m }));
            }
            println!("removed {m}");
            Ok(())
        }
    }
}

fn show(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let d: DeviceView = serde_json::from_value(value)?;
    let mut rows = vec![
        vec!["mac".into(), d.mac.to_string()],
        vec!["model".into(), d.model],
        vec!["serial".into(), d.serial],
        vec!["site".into(), d.site],
        vec!["group".into(), d.group],
        vec!["label".into(), d.label],
        vec!["state".into(), format!("{:?}", d.state).to_lowercase()],
    ];
    for (k, v) in d.params {
        rows.push(vec![format!("param {k}"), v]);
    }
    for k in d.secrets {
        rows.push(vec![format!("secret {k}"), "(set)".into()]);
    }
    if let Some(c) = d.checkin {
        rows.push(vec!["last seen".into(), super::time_text(c.last_seen)]);
        rows.push(vec!["peer".into(), c.peer_ip]);
        rows.push(vec!["firmware".into(), c.firmware]);
        rows.push(vec!["user agent".into(), c.user_agent]);
    }
    table::print(&["FIELD", "VALUE"], &rows);
    Ok(())
}
