//! `edgeprov param show|set|unset`: parameters of a layer (global, site:NAME, group:NAME,
//! model:NAME); device parameters are set with `edgeprov device add|set`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, encode};
use super::secret_values::secret_values;
use super::{Output, UsageError, table};
use crate::admin::LayerView;

#[derive(Debug, Subcommand)]
pub enum ParamCmd {
    /// Show a layer's parameters.
    Show {
        /// global, site:NAME, group:NAME or model:NAME.
        #[arg(long, default_value = "global")]
        layer: String,
    },
    /// Set parameters of a layer: NAME=VALUE…, secrets with --secret NAME.
    #[command(
        after_help = "Examples:\n  edgeprov param set --layer global sip.server=pbx.example.com sip.transport=tls\n  edgeprov param set --layer site:hq --secret admin.password   # asked for, not echoed\n  edgeprov param set --layer site:hq --secret admin.password < pin.txt   # its first line"
    )]
    Set {
        /// global, site:NAME, group:NAME or model:NAME.
        #[arg(long, default_value = "global")]
        layer: String,
        #[arg(value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A secret parameter, only ever put into per-device files (repeatable). Give NAME
        /// alone to keep the value off the command line (and out of `ps` and the shell's
        /// history): it is asked on a terminal without echo, else read from standard input, one
        /// line for each such --secret in order. NAME=VALUE works too, value in plain sight.
        #[arg(long = "secret", value_name = "NAME[=VALUE]")]
        secrets: Vec<String>,
    },
    /// Remove parameters (plain or secret) from a layer. A name the layer does not hold is
    /// named in a warning; when it holds none of them, the command fails (exit 1).
    Unset {
        /// global, site:NAME, group:NAME or model:NAME.
        #[arg(long, default_value = "global")]
        layer: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn pairs(items: &[String]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(UsageError(format!("{item:?}: expected NAME=VALUE")).into());
        };
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

pub async fn run(cmd: ParamCmd, api: &ApiClient, out: Output) -> Result<()> {
    let view = match cmd {
        ParamCmd::Show { layer } => api.get(&format!("/params/{}", encode(&layer))).await?,
        ParamCmd::Set {
            layer,
            params,
            secrets,
        } => {
            if params.is_empty() && secrets.is_empty() {
                return Err(UsageError(
                    "nothing to set: give NAME=VALUE or --secret NAME=VALUE".into(),
                )
                .into());
            }
            let params = pairs(&params)?;
            let secrets = secret_values("--secret", &secrets, &format!("layer {layer}"))?;
            let body = json!({"params": params, "secrets": secrets});
            api.patch(&format!("/params/{}", encode(&layer)), &body)
                .await?
        }
        ParamCmd::Unset { layer, names } => {
            let none: BTreeMap<&String, Value> = names.iter().map(|n| (n, Value::Null)).collect();
            let view = api
                .patch(
                    &format!("/params/{}", encode(&layer)),
                    &json!({"params": none, "secrets": none}),
                )
                .await?;
            let show = format!("edgeprov param show --layer {layer}");
            not_set(&view, &format!("layer {layer}"), &show, none.len(), false)?;
            view
        }
    };
    if out.json {
        return out.print_json(&view);
    }
    let view: LayerView = serde_json::from_value(view)?;
    let mut rows: Vec<Vec<String>> = view.params.into_iter().map(|(k, v)| vec![k, v]).collect();
    rows.extend(view.secrets.into_iter().map(|k| vec![k, "(secret)".into()]));
    println!("layer {}", view.layer);
    table::print(&["NAME", "VALUE"], &rows);
    Ok(())
}

/// Says which names a removal found missing in `place` ("layer global", "device 0011…"): the
/// API's `not_set`. A warning on standard error when something else was done (another of the
/// `asked` names removed, or `others`: a change besides removals), else a failure naming them
/// and `show`, the command that lists what `place` holds; so a misspelt name or the wrong layer
/// is never reported as done.
pub(super) fn not_set(
    view: &Value,
    place: &str,
    show: &str,
    asked: usize,
    others: bool,
) -> Result<()> {
    let missing: Vec<&str> = view
        .get("not_set")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if missing.is_empty() {
        return Ok(());
    }
    let names = missing.join(", ");
    if missing.len() >= asked && !others {
        anyhow::bail!(
            "nothing removed: not set in {place}: {names} (names are exact: `{show}` lists \
             what it holds)"
        );
    }
    eprintln!("warning: not set in {place}, so not removed: {names}");
    Ok(())
}
