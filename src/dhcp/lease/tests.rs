//! The engine without sockets: state transitions, exhaustion, reservations, decline, expiry,
//! repeated messages, and a property test that no address is ever held by two clients.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::dhcp::config::{DhcpConfig, SubnetConfig};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn config(first: u8, last: u8) -> DhcpConfig {
    DhcpConfig {
        enabled: true,
        subnets: vec![SubnetConfig {
            network: "10.77.0.0/24".parse().unwrap(),
            ranges: vec![[
                Ipv4Addr::new(10, 77, 0, first),
                Ipv4Addr::new(10, 77, 0, last),
            ]],
            router: Some(SERVER),
            dns: vec![],
            ntp: vec![],
            domain: String::new(),
            lease_seconds: 600,
            server_id: None,
        }],
        offer_hold_seconds: 30,
        decline_seconds: 1000,
        ..DhcpConfig::default()
    }
}

fn mac(n: u8) -> Mac {
    Mac::from_octets([0, 0x11, 0x22, 0, 0, n])
}

fn req(kind: Kind, n: u8) -> Request {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac(n).octets());
    Request {
        kind,
        xid: 1,
        broadcast: false,
        hops: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        mac: mac(n),
        chaddr,
        client_id: vec![],
        requested_ip: None,
        server_id: None,
        prl: vec![],
        max_size: 548,
        hostname: String::new(),
        vendor_class: String::new(),
        relay_info: vec![],
    }
}

fn run(e: &mut Engine, r: &Request, now: i64) -> Decision {
    let subnet = e.subnet_for(r, Some(0));
    e.handle(r, subnet, SERVER, now)
}

fn offer(e: &mut Engine, n: u8, now: i64) -> Option<Ipv4Addr> {
    match run(e, &req(Kind::Discover, n), now) {
        Decision::Offer { ip, .. } => Some(ip),
        _ => None,
    }
}

fn select(e: &mut Engine, n: u8, ip: Ipv4Addr, now: i64) -> Decision {
    let mut r = req(Kind::Request, n);
    r.server_id = Some(SERVER);
    r.requested_ip = Some(ip);
    run(e, &r, now)
}

fn dora(e: &mut Engine, n: u8, now: i64) -> Ipv4Addr {
    let ip = offer(e, n, now).expect("an offer");
    match select(e, n, ip, now) {
        Decision::Ack { lease, .. } => {
            assert_eq!(lease.ip, ip);
            assert_eq!(lease.state, LeaseState::Bound);
            ip
        }
        other => panic!("expected an ACK, got {other:?}"),
    }
}

#[test]
fn discover_request_then_renew_rebind_and_reboot_keep_the_address() {
    let mut e = Engine::new(&config(100, 110));
    let ip = dora(&mut e, 1, 1000);
    assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 100));
    // Renewing (unicast, ciaddr) and rebinding (broadcast, ciaddr) extend the lease.
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = ip;
    let Decision::Ack { lease, .. } = run(&mut e, &renew, 1300) else {
        panic!("renew")
    };
    assert_eq!(lease.expires, 1900);
    assert_eq!(lease.starts, 1000);
    renew.broadcast = true;
    assert!(matches!(run(&mut e, &renew, 1400), Decision::Ack { .. }));
    // Init-reboot: requested address, no server id, no ciaddr.
    let mut reboot = req(Kind::Request, 1);
    reboot.requested_ip = Some(ip);
    assert!(matches!(run(&mut e, &reboot, 1500), Decision::Ack { .. }));
    // Rediscovering gets the same address offered.
    assert_eq!(offer(&mut e, 1, 1600), Some(ip));
}

