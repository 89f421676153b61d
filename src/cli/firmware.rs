//! `edgeprov firmware list|add|rm|upload|prefetch|policy|scrub`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, encode};
use super::progress::Progress;
use super::{Output, UsageError, table};

#[derive(Debug, Subcommand)]
pub enum FirmwareCmd {
    /// List the catalogue with each image's cache state, the cache's use and the policies.
    List,
    /// Add a release to the catalogue.
    Add {
        /// File name phones ask for.
        file: String,
        /// The models this release is for, comma-separated (J179,J189).
        #[arg(long, required = true, value_delimiter = ',')]
        models: Vec<String>,
        /// The release's version, compared by the policies.
        #[arg(long)]
        version: String,
        /// The image's SHA-256 (64 lower-case hex digits); every copy is checked against it.
        #[arg(long)]
        sha256: String,
        /// The image's size in bytes, checked before the hash.
        #[arg(long)]
        size: Option<u64>,
        /// Upstream URL (repeat for mirrors).
        #[arg(long = "url")]
        urls: Vec<String>,
    },
    /// Remove a release (and its cached image); with --image-only keep the release (asks
    /// first; --yes does not).
    Rm {
        file: String,
        /// Drop only the cached image; keep the release in the catalogue.
        #[arg(long)]
        image_only: bool,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
    /// Upload an image for a release in the catalogue; resumes where a broken upload stopped.
    /// The file is checked first (size and SHA-256 against the catalogue's): one that is not
    /// the release's image is refused, and nothing is sent.
    Upload {
        /// The release's file name in the catalogue.
        file: String,
        /// The local image file to upload.
        #[arg(long = "from", value_name = "PATH")]
        from: PathBuf,
    },
    /// Fetch every image the inventory's phones would be told to load, with progress.
    Prefetch,
    /// Show policies, or set MODEL=POLICY pairs (latest, off, inherit or a version) for a scope.
    #[command(
        after_help = "Examples:\n  edgeprov firmware policy                               # show every scope\n  edgeprov firmware policy site:hq J179=latest K175=off"
    )]
    Policy {
        /// `global` or `site:NAME`.
        scope: Option<String>,
        /// MODEL=POLICY, one model each (`*` for every model not named, no family patterns);
        /// replaces the scope's policies.
        #[arg(value_name = "MODEL=POLICY")]
        set: Vec<String>,
    },
    /// Re-verify every cached image; corrupted ones are removed.
    Scrub,
}

