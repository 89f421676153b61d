//! `edgeprov job list|show|create|pause|resume|stop|delete|wait`: bulk jobs.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::client::{ApiClient, encode};
use super::{Output, UsageError, table};
use crate::jobs::{DeviceResult, Job, JobState, ResultStatus, Sites};

/// How often `--wait` asks for progress.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// List jobs, newest first.
    List {
        /// scheduled, running, paused, stopped, done or failed
        #[arg(long)]
        state: Option<String>,
    },
    /// Show a job and what it did to each device.
    Show { id: u64 },
    /// Create a bulk job over a selection of devices (see docs/jobs.md).
    #[command(
        after_help = "Examples:\n  edgeprov job create move --site hq --model J179 --to-site branch --at +2h --rate 5\n  edgeprov job create set-param --mac 001122aabbcc --set SIPDOMAIN=sip.example.com --wait\n  edgeprov job create delete --search returned --at 2026-01-01T02:00:00Z --yes\n  edgeprov job create deactivate --site hq --seen-before -7d   # phones silent for a week"
    )]
    Create(Box<CreateArgs>),
    /// Pause a scheduled or running job (a running one stops before its next device).
    Pause { id: u64 },
    /// Resume a paused job where it stopped.
    Resume { id: u64 },
    /// Stop a job for good; devices not reached are reported as skipped.
    Stop { id: u64 },
    /// Delete a job and its results (not while it runs; asks first, --yes does not).
    Delete {
        id: u64,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
    /// Follow a job until it ends, with a progress line on standard error. Fails when the job
    /// ends failed, or with devices skipped (out of the job's sites, or not reached before a
    /// stop), naming how many and why.
    Wait { id: u64 },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Activate,
    Deactivate,
    Move,
    SetParam,
    Delete,
    FirmwarePrefetch,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What to do to every selected device.
    kind: Kind,
    /// Select this device (repeatable).
    #[arg(long = "mac", value_name = "MAC")]
    macs: Vec<String>,
    /// Select the devices that pass these filters.
    #[command(flatten)]
    filter: super::filter::FilterArgs,
    /// Select every device (needed when no other selection is given).
    #[arg(long)]
    all: bool,
    /// move: the new site.
    #[arg(long)]
    to_site: Option<String>,
    /// move: the new group.
    #[arg(long)]
    to_group: Option<String>,
    /// set-param: the parameter to set. With --secret, NAME alone keeps the value off the
    /// command line: asked on a terminal without echo, else the first line of standard input.
    #[arg(long, value_name = "NAME[=VALUE]", conflicts_with = "unset")]
    set: Option<String>,
    /// set-param: the parameter to remove.
    #[arg(long, value_name = "NAME")]
    unset: Option<String>,
    /// set-param: the parameter is a secret (only the device itself may read it).
    #[arg(long)]
    secret: bool,
    /// When to run: RFC 3339 (2025-06-01T02:00:00Z), Unix seconds, or +DURATION from now
    /// (+90s, +10m, +2h, +1d). Default: now.
    #[arg(long)]
    at: Option<String>,
    /// At most this many devices per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Follow the job until it ends, with a progress line; fails as `job wait` does.
    #[arg(long)]
    wait: bool,
    /// delete: asks first, as removing one device does; --yes does not.
    #[command(flatten)]
    confirm: super::confirm::Confirm,
}

impl CreateArgs {
    fn body(&self) -> Result<Value> {
        self.body_at(crate::model::now_unix())
    }