#[test]
fn wrong_network_and_foreign_addresses_are_nakked() {
    let mut e = Engine::new(&config(100, 110));
    let a = dora(&mut e, 1, 0);
    let mut reboot = req(Kind::Request, 2);
    reboot.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 50));
    assert!(matches!(run(&mut e, &reboot, 10), Decision::Nak { .. }));
    reboot.requested_ip = Some(a);
    assert!(matches!(run(&mut e, &reboot, 10), Decision::Nak { .. }));
    // Unknown address on the right network: an authoritative server gave no such lease, so
    // the client is told to start over rather than left to keep using it.
    reboot.requested_ip = Some(Ipv4Addr::new(10, 77, 0, 105));
    assert!(matches!(run(&mut e, &reboot, 10), Decision::Nak { .. }));
    let mut renew = req(Kind::Request, 4);
    renew.ciaddr = Ipv4Addr::new(10, 77, 0, 106);
    assert!(matches!(run(&mut e, &renew, 10), Decision::Nak { .. }));
    // The address stays free for the next client.
    assert!(matches!(
        select(&mut e, 5, Ipv4Addr::new(10, 77, 0, 105), 20),
        Decision::Ack { .. }
    ));
    // Selecting an address offered to someone else.
    assert!(matches!(select(&mut e, 3, a, 10), Decision::Nak { .. }));
    let mut not_auth = config(100, 110);
    not_auth.authoritative = false;
    let mut e = Engine::new(&not_auth);
    reboot.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 50));
    assert!(matches!(run(&mut e, &reboot, 10), Decision::Ignore(_)));
    // Not authoritative: an address it has no record of may be another server's (RFC 2131
    // 4.3.2: silent).
    reboot.requested_ip = Some(Ipv4Addr::new(10, 77, 0, 105));
    assert!(matches!(run(&mut e, &reboot, 10), Decision::Ignore(_)));
    renew.ciaddr = Ipv4Addr::new(10, 77, 0, 106);
    assert!(matches!(run(&mut e, &renew, 10), Decision::Ignore(_)));
}

/// A NAKed client is back in INIT and uses no address any more: the lease it held ends now,
/// instead of keeping its address from everyone until its old end.
#[test]
fn a_nak_ends_the_lease_the_client_held() {
    // One address: while anyone holds it, nobody else gets one.
    let mut e = Engine::new(&config(100, 100));
    let a = dora(&mut e, 1, 0);
    // Another client asking for it is NAKed, and the holder keeps it.
    let mut steal = req(Kind::Request, 2);
    steal.requested_ip = Some(a);
    assert_eq!(
        run(&mut e, &steal, 5),
        Decision::Nak {
            why: "the address belongs to another client",
            freed: None
        }
    );
    assert_eq!(run(&mut e, &req(Kind::Discover, 2), 6), Decision::Exhausted);
    // The phone moved to another network and reboots asking for an address from there.
    let mut moved = req(Kind::Request, 1);
    moved.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 50));
    let Decision::Nak { freed, .. } = run(&mut e, &moved, 10) else {
        panic!("a NAK for the wrong network")
    };
    let freed = freed.expect("the ended lease, for the store");
    assert_eq!((freed.ip, freed.mac, freed.expires), (a, mac(1), 10));
    assert_eq!(freed.state_at(10), LeaseState::Expired);
    assert_eq!(offer(&mut e, 2, 11), Some(a), "free for another client");

    // A renewal NAKed because the client has since been given a reservation.
    let mut e = Engine::new(&config(100, 100));
    let a = dora(&mut e, 1, 0);
    e.set_reservations(HashMap::from([(mac(1), Ipv4Addr::new(10, 77, 0, 30))]));
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = a;
    let Decision::Nak { freed, .. } = run(&mut e, &renew, 20) else {
        panic!("a NAK for the reserved client")
    };
    assert_eq!(freed.map(|l| (l.ip, l.expires)), Some((a, 20)));
    assert_eq!(offer(&mut e, 2, 21), Some(a));
}

#[test]
fn choosing_another_server_frees_the_offer() {
    let mut e = Engine::new(&config(100, 100));
    let ip = offer(&mut e, 1, 0).unwrap();
    assert_eq!(offer(&mut e, 2, 1), None, "held for client 1");
    let mut r = req(Kind::Request, 1);
    r.server_id = Some(Ipv4Addr::new(10, 77, 0, 2));
    r.requested_ip = Some(ip);
    assert!(matches!(run(&mut e, &r, 2), Decision::Ignore(_)));
    assert_eq!(offer(&mut e, 2, 3), Some(ip));
}

