//! `edgeprov site list|show|create|set|delete` and `edgeprov group list`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::client::{ApiClient, encode};
use super::{Output, table};
use crate::admin::{GroupView, SiteView};

#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    /// Sites with their device counts.
    List,
    /// One site.
    Show { name: String },
    /// Create a site.
    Create {
        name: String,
        /// Free text shown in listings.
        #[arg(long, default_value = "")]
        label: String,
        /// Let every device of the site prove itself with its HTTP credentials.
        #[arg(long)]
        allow_http_auth: bool,
    },
    /// Change a site's label or HTTP-credential policy.
    Set {
        name: String,
        /// The new label.
        #[arg(long)]
        label: Option<String>,
        /// Whether every device of the site may prove itself with its HTTP credentials.
        #[arg(long)]
        allow_http_auth: Option<bool>,
    },
    /// Delete a site that has no devices (with its parameters, static files and firmware
    /// policies, and taken from every token that holds it; asks first, --yes does not).
    Delete {
        name: String,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Groups in use, with their device counts.
    List {
        /// Only this site's devices are counted (groups without any there are left out).
        #[arg(long)]
        site: Option<String>,
    },
}

fn print_sites(sites: Vec<SiteView>) {
    let rows: Vec<Vec<String>> = sites
        .into_iter()
        .map(|s| {
            vec![
                s.site.name,
                s.site.label,
                s.devices.to_string(),
                if s.site.allow_http_auth { "yes" } else { "no" }.into(),
                if s.site.profile.is_some() {
                    "cloud"
                } else if s.created {
                    "local"
                } else {
                    "devices only"
                }
                .into(),
            ]
        })
        .collect();
    table::print(&["SITE", "LABEL", "DEVICES", "HTTP AUTH", "ORIGIN"], &rows);
}

pub async fn run(cmd: SiteCmd, api: &ApiClient, out: Output) -> Result<()> {
    let value = match cmd {
        SiteCmd::List => api.get("/sites").await?,
        SiteCmd::Show { name } => api.get(&format!("/sites/{}", encode(&name))).await?,
        SiteCmd::Create {
            name,
            label,
            allow_http_auth,
        } => {
            let body = json!({"name": name, "label": label, "allow_http_auth": allow_http_auth});
            api.post("/sites", &body).await?;
            api.get(&format!("/sites/{}", encode(&name))).await?
        }
        SiteCmd::Set {
            name,
            label,
            allow_http_auth,
        } => {
            let mut body = Map::new();
            if let Some(l) = label {
                body.insert("label".into(), l.into());
            }
            if let Some(a) = allow_http_auth {
                body.insert("allow_http_auth".into(), a.into());
            }
            if body.is_empty() {
                return Err(super::UsageError(
                    "nothing to change: give --label or --allow-http-auth".into(),
                )
                .into());
            }
            api.patch(&format!("/sites/{}", encode(&name)), &Value::Object(body))
                .await?;
            api.get(&format!("/sites/{}", encode(&name))).await?
        }
        SiteCmd::Delete { name, confirm } => {
            confirm.ask(&format!(
                "delete site {name} with its parameters, static files and firmware policies, \
                 and take it from every token that holds it"
            ))?;
            api.delete(&format!("/sites/{}", encode(&name))).await?;
            if out.json {
                return out.print_json(&serde_json::json!({ "deleted": name }));
            }
            println!("site {name} deleted");
            return Ok(());
        }
    };
    if out.json {
        return out.print_json(&value);
    }
    match value {
        Value::Array(_) => print_sites(serde_json::from_value(value)?),
        one => print_sites(vec![serde_json::from_value(one)?]),
    }
    Ok(())
}

pub async fn groups(cmd: GroupCmd, api: &ApiClient, out: Output) -> Result<()> {
    let GroupCmd::List { site } = cmd;
    let path = match site {
        Some(s) => format!("/groups?site={}", encode(&s)),
        None => "/groups".into(),
    };
    let value = api.get(&path).await?;
    if out.json {
        return out.print_json(&value);
    }
    let groups: Vec<GroupView> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|g| vec![g.name, g.devices.to_string()])
        .collect();
    table::print(&["GROUP", "DEVICES"], &rows);
    Ok(())
}
