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
) -> Result<()> {
    let mut query = vec![format!("limit={limit}")];
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
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|e| {
            vec![
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
        &["TIME", "WHO", "SOURCE", "REQUEST", "STATUS", "SUMMARY"],
        &rows,
    );
    Ok(())
}