#[test]
fn pool_exhaustion_then_expiry_reclaims_the_oldest() {
    let mut e = Engine::new(&config(100, 102));
    let ips: Vec<_> = (1..=3).map(|n| dora(&mut e, n, n as i64)).collect();
    assert_eq!(
        run(&mut e, &req(Kind::Discover, 9), 10),
        Decision::Exhausted
    );
    // An unanswered offer holds its address only for the hold time.
    // Leases end at 601, 602, 603: at 602 the first one is reclaimable.
    assert!(!e.has_free(0, 10), "every address is leased");
    assert!(e.has_free(0, 602), "the first lease has ended");
    assert_eq!(offer(&mut e, 9, 602), Some(ips[0]));
    assert_eq!(offer(&mut e, 8, 602), Some(ips[1]));
    assert!(!e.has_free(0, 602), "offered again");
    assert_eq!(
        run(&mut e, &req(Kind::Discover, 7), 602),
        Decision::Exhausted
    );
}

#[test]
fn offers_expire_after_the_hold() {
    let mut e = Engine::new(&config(100, 100));
    let ip = offer(&mut e, 1, 0).unwrap();
    assert_eq!(offer(&mut e, 2, 29), None);
    assert_eq!(offer(&mut e, 2, 30), Some(ip));
    // Client 1 now selecting its stale offer is refused.
    assert!(matches!(select(&mut e, 1, ip, 31), Decision::Nak { .. }));
}

#[test]
fn release_frees_and_the_client_gets_it_back_first() {
    let mut e = Engine::new(&config(100, 101));
    let a = dora(&mut e, 1, 0);
    let mut rel = req(Kind::Release, 1);
    rel.ciaddr = a;
    rel.server_id = Some(SERVER);
    let Decision::Write(lease) = run(&mut e, &rel, 5) else {
        panic!("release writes")
    };
    assert_eq!(lease.state, LeaseState::Released);
    // A release by someone else is ignored.
    let mut rel2 = req(Kind::Release, 2);
    rel2.ciaddr = a;
    assert!(matches!(run(&mut e, &rel2, 6), Decision::Ignore(_)));
    // Fresh addresses go first; the released address comes back to its client.
    assert_ne!(offer(&mut e, 2, 7), Some(a));
    assert_eq!(offer(&mut e, 1, 8), Some(a));
}

#[test]
fn declined_address_is_quarantined() {
    let mut e = Engine::new(&config(100, 101));
    let a = dora(&mut e, 1, 0);
    let mut dec = req(Kind::Decline, 1);
    dec.requested_ip = Some(a);
    let Decision::Write(lease) = run(&mut e, &dec, 10) else {
        panic!("decline writes")
    };
    assert_eq!((lease.state, lease.expires), (LeaseState::Declined, 1010));
    let b = dora(&mut e, 1, 11);
    assert_ne!(a, b, "the decliner gets another address");
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = b;
    assert!(matches!(run(&mut e, &renew, 600), Decision::Ack { .. }));
    assert_eq!(
        run(&mut e, &req(Kind::Discover, 3), 1009),
        Decision::Exhausted
    );
    assert_eq!(offer(&mut e, 3, 1010), Some(a), "quarantine over");
}

/// RFC 2131 4.3.3: a server acts only on a DECLINE that names it. One naming another server
/// is about that server's offer; the address stays the client's here.
#[test]
fn a_decline_naming_another_server_is_ignored() {
    let mut e = Engine::new(&config(100, 101));
    let a = dora(&mut e, 1, 0);
    let mut dec = req(Kind::Decline, 1);
    dec.requested_ip = Some(a);
    dec.server_id = Some(Ipv4Addr::new(10, 77, 0, 2));
    assert!(matches!(run(&mut e, &dec, 10), Decision::Ignore(_)));
    assert_eq!(e.lease(a).map(|l| l.state), Some(LeaseState::Bound));
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = a;
    assert!(matches!(run(&mut e, &renew, 20), Decision::Ack { .. }));
    dec.server_id = Some(SERVER);
    assert!(matches!(run(&mut e, &dec, 30), Decision::Write(_)));
    assert_eq!(e.lease(a).map(|l| l.state), Some(LeaseState::Declined));
}

