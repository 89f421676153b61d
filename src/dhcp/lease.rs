//! The lease engine: pure decisions over an in-memory view of every address's lease. It never
//! touches a socket or the store: it says what to answer and which lease must be durable before
//! the answer leaves, and the server loop does both.
//!
//! Allocation order for a client: its reservation (a device's `dhcp:address` parameter), the
//! address it had, the address it asks for, a never-used address, then the address whose lease
//! ended longest ago. Offers are held in memory only (an offer promises nothing that must survive
//! a crash); bound, released and declined leases are written. One record per address is what
//! keeps an address from being handed to two clients.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::config::{DhcpConfig, DhcpMode};
use super::packet::{Kind, Request};
use crate::model::{Lease, LeaseState, Mac};

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Offer {
        ip: Ipv4Addr,
        subnet: usize,
    },
    /// Persist `lease`, then send the ACK.
    Ack {
        subnet: usize,
        lease: Lease,
    },
    /// Options only: no address changes hands.
    InformAck {
        subnet: Option<usize>,
    },
    /// Send a NAK. `freed`: the client's lease that the NAK ended, to persist (the NAK leaves
    /// at once: should the write be lost, the lease only runs to its old end).
    Nak {
        why: &'static str,
        freed: Option<Lease>,
    },
    /// A release or decline: persist, answer nothing.
    Write(Lease),
    /// No free address in the client's subnet.
    Exhausted,
    Ignore(&'static str),
}

fn nak(why: &'static str) -> Decision {
    Decision::Nak { why, freed: None }
}

/// How far the wall clock may move against the monotonic clock between two looks before it
/// counts as stepped. Slewing (NTP's normal correction) moves it by milliseconds a minute.
pub const CLOCK_STEP_SECS: i64 = 10;

/// Who a lease belongs to: the client identifier when the client sent one, else its MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Id(String),
    Mac(Mac),
}

fn key_of(lease: &Lease) -> ClientKey {
    if lease.client_id.is_empty() {
        ClientKey::Mac(lease.mac)
    } else {
        ClientKey::Id(lease.client_id.clone())
    }
}

/// Whether `lease` belongs to the client `key` with hardware address `mac`. When both the lease
/// and the client have a client identifier, the identifiers decide (several clients behind one
/// MAC, RFC 4361); otherwise the MAC does, so a phone whose boot loader sends no identifier and
/// whose application sends one (or whose new firmware starts sending one) is one client with
/// one address, not two. Kea (`belongsToClient`) and dnsmasq match leases the same way.
fn owns(lease: &Lease, key: &ClientKey, mac: Mac) -> bool {
    match key {
        ClientKey::Id(id) if !lease.client_id.is_empty() => lease.client_id == *id,
        _ => lease.mac == mac,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The dynamic addresses of one subnet, walked by a cursor for never-used addresses.
#[derive(Debug, Clone)]
struct Pool {
    net: Ipv4Net,
    ranges: Vec<(u32, u32)>,
    size: u64,
    lease_secs: i64,
    cursor: u64,
    /// Set once a full walk found no never-used address; cleared when reservations change.
    fresh_exhausted: bool,
}

impl Pool {
    fn nth(&self, mut k: u64) -> u32 {
        for (a, b) in &self.ranges {
            let len = u64::from(b - a) + 1;
            if k < len {
                return a + k as u32;
            }
            k -= len;
        }
        self.ranges[0].0
    }

    fn in_range(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))
    }
}

pub struct Engine {
    pools: Vec<Pool>,
    leases: HashMap<Ipv4Addr, Lease>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    /// The addresses of leases made with a client identifier, by MAC: where a client that has
    /// stopped sending its identifier finds its address (see [`Engine::held`]).
    with_id_by_mac: HashMap<Mac, HashSet<Ipv4Addr>>,
    /// Every lease by its end, oldest first: where reclaiming looks.
    by_expiry: BTreeSet<(i64, u32)>,
    reserved_by_mac: HashMap<Mac, Ipv4Addr>,
    reserved_ips: HashMap<Ipv4Addr, Mac>,
    /// This server's own addresses: never handed out, whatever a range or a stored lease says.
    own: HashSet<Ipv4Addr>,
    offer_hold: i64,
    decline_secs: i64,
    authoritative: bool,
    inform_only: bool,
    /// Wall-clock seconds minus monotonic seconds at the last look; `None` before the first.
    clock_offset: Option<i64>,
}

