//! Log output. Started by systemd (`JOURNAL_STREAM` set), edgeprov logs to the journal through
//! tracing's own journald layer, so span and event fields (device MAC, peer, file, result)
//! become journal fields that `journalctl -u edgeprov DEVICE=…` can filter on; systemd-journal-
//! logger would have meant a second logging facade (`log`) beside tracing. Otherwise
//! human-readable lines go to stderr. Exactly one of the two, so lines never appear twice.
//!
//! The level comes from the config (`RUST_LOG` overrides it for a debugging session) and can be
//! changed while running.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Changes the log level of the running daemon.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG`, when the daemon was started with one that parses.
    from_env: Option<String>,
}

impl LogControl {
    /// The level that applies when none is set at runtime (the preferences): `RUST_LOG`'s
    /// for a debugging session started with it, else the configuration's. A reload, or a
    /// runtime level cleared, must not end that session.
    pub fn base<'a>(&'a self, config_level: &'a str) -> &'a str {
        self.from_env.as_deref().unwrap_or(config_level)
    }

    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

/// What to tell an operator whose configuration's `log_level` is not the one in force because
/// a runtime level is stored in the preferences: it outlives reloads and restarts (it is
/// meant for "a while"), so a changed `log_level` in the file that seems to do nothing must
/// say why and how to return to it. `None` when the two agree.
pub fn preference_note(preference: &str, config_level: &str) -> Option<String> {
    (preference != config_level).then(|| {
        format!(
            "the log level {preference:?} set by `edgeprov prefs set --log-level` is in force, \
             not the configuration's {config_level:?}; `edgeprov prefs set --log-level config` \
             returns to the configuration's"
        )
    })
}

/// Whether `level` is one the daemon may run on: the config's `log_level` and the runtime
/// preference alike. A blank one parses as a filter with no directives, which enables nothing:
/// the daemon would not log even its errors (`off` says that on purpose).
///
/// A directive without `=level` that is not a level is refused too. EnvFilter reads such a
/// word as a target enabled at every level and everything else off, so a misspelt level
/// (`inof`) had the daemon log next to nothing; a bare target (`hyper`) looks the same as a
/// typo, and `hyper=trace` says what it means.
pub fn check_level(level: &str) -> Result<(), String> {
    if level.trim().is_empty() {
        return Err("must not be blank (\"off\" turns logging off)".into());
    }
    EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // `=` inside a span's field list (`[span{id=7}]`) is not the directive's level.
        let after_span = directive.rfind(']').map_or(directive, |i| &directive[i..]);
        if !after_span.contains('=') && directive.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off); to filter \
                 a target give it a level: \"edgeprov=debug\""
            ));
        }
    }
    Ok(())
}

pub fn init(level: &str) -> LogControl {
    let from_env = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty() && EnvFilter::try_new(v).is_ok());
    let filter = EnvFilter::try_new(from_env.as_deref().unwrap_or(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journal = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        // Fields under their own names (`DEVICE=`, `PEER=`), not tracing-journald's default
        // `F_` prefix, so that the README's `journalctl -u edgeprov DEVICE=…` finds them.
        .map(|l| {
            l.with_syslog_identifier("edgeprov".into())
                .with_field_prefix(None)
        });
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .init();
    LogControl { handle, from_env }
}
