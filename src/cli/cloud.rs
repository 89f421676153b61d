//! `edgeprov cloud register|status|sync`: the cloud enrollment link, through the admin API (the
//! daemon owns the keys and the store).

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::client::ApiClient;
use super::{Output, table};
use crate::sync::SyncStatus;

#[derive(Debug, Subcommand)]
pub enum CloudCmd {
    /// Register this box with the cloud using a one-time token from the installer's portal.
    Register {
        /// The cloud's base URL (https://...).
        #[arg(long)]
        url: String,
        /// The one-time registration token.
        #[arg(long)]
        token: String,
    },
    /// Last pull and push, lag, outbox depth, last error.
    Status,
    /// Pull and push now instead of at the next interval.
    Sync,
}

pub async fn run(cmd: CloudCmd, api: &ApiClient, out: Output) -> Result<()> {
    let value = match cmd {
        CloudCmd::Register { url, token } => {
            api.post("/sync/register", &json!({ "url": url, "token": token }))
                .await?
        }
        CloudCmd::Status => api.get("/sync").await?,
        CloudCmd::Sync => {
            // The daemon takes the request either way; a box that is not registered has no
            // cloud to pull from, and "sync requested" would leave the administrator waiting.
            let status: SyncStatus = serde_json::from_value(api.get("/sync").await?)?;
            if !status.registered {
                bail!(
                    "this box is not registered with a cloud, so there is nothing to sync: \
                     `edgeprov cloud register --url URL --token TOKEN` first"
                );
            }
            let answer = api.post("/sync/now", &json!({})).await?;
            if out.json {
                return out.print_json(&json!({ "requested": true, "answer": answer }));
            }
            println!("sync requested");
            return Ok(());
        }
    };
    if out.json {
        return out.print_json(&value);
    }
    let s: SyncStatus = serde_json::from_value(value)?;
    let when = |t: Option<i64>| t.map(super::time_text).unwrap_or_else(|| "never".into());
    let rows = vec![
        vec!["registered".into(), s.registered.to_string()],
        vec!["url".into(), s.url],
        vec!["site".into(), s.site],
        vec!["last pull".into(), when(s.last_pull)],
        vec!["last push".into(), when(s.last_push)],
        vec!["lag".into(), format!("{}s", s.lag_secs)],
        vec!["outbox".into(), s.outbox.events.to_string()],
        vec!["failing since".into(), when(s.failing_since)],
        vec!["last error".into(), s.last_error.unwrap_or_default()],
    ];
    table::print(&["FIELD", "VALUE"], &rows);
    Ok(())
}
