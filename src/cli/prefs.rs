//! `edgeprov prefs show|set`: the log level (applied at once) and retention.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Map, Value};

use super::client::ApiClient;
use super::{Output, table};
use crate::model::Preferences;

#[derive(Debug, Subcommand)]
pub enum PrefsCmd {
    /// Show the log level and the retention periods.
    Show,
    /// Change the log level (at once) or a retention period.
    Set {
        /// A tracing filter (`debug`, `info,edgeprov::phone=trace`); `config` returns to the
        /// configuration file's level.
        #[arg(long)]
        log_level: Option<String>,
        /// Days a device's check-in history is kept.
        #[arg(long)]
        checkin_retention_days: Option<u32>,
        /// Days the audit log (and ended jobs) are kept.
        #[arg(long)]
        audit_retention_days: Option<u32>,
    },
}

pub async fn run(cmd: PrefsCmd, api: &ApiClient, out: Output) -> Result<()> {
    let value = match cmd {
        PrefsCmd::Show => api.get("/preferences").await?,
        PrefsCmd::Set {
            log_level,
            checkin_retention_days,
            audit_retention_days,
        } => {
            let mut body = Map::new();
            if let Some(level) = log_level {
                let level = if level == "config" {
                    Value::Null
                } else {
                    level.into()
                };
                body.insert("log_level".into(), level);
            }
            if let Some(d) = checkin_retention_days {
                body.insert("checkin_retention_days".into(), d.into());
            }
            if let Some(d) = audit_retention_days {
                body.insert("audit_retention_days".into(), d.into());
            }
            if body.is_empty() {
                return Err(super::UsageError(
                    "nothing to change: give --log-level, --checkin-retention-days or \
                     --audit-retention-days"
                        .into(),
                )
                .into());
            }
            api.patch("/preferences", &Value::Object(body)).await?
        }
    };
    if out.json {
        return out.print_json(&value);
    }
    let p: Preferences = serde_json::from_value(value)?;
    table::print(
        &["SETTING", "VALUE"],
        &[
            vec![
                "log_level".into(),
                p.log_level.unwrap_or_else(|| "(configuration)".into()),
            ],
            vec![
                "checkin_retention_days".into(),
                p.checkin_retention_days.to_string(),
            ],
            vec![
                "audit_retention_days".into(),
                p.audit_retention_days.to_string(),
            ],
        ],
    );
    Ok(())
}