#[test]
fn reservations_win_and_are_kept_from_others() {
    let mut e = Engine::new(&config(100, 101));
    let fixed = Ipv4Addr::new(10, 77, 0, 20);
    e.set_reservations(HashMap::from([
        (mac(5), fixed),
        (mac(6), Ipv4Addr::new(10, 77, 0, 100)),
    ]));
    assert_eq!(
        dora(&mut e, 5, 0),
        fixed,
        "outside the range, inside the subnet"
    );
    // 10.77.0.100 is reserved for mac 6: others get .101 only.
    assert_eq!(dora(&mut e, 1, 0), Ipv4Addr::new(10, 77, 0, 101));
    assert_eq!(run(&mut e, &req(Kind::Discover, 2), 0), Decision::Exhausted);
    let mut steal = req(Kind::Request, 2);
    steal.requested_ip = Some(fixed);
    steal.server_id = Some(SERVER);
    assert!(matches!(run(&mut e, &steal, 1), Decision::Nak { .. }));
    // A client with a dynamic lease that gains a reservation is moved on its next reboot.
    e.set_reservations(HashMap::from([(mac(1), Ipv4Addr::new(10, 77, 0, 30))]));
    let mut reboot = req(Kind::Request, 1);
    reboot.requested_ip = Some(Ipv4Addr::new(10, 77, 0, 101));
    assert!(matches!(run(&mut e, &reboot, 2), Decision::Nak { .. }));
    assert_eq!(dora(&mut e, 1, 3), Ipv4Addr::new(10, 77, 0, 30));
}

