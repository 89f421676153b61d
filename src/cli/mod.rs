//! `edgeprov …` sub-commands that talk to the admin API.

pub mod alarms;
pub mod audit;
pub mod backup;
pub mod cert;
pub mod client;
pub mod cloud;
pub mod device;
pub mod dhcp;
pub mod dns;
pub mod doctor;
pub mod file;
pub mod filter;
pub mod firmware;
pub mod job;
pub mod param;
pub mod pki;
pub mod prefs;
pub mod progress;
pub mod settings;
pub mod site;
pub mod table;
pub mod token;
pub mod when;

use anyhow::Result;

/// How results are printed: tables for people, JSON for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print_json(&self, value: &serde_json::Value) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

/// A Unix time as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time_text(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| t.to_string())
}
