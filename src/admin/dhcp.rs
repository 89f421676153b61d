//! `/api/v1/dhcp`: leases as stored (what was acknowledged), with their state as of now, and
//! the server's counters.

use std::net::Ipv4Addr;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, blocking, parse_mac};
use crate::dhcp::StatsView;
use crate::model::{LeaseState, Mac, now_unix};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseFilter {
    mac: Option<String>,
    ip: Option<String>,
    state: Option<String>,
    /// Paging as `/devices` pages ([`super::paging::window`]).
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// A lease as the API shows it: `state` is as of the request (a bound lease past its end is
/// `expired`).
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseView {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub state: LeaseState,
    pub hostname: String,
    pub vendor_class: String,
    pub client_id: String,
    pub starts: i64,
    pub expires: i64,
}

/// Leases, filtered, in address order (an address has one lease record, so the order is total
/// and pages of an unchanged list cover each lease once), one page of them; the number that
/// match is in `X-Total-Count`.
pub async fn leases(
    State(st): State<AdminState>,
    Query(filter): Query<LeaseFilter>,
) -> Result<([(&'static str, String); 1], Json<Vec<LeaseView>>), ApiError> {
    let mac = filter.mac.as_deref().map(parse_mac).transpose()?;
    let ip = filter
        .ip
        .as_deref()
        .map(|t| t.parse::<Ipv4Addr>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("ip: not an IPv4 address".into()))?;
    let state = filter
        .state
        .as_deref()
        .map(|s| {
            LeaseState::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state {s:?}: expected offered, bound, released, declined or expired"
                ))
            })
        })
        .transpose()?;
    let store = st.store.clone();
    let all = blocking(move || store.list_leases()).await?;
    let now = now_unix();
    let mut out: Vec<LeaseView> = all
        .into_iter()
        .map(|l| LeaseView {
            state: l.state_at(now),
            ip: l.ip,
            mac: l.mac,
            hostname: l.hostname,
            vendor_class: l.vendor_class,
            client_id: l.client_id,
            starts: l.starts,
            expires: l.expires,
        })
        .filter(|l| mac.is_none_or(|m| l.mac == m))
        .filter(|l| ip.is_none_or(|i| l.ip == i))
        .filter(|l| state.is_none_or(|s| l.state == s))
        .collect();
    out.sort_by_key(|l| l.ip);
    let (page, total) = super::paging::window(out.into_iter(), filter.offset, filter.limit);
    Ok((super::paging::total_count(total), Json(page)))
}

pub async fn stats(State(st): State<AdminState>) -> Json<StatsView> {
    Json(st.dhcp.view())
}
