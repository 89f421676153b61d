//! `edgeprov storm` against the real daemon: the inventory it emits, loaded through the admin
//! API, lets every simulated phone fetch its own per-device file with its own secret.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

const PHONES: usize = 50;

/// Loads an emitted inventory through the admin API (one POST per line).
async fn load_inventory(d: &Daemon, csv: &str) {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        let mut params = serde_json::Map::new();
        let mut secrets = serde_json::Map::new();
        let mut device = serde_json::Map::new();
        for (name, value) in header.iter().zip(line.split(',')) {
            match (*name, name.strip_prefix("secret:")) {
                ("mac" | "model" | "serial" | "site" | "group" | "label", _) => {
                    device.insert(name.to_string(), json!(value));
                }
                (_, Some(secret)) => {
                    secrets.insert(secret.to_string(), json!(value));
                }
                (param, None) => {
                    params.insert(param.to_string(), json!(value));
                }
            }
        }
        device.insert("params".into(), Value::Object(params));
        device.insert("secrets".into(), Value::Object(secrets));
        d.add_device(Value::Object(device)).await;
    }
}

/// Emits `phones` phones of `vendor` with the MAC prefix `prefix` and loads them into the daemon.
async fn load_emitted(d: &Daemon, vendor: &str, prefix: &str, phones: usize) {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join(format!("{vendor}.csv"));
    let emitted = Command::new(BIN)
        .args(["storm", "--vendor", vendor, "--mac-prefix", prefix])
        .args(["--phones", &phones.to_string()])
        .arg("--emit-inventory")
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(emitted.status.success(), "{emitted:?}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), phones + 1);
    load_inventory(d, &csv).await;
}

/// `--emit-inventory` says what it wrote (path, count) and the next step, on stderr, and that
/// step works: it used to print nothing at all on success.
#[test]
fn emitting_an_inventory_says_what_was_written_and_what_to_do_next() {
    let d = Daemon::start();
    let csv_path = d.dir.path().join("storm inventory.csv");
    let emitted = Command::new(BIN)
        .args(["storm", "--phones", "7", "--emit-inventory"])
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(emitted.status.success(), "{emitted:?}");
    assert!(emitted.stdout.is_empty(), "{emitted:?}");
    let said = String::from_utf8_lossy(&emitted.stderr);
    let path = csv_path.display().to_string();
    assert!(
        said.contains(&format!("wrote 7 devices to {path}")),
        "{said}"
    );
    let next = format!("`edgeprov device import --create-sites '{path}'`");
    assert!(said.contains(&next), "{said}");
    // The step as printed, pasted into a shell.
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let imported = Command::new("bash")
        .arg("-c")
        .arg(next.trim_matches('`'))
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("EDGEPROV_CONFIG", d.config_path())
        .env_remove("EDGEPROV_TOKEN")
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let listed = d.cli(&["--json", "device", "list"]);
    let devices: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(devices.as_array().map(Vec::len), Some(7), "{devices}");
}

fn storm(d: &Daemon, extra: &[&str]) -> (Value, bool) {
    storm_as(d, "avaya", PHONES, extra)
}

fn storm_as(d: &Daemon, vendor: &str, phones: usize, extra: &[&str]) -> (Value, bool) {
    let pki = d.data_dir().join("pki");
    let out = Command::new(BIN)
        .args(["storm", "--json", "--vendor", vendor, "--concurrency", "8"])
        .args(["--phones", &phones.to_string(), "--duration", "60"])
        .arg("--target")
        .arg(format!("https://127.0.0.1:{}", d.https.port()))
        .arg("--ca-cert")
        .arg(pki.join("ca.crt"))
        .arg("--ca-key")
        .arg(pki.join("ca.key"))
        .args(extra)
        .output()
        .expect("run edgeprov storm");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.success())
}

