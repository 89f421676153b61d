//! `edgeprov cloud register|status|sync|rejected`: the cloud enrollment link, through the admin
//! API (the daemon owns the keys and the store).

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use serde_json::json;

use super::client::ApiClient;
use super::{Output, table};
use crate::store::DeadLetters;
use crate::sync::SyncStatus;

#[derive(Debug, Subcommand)]
pub enum CloudCmd {
    /// Register this box with the cloud using a one-time token from the installer's portal.
    #[command(
        after_help = "Examples:\n  edgeprov cloud register --url https://cloud.example/edge   # the token is asked for, not echoed\n  edgeprov cloud register --url https://cloud.example/edge --token TOKEN   # in sight of ps\n  cat token.txt | edgeprov cloud register --url https://cloud.example/edge"
    )]
    Register {
        /// The cloud's base URL (https://...).
        #[arg(long)]
        url: String,
        /// The one-time registration token, in plain sight of `ps` and the shell's history.
        /// Without it the token is asked for on a terminal without echo, else read from the
        /// first line of standard input.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
    /// Whether cloud sync is configured and registered; last pull and push, lag, outbox
    /// depth, last error.
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
            let token = match token {
                Some(t) => t,
                None => registration_token()?,
            };
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
            if !status.configured {
                bail!("{}", not_configured());
            }
            if !status.registered {
                bail!(
                    "this box is not registered with a cloud, so there is nothing to sync: \
                     `edgeprov cloud register --url URL` first"
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
    if !s.configured {
        println!("{}", not_configured());
    }
    let rows = vec![
        vec!["configured".into(), s.configured.to_string()],
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

/// What status and sync say of a box without `[cloud] ca_file`: registering is refused until
/// it is set, so "not registered" alone would send the administrator to `cloud register`.
fn not_configured() -> &'static str {
    "cloud sync is not configured: [cloud] ca_file (the cloud's CA certificate) is not set, so \
     this box cannot register; set it and restart the daemon"
}

/// The one-time token of `cloud register` given without `--token`: typed without echo on a
/// terminal, else the first line of standard input, so that it stays out of `ps` and the
/// shell's history as the values of `--secret NAME` do.
fn registration_token() -> Result<String> {
    let token =
        super::secret_values::secret_line("One-time registration token: ")?.ok_or_else(|| {
            anyhow!(
                "no registration token on standard input: pipe it in (edgeprov cloud register \
                 --url URL < token.txt), or run on a terminal to type it; nothing was done"
            )
        })?;
    if token.trim().is_empty() {
        bail!("the registration token read is empty; nothing was done");
    }
    Ok(token)
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
