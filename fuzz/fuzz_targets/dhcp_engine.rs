//! The DHCP answer engine driven by a sequence of arbitrary datagrams, as the server loop
//! drives it: each one decoded, placed in a subnet (directly attached or relayed), decided
//! on by the lease engine at a clock the input moves, answered from the plan and encoded.
//! Nothing may panic, an address handed out is one of the subnet's pool, and a reply fits
//! what the client allows.
//!
//! The input is a list of records: one byte of seconds to move the clock, two bytes of
//! length (big-endian), then that many bytes of datagram.
#![no_main]

use std::collections::HashSet;
use std::net::Ipv4Addr;

use edgeprov::dhcp::answer::Plan;
use edgeprov::dhcp::config::{DhcpConfig, SubnetConfig};
use edgeprov::dhcp::lease::{Decision, Engine};
use edgeprov::dhcp::packet::{decode, encode};
use edgeprov::dhcp::vendor::ProvisioningUrl;
use libfuzzer_sys::fuzz_target;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const START: i64 = 1_700_000_000;

fn subnet(network: &str, first: Ipv4Addr, last: Ipv4Addr) -> SubnetConfig {
    SubnetConfig {
        network: network.parse().unwrap(),
        ranges: vec![[first, last]],
        router: Some(first),
        dns: vec![SERVER],
        ntp: vec![],
        domain: "phones.example".into(),
        lease_seconds: 600,
        server_id: None,
    }
}

fn config() -> DhcpConfig {
    DhcpConfig {
        enabled: true,
        subnets: vec![
            // Four addresses, so that a few clients exhaust it.
            subnet(
                "10.77.0.0/24",
                Ipv4Addr::new(10, 77, 0, 10),
                Ipv4Addr::new(10, 77, 0, 13),
            ),
            // Reached through a relay (giaddr).
            subnet(
                "10.88.0.0/16",
                Ipv4Addr::new(10, 88, 1, 0),
                Ipv4Addr::new(10, 88, 1, 255),
            ),
        ],
        offer_hold_seconds: 30,
        decline_seconds: 100,
        ..DhcpConfig::default()
    }
}

fn in_pool(config: &DhcpConfig, subnet: usize, ip: Ipv4Addr) -> bool {
    config.subnets[subnet]
        .ranges
        .iter()
        .any(|[a, b]| (*a..=*b).contains(&ip))
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    let url = ProvisioningUrl::parse("https://10.77.0.1:8443/").unwrap();
    let plan = Plan::new(&config, Some(url)).unwrap();
    let mut engine = Engine::new(&config);
    engine.set_own_addresses(HashSet::from([SERVER]));
    let mut now = START;
    let mut rest = data;
    for _ in 0..32 {
        let [step, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, after) = tail.split_at(len);
        rest = after;
        now += i64::from(*step);
        if let Some((_, moved)) = engine.observe_clock(now, now - START) {
            assert!(moved.is_empty());
        }
        let Ok(req) = decode(packet) else {
            continue;
        };
        let subnet = engine.subnet_for(&req, engine.attached(SERVER));
        let decision = engine.handle(&req, subnet, SERVER, now);
        match &decision {
            Decision::Offer { ip, subnet } => assert!(in_pool(&config, *subnet, *ip), "{ip}"),
            Decision::Ack { subnet, lease } => {
                assert!(in_pool(&config, *subnet, lease.ip), "{}", lease.ip);
                assert_ne!(lease.ip, SERVER);
            }
            _ => {}
        }
        if let Some(reply) = plan.reply(&req, &decision, SERVER) {
            let out = encode(&req, &reply);
            assert!(
                out.len() <= req.max_size.max(300),
                "{} > {}",
                out.len(),
                req.max_size
            );
        }
    }
});
