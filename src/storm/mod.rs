//! `edgeprov storm`: a boot storm of simulated phones against a provisioning server, the way a
//! site's phones all come up after a power cut. Installers use it to prove a box before
//! cut-over; `benches/storm-vs-nginx.sh` uses it to measure edgeprov against nginx.
//!
//! Each phone has its own MAC, its own client certificate minted in memory from the given CA,
//! its vendor's User-Agent and boot sequence; every answer is checked (status 200, the phone's
//! own secret in its per-device file and no secret anywhere else). Bounded by `--phones` and
//! `--duration` (phones in flight at the deadline finish, each request within `--timeout-ms`).

mod addresses;
mod client;
mod counted;
pub mod emit;
mod identity;
pub mod phone;
pub mod report;
pub mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;

pub use identity::TlsVersion;
pub use phone::Vendor;

use crate::pki::{DeviceMinter, PkiError};
use addresses::Addresses;
use client::Plan;
use phone::{Phone, mac_for};
use stats::Tally;

/// Most phones in one storm: every identity is made before the clock starts and kept in memory
/// (a few KB each).
pub const MAX_PHONES: u64 = 100_000;
pub const MAX_CONCURRENCY: usize = 10_000;
pub const MAX_DURATION_S: u64 = 3_600;
/// Longest wait for one connection or request: a storm ends at most this long per file after
/// `--duration`, so an unbounded wait would make the storm unbounded in time.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Longest `--mac-prefix`: two hex digits are left for the phones' numbers (255 phones).
const MAX_PREFIX_DIGITS: usize = 10;

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// The server, `https://HOST:PORT`. Without it, only the --emit-* files are written.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Distinct phones to simulate (at most 100000).
    #[arg(long, default_value_t = 1000)]
    pub phones: u64,
    /// Phones booting at the same time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The phones' vendor: its User-Agent, boot sequence and file formats.
    #[arg(long, value_enum, default_value_t = Vendor::Avaya)]
    pub vendor: Vendor,
    /// CA certificate (PEM) that signs the phones' certificates and the server's.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_key: Option<PathBuf>,
    /// Hex digits the phones' MACs start with; the phone's number fills the rest.
    #[arg(long, default_value = "0200", value_name = "HEX")]
    pub mac_prefix: String,
    /// A new connection for every file, resuming the phone's TLS session, instead of one full
    /// handshake per phone and keep-alive.
    #[arg(long)]
    pub resume_sessions: bool,
    /// Also fetch the firmware image the phone's files name; a phone whose files name none fails.
    #[arg(long)]
    pub firmware: bool,
    /// Stop starting phones after this many seconds.
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub duration: u64,
    /// Start phones at this rate (phones/s) instead of as fast as the concurrency allows.
    #[arg(long, value_name = "PHONES_PER_S")]
    pub rate: Option<f64>,
    /// TLS versions the phones offer.
    #[arg(long, value_enum, default_value_t = TlsVersion::Any)]
    pub tls: TlsVersion,
    /// Deadline of each connection and each request (at most 300000).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Fetch only the per-device file (the step that proves mutual TLS and per-device secrets).
    #[arg(long)]
    pub device_file_only: bool,
    /// Write the matching device inventory (CSV for `edgeprov device import`).
    #[arg(long, value_name = "FILE.csv")]
    pub emit_inventory: Option<PathBuf>,
    /// Write the same files as static files for a plain web server.
    #[arg(long, value_name = "DIR")]
    pub emit_static: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StormError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("cannot mint a phone certificate: {0}")]
    Mint(String),
    #[error("TLS client configuration: {0}")]
    Tls(String),
    #[error("cannot resolve {target}: {reason}")]
    Resolve { target: String, reason: String },
    #[error("cannot render {0} as edgeprov would")]
    Render(String),
    #[error("{path}: {source}")]
    Emit {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{failed} of {phones} phones failed ({errors} errors)")]
    Failed {
        failed: u64,
        phones: u64,
        errors: u64,
    },
}

/// The target URL taken apart: host (for SNI and certificate checks) and `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub authority: String,
}