#[test]
fn the_servers_own_addresses_are_never_handed_out() {
    // The server is 10.77.0.1 and the range starts there: the first fresh address is skipped.
    let mut e = Engine::new(&config(1, 3));
    let own = HashSet::from([
        SERVER,
        Ipv4Addr::new(10, 77, 0, 3),
        Ipv4Addr::new(10, 9, 0, 1),
    ]);
    assert_eq!(
        e.set_own_addresses(own),
        vec![SERVER, Ipv4Addr::new(10, 77, 0, 3)],
        "the own addresses inside a range, for the start-up warning"
    );
    assert_eq!(dora(&mut e, 1, 0), Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!(run(&mut e, &req(Kind::Discover, 2), 0), Decision::Exhausted);
    // Asking for it by name, or being reserved it, does not get it either.
    let mut ask = req(Kind::Discover, 2);
    ask.requested_ip = Some(SERVER);
    assert_eq!(run(&mut e, &ask, 0), Decision::Exhausted);
    assert!(matches!(select(&mut e, 2, SERVER, 0), Decision::Nak { .. }));
    e.set_reservations(HashMap::from([(mac(2), SERVER)]));
    assert_eq!(run(&mut e, &req(Kind::Discover, 2), 0), Decision::Exhausted);
}

#[test]
fn a_stored_lease_on_an_own_address_is_not_renewed() {
    // Leases written before the address became the server's (or before this rule) move on.
    let mut e = Engine::new(&config(1, 3));
    let ip = dora(&mut e, 1, 0);
    assert_eq!(ip, SERVER);
    let mut e2 = Engine::new(&config(1, 3));
    e2.load(vec![e.lease(ip).unwrap().clone()], 0);
    e2.set_own_addresses(HashSet::from([SERVER]));
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = ip;
    assert!(matches!(run(&mut e2, &renew, 10), Decision::Nak { .. }));
    assert_eq!(offer(&mut e2, 1, 11), Some(Ipv4Addr::new(10, 77, 0, 2)));
}

#[test]
fn a_forward_clock_step_does_not_free_running_leases() {
    let mut e = Engine::new(&config(100, 100));
    // The monotonic clock counts from the daemon's start; the wall clock from 1970.
    assert_eq!(e.observe_clock(1_000, 0), None);
    let a = dora(&mut e, 1, 1_000);
    assert_eq!(e.observe_clock(1_010, 10), None, "no step: time passing");
    // NTP syncs: the wall clock jumps two hours ahead while 10 s pass.
    let (step, moved) = e.observe_clock(1_020 + 7_200, 20).expect("a step");
    assert_eq!(step, 7_200);
    let now = 1_020 + 7_200;
    assert_eq!(
        run(&mut e, &req(Kind::Discover, 2), now),
        Decision::Exhausted
    );
    let mut steal = req(Kind::Request, 2);
    steal.requested_ip = Some(a);
    assert!(matches!(run(&mut e, &steal, now), Decision::Nak { .. }));
    // The moved lease is stored again, so that a restart does not undo the move.
    assert_eq!(moved.len(), 1);
    assert_eq!((moved[0].ip, moved[0].expires), (a, 1_600 + 7_200));
    // The lease ends when it would have without the step, and not before.
    assert_eq!(offer(&mut e, 2, 1_599 + 7_200), None);
    assert_eq!(offer(&mut e, 2, 1_600 + 7_200), Some(a));
}

#[test]
fn a_backward_step_keeps_the_time_left_and_drift_is_no_step() {
    let mut e = Engine::new(&config(100, 100));
    assert_eq!(e.observe_clock(10_000, 0), None);
    let a = dora(&mut e, 1, 10_000);
    // A few seconds of slew and rounding are not a step.
    assert_eq!(e.observe_clock(10_105, 100), None);
    // A running lease keeps the time it had left.
    let (step, moved) = e.observe_clock(10_205 - 3_600, 200).expect("a step");
    assert_eq!((step, moved[0].expires), (-3_600, 10_600 - 3_600));
    assert_eq!(offer(&mut e, 2, 10_599 - 3_600), None);
    assert_eq!(offer(&mut e, 2, 10_600 - 3_600), Some(a));
}

/// The clock went back while the daemon was stopped (a box without a real-time clock boots at
/// an old date), then NTP steps it forward while serving: every lease still ends at most one
/// lease time after the real time, not years later.
#[test]
fn stored_leases_run_at_most_one_lease_time_from_load() {
    let real = 1_800_000_000;
    let mut e = Engine::new(&config(100, 101));
    let a = dora(&mut e, 1, real);
    let b = dora(&mut e, 2, real);
    let mut dec = req(Kind::Decline, 2);
    dec.requested_ip = Some(b);
    assert!(matches!(run(&mut e, &dec, real), Decision::Write(_)));
    let stored = vec![e.lease(a).unwrap().clone(), e.lease(b).unwrap().clone()];

    let boot = 1_000;
    let mut e = Engine::new(&config(100, 101));
    let mut shortened = e.load(stored.clone(), boot);
    shortened.sort_by_key(|l| l.ip);
    let ends: Vec<_> = shortened
        .iter()
        .map(|l| (l.ip, l.state, l.starts, l.expires))
        .collect();
    assert_eq!(
        ends,
        vec![
            (a, LeaseState::Bound, boot, boot + 600),
            (b, LeaseState::Declined, boot, boot + 1000),
        ],
        "shortened to a lease time (and the quarantine) from now, to be stored again"
    );
    // Still held: nobody else gets either address.
    assert_eq!(offer(&mut e, 3, boot + 1), None);
    // NTP steps the clock to the real time: the lease ends one lease time after it.
    assert_eq!(e.observe_clock(boot + 2, 0), None);
    let (_, moved) = e.observe_clock(real + 12, 10).expect("a step");
    assert!(
        moved.iter().all(|l| l.expires <= real + 1_000 + 12),
        "{moved:?}"
    );
    assert_eq!(
        e.lease(a).unwrap().expires,
        real + 600,
        "598 s left at 1002, 10 s passed"
    );
    assert_eq!(offer(&mut e, 3, real + 599), None);
    assert_eq!(offer(&mut e, 3, real + 600), Some(a));

    // The subnet's lease time lowered since: a lease keeps what its ACK gave (600 s), or its
    // address could go to a second client before the holder renews.
    let mut lowered = config(100, 101);
    lowered.subnets[0].lease_seconds = 60;
    let mut e = Engine::new(&lowered);
    assert!(e.load(stored.clone(), real + 10).is_empty());
    assert_eq!(offer(&mut e, 3, real + 599), None);
    // A record of a version that kept no granted time: the subnet's lease time bounds it.
    let mut e = Engine::new(&lowered);
    let mut unknown = stored[0].clone();
    unknown.granted = 0;
    let shortened = e.load(vec![unknown], boot);
    assert_eq!(shortened[0].expires, boot + 60);

    // A clock that went forward while stopped cannot be told from real downtime: the lease is
    // over, and nothing is rewritten, but it is still its client's address on reboot.
    let mut e = Engine::new(&config(100, 101));
    let later = real + 86_400;
    assert!(e.load(stored, later).is_empty());
    let mut reboot = req(Kind::Request, 1);
    reboot.requested_ip = Some(a);
    let Decision::Ack { lease, .. } = run(&mut e, &reboot, later) else {
        panic!("the client's own address back")
    };
    assert_eq!((lease.ip, lease.expires), (a, later + 600));
}

#[test]
fn duplicate_messages_are_idempotent() {
    let mut e = Engine::new(&config(100, 110));
    let a = offer(&mut e, 1, 0).unwrap();
    assert_eq!(offer(&mut e, 1, 0), Some(a));
    assert_eq!(offer(&mut e, 1, 1), Some(a));
    let first = select(&mut e, 1, a, 2);
    let second = select(&mut e, 1, a, 2);
    assert_eq!(first, second);
    assert_eq!(offer(&mut e, 2, 3), Some(Ipv4Addr::new(10, 77, 0, 101)));
}

#[test]
fn client_identifier_beats_mac() {
    let mut e = Engine::new(&config(100, 110));
    let mut d = req(Kind::Discover, 1);
    d.client_id = vec![1, 2, 3];
    let Decision::Offer { ip, .. } = run(&mut e, &d, 0) else {
        panic!()
    };
    // Same MAC, different identifier: a different client.
    let mut other = req(Kind::Discover, 1);
    other.client_id = vec![9];
    let Decision::Offer { ip: ip2, .. } = run(&mut e, &other, 0) else {
        panic!()
    };
    assert_ne!(ip, ip2);
}

#[test]
fn a_lease_without_identifier_belongs_to_the_mac_either_way_round() {
    let mut e = Engine::new(&config(100, 110));
    let plain = dora(&mut e, 1, 0);
    let mut reboot = req(Kind::Request, 1);
    reboot.client_id = vec![1, 2, 3];
    reboot.requested_ip = Some(plain);
    assert!(matches!(run(&mut e, &reboot, 1), Decision::Ack { lease, .. } if lease.ip == plain));
    // Now stored with the identifier: the MAC alone (a boot loader) still renews it.
    let mut renew = req(Kind::Request, 1);
    renew.ciaddr = plain;
    assert!(matches!(run(&mut e, &renew, 2), Decision::Ack { lease, .. } if lease.ip == plain));
    // Another MAC never does.
    let mut stranger = req(Kind::Request, 2);
    stranger.requested_ip = Some(plain);
    assert!(matches!(run(&mut e, &stranger, 3), Decision::Nak { .. }));
}

/// A client of `mac(n)` sending the identifier `id` (empty: none).
fn with_id(kind: Kind, n: u8, id: &[u8]) -> Request {
    let mut r = req(kind, n);
    r.client_id = id.to_vec();
    r
}

/// The address `with_id(.., n, id)` gets from a DISCOVER and a REQUEST selecting the offer.
fn dora_with_id(e: &mut Engine, n: u8, id: &[u8], now: i64) -> Ipv4Addr {
    let Decision::Offer { ip, .. } = run(e, &with_id(Kind::Discover, n, id), now) else {
        panic!("an offer")
    };
    let mut select = with_id(Kind::Request, n, id);
    select.server_id = Some(SERVER);
    select.requested_ip = Some(ip);
    match run(e, &select, now) {
        Decision::Ack { lease, .. } => lease.ip,
        other => panic!("expected an ACK, got {other:?}"),
    }
}

/// Who holds a running lease, as (MAC, client identifier) per address.
fn holders(e: &Engine, now: i64) -> Vec<(Ipv4Addr, Mac, String)> {
    let mut all: Vec<_> = e
        .leases
        .values()
        .filter(|l| l.expires > now && l.state == LeaseState::Bound)
        .map(|l| (l.ip, l.mac, l.client_id.clone()))
        .collect();
    all.sort();
    all
}

/// The client identifier changes across a phone's firmware: a lease made without one is the
/// client's when it later sends one (it is re-keyed to it), and a lease made with one is the
/// client's when it later drops it (an older firmware, a boot loader), even from a DISCOVER
/// that does not name the address (no option 50). A lease of the same MAC made with another
/// identifier is another client's (a second stack behind the NIC), and a reservation by MAC
/// still wins. Kea's `belongsToClient` decides the same way.
#[test]
fn a_client_whose_identifier_comes_or_goes_keeps_one_address() {
    let mut e = Engine::new(&config(100, 110));
    let plain = dora_with_id(&mut e, 1, &[], 0);
    // The upgraded firmware sends an identifier: same address, now keyed by the identifier.
    assert_eq!(dora_with_id(&mut e, 1, &[1, 2, 3], 10), plain);
    assert_eq!(holders(&e, 10), [(plain, mac(1), "010203".to_string())]);
    // Downgraded again (or its boot loader), no identifier and no option 50: still its address.
    assert_eq!(dora_with_id(&mut e, 1, &[], 20), plain);
    assert_eq!(holders(&e, 20), [(plain, mac(1), String::new())]);

    // A second stack behind the same NIC, with its own identifier, is another client.
    let mut e = Engine::new(&config(100, 110));
    let vm = dora_with_id(&mut e, 1, &[9], 0);
    let stack = dora_with_id(&mut e, 1, &[7], 1);
    assert_ne!(vm, stack);
    // Without an identifier the MAC is all there is to go by: the lease that runs longest.
    assert_eq!(
        run(&mut e, &with_id(Kind::Discover, 1, &[]), 2),
        Decision::Offer {
            ip: stack,
            subnet: 0
        }
    );
    // Asking for the other stack's address is NAKed, and that stack keeps it.
    let mut reboot = with_id(Kind::Request, 1, &[7]);
    reboot.requested_ip = Some(vm);
    assert!(matches!(run(&mut e, &reboot, 3), Decision::Nak { .. }));
    assert_eq!(holders(&e, 3), [(vm, mac(1), "09".to_string())]);

    // A reservation by MAC wins over the address the client had without an identifier.
    let mut e = Engine::new(&config(100, 110));
    let plain = dora_with_id(&mut e, 1, &[], 0);
    let fixed = Ipv4Addr::new(10, 77, 0, 30);
    e.set_reservations(HashMap::from([(mac(1), fixed)]));
    assert_eq!(dora_with_id(&mut e, 1, &[1, 2, 3], 10), fixed);
    assert_ne!(plain, fixed);
}

/// A NAK ends the lease of the client it is sent to, also when that lease was made before
/// the client sent an identifier.
#[test]
fn a_nak_ends_the_lease_made_before_the_client_sent_an_identifier() {
    let mut e = Engine::new(&config(100, 100));
    let a = dora_with_id(&mut e, 1, &[], 0);
    let mut moved = with_id(Kind::Request, 1, &[1, 2, 3]);
    moved.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 50));
    let Decision::Nak { freed, .. } = run(&mut e, &moved, 10) else {
        panic!("a NAK for the wrong network")
    };
    assert_eq!(freed.map(|l| (l.ip, l.expires)), Some((a, 10)));
    assert_eq!(offer(&mut e, 2, 11), Some(a), "free for another client");
}

