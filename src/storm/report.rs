//! The storm's result: one JSON object for scripts, a short table for people.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::stats::{Summary, Tally};

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub ok: u64,
    pub errors: u64,
    pub bytes: u64,
    pub latency_ms: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub vendor: String,
    pub tls: String,
    pub concurrency: usize,
    pub resume_sessions: bool,
    /// Phones started (each ran its whole sequence or failed).
    pub phones: u64,
    /// Phones asked for but not started: their turn came after `--duration`. They are in no
    /// other figure, and do not fail the storm (the duration bounds it by design), so they are
    /// counted here rather than vanish.
    pub not_started: u64,
    /// Phones whose every file arrived with status 200 and passed the check.
    pub ok: u64,
    /// Failed requests and connections, all kinds together.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Seconds spent minting certificates before the clock started.
    pub mint_s: f64,
    pub phones_per_s: f64,
    pub requests_per_s: f64,
    pub handshakes_per_s: f64,
    pub requests: u64,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
    /// New connections (each a handshake) because the server closed a kept-alive connection
    /// without saying so; a request that crossed such a close was asked again, not an error.
    pub reconnects: u64,
    /// Every answered request, all files together.
    pub latency_ms: Summary,
    /// TCP connect + TLS handshake.
    pub handshake_ms: Summary,
    pub files: BTreeMap<String, FileReport>,
    /// The files in the order phones asked for them, for the table.
    #[serde(skip)]
    pub file_order: Vec<String>,
}

/// How the storm was run, echoed in the report.
pub struct Setup {
    pub target: String,
    pub vendor: String,
    pub tls: String,
    pub concurrency: usize,
    pub resume_sessions: bool,
    pub mint: Duration,
    /// Phones asked for (`--phones`).
    pub phones: u64,
}

pub fn build(setup: Setup, tally: &Tally, elapsed: Duration) -> Report {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = |n: u64| round2(n as f64 / secs);
    let handshakes = tally.full_handshakes + tally.resumed_handshakes;
    Report {
        target: setup.target,
        vendor: setup.vendor,
        tls: setup.tls,
        concurrency: setup.concurrency,
        resume_sessions: setup.resume_sessions,
        phones: tally.phones,
        not_started: setup.phones.saturating_sub(tally.phones),
        ok: tally.phones_ok,
        errors: tally.error_count(),
        errors_by_kind: tally.errors.iter().map(|(k, n)| (k.name(), *n)).collect(),
        elapsed_s: round3(secs),
        mint_s: round3(setup.mint.as_secs_f64()),
        phones_per_s: rate(tally.phones_ok),
        requests_per_s: rate(tally.requests),
        handshakes_per_s: rate(handshakes),
        requests: tally.requests,
        full_handshakes: tally.full_handshakes,
        resumed_handshakes: tally.resumed_handshakes,
        reconnects: tally.reconnects,
        latency_ms: tally.latency.summary(),
        handshake_ms: tally.handshake.summary(),
        files: tally
            .files
            .iter()
            .map(|(name, f)| {
                (
                    name.to_string(),
                    FileReport {
                        ok: f.ok,
                        errors: f.errors,
                        bytes: f.bytes,
                        latency_ms: f.latency.summary(),
                    },
                )
            })
            .collect(),
        file_order: tally.files.iter().map(|(n, _)| n.to_string()).collect(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report as a table for a terminal.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "storm: {} {} phones against {} (TLS {}, concurrency {}, {})",
        r.phones,
        r.vendor,
        r.target,
        r.tls,
        r.concurrency,
        if r.resume_sessions {
            "a connection per file, sessions resumed"
        } else {
            "one full handshake per phone, keep-alive"
        }
    );
    let _ = writeln!(
        out,
        "phones ok {} of {} in {:.2} s (certificates minted beforehand in {:.2} s)",
        r.ok, r.phones, r.elapsed_s, r.mint_s
    );
    if r.not_started > 0 {
        let _ = writeln!(
            out,
            "{} more phones not started: their turn came after --duration",
            r.not_started
        );
    }
    let _ = writeln!(
        out,
        "{:.0} phones/s   {:.0} requests/s   {:.0} handshakes/s ({} full, {} resumed, {} reconnects)",
        r.phones_per_s,
        r.requests_per_s,
        r.handshakes_per_s,
        r.full_handshakes,
        r.resumed_handshakes,
        r.reconnects
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "latency (ms)", "ok", "errors", "p50", "p90", "p99", "max"
    );
    let mut row = |name: &str, ok: u64, errors: u64, s: &Summary| {
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            name, ok, errors, s.p50, s.p90, s.p99, s.max
        );
    };
    row(
        "connect+handshake",
        r.full_handshakes + r.resumed_handshakes,
        0,
        &r.handshake_ms,
    );
    for name in &r.file_order {
        if let Some(f) = r.files.get(name) {
            row(name, f.ok, f.errors, &f.latency_ms);
        }
    }
    row("all requests", r.requests, r.errors, &r.latency_ms);
    if r.errors_by_kind.is_empty() {
        let _ = writeln!(out, "\nno errors");
    } else {
        let kinds: Vec<String> = r
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "\nerrors: {}", kinds.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storm::stats::ErrorKind;

    fn setup(phones: u64) -> Setup {
        Setup {
            target: "https://127.0.0.1:8443".into(),
            vendor: "avaya".into(),
            tls: "any".into(),
            concurrency: 4,
            resume_sessions: false,
            mint: Duration::ZERO,
            phones,
        }
    }

    /// A storm that started nothing, or took no measurable time, reports zeros (JSON has no
    /// NaN or infinity) and the phones it never started.
    #[test]
    fn an_empty_or_instant_storm_reports_zeros_and_what_was_not_started() {
        let r = build(setup(10), &Tally::default(), Duration::ZERO);
        assert_eq!((r.phones, r.not_started, r.ok, r.errors), (0, 10, 0, 0));
        assert_eq!(
            (r.phones_per_s, r.requests_per_s, r.handshakes_per_s),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(r.latency_ms, Summary::default());
        let json = serde_json::to_value(&r).unwrap();
        for key in ["phones", "ok", "errors", "phones_per_s", "requests_per_s"] {
            assert!(json[key].is_number(), "{key}: {json}");
        }
        for key in ["p50", "p90", "p99", "max"] {
            assert_eq!(json["latency_ms"][key], 0.0, "{json}");
        }
        assert!(table(&r).contains("10 more phones not started"));

        let mut tally = Tally {
            phones: 3,
            phones_ok: 2,
            full_handshakes: 3,
            ..Tally::default()
        };
        for ms in [10, 20, 30] {
            tally.answered("{mac}.txt", Duration::from_millis(ms), 5);
        }
        tally.error(Some("{mac}.txt"), ErrorKind::Status(404));
        let r = build(setup(3), &tally, Duration::from_secs(2));
        assert_eq!((r.not_started, r.errors), (0, 1));
        assert_eq!((r.phones_per_s, r.requests_per_s), (1.0, 1.5));
        assert_eq!((r.latency_ms.p50, r.latency_ms.max), (20.0, 30.0));
        assert_eq!(r.files["{mac}.txt"].errors, 1);
        assert!(!table(&r).contains("not started"));
    }
}
