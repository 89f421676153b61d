//! `edgeprov cloud register|status|sync|rejected`: the cloud enrollment link, through the admin
//! API (the daemon owns the keys and the store).

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::client::ApiClient;
use super::{Output, table};
use crate::store::DeadLetters;
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
    /// Events the cloud refused for good, kept apart from the outbox (oldest first).
    Rejected {
        /// Put them all back in the outbox, once the cloud takes them again.
        #[arg(long)]
        requeue: bool,
        /// Most events listed (the daemon lists at most 10,000 at once).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn run(cmd: CloudCmd, api: &ApiClient, out: Output) -> Result<()> {
    let value = match cmd {
        CloudCmd::Register { url, token } => {
            api.post("/sync/register", &json!({ "url": url, "token": token }))
                .await?
        }
        CloudCmd::Status => api.get("/sync").await?,
        CloudCmd::Rejected { requeue: true, .. } => {
            let answer = api.post("/sync/rejected/requeue", &json!({})).await?;
            if out.json {
                return out.print_json(&answer);
            }
            println!(
                "{} events put back in the outbox",
                answer["requeued"].as_u64().unwrap_or(0)
            );
            return Ok(());
        }
        CloudCmd::Rejected { limit, .. } => {
            let answer = api.get(&format!("/sync/rejected?limit={limit}")).await?;
            if out.json {
                return out.print_json(&answer);
            }
            return print_rejected(serde_json::from_value(answer)?);
        }
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
        vec!["rejected".into(), s.rejected.to_string()],
        vec!["failing since".into(), when(s.failing_since)],
        vec!["last error".into(), s.last_error.unwrap_or_default()],
    ];
    table::print(&["FIELD", "VALUE"], &rows);
    Ok(())
}

/// The rejected events as a table, and how many there are beyond it.
fn print_rejected(r: DeadLetters) -> Result<()> {
    let rows: Vec<Vec<String>> = r
        .events
        .iter()
        .map(|d| {
            let kind = serde_json::to_value(&d.event)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                super::time_text(d.rejected_at),
                kind,
                d.event.id.clone(),
                d.status.to_string(),
                d.reason.clone(),
            ]
        })
        .collect();
    table::print(&["REJECTED", "TYPE", "ID", "STATUS", "REASON"], &rows);
    if r.count > rows.len() as u64 || r.dropped > 0 {
        println!("{} kept in all, {} older ones dropped", r.count, r.dropped);
    }
    Ok(())
}
