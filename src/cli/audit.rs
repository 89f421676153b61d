//! `edgeprov audit`: who changed what, and who was refused, filtered by the fields
//! `GET /api/v1/audit` takes.

use anyhow::Result;
use clap::Args;

use super::client::{ApiClient, encode};
use super::{Output, table};
use crate::store::AuditEntry;

/// The filters of `GET /audit`, each under the name the other list commands give it (`q` is
/// `--search`, as for devices and alarms); every one given must match.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries of this user (a token's user, or "anonymous" for refused tokens).
    #[arg(long)]
    pub who: Option<String>,
    /// Only requests from this address (as the SOURCE column shows it).
    #[arg(long, value_name = "ADDRESS")]
    pub source: Option<String>,
    /// Only requests of this method (POST, PATCH, PUT, DELETE; any case).
    #[arg(long)]
    pub method: Option<String>,
    /// Only requests whose path starts with this (e.g. /api/v1/devices).
    #[arg(long)]
    pub resource: Option<String>,
    /// Only entries answered with this HTTP status (e.g. 403 for refusals).
    #[arg(long)]
    pub status: Option<u16>,
    /// Only entries from this time on: RFC 3339 (2026-11-01T00:00:00Z), Unix seconds, or
    /// -DURATION before now (-2h, -7d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only entries up to this time (inclusive), written as for --since.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only entries whose summary or changes contain this text (any case).
    #[arg(long)]
    pub search: Option<String>,
    /// Show at most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only entries older than this SEQ: the next page after one whose last entry is SEQ.
    #[arg(long, value_name = "SEQ")]
    pub before: Option<u64>,
}

impl AuditArgs {
    /// The query string of `GET /audit`: the API's field names, values percent-encoded, times
    /// as Unix seconds.
    fn query(&self, now: i64) -> Result<String> {
        let time = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| super::when::parse_time(flag, t, now).map(|t| t.to_string()))
                .transpose()
        };
        let mut query = vec![format!("limit={}", self.limit)];
        let fields = [
            ("before", self.before.map(|b| b.to_string())),
            ("who", self.who.clone()),
            ("source", self.source.clone()),
            ("method", self.method.clone()),
            ("resource", self.resource.clone()),
            ("status", self.status.map(|s| s.to_string())),
            ("since", time("--since", &self.since)?),
            ("until", time("--until", &self.until)?),
            ("q", self.search.clone()),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                query.push(format!("{name}={}", encode(&v)));
            }
        }
        Ok(query.join("&"))
    }
}

pub async fn run(api: &ApiClient, out: Output, args: AuditArgs) -> Result<()> {
    let query = args.query(crate::model::now_unix())?;
    let value = api.get(&format!("/audit?{query}")).await?;
    if out.json {
        return out.print_json(&value);
    }
    let limit = args.limit;
    let entries: Vec<AuditEntry> = serde_json::from_value(value)?;
    let next = entries
        .last()
        .filter(|_| limit > 0 && entries.len() == limit)
        .map(|e| e.seq);
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                super::time_text(e.time),
                e.who,
                e.source,
                format!("{} {}", e.method, e.resource),
                e.status.to_string(),
                e.summary,
            ]
        })
        .collect();
    table::print(
        &[
            "SEQ", "TIME", "WHO", "SOURCE", "REQUEST", "STATUS", "SUMMARY",
        ],
        &rows,
    );
    if let Some(seq) = next {
        eprintln!("older entries may follow: add --before {seq}");
    }
    Ok(())
}
