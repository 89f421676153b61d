//! Talking to the service manager (sd_notify): READY=1 once every listener is bound and the
//! store is open, more start-up time while a long start progresses, STATUS= lines saying what
//! is served, watchdog pings while the daemon can still read its store, RELOADING=1/READY=1
//! around a reload and STOPPING=1 on shutdown. Every call is a no-op when not started by
//! systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::store::Store;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// How much more start-up time each [`starting`] asks for: a minute, in microseconds. The
/// store's upgrade reports after every chunk, and a chunk stops taking rows after five seconds
/// (`store/schema.rs`); a minute leaves room for a slow disk's commit, while a start that no
/// longer progresses is still stopped by systemd within a minute of its last report.
const EXTEND_START_USEC: u32 = 60_000_000;

/// A long start is progressing: asks for more time than `TimeoutStartSec=` allows
/// (EXTEND_TIMEOUT_USEC) and says what is being done (STATUS=, in `systemctl status`). Sent on
/// real progress, never on a timer, so a start that hangs still times out.
pub fn starting(status: &str) {
    send(&[
        NotifyState::ExtendTimeoutUsec(EXTEND_START_USEC),
        NotifyState::Status(&one_line(status)),
    ]);
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// `status` as one line: the protocol is one `KEY=value` per line, so a second line (a TOML
/// error's excerpt of the file, in a refused reload's status) would be lost or misread. The
/// excerpt's lines (those drawing the file with `|`) are left out, the others joined.
fn one_line(status: &str) -> String {
    status
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|'))
        .collect::<Vec<_>>()
        .join(": ")
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval for as long as a store read succeeds, so a daemon
/// whose database is wedged is restarted by systemd rather than left serving errors.
pub async fn watchdog(store: Store, mut stop: watch::Receiver<bool>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.schema_version()).await {
            Ok(Ok(_)) => send(&[NotifyState::Watchdog]),
            _ => tracing::error!("store unreadable: withholding the watchdog ping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_one_line_without_the_file_excerpt() {
        let toml_error = "config file e.toml: TOML parse error at line 13, column 1\n   |\n13 | bogus_key = 1\n   | ^^^^^^^^^\nunknown field `bogus_key`, expected one of `data_dir`\n";
        assert_eq!(
            one_line(&format!("serving; reload refused: {toml_error}")),
            "serving; reload refused: config file e.toml: TOML parse error at line 13, column 1: \
             unknown field `bogus_key`, expected one of `data_dir`"
        );
        assert_eq!(
            one_line("serving phones on [127.0.0.1:443]"),
            "serving phones on [127.0.0.1:443]"
        );
    }
}
