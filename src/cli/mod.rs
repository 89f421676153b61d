//! `edgeprov …` sub-commands that talk to the admin API.

pub mod alarms;
pub mod audit;
pub mod backup;
pub mod cert;
pub mod client;
pub mod cloud;
pub mod confirm;
pub mod device;
pub mod device_set;
pub mod dhcp;
pub mod dns;
pub mod doctor;
pub mod file;
pub mod filter;
pub mod firmware;
pub mod firmware_upload;
pub mod job;
pub mod new_password;
pub mod page;
pub mod param;
pub mod pki;
pub mod prefs;
pub mod progress;
pub mod running;
pub mod secret_values;
pub mod settings;
pub mod site;
pub mod table;
pub mod token;
pub mod uploads;
pub mod when;

pub use when::time_text;

use anyhow::Result;

/// A command line that asks for something the command cannot do as given (a value out of its
/// set, a missing `--yes`): exit status 2, as clap gives its own usage errors, so a script can
/// tell "called wrongly" (2) from "tried and failed" (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A MAC address given on the command line: one that does not parse is a usage error.
pub fn mac_arg(text: &str) -> Result<crate::model::Mac> {
    crate::model::Mac::parse(text).map_err(|e| UsageError(e.to_string()).into())
}

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

/// Exit status of a command whose standard output was closed by its reader: what a shell
/// reports for a program ended by SIGPIPE (128 + 13), as `seq 1000000 | head -1` gives.
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Ends the process quietly, with [`BROKEN_PIPE_EXIT`], when printing to standard output fails
/// because its reader has gone (`edgeprov device list | head`). Rust ignores SIGPIPE, so
/// `println!` panics there instead, with a panic message and backtrace on the terminal for what
/// is an ordinary end. Other panics are reported as before. Not for `serve`, whose panics the
/// supervisor reports.
pub fn end_quietly_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout")
            && message.ends_with(&std::io::Error::from(rustix::io::Errno::PIPE).to_string())
        {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        report(info);
    }));
}

/// Writes `bytes` (an export, a rendered or static file) to standard output as they are, ending
/// as quietly as [`end_quietly_on_broken_pipe`] does when the reader has gone (`edgeprov device
/// export | head`). `write_all` returns that as an error where `println!` panics, and it used to
/// reach the user as `edgeprov: Broken pipe (os error 32)` with status 1, as if the command
/// itself had failed.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(BROKEN_PIPE_EXIT)
        }
        written => Ok(written?),
    }
}
