//! The DHCP server over loopback, without root: the test acts as a relay agent on 127.0.99.1
//! (giaddr), so every reply is a unicast to it. Options by vendor class, option 82 echoed,
//! renew and release, leases in the API and CLI, malformed packets counted, and `kill -9` in the
//! middle of a stream of ACKs losing none of them.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::dhcp::*;
use common::*;
use serde_json::Value;

/// Client MAC and the address its ACK gave it.
type Acked = Arc<Mutex<Vec<([u8; 6], Ipv4Addr)>>>;

const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 99, 1);

const DHCP: &str = r#"
[dhcp]
enabled = true
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
[[dhcp.subnet]]
network = "127.0.99.0/24"
ranges = [["127.0.99.100", "127.0.99.250"]]
router = "127.0.99.1"
dns = ["127.0.99.1"]
lease_seconds = 3600
[[dhcp.vendor_class]]
match = "yealink"
options = { 160 = "https://127.0.0.1:8443/yealink/" }
"#;

fn dhcp_addr(d: &Daemon) -> SocketAddr {
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.data_dir().join("listeners.json")).unwrap())
            .unwrap();
    v["dhcp"].as_str().expect("dhcp listener").parse().unwrap()
}

fn relay(d: &Daemon) -> Relay {
    let server = dhcp_addr(d);
    Relay::bind(GIADDR, server.port(), server)
}

fn api(d: &Daemon, path: &str) -> Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, v) = rt.block_on(d.api("GET", path, None));
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn text(r: &Reply, code: u8) -> String {
    String::from_utf8_lossy(r.options.get(code).unwrap_or_default()).into_owned()
}

/// Without `dhcp.provisioning_url`, phones are sent to the port the HTTPS listener is bound
/// to: with `phone.https_listen` on port 0 they were sent to port 0.
#[test]
fn phones_are_sent_to_the_bound_https_port() {
    let config = DHCP.replace("provisioning_url = \"https://127.0.0.1:8443/\"\n", "");
    assert_ne!(config, DHCP);
    let d = Daemon::start_with(&format!("{config}[pki]\nserver_names = [\"127.0.0.1\"]\n"));
    let relay = relay(&d);
    let avaya = [(60, b"ccp.avaya.com".to_vec()), (55, vec![1, 3, 6, 242])];
    let (_, ack) = relay.dora(mac(9), 0x1009, &avaya).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    assert_eq!(
        text(&ack, 242),
        format!("TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT={}", d.https.port())
    );
}

