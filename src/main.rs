//! Command-line entry point: argument parsing and dispatch, nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use edgeprov::cli::{
    self, Output, alarms::AlarmArgs, audit::AuditArgs, cert::CertCmd, client::ApiClient,
    client::RemoteTarget, cloud::CloudCmd, device::DeviceCmd, dhcp::DhcpCmd, dns::DnsCmd,
    file::FileCmd, firmware::FirmwareCmd, job::JobCmd, param::ParamCmd, pki::PkiCmd,
    prefs::PrefsCmd, settings::SettingsCmd, site::GroupCmd, site::SiteCmd, token::TokenCmd,
};
use edgeprov::config::Config;
use edgeprov::storm::StormArgs;

#[derive(Debug, Parser)]
#[command(
    name = "edgeprov",
    version,
    about = "Provisioning server for IP desk phones",
    after_help = ENVIRONMENT
)]
struct Cli {
    /// Configuration file (TOML). Default: $EDGEPROV_CONFIG (unless empty), else
    /// /etc/edgeprov/edgeprov.toml if it exists, else built-in defaults. Commands that talk to
    /// the daemon take its admin address and data directory (CA, token) from it; $EDGEPROV_TOKEN
    /// overrides the token. Not read with --url.
    // Not clap's `env`: it took an empty variable as an empty `--config` and blamed the
    // option; `Config::discover` reads the variable instead.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Manage the box whose admin API is at https://HOST:PORT from this machine (default:
    /// $EDGEPROV_URL, unless empty). Given before the command; needs --ca-cert and a token in
    /// $EDGEPROV_TOKEN or --token-file; nothing local (config, data directory) is read.
    // Not `global`: `firmware add --url` and `cloud register --url` name other URLs.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With --url: the box's CA certificate (its DATA_DIR/pki/ca.crt, copied here), the only
    /// issuer trusted for it (default: $EDGEPROV_CA_CERT, unless empty).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// With --url: a file whose first line is the API token (default: $EDGEPROV_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// What `edgeprov --help` says besides the commands: what the environment changes, where the
/// CLI finds the daemon, and the exit statuses a script tests, so an installer does not need
/// the README to script against a box.
const ENVIRONMENT: &str = "\
Environment:
  EDGEPROV_CONFIG  The configuration file when --config is not given (empty: unset)
  EDGEPROV_TOKEN   The admin API token; default: the daemon's own, DATA_DIR/admin.token
                   (readable by root and the daemon's user); with --url, required unless
                   --token-file is given
  EDGEPROV_URL     --url when it is not given (empty: unset)
  EDGEPROV_CA_CERT --ca-cert when it is not given (empty: unset)
  RUST_LOG         serve: a log filter that overrides log_level

The commands that list or change what the box holds talk to the running daemon's admin API:
its address from DATA_DIR/listeners.json, else [admin] listen; only the box's CA
(DATA_DIR/pki/ca.crt) is trusted. From another machine, name the box instead:
  EDGEPROV_TOKEN=… edgeprov --url https://prov.example.com:9443 --ca-cert box-ca.crt device list
(its admin.listen must be reachable, the host one of its pki.server_names). serve, doctor,
restore, storm, dns check and dhcp options work on this machine and refuse --url; settings
reads only the files given and ignores it. Times are shown in UTC.

Exit status: 0 done; 1 failed (one line on standard error saying why); 2 called wrongly (an
unknown option, a value that does not parse, nothing to change, a missing --yes); 141 when
standard output's reader went away (`| head`).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Serve,
    /// Lint Avaya, Yealink and Poly settings files, or evaluate Avaya ones, locally.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// The DNS responder: check what it serves, manage records.
    #[command(subcommand)]
    Dns(DnsCmd),
    /// DHCP leases, and option definitions for an external DHCP server.
    #[command(subcommand)]
    Dhcp(DhcpCmd),
    /// Restore a backup into the data directory (the daemon must be stopped; asks first,
    /// --yes does not). The replaced data directory is kept beside the new one.
    ///
    /// Example: edgeprov restore box.backup --passphrase-file /root/backup.pass
    Restore {
        file: PathBuf,
        /// A file whose first line is the backup's passphrase (spaces and tabs at its ends are no part of it).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        confirm: cli::confirm::Confirm,
    },
    /// Check ports, certificates, the clock, the store and DNS/DHCP settings; say what to fix.
    Doctor,
    /// Simulate a boot storm of phones against a provisioning server and report how it coped.
    Storm(Box<StormArgs>),
    #[command(flatten)]
    Remote(Remote),
}

/// Commands that talk to the running daemon's admin API.
#[derive(Debug, Subcommand)]
enum Remote {
    /// Manage the device inventory.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Device certificates: issue one for a softphone, a test or a simulator.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// The box's certificates: show with expiry, regenerate, install, trusted device roots.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Alarms: list (filtered), clear one.
    #[command(alias = "alarm")]
    Alarms(AlarmArgs),
    /// Sites: list, create, change, delete.
    #[command(subcommand)]
    Site(SiteCmd),
    /// Groups in use.
    #[command(subcommand)]
    Group(GroupCmd),
    /// API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Runtime preferences: log level, check-in and audit retention.
    #[command(subcommand)]
    Prefs(PrefsCmd),
    /// Take a consistent backup (database, PKI, token, configuration) from the running daemon.
    #[command(
        after_help = "Examples:\n  edgeprov backup --out /var/backups/edgeprov.backup --passphrase-file /root/backup.pass"
    )]
    Backup {
        /// The file to write the backup to (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A file whose first line is a passphrase to encrypt the backup with (spaces and tabs at its ends are no part of it).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// The audit log: every change and every refused attempt, newest first.
    Audit(AuditArgs),
    /// The cloud enrollment service: register this box, sync status.
    #[command(subcommand)]
    Cloud(CloudCmd),
    /// Parameters of a layer (global, site:NAME, group:NAME, model:NAME).
    #[command(subcommand)]
    Param(ParamCmd),
    /// Static files that override generated ones.
    #[command(subcommand)]
    File(FileCmd),
    /// Firmware catalogue, cache, uploads, prefetch and policies.
    #[command(subcommand)]
    Firmware(FirmwareCmd),
    /// Bulk jobs over a selection of devices: create, follow, pause, resume, stop, delete.
    #[command(subcommand)]
    Job(JobCmd),
    /// Print what device MAC would get for file NAME, its secret values shown as ********.
    Render {
        /// The device's MAC address.
        #[arg(long)]
        mac: String,
        /// The file the phone asks for (46xxsettings.txt, {mac}.txt, y000000000028.cfg, …).
        name: String,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("no other crypto provider is installed before main");
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgeprov: {}", message(&e));
            if e.downcast_ref::<cli::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause the text already holds (many
/// errors name their source in their own message, some followed by what to do about it).
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(args: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(args.command, Command::Serve) {
        cli::end_quietly_on_broken_pipe();
    }
    let out = Output { json: args.json };
    let target = remote_target(&args)?;
    let local_only = |command: &str| local_only(target.as_ref(), args.url.is_some(), command);
    let remote = match args.command {
        // Local files only: no config, daemon or runtime needed.
        Command::Settings(cmd) => {
            return Ok(if cli::settings::run(cmd, out)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Serve => {
            local_only("serve")?;
            None
        }
        Command::Dns(cmd) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match cmd {
                // It queries the responder the local config describes, not only the API.
                DnsCmd::Check => {
                    local_only("dns check")?;
                    let loaded = Config::discover(args.config.as_deref())?;
                    runtime.block_on(cli::dns::check(&loaded.config, out))?;
                }
                DnsCmd::Records(cmd) => runtime.block_on(async {
                    let api = api_client(target.as_ref(), args.config.as_deref())?;
                    cli::dns::records(cmd, &api, out).await
                })?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Dhcp(cmd) => {
            if !cmd.needs_api() {
                // Option definitions come from the config (and, when its HTTPS port is 0, the
                // running daemon's listener file).
                local_only("dhcp options")?;
                let loaded = Config::discover(args.config.as_deref())?;
                cli::dhcp::options(cmd, &loaded.config, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let api = api_client(target.as_ref(), args.config.as_deref())?;
                cli::dhcp::leases(cmd, &api, out).await
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Restore {
            file,
            passphrase_file,
            confirm,
        } => {
            local_only("restore")?;
            let loaded = Config::discover(args.config.as_deref())?;
            let pass = cli::backup::passphrase(passphrase_file.as_deref())?;
            cli::backup::restore(&loaded.config, out, &file, pass, confirm)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Doctor => {
            local_only("doctor")?;
            let loaded = Config::discover(args.config.as_deref())?;
            return Ok(if cli::doctor::run(&loaded.config, out.json)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Storm(storm) => {
            // Its server is --target, and it reads no box's data: a --url would be ignored.
            local_only("storm")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(edgeprov::storm::run(*storm, out.json))
                .map_err(|e| match e {
                    edgeprov::storm::StormError::Usage(m) => cli::UsageError(m).into(),
                    e => anyhow::Error::new(e),
                })?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Remote(r) => Some(r),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Some(remote) = remote else {
        let loaded = Config::discover(args.config.as_deref())?;
        let log = edgeprov::logging::init(&loaded.config.log_level);
        match &loaded.source {
            Some(source) => tracing::info!(config = %source.display(), "configuration loaded"),
            None => tracing::info!("no configuration file: running on built-in defaults"),
        }
        runtime.block_on(edgeprov::daemon::run(loaded, Some(log)))?;
        return Ok(ExitCode::SUCCESS);
    };
    runtime.block_on(async {
        let api = api_client(target.as_ref(), args.config.as_deref())?;
        match remote {
            Remote::Device(cmd) => cli::device::run(cmd, &api, out).await,
            Remote::Pki(cmd) => cli::pki::run(cmd, &api, out).await,
            Remote::Cert(cmd) => cli::cert::run(cmd, &api, out).await,
            Remote::Alarms(args) => cli::alarms::run(args, &api, out).await,
            Remote::Site(cmd) => cli::site::run(cmd, &api, out).await,
            Remote::Group(cmd) => cli::site::groups(cmd, &api, out).await,
            Remote::Token(cmd) => cli::token::run(cmd, &api, out).await,
            Remote::Prefs(cmd) => cli::prefs::run(cmd, &api, out).await,
            Remote::Backup {
                out: file,
                passphrase_file,
            } => {
                let pass = cli::backup::passphrase(passphrase_file.as_deref())?;
                cli::backup::backup(&api, out, &file, pass).await
            }
            Remote::Audit(args) => cli::audit::run(&api, out, args).await,
            Remote::Cloud(cmd) => cli::cloud::run(cmd, &api, out).await,
            Remote::Param(cmd) => cli::param::run(cmd, &api, out).await,
            Remote::File(cmd) => cli::file::run(cmd, &api, out).await,
            Remote::Firmware(cmd) => cli::firmware::run(cmd, &api, out).await,
            Remote::Job(cmd) => cli::job::run(cmd, &api, out).await,
            Remote::Render { mac, name } => {
                let mac = cli::mac_arg(&mac)?;
                let bytes = api
                    .get_bytes(&format!(
                        "/devices/{mac}/files/{}",
                        cli::client::encode(&name)
                    ))
                    .await?;
                if out.json {
                    let content = String::from_utf8(bytes.to_vec())
                        .map_err(|_| anyhow::anyhow!("{name} is not text: leave out --json"))?;
                    return out.print_json(
                        &serde_json::json!({"mac": mac, "name": name, "content": content}),
                    );
                }
                cli::write_stdout(&bytes)
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The box named by `--url` (else `$EDGEPROV_URL`), with its CA certificate and token file;
/// `None` for the box the local config describes. `--ca-cert` and `--token-file` without a URL
/// are usage errors: silently using the local box instead would change the wrong one.
fn remote_target(args: &Cli) -> anyhow::Result<Option<RemoteTarget>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(url) = args.url.clone().or_else(|| env("EDGEPROV_URL")) else {
        let given = match (&args.ca_cert, &args.token_file) {
            (Some(_), _) => "--ca-cert",
            (None, Some(_)) => "--token-file",
            (None, None) => return Ok(None),
        };
        return Err(cli::UsageError(format!(
            "{given} is for a box named with --url https://HOST:PORT (or EDGEPROV_URL); \
             without one the CLI talks to the box the config describes"
        ))
        .into());
    };
    Ok(Some(RemoteTarget {
        url,
        ca_cert: args
            .ca_cert
            .clone()
            .or_else(|| env("EDGEPROV_CA_CERT").map(PathBuf::from)),
        token_file: args.token_file.clone(),
    }))
}

/// The admin API client: for the box named by `--url`, else the one the local config describes.
fn api_client(
    target: Option<&RemoteTarget>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ApiClient> {
    match target {
        Some(target) => ApiClient::from_url(target),
        None => ApiClient::from_config(&Config::discover(config)?.config),
    }
}

/// Refuses a remote box for a command that works on this machine's own configuration, data
/// directory or daemon: quietly doing it locally instead would act on the wrong box.
fn local_only(target: Option<&RemoteTarget>, url_given: bool, command: &str) -> anyhow::Result<()> {
    if target.is_none() {
        return Ok(());
    }
    let source = match url_given {
        true => "leave out --url",
        false => "unset EDGEPROV_URL",
    };
    Err(cli::UsageError(format!(
        "{command} works on this machine, not on a box named by URL: {source} (run it on the \
         box itself)"
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Every command and every option has a line of help (the README promises `edgeprov
    /// COMMAND --help` documents them all).
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                // Options only: a positional argument is named in the usage line.
                if matches!(id, "help" | "version") || arg.is_positional() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "edgeprov", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:#?}");
    }

    /// clap's own checks over every command (no two options with one short flag, such as the
    /// `-y` of `--yes`), which otherwise run only when that command is used.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The commands whose values have a shape to learn (filters, NAME=VALUE, layers, times,
    /// selections) show examples in their help, and every example there is a command line that
    /// parses, so none goes stale when an option changes.
    #[test]
    fn help_examples_are_there_and_parse() {
        fn examples(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
            if let Some(text) = cmd.get_after_help() {
                out.push((path.to_string(), text.to_string()));
            }
            for sub in cmd.get_subcommands() {
                examples(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut found = Vec::new();
        examples(&super::Cli::command(), "edgeprov", &mut found);
        for wanted in [
            "edgeprov device add",
            "edgeprov device list",
            "edgeprov device import",
            "edgeprov param set",
            "edgeprov job create",
            "edgeprov token create",
            "edgeprov pki revoke",
            "edgeprov firmware policy",
            "edgeprov backup",
        ] {
            assert!(
                found.iter().any(|(path, _)| path == wanted),
                "{wanted} --help has no examples"
            );
        }
        for (path, text) in found {
            let text = text.replace("\\\n", " ");
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("edgeprov "))
            {
                let line = line.split(" #").next().unwrap_or(line);
                let args = line.split_whitespace();
                if let Err(e) = super::Cli::try_parse_from(args) {
                    panic!("{path}: example {line:?} does not parse: {e}");
                }
            }
        }
    }
}
