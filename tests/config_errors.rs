//! Bad configuration fails the start with a message that names the key, line or file.

mod common;

use std::process::Command;

use common::*;

fn serve_with(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgeprov.toml");
    std::fs::write(
        &path,
        config.replace("DATA", &dir.path().join("data").display().to_string()),
    )
    .unwrap();
    run_serve(&path)
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let (ok, err) = serve_with("data_dir = \"DATA\"\n[phone]\nhttps_lissten = [\"127.0.0.1:0\"]\n");
    assert!(!ok);
    assert!(err.contains("https_lissten"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn bad_address_is_named() {
    let (ok, err) = serve_with("data_dir = \"DATA\"\n[admin]\nlisten = \"127.0.0.1:99999\"\n");
    assert!(!ok);
    assert!(err.contains("line 3") && err.contains("listen"), "{err}");
}

#[test]
fn address_in_use_names_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (ok, err) = serve_with(&format!(
        "data_dir = \"DATA\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n[admin]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    assert!(!ok);
    assert!(
        err.contains("admin.listen") && err.contains(&port.to_string()),
        "{err}"
    );
}

/// One code for the Avaya SSON and the phones' URL option would define that code twice in the
/// ISC dhcpd export and make one value overwrite the other in replies.
#[test]
fn one_code_for_the_sson_and_the_url_option_is_refused() {
    let (ok, err) =
        serve_with("data_dir = \"DATA\"\n[dhcp]\nsson_option = 242\nurl_option = 242\n");
    assert!(!ok);
    assert!(
        err.contains("dhcp.url_option") && err.contains("dhcp.sson_option"),
        "{err}"
    );
}

/// Values the daemon once took and then ran badly on (no logging at all, a certificate name no
/// client matches, DHCP replies to port 0, a DNS refusal naming no key) stop `serve` before it
/// makes its data directory, and `doctor` on the same file says the same line.
#[test]
fn serve_and_doctor_refuse_the_same_values_before_anything_starts() {
    let base = "data_dir = \"DATA\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    for (extra, said) in [
        ("log_level = \" \"\n", "line 1: log_level: "),
        (
            "[pki]\nserver_names = [\"127.0.0.1:443\"]\n",
            "line 8: pki.server_names: \"127.0.0.1:443\" is not",
        ),
        (
            "[dhcp]\nmode = \"inform\"\nlisten = \"127.0.0.1:65535\"\n",
            "line 9: dhcp.listen: port 65535",
        ),
        (
            "[dns]\nlisten = [\"127.0.0.1:0\"]\ntcp_timeout_ms = 0\n",
            "line 9: dns.tcp_timeout_ms: must be greater than zero",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = dir.path().join("edgeprov.toml");
        let text = if extra.starts_with('[') {
            format!("{base}{extra}")
        } else {
            format!("{extra}{base}")
        };
        std::fs::write(&path, text.replace("DATA", &data.display().to_string())).unwrap();

        let (ok, err) = run_serve(&path);
        assert!(!ok, "{extra}: started");
        assert!(err.contains(said), "{extra}: serve said {err}");
        assert!(!data.exists(), "{extra}: the data directory was made");

        let doctor = Command::new(BIN)
            .args(["doctor", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&doctor.stderr);
        assert!(!doctor.status.success(), "{extra}: doctor passed");
        assert!(err.contains(said), "{extra}: doctor said {err}");
    }
}

#[test]
fn missing_config_file_is_named() {
    let (ok, err) = run_serve(std::path::Path::new("/nonexistent/edgeprov.toml"));
    assert!(!ok);
    assert!(err.contains("/nonexistent/edgeprov.toml"), "{err}");
}

#[test]
fn pki_problems_are_named_and_the_ca_is_never_regenerated() {
    // A working daemon makes its PKI, then is stopped.
    let mut d = Daemon::start();
    d.stop();
    let pki = d.data_dir().join("pki");
    let ca_before = std::fs::read(pki.join("ca.crt")).unwrap();

    // Missing CA key while the certificate exists.
    let key = std::fs::read(pki.join("ca.key")).unwrap();
    std::fs::remove_file(pki.join("ca.key")).unwrap();
    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok);
    assert!(err.contains("ca.key") && err.contains("missing"), "{err}");
    assert_eq!(
        std::fs::read(pki.join("ca.crt")).unwrap(),
        ca_before,
        "CA untouched"
    );
    assert!(!pki.join("ca.key").exists(), "no silent regeneration");
    std::fs::write(pki.join("ca.key"), &key).unwrap();

    // Corrupt CA certificate.
    std::fs::write(
        pki.join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok);
    assert!(err.contains("ca.crt"), "{err}");
    std::fs::write(pki.join("ca.crt"), &ca_before).unwrap();

    // Unreadable server key (a directory where the file should be).
    std::fs::remove_file(pki.join("server.key")).unwrap();
    std::fs::create_dir(pki.join("server.key")).unwrap();
    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok);
    assert!(err.contains("server.key"), "{err}");
    std::fs::remove_dir(pki.join("server.key")).unwrap();

    // The server certificate and key both gone: missing, named (not silently reissued).
    std::fs::remove_file(pki.join("server.crt")).unwrap();
    let (ok, err) = run_serve(&d.config_path());
    assert!(!ok);
    assert!(err.contains("server.crt"), "{err}");
}

#[test]
fn bad_trusted_root_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("vendor-roots.pem");
    std::fs::write(&roots, "no certificates here\n").unwrap();
    let (ok, err) = serve_with(&format!(
        "data_dir = \"DATA\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n[admin]\nlisten = \"127.0.0.1:0\"\n[pki]\ntrusted_device_roots = [\"{}\"]\n",
        roots.display()
    ));
    assert!(!ok);
    assert!(err.contains("vendor-roots.pem"), "{err}");
    let (ok, err) = serve_with(
        "data_dir = \"DATA\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n[admin]\nlisten = \"127.0.0.1:0\"\n[pki]\ntrusted_device_roots = [\"/nonexistent/roots.pem\"]\n",
    );
    assert!(!ok);
    assert!(err.contains("/nonexistent/roots.pem"), "{err}");
}

/// A device's own certificate listed as a trusted root by mistake would let whoever holds its
/// key sign certificates naming any device: the start refuses it, naming the file and which
/// certificate of the bundle it is, as the API refuses such a root.
#[test]
fn trusted_root_that_is_not_a_ca_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let self_signed = |ca: bool, name: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    };
    let roots = dir.path().join("vendor-roots.pem");
    let bundle = self_signed(true, "Vendor Root") + &self_signed(false, "001122aabbcc");
    std::fs::write(&roots, bundle).unwrap();
    let (ok, err) = serve_with(&format!(
        "data_dir = \"DATA\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n[admin]\nlisten = \"127.0.0.1:0\"\n[pki]\ntrusted_device_roots = [\"{}\"]\n",
        roots.display()
    ));
    assert!(!ok, "started trusting a certificate that is not a CA");
    assert!(err.contains("vendor-roots.pem"), "{err}");
    assert!(
        err.contains("certificate 2") && err.contains("001122aabbcc") && err.contains("not a CA"),
        "{err}"
    );
}