/// `doctor` checks the URL the daemon's DHCP actually sends: with `phone.https_listen` on port
/// 0, the bound port while it runs, and a warning that the port is not fixed when it does not.
/// It reported "DHCP sends https://127.0.0.1:0/" as fine.
#[test]
fn doctor_checks_the_port_dhcp_sends() {
    let config = DHCP.replace("provisioning_url = \"https://127.0.0.1:8443/\"\n", "");
    let mut d = Daemon::start_with(&format!("{config}[pki]\nserver_names = [\"127.0.0.1\"]\n"));
    let discovery = |d: &Daemon| {
        let out = d.cli(&["doctor", "--json"]);
        let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
        checks
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["area"] == "discovery" && c["message"].as_str().unwrap().contains("DHCP"))
            .map(|c| {
                format!(
                    "{} {}",
                    c["level"].as_str().unwrap(),
                    c["message"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let running = discovery(&d);
    assert_eq!(
        running,
        [format!(
            "ok DHCP sends https://127.0.0.1:{}/",
            d.https.port()
        )],
        "{running:?}"
    );
    d.stop();
    let stopped = discovery(&d);
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(
        stopped[0].starts_with("warn phone.https_listen has port 0"),
        "{stopped:?}"
    );
    assert!(stopped[0].contains("not fixed"), "{stopped:?}");
}

/// A client's long host name is clipped in the `dhcp leases` table, so the vendor class after
/// it stays on the screen, and is whole in `--json`: a 200-byte name pushed every row's last
/// column 200 characters right.
#[test]
fn a_long_host_name_does_not_push_the_table_off_the_screen() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let name = "h".repeat(200);
    let client = [(60, b"yealink".to_vec()), (12, name.clone().into_bytes())];
    let (_, ack) = relay.dora(mac(8), 0x1008, &client).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    let out = d.cli(&["dhcp", "leases"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    for line in table.lines() {
        assert!(line.chars().count() < 130, "{table}");
    }
    assert!(table.contains("hhh…  yealink"), "{table}");
    let out = d.cli(&["--json", "dhcp", "leases"]);
    let leases: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(leases[0]["hostname"], name.as_str(), "{leases}");
}

/// A client's host name and vendor class are the client's own bytes: `dhcp leases` shows
/// their control characters escaped, so a line break cannot forge a row and an escape sequence
/// is not run by the administrator's terminal.
#[test]
fn lease_listings_escape_what_clients_send() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let hostile = [
        (60, b"yealink\x1b[2J".to_vec()),
        (12, b"d\n10.0.0.1  fake  bound\x1b]0;x\x07".to_vec()),
    ];
    let (_, ack) = relay.dora(mac(7), 0x1007, &hostile).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    let out = d.cli(&["dhcp", "leases"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!out.stdout.contains(&0x1b), "{out:?}");
    assert!(!out.stdout.contains(&0x07), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains(r"d\n10.0.0.1  fake  bound\u{1b}]0;x\u{7}"),
        "{table}"
    );
    assert!(table.contains(r"yealink\u{1b}[2J"), "{table}");
}

#[test]
fn relayed_clients_get_their_vendor_options_renew_and_release() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let agent_info = vec![1, 4, b'p', b'o', b'r', b't'];
    let avaya = [
        (60, b"ccp.avaya.com".to_vec()),
        (55, vec![1, 3, 6, 242, 43]),
        (12, b"AVX010203".to_vec()),
        (82, agent_info.clone()),
    ];
    let (offer, ack) = relay.dora(mac(1), 0x1001, &avaya).expect("DORA");
    assert_eq!((offer.msg_type, ack.msg_type), (OFFER, ACK));
    assert_eq!(ack.yiaddr, offer.yiaddr);
    assert_eq!(ack.giaddr, GIADDR);
    assert!(
        (100..=250).contains(&ack.yiaddr.octets()[3]),
        "{}",
        ack.yiaddr
    );
    assert_eq!(text(&ack, 242), "TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT=8443");
    assert_eq!(&ack.options.get(43).unwrap()[..6], b"\x01\x046889");
    assert_eq!(
        ack.options.get(82),
        Some(agent_info.as_slice()),
        "option 82 echoed"
    );
    assert_eq!(ack.options.get(51), Some(&3600u32.to_be_bytes()[..]));
    assert_eq!(ack.options.get(3), Some(&[127, 0, 99, 1][..]));

    let yealink = [(60, b"yealink".to_vec()), (55, vec![1, 66, 160])];
    let (_, yack) = relay.dora(mac(2), 0x1002, &yealink).expect("DORA");
    assert_eq!(yack.msg_type, ACK);
    assert_eq!(text(&yack, 66), "https://127.0.0.1:8443/");
    assert_eq!(text(&yack, 160), "https://127.0.0.1:8443/yealink/");
    assert_eq!(yack.options.get(242), None);

    // Renewing: ciaddr set, no server id, no requested address.
    let renew = message(REQUEST, 0x2001, mac(1), GIADDR, ack.yiaddr, &avaya);
    let r = relay.exchange(&renew).expect("renew answered");
    assert_eq!((r.msg_type, r.yiaddr), (ACK, ack.yiaddr));

    // Another client asking for that address is refused.
    let steal = message(
        REQUEST,
        0x2002,
        mac(3),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &[(50, ack.yiaddr.octets().to_vec())],
    );
    assert_eq!(relay.exchange(&steal).map(|r| r.msg_type), Some(NAK));

    let leases = api(&d, &format!("/dhcp/leases?mac={}", "02ed00000001"));
    assert_eq!(leases.as_array().unwrap().len(), 1, "{leases}");
    assert_eq!(leases[0]["state"], "bound");
    assert_eq!(leases[0]["ip"], ack.yiaddr.to_string());
    assert_eq!(leases[0]["hostname"], "AVX010203");
    assert_eq!(leases[0]["vendor_class"], "ccp.avaya.com");

    relay.send(&message(
        RELEASE,
        0x3001,
        mac(1),
        GIADDR,
        ack.yiaddr,
        &[(54, ack.options.get(54).unwrap().to_vec())],
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = api(&d, &format!("/dhcp/leases?ip={}", ack.yiaddr));
        if v[0]["state"] == "released" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "release not recorded: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        api(&d, "/dhcp/leases?state=bound")
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let out = d.cli(&["dhcp", "leases"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("02:ed:00:00:00:02") && table.contains("bound"),
        "{table}"
    );
    let out = d.cli(&["dhcp", "options", "--format", "dnsmasq"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dhcp-option=tag:avaya,242,\"TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT=8443\""),
        "{text}"
    );
}

const INFORM_ONLY: &str = r#"
[dhcp]
enabled = true
mode = "inform"
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
"#;

/// RFC 2131 4.3.5: the answer to a DHCPINFORM is a DHCPACK with the options and no lease: no
/// yiaddr, no lease, renewal or rebinding time, and nothing stored.
/// Cisco phones read option 150 (addresses only) or option 66 (a name or an address). With a
/// DNS name as the provisioning host they got neither, and never found the box; now option 66
/// carries the name. With an address, both.
#[test]
fn cisco_phones_get_option_66_when_the_host_is_a_name() {
    let cisco = [(60, b"Cisco Systems, Inc. IP Phone CP-8841".to_vec())];
    let d = Daemon::start_with(
        &DHCP.replace("https://127.0.0.1:8443/", "https://prov.example.lan:8443/"),
    );
    let (_, ack) = relay(&d).dora(mac(60), 0x6101, &cisco).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    assert_eq!(text(&ack, 66), "prov.example.lan");
    assert_eq!(ack.options.get(150), None);
    let d = Daemon::start_with(DHCP);
    let (_, ack) = relay(&d).dora(mac(61), 0x6102, &cisco).expect("DORA");
    assert_eq!(ack.options.get(150), Some(&[127, 0, 0, 1][..]));
    assert_eq!(text(&ack, 66), "127.0.0.1");
}

/// An Avaya site whose SSON carries many settings, behind a relay that adds option 82, and a
/// phone that accepts 576-byte messages: the options field (308 bytes) cannot hold them all.
/// Before, the server left out what did not fit (here the domain name and option 43); now the
/// rest goes into the `file` and `sname` fields under option 52 (RFC 2132 9.3), as ISC dhcpd
/// and dnsmasq do, and the reply stays within the phone's limit.
#[test]
fn options_that_do_not_fit_go_into_the_file_and_sname_fields() {
    let sson = format!(
        "MCIPADD=127.0.99.5,127.0.99.6,TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT=8443,L2Q=1,L2QVLAN=100,\
         SIP_CONTROLLER_LIST=127.0.99.5:5061;transport=tls,{}",
        "VLANTEST=60,".repeat(9)
    );
    assert!((230..=255).contains(&sson.len()), "{}", sson.len());
    let d = Daemon::start_with(&format!(
        r#"
[dhcp]
enabled = true
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
[[dhcp.subnet]]
network = "127.0.99.0/24"
ranges = [["127.0.99.100", "127.0.99.250"]]
router = "127.0.99.1"
dns = ["127.0.99.1", "127.0.99.2"]
ntp = ["127.0.99.1"]
domain = "prov.example.lan"
lease_seconds = 3600
[[dhcp.vendor_class]]
match = "ccp.avaya.com"
options = {{ 242 = "{sson}" }}
"#
    ));
    let relay = relay(&d);
    let asked = vec![1, 3, 6, 15, 42, 242, 43];
    let avaya = [
        (60, b"ccp.avaya.com".to_vec()),
        (55, asked.clone()),
        (57, 576u16.to_be_bytes().to_vec()),
        (82, vec![1, 6, b'p', b'o', b'r', b't', b'-', b'7']),
    ];
    let (offer, ack) = relay.dora(mac(70), 0x7001, &avaya).expect("DORA");
    for reply in [&offer, &ack] {
        for code in &asked {
            assert!(
                reply.options.get(*code).is_some(),
                "option {code} missing from the {} reply",
                reply.msg_type
            );
        }
        assert_eq!(text(reply, 242), sson);
        assert_eq!(text(reply, 15), "prov.example.lan");
        assert_eq!(&reply.options.get(43).unwrap()[..6], b"\x01\x046889");
        assert!(reply.options.get(52).is_some(), "option 52 says where");
        assert_eq!(reply.options.get(82), Some(&avaya[3].1[..]));
    }
    let mut buf = [0u8; 2048];
    relay.send(&message(
        DISCOVER,
        0x7002,
        mac(71),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &avaya,
    ));
    let (n, _) = relay.sock.recv_from(&mut buf).expect("an offer");
    assert!(n <= 576 - 28, "{n} bytes for a client that takes 548");
}

#[test]
fn inform_is_answered_with_the_provisioning_options_and_no_lease() {
    let d = Daemon::start_with(INFORM_ONLY);
    let inform_mode = relay(&d);
    let phone = Ipv4Addr::new(127, 0, 99, 20);
    let avaya = [
        (60, b"ccp.avaya.com".to_vec()),
        (55, vec![1, 3, 6, 242, 43]),
    ];
    let ack = inform_mode
        .exchange(&message(INFORM, 0x4001, mac(20), GIADDR, phone, &avaya))
        .expect("the INFORM is answered");
    assert_eq!(ack.msg_type, ACK);
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.giaddr, GIADDR);
    for code in [51, 58, 59] {
        assert_eq!(
            ack.options.get(code),
            None,
            "option {code} in an INFORM answer"
        );
    }
    assert_eq!(text(&ack, 242), "TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT=8443");
    assert_eq!(&ack.options.get(43).unwrap()[..6], b"\x01\x046889");
    assert_eq!(ack.options.get(54), Some(&[127, 0, 0, 1][..]));
    // Inform mode hands out no address.
    let discover = message(
        DISCOVER,
        0x4002,
        mac(21),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &avaya,
    );
    assert!(inform_mode.exchange(&discover).is_none());
    let stats = api(&d, "/dhcp/stats");
    assert_eq!(stats["informs"], 1, "{stats}");
    assert_eq!(stats["malformed"], 0, "{stats}");
    assert_eq!(api(&d, "/dhcp/leases").as_array().unwrap().len(), 0);

    // In server mode an INFORM from a configured subnet gets its network options too.
    let d = Daemon::start_with(DHCP);
    let server_mode = relay(&d);
    let ack = server_mode
        .exchange(&message(INFORM, 0x4003, mac(22), GIADDR, phone, &avaya))
        .expect("the INFORM is answered");
    assert_eq!((ack.msg_type, ack.yiaddr), (ACK, Ipv4Addr::UNSPECIFIED));
    assert_eq!(ack.options.get(51), None);
    assert_eq!(ack.options.get(3), Some(&[127, 0, 99, 1][..]));
    assert_eq!(text(&ack, 242), "TLSSRVR=127.0.0.1,TLSDIR=/,TLSPORT=8443");
    assert_eq!(api(&d, "/dhcp/leases").as_array().unwrap().len(), 0);
}

/// An INFORM in inform mode, with the default wildcard listen address and no subnet: the
/// server identifier is the address the phone reached, never 0.0.0.0.
#[test]
fn inform_answer_names_the_address_the_phone_reached() {
    let d = Daemon::start_with(&INFORM_ONLY.replace("127.0.0.1:0", "0.0.0.0:0"));
    let port = dhcp_addr(&d).port();
    let phone = Ipv4Addr::new(127, 0, 99, 21);
    // Not relayed: the answer goes to the phone's own address on the client port.
    let client = Relay::bind(
        phone,
        port + 1,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    );
    let ack = client
        .exchange(&message(
            INFORM,
            0x4101,
            mac(23),
            Ipv4Addr::UNSPECIFIED,
            phone,
            &[(60, b"yealink".to_vec()), (55, vec![1, 66])],
        ))
        .expect("the INFORM is answered");
    assert_eq!((ack.msg_type, ack.yiaddr), (ACK, Ipv4Addr::UNSPECIFIED));
    assert_eq!(ack.options.get(54), Some(&[127, 0, 0, 1][..]));
    assert_eq!(text(&ack, 66), "https://127.0.0.1:8443/");
}

/// A phone renewing straight to the server (a relayed VLAN's renewals skip the relay) with the
/// broadcast flag set, as some phones always do: the ACK goes to its address (RFC 2131 4.1: a
/// client with `ciaddr` is answered there), not broadcast on the server's own link where it
/// would never arrive. Its client identifier comes back in every reply (RFC 6842).
#[test]
fn a_renewal_with_the_broadcast_flag_is_answered_at_its_address_with_its_client_id() {
    let d = Daemon::start_with(DHCP);
    let port = dhcp_addr(&d).port();
    let client_id = [1, 0x02, 0xed, 0, 0, 0, 24].to_vec();
    let opts = [(61, client_id.clone())];
    let (offer, ack) = relay(&d).dora(mac(24), 0x4201, &opts).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    for reply in [&offer, &ack] {
        assert_eq!(reply.options.get(61), Some(client_id.as_slice()));
    }
    let phone = Relay::bind(
        ack.yiaddr,
        port + 1,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    );
    let mut renew = message(
        REQUEST,
        0x4202,
        mac(24),
        Ipv4Addr::UNSPECIFIED,
        ack.yiaddr,
        &opts,
    );
    renew[10] = 0x80;
    let r = phone
        .exchange(&renew)
        .expect("the renewal is answered at the phone's address");
    assert_eq!((r.msg_type, r.yiaddr), (ACK, ack.yiaddr));
    assert_eq!(r.options.get(61), Some(client_id.as_slice()));
}

/// The range starts at the server's own address (its identifier toward the subnet, worked out
/// from the routes: 127.0.0.1); clients get every other address and never that one.
/// A NAKed client is back in INIT (a phone moved to another network, rebooting with its old
/// address): the lease it held ends at once and is stored as ended, so its address goes to the
/// next client instead of staying held for the rest of the lease time.
#[test]
fn a_nak_ends_the_lease_the_client_held() {
    let d = Daemon::start_with(&DHCP.replace("127.0.99.250", "127.0.99.100"));
    let relay = relay(&d);
    let only = Ipv4Addr::new(127, 0, 99, 100);
    let (_, ack) = relay.dora(mac(40), 0x6001, &[]).expect("DORA");
    assert_eq!((ack.msg_type, ack.yiaddr), (ACK, only));
    let reboot = message(
        REQUEST,
        0x6002,
        mac(40),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &[(50, vec![192, 168, 1, 50])],
    );
    assert_eq!(relay.exchange(&reboot).expect("answered").msg_type, NAK);
    // Stored as ended: written just after the NAK left.
    let path = format!("/dhcp/leases?ip={only}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while api(&d, &path)[0]["state"] != "expired" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(api(&d, &path)[0]["state"], "expired", "{}", api(&d, &path));
    let (_, ack) = relay.dora(mac(41), 0x6003, &[]).expect("DORA");
    assert_eq!((ack.msg_type, ack.yiaddr), (ACK, only));
}

/// A full pool is an alarm an operator sees (and the cloud is told), naming the subnet and
/// what to change, not only a log line: phones asking for an address get no answer at all.
/// A boot storm against the full pool makes one alarm occurrence a minute, not one a DISCOVER.
/// Once an address is free again and no client was refused for a refresh round, the alarm
/// clears itself, as docs/alarms.md says state alarms do (it stayed until an operator cleared
/// it, so a pool that had recovered still showed as full).
#[test]
fn an_exhausted_pool_raises_one_alarm_naming_the_subnet_and_clears_it_once_free() {
    let d = Daemon::start_with(&DHCP.replace("127.0.99.250", "127.0.99.101"));
    let relay = relay(&d);
    let mut acks = Vec::new();
    for n in [70, 71] {
        let (_, ack) = relay.dora(mac(n), 0x7100 + n, &[]).expect("DORA");
        assert_eq!(ack.msg_type, ACK);
        acks.push(ack);
    }
    let none = Ipv4Addr::UNSPECIFIED;
    for (n, xid) in [(72, 0x7201), (73, 0x7202), (72, 0x7203)] {
        let discover = message(DISCOVER, xid, mac(n), GIADDR, none, &[]);
        assert!(relay.exchange(&discover).is_none(), "no address is left");
    }
    assert_eq!(api(&d, "/dhcp/stats")["exhausted"], 3);
    let path = "/alarms?kind=dhcp_pool_exhausted";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while api(&d, path).as_array().is_none_or(|a| a.is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alarms = api(&d, path);
    assert_eq!(alarms.as_array().map(Vec::len), Some(1), "{alarms}");
    let alarm = &alarms[0];
    assert_eq!(alarm["source"], "127.0.99.0/24", "{alarm}");
    assert_eq!(alarm["severity"], "major", "{alarm}");
    assert_eq!(alarm["count"], 1, "{alarm}");
    let message = alarm["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("02ed00000048") && message.contains("dhcp.subnet.ranges"),
        "{message}"
    );

    // The first phone leaves: an address is free, and the alarm goes within two refresh
    // rounds (10 s each).
    let server_id = acks[0].options.get(54).expect("server id").to_vec();
    relay.send(&common::dhcp::message(
        RELEASE,
        0x7301,
        mac(70),
        GIADDR,
        acks[0].yiaddr,
        &[(54, server_id)],
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while api(&d, path).as_array().is_some_and(|a| !a.is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the alarm stayed after the pool had a free address: {}",
            api(&d, path)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(api(&d, "/dhcp/stats")["releases"], 1);
    let (_, ack) = relay.dora(mac(72), 0x7302, &[]).expect("DORA");
    assert_eq!((ack.msg_type, ack.yiaddr), (ACK, acks[0].yiaddr));
}

/// A reservation moved to another device (a phone replaced) on a server that shares its network
/// (`authoritative = false`): the old phone, renewing the reserved address it holds from this
/// server, was left unanswered and kept the address for the rest of its lease, the new phone
/// getting a dynamic one meanwhile. This server knows the address is no longer the old phone's:
/// it NAKs, the old phone starts over with a dynamic address, and the new one gets the
/// reserved address at its next renewal, as Kea does.
#[test]
fn a_reservation_moved_to_another_device_is_handed_over() {
    let d = Daemon::start_with(&DHCP.replace(
        "provisioning_url",
        "authoritative = false\nprovisioning_url",
    ));
    let fixed = "127.0.99.40";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (old_mac, new_mac) = (mac(80), mac(81));
    let hex = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
    rt.block_on(d.add_device(serde_json::json!({
        "mac": hex(old_mac), "params": {"dhcp:address": fixed}
    })));
    rt.block_on(d.add_device(serde_json::json!({"mac": hex(new_mac)})));
    let relay = relay(&d);
    // The reservation is read at start and every 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let held = loop {
        let (_, ack) = relay.dora(old_mac, 0x8001, &[]).expect("DORA");
        if ack.yiaddr.to_string() == fixed {
            break ack;
        }
        assert!(std::time::Instant::now() < deadline, "never got {fixed}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let server_id = held.options.get(54).unwrap().to_vec();

    // The operator moves the reservation to the new phone.
    for (m, value) in [(old_mac, serde_json::Value::Null), (new_mac, fixed.into())] {
        let body = serde_json::json!({"params": {"dhcp:address": value}});
        let (status, v) = rt.block_on(d.api("PATCH", &format!("/devices/{}", hex(m)), Some(body)));
        assert_eq!(status, 200, "{v}");
    }
    let renew = common::dhcp::message(REQUEST, 0x8002, old_mac, GIADDR, held.yiaddr, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let reply = loop {
        let reply = relay.exchange(&renew);
        if reply.as_ref().is_none_or(|r| r.msg_type != ACK) {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old phone kept renewing {fixed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let reply = reply.expect("the old phone is told: no answer left it the address");
    assert_eq!(reply.msg_type, NAK);

    // The old phone starts over elsewhere; the new one gets the reserved address.
    let (_, ack) = relay.dora(old_mac, 0x8003, &[]).expect("DORA");
    assert_ne!(ack.yiaddr.to_string(), fixed);
    let (_, ack) = relay
        .dora(new_mac, 0x8004, &[(55, vec![1, 3])])
        .expect("DORA");
    assert_eq!(ack.yiaddr.to_string(), fixed);
    assert_eq!(ack.options.get(54), Some(server_id.as_slice()));
}

/// A phone whose boot loader asks for an address without a client identifier and whose
/// application then asks with one (or whose new firmware starts sending one) is one client:
/// it got a second address, the first held for a whole lease time (a pool sized for its phones
/// ran out at twice the rate), and a reboot asking for its address was NAKed as another
/// client's. Leases now belong to the identifier when both sides have one, else to the MAC,
/// as Kea and dnsmasq match them.
#[test]
fn a_client_that_starts_sending_an_identifier_keeps_its_address() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let phone = mac(90);
    let (_, boot) = relay
        .dora(phone, 0x9001, &[])
        .expect("DORA without an identifier");
    assert_eq!(boot.msg_type, ACK);
    let id = vec![1, 0x02, 0xed, 0, 0, 0, 90];
    let app = [(61, id.clone())];
    let (offer, ack) = relay.dora(phone, 0x9002, &app).expect("DORA with one");
    assert_eq!((offer.yiaddr, ack.msg_type), (boot.yiaddr, ACK));
    assert_eq!(ack.yiaddr, boot.yiaddr);
    assert_eq!(ack.options.get(61), Some(id.as_slice()));
    // The boot loader again, rebooting with the address (INIT-REBOOT, no identifier).
    let reboot = common::dhcp::message(
        REQUEST,
        0x9003,
        phone,
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &[(50, boot.yiaddr.octets().to_vec())],
    );
    let r = relay.exchange(&reboot).expect("an answer");
    assert_eq!((r.msg_type, r.yiaddr), (ACK, boot.yiaddr));
    let leases = api(&d, "/dhcp/leases");
    let mine: Vec<&Value> = leases
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mac"] == "02ed0000005a")
        .collect();
    assert_eq!(mine.len(), 1, "one address for one phone: {leases}");
}

/// The reverse: a phone that got its lease with a client identifier and later asks without one
/// (older firmware after a downgrade, or its boot loader), from a DISCOVER that does not name
/// its address (no option 50). It was found by neither key and got a second address, the first
/// held for a whole lease time. It is one client by its MAC (as Kea finds it by hardware
/// address); another identifier behind the same MAC stays another client.
#[test]
fn a_client_that_stops_sending_its_identifier_keeps_its_address() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let phone = mac(91);
    let id = vec![1, 0x02, 0xed, 0, 0, 0, 91];
    let (_, app) = relay
        .dora(phone, 0x9101, &[(61, id.clone())])
        .expect("DORA with an identifier");
    assert_eq!(app.msg_type, ACK);
    let (offer, boot) = relay
        .dora(phone, 0x9102, &[])
        .expect("DORA without an identifier");
    assert_eq!((offer.yiaddr, boot.msg_type), (app.yiaddr, ACK));
    assert_eq!(boot.yiaddr, app.yiaddr);
    assert_eq!(boot.options.get(61), None);
    // The identifier again: still the same address.
    let (_, again) = relay.dora(phone, 0x9103, &[(61, id)]).expect("DORA");
    assert_eq!((again.msg_type, again.yiaddr), (ACK, app.yiaddr));
    // A second stack behind the same NIC, with its own identifier, is another client.
    let (_, other) = relay
        .dora(phone, 0x9104, &[(61, vec![0xff, 1, 2, 3])])
        .expect("DORA for the second stack");
    assert_eq!(other.msg_type, ACK);
    assert_ne!(other.yiaddr, app.yiaddr);
    let leases = api(&d, "/dhcp/leases");
    let mut mine: Vec<String> = leases
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mac"] == "02ed0000005b")
        .map(|l| l["ip"].as_str().unwrap_or_default().to_string())
        .collect();
    mine.sort();
    let mut want = vec![app.yiaddr.to_string(), other.yiaddr.to_string()];
    want.sort();
    assert_eq!(mine, want, "one address per client: {leases}");
}

/// The only server on its network (authoritative, the default) NAKs a rebooting or renewing
/// phone whose address it has no record of: after the database was lost or another server was
/// replaced, such a phone would otherwise go on using an address this server then gives to the
/// next phone. Told so, it starts over and gets a lease the server knows.
#[test]
fn an_address_the_server_has_no_record_of_is_nakked() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let old = Ipv4Addr::new(127, 0, 99, 100);
    let none = Ipv4Addr::UNSPECIFIED;
    let reboot = message(
        REQUEST,
        0x7301,
        mac(80),
        GIADDR,
        none,
        &[(50, old.octets().to_vec())],
    );
    assert_eq!(relay.exchange(&reboot).map(|r| r.msg_type), Some(NAK));
    let renew = message(REQUEST, 0x7302, mac(81), GIADDR, old, &[]);
    assert_eq!(relay.exchange(&renew).map(|r| r.msg_type), Some(NAK));
    let (_, ack) = relay.dora(mac(80), 0x7303, &[]).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    // Not authoritative: the address may be another server's, which is left to answer.
    let d = Daemon::start_with(&DHCP.replace("[dhcp]\n", "[dhcp]\nauthoritative = false\n"));
    let relay = self::relay(&d);
    assert!(relay.exchange(&reboot).is_none());
}

/// A client that finds its address taken declines it (RFC 2131 4.3.3): the address is kept
/// out of use and the administrator is told, by an alarm naming the address and the client,
/// since a device with a fixed address inside the range will be found again and again.
#[test]
fn a_declined_address_raises_an_alarm_naming_it() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let (_, ack) = relay.dora(mac(90), 0x7401, &[]).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    relay.send(&message(
        DECLINE,
        0x7402,
        mac(90),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &[
            (50, ack.yiaddr.octets().to_vec()),
            (54, ack.options.get(54).unwrap_or_default().to_vec()),
        ],
    ));
    let path = "/alarms?kind=dhcp_address_declined";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while api(&d, path).as_array().is_none_or(|a| a.is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alarms = api(&d, path);
    assert_eq!(alarms.as_array().map(Vec::len), Some(1), "{alarms}");
    assert_eq!(alarms[0]["source"], ack.yiaddr.to_string(), "{alarms}");
    let message = alarms[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("02ed0000005a"), "{message}");
    assert_eq!(api(&d, "/dhcp/stats")["declines"], 1);
    let (_, next) = relay.dora(mac(91), 0x7403, &[]).expect("DORA");
    assert_ne!(
        next.yiaddr, ack.yiaddr,
        "the declined address is kept out of use"
    );
}

/// Waits until the server has counted `n` ignored messages (a DECLINE or RELEASE has no
/// answer to wait for).
fn wait_ignored(d: &Daemon, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while api(d, "/dhcp/stats")["ignored"].as_u64() < Some(n) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            api(d, "/dhcp/stats")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// RFC 2131 4.3.3: a server acts on a DECLINE or RELEASE only when its server identifier
/// (option 54) is the server's own, and a REQUEST naming another server means the client took
/// that server's offer. A DECLINE for another server's offer took a working address out of the
/// pool (and raised an alarm); here it changes nothing, a RELEASE for another server leaves the
/// lease bound, and a REQUEST for another server frees the offer at once.
#[test]
fn messages_naming_another_server_are_not_acted_on() {
    let d = Daemon::start_with(&DHCP.replace("127.0.99.250", "127.0.99.101"));
    let relay = relay(&d);
    let other = vec![127, 0, 99, 254];
    let none = Ipv4Addr::UNSPECIFIED;
    let (_, ack) = relay.dora(mac(95), 0x7501, &[]).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    let held = ack.yiaddr;
    assert_ne!(ack.options.get(54), Some(other.as_slice()));

    let decline = [(50, held.octets().to_vec()), (54, other.clone())];
    relay.send(&message(DECLINE, 0x7502, mac(95), GIADDR, none, &decline));
    wait_ignored(&d, 1);
    relay.send(&message(
        RELEASE,
        0x7503,
        mac(95),
        GIADDR,
        held,
        &[(54, other.clone())],
    ));
    wait_ignored(&d, 2);
    let stats = api(&d, "/dhcp/stats");
    assert_eq!(
        (&stats["declines"], &stats["releases"]),
        (&0.into(), &0.into()),
        "{stats}"
    );
    let lease = api(&d, &format!("/dhcp/leases?ip={held}"));
    assert_eq!(lease[0]["state"], "bound", "{lease}");
    let alarms = api(&d, "/alarms?kind=dhcp_address_declined");
    assert_eq!(alarms.as_array().map(Vec::len), Some(0), "{alarms}");
    let renew = message(REQUEST, 0x7504, mac(95), GIADDR, held, &[]);
    assert_eq!(
        relay.exchange(&renew).map(|r| (r.msg_type, r.yiaddr)),
        Some((ACK, held))
    );

    // The last address is offered to one client, which then takes another server's offer: the
    // next client gets it at once instead of after the offer hold.
    let discover = |xid, n| message(DISCOVER, xid, mac(n), GIADDR, none, &[]);
    let offer = relay.exchange(&discover(0x7505, 96)).expect("an offer");
    assert_eq!(offer.msg_type, OFFER);
    assert!(
        relay.exchange(&discover(0x7506, 97)).is_none(),
        "held for the first"
    );
    let elsewhere = [(50, offer.yiaddr.octets().to_vec()), (54, other)];
    relay.send(&message(REQUEST, 0x7507, mac(96), GIADDR, none, &elsewhere));
    wait_ignored(&d, 3);
    let next = relay
        .exchange(&discover(0x7508, 97))
        .expect("the freed offer");
    assert_eq!((next.msg_type, next.yiaddr), (OFFER, offer.yiaddr));
}

/// Nothing watches the clock while the daemon is stopped: a clock that went back meanwhile
/// leaves stored lease ends far ahead. At start they are shortened to one lease time from now,
/// and stored so.
#[test]
fn stored_leases_far_ahead_are_shortened_at_start() {
    let mut d = Daemon::start_with(DHCP);
    let (_, ack) = relay(&d).dora(mac(50), 0x7001, &[]).expect("DORA");
    assert_eq!(ack.msg_type, ACK);
    d.stop();
    // The clock going back a year while stopped, as the daemon will see it: ends a year ahead.
    let year = 365 * 86_400;
    let store = edgeprov::store::Store::open(&d.data_dir().join("edgeprov.redb")).unwrap();
    let mut lease = store.list_leases().unwrap();
    assert_eq!(lease.len(), 1);
    lease[0].starts += year;
    lease[0].expires += year;
    store.put_leases(&lease).unwrap();
    drop(store);

    let d = d.restart();
    let now = edgeprov::model::now_unix();
    let stored = api(&d, &format!("/dhcp/leases?ip={}", ack.yiaddr));
    let (starts, expires) = (
        stored[0]["starts"].as_i64().unwrap(),
        stored[0]["expires"].as_i64().unwrap(),
    );
    assert_eq!(stored[0]["state"], "bound", "{stored}");
    assert!(
        (now - 60..=now).contains(&starts) && (now + 3_540..=now + 3_600).contains(&expires),
        "one lease time (3600 s) from the start at {now}: {stored}"
    );
}

#[test]
fn the_server_never_leases_its_own_address() {
    let d = Daemon::start_with(
        r#"
[dhcp]
enabled = true
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
[[dhcp.subnet]]
network = "127.0.0.0/24"
ranges = [["127.0.0.1", "127.0.0.2"]]
"#,
    );
    let server = dhcp_addr(&d);
    let relay = Relay::bind(Ipv4Addr::new(127, 0, 0, 9), server.port(), server);
    let (offer, ack) = relay.dora(mac(30), 0x5001, &[]).expect("DORA");
    assert_eq!(offer.options.get(54), Some(&[127, 0, 0, 1][..]));
    assert_eq!(
        (ack.msg_type, ack.yiaddr),
        (ACK, Ipv4Addr::new(127, 0, 0, 2))
    );
    let second = relay.exchange(&message(
        DISCOVER,
        0x5002,
        mac(31),
        relay.giaddr,
        Ipv4Addr::UNSPECIFIED,
        &[],
    ));
    assert!(second.is_none(), "pool exhausted, yet offered {second:?}");
    assert_eq!(api(&d, "/dhcp/stats")["exhausted"], 1);
    // And where monitoring looks: every counter of the stats, this one moved.
    let text = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(d.metrics());
    assert_eq!(metric(&text, "edgeprov_dhcp_exhausted_total"), 1, "{text}");
    for name in api(&d, "/dhcp/stats").as_object().unwrap().keys() {
        metric(&text, &format!("edgeprov_dhcp_{name}_total"));
    }
}

#[test]
fn malformed_packets_are_dropped_counted_and_the_server_keeps_answering() {
    let d = Daemon::start_with(DHCP);
    let relay = relay(&d);
    let good = message(
        DISCOVER,
        7,
        mac(9),
        GIADDR,
        Ipv4Addr::UNSPECIFIED,
        &[(60, b"x".to_vec())],
    );
    let mut bad: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for n in 0..200 {
        let len = 243 + (n * 7) % 300;
        let mut b = good.clone();
        b.resize(len, 0);
        for byte in b.iter_mut().skip(240) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        // Keep the message type first so the random tail is what is judged; a random tail either
        // truncates an option (malformed) or happens to parse (then it is answered or ignored).
        b[240..243].copy_from_slice(&[53, 1, 1]);
        bad.push(b);
    }
    let mut cookie = good.clone();
    cookie[236] = 0x42;
    let mut truncated = good[..243].to_vec();
    truncated.extend_from_slice(&[60, 200, b'x']);
    let short = good[..100].to_vec();
    for (i, b) in [&cookie, &truncated, &short]
        .into_iter()
        .chain(&bad)
        .enumerate()
    {
        relay.send(b);
        // Paced: a loopback burst beyond the socket buffer is dropped by the kernel, uncounted.
        std::thread::sleep(Duration::from_millis(if i < 3 { 20 } else { 1 }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let stats = api(&d, "/dhcp/stats");
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert!(n("malformed") >= 3, "{stats}");
    assert!(n("received") >= 150, "{stats}");
    // Every packet that arrived is accounted for: dropped as malformed, ignored, or answered.
    let answered = n("offers") + n("acks") + n("naks") + n("informs");
    let other = n("ignored") + n("exhausted") + n("releases") + n("declines");
    assert_eq!(n("received"), n("malformed") + answered + other, "{stats}");
    let (_, ack) = relay.dora(mac(10), 0x77, &[]).expect("still answering");
    assert_eq!(ack.msg_type, ACK);
}

#[test]
fn kill_9_between_acks_loses_no_lease_and_offers_no_address_twice() {
    let d = Daemon::start_with(DHCP);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let relay = relay(&d);
        relay
            .sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let acked = acked.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 100u32;
            while !stop.load(Ordering::Relaxed) && n < 240 {
                n += 1;
                if let Some((_, ack)) = relay.dora(mac(n), n, &[])
                    && ack.msg_type == ACK
                {
                    acked.lock().unwrap().push((mac(n), ack.yiaddr));
                }
            }
        })
    };
    // Let some ACKs through, then crash the daemon in the middle of the stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 30 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut d = d;
    d.kill9();
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 30,
        "only {} ACKs before the crash",
        acked.len()
    );

    let d = d.restart();
    let stored = api(&d, "/dhcp/leases");
    let by_ip: HashMap<String, String> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["ip"].as_str().unwrap().to_string(),
                l["mac"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let acked_ips: HashSet<Ipv4Addr> = acked.iter().map(|(_, ip)| *ip).collect();
    assert_eq!(
        acked_ips.len(),
        acked.len(),
        "no address acknowledged twice"
    );
    for (m, ip) in &acked {
        let want: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            by_ip.get(&ip.to_string()),
            Some(&want),
            "ACKed lease {ip} lost"
        );
    }
    // New clients are never offered an acknowledged address; old ones get theirs back.
    let relay = relay(&d);
    for n in 0..20u32 {
        let offer = relay
            .exchange(&message(
                DISCOVER,
                5000 + n,
                mac(5000 + n),
                GIADDR,
                Ipv4Addr::UNSPECIFIED,
                &[],
            ))
            .expect("offer");
        assert!(
            !acked_ips.contains(&offer.yiaddr),
            "{} offered twice",
            offer.yiaddr
        );
    }
    let (m, ip) = acked[0];
    let offer = relay
        .exchange(&message(
            DISCOVER,
            9999,
            m,
            GIADDR,
            Ipv4Addr::UNSPECIFIED,
            &[],
        ))
        .expect("offer");
    assert_eq!(offer.yiaddr, ip);
}
