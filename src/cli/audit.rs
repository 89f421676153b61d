//! `edgeprov audit`: who changed what, and who was refused.

use anyhow::Result;

use super::client::{ApiClient, encode};
use super::{Output, table};
use crate::store::AuditEntry;

pub async fn run(
    api: &ApiClient,
    out: Output,
    who: Option<String>,
    resource: Option<String>,
    limit: usize,
    before: Option<u64>,
) -> Result<()> {
    let mut query = vec![format!("limit={limit}")];
    if let Some(b) = before {
        query.push(format!("before={b}"));
    }
    if let Some(w) = who {
        query.push(format!("who={}", encode(&w)));
    }
    if let Some(r) = resource {
        query.push(format!("resource={}", encode(&r)));
    }
    let value = api.get(&format!("/audit?{}", query.join("&"))).await?;
    if out.json {
        return out.print_json(&value);
    }
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
