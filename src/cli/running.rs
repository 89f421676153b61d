//! The running daemon as the local CLI finds it: the listener file it writes at start-up,
//! trusted only while its admin listener still takes connections (a daemon killed with
//! `kill -9` leaves the file behind).

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;
use crate::daemon::Listeners;

/// The addresses the daemon of this configuration is bound to, if it is running.
pub fn listeners(config: &Config) -> Option<Listeners> {
    std::fs::read(config.listeners_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Listeners>(&b).ok())
        .filter(|l| std::net::TcpStream::connect(loopback(l.admin)).is_ok())
}

/// A wildcard address as the loopback address of its family, to connect to.
pub fn loopback(mut a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        });
    }
    a
}
