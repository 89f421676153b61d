//! Real DHCP clients against the real daemon, in network namespaces this test creates:
//!
//! ```text
//!  client ns            server ns                          relay ns
//!  c0 (udhcpc,   ◀──▶   s0 10.77.0.1/24   s1 10.79.0.1/24 ◀──▶ r0 10.79.0.2/24
//!      dhclient)        edgeprov (interfaces s0, s1)           lo 10.78.0.1/24 (giaddr)
//! ```
//!
//! busybox `udhcpc` (Avaya class) and ISC `dhclient` (Yealink class) get addresses and their
//! options on the directly attached subnet, renew and release; a relay agent probe in the relay
//! namespace gets an address from the 10.78.0.0/24 subnet through `giaddr`. No address outside
//! these namespaces is used. Skips, saying why, without root, `ip`, `udhcpc` or `dhclient`.
//! In the same lab, udhcpc (which takes 576-byte messages) reads a long Avaya SSON that only
//! fits with option 52 (the `file` and `sname` fields holding options).
//!
//! A second lab runs the daemon with the default `interfaces = []` (one socket for every link)
//! on a box with two client links and a management link that holds the default route:
//!
//! ```text
//!  a ns: c0 ◀──▶ s0 10.77.0.1/24 ┐
//!  b ns: c1 ◀──▶ s1 10.79.0.1/24 ├ server ns: edgeprov, interfaces = []
//!  u ns: u0 10.99.0.2/24 ◀──▶ m0 10.99.0.1/24, default route via 10.99.0.2
//! ```

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dhcp::{ACK, Relay, mac};
use common::netns::{self, Lab};
use common::{BIN, base_config, signal};
use serde_json::Value;

const PROBE_ENV: &str = "EDGEPROV_DHCP_RELAY_PROBE";

/// Namespaces and processes to tear down whatever happens.
impl Lab {
    /// Starts the daemon in the server's namespace with `dhcp` (the DHCP part of its config),
    /// its config, data and `daemon.log` under `dir`; returns once it listens.
    fn serve(&mut self, dir: &Path, dhcp: &str) {
        let data = dir.join("data");
        let config = dir.join("edgeprov.toml");
        std::fs::write(&config, base_config(&data, dhcp)).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let daemon = self
            .exec("s", &[BIN, "serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(daemon);
        wait_for("the daemon to listen", Duration::from_secs(30), || {
            data.join("listeners.json").exists()
        });
    }

    fn setup(&self) {
        let (s, c, r) = (self.ns("s"), self.ns("c"), self.ns("r"));
        for ns in [&s, &c, &r] {
            self.ip(&["netns", "add", ns]);
            self.ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (s0, c0, s1, r0) = ("s0", "c0", "s1", "r0");
        self.ip(&[
            "-n", &s, "link", "add", s0, "type", "veth", "peer", "name", c0, "netns", &c,
        ]);
        self.ip(&[
            "-n", &s, "link", "add", s1, "type", "veth", "peer", "name", r0, "netns", &r,
        ]);
        self.ip(&["-n", &s, "addr", "add", "10.77.0.1/24", "dev", s0]);
        self.ip(&["-n", &s, "addr", "add", "10.79.0.1/24", "dev", s1]);
        self.ip(&["-n", &r, "addr", "add", "10.79.0.2/24", "dev", r0]);
        self.ip(&["-n", &r, "addr", "add", "10.78.0.1/24", "dev", "lo"]);
        for (ns, dev) in [(&s, s0), (&s, s1), (&c, c0), (&r, r0)] {
            self.ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        self.ip(&["-n", &s, "route", "add", "10.78.0.0/24", "via", "10.79.0.2"]);
    }
}

fn missing_tools() -> Option<String> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(why) = netns::unavailable() {
        return Some(why);
    }
    if !ok("busybox", &["udhcpc", "--help"])
        && !ok("sh", &["-c", "busybox --list | grep -qx udhcpc"])
    {
        return Some("busybox udhcpc is missing".into());
    }
    if !ok("sh", &["-c", "command -v dhclient"]) {
        return Some("dhclient (isc-dhcp-client) is missing".into());
    }
    None
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn env_file(path: &Path) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect(),
    )
}

fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn hex_or_text(value: &str) -> String {
    let hex: Option<Vec<u8>> = value
        .len()
        .is_multiple_of(2)
        .then(|| {
            (0..value.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&value[i..i + 2], 16).ok())
                .collect()
        })
        .flatten();
    hex.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| value.to_string())
}

