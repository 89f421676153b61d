//! `edgeprov dns check` asks the running responder what it serves for the provisioning names and
//! compares it with what the configuration says phones should find; `edgeprov dns records …`
//! manages the records added through the admin API.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

use super::client::ApiClient;
use super::{Output, table};
use crate::config::Config;
use crate::daemon::Listeners;
use crate::dns::{Provisioning, exchange};

#[derive(Debug, Subcommand)]
pub enum DnsCmd {
    /// Query the running responder for the discovery records and check them against the
    /// configured provisioning URL and ports.
    Check,
    /// Records added through the admin API.
    #[command(subcommand)]
    Records(RecordsCmd),
}

#[derive(Debug, Subcommand)]
pub enum RecordsCmd {
    /// List the records added through the admin API.
    List,
    /// Add a record inside the served domain; answered at once.
    Add {
        name: String,
        /// A, AAAA, CNAME, SRV, TXT or PTR.
        #[arg(value_name = "TYPE")]
        rtype: String,
        value: String,
        /// Time to live in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Remove a record by its id (as listed; asks first, --yes does not).
    Remove {
        id: u64,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

/// `dns records …`: through the admin API of the box the CLI talks to.
pub async fn records(cmd: RecordsCmd, api: &ApiClient, out: Output) -> Result<()> {
    let value = match cmd {
        RecordsCmd::List => api.get("/dns/records").await?,
        RecordsCmd::Add {
            name,
            rtype,
            value,
            ttl,
        } => {
            let body = json!({"name": name, "type": rtype, "value": value, "ttl": ttl});
            api.post("/dns/records", &body).await?
        }
        RecordsCmd::Remove { id, confirm } => {
            confirm.ask(&format!("remove DNS record {id}"))?;
            api.delete(&format!("/dns/records/{id}")).await?;
            if out.json {
                return out.print_json(&json!({ "removed": id }));
            }
            println!("removed DNS record {id}");
            return Ok(());
        }
    };
    if out.json {
        return out.print_json(&value);
    }
    let list = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            ["id", "name", "type", "value", "ttl"]
                .iter()
                .map(|k| match &r[*k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    table::print(&["ID", "NAME", "TYPE", "VALUE", "TTL"], &rows);
    Ok(())
}

/// One line of the check: what was asked, what came back, and whether it is what the
/// configuration expects.
struct Row {
    name: Name,
    rtype: RecordType,
    answer: String,
    problem: Option<String>,
}

/// `dns check`: queries the responder the local configuration describes, so it runs on the box.
pub async fn check(config: &Config, out: Output) -> Result<()> {
    if config.dns.listen.is_empty() {
        bail!("the DNS responder is off (dns.listen is empty)");
    }
    let running: Option<Listeners> = std::fs::read(config.listeners_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let https = running
        .as_ref()
        .and_then(|l| l.phone_https.first().copied())
        .unwrap_or(config.phone.https_listen[0]);
    let http = match &running {
        Some(l) => l.phone_http.first().copied(),
        None => config.phone.http_listen.first().copied(),
    };
    let mut server = running
        .as_ref()
        .and_then(|l| l.dns.first().copied())
        .unwrap_or(config.dns.listen[0]);
    if server.ip().is_unspecified() {
        server.set_ip(match server {
            SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let p = Provisioning::derive(&config.dns, &config.pki.server_names, https, http)
        .map_err(|m| anyhow::anyhow!("dns: {m}"))?;

    let mut rows = Vec::new();
    let ask = |name: Name, rtype| async move {
        let reply = exchange(
            server,
            &Query::query(name.clone(), rtype),
            Duration::from_secs(3),
        )
        .await
        .with_context(|| format!("asking the responder at {server}"))?;
        Ok::<_, anyhow::Error>((name, rtype, reply))
    };
    let (n, t, m) = ask(p.origin.clone(), RecordType::SOA).await?;
    rows.push(expect(n, t, &m, |_| None));
    let (n, t, m) = ask(p.host.clone(), RecordType::A).await?;
    rows.push(expect(n, t, &m, |_| None));
    for (names, port) in [
        (&p.srv_https, Some(p.https_port)),
        (&p.srv_http, p.http_port),
    ] {
        for name in names {
            let (n, t, m) = ask(name.clone(), RecordType::SRV).await?;
            rows.push(expect(n, t, &m, |data| match data {
                RData::SRV(srv) if Some(srv.port) != port => Some(format!(
                    "port {} but the phone service listens on {}",
                    srv.port,
                    port.map_or("nothing".into(), |p| p.to_string())
                )),
                RData::SRV(srv) if srv.target != p.host => {
                    Some(format!("target {} but expected {}", srv.target, p.host))
                }
                _ => None,
            }));
        }
    }
    if let Some(name) = &p.txt_name {
        let (n, t, m) = ask(name.clone(), RecordType::TXT).await?;
        rows.push(expect(n, t, &m, |data| match data {
            RData::TXT(txt) => {
                let text: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                let text = String::from_utf8_lossy(&text);
                (text != p.settings_url)
                    .then(|| format!("{text:?} but the settings URL is {:?}", p.settings_url))
            }
            _ => None,
        }));
    }

    let failed = rows.iter().filter(|r| r.problem.is_some()).count();
    if out.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"name": r.name.to_ascii(), "type": r.rtype.to_string(),
                       "answer": r.answer, "problem": r.problem})
            })
            .collect();
        out.print_json(
            &json!({"server": server.to_string(), "settings_url": p.settings_url,
                                "checks": items, "ok": failed == 0}),
        )?;
    } else {
        println!("responder {server}, settings URL {}", p.settings_url);
        let lines: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.to_ascii(),
                    r.rtype.to_string(),
                    r.answer.clone(),
                    r.problem.clone().unwrap_or_else(|| "ok".into()),
                ]
            })
            .collect();
        table::print(&["NAME", "TYPE", "ANSWER", "CHECK"], &lines);
    }
    if failed > 0 {
        bail!("{failed} DNS check(s) failed");
    }
    Ok(())
}

/// A row for one answer: a problem when nothing of the type came back or `judge` objects.
fn expect(
    name: Name,
    rtype: RecordType,
    reply: &Message,
    judge: impl Fn(&RData) -> Option<String>,
) -> Row {
    let found: Vec<&RData> = reply
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| &r.data)
        .collect();
    let answer = if found.is_empty() {
        reply.metadata.response_code.to_string()
    } else {
        found
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let problem = if found.is_empty() {
        Some(format!(
            "no {rtype} record ({})",
            reply.metadata.response_code
        ))
    } else {
        found.iter().find_map(|d| judge(d))
    };
    Row {
        name,
        rtype,
        answer,
        problem,
    }
}