/// IPv4 and IPv6 wildcards on one port are two listeners, as in nginx: `0.0.0.0:8443` and
/// `[::]:8443` (and the same for DNS, UDP and TCP) both bind, where an IPv6 socket that took
/// IPv4 too made the start fail with "address in use". Run in a network namespace of its own,
/// so the wildcards listen on nothing but its loopback.
#[test]
fn ipv4_and_ipv6_wildcards_on_one_port_both_listen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("edgeprov.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[phone]\nhttps_listen = [\"0.0.0.0:8443\", \"[::]:8443\"]\n\
             http_listen = []\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [dns]\nlisten = [\"0.0.0.0:5353\", \"[::]:5353\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let err_path = dir.path().join("stderr");
    let mut child = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" serve --config \"$1\"",
        ])
        .arg(BIN)
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let listeners = data.join("listeners.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let bound = loop {
        if let Ok(text) = std::fs::read_to_string(&listeners) {
            break Some(text);
        }
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    signal(child.id(), "TERM");
    let stopped = wait_timeout(&mut child, std::time::Duration::from_secs(20));
    if stopped.is_none() {
        let _ = child.kill();
    }
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let bound = bound.unwrap_or_else(|| panic!("did not start:\n{err}"));
    for addr in ["0.0.0.0:8443", "[::]:8443", "0.0.0.0:5353", "[::]:5353"] {
        assert!(bound.contains(addr), "{addr} not bound: {bound}");
    }
}

