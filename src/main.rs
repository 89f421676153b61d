//! Command-line entry point: argument parsing and dispatch, nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use edgeprov::cli::{self, Output, client::ApiClient, device::DeviceCmd, pki::PkiCmd};
use edgeprov::config::{CONFIG_ENV, Config};
use edgeprov::storm::StormArgs;

#[derive(Debug, Parser)]
#[command(
    name = "edgeprov",
    version,
    about = "Provisioning server for IP desk phones"
)]
struct Cli {
    /// Configuration file (TOML). Default: $EDGEPROV_CONFIG, else /etc/edgeprov/edgeprov.toml
    /// if it exists, else built-in defaults.
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Serve,
    /// Manage the device inventory.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Certificates.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// List alarms.
    Alarms,
    /// Simulate a boot storm of phones against a provisioning server and report how it coped.
    Storm(Box<StormArgs>),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("no other crypto provider is installed before main");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeprov: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Cli) -> anyhow::Result<()> {
    let loaded = Config::discover(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let out = Output { json: args.json };
    match args.command {
        Command::Serve => {
            edgeprov::logging::init(&loaded.config.log_level);
            if let Some(source) = &loaded.source {
                tracing::info!(config = %source.display(), "configuration loaded");
            } else {
                tracing::info!("no configuration file: running on built-in defaults");
            }
            Ok(runtime.block_on(edgeprov::daemon::run(loaded.config))?)
        }
        Command::Device(cmd) => runtime.block_on(async {
            let api = ApiClient::from_config(&loaded.config)?;
            cli::device::run(cmd, &api, out).await
        }),
        Command::Pki(cmd) => runtime.block_on(async {
            let api = ApiClient::from_config(&loaded.config)?;
            cli::pki::run(cmd, &api, out).await
        }),
        Command::Alarms => runtime.block_on(async {
            let api = ApiClient::from_config(&loaded.config)?;
            cli::alarms::run(&api, out).await
        }),
        Command::Storm(storm) => Ok(runtime.block_on(edgeprov::storm::run(*storm, out.json))?),
    }
}