impl Engine {
    pub fn new(config: &DhcpConfig) -> Engine {
        let pools = config
            .subnets
            .iter()
            .map(|s| {
                let ranges: Vec<(u32, u32)> = s
                    .ranges
                    .iter()
                    .map(|[a, b]| (u32::from(*a), u32::from(*b)))
                    .collect();
                Pool {
                    net: s.network,
                    size: ranges.iter().map(|(a, b)| u64::from(b - a) + 1).sum(),
                    ranges,
                    lease_secs: i64::from(s.lease_seconds),
                    cursor: 0,
                    fresh_exhausted: false,
                }
            })
            .collect();
        Engine {
            pools,
            leases: HashMap::new(),
            by_client: HashMap::new(),
            with_id_by_mac: HashMap::new(),
            by_expiry: BTreeSet::new(),
            reserved_by_mac: HashMap::new(),
            reserved_ips: HashMap::new(),
            own: HashSet::new(),
            offer_hold: i64::from(config.offer_hold_seconds),
            decline_secs: i64::from(config.decline_seconds),
            authoritative: config.authoritative,
            inform_only: config.mode == DhcpMode::Inform,
            clock_offset: None,
        }
    }

    /// Compares the wall clock (`wall`, Unix seconds) with a monotonic one (`mono`, seconds from
    /// any fixed start) and, when the wall clock has stepped by more than [`CLOCK_STEP_SECS`]
    /// since the last look, moves every running lease by the step. Lease ends are wall-clock
    /// instants because they are stored and outlive the process; a box without a real-time
    /// clock starts at an old date and jumps when NTP syncs, and without this every running
    /// lease would look long over and its address go to a second client. Returns the step and
    /// the written leases that moved, which must be stored again.
    pub fn observe_clock(&mut self, wall: i64, mono: i64) -> Option<(i64, Vec<Lease>)> {
        let offset = wall.saturating_sub(mono);
        let last = self.clock_offset.replace(offset)?;
        let step = offset.saturating_sub(last);
        if step.abs() <= CLOCK_STEP_SECS {
            return None;
        }
        Some((step, self.clock_stepped(wall.saturating_sub(step), step)))
    }

    /// The wall clock read `before` and then jumped by `step` seconds: every lease still running
    /// at `before` keeps the time it had left. Leases already over stay over.
    fn clock_stepped(&mut self, before: i64, step: i64) -> Vec<Lease> {
        let mut moved = Vec::new();
        for lease in self.leases.values_mut() {
            if lease.expires <= before {
                continue;
            }
            self.by_expiry.remove(&(lease.expires, u32::from(lease.ip)));
            lease.starts = lease.starts.saturating_add(step);
            lease.expires = lease.expires.saturating_add(step);
            self.by_expiry.insert((lease.expires, u32::from(lease.ip)));
            // Offers live in memory only.
            if lease.state != LeaseState::Offered {
                moved.push(lease.clone());
            }
        }
        moved
    }