/// `doctor` probes a port as the daemon binds it: `[::]:8443` is free although another program
/// holds `0.0.0.0:8443`, since the daemon's IPv6 sockets take IPv6 only. In a network namespace
/// of its own.
#[test]
fn doctor_probes_an_ipv6_wildcard_as_the_daemon_binds_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[phone]\nhttps_listen = [\"[::]:8443\"]\nhttp_listen = []\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let script = "ip link set lo up && python3 -c '
import socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"0.0.0.0\", 8443)); s.listen()
sys.exit(subprocess.run([sys.argv[1], \"doctor\", \"--config\", sys.argv[2]]).returncode)
' \"$0\" \"$1\"";
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .arg(BIN)
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("phone.https_listen [::]:8443 is free")),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A stub resolver on `127.0.0.53:53` (systemd-resolved, as on Ubuntu) takes port 53 from the
/// packaged `dns.listen = ["0.0.0.0:53"]`: the failed start says what to list instead. In a
/// network namespace of its own.
#[test]
fn port_53_taken_by_a_stub_resolver_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = []\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[dns]\nlisten = [\"0.0.0.0:53\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let script = "ip link set lo up && python3 -c '
import socket, subprocess, sys
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((\"127.0.0.53\", 53)); t.listen()
u = socket.socket(type=socket.SOCK_DGRAM); u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
u.bind((\"127.0.0.53\", 53))
sys.exit(subprocess.run([sys.argv[1], \"serve\", \"--config\", sys.argv[2]], timeout=20).returncode)
' \"$0\" \"$1\"";
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .arg(BIN)
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cannot listen on 0.0.0.0:53 (dns.listen)"),
        "{err}"
    );
    assert!(
        err.contains("list this box's LAN addresses in dns.listen"),
        "{err}"
    );
}

/// `edgeprov serve` as an unprivileged user (uid 65534 through `setpriv` when the tests run as
/// root), with the config at `config`: returns (exited successfully, stderr). None when the
/// tests run as another user, who cannot switch.
fn serve_unprivileged(config: &std::path::Path) -> Option<(bool, String)> {
    let out = unprivileged("serve", config)?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `edgeprov COMMAND --config CONFIG` as uid 65534, as [`serve_unprivileged`] runs it.
fn unprivileged(command: &str, config: &std::path::Path) -> Option<std::process::Output> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root");
        return None;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            command,
        ])
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    Some(out)
}

/// A directory anyone may enter and write, for a config and data an unprivileged user reads.
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// The package's DNS port 53 started by hand without root: the error names the key and says
/// where the capability comes from, and the cause is said once.
#[test]
fn a_privileged_port_without_the_capability_says_what_to_do() {
    let dir = open_dir();
    let config = dir.path().join("edgeprov.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        base_config(&data, "[dns]\nlisten = [\"127.0.0.1:53\"]\n"),
    )
    .unwrap();
    let Some((ok, err)) = serve_unprivileged(&config) else {
        return;
    };
    assert!(!ok, "{err}");
    assert!(
        err.contains("cannot listen on 127.0.0.1:53 (dns.listen): Permission denied"),
        "{err}"
    );
    assert!(
        err.contains("CAP_NET_BIND_SERVICE") && err.contains("give dns.listen a port above 1023"),
        "{err}"
    );
    assert_eq!(err.matches("Permission denied").count(), 1, "{err}");
}

/// A data directory the service user cannot write, and one where `edgeprov serve` once ran as
/// root and left files only root may open: each error names the file and says to give the
/// directory to the service user.
#[test]
fn a_data_dir_the_user_cannot_use_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let dir = open_dir();
    let config = dir.path().join("edgeprov.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, base_config(&data, "")).unwrap();
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some((ok, err)) = serve_unprivileged(&config) else {
        return;
    };
    assert!(!ok, "{err}");
    let hint = format!("chown -R edgeprov:edgeprov {}", data.display());
    assert!(
        err.contains(&format!("{}: Permission denied", data.display())),
        "{err}"
    );
    assert!(err.contains(&hint) && err.contains("uid 65534"), "{err}");

    // Started once as root: its files are root's, the directory anyone's.
    let mut root = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data.join("listeners.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    signal(root.id(), "TERM");
    root.wait().unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, err) = serve_unprivileged(&config).unwrap();
    assert!(!ok, "{err}");
    assert!(err.contains(&hint), "{err}");
    assert_eq!(err.matches("Permission denied").count(), 1, "{err}");
}

/// An address copied from another box's config: in a network namespace whose loopback is down,
/// `::1` is no interface's, so binding it fails as a LAN address of another box would.
#[test]
fn an_address_no_interface_has_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    let text = base_config(&dir.path().join("data"), "").replace(
        "https_listen = [\"127.0.0.1:0\"]",
        "https_listen = [\"[::1]:0\"]",
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new("unshare")
        .args(["--net", BIN, "serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cannot listen on [::1]:0 (phone.https_listen)"),
        "{err}"
    );
    assert!(
        err.contains(
            "`ip -br addr` lists them; give phone.https_listen one of those or the wildcard [::]"
        ),
        "{err}"
    );
}

/// A data directory on a read-only file system, as every place but `/var/lib/edgeprov` is under
/// the packaged unit's `ProtectSystem=strict`: the error says how to let the service write
/// there. The read-only bind mount is made in a mount namespace of the daemon's own.
#[test]
fn a_read_only_data_dir_says_how_the_unit_may_write_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(&config, base_config(&data, "")).unwrap();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && \
             exec \"$0\" serve --config \"$2\"",
        ])
        .arg(BIN)
        .arg(&data)
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}: Read-only file system", data.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("[Service] ReadWritePaths={}", data.display())),
        "{err}"
    );
}

/// `edgeprov doctor` run by an administrator's own account on a packaged box, where the data
/// directory is the service user's: it says it cannot read it and how to run, not that the
/// certificates and the store are missing and the daemon should be started once.
#[test]
fn doctor_that_may_not_read_the_data_dir_says_so() {
    let mut d = Daemon::start();
    d.stop();
    let dir = open_dir();
    let config = dir.path().join("edgeprov.toml");
    std::fs::write(&config, base_config(&d.data_dir(), "")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.data_dir(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let Some(out) = unprivileged("doctor", &config) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL data         {}: Permission denied",
            d.data_dir().display()
        )),
        "{text}"
    );
    assert!(text.contains("run edgeprov doctor as root"), "{text}");
    assert!(!text.contains("start the daemon once"), "{text}");
}

/// An empty `EDGEPROV_CONFIG` (how a shell clears it for one command) was taken as an empty
/// `--config` and refused, blaming the option the user never gave. It counts as unset, as an
/// empty path variable does for most tools: the command finds the configuration as it does
/// without the variable, and a file named by `--config` is still the one read.
#[test]
fn an_empty_config_variable_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path()).args(args);
        match env {
            Some(v) => cmd.env("EDGEPROV_CONFIG", v),
            None => cmd.env_remove("EDGEPROV_CONFIG"),
        };
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{env:?} {args:?}: {err}");
        String::from_utf8(out.stdout).unwrap()
    };
    let unset = run(None, &["dhcp", "options"]);
    assert_eq!(run(Some(""), &["dhcp", "options"]), unset);

    let path = dir.path().join("edgeprov.toml");
    std::fs::write(
        &path,
        "[dhcp]\nprovisioning_url = \"https://prov.example.lan/\"\n",
    )
    .unwrap();
    let named = run(
        Some(""),
        &["dhcp", "options", "--config", path.to_str().unwrap()],
    );
    assert!(named.contains("https://prov.example.lan"), "{named}");
    let from_env = run(Some(path.to_str().unwrap()), &["dhcp", "options"]);
    assert_eq!(from_env, named);
}