/// Accepts `https://HOST[:PORT][/]`; the port defaults to 443.
pub fn parse_target(url: &str) -> Result<Target, StormError> {
    let bad = |why: &str| StormError::Usage(format!("--target {url:?}: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("only https:// is supported (the storm is mutual TLS)"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("give the server only, without a path"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let port = uri.port_u16().unwrap_or(443);
    Ok(Target {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        authority: format!("{host}:{port}"),
    })
}

/// Checks the bounds and the MAC prefix; returns the phones to simulate.
pub fn phones(args: &StormArgs) -> Result<Vec<Phone>, StormError> {
    let usage = |s: String| Err(StormError::Usage(s));
    if args.phones == 0 || args.phones > MAX_PHONES {
        return usage(format!("--phones must be 1..={MAX_PHONES}"));
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return usage(format!("--concurrency must be 1..={MAX_CONCURRENCY}"));
    }
    if args.duration == 0 || args.duration > MAX_DURATION_S {
        return usage(format!("--duration must be 1..={MAX_DURATION_S} seconds"));
    }
    if args.timeout_ms == 0 || args.timeout_ms > MAX_TIMEOUT_MS {
        return usage(format!("--timeout-ms must be 1..={MAX_TIMEOUT_MS}"));
    }
    if args.firmware && args.device_file_only {
        // The image is named by the files --device-file-only leaves out, so every phone would
        // fail for want of one.
        return usage("--firmware needs the whole sequence: drop --device-file-only".into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return usage("--rate must be a positive number".into());
    }
    let prefix = args.mac_prefix.to_ascii_lowercase();
    if let Some(bad) = prefix.chars().find(|c| !c.is_ascii_hexdigit()) {
        return usage(format!(
            "--mac-prefix {:?}: {bad:?} is not a hex digit",
            args.mac_prefix
        ));
    }
    if prefix.len() > MAX_PREFIX_DIGITS {
        return usage(format!(
            "--mac-prefix {:?}: {} hex digits, at most {MAX_PREFIX_DIGITS} (the phones' numbers \
             fill the rest of the 12)",
            args.mac_prefix,
            prefix.len()
        ));
    }
    // Phone numbers count from 1, so the digits after the prefix number 16^n - 1 phones.
    let digits = 12 - prefix.len();
    let room = 16u64.pow(digits as u32) - 1;
    let too_many = || {
        StormError::Usage(format!(
            "--mac-prefix {prefix} leaves {digits} hex digits for the phones' numbers: at most \
             {room} phones, not {}",
            args.phones
        ))
    };
    if args.phones > room {
        return Err(too_many());
    }
    (1..=args.phones)
        .map(|i| {
            mac_for(&prefix, i)
                .map(|mac| Phone {
                    vendor: args.vendor,
                    mac,
                })
                .ok_or_else(too_many)
        })
        .collect()
}

/// Open files the simulator needs besides its phones' sockets (standard streams, the runtime,
/// the CA files).
const OTHER_FILES: usize = 64;

/// Every phone in flight holds a socket: raises the soft open-file limit to the hard one (a
/// shell's default of 1,024 would otherwise fail connections long before `--concurrency`),
/// and refuses a concurrency the hard limit cannot hold.
fn check_open_files(concurrency: usize) -> Result<(), StormError> {
    let limit = crate::open_files::raise().map_err(|e| {
        StormError::Usage(format!("cannot raise the open-file limit (ulimit -n): {e}"))
    })?;
    let needed = concurrency + OTHER_FILES;
    if limit.now < needed as u64 {
        return Err(StormError::Usage(format!(
            "--concurrency {concurrency} needs {needed} open files, but the limit is {} \
             (ulimit -n): lower --concurrency or raise the limit",
            limit.now
        )));
    }
    Ok(())
}

/// `text` as one word for a POSIX shell: as is when it holds nothing a shell would split or
/// expand, else in single quotes, so a suggested command can be pasted as printed.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs the command: emits the requested files, then storms the target if one is given.
/// Prints the report (JSON with `json`) and fails when any phone failed.
pub async fn run(args: StormArgs, json: bool) -> Result<(), StormError> {
    let phones = phones(&args)?;
    // What was written, and the next step, go to stderr: standard output is the storm's report
    // (one JSON document with --json), and a silent success left the operator guessing.
    if let Some(path) = &args.emit_inventory {
        emit::write_inventory(path, &phones)?;
        eprintln!(
            "wrote {} devices to {}: load them with `edgeprov device import --create-sites {}`",
            phones.len(),
            path.display(),
            shell_word(&path.display().to_string())
        );
    }
    if let Some(dir) = &args.emit_static {
        emit::write_static(dir, &phones, args.firmware)?;
        eprintln!(
            "wrote the files of {} phones to {}: serve it with a web server and storm that \
             with --target",
            phones.len(),
            dir.display()
        );
    }
    let Some(url) = &args.target else {
        if args.emit_inventory.is_none() && args.emit_static.is_none() {
            return Err(StormError::Usage(
                "give --target, or --emit-inventory / --emit-static".into(),
            ));
        }
        // Without a storm there is no report: with --json, what was written is the document.
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "inventory": args.emit_inventory,
                    "static": args.emit_static,
                    "phones": phones.len(),
                })
            );
        }
        return Ok(());
    };
    let target = parse_target(url)?;
    let (Some(ca_cert), Some(ca_key)) = (&args.ca_cert, &args.ca_key) else {
        return Err(StormError::Usage(
            "--ca-cert and --ca-key are needed to mint the phones' certificates".into(),
        ));
    };
    // More workers than phones would only wait for phones that do not exist: the storm runs at
    // most one per phone, and needs (and reports) only as many sockets.
    let concurrency = args.concurrency.min(phones.len());
    check_open_files(concurrency)?;
    let addrs = resolve(&target).await?;
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| StormError::Usage(format!("--target host: {e}")))?;

    let common = identity::Common::new(
        DeviceMinter::from_files(ca_cert, ca_key)?,
        args.tls,
        args.resume_sessions,
    )?;
    let mint_started = Instant::now();
    let macs: Vec<_> = phones.iter().map(|p| p.mac).collect();
    let configs = tokio::task::spawn_blocking(move || identity::prepare(&common, &macs))
        .await
        .map_err(|_| StormError::Mint("the minting task failed".into()))??;
    let mint = mint_started.elapsed();

    let plan = Plan {
        addrs,
        server_name,
        authority: target.authority.clone(),
        timeout: Duration::from_millis(args.timeout_ms),
        device_only: args.device_file_only,
        firmware: args.firmware,
        resume: args.resume_sessions,
    };
    let started = Instant::now();
    let tally = storm(
        Arc::new(phones),
        Arc::new(configs),
        Arc::new(plan),
        &args,
        concurrency,
        started,
    )
    .await;
    let elapsed = started.elapsed();

    let report = report::build(
        report::Setup {
            target: url.clone(),
            vendor: format!("{:?}", args.vendor).to_ascii_lowercase(),
            tls: match args.tls {
                TlsVersion::Any => "any",
                TlsVersion::V12 => "1.2",
                TlsVersion::V13 => "1.3",
            }
            .into(),
            concurrency,
            resume_sessions: args.resume_sessions,
            mint,
            phones: args.phones,
        },
        &tally,
        elapsed,
    );
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report always serialises")
        );
    } else {
        print!("{}", report::table(&report));
    }
    if report.errors > 0 || report.ok < report.phones {
        return Err(StormError::Failed {
            failed: report.phones - report.ok,
            phones: report.phones,
            errors: report.errors,
        });
    }
    Ok(())
}

