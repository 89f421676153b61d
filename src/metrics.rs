//! Counters for Prometheus: phone requests by file kind and status, TLS handshakes by listener
//! and result, the phone connections open, their limits, and those refused at accept. Other services keep their own counters (DHCP `Stats`, the
//! sync status); the admin API renders them all in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::serve::ConnectionLimit;

/// One listener kind's TLS handshakes by result.
#[derive(Default)]
pub struct Handshakes {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
}

pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Kept apart from the admin listener's, so that the CLI and the Prometheus scrape itself
    /// are not counted as phones, nor a scraper with the wrong CA as phones failing.
    pub phone_handshakes: Arc<Handshakes>,
    pub admin_handshakes: Arc<Handshakes>,
    /// The phone listeners' connections (HTTPS and HTTP together) and their limit.
    pub phone_connections: Arc<ConnectionLimit>,
    /// Phone connections whose client certificate was found to prove nothing (a foreign root,
    /// past or before its validity, no longer trusted): let through the handshake, served as
    /// a phone without one. A fleet's expiring factory certificates show here first.
    pub unproven_certificates: AtomicU64,
    /// SCEP enrolments by how they ended.
    pub scep: ScepCounters,
    /// Phones' uploads by kind (`log`, `override`) and result (see [`Metrics::upload`]).
    uploads: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

