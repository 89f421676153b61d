//! `edgeprov device set MAC …`: changes a device that exists (`PATCH /devices/{mac}`), field by
//! field; what it does not name is kept. `device add` only creates, so without this the CLI
//! could not change a device after it was added, nor set a secret a moved inventory lacked.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value, json};

use super::client::ApiClient;
use super::secret_values::secret_value;
use super::{Output, UsageError};
use crate::model::DeviceState;

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The device's MAC address, any spelling (001122aabbcc, 00:11:22:AA:BB:CC, …).
    pub mac: String,
    /// The phone model (J179, T54W, …); selects the model parameter layer.
    #[arg(long)]
    pub model: Option<String>,
    /// The serial number, for the inventory.
    #[arg(long)]
    pub serial: Option<String>,
    /// The site the device belongs to (an existing one); selects the site:NAME layer.
    #[arg(long)]
    pub site: Option<String>,
    /// The device's group; selects the group:NAME parameter layer.
    #[arg(long)]
    pub group: Option<String>,
    /// Free text shown in listings (desk, user).
    #[arg(long)]
    pub label: Option<String>,
    /// active or inactive; a device the cloud's lifecycle holds may also be set to another
    /// of its states (imported, claimed, associated, activated, deactivated, released).
    #[arg(long)]
    pub state: Option<String>,
    /// A parameter to set, NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A parameter or secret to remove, by name (repeatable).
    #[arg(long = "unset", value_name = "NAME")]
    pub unset: Vec<String>,
    /// A secret parameter to set, by name alone (repeatable): its value is asked on a terminal
    /// without echo, else read from standard input, one line for each --secret in order, and
    /// never taken from the command line, where `ps` and the shell's history would show it.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
}

impl SetArgs {
    /// Whether anything besides `--unset` is asked: then names it did not find only warn.
    fn sets_something(&self) -> bool {
        [
            &self.model,
            &self.serial,
            &self.site,
            &self.group,
            &self.label,
            &self.state,
        ]
        .iter()
        .any(|f| f.is_some())
            || !self.params.is_empty()
            || !self.secrets.is_empty()
    }
}

/// The `PATCH` body of `args`: the fields given, `params` set and removed, `secrets` set (their
/// values read as [`secret_value`] reads them) and removed. A name given to `--unset` is
/// removed from both the parameters and the secrets, as `param unset` removes it from a layer.
fn patch_body(args: &SetArgs, mac: crate::model::Mac) -> Result<Value> {
    let mut body = Map::new();
    for (field, value) in [
        ("model", &args.model),
        ("serial", &args.serial),
        ("site", &args.site),
        ("group", &args.group),
        ("label", &args.label),
    ] {
        if let Some(v) = value {
            body.insert(field.into(), v.clone().into());
        }
    }
    if let Some(state) = &args.state {
        let Some(state) = DeviceState::parse(state) else {
            return Err(UsageError(format!(
                "--state {state:?}: not a device state ({})",
                DeviceState::ALL.map(DeviceState::as_str).join(", ")
            ))
            .into());
        };
        body.insert("state".into(), state.as_str().into());
    }
    let mut params: BTreeMap<String, Value> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Value> = BTreeMap::new();
    for name in &args.unset {
        if name.is_empty() || name.contains('=') {
            return Err(UsageError(format!("--unset {name:?}: expected a NAME")).into());
        }
        params.insert(name.clone(), Value::Null);
        secrets.insert(name.clone(), Value::Null);
    }
    for item in &args.params {
        let Some((name, value)) = item.split_once('=') else {
            return Err(UsageError(format!("--param {item:?}: expected NAME=VALUE")).into());
        };
        if args.unset.iter().any(|n| n == name) {
            return Err(UsageError(format!("{name}: given to both --param and --unset")).into());
        }
        params.insert(name.to_string(), value.into());
    }
    // Every argument is checked before the first value is asked for: a typo must not cost
    // the operator typing a password for nothing.
    for name in &args.secrets {
        if name.is_empty() || name.contains('=') {
            // Only what comes before `=`: the rest is the value, which must not reach the
            // terminal's scrollback or a CI log a second time.
            let given = match name.split_once('=') {
                Some((name, _)) => format!("{name:?}=…"),
                None => format!("{name:?}"),
            };
            return Err(UsageError(format!(
                "--secret {given}: give the NAME alone; device set reads the value on the \
                 terminal or standard input, never from the command line"
            ))
            .into());
        }
        if args.unset.iter().any(|n| n == name) {
            return Err(UsageError(format!("{name}: given to both --secret and --unset")).into());
        }
    }
    if !args.sets_something() && args.unset.is_empty() {
        return Err(UsageError(
            "nothing to change: give --model, --serial, --site, --group, --label, --state, \
             --param NAME=VALUE, --unset NAME or --secret NAME"
                .into(),
        )
        .into());
    }
    for name in &args.secrets {
        let value = secret_value("--secret", name, &format!("device {mac}"))?;
        secrets.insert(name.clone(), value.into());
    }
    if !params.is_empty() {
        body.insert("params".into(), json!(params));
    }
    if !secrets.is_empty() {
        body.insert("secrets".into(), json!(secrets));
    }
    Ok(Value::Object(body))
}

pub async fn run(args: SetArgs, api: &ApiClient, out: Output) -> Result<()> {
    let mac = super::mac_arg(&args.mac)?;
    let body = patch_body(&args, mac)?;
    let changed = api.patch(&format!("/devices/{mac}"), &body).await?;
    let unset: std::collections::BTreeSet<&String> = args.unset.iter().collect();
    super::param::not_set(
        &changed,
        &format!("device {mac}"),
        &format!("edgeprov device show {mac}"),
        unset.len(),
        args.sets_something(),
    )?;
    super::device::show(changed, out)
}