/// Every address the target's host resolves to, in the resolver's order: a phone goes down
/// the list until one takes its connection (see [`Addresses`]).
async fn resolve(target: &Target) -> Result<Addresses, StormError> {
    let err = |reason: String| StormError::Resolve {
        target: target.authority.clone(),
        reason,
    };
    let list: Vec<SocketAddr> = tokio::net::lookup_host(&target.authority)
        .await
        .map_err(|e| err(e.to_string()))?
        .collect();
    if list.is_empty() {
        return Err(err("no address".into()));
    }
    Ok(Addresses::new(list))
}

/// `concurrency` workers take the next phone until all have booted or the duration is over.
async fn storm(
    phones: Arc<Vec<Phone>>,
    configs: Arc<Vec<Arc<rustls::ClientConfig>>>,
    plan: Arc<Plan>,
    args: &StormArgs,
    concurrency: usize,
    started: Instant,
) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = started + Duration::from_secs(args.duration);
    let rate = args.rate;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (phones, configs, plan, next) =
                (phones.clone(), configs.clone(), plan.clone(), next.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let (Some(phone), Some(config)) = (phones.get(i), configs.get(i)) else {
                        break;
                    };
                    if let Some(rate) = rate {
                        // A phone whose turn comes after the deadline is not started: waiting
                        // for it would run the storm past --duration (a tiny rate puts its turn
                        // beyond what a Duration can hold).
                        let at = Duration::try_from_secs_f64(i as f64 / rate)
                            .ok()
                            .and_then(|offset| started.checked_add(offset))
                            .filter(|at| *at < deadline);
                        let Some(at) = at else { break };
                        tokio::time::sleep_until(at.into()).await;
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    tally.phones += 1;
                    if client::boot(phone, config.clone(), &plan, &mut tally).await {
                        tally.phones_ok += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            total.merge(t);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn shell_words_paste_as_one_argument() {
        assert_eq!(shell_word("/tmp/inv-1.csv"), "/tmp/inv-1.csv");
        assert_eq!(shell_word("/tmp/my inv.csv"), "'/tmp/my inv.csv'");
        assert_eq!(shell_word("it's$x"), r"'it'\''s$x'");
        assert_eq!(shell_word(""), "''");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        storm: StormArgs,
    }

    fn args(extra: &[&str]) -> StormArgs {
        let mut argv = vec!["storm"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).storm
    }

    #[test]
    fn targets() {
        let t = parse_target("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("127.0.0.1", "127.0.0.1:8443")
        );
        let t = parse_target("https://[::1]:8443/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:8443")
        );
        assert_eq!(
            parse_target("https://prov.lan").unwrap().authority,
            "prov.lan:443"
        );
        for bad in ["http://h:80", "https://h/46xxsettings.txt", "h:443", ""] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_and_prefix() {
        let p = phones(&args(&["--phones", "3", "--vendor", "yealink"])).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].mac.to_string(), "020000000003");
        assert_eq!(p[0].vendor, Vendor::Yealink);
        for bad in [
            &["--phones", "0"][..],
            &["--phones", "100001"],
            &["--concurrency", "0"],
            &["--duration", "0"],
            &["--rate", "0"],
            &["--timeout-ms", "0"],
            &["--timeout-ms", "300001"],
            &["--firmware", "--device-file-only"],
            &["--mac-prefix", "0200xx"],
            &["--mac-prefix", "02000000ff", "--phones", "300"],
        ] {
            assert!(phones(&args(bad)).is_err(), "{bad:?}");
        }
    }

    /// A refused `--mac-prefix` says what is wrong with it: which character is not hex, how
    /// long it may be, or how many phones it leaves room for. All three used to say "at most
    /// 10 hex digits" or "too few digits", whatever was wrong.
    #[test]
    fn a_refused_mac_prefix_says_why() {
        let refused = |extra: &[&str]| match phones(&args(extra)) {
            Err(StormError::Usage(m)) => m,
            other => panic!("{extra:?}: {other:?}"),
        };
        assert_eq!(
            refused(&["--mac-prefix", "02zz"]),
            r#"--mac-prefix "02zz": 'z' is not a hex digit"#
        );
        assert_eq!(
            refused(&["--mac-prefix", "02:00"]),
            r#"--mac-prefix "02:00": ':' is not a hex digit"#
        );
        assert_eq!(
            refused(&["--mac-prefix", "020000000000"]),
            r#"--mac-prefix "020000000000": 12 hex digits, at most 10 (the phones' numbers fill the rest of the 12)"#
        );
        assert_eq!(
            refused(&["--mac-prefix", "02000000FF", "--phones", "256"]),
            "--mac-prefix 02000000ff leaves 2 hex digits for the phones' numbers: at most 255 \
             phones, not 256"
        );
        assert_eq!(
            refused(&["--mac-prefix", "0200ffff", "--phones", "65536"]),
            "--mac-prefix 0200ffff leaves 4 hex digits for the phones' numbers: at most 65535 \
             phones, not 65536"
        );
        let last = phones(&args(&["--mac-prefix", "02000000ff", "--phones", "255"])).unwrap();
        assert_eq!(last[254].mac.to_string(), "02000000ffff");
    }
}