    /// Takes in the stored leases at start (`now`: the wall clock then): the latest lease of a
    /// client is its address. Returns the leases it had to shorten, which must be stored again.
    ///
    /// Nothing watched the clock while the daemon was stopped. A clock that went back meanwhile
    /// (a box without a real-time clock boots at an old date, before NTP) would leave stored
    /// ends far ahead: those leases would run for as long as the clock went back, and when NTP
    /// then steps the clock forward, [`Engine::observe_clock`] would move them on by the whole
    /// step again. So no stored lease runs past `now` plus the longest it may run: the lease
    /// time its last ACK gave (not the subnet's current one, which may have been lowered since:
    /// shortening a lease below what its client was told would let its address go to a second
    /// client), the decline quarantine, and nothing for a released one.
    ///
    /// A clock that went forward meanwhile cannot be told from the downtime it shows, so those
    /// leases end as it says; each ended lease still is its client's address, handed back when
    /// the client renews or reboots, and reclaimed for others only after every never-used
    /// address.
    pub fn load(&mut self, leases: Vec<Lease>, now: i64) -> Vec<Lease> {
        let mut shortened = Vec::new();
        for mut lease in leases {
            if let Some(most) = self.longest(&lease) {
                let limit = now.saturating_add(most);
                if lease.expires > limit || lease.starts > now {
                    lease.expires = lease.expires.min(limit);
                    lease.starts = lease.starts.min(now);
                    shortened.push(lease.clone());
                }
            }
            let ip = lease.ip;
            self.by_expiry.insert((lease.expires, u32::from(ip)));
            if lease.state != LeaseState::Declined {
                let key = key_of(&lease);
                let newer = self
                    .by_client
                    .get(&key)
                    .and_then(|old| self.leases.get(old))
                    .is_none_or(|old| old.expires <= lease.expires);
                if newer {
                    self.by_client.insert(key, ip);
                }
            }
            self.index_mac(&lease);
            self.leases.insert(ip, lease);
        }
        shortened
    }

    /// The longest a stored lease may still run from now, in seconds. For a bound lease of a
    /// version that did not record what it was given: its subnet's lease time (the longest of
    /// all for an address in none), `None` when no subnet is configured.
    fn longest(&self, lease: &Lease) -> Option<i64> {
        match lease.state {
            LeaseState::Released | LeaseState::Expired => Some(0),
            LeaseState::Declined => Some(self.decline_secs),
            LeaseState::Offered => Some(self.offer_hold),
            LeaseState::Bound if lease.granted > 0 => Some(i64::from(lease.granted)),
            LeaseState::Bound => self
                .pools
                .iter()
                .find(|p| p.net.contains(&lease.ip))
                .or_else(|| self.pools.iter().max_by_key(|p| p.lease_secs))
                .map(|p| p.lease_secs),
        }
    }

    /// Replaces the reservations (MAC → fixed address) with the inventory's current ones.
    pub fn set_reservations(&mut self, reservations: HashMap<Mac, Ipv4Addr>) {
        if reservations == self.reserved_by_mac {
            return;
        }
        self.reserved_ips = reservations.iter().map(|(m, ip)| (*ip, *m)).collect();
        self.reserved_by_mac = reservations;
        for pool in &mut self.pools {
            pool.fresh_exhausted = false;
        }
    }

    /// Replaces the server's own addresses (its interfaces' and its server identifiers): a
    /// client given one of them would answer ARP for the server and cut the subnet off. Returns
    /// those that lie inside a dynamic range, which the configuration should not have.
    pub fn set_own_addresses(&mut self, own: HashSet<Ipv4Addr>) -> Vec<Ipv4Addr> {
        if own != self.own {
            self.own = own;
            for pool in &mut self.pools {
                pool.fresh_exhausted = false;
            }
        }
        let mut inside: Vec<Ipv4Addr> = self
            .own
            .iter()
            .copied()
            .filter(|ip| self.pools.iter().any(|p| p.in_range(*ip)))
            .collect();
        inside.sort_unstable();
        inside
    }

    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// Whether a new client of `subnet` could be given an address at `now`: an address of its
    /// ranges that is not this server's, not reserved, and not held by a running lease, offer
    /// or quarantine.
    pub fn has_free(&self, subnet: usize, now: i64) -> bool {
        let Some(pool) = self.pools.get(subnet) else {
            return false;
        };
        (0..pool.size).any(|k| {
            let ip = Ipv4Addr::from(pool.nth(k));
            !self.own.contains(&ip)
                && !self.reserved_ips.contains_key(&ip)
                && self.leases.get(&ip).is_none_or(|l| l.expires <= now)
        })
    }

    /// The subnet directly attached where a request arrived: the one holding this host's address
    /// on the arrival interface.
    pub fn attached(&self, local: Ipv4Addr) -> Option<usize> {
        self.pools.iter().position(|p| p.net.contains(&local))
    }

