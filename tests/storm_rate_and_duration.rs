//! `edgeprov storm --rate R --duration S`: a phone whose turn at rate R falls after S seconds is
//! not started, whatever R (a slow rate must not hold the storm past its duration, and a tiny one
//! must not panic a worker and hide its phones).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Runs a storm of 3 phones (one worker each) at `rate` for 1 s against the daemon, whose
/// inventory has them; returns the report, stderr, success and how long it took.
fn storm_at_rate(d: &Daemon, rate: &str) -> (Value, String, bool, Duration) {
    let pki = d.data_dir().join("pki");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["storm", "--json", "--phones", "3", "--concurrency", "3"])
        .args(["--duration", "1", "--device-file-only", "--rate", rate])
        .arg("--target")
        .arg(format!("https://127.0.0.1:{}", d.https.port()))
        .arg("--ca-cert")
        .arg(pki.join("ca.crt"))
        .arg("--ca-key")
        .arg(pki.join("ca.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edgeprov storm");
    if wait_timeout(&mut child, Duration::from_secs(20)).is_none() {
        child.kill().unwrap();
        panic!("--rate {rate} --duration 1 still running after 20 s");
    }
    let took = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--rate {rate}: {e}: {stderr}"));
    (report, stderr, out.status.success(), took)
}

fn load_three_phones(d: &Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("phones.csv");
    let emitted = Command::new(BIN)
        .args(["storm", "--phones", "3", "--emit-inventory"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(emitted.status.success(), "{emitted:?}");
    let imported = d.cli(&["device", "import", "--create-sites", csv.to_str().unwrap()]);
    assert!(imported.status.success(), "{imported:?}");
}

#[test]
fn a_slow_rate_stops_starting_phones_at_the_duration() {
    let d = Daemon::start();
    load_three_phones(&d);
    // At 0.05 phones/s the second phone's turn is 20 s in: after the 1 s duration.
    let (r, stderr, success, took) = storm_at_rate(&d, "0.05");
    assert!(success, "{r} {stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(r["phones"], 1, "{r}");
    assert_eq!(r["ok"], 1, "{r}");
    // The two whose turn never came are reported, not lost.
    assert_eq!(r["not_started"], 2, "{r}");
}

#[test]
fn a_rate_too_small_for_a_duration_does_not_panic() {
    let d = Daemon::start();
    load_three_phones(&d);
    let (r, stderr, success, _) = storm_at_rate(&d, "1e-30");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(success, "{r} {stderr}");
    assert_eq!(r["phones"], 1, "{r}");
    assert_eq!(r["ok"], 1, "{r}");
    assert_eq!(r["not_started"], 2, "{r}");
}