#[test]
fn inform_and_inform_mode() {
    let mut cfg = config(100, 110);
    cfg.mode = DhcpMode::Inform;
    let mut e = Engine::new(&cfg);
    assert!(matches!(
        run(&mut e, &req(Kind::Discover, 1), 0),
        Decision::Ignore(_)
    ));
    let mut inf = req(Kind::Inform, 1);
    inf.ciaddr = Ipv4Addr::new(10, 77, 0, 7);
    assert_eq!(
        run(&mut e, &inf, 0),
        Decision::InformAck { subnet: Some(0) }
    );
}

#[test]
fn relayed_requests_use_the_relays_subnet() {
    let mut cfg = config(100, 110);
    cfg.subnets.push(SubnetConfig {
        network: "10.78.0.0/24".parse().unwrap(),
        ranges: vec![[Ipv4Addr::new(10, 78, 0, 100), Ipv4Addr::new(10, 78, 0, 100)]],
        ..cfg.subnets[0].clone()
    });
    let mut e = Engine::new(&cfg);
    let mut d = req(Kind::Discover, 1);
    d.giaddr = Ipv4Addr::new(10, 78, 0, 1);
    assert_eq!(
        run(&mut e, &d, 0),
        Decision::Offer {
            ip: Ipv4Addr::new(10, 78, 0, 100),
            subnet: 1
        }
    );
    d.giaddr = Ipv4Addr::new(172, 16, 0, 1);
    assert!(matches!(run(&mut e, &d, 0), Decision::Ignore(_)));
}