    /// The subnet a request belongs to: the relay's, else the one holding the client's own
    /// address, else the subnet directly attached to the interface it arrived on.
    pub fn subnet_for(&self, req: &Request, direct: Option<usize>) -> Option<usize> {
        let containing = |ip: Ipv4Addr| self.pools.iter().position(|p| p.net.contains(&ip));
        if !req.giaddr.is_unspecified() {
            containing(req.giaddr)
        } else if !req.ciaddr.is_unspecified() {
            containing(req.ciaddr)
        } else {
            direct
        }
    }

    pub fn handle(
        &mut self,
        req: &Request,
        subnet: Option<usize>,
        server_id: Ipv4Addr,
        now: i64,
    ) -> Decision {
        if req.kind == Kind::Inform {
            return Decision::InformAck { subnet };
        }
        if self.inform_only {
            return Decision::Ignore("inform mode answers only DHCPINFORM");
        }
        let Some(subnet) = subnet else {
            return Decision::Ignore("no subnet for the client's network");
        };
        let key = if req.client_id.is_empty() {
            ClientKey::Mac(req.mac)
        } else {
            ClientKey::Id(hex(&req.client_id))
        };
        match req.kind {
            Kind::Discover => self.discover(req, &key, subnet, now),
            Kind::Request => self.request(req, &key, subnet, server_id, now),
            Kind::Release => self.release(req, &key, server_id, now),
            Kind::Decline => self.decline(req, &key, server_id, now),
            Kind::Inform => Decision::InformAck {
                subnet: Some(subnet),
            },
        }
    }

    /// Whether `ip` may go to this client now.
    fn available(&self, ip: Ipv4Addr, key: &ClientKey, mac: Mac, now: i64) -> bool {
        if self.own.contains(&ip) {
            return false;
        }
        if self.reserved_ips.get(&ip).is_some_and(|m| *m != mac) {
            return false;
        }
        match self.leases.get(&ip) {
            None => true,
            Some(l) if l.state == LeaseState::Declined => l.expires <= now,
            Some(l) => l.expires <= now || owns(l, key, mac),
        }
    }

    fn reservation_in(&self, mac: Mac, subnet: usize) -> Option<Ipv4Addr> {
        self.reserved_by_mac
            .get(&mac)
            .copied()
            .filter(|ip| self.pools[subnet].net.contains(ip))
    }

    fn choose(
        &mut self,
        req: &Request,
        key: &ClientKey,
        subnet: usize,
        now: i64,
    ) -> Option<Ipv4Addr> {
        let mac = req.mac;
        if let Some(ip) = self.reservation_in(mac, subnet)
            && self.available(ip, key, mac, now)
        {
            return Some(ip);
        }
        let had = self.held(key, mac);
        let pool = &self.pools[subnet];
        let candidates = [had, req.requested_ip];
        if let Some(ip) = candidates
            .into_iter()
            .flatten()
            .find(|ip| pool.in_range(*ip) && self.available(*ip, key, mac, now))
        {
            return Some(ip);
        }
        if let Some(ip) = self.fresh(subnet) {
            return Some(ip);
        }
        self.reclaimable(subnet, key, mac, now)
    }

    /// The next never-used, unreserved address of the pool that is not the server's own.
    fn fresh(&mut self, subnet: usize) -> Option<Ipv4Addr> {
        let pool = &self.pools[subnet];
        if pool.fresh_exhausted {
            return None;
        }
        for step in 0..pool.size {
            let k = (pool.cursor + step) % pool.size;
            let ip = Ipv4Addr::from(pool.nth(k));
            if !self.leases.contains_key(&ip)
                && !self.reserved_ips.contains_key(&ip)
                && !self.own.contains(&ip)
            {
                self.pools[subnet].cursor = (k + 1) % pool.size;
                return Some(ip);
            }
        }
        self.pools[subnet].fresh_exhausted = true;
        None
    }

