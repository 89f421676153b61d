//! `edgeprov storm`'s arguments: a CA certificate and key that are not a pair are refused up
//! front naming the files (not reported as every phone's TLS error), and a `--concurrency`
//! beyond `--phones` runs one worker per phone, needing (and reporting) only that many.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// A fresh edgeprov PKI (CA certificate and key) in `dir`.
fn ca_in(dir: &Path) -> (PathBuf, PathBuf) {
    install_provider();
    edgeprov::pki::Pki::load_or_init(
        dir,
        &Default::default(),
        "",
        edgeprov::pki::Revocations::none(),
    )
    .unwrap();
    (dir.join("ca.crt"), dir.join("ca.key"))
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn storm(shell_prefix: &str, args: &[&str], cert: &Path, key: &Path) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("{shell_prefix} exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(["storm", "--json"])
        .args(args)
        .arg("--ca-cert")
        .arg(cert)
        .arg("--ca-key")
        .arg(key)
        .output()
        .unwrap()
}

#[test]
fn a_key_that_is_not_the_cas_is_refused_naming_both_files() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, _) = ca_in(a.path());
    let (_, other_key) = ca_in(b.path());
    let target = format!("https://127.0.0.1:{}", closed_port());
    let out = storm(
        "",
        &["--target", &target, "--phones", "2"],
        &cert,
        &other_key,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "a storm ran: {out:?}");
    assert!(
        stderr.contains(&format!(
            "{} is not the private key of the certificate {}",
            other_key.display(),
            cert.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_concurrency_beyond_the_phones_needs_one_worker_per_phone() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_in(dir.path());
    let target = format!("https://127.0.0.1:{}", closed_port());
    // 300 workers would need 364 open files; 2 phones need 2 sockets.
    let out = storm(
        "ulimit -n 256 &&",
        &["--target", &target, "--phones", "2", "--concurrency", "300"],
        &cert,
        &key,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("open files"), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(r["concurrency"], 2, "{r}");
    assert_eq!(r["phones"], 2, "{r}");
    assert_eq!(r["errors_by_kind"]["refused"], 2, "{r}");
}