fn leases(lab: &Lab, config: &Path) -> Vec<Value> {
    let out = lab
        .exec("s", &[BIN, "dhcp", "leases", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn real_clients_and_a_relay_in_network_namespaces() {
    if let Some(why) = missing_tools() {
        println!("SKIP real_clients_and_a_relay_in_network_namespaces: {why}");
        return;
    }
    let mut lab = Lab {
        prefix: format!("epd{}", std::process::id()),
        roles: &["s", "c", "r"],
        children: Vec::new(),
    };
    lab.setup();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgeprov.toml");
    let dhcp = r#"
[dhcp]
enabled = true
listen = "0.0.0.0:67"
interfaces = ["s0", "s1"]
provisioning_url = "https://10.77.0.1:8443/"
[[dhcp.subnet]]
network = "10.77.0.0/24"
ranges = [["10.77.0.100", "10.77.0.150"]]
router = "10.77.0.1"
dns = ["10.77.0.1"]
ntp = ["10.77.0.1"]
domain = "prov.example.lan"
lease_seconds = 600
[[dhcp.subnet]]
network = "10.78.0.0/24"
ranges = [["10.78.0.100", "10.78.0.150"]]
router = "10.78.0.1"
"#;
    lab.serve(dir.path(), dhcp);
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    // 1. busybox udhcpc with the Avaya vendor class asks for option 242.
    let out = dir.path().join("udhcpc");
    std::fs::create_dir(&out).unwrap();
    let udhcpc_script = script(
        dir.path(),
        "udhcpc.sh",
        &format!(
            r#"env > {out}/$1.tmp && mv {out}/$1.tmp {out}/$1.env
case "$1" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac"#,
            out = out.display()
        ),
    );
    let udhcpc = lab
        .exec(
            "c",
            &[
                "busybox",
                "udhcpc",
                "-f",
                "-i",
                "c0",
                "-V",
                "ccp.avaya.com",
                "-O",
                "242",
                "-t",
                "10",
                "-T",
                "1",
                "-s",
            ],
        )
        .arg(&udhcpc_script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let udhcpc_pid = udhcpc.id();
    lab.children.push(udhcpc);
    wait_for("udhcpc to bind", Duration::from_secs(20), || {
        out.join("bound.env").exists()
    });
    let bound = env_file(&out.join("bound.env")).unwrap();
    let ip: Ipv4Addr = get(&bound, "ip").unwrap().parse().unwrap();
    assert!(
        (100..=150).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 77, 0],
        "{ip}"
    );
    assert_eq!(get(&bound, "router"), Some("10.77.0.1"));
    assert_eq!(get(&bound, "domain"), Some("prov.example.lan"));
    let sson = hex_or_text(get(&bound, "opt242").expect("option 242 delivered"));
    assert_eq!(sson, "TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443");
    let l = leases(&lab, &config);
    let mine: Vec<&Value> = l.iter().filter(|v| v["ip"] == ip.to_string()).collect();
    assert_eq!(mine.len(), 1, "{l:?}");
    assert_eq!(mine[0]["state"], "bound");
    assert_eq!(mine[0]["vendor_class"], "ccp.avaya.com");

    // Renew (SIGUSR1: a unicast REQUEST from the bound address), then release (SIGUSR2).
    let before = mine[0]["expires"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    signal(udhcpc_pid, "USR1");
    wait_for("the renewal to be stored", Duration::from_secs(15), || {
        leases(&lab, &config)
            .iter()
            .any(|v| v["ip"] == ip.to_string() && v["expires"].as_i64().unwrap() > before)
    });
    signal(udhcpc_pid, "USR2");
    wait_for("the release to be stored", Duration::from_secs(15), || {
        leases(&lab, &config)
            .iter()
            .any(|v| v["ip"] == ip.to_string() && v["state"] == "released")
    });
    signal(udhcpc_pid, "TERM");

    // 2. ISC dhclient with the Yealink class gets option 66 and the custom URL option 160.
    let dhclient_out = dir.path().join("dhclient");
    std::fs::create_dir(&dhclient_out).unwrap();
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "option phone-url code 160 = text;\nsend vendor-class-identifier \"yealink\";\n\
         request subnet-mask, routers, tftp-server-name, phone-url;\ntimeout 20;\nretry 1;\n",
    )
    .unwrap();
    let dhclient_script = script(
        dir.path(),
        "dhclient.sh",
        &format!(
            r#"env > {out}/$reason.tmp && mv {out}/$reason.tmp {out}/$reason.env
case "$reason" in
  BOUND|RENEW|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac"#,
            out = dhclient_out.display()
        ),
    );
    let dh = |extra: &[&str]| {
        let mut c = lab.exec("c", &["dhclient", "-4", "-v", "-cf"]);
        c.arg(&conf)
            .arg("-lf")
            .arg(dir.path().join("dhclient.leases"))
            .arg("-pf")
            .arg(dir.path().join("dhclient.pid"))
            .arg("-sf")
            .arg(&dhclient_script)
            .args(extra)
            .arg("c0");
        c.output().unwrap()
    };
    let got = dh(&["-1"]);
    assert!(
        got.status.success(),
        "dhclient: {}\n{}",
        String::from_utf8_lossy(&got.stderr),
        daemon_log()
    );
    let env = env_file(&dhclient_out.join("BOUND.env")).expect("dhclient bound");
    assert_eq!(
        get(&env, "new_tftp_server_name"),
        Some("https://10.77.0.1:8443/")
    );
    assert_eq!(get(&env, "new_phone_url"), Some("https://10.77.0.1:8443/"));
    let yip = get(&env, "new_ip_address").unwrap().to_string();
    wait_for("the dhclient lease", Duration::from_secs(5), || {
        leases(&lab, &config)
            .iter()
            .any(|v| v["ip"] == yip && v["state"] == "bound" && v["vendor_class"] == "yealink")
    });
    let released = dh(&["-r"]);
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    wait_for("the dhclient release", Duration::from_secs(10), || {
        leases(&lab, &config)
            .iter()
            .any(|v| v["ip"] == yip && v["state"] == "released")
    });

    // 3. A relay agent (giaddr 10.78.0.1) in the relay namespace.
    let probe = lab
        .exec("r", &[std::env::current_exe().unwrap().to_str().unwrap()])
        .args(["--exact", "relay_probe", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, "10.78.0.1 10.79.0.1:67")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && text.contains("PROBE-OK 10.78.0."),
        "{text}\n{}",
        daemon_log()
    );
    assert!(
        leases(&lab, &config)
            .iter()
            .any(|v| v["ip"].as_str().unwrap().starts_with("10.78.0.") && v["state"] == "bound")
    );
}

/// With `interfaces = []` one socket serves every link. A client's broadcast must be answered
/// out of the link it came in on, with an address of that link's subnet and that link's server
/// address, although the default route leaves by the management link.
/// busybox udhcpc asks for 576-byte messages at most, so the 308 bytes of its reply's options
/// field cannot hold a long Avaya SSON with the network options. The server left out what did
/// not fit (the SSON itself, asked for last); now the rest goes into the `file` and `sname`
/// fields under option 52, and a real client reads every option from there.
#[test]
fn a_real_client_reads_options_from_the_file_and_sname_fields() {
    if let Some(why) = missing_tools() {
        println!("SKIP a_real_client_reads_options_from_the_file_and_sname_fields: {why}");
        return;
    }
    let mut lab = Lab {
        prefix: format!("epo{}", std::process::id()),
        roles: &["s", "c", "r"],
        children: Vec::new(),
    };
    lab.setup();
    let dir = tempfile::tempdir().unwrap();
    let sson = format!(
        "MCIPADD=10.77.0.5,10.77.0.6,TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443,L2Q=1,L2QVLAN=100,\
         SIP_CONTROLLER_LIST=10.77.0.5:5061;transport=tls,{}",
        "VLANTEST=60,".repeat(9)
    );
    assert!((230..=255).contains(&sson.len()), "{}", sson.len());
    lab.serve(
        dir.path(),
        &format!(
            r#"
[dhcp]
enabled = true
listen = "0.0.0.0:67"
interfaces = ["s0"]
provisioning_url = "https://10.77.0.1:8443/"
[[dhcp.subnet]]
network = "10.77.0.0/24"
ranges = [["10.77.0.100", "10.77.0.150"]]
router = "10.77.0.1"
dns = ["10.77.0.1", "10.77.0.2"]
ntp = ["10.77.0.1"]
domain = "prov.example.lan"
lease_seconds = 600
[[dhcp.vendor_class]]
match = "ccp.avaya.com"
options = {{ 242 = "{sson}" }}
"#
        ),
    );
    let out = dir.path().join("udhcpc");
    std::fs::create_dir(&out).unwrap();
    let hook = script(
        dir.path(),
        "udhcpc.sh",
        &format!(
            "env > {out}/$1.tmp && mv {out}/$1.tmp {out}/$1.env",
            out = out.display()
        ),
    );
    let udhcpc = lab
        .exec(
            "c",
            &[
                "busybox",
                "udhcpc",
                "-f",
                "-q",
                "-i",
                "c0",
                "-V",
                "ccp.avaya.com",
                "-O",
                "ntpsrv",
                "-O",
                "242",
                "-t",
                "10",
                "-T",
                "1",
                "-s",
            ],
        )
        .arg(&hook)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.children.push(udhcpc);
    wait_for("udhcpc to bind", Duration::from_secs(20), || {
        out.join("bound.env").exists()
    });
    let bound = env_file(&out.join("bound.env")).unwrap();
    assert_eq!(get(&bound, "router"), Some("10.77.0.1"));
    assert_eq!(get(&bound, "dns"), Some("10.77.0.1 10.77.0.2"));
    assert_eq!(get(&bound, "domain"), Some("prov.example.lan"));
    assert_eq!(get(&bound, "ntpsrv"), Some("10.77.0.1"));
    let delivered = get(&bound, "opt242").map(hex_or_text);
    let options: Vec<&str> = bound
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("opt"))
        .collect();
    assert_eq!(delivered.as_deref(), Some(sson.as_str()), "got {options:?}");
}

#[test]
fn one_socket_for_all_links_answers_each_link_from_its_own_subnet() {
    if let Some(why) = missing_tools() {
        println!("SKIP one_socket_for_all_links_answers_each_link_from_its_own_subnet: {why}");
        return;
    }
    let mut lab = Lab {
        prefix: format!("epw{}", std::process::id()),
        roles: &["s", "a", "b", "u"],
        children: Vec::new(),
    };
    let ns: Vec<String> = lab.roles.iter().map(|r| lab.ns(r)).collect();
    let [s, a, b, u] = [&ns[0], &ns[1], &ns[2], &ns[3]];
    for n in [s, a, b, u] {
        lab.ip(&["netns", "add", n]);
        lab.ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    for (dev, peer, other) in [("s0", "c0", a), ("s1", "c1", b), ("m0", "u0", u)] {
        lab.ip(&[
            "-n", s, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", other,
        ]);
        lab.ip(&["-n", s, "link", "set", dev, "up"]);
        lab.ip(&["-n", other, "link", "set", peer, "up"]);
    }
    lab.ip(&["-n", s, "addr", "add", "10.77.0.1/24", "dev", "s0"]);
    lab.ip(&["-n", s, "addr", "add", "10.79.0.1/24", "dev", "s1"]);
    lab.ip(&["-n", s, "addr", "add", "10.99.0.1/24", "dev", "m0"]);
    lab.ip(&["-n", u, "addr", "add", "10.99.0.2/24", "dev", "u0"]);
    lab.ip(&["-n", s, "route", "add", "default", "via", "10.99.0.2"]);

    let dir = tempfile::tempdir().unwrap();
    let dhcp = r#"
[dhcp]
enabled = true
listen = "0.0.0.0:67"
provisioning_url = "https://10.77.0.1:8443/"
[[dhcp.subnet]]
network = "10.77.0.0/24"
ranges = [["10.77.0.100", "10.77.0.150"]]
[[dhcp.subnet]]
network = "10.79.0.0/24"
ranges = [["10.79.0.100", "10.79.0.150"]]
"#;
    lab.serve(dir.path(), dhcp);
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    let out = dir.path().join("udhcpc");
    std::fs::create_dir(&out).unwrap();
    let bound = script(
        dir.path(),
        "udhcpc.sh",
        &format!(
            r#"[ "$1" = bound ] && env > {out}/$interface.tmp && mv {out}/$interface.tmp {out}/$interface.env
exit 0"#,
            out = out.display()
        ),
    );
    // The second subnet's link first: the old code put every client in the first subnet.
    for (role, dev, net, server) in [
        ("b", "c1", "10.79.0.", "10.79.0.1"),
        ("a", "c0", "10.77.0.", "10.77.0.1"),
    ] {
        let got = lab
            .exec(
                role,
                &[
                    "busybox", "udhcpc", "-f", "-n", "-q", "-i", dev, "-t", "5", "-T", "1", "-s",
                ],
            )
            .arg(&bound)
            .output()
            .unwrap();
        let env = env_file(&out.join(format!("{dev}.env"))).unwrap_or_else(|| {
            panic!(
                "no lease on {dev}: {}\n{}",
                String::from_utf8_lossy(&got.stderr),
                daemon_log()
            )
        });
        let ip = get(&env, "ip").unwrap();
        assert!(
            ip.starts_with(net),
            "{dev} got {ip}, not an address of {net}0/24"
        );
        assert_eq!(get(&env, "serverid"), Some(server), "{dev}");
    }
}

/// Not a test on its own: the relay agent the test above runs inside the relay namespace. It
/// does nothing unless that test started it.
#[test]
fn relay_probe() {
    let Ok(spec) = std::env::var(PROBE_ENV) else {
        return;
    };
    let (giaddr, server) = spec.split_once(' ').unwrap();
    let giaddr: Ipv4Addr = giaddr.parse().unwrap();
    let server: SocketAddr = server.parse().unwrap();
    let relay = Relay::bind(giaddr, server.port(), server);
    let info = vec![1, 3, b'g', b'e', b'1'];
    let (_, ack) = relay
        .dora(
            mac(42),
            42,
            &[(60, b"yealink".to_vec()), (82, info.clone())],
        )
        .expect("a relayed DORA");
    assert_eq!(ack.msg_type, ACK);
    assert_eq!(ack.options.get(82), Some(info.as_slice()));
    assert_eq!(ack.options.get(54), Some(&[10, 79, 0, 1][..]));
    println!("PROBE-OK {}", ack.yiaddr);
}