    /// The pool address whose lease ended longest ago.
    fn reclaimable(&self, subnet: usize, key: &ClientKey, mac: Mac, now: i64) -> Option<Ipv4Addr> {
        let pool = &self.pools[subnet];
        self.by_expiry
            .iter()
            .take_while(|(expires, _)| *expires <= now)
            .map(|(_, ip)| Ipv4Addr::from(*ip))
            .find(|ip| pool.in_range(*ip) && self.available(*ip, key, mac, now))
    }

    /// Replaces the record of `lease.ip`, keeping the indexes in step.
    fn put(&mut self, lease: Lease, now: i64) {
        let ip = lease.ip;
        let key = key_of(&lease);
        if let Some(old) = self.leases.get(&ip) {
            let (expires, old_mac, old_key) = (old.expires, old.mac, key_of(old));
            self.by_expiry.remove(&(expires, u32::from(ip)));
            self.unindex_mac(old_mac, ip);
            if old_key != key && self.by_client.get(&old_key) == Some(&ip) {
                self.by_client.remove(&old_key);
            }
        }
        if lease.state == LeaseState::Declined {
            if self.by_client.get(&key) == Some(&ip) {
                self.by_client.remove(&key);
            }
        } else if let Some(prev) = self.by_client.insert(key.clone(), ip)
            && prev != ip
        {
            // A client holds one address: an offer it left for another address is free again.
            if let Some(p) = self.leases.get_mut(&prev)
                && key_of(p) == key
                && p.state == LeaseState::Offered
                && p.expires > now
            {
                self.by_expiry.remove(&(p.expires, u32::from(prev)));
                p.expires = now;
                self.by_expiry.insert((now, u32::from(prev)));
            }
        }
        self.by_expiry.insert((lease.expires, u32::from(ip)));
        self.index_mac(&lease);
        self.leases.insert(ip, lease);
    }

    fn index_mac(&mut self, lease: &Lease) {
        if !lease.client_id.is_empty() {
            self.with_id_by_mac
                .entry(lease.mac)
                .or_default()
                .insert(lease.ip);
        }
    }

    fn unindex_mac(&mut self, mac: Mac, ip: Ipv4Addr) {
        if let Some(ips) = self.with_id_by_mac.get_mut(&mac) {
            ips.remove(&ip);
            if ips.is_empty() {
                self.with_id_by_mac.remove(&mac);
            }
        }
    }

