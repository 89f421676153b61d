//! The device certificate expiry alarm, `device_certs_expiring`: an operator learns that the
//! certificates the box issued to phones will run out before the phones fail their handshakes.
//!
//! One alarm for all of them, not one per device: certificates issued together (a site rolled
//! out in a day) expire together, and a thousand alarms would bury every other one. It counts
//! each inventory device once, by its latest certificate not revoked: a device that was given a
//! new certificate no longer counts, whatever became of its old one. Checked at start, daily,
//! after a reload and after every issue or revocation.

use std::collections::BTreeMap;

use crate::model::{AlarmKind, IssuedCert, Mac, Severity};
use crate::store::{Recorder, Store, StoreError};

/// The alarm's one source.
pub const SOURCE: &str = "device_certs";

const DAY: i64 = 86_400;

/// What the alarm says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertsDue {
    /// Devices whose latest certificate expires within the warning or has expired.
    pub count: usize,
    /// The first of them to expire, and when (Unix seconds).
    pub first: Mac,
    pub first_not_after: i64,
    /// Warning; major once the first has expired.
    pub severity: Severity,
    pub message: String,
}

/// The devices among `issued` (certificates not revoked, of inventory devices) whose latest
/// certificate expires within `warn_days` of `now`; `None` when there are none or the alarm is
/// off (`warn_days` 0). A certificate of unknown validity (recorded before validity was) is
/// left out.
pub fn due(issued: &[IssuedCert], now: i64, warn_days: u32) -> Option<DeviceCertsDue> {
    if warn_days == 0 {
        return None;
    }
    let mut latest: BTreeMap<Mac, i64> = BTreeMap::new();
    for cert in issued.iter().filter(|c| c.revoked.is_none()) {
        if let Some(not_after) = cert.not_after {
            let t = latest.entry(cert.mac).or_insert(not_after);
            *t = (*t).max(not_after);
        }
    }
    let horizon = now.saturating_add(i64::from(warn_days) * DAY);
    let expiring: Vec<(Mac, i64)> = latest.into_iter().filter(|(_, t)| *t < horizon).collect();
    let (first, first_not_after) = expiring.iter().copied().min_by_key(|(_, t)| *t)?;
    let count = expiring.len();
    let expired = first_not_after <= now;
    let date = crate::cli::time_text(first_not_after);
    let message = format!(
        "{count} device certificate{s} issued by this box expire{v} within {warn_days} days \
         (pki.device_cert_warn_days); the first, {first}'s, {when}. Issue new ones \
         (`edgeprov pki issue-device`) before phones fail their handshakes",
        s = if count == 1 { "" } else { "s" },
        v = if count == 1 { "s" } else { "" },
        when = match expired {
            true => format!("EXPIRED on {date} UTC"),
            false => format!("expires on {date} UTC"),
        },
    );
    Some(DeviceCertsDue {
        count,
        first,
        first_not_after,
        severity: if expired {
            Severity::Major
        } else {
            Severity::Warning
        },
        message,
    })
}

/// Raises the alarm when device certificates are due, clears it when none is.
pub async fn check(store: &Store, recorder: &Recorder, warn_days: u32) {
    let s = store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let issued = s.issued_certs_in_inventory()?;
        let raised = s
            .list_alarms()?
            .iter()
            .any(|a| a.kind == AlarmKind::DeviceCertsExpiring);
        Ok::<_, StoreError>((issued, raised))
    })
    .await;
    let (issued, raised) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return tracing::error!("device certificate expiry check failed: {e}"),
        Err(e) => return tracing::error!("device certificate expiry check task failed: {e}"),
    };
    match due(&issued, crate::model::now_unix(), warn_days) {
        Some(d) => {
            recorder.alarm_with_severity(
                AlarmKind::DeviceCertsExpiring,
                d.severity,
                SOURCE,
                &d.message,
            );
            recorder.flush().await;
        }
        // Cleared only when raised: a clear is a write, and a check runs at every issue.
        None if raised => {
            let s = store.clone();
            let cleared = tokio::task::spawn_blocking(move || {
                s.clear_alarm(AlarmKind::DeviceCertsExpiring, SOURCE)
            })
            .await;
            match cleared {
                Ok(Ok(_)) => tracing::info!("device certificate expiry alarm cleared"),
                Ok(Err(e)) => tracing::error!("clearing the device certificate alarm failed: {e}"),
                Err(e) => tracing::error!("device certificate expiry task failed: {e}"),
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Revocation, RevocationReason};

    const NOW: i64 = 1_800_000_000;

    fn cert(mac: u8, days_left: i64) -> IssuedCert {
        IssuedCert {
            serial: format!("{mac:02x}{days_left}"),
            mac: Mac::from_octets([2, 0, 0, 0, 0, mac]),
            not_before: Some(0),
            not_after: Some(NOW + days_left * DAY),
            issued_at: Some(0),
            revoked: None,
        }
    }

    #[test]
    fn one_alarm_counts_devices_by_their_latest_certificate() {
        let mut revoked = cert(4, 3650);
        revoked.revoked = Some(Revocation {
            at: 0,
            reason: RevocationReason::Superseded,
        });
        let issued = [
            cert(1, 20),
            cert(2, 5),
            cert(2, 3650), // device 2 was given a new one: it does not count
            cert(3, 31),
            cert(4, 10),
            revoked, // device 4's newer one is revoked: its old one counts
        ];
        let d = due(&issued, NOW, 30).unwrap();
        assert_eq!(d.count, 2);
        assert_eq!(d.first, Mac::from_octets([2, 0, 0, 0, 0, 4]));
        assert_eq!(d.first_not_after, NOW + 10 * DAY);
        assert_eq!(d.severity, Severity::Warning);
        assert!(
            d.message.starts_with("2 device certificates"),
            "{}",
            d.message
        );
        assert!(d.message.contains("020000000004"), "{}", d.message);

        let d = due(&[cert(1, -2), cert(3, 100)], NOW, 30).unwrap();
        assert_eq!((d.count, d.severity), (1, Severity::Major));
        assert!(d.message.contains("EXPIRED on"), "{}", d.message);

        assert_eq!(due(&[cert(1, 31)], NOW, 30), None);
        assert_eq!(due(&[cert(1, 1)], NOW, 0), None, "off");
        assert_eq!(due(&[], NOW, 30), None);
    }
}