    /// The request body, with relative times (`--at +2h`, `--seen-before -7d`) from `now`.
    fn body_at(&self, now: i64) -> Result<Value> {
        let mut body = Map::new();
        let kind = match self.kind {
            Kind::Activate => "activate",
            Kind::Deactivate => "deactivate",
            Kind::Move => "move",
            Kind::SetParam => "set_param",
            Kind::Delete => "delete",
            Kind::FirmwarePrefetch => "firmware_prefetch",
        };
        body.insert("kind".into(), kind.into());
        match self.kind {
            Kind::Move => {
                // The API would name its own fields (`site: a move needs a site`), which on this
                // command line are --to-site and --to-group: --site here selects devices.
                if self.to_site.is_none() && self.to_group.is_none() {
                    return Err(UsageError(
                        "move needs --to-site SITE, --to-group GROUP or both (--site selects the \
                         devices to move)"
                            .into(),
                    )
                    .into());
                }
                if let Some(s) = &self.to_site {
                    body.insert("site".into(), s.as_str().into());
                }
                if let Some(g) = &self.to_group {
                    body.insert("group".into(), g.as_str().into());
                }
            }
            Kind::SetParam => {
                let (name, value) = match (&self.set, &self.unset) {
                    (Some(name), None) if self.secret && !name.contains('=') => {
                        let value =
                            super::secret_values::secret_value("--set", name, "the job's devices")?;
                        (name.clone(), Value::from(value))
                    }
                    (Some(pair), None) => {
                        let (n, v) = pair.split_once('=').ok_or_else(|| {
                            UsageError(format!(
                                "--set {pair:?}: expected NAME=VALUE (NAME alone with --secret)"
                            ))
                        })?;
                        (n.to_string(), Value::from(v))
                    }
                    (None, Some(n)) => (n.clone(), Value::Null),
                    _ => {
                        return Err(UsageError(
                            "set-param needs --set NAME=VALUE or --unset NAME".into(),
                        )
                        .into());
                    }
                };
                body.insert("name".into(), name.into());
                body.insert("value".into(), value);
                body.insert("secret".into(), self.secret.into());
            }
            _ => {}
        }
        let mut selection = Map::new();
        if !self.macs.is_empty() {
            let macs = self
                .macs
                .iter()
                .map(|m| {
                    crate::model::Mac::parse(m)
                        .map(|mac| mac.to_string())
                        .map_err(|e| UsageError(format!("--mac: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            selection.insert("macs".into(), json!(macs));
        }
        if self.all {
            selection.insert("all".into(), true.into());
        }
        for (k, v) in self.filter.fields(now)? {
            selection.insert(k.into(), v);
        }
        // Checked here, not left to the API, whose refusal names its own fields (`macs`, `q`,
        // `seen_before`), not the options that set them.
        if selection.is_empty() {
            return Err(UsageError(format!(
                "select the devices: --mac MAC, a filter ({}) or --all",
                super::filter::OPTIONS
            ))
            .into());
        }
        body.insert("selection".into(), selection.into());
        if let Some(at) = &self.at {
            body.insert(
                "at".into(),
                super::when::parse_time("--at", at, now)?.into(),
            );
        }
        if let Some(r) = self.rate {
            // JSON has no NaN or infinity: serde_json would send null, which means unlimited.
            if !r.is_finite() {
                return Err(UsageError(format!(
                    "--rate {r}: expected a number of devices per second"
                ))
                .into());
            }
            body.insert("rate".into(), r.into());
        }
        Ok(body.into())
    }
}

pub async fn run(cmd: JobCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        JobCmd::List { state } => {
            let path = match state {
                Some(s) => format!("/jobs?state={}", encode(&s)),
                None => "/jobs".into(),
            };
            let list = api.get(&path).await?;
            if out.json {
                return out.print_json(&list);
            }
            let jobs: Vec<Job> = serde_json::from_value(list)?;
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.kind.name().to_string(),
                        j.state.to_string(),
                        super::time_text(j.at),
                        progress(j),
                        j.counts.ok.to_string(),
                        j.counts.failed.to_string(),
                        j.counts.skipped.to_string(),
                        j.created_by.clone(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "ID", "KIND", "STATE", "AT", "PROGRESS", "OK", "FAILED", "SKIPPED", "BY",
                ],
                &rows,
            );
            Ok(())
        }
        JobCmd::Show { id } => show(api.get(&format!("/jobs/{id}")).await?, out),
        JobCmd::Create(args) => {
            let body = args.body()?;
            if matches!(args.kind, Kind::Delete) {
                args.confirm
                    .ask("create a job that removes every selected device")?;
            }
            let created = api.post("/jobs", &body).await?;
            let job: Job = serde_json::from_value(created.clone())?;
            if args.wait {
                return wait(api, job.id, out).await;
            }
            if out.json {
                return out.print_json(&created);
            }
            println!(
                "job {} ({}) {}, runs at {}",
                job.id,
                job.kind.name(),
                job.state,
                super::time_text(job.at)
            );
            Ok(())
        }
        JobCmd::Pause { id } => action(api, out, id, "pause").await,
        JobCmd::Resume { id } => action(api, out, id, "resume").await,
        JobCmd::Stop { id } => action(api, out, id, "stop").await,
        JobCmd::Delete { id, confirm } => {
            confirm.ask(&format!("delete job {id} and its results"))?;
            api.delete(&format!("/jobs/{id}")).await?;
            if out.json {
                return out.print_json(&json!({ "deleted": id }));
            }
            println!("job {id} deleted");
            Ok(())
        }
        JobCmd::Wait { id } => wait(api, id, out).await,
    }
}

async fn action(api: &ApiClient, out: Output, id: u64, verb: &str) -> Result<()> {
    let value = api.post(&format!("/jobs/{id}/{verb}"), &json!({})).await?;
    if out.json {
        return out.print_json(&value);
    }
    let job: Job = serde_json::from_value(value)?;
    println!("job {id} {} ({})", job.state, progress(&job));
    Ok(())
}

/// `done/total`, where done counts ok, failed and skipped devices.
fn progress(j: &Job) -> String {
    let c = j.counts;
    format!("{}/{}", c.ok + c.failed + c.skipped, c.total)
}

/// Polls the job until it will not run again, drawing a progress line on standard error; then
/// shows it. A job that ends `failed`, or with skipped devices, makes the command fail.
async fn wait(api: &ApiClient, id: u64, out: Output) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let value = loop {
        let value = api.get(&format!("/jobs/{id}")).await?;
        let job: Job = serde_json::from_value(value.clone())?;
        let c = job.counts;
        let line = format!(
            "job {id} {}: {} devices (ok {}, failed {}, skipped {})",
            job.state,
            progress(&job),
            c.ok,
            c.failed,
            c.skipped
        );
        if line != last_line {
            let mut err = std::io::stderr();
            if tty {
                let _ = write!(err, "\r\x1b[K{line}");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
            last_line = line;
        }
        if job.state.is_final() {
            if tty {
                eprintln!();
            }
            break value;
        }
        tokio::time::sleep(POLL).await;
    };
    let job: Job = serde_json::from_value(value.clone())?;
    let results: Vec<DeviceResult> = serde_json::from_value(value["results"].clone())?;
    show(value, out)?;
    if job.state == JobState::Failed {
        bail!("job {id} failed on some devices (see above)");
    }
    if let Some(why) = skipped(&job, &results) {
        bail!(why);
    }
    Ok(())
}

/// What `--wait` says when the job left devices as they were although it ended without a
/// failure (`done` with skipped devices, or `stopped`): how many and why, each reason with its
/// count. A waiting script must not take such a job for one that reached every device.
fn skipped(job: &Job, results: &[DeviceResult]) -> Option<String> {
    let c = job.counts;
    if c.skipped == 0 {
        return None;
    }
    let mut why: BTreeMap<&str, usize> = BTreeMap::new();
    for r in results.iter().filter(|r| r.status == ResultStatus::Skipped) {
        *why.entry(r.detail.as_str()).or_default() += 1;
    }
    let why: Vec<String> = why
        .into_iter()
        .map(|(detail, n)| match detail {
            "" => format!("no reason given ({n})"),
            d => format!("{d} ({n})"),
        })
        .collect();
    Some(format!(
        "job {} {}, but {} of {} devices were skipped and left as they were: {}",
        job.id,
        job.state,
        c.skipped,
        c.total,
        if why.is_empty() {
            "see the results".to_string()
        } else {
            why.join(", ")
        }
    ))
}

fn show(value: Value, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(&value);
    }
    let results: Vec<DeviceResult> = serde_json::from_value(value["results"].clone())?;
    let job: Job = serde_json::from_value(value)?;
    let kind = serde_json::to_value(&job.kind)?;
    let args: Vec<String> = kind
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "kind")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let c = job.counts;
    let time = |t: Option<i64>| t.map(super::time_text).unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["id".into(), job.id.to_string()],
        vec![
            "kind".into(),
            format!("{} {}", job.kind.name(), args.join(" "))
                .trim()
                .to_string(),
        ],
        vec!["selection".into(), serde_json::to_string(&job.selection)?],
        vec!["state".into(), job.state.to_string()],
        vec!["at".into(), super::time_text(job.at)],
        vec![
            "rate".into(),
            job.rate
                .map(|r| format!("{r} devices/s"))
                .unwrap_or_else(|| "unlimited".into()),
        ],
        vec!["created by".into(), job.created_by.clone()],
        vec![
            "sites".into(),
            match &job.sites {
                Sites::All => "all".into(),
                Sites::Only(sites) => sites.iter().cloned().collect::<Vec<_>>().join(", "),
            },
        ],
        vec!["created".into(), super::time_text(job.created)],
        vec!["started".into(), time(job.started)],
        vec!["finished".into(), time(job.finished)],
        vec![
            "devices".into(),
            format!(
                "{} total, {} ok, {} failed, {} skipped, {} pending",
                c.total, c.ok, c.failed, c.skipped, c.pending
            ),
        ],
    ];
    table::print(&["FIELD", "VALUE"], &rows);
    if !results.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = results
            .into_iter()
            .map(|r| {
                vec![
                    r.mac.to_string(),
                    serde_json::to_value(r.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    r.detail,
                ]
            })
            .collect();
        table::print(&["MAC", "RESULT", "DETAIL"], &rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CreateArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        create: CreateArgs,
    }

    fn create(args: &[&str]) -> CreateArgs {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).create
    }

    /// The filters' times go to the API as Unix seconds, a relative one taken from now.
    #[test]
    fn seen_times_are_sent_as_unix_seconds() {
        let body = create(&[
            "deactivate",
            "--seen-before",
            "-7d",
            "--seen-after",
            "2026-01-01T00:00:00Z",
        ])
        .body_at(1_800_000_000)
        .unwrap();
        assert_eq!(
            body["selection"],
            serde_json::json!({"seen_before": 1_800_000_000 - 7 * 86_400, "seen_after": 1_767_225_600})
        );
    }

    #[test]
    fn rate_that_json_cannot_carry_is_refused() {
        for rate in ["NaN", "inf"] {
            let err = create(&["activate", "--all", "--rate", rate])
                .body()
                .unwrap_err()
                .to_string();
            assert!(err.contains("--rate"), "{rate}: {err}");
        }
        let body = create(&["activate", "--all", "--rate", "2.5"])
            .body()
            .unwrap();
        assert_eq!(body["rate"], 2.5);
    }
}