#[test]
fn a_restart_keeps_bindings() {
    let mut e = Engine::new(&config(100, 102));
    let mut written = Vec::new();
    for n in 1..=3 {
        let ip = offer(&mut e, n, 0).unwrap();
        if let Decision::Ack { lease, .. } = select(&mut e, n, ip, 0) {
            written.push(lease);
        }
    }
    let mut e2 = Engine::new(&config(100, 102));
    e2.load(written.clone(), 1);
    assert_eq!(
        run(&mut e2, &req(Kind::Discover, 9), 1),
        Decision::Exhausted
    );
    for l in &written {
        let n = l.mac.octets()[5];
        assert_eq!(offer(&mut e2, n, 1), Some(l.ip));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Discover(u8),
    Select(u8),
    Reboot(u8, u8),
    Renew(u8),
    Release(u8),
    Decline(u8),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8).prop_map(Op::Discover),
        (0u8..8).prop_map(Op::Select),
        (0u8..8, 100u8..106).prop_map(|(c, a)| Op::Reboot(c, a)),
        (0u8..8).prop_map(Op::Renew),
        (0u8..8).prop_map(Op::Release),
        (0u8..8).prop_map(Op::Decline),
        (0u16..700).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever clients do, an address is never offered or acknowledged to one client while
    /// another holds an unexpired acknowledgement for it, and every ACK is within the pool.
    #[test]
    fn an_address_is_never_held_by_two_clients(ops in proptest::collection::vec(op(), 1..120)) {
        let mut e = Engine::new(&config(100, 104));
        let mut now = 0i64;
        // Per address: the client holding an ACK and until when.
        let mut held: HashMap<Ipv4Addr, (u8, i64)> = HashMap::new();
        let mut last_offer: HashMap<u8, Ipv4Addr> = HashMap::new();
        let mut bound: HashMap<u8, Ipv4Addr> = HashMap::new();
        for op in ops {
            let (client, decision) = match op {
                Op::Wait(s) => { now += i64::from(s); continue; }
                Op::Discover(c) => (c, run(&mut e, &req(Kind::Discover, c), now)),
                Op::Select(c) => match last_offer.get(&c) {
                    Some(ip) => (c, select(&mut e, c, *ip, now)),
                    None => continue,
                },
                Op::Reboot(c, a) => {
                    let mut r = req(Kind::Request, c);
                    r.requested_ip = Some(Ipv4Addr::new(10, 77, 0, a));
                    (c, run(&mut e, &r, now))
                }
                Op::Renew(c) => match bound.get(&c) {
                    Some(ip) => {
                        let mut r = req(Kind::Request, c);
                        r.ciaddr = *ip;
                        (c, run(&mut e, &r, now))
                    }
                    None => continue,
                },
                Op::Release(c) => match bound.get(&c) {
                    Some(ip) => {
                        let mut r = req(Kind::Release, c);
                        r.ciaddr = *ip;
                        (c, run(&mut e, &r, now))
                    }
                    None => continue,
                },
                Op::Decline(c) => match last_offer.get(&c) {
                    Some(ip) => {
                        let mut r = req(Kind::Decline, c);
                        r.requested_ip = Some(*ip);
                        (c, run(&mut e, &r, now))
                    }
                    None => continue,
                },
            };
            let conflict = |ip: &Ipv4Addr, held: &HashMap<Ipv4Addr, (u8, i64)>| {
                held.get(ip).is_some_and(|(c, until)| *c != client && *until > now)
            };
            match decision {
                Decision::Offer { ip, .. } => {
                    prop_assert!(!conflict(&ip, &held), "{ip} offered to {client} while held");
                    last_offer.insert(client, ip);
                }
                Decision::Ack { lease, .. } => {
                    prop_assert!(!conflict(&lease.ip, &held), "{} acked to {client} while held", lease.ip);
                    prop_assert!((100..=104).contains(&lease.ip.octets()[3]));
                    held.insert(lease.ip, (client, lease.expires));
                    bound.insert(client, lease.ip);
                }
                Decision::Nak { freed: Some(lease), .. } => {
                    prop_assert_eq!(held.get(&lease.ip).map(|h| h.0), Some(client));
                    held.remove(&lease.ip);
                    bound.remove(&client);
                }
                Decision::Write(lease) => {
                    held.remove(&lease.ip);
                    bound.remove(&client);
                    if lease.state == LeaseState::Declined {
                        // Quarantined: nobody may have it until it ends.
                        held.insert(lease.ip, (u8::MAX, lease.expires));
                    }
                }
                _ => {}
            }
            prop_assert_eq!(e.by_expiry.len(), e.leases.len());
        }
    }
}