/// SCEP enrolments (PKIOperation requests) by result.
#[derive(Default)]
pub struct ScepCounters {
    /// First certificates issued (PKCSReq with the challenge, or approved by an operator).
    pub granted: AtomicU64,
    /// First enrolments held for an operator's approval (`scep.approval = "operator"`), each
    /// counted once when held, not at each poll.
    pub pending: AtomicU64,
    /// Certificates issued by renewal.
    pub renewed: AtomicU64,
    /// Answered CertRep FAILURE, or HTTP 400 for a message that could not be read.
    pub refused: AtomicU64,
    /// Answered HTTP 429: their source had `scep.refusals_per_minute` refusals this minute.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    pub fn new(phone_connections: Arc<ConnectionLimit>) -> Self {
        Metrics {
            requests: Mutex::default(),
            phone_handshakes: Arc::default(),
            admin_handshakes: Arc::default(),
            phone_connections,
            unproven_certificates: AtomicU64::new(0),
            scep: ScepCounters::default(),
            uploads: Mutex::default(),
        }
    }

    /// Counts one upload (a PUT on an upload path): `kind` `log` or `override`; `result`
    /// `stored`, `replaced`, `refused` (no proof, not the device, an override over plain HTTP,
    /// or the device or its certificate no longer good once the body came), `too_large`,
    /// `busy` (`uploads.max_in_flight` being read), `in_progress` (one of the device being
    /// read), `no_room`, `bad_body` (cut off or too slow) or `failed` (the store could not
    /// write it).
    pub fn upload(&self, kind: &'static str, result: &'static str) {
        *self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, result))
            .or_insert(0) += 1;
    }

    /// Counts one phone request: `file` is the kind of file it resolved to, `device`,
    /// `common`, `firmware`, `crl`, `ca`, `scep` or `upload` (a phone's upload, written or
    /// read back), else `other` (a fixed set: never a path or a MAC).
    pub fn request(&self, file: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((file, status))
            .or_insert(0) += 1;
    }

    /// This module's counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP edgeprov_phone_requests_total Phone requests by file kind and HTTP status."
        );
        let _ = writeln!(out, "# TYPE edgeprov_phone_requests_total counter");
        for ((file, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "edgeprov_phone_requests_total{{file=\"{file}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgeprov_phone_uploads_total Phone uploads by kind (log, override) and result."
        );
        let _ = writeln!(out, "# TYPE edgeprov_phone_uploads_total counter");
        for ((kind, result), n) in self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "edgeprov_phone_uploads_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgeprov_tls_handshakes_total TLS handshakes by listener (phone, admin) and result."
        );
        let _ = writeln!(out, "# TYPE edgeprov_tls_handshakes_total counter");
        for (listener, h) in [
            ("phone", &self.phone_handshakes),
            ("admin", &self.admin_handshakes),
        ] {
            for (result, c) in [
                ("ok", &h.ok),
                ("failed", &h.failed),
                ("timeout", &h.timed_out),
            ] {
                let _ = writeln!(
                    out,
                    "edgeprov_tls_handshakes_total{{listener=\"{listener}\",result=\"{result}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }
        sample(
            out,
            "edgeprov_phone_unproven_certificates_total",
            "counter",
            "Phone connections whose client certificate proved nothing (foreign root, expired, not yet valid, no longer trusted); served as without one.",
            self.unproven_certificates.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP edgeprov_scep_enrolments_total SCEP enrolments by result (granted, renewed, pending, refused, rate_limited).\n\
             # TYPE edgeprov_scep_enrolments_total counter"
        );
        for (result, c) in [
            ("granted", &self.scep.granted),
            ("renewed", &self.scep.renewed),
            ("pending", &self.scep.pending),
            ("refused", &self.scep.refused),
            ("rate_limited", &self.scep.rate_limited),
        ] {
            let _ = writeln!(
                out,
                "edgeprov_scep_enrolments_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        sample(
            out,
            "edgeprov_phone_connections",
            "gauge",
            "Phone connections open now (HTTPS and HTTP).",
            self.phone_connections.open(),
        );
        sample(
            out,
            "edgeprov_phone_connections_limit",
            "gauge",
            "Phone connections that may be open at once (phone.max_connections); beyond it new ones wait to be accepted.",
            self.phone_connections.max(),
        );
        sample(
            out,
            "edgeprov_phone_connections_per_address_limit",
            "gauge",
            "Phone connections one address (IPv6: one /64) may have open at once (phone.max_connections_per_address; 0: no such limit).",
            self.phone_connections.per_address(),
        );
        let _ = writeln!(
            out,
            "# HELP edgeprov_phone_connections_refused_total Phone connections closed as soon as accepted, by reason (per_address: their address already had phone.max_connections_per_address open).\n\
             # TYPE edgeprov_phone_connections_refused_total counter\n\
             edgeprov_phone_connections_refused_total{{reason=\"per_address\"}} {}",
            self.phone_connections.refused_per_address()
        );
    }
}

/// Appends one gauge or counter with its help and type lines.
pub fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new(Arc::new(ConnectionLimit::new(5, 2)));
        m.request("device", 200);
        m.request("device", 200);
        m.request("common", 404);
        m.phone_handshakes.failed.fetch_add(3, Ordering::Relaxed);
        m.admin_handshakes.ok.fetch_add(1, Ordering::Relaxed);
        let mut out = String::new();
        m.render(&mut out);
        sample(
            &mut out,
            "edgeprov_devices",
            "gauge",
            "Devices in the inventory.",
            7,
        );
        assert!(out.contains("edgeprov_phone_requests_total{file=\"device\",status=\"200\"} 2\n"));
        assert!(out.contains("edgeprov_phone_requests_total{file=\"common\",status=\"404\"} 1\n"));
        assert!(
            out.contains("edgeprov_tls_handshakes_total{listener=\"phone\",result=\"failed\"} 3\n")
        );
        assert!(
            out.contains("edgeprov_tls_handshakes_total{listener=\"phone\",result=\"ok\"} 0\n")
        );
        assert!(
            out.contains("edgeprov_tls_handshakes_total{listener=\"admin\",result=\"ok\"} 1\n")
        );
        assert!(out.contains("# TYPE edgeprov_devices gauge\nedgeprov_devices 7\n"));
        assert!(out.contains("\nedgeprov_phone_connections 0\n"));
        assert!(out.contains("edgeprov_scep_enrolments_total{result=\"granted\"} 0\n"));
        assert!(out.contains("edgeprov_scep_enrolments_total{result=\"pending\"} 0\n"));
        assert!(out.contains("\nedgeprov_phone_connections_limit 5\n"));
        assert!(out.contains("\nedgeprov_phone_connections_per_address_limit 2\n"));
        assert!(out.contains(
            "# TYPE edgeprov_phone_connections_refused_total counter\n\
             edgeprov_phone_connections_refused_total{reason=\"per_address\"} 0\n"
        ));
    }
}
