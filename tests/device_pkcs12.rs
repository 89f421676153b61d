//! A device identity exported as PKCS#12 at issue (`edgeprov pki issue-device --pkcs12`), for
//! softphones and phones that import a client identity as one password-protected file: OpenSSL
//! and the p12 crate read back the certificate, key and CA the box issued, in the modern form
//! (PBES2/AES-256, SHA-256 MAC) and with `--legacy` (3DES, SHA-1 MAC); the key is never written
//! unprotected; a missing, empty or wrong password is said clearly, before anything is issued.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

const A: &str = "001122aabbcc";

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

/// `openssl pkcs12` reading `p12` with the password in `pass` (a file), with `extra` options.
fn read_with_openssl(p12: &Path, pass: &Path, extra: &[&str]) -> std::process::Output {
    let (p12, pass) = (p12.to_str().unwrap(), format!("file:{}", pass.display()));
    let mut args = vec!["pkcs12", "-in", p12, "-passin", &pass];
    args.extend_from_slice(extra);
    openssl(&args)
}

fn pem_certs(text: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(text)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn issued_count(v: &serde_json::Value) -> usize {
    v.as_array().unwrap().len()
}

#[tokio::test]
async fn an_issued_identity_exports_as_pkcs12_that_openssl_and_the_p12_crate_read() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "J179", "secrets": {"SIP_PASSWORD": "pw-a"}}))
        .await;
    let pass = d.dir.path().join("p12.pass");
    std::fs::write(&pass, "Secr3t-pw\n").unwrap();

    for (legacy, mac_alg, encryption) in [
        (false, "MAC: sha256", "PBES2, PBKDF2, AES-256-CBC"),
        (true, "MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"),
    ] {
        let out = d.dir.path().join(format!("certs-{legacy}"));
        let mut args = vec![
            "pki",
            "issue-device",
            "--mac",
            A,
            "--out",
            out.to_str().unwrap(),
            "--pkcs12",
            "--password-file",
            pass.to_str().unwrap(),
        ];
        if legacy {
            args.push("--legacy");
        }
        let run = d.cli(&args);
        assert!(run.status.success(), "{run:?}");
        let p12 = out.join(format!("{A}.p12"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p12).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            !out.join(format!("{A}.key")).exists(),
            "the key is written only inside the protected file"
        );
        let cert = pem_certs(&std::fs::read(out.join(format!("{A}.crt"))).unwrap());
        let ca = pem_certs(d.ca_pem().as_bytes());

        // OpenSSL (no -legacy needed for either form) gives back the same certificate, the CA
        // and a key.
        let info = read_with_openssl(&p12, &pass, &["-info", "-noout"]);
        assert!(info.status.success(), "{info:?}");
        let info_text = String::from_utf8_lossy(&info.stderr);
        assert!(info_text.contains(mac_alg), "{info_text}");
        assert!(info_text.contains(encryption), "{info_text}");
        let leaf = read_with_openssl(&p12, &pass, &["-clcerts", "-nokeys"]);
        assert_eq!(pem_certs(&leaf.stdout), cert);
        let cas = read_with_openssl(&p12, &pass, &["-cacerts", "-nokeys"]);
        assert_eq!(pem_certs(&cas.stdout), ca);
        let key = read_with_openssl(&p12, &pass, &["-nocerts", "-noenc"]);
        assert!(key.status.success(), "{key:?}");
        let openssl_key = PrivateKeyDer::from_pem_slice(&key.stdout).unwrap();

        // The p12 crate reads the same.
        let bytes = std::fs::read(&p12).unwrap();
        let store = KeyStore::from_pkcs12(&bytes, "Secr3t-pw", Pkcs12ImportPolicy::Strict).unwrap();
        let (alias, chain) = store.private_key_chain().expect("a key with its chain");
        assert_eq!(alias, A);
        let chain_der: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        assert_eq!(chain_der, [cert[0].as_ref(), ca[0].as_ref()]);
        assert_eq!(chain.key().as_der(), openssl_key.secret_der());

        // The certificate and key belong together and prove the device.
        let id = Identity {
            cert_pem: String::from_utf8(leaf.stdout).unwrap(),
            key_pem: String::from_utf8(key.stdout).unwrap(),
        };
        let r = send(
            d.https,
            client_config(&d.ca_pem(), Some(&id)),
            get(&format!("/{A}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert!(r.text().contains("pw-a"), "{}", r.text());

        // A wrong password opens neither.
        let wrong = d.dir.path().join("wrong.pass");
        std::fs::write(&wrong, "not-it\n").unwrap();
        let refused = read_with_openssl(&p12, &wrong, &["-info", "-noout"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("Mac verify error"),
            "{refused:?}"
        );
        assert!(KeyStore::from_pkcs12(&bytes, "not-it", Pkcs12ImportPolicy::Strict).is_err());
    }
}

/// No password, an empty one, or one a phone's keypad cannot type: the command says which and
/// how to give one, and issues nothing (no certificate recorded, no file written).
#[tokio::test]
async fn a_missing_or_unusable_password_is_refused_before_anything_is_issued() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    let out = d.dir.path().join("certs");
    let issued = async || {
        let (s, v) = d
            .api("GET", &format!("/devices/{A}/certificates"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        issued_count(&v)
    };
    let base = [
        "pki",
        "issue-device",
        "--mac",
        A,
        "--out",
        out.to_str().unwrap(),
        "--pkcs12",
    ];

    // Standard input is not a terminal here: nobody to ask.
    let run = d.cli(&base);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("--password-file"), "{err}");

    let empty = d.dir.path().join("empty.pass");
    std::fs::write(&empty, "\n").unwrap();
    let odd = d.dir.path().join("odd.pass");
    std::fs::write(&odd, "pässwort\n").unwrap();
    for (file, says) in [(&empty, "empty"), (&odd, "ASCII")] {
        let mut args = base.to_vec();
        args.extend(["--password-file", file.to_str().unwrap()]);
        let run = d.cli(&args);
        assert!(!run.status.success());
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains(file.to_str().unwrap()) && err.contains(says),
            "{err}"
        );
    }
    let missing = d.dir.path().join("missing.pass");
    let mut args = base.to_vec();
    args.extend(["--password-file", missing.to_str().unwrap()]);
    let run = d.cli(&args);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("missing.pass"),
        "{run:?}"
    );

    // A password file without --pkcs12 is a usage error.
    let run = d.cli(&[
        "pki",
        "issue-device",
        "--mac",
        A,
        "--out",
        out.to_str().unwrap(),
        "--password-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");

    assert_eq!(issued().await, 0);
    assert!(!out.exists(), "nothing written");
}

/// On a terminal (here a pseudo-terminal from util-linux `script`) the password is asked twice
/// and not echoed, and the file opens with what was typed.
#[tokio::test]
async fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};

    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "J179"})).await;
    let out = d.dir.path().join("certs");
    let command = format!(
        "{BIN} pki issue-device --mac {A} --out {} --pkcs12 --config {}",
        out.display(),
        d.config_path().display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("EDGEPROV_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |text: &str| {
        for _ in 0..500 {
            if seen.lock().unwrap().contains(text) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("never asked {text:?}: {}", seen.lock().unwrap());
    };
    let mut stdin = child.stdin.take().unwrap();
    wait_for("Password for");
    stdin.write_all(b"Typed-pw 1\n").unwrap();
    wait_for("The same again");
    stdin.write_all(b"Typed-pw 1\n").unwrap();
    assert_eq!(
        wait_timeout(&mut child, std::time::Duration::from_secs(20)).map(|s| s.success()),
        Some(true),
        "{}",
        seen.lock().unwrap()
    );
    drop(stdin);
    reader.join().unwrap();
    let shown = seen.lock().unwrap().clone();
    assert!(!shown.contains("Typed-pw"), "echoed: {shown}");
    let bytes = std::fs::read(out.join(format!("{A}.p12"))).unwrap();
    assert!(KeyStore::from_pkcs12(&bytes, "Typed-pw 1", Pkcs12ImportPolicy::Strict).is_ok());
}