pub async fn run(cmd: FirmwareCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        FirmwareCmd::List => {
            let v = api.get("/firmware").await?;
            if out.json {
                return out.print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["releases"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let models: Vec<&str> = r["models"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    vec![
                        r["file"].as_str().unwrap_or_default().to_string(),
                        r["version"].as_str().unwrap_or_default().to_string(),
                        models.join(","),
                        r["size"]
                            .as_u64()
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                        r["cache"].as_str().unwrap_or_default().to_string(),
                        r["source"].as_str().unwrap_or_default().to_string(),
                    ]
                })
                .collect();
            table::print(
                &["FILE", "VERSION", "MODELS", "BYTES", "CACHE", "SOURCE"],
                &rows,
            );
            println!(
                "cache: {} of {} bytes",
                v["cache"]["total_bytes"], v["cache"]["max_bytes"]
            );
        }
        FirmwareCmd::Add {
            file,
            models,
            version,
            sha256,
            size,
            urls,
        } => {
            let mut body = json!({
                "file": file, "models": models, "version": version,
                "sha256": sha256, "urls": urls,
            });
            if let Some(s) = size {
                body["size"] = json!(s);
            }
            let v = api.post("/firmware/releases", &body).await?;
            if out.json {
                return out.print_json(&v);
            }
            println!("added {file}");
        }
        FirmwareCmd::Rm {
            file,
            image_only,
            confirm,
        } => {
            confirm.ask(&if image_only {
                format!("remove the cached image of {file}")
            } else {
                format!("remove release {file} and its cached image")
            })?;
            let what = if image_only { "images" } else { "releases" };
            api.delete(&format!("/firmware/{what}/{}", encode(&file)))
                .await?;
            if out.json {
                return out.print_json(&json!({ "removed": file, "image_only": image_only }));
            }
            if image_only {
                println!("removed the cached image of {file}");
            } else {
                println!("removed {file}");
            }
        }
        FirmwareCmd::Upload { file, from } => {
            super::firmware_upload::upload(api, &file, &from, out).await?
        }
        FirmwareCmd::Prefetch => prefetch(api, out).await?,
        FirmwareCmd::Policy { scope, set } => {
            let Some(scope) = scope else {
                let v = api.get("/firmware/policies").await?;
                if out.json {
                    return out.print_json(&v);
                }
                let mut rows = Vec::new();
                for (scope, models) in v.as_object().into_iter().flatten() {
                    for (model, p) in models.as_object().into_iter().flatten() {
                        let p = p.as_str().unwrap_or_default().to_string();
                        rows.push(vec![scope.clone(), model.clone(), p]);
                    }
                }
                table::print(&["SCOPE", "MODEL", "POLICY"], &rows);
                return Ok(());
            };
            let mut pairs = Vec::new();
            for pair in &set {
                let Some((model, policy)) = pair.split_once('=') else {
                    return Err(UsageError(format!("{pair:?}: expected MODEL=POLICY")).into());
                };
                pairs.push((model.trim(), policy.trim()));
            }
            // Checked here as the daemon checks them: a JSON object cannot carry a model
            // given twice, so the daemon would never see that the command did.
            crate::firmware::scope_policies(pairs.iter().copied())
                .map_err(|e| UsageError(e.to_string()))?;
            let body: serde_json::Map<String, Value> = pairs
                .into_iter()
                .map(|(model, policy)| (model.to_string(), json!(policy)))
                .collect();
            let v = api
                .put_json(
                    &format!("/firmware/policies/{}", encode(&scope)),
                    &Value::Object(body),
                )
                .await?;
            if out.json {
                return out.print_json(&v);
            }
            println!("policies of {scope} set");
        }
        FirmwareCmd::Scrub => {
            let v = api.post("/firmware/scrub", &json!({})).await?;
            if out.json {
                return out.print_json(&v);
            }
            let removed = v["removed"].as_array().map_or(0, Vec::len);
            let checked = v["checked"].as_u64().unwrap_or_default();
            println!("scrub done: {checked} image(s) checked, {removed} corrupted removed");
        }
    }
    Ok(())
}

async fn prefetch(api: &ApiClient, out: Output) -> Result<()> {
    let job = api.post("/firmware/prefetch", &json!({})).await?;
    let id = job["id"].as_u64().context("no job id in the answer")?;
    let progress = Progress::new("prefetching", 0);
    loop {
        let v = api.get(&format!("/firmware/jobs/{id}")).await?;
        let state = v["state"].as_str().unwrap_or_default().to_string();
        progress.set_total(v["total_bytes"].as_u64().unwrap_or(0));
        progress.set(v["done_bytes"].as_u64().unwrap_or(0));
        if state != "running" {
            progress.finish();
            if out.json {
                return out.print_json(&v);
            }
            println!("{}", progress_line(&v));
            for img in v["images"].as_array().into_iter().flatten() {
                if img["state"] == "failed" {
                    println!(
                        "  {}: {}",
                        img["file"].as_str().unwrap_or_default(),
                        img["error"]
                    );
                }
            }
            if let Some(why) = v["error"].as_str() {
                println!("  the job ended early: {why}");
            }
            if state == "failed" {
                bail!("prefetch job {id} finished with failures");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `[#########-----------]  45%  12.3/27.0 MB  2/5 images`
pub fn progress_line(job: &Value) -> String {
    let done = job["done_bytes"].as_u64().unwrap_or(0);
    let total = job["total_bytes"].as_u64().unwrap_or(0);
    let images = job["images"].as_array().map_or(0, Vec::len);
    let finished = job["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["state"] == "cached" || i["state"] == "failed")
        .count();
    let frac = if total > 0 {
        (done as f64 / total as f64).min(1.0)
    } else if images > 0 {
        finished as f64 / images as f64
    } else {
        1.0
    };
    format!(
        "{} {:3.0}%  {:.1}/{:.1} MB  {finished}/{images} images",
        super::progress::bar(frac),
        frac * 100.0,
        done as f64 / 1e6,
        total as f64 / 1e6,
    )
}
