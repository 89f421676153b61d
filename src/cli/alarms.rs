//! `edgeprov alarms`.

use anyhow::Result;

use super::client::ApiClient;
use super::{Output, table};
use crate::model::Alarm;

pub async fn run(api: &ApiClient, out: Output) -> Result<()> {
    let value = api.get("/alarms").await?;
    if out.json {
        return out.print_json(&value);
    }
    let alarms: Vec<Alarm> = serde_json::from_value(value)?;
    let rows: Vec<Vec<String>> = alarms
        .into_iter()
        .map(|a| {
            vec![
                format!("{:?}", a.severity).to_lowercase(),
                a.kind.as_str().to_string(),
                a.source,
                a.count.to_string(),
                super::time_text(a.last),
                a.message,
            ]
        })
        .collect();
    table::print(
        &["SEVERITY", "KIND", "SOURCE", "COUNT", "LAST", "MESSAGE"],
        &rows,
    );
    Ok(())
}
