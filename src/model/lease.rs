//! A DHCP lease as stored and as the admin API shows it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Mac;

/// Where an address stands. Only `bound`, `released` and `declined` are ever written to the
/// store: an offer is a promise held in memory for a few seconds, and `expired` is how a bound
/// lease whose time has passed is shown (see [`Lease::state_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    Offered,
    Bound,
    Released,
    Declined,
    Expired,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
            LeaseState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<LeaseState> {
        [
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Declined,
            LeaseState::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// One address's record, keyed by the address: an address has at most one lease, which is what
/// makes "never handed to two clients" a property of the table's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// Option 61 in hex, when the client sent one (it then identifies the client, not the MAC).
    #[serde(default)]
    pub client_id: String,
    /// Option 12 as the client sent it (J100 phones send `AV` + OUI letter + last octets).
    #[serde(default)]
    pub hostname: String,
    /// Option 60 as the client sent it.
    #[serde(default)]
    pub vendor_class: String,
    pub state: LeaseState,
    pub starts: i64,
    /// For a bound lease its end; for a declined address the end of its quarantine; for a
    /// released one the moment it was released.
    pub expires: i64,
    /// Seconds the last ACK gave a bound lease: the longest it may still run, whatever the
    /// clock did while the daemon was stopped (see `dhcp::lease::Engine::load`). 0 when not
    /// known (other states, and records written before it was kept).
    #[serde(default)]
    pub granted: u32,
}

impl Lease {
    /// The state as of `now`: a bound lease past its end is expired.
    pub fn state_at(&self, now: i64) -> LeaseState {
        match self.state {
            LeaseState::Bound | LeaseState::Offered if self.expires <= now => LeaseState::Expired,
            s => s,
        }
    }
}
