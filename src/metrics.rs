//! Counters for Prometheus: phone requests by file kind and status, and TLS handshakes by
//! result. Other services keep their own counters (DHCP `Stats`, the sync status); the admin
//! API renders them all in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub handshakes_ok: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
}

impl Metrics {
    /// Counts one phone request: `file` is `device`, `common`, `crl` or `other`.
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
            "# HELP edgeprov_tls_handshakes_total TLS handshakes by result."
        );
        let _ = writeln!(out, "# TYPE edgeprov_tls_handshakes_total counter");
        for (result, c) in [
            ("ok", &self.handshakes_ok),
            ("failed", &self.handshakes_failed),
            ("timeout", &self.handshakes_timed_out),
        ] {
            let _ = writeln!(
                out,
                "edgeprov_tls_handshakes_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
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
        let m = Metrics::default();
        m.request("device", 200);
        m.request("device", 200);
        m.request("common", 404);
        m.handshakes_failed.fetch_add(3, Ordering::Relaxed);
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
        assert!(out.contains("edgeprov_tls_handshakes_total{result=\"failed\"} 3\n"));
        assert!(out.contains("# TYPE edgeprov_devices gauge\nedgeprov_devices 7\n"));
    }
}
