//! `edgeprov device add|set|list|show|effective|remove|import|export|history|uploads`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, encode};
use super::{Output, UsageError, table};
use crate::admin::DeviceView;
use crate::model::Mac;

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Add a device to the inventory (one that exists is changed with `device set`).
    #[command(
        after_help = "Examples:\n  edgeprov device add --mac 00:11:22:AA:BB:CC --model J179 --site hq --group 2 \\\n      --param SIPDOMAIN=example.com --secret line.1.password   # the password is asked for"
    )]
    Add {
        /// The device's MAC address, any spelling (001122aabbcc, 00:11:22:AA:BB:CC, …).
        #[arg(long)]
        mac: String,
        /// The phone model (J179, T54W, …); selects the model parameter layer.
        #[arg(long)]
        model: Option<String>,
        /// The serial number, for the inventory.
        #[arg(long)]
        serial: Option<String>,
        /// The site the device belongs to; selects the site:NAME parameter layer.
        #[arg(long)]
        site: Option<String>,
        /// The device's group; selects the group:NAME parameter layer.
        #[arg(long)]
        group: Option<String>,
        /// Free text shown in listings (desk, user).
        #[arg(long)]
        label: Option<String>,
        /// A parameter, NAME=VALUE (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A secret parameter only the device itself may read (repeatable). Give NAME alone
        /// to keep the value off the command line (and out of `ps` and the shell's history):
        /// it is asked on a terminal without echo, else read from standard input, one line for
        /// each such --secret in order. NAME=VALUE works too, value in plain sight.
        #[arg(long = "secret", value_name = "NAME[=VALUE]")]
        secrets: Vec<String>,
    },
    /// Change a device that exists: what is given is changed, the rest kept.
    #[command(
        after_help = "Examples:\n  edgeprov device set 001122aabbcc --site branch --label desk-12\n  edgeprov device set 001122aabbcc --param SIPDOMAIN=example.com --unset VLANTEST\n  edgeprov device set 001122aabbcc --secret line.1.password   # asked for, not echoed\n  printf '%s\\n' \"$PW\" | edgeprov device set 001122aabbcc --secret line.1.password"
    )]
    Set(super::device_set::SetArgs),
    /// List the inventory, filtered and sorted.
    #[command(
        after_help = "Examples:\n  edgeprov device list --site hq --search desk --sort last_seen --desc\n  edgeprov --json device list --state inactive --limit 100 --offset 200\n  edgeprov device list --seen-before -7d --sort last_seen   # silent for a week (or never seen)"
    )]
    List {
        #[command(flatten)]
        filter: super::filter::FilterArgs,
        /// mac, model, site, group, label, last_seen, created, updated
        #[arg(long)]
        sort: Option<String>,
        /// Sort in descending order.
        #[arg(long)]
        desc: bool,
        #[command(flatten)]
        page: super::page::PageArgs,
    },
    /// Import devices from CSV (`mac,model,serial,site,group,label,state,PARAM…,
    /// secret:PARAM…`) or JSON; all or nothing, every bad row reported with its line.
    #[command(
        after_help = "Examples:\n  edgeprov device import phones.csv --dry-run    # report every bad row, change nothing\n  edgeprov device import phones.csv"
    )]
    Import {
        file: std::path::PathBuf,
        /// csv or json (default: from the file name)
        #[arg(long)]
        format: Option<String>,
        /// Check only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the sites the file names that do not exist (otherwise such rows are refused).
        #[arg(long)]
        create_sites: bool,
    },
    /// Export the inventory (secret values are never exported).
    Export {
        /// csv or json (default: csv, or json with --json).
        #[arg(long)]
        format: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Only this site's devices (an operator exports one of its sites this way).
        #[arg(long)]
        site: Option<String>,
    },
    /// Show one device.
    Show { mac: String },
    /// Remove a device, with its parameters and secrets (asks first; --yes does not).
    Remove {
        mac: String,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
    /// The settings the device ends up with, as its phone reads the files it is served
    /// (an operator's static files included), each with the file and line that gave it and
    /// the parameter layer it came from; secret values shown as ********.
    Effective { mac: String },
    /// What the phone uploaded (Poly logs and overrides): list, download, delete.
    #[command(subcommand)]
    Uploads(super::uploads::UploadsCmd),
    /// The device's check-ins, newest first.
    History {
        mac: String,
        /// Show at most this many check-ins (the daemon lists at most 10,000 at once).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(UsageError(format!("--{flag} {item:?}: expected NAME=VALUE")).into());
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn mac(text: &str) -> Result<Mac> {
    super::mac_arg(text)
}

pub async fn run(cmd: DeviceCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        DeviceCmd::Add {
            mac: m,
            model,
            serial,
            site,
            group,
            label,
            params,
            secrets,
        } => {
            let m = mac(&m)?;
            let params = pairs("param", &params)?;
            let secrets =
                super::secret_values::secret_values("--secret", &secrets, &format!("device {m}"))?;
            let body = json!({
                "mac": m,
                "model": model.unwrap_or_default(),
                "serial": serial.unwrap_or_default(),
                "site": site.unwrap_or_default(),
                "group": group.unwrap_or_default(),
                "label": label.unwrap_or_default(),
                "params": params,
                "secrets": secrets,
            });
            let created = api.post("/devices", &body).await?;
            show(created, out)
        }
        DeviceCmd::Set(args) => super::device_set::run(args, api, out).await,
        DeviceCmd::Import {
            file,
            format,
            dry_run,
            create_sites,
        } => import(api, out, &file, format, dry_run, create_sites).await,
        DeviceCmd::Uploads(cmd) => super::uploads::run(cmd, api, out).await,
        DeviceCmd::History { mac: m, limit } => {
            let m = mac(&m)?;
            let value = api
                .get(&format!("/devices/{m}/checkins?limit={limit}"))
                .await?;
            if out.json {
                return out.print_json(&value);
            }
            let checkins: Vec<crate::model::CheckIn> = serde_json::from_value(value)?;
            let rows: Vec<Vec<String>> = checkins
                .into_iter()
                .map(|c| {
                    vec![
                        super::time_text(c.last_seen),
                        table::clip(c.file),
                        c.peer_ip,
                        table::clip(c.firmware),
                        c.proof.as_str().into(),
                    ]
                })
                .collect();
            table::print(&["TIME", "FILE", "ADDRESS", "FIRMWARE", "PROOF"], &rows);
            Ok(())
        }
        DeviceCmd::Export {
            format,
            out: path,
            site,
        } => {
            let format = match format {
                Some(f) if out.json && f != "json" => {
                    return Err(UsageError(format!(
                        "--json exports JSON: leave out --format {f}, or --json"
                    ))
                    .into());
                }
                Some(f) => f,
                None if out.json => "json".into(),
                None => "csv".into(),
            };
            let site = site.map(|s| format!("&site={}", encode(&s)));
            let bytes = api
                .get_bytes(&format!(
                    "/devices/export?format={}{}",
                    encode(&format),
                    site.unwrap_or_default()
                ))
                .await?;
            let Some(p) = path else {
                return super::write_stdout(&bytes);
            };
            std::fs::write(&p, &bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            // The export is in the file; standard output says where, as `backup` does.
            if out.json {
                return out.print_json(&json!({"file": p, "format": format, "bytes": bytes.len()}));
            }
            println!("wrote {} ({format}, {} bytes)", p.display(), bytes.len());
            Ok(())
        }
        DeviceCmd::List {
            filter,
            sort,
            desc,
            page,
        } => {
            let mut query = page.query();
            query.extend(filter.query(crate::model::now_unix())?);
            if let Some(sort) = sort {
                let sort = percent_encoding::utf8_percent_encode(
                    &sort,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                query.push(format!("sort={sort}"));
            }
            if desc {
                query.push("order=desc".into());
            }
            let (list, total) = api
                .get_page(&format!("/devices?{}", query.join("&")))
                .await?;
            if out.json {
                return page.print_json(out, &list, total);
            }
            let devices: Vec<DeviceView> = serde_json::from_value(list)?;
            let shown = devices.len();
            let rows: Vec<Vec<String>> = devices
                .into_iter()
                .map(|d| {
                    vec![
                        d.mac.to_string(),
                        d.model,
                        d.site,
                        d.group,
                        format!("{:?}", d.state).to_lowercase(),
                        d.checkin
                            .map(|c| super::time_text(c.last_seen))
                            .unwrap_or_else(|| "never".into()),
                        d.label,
                    ]
                })
                .collect();
            table::print(
                &[
                    "MAC",
                    "MODEL",
                    "SITE",
                    "GROUP",
                    "STATE",
                    "LAST SEEN",
                    "LABEL",
                ],
                &rows,
            );
            page.say_footer(shown, total);
            Ok(())
        }
        DeviceCmd::Show { mac: m } => {
            let d = api.get(&format!("/devices/{}", mac(&m)?)).await?;
            show(d, out)
        }
        DeviceCmd::Effective { mac: m } => {
            let value = api.get(&format!("/devices/{}/effective", mac(&m)?)).await?;
            if out.json {
                return out.print_json(&value);
            }
            let view: crate::admin::EffectiveView = serde_json::from_value(value)?;
            let rows: Vec<Vec<String>> = view
                .settings
                .into_iter()
                .map(|s| {
                    let at = match s.line {
                        Some(line) => format!("{}:{line}", s.file),
                        None => s.file,
                    };
                    let from = match (s.param.is_empty(), s.layer.is_empty()) {
                        (false, false) => format!("{} ({})", s.param, s.layer),
                        _ => String::new(),
                    };
                    vec![s.name, s.value, at, from]
                })
                .collect();
            table::print(&["NAME", "VALUE", "FILE", "PARAMETER"], &rows);
            println!("# files: {}", view.chain.join(" -> "));
            println!("# {}", view.outcome);
            Ok(())
        }
        DeviceCmd::Remove { mac: m, confirm } => {
            let m = mac(&m)?;
            confirm.ask(&format!(
                "remove device {m} with its parameters and secrets"
            ))?;
            api.delete(&format!("/devices/{m}")).await?;
            if out.json {
                return out.print_json(&json!({ "removed": m }));
            }
            println!("removed {m}");
            Ok(())
        }
    }
}

/// Prints one device, as `device show` does.
pub(super) fn show(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let d: DeviceView = serde_json::from_value(value)?;
    let mut rows = vec![
        vec!["mac".into(), d.mac.to_string()],
        vec!["model".into(), d.model],
        vec!["serial".into(), d.serial],
        vec!["site".into(), d.site],
        vec!["group".into(), d.group],
        vec!["label".into(), d.label],
        vec!["state".into(), format!("{:?}", d.state).to_lowercase()],
    ];
    for (k, v) in d.params {
        rows.push(vec![format!("param {k}"), v]);
    }
    for k in d.secrets {
        rows.push(vec![format!("secret {k}"), "(set)".into()]);
    }
    if let Some(c) = d.checkin {
        rows.push(vec!["last seen".into(), super::time_text(c.last_seen)]);
        rows.push(vec!["peer".into(), c.peer_ip]);
        rows.push(vec!["proof".into(), c.proof.as_str().into()]);
        if let Some(serial) = c.cert_serial {
            rows.push(vec!["certificate serial".into(), serial]);
        }
        rows.push(vec!["firmware".into(), c.firmware]);
        rows.push(vec!["user agent".into(), c.user_agent]);
    }
    table::print(&["FIELD", "VALUE"], &rows);
    Ok(())
}

async fn import(
    api: &ApiClient,
    out: Output,
    file: &std::path::Path,
    format: Option<String>,
    dry_run: bool,
    create_sites: bool,
) -> Result<()> {
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let format = format.unwrap_or_else(|| {
        if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            "json".into()
        } else {
            "csv".into()
        }
    });
    let progress = std::sync::Arc::new(super::progress::Progress::new(
        "uploading",
        bytes.len() as u64,
    ));
    let result = api
        .post_bytes_progress(
            &format!(
                "/devices/import?format={}&dry_run={dry_run}&create_sites={create_sites}",
                encode(&format)
            ),
            bytes,
            progress,
        )
        .await;
    let (ok, value) = result?;
    let report: crate::admin::ImportReport = serde_json::from_value(value.clone())?;
    if out.json {
        out.print_json(&value)?;
    } else {
        for e in &report.errors {
            eprintln!("{}:{}: {}", file.display(), e.line, e.error);
        }
        let verb = if report.applied {
            "imported"
        } else {
            "would import"
        };
        println!(
            "{} rows: {verb} {} new, {} updated, {} unchanged{}",
            report.rows,
            report.created,
            report.updated,
            report.unchanged,
            if report.errors.is_empty() {
                String::new()
            } else {
                format!("; {} bad rows, nothing changed", report.bad_rows)
            }
        );
        for m in &report.secrets_missing {
            eprintln!(
                "{}:{}: device {}: secrets listed without a value, not set, and the device has \
                 none: {}",
                file.display(),
                m.line,
                m.mac,
                m.names.join(", ")
            );
        }
        if report.secrets_without_values > 0 {
            println!(
                "{} secret parameters listed without values (an export never carries them) were \
                 not set; each device keeps what it had, and {} devices have no value for some",
                report.secrets_without_values, report.devices_missing_secrets
            );
        }
        if !report.sites_created.is_empty() {
            let verb = if report.applied {
                "created"
            } else {
                "would create"
            };
            println!("sites {verb}: {}", report.sites_created.join(", "));
        }
    }
    if !ok {
        bail!("import refused: {} bad rows", report.bad_rows);
    }
    Ok(())
}