    /// The address the client last had (running or ended, never a declined one): the lease
    /// recorded under its own key, else the one [`owns`] gives it under the other key. A client
    /// now sending an identifier takes the lease its MAC got without one (the lease is re-keyed
    /// to the identifier when it is next written); a lease its MAC got with another identifier
    /// is another client's (a second stack or a VM behind the NIC) and is not looked at. A
    /// client that has stopped sending its identifier (older firmware, a boot loader) has only
    /// its MAC to go by and takes the lease of that MAC that runs longest, as Kea finds it by
    /// hardware address; without this it got a second address from a DISCOVER that did not
    /// name the first, and the phone held two.
    fn held(&self, key: &ClientKey, mac: Mac) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_client.get(key) {
            return Some(*ip);
        }
        match key {
            ClientKey::Id(_) => self.by_client.get(&ClientKey::Mac(mac)).copied(),
            ClientKey::Mac(_) => self
                .with_id_by_mac
                .get(&mac)?
                .iter()
                .filter_map(|ip| self.leases.get(ip))
                .filter(|l| l.state != LeaseState::Declined)
                .max_by_key(|l| (l.expires, l.ip))
                .map(|l| l.ip),
        }
    }

    fn record(
        &self,
        req: &Request,
        ip: Ipv4Addr,
        state: LeaseState,
        starts: i64,
        expires: i64,
    ) -> Lease {
        Lease {
            ip,
            mac: req.mac,
            client_id: hex(&req.client_id),
            hostname: req.hostname.clone(),
            vendor_class: req.vendor_class.clone(),
            state,
            starts,
            expires,
            granted: 0,
        }
    }

    fn discover(&mut self, req: &Request, key: &ClientKey, subnet: usize, now: i64) -> Decision {
        let Some(ip) = self.choose(req, key, subnet, now) else {
            return Decision::Exhausted;
        };
        let bound_here = self.leases.get(&ip).is_some_and(|l| {
            l.state == LeaseState::Bound && l.expires > now && owns(l, key, req.mac)
        });
        if !bound_here {
            let offer = self.record(req, ip, LeaseState::Offered, now, now + self.offer_hold);
            self.put(offer, now);
        }
        Decision::Offer { ip, subnet }
    }

    /// A REQUEST in any state. A NAK ends the client's lease: RFC 2131 (3.1 step 5, 3.2 step
    /// 3, 4.4.1) sends a NAKed client back to INIT, where it stops using every address it had
    /// and starts over with a DISCOVER. Kept until its old end, that address would be out of
    /// everyone's reach (a phone moved to another VLAN held its old address for a whole lease
    /// time). Its client still gets it back first should it ask again.
    fn request(
        &mut self,
        req: &Request,
        key: &ClientKey,
        subnet: usize,
        server_id: Ipv4Addr,
        now: i64,
    ) -> Decision {
        match self.answer_request(req, key, subnet, server_id, now) {
            Decision::Nak { why, .. } => Decision::Nak {
                why,
                freed: self.end_lease(key, req.mac, now),
            },
            decision => decision,
        }
    }

    fn answer_request(
        &mut self,
        req: &Request,
        key: &ClientKey,
        subnet: usize,
        server_id: Ipv4Addr,
        now: i64,
    ) -> Decision {
        if let Some(chosen) = req.server_id {
            if chosen != server_id {
                self.forget_offer(key, req.mac, now);
                return Decision::Ignore("the client chose another server");
            }
            let requested = req
                .requested_ip
                .or(Some(req.ciaddr).filter(|ip| !ip.is_unspecified()));
            return match requested {
                Some(ip) => self.bind(req, key, ip, subnet, now),
                None => nak("no requested address"),
            };
        }
        let (ip, init_reboot) = if req.ciaddr.is_unspecified() {
            match req.requested_ip {
                Some(ip) => (ip, true),
                None => return Decision::Ignore("a request without an address"),
            }
        } else {
            (req.ciaddr, false)
        };
        if !self.pools[subnet].net.contains(&ip) {
            return self.wrong("the address is not on the client's network");
        }
        match self.leases.get(&ip) {
            Some(l) if owns(l, key, req.mac) && l.state != LeaseState::Declined => {
                self.bind(req, key, ip, subnet, now)
            }
            Some(l)
                if l.expires > now || self.reserved_ips.get(&ip).is_some_and(|m| *m != req.mac) =>
            {
                self.wrong("the address belongs to another client")
            }
            // RFC 2131 4.3.2 has a server with no record of the client stay silent, so that
            // servers that do not talk to each other can share a network. An authoritative
            // server is the only one on its networks: it gave no such lease (its database was
            // lost or replaced, or another server ran before it), and a client left without
            // an answer goes on using the address (RFC 2131 3.2 allows it) while it is free
            // here for the next phone. Told so, the client starts over and gets a lease this
            // server knows.
            _ if init_reboot => self.wrong("no record of this client's address"),
            _ => self.wrong("renewal of an address with no record"),
        }
    }

    /// A NAK when this server is authoritative for its networks, else silence: another server
    /// on the network may know better.
    fn wrong(&self, why: &'static str) -> Decision {
        if self.authoritative {
            nak(why)
        } else {
            Decision::Ignore(why)
        }
    }

    /// Ends the client's running lease or offer now. Returns the lease when it was bound, for
    /// the store; an offer lives in memory only.
    fn end_lease(&mut self, key: &ClientKey, mac: Mac, now: i64) -> Option<Lease> {
        let ip = self.held(key, mac)?;
        let l = self.leases.get(&ip)?;
        if !owns(l, key, mac)
            || !matches!(l.state, LeaseState::Bound | LeaseState::Offered)
            || l.expires <= now
        {
            return None;
        }
        let mut ended = l.clone();
        ended.expires = now;
        self.put(ended.clone(), now);
        (ended.state == LeaseState::Bound).then_some(ended)
    }

    fn forget_offer(&mut self, key: &ClientKey, mac: Mac, now: i64) {
        if let Some(ip) = self.held(key, mac)
            && let Some(l) = self.leases.get(&ip)
            && owns(l, key, mac)
            && l.state == LeaseState::Offered
            && l.expires > now
        {
            let mut freed = l.clone();
            freed.expires = now;
            self.put(freed, now);
        }
    }

    fn bind(
        &mut self,
        req: &Request,
        key: &ClientKey,
        ip: Ipv4Addr,
        subnet: usize,
        now: i64,
    ) -> Decision {
        let reserved = self.reservation_in(req.mac, subnet);
        if !(self.pools[subnet].in_range(ip) || reserved == Some(ip)) {
            // Silence (`authoritative = false`) is for addresses this server knows nothing of.
            // The client chose this server, or holds this address from it (a reservation since
            // moved to another device or removed): this server knows the address is no longer
            // the client's, and a client left unanswered keeps it to the end of its lease.
            let known = req.server_id.is_some()
                || self.leases.get(&ip).is_some_and(|l| owns(l, key, req.mac));
            let why = "the address is not in a pool of the client's network";
            return if known { nak(why) } else { self.wrong(why) };
        }
        if let Some(r) = reserved
            && r != ip
            && self.available(r, key, req.mac, now)
        {
            return nak("the client has a reserved address");
        }
        if !self.available(ip, key, req.mac, now) {
            return nak("the address is in use");
        }
        let starts = match self.leases.get(&ip) {
            Some(l) if owns(l, key, req.mac) && l.state == LeaseState::Bound && l.expires > now => {
                l.starts
            }
            _ => now,
        };
        let secs = self.pools[subnet].lease_secs;
        let mut lease = self.record(req, ip, LeaseState::Bound, starts, now + secs);
        lease.granted = u32::try_from(secs).unwrap_or(u32::MAX);
        self.put(lease.clone(), now);
        Decision::Ack { subnet, lease }
    }

    fn release(
        &mut self,
        req: &Request,
        key: &ClientKey,
        server_id: Ipv4Addr,
        now: i64,
    ) -> Decision {
        if req.server_id.is_some_and(|s| s != server_id) {
            return Decision::Ignore("a release for another server");
        }
        match self.leases.get(&req.ciaddr) {
            Some(l) if owns(l, key, req.mac) && l.state == LeaseState::Bound => {
                let mut released = l.clone();
                released.state = LeaseState::Released;
                released.expires = now;
                self.put(released.clone(), now);
                Decision::Write(released)
            }
            _ => Decision::Ignore("a release of an address the client does not hold"),
        }
    }

    /// A DECLINE naming another server's identifier (RFC 2131 4.3.3 has a server act only on
    /// its own) is about that server's offer: quarantining the address here would take a
    /// working address out of this pool, and a client could empty the pool with such messages.
    /// One without a server identifier (which RFC 2131 requires) is taken as ours, as ISC dhcpd
    /// and Kea do: the client must still hold the address here for it to count.
    fn decline(
        &mut self,
        req: &Request,
        key: &ClientKey,
        server_id: Ipv4Addr,
        now: i64,
    ) -> Decision {
        if req.server_id.is_some_and(|s| s != server_id) {
            return Decision::Ignore("a decline for another server");
        }
        let Some(ip) = req.requested_ip else {
            return Decision::Ignore("a decline without an address");
        };
        match self.leases.get(&ip) {
            Some(l)
                if owns(l, key, req.mac)
                    && matches!(l.state, LeaseState::Offered | LeaseState::Bound) =>
            {
                let mut declined = l.clone();
                declined.state = LeaseState::Declined;
                declined.starts = now;
                declined.expires = now + self.decline_secs;
                self.put(declined.clone(), now);
                Decision::Write(declined)
            }
            _ => Decision::Ignore("a decline of an address the client was not given"),
        }
    }
}

#[cfg(test)]
mod tests;