#[tokio::test]
async fn every_phone_gets_its_own_secret() {
    let d = Daemon::start();
    load_emitted(&d, "avaya", "0200", PHONES).await;

    // The per-device step alone: every phone, every check.
    let (r, success) = storm(&d, &["--device-file-only"]);
    assert!(success, "{r}");
    assert_eq!(r["phones"], PHONES);
    assert_eq!(r["ok"], PHONES);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["full_handshakes"], PHONES);
    assert_eq!(r["files"]["{mac}.txt"]["ok"], PHONES);
    for key in ["p50", "p90", "p99", "max"] {
        assert!(r["latency_ms"][key].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(r["phones_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["requests_per_s"].as_f64().unwrap() > 0.0);

    // The whole boot sequence, a connection per file: the per-device file still reaches every
    // phone, over resumed sessions. The common files are reported per file, whatever their
    // status on this build of the daemon.
    let (r, _) = storm(&d, &["--resume-sessions"]);
    assert_eq!(r["phones"], PHONES);
    assert_eq!(r["files"]["{mac}.txt"]["ok"], PHONES, "{r}");
    assert_eq!(r["files"]["{mac}.txt"]["errors"], 0, "{r}");
    assert_eq!(r["requests"], 3 * PHONES, "{r}");
    assert!(
        r["resumed_handshakes"].as_u64().unwrap() >= PHONES as u64,
        "{r}"
    );
    assert!(
        r["errors_by_kind"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("status_")),
        "{r}"
    );
}

/// Each vendor's whole boot sequence against the inventory the simulator emits for it: every
/// file answered 200, the per-device file with the phone's own secret, the others with none
/// (a Poly phone's own master file `{mac}.cfg` included).
#[tokio::test]
async fn every_vendor_boots_through_its_whole_sequence() {
    const N: usize = 20;
    let d = Daemon::start();
    for (vendor, prefix, files) in [
        (
            "avaya",
            "0201",
            ["J100Supgrade.txt", "46xxsettings.txt", "{mac}.txt"],
        ),
        (
            "yealink",
            "0202",
            ["{mac}.boot", "y000000000028.cfg", "{mac}.cfg"],
        ),
        (
            "poly",
            "0203",
            ["{mac}.cfg", "{mac}-phone.cfg", "edgeprov-common.cfg"],
        ),
    ] {
        load_emitted(&d, vendor, prefix, N).await;

        let (r, success) = storm_as(&d, vendor, N, &["--mac-prefix", prefix]);
        assert!(success, "{vendor}: {r}");
        assert_eq!(r["ok"], N, "{vendor}: {r}");
        assert_eq!(r["errors"], 0, "{vendor}: {r}");
        assert_eq!(r["requests"], 3 * N, "{vendor}: {r}");
        for file in files {
            assert_eq!(r["files"][file]["ok"], N, "{vendor} {file}: {r}");
        }
    }
}

/// Phones that open a connection for every file resume the session of their first one with its
/// session ticket, TLS 1.3 and TLS 1.2 alike: every reconnect skips the full handshake, and the
/// per-device file still goes only to the phone whose session it is. (Resumption by TLS 1.2
/// session ID: `phone_authz::a_resumed_tls12_session_still_proves_its_device`.)
#[tokio::test]
async fn every_reconnect_resumes_its_session_with_tls_1_2_and_1_3() {
    let d = Daemon::start();
    load_emitted(&d, "avaya", "0200", PHONES).await;
    for tls in ["1.3", "1.2"] {
        let (r, success) = storm(&d, &["--resume-sessions", "--tls", tls]);
        assert!(success, "TLS {tls}: {r}");
        assert_eq!(r["ok"], PHONES, "TLS {tls}: {r}");
        assert_eq!(r["full_handshakes"], PHONES, "TLS {tls}: {r}");
        assert_eq!(r["resumed_handshakes"], 2 * PHONES, "TLS {tls}: {r}");
        assert_eq!(r["files"]["{mac}.txt"]["ok"], PHONES, "TLS {tls}: {r}");
    }
}

#[tokio::test]
async fn phones_without_inventory_are_reported_not_hidden() {
    let d = Daemon::start();
    let (r, success) = storm(&d, &["--device-file-only"]);
    assert!(!success);
    assert_eq!(r["phones"], PHONES);
    assert_eq!(r["ok"], 0);
    assert_eq!(r["errors"], PHONES);
    assert_eq!(r["errors_by_kind"]["status_404"], PHONES);
}

/// A target whose name resolves first to an address the server does not listen on: each phone
/// goes on to the next address, as curl and browsers do, instead of failing `refused` on the
/// first. `localhost` is ::1 then 127.0.0.1 for the storm alone (a mount namespace whose
/// /etc/hosts says so, as Debian's does), and the daemon listens on 127.0.0.1 alone. Skips,
/// saying why, where no mount namespace can be made (needs root and `unshare`).
#[tokio::test]
async fn a_target_whose_first_address_refuses_is_reached_at_the_next() {
    let d = Daemon::start();
    load_emitted(&d, "avaya", "0200", 8).await;
    let port = d.https.port();
    assert!(
        std::net::TcpStream::connect(("::1", port)).is_err(),
        "something listens on [::1]:{port}"
    );
    let hosts = d.dir.path().join("hosts");
    std::fs::write(&hosts, "::1 localhost\n127.0.0.1 localhost\n").unwrap();
    // `sh -c SCRIPT sh HOSTS COMMAND…`: the command runs with the file over /etc/hosts.
    let with_hosts = |command: &[&str]| {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&hosts)
        .args(command);
        c
    };
    let resolved = match with_hosts(&["getent", "ahosts", "localhost"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        other => {
            eprintln!("skipped: no mount namespace with its own /etc/hosts: {other:?}");
            return;
        }
    };
    assert!(resolved.starts_with("::1 "), "{resolved}");

    let pki = d.data_dir().join("pki");
    let target = format!("https://localhost:{port}");
    let ca_cert = pki.join("ca.crt");
    let ca_key = pki.join("ca.key");
    let out = with_hosts(&[
        BIN,
        "storm",
        "--json",
        "--phones",
        "8",
        "--concurrency",
        "4",
    ])
    .args(["--device-file-only", "--target", &target, "--ca-cert"])
    .arg(&ca_cert)
    .arg("--ca-key")
    .arg(&ca_key)
    .output()
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["ok"], 8, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

/// A concurrency the open-file limit cannot hold is refused up front, naming the flag and the
/// limit, instead of failing phones as refused connections.
#[test]
fn a_concurrency_beyond_the_open_file_limit_is_refused() {
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" storm --target https://127.0.0.1:9 --phones 300 --concurrency 300 --ca-cert ca.crt --ca-key ca.key")
        .arg(BIN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--concurrency 300 needs 364 open files, but the limit is 256"),
        "{stderr}"
    );
}

/// `--firmware` fetches the image edgeprov's files name: Avaya's upgrade script (`APPNAME`) and
/// Yealink's family file (`static.firmware.url`, the key edgeprov writes), every byte of it.
#[tokio::test]
async fn the_image_edgeprov_names_is_fetched_with_firmware() {
    const N: usize = 4;
    const SIZE: usize = 4096;
    let img = common::upstream::image(SIZE, 7);
    let sha = common::upstream::sha256_hex(&img);
    let files = [("J179", "j179-1.bin"), ("T46G", "t46g-1.rom")];
    let releases: String = files
        .iter()
        .map(|(model, file)| {
            format!(
                "[[firmware.release]]\nmodels = [\"{model}\"]\nversion = \"1\"\nfile = \"{file}\"\nsha256 = \"{sha}\"\nsize = {SIZE}\n"
            )
        })
        .collect();
    let d = Daemon::start_with(&releases);
    for (_, file) in files {
        let path = format!("/firmware/images/{file}?offset=0");
        let (status, v) = d.api_bytes("PUT", &path, img.clone(), Some(&d.token)).await;
        assert!(status < 300, "{file}: {status} {v}");
    }
    for (vendor, prefix) in [("avaya", "0201"), ("yealink", "0202")] {
        load_emitted(&d, vendor, prefix, N).await;
        let (r, success) = storm_as(&d, vendor, N, &["--mac-prefix", prefix, "--firmware"]);
        assert!(success, "{vendor}: {r}");
        assert_eq!(r["files"]["firmware"]["ok"], N, "{vendor}: {r}");
        assert_eq!(r["files"]["firmware"]["bytes"], N * SIZE, "{vendor}: {r}");
    }
}

/// `--emit-static` writes what edgeprov serves for the emitted inventory, byte for byte, so
/// nginx is measured on identical work: every file of each vendor's sequence, fetched from the
/// daemon as the phone fetches it (its own certificate and User-Agent), equals its static copy.
///
/// One exception, with `--firmware`: where edgeprov names a Yealink or Poly image by an
/// absolute URL, `https://HOST:PORT/firmware/FILE` with the host and port the phone reached it
/// at, the tree names it `/firmware/FILE`. The tree is written before it is known which server
/// will serve it (nginx, on its own port): a URL naming edgeprov would send the phones there for
/// their image. Avaya's `APPNAME` is a file name either way. Nothing else may differ.
#[tokio::test]
async fn the_static_tree_is_what_edgeprov_serves() {
    let plain = Daemon::start();
    compare_static_tree(&plain, false).await;
    // Releases for the emitted phones' models, with the files the tree names: edgeprov's policy
    // then gives each phone the image the tree gives it.
    let releases = STATIC_IMAGES
        .map(|(model, file)| {
        format!(
            "[[firmware.release]]\nmodels = [\"{model}\"]\nversion = \"1\"\nfile = \"{file}\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        )
    })
    .concat();
    let with_firmware = Daemon::start_with(&releases);
    compare_static_tree(&with_firmware, true).await;
}

/// The emitted phones' models (Avaya, Yealink, Poly) and the images `--emit-static --firmware`
/// names for them.
const STATIC_IMAGES: [(&str, &str); 3] = [
    ("J179", "J100-IPT-SIP-R4_1_3_0_6.bin"),
    ("T46G", "T46G-28.83.0.60.rom"),
    ("VVX_400", "VVX400-6.4.3.sip.ld"),
];

/// Emits each vendor's inventory and static tree (with `--firmware` when `firmware`), loads the
/// inventory into `d`, and compares every file of every phone's sequence with its copy.
async fn compare_static_tree(d: &Daemon, firmware: bool) {
    use edgeprov::storm::phone::{Phone, Vendor, mac_for};
    const N: u64 = 3;
    // The host the requests below name (`Host: localhost`), as edgeprov echoes it.
    let absolute = "https://localhost/firmware/";
    for ((vendor, name, prefix), (_, file)) in [
        (Vendor::Avaya, "avaya", "0201"),
        (Vendor::Yealink, "yealink", "0202"),
        (Vendor::Poly, "poly", "0203"),
    ]
    .into_iter()
    .zip(STATIC_IMAGES)
    {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("phones.csv");
        let tree = dir.path().join("static");
        let emitted = Command::new(BIN)
            .args(["storm", "--vendor", name, "--mac-prefix", prefix])
            .args(["--phones", &N.to_string(), "--emit-inventory"])
            .arg(&csv)
            .arg("--emit-static")
            .arg(&tree)
            .args(firmware.then_some("--firmware"))
            .output()
            .unwrap();
        assert!(emitted.status.success(), "{emitted:?}");
        let imported = d.cli(&["device", "import", "--create-sites", csv.to_str().unwrap()]);
        assert!(imported.status.success(), "{imported:?}");
        let mut named = 0;
        for i in 1..=N {
            let phone = Phone {
                vendor,
                mac: mac_for(prefix, i).unwrap(),
            };
            let tls = client_config(&d.ca_pem(), Some(&d.mint(&phone.mac.to_string(), |_| {})));
            for step in phone.sequence(false) {
                let served = send(d.https, tls.clone(), get(&step.path, &phone.user_agent()))
                    .await
                    .unwrap();
                assert_eq!(served.status, 200, "{name} {}", step.path);
                let served = served.text();
                let copy = std::fs::read(tree.join(step.path.trim_start_matches('/'))).unwrap();
                let copy = String::from_utf8_lossy(&copy);
                // Poly's master file names Poly's default `sip.ld` without a policy.
                let image = edgeprov::storm::phone::firmware_named(vendor, copy.as_bytes())
                    .filter(|path| path.ends_with(file));
                named += usize::from(image.is_some());
                assert_eq!(
                    served.replace(absolute, "/firmware/"),
                    copy,
                    "{name} {} (firmware: {firmware})",
                    step.path
                );
                assert_eq!(
                    served.contains(absolute),
                    firmware && vendor != Vendor::Avaya && image.is_some(),
                    "{name} {}: {served}",
                    step.path
                );
            }
        }
        assert_eq!(named > 0, firmware, "{name}: files naming an image");
    }
}
