//! The device filters shared by `device list` and `job create`: the API's query and selection
//! fields under the CLI's names (`--search` is `q`, `--seen-before` is `seen_before`).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Devices of this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Devices of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Devices of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Devices in this state (active, inactive, or a cloud lifecycle state).
    #[arg(long, value_parser = device_state)]
    pub state: Option<String>,
    /// Devices where any field contains this text.
    #[arg(long)]
    pub search: Option<String>,
    /// Devices last seen before this time (never seen: always): RFC 3339, Unix seconds, or
    /// -DURATION before now (-7d, -12h).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub seen_before: Option<String>,
    /// Devices last seen after this time (never seen: never), as --seen-before takes it.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub seen_after: Option<String>,
}

/// A `--state` the API would refuse, refused by the CLI so that the message names the option
/// (the API's names the field, `selection.state`) and lists the states.
fn device_state(text: &str) -> Result<String, String> {
    use crate::model::DeviceState;
    match DeviceState::parse(text) {
        Some(_) => Ok(text.to_string()),
        None => Err(format!(
            "not a device state ({})",
            DeviceState::ALL.map(DeviceState::as_str).join(", ")
        )),
    }
}

/// The CLI's filter options, as a refusal that asks for one lists them.
pub const OPTIONS: &str =
    "--site, --group, --model, --state, --search, --seen-before, --seen-after";

impl FilterArgs {
    /// The given filters as API field names and values, the times as Unix seconds (a time
    /// that does not parse is a usage error naming its option), relative ones from `now`.
    pub fn fields(&self, now: i64) -> Result<Vec<(&'static str, Value)>> {
        let mut fields: Vec<(&'static str, Value)> = [
            ("site", &self.site),
            ("group", &self.group),
            ("model", &self.model),
            ("state", &self.state),
            ("q", &self.search),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, Value::from(v.as_deref()?))))
        .collect();
        for (field, flag, text) in [
            ("seen_before", "--seen-before", &self.seen_before),
            ("seen_after", "--seen-after", &self.seen_after),
        ] {
            if let Some(text) = text {
                fields.push((field, super::when::parse_time(flag, text, now)?.into()));
            }
        }
        Ok(fields)
    }

    /// The filters as query string fields (`site=hq`, `q=desk`), values percent-encoded.
    pub fn query(&self, now: i64) -> Result<Vec<String>> {
        Ok(self
            .fields(now)?
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let v =
                    percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC);
                format!("{k}={v}")
            })
            .collect())
    }
}
