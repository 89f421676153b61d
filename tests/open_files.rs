//! The daemon raises its soft open-file limit to the hard one at start, so a shell's default
//! (often 1,024) does not cap its connections, and warns when even the hard limit is below what
//! `phone.max_connections` needs.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The soft and hard "Max open files" of a process.
fn open_files(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Starts the daemon from a shell that first runs `ulimit`, as an installer's shell would;
/// returns it once it listens, with its stderr file.
fn start_under(ulimit: &str, dir: &std::path::Path) -> (Child, std::path::PathBuf) {
    let config = dir.join("edgeprov.toml");
    std::fs::write(&config, base_config(&dir.join("data"), "")).unwrap();
    let log = dir.join("daemon.log");
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit {ulimit} && exec \"$0\" serve --config \"$1\""
        ))
        .arg(BIN)
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let listeners = dir.join("data/listeners.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !listeners.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, log)
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let (_, hard) = open_files(std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = start_under(&format!("-S -n {}", hard.min(256)), dir.path());
    let limits = open_files(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(limits, (hard.min(1 << 20), hard));
    // The default limits (2,048 phone and 256 admin connections, 1,024 other files) fit.
    if hard >= 3328 {
        let log = std::fs::read_to_string(log).unwrap();
        assert!(!log.contains("open-file limit"), "{log}");
    }
}

#[test]
fn a_hard_limit_too_low_for_the_connections_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = start_under("-n 1024", dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("open-file limit is below what phone.max_connections (and dns.tcp_max"),
        "{log}"
    );
    assert!(log.contains("needed=3328"), "{log}");
}
