//! `edgeprov alarms [--severity S] [--kind K] [--search TEXT] [--limit N] [--offset N]` and
//! `edgeprov alarms clear KIND SOURCE`.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::ApiClient;
use super::{Output, table};
use crate::model::Alarm;

#[derive(Debug, Args)]
pub struct AlarmArgs {
    #[command(subcommand)]
    pub cmd: Option<AlarmCmd>,
    /// Only this severity: critical, major, minor or warning.
    #[arg(long)]
    pub severity: Option<String>,
    /// Only this kind (as listed in KIND).
    #[arg(long)]
    pub kind: Option<String>,
    /// Search the source and the message.
    #[arg(long)]
    pub search: Option<String>,
    #[command(flatten)]
    pub page: super::page::PageArgs,
}

#[derive(Debug, Subcommand)]
pub enum AlarmCmd {
    /// Clear one alarm (it comes back if the cause recurs); audited.
    Clear { kind: String, source: String },
}

pub async fn run(args: AlarmArgs, api: &ApiClient, out: Output) -> Result<()> {
    if let Some(AlarmCmd::Clear { kind, source }) = args.cmd {
        api.post("/alarms/clear", &json!({"kind": kind, "source": source}))
            .await?;
        if out.json {
            return out.print_json(&json!({"cleared": {"kind": kind, "source": source}}));
        }
        println!("alarm {kind} from {source} cleared");
        return Ok(());
    }
    let mut query = args.page.query();
    query.extend(
        [
            ("severity", args.severity),
            ("kind", args.kind),
            ("q", args.search),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            let v = v?;
            let v = percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC);
            Some(format!("{k}={v}"))
        }),
    );
    let (value, total) = api
        .get_page(&format!("/alarms?{}", query.join("&")))
        .await?;
    if out.json {
        return args.page.print_json(out, &value, total);
    }
    let alarms: Vec<Alarm> = serde_json::from_value(value)?;
    let shown = alarms.len();
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
    args.page.say_footer(shown, total);
    Ok(())
}
