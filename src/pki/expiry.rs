//! The certificate expiry alarm: `certificate_expiring`, raised when the CA, the server
//! certificate phones get, the admin certificate or any trusted device root expires within
//! [`ALARM_DAYS`] (major; critical within [`CRITICAL_DAYS`] or once expired), one alarm per
//! certificate (its source names which), and
//! cleared when that certificate is replaced or removed. Checked at start, after every change
//! and daily; the daily run also renews the generated server certificate when it is due.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{CertOverview, LiveCerts, ServerSource};
use crate::model::{AlarmKind, Severity};
use crate::store::{Recorder, Store};

/// Days before expiry at which the alarm is raised (severity major).
pub const ALARM_DAYS: i64 = 90;
/// Days before expiry from which the alarm is critical (and once expired).
pub const CRITICAL_DAYS: i64 = 14;

const DAY: Duration = Duration::from_secs(86_400);

/// One certificate that needs attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// `ca`, `server`, `admin` or `root:<sha256>`.
    pub source: String,
    pub message: String,
    /// Major, critical within [`CRITICAL_DAYS`].
    pub severity: Severity,
}

/// The certificates of `overview` that expire within [`ALARM_DAYS`] or have expired.
pub fn expiring(overview: &CertOverview) -> Vec<Expiring> {
    let mut all = vec![
        (
            "ca".to_string(),
            "the device CA (every device certificate it signed stops working with it)".to_string(),
            &overview.ca,
        ),
        (
            "server".to_string(),
            match overview.server.source {
                ServerSource::Installed => "the installed server certificate phones get",
                ServerSource::Generated => "the generated server certificate",
            }
            .to_string(),
            &overview.server.cert,
        ),
    ];
    if overview.server.source == ServerSource::Installed {
        all.push((
            "admin".to_string(),
            "the generated server certificate the admin API presents".to_string(),
            &overview.admin,
        ));
    }
    for root in &overview.roots {
        all.push((
            format!("root:{}", root.cert.sha256),
            format!("the trusted device root {}", root.cert.subject),
            &root.cert,
        ));
    }
    all.into_iter()
        .filter(|(_, _, c)| c.days_left < ALARM_DAYS)
        .map(|(source, what, c)| Expiring {
            severity: match c.days_left < CRITICAL_DAYS {
                true => Severity::Critical,
                false => Severity::Major,
            },
            message: match c.days_left {
                d if d < 0 => format!("{what} has EXPIRED ({} days ago)", -d),
                0 => format!("{what} expires within a day"),
                d => format!("{what} expires in {d} days"),
            },
            source,
        })
        .collect()
}

/// Raises an alarm for every certificate that is expiring and clears the expiry alarms of
/// certificates that no longer are (renewed, replaced or removed); then the same for the device
/// certificates the box issued (`device_expiry`).
pub async fn check(certs: &LiveCerts, store: &Store, recorder: &Recorder) {
    let _one_at_a_time = certs.checking.lock().await;
    let overview = match certs.overview() {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("certificate expiry check failed: {e}");
            return;
        }
    };
    let due = expiring(&overview);
    for e in &due {
        recorder.alarm_with_severity(
            AlarmKind::CertificateExpiring,
            e.severity,
            &e.source,
            &e.message,
        );
    }
    recorder.flush().await;
    super::device_expiry::check(store, recorder, certs.device_cert_warn_days()).await;
    let keep: BTreeSet<String> = due.into_iter().map(|e| e.source).collect();
    let store = store.clone();
    let cleared = tokio::task::spawn_blocking(move || {
        let stale: Vec<String> = store
            .list_alarms()?
            .into_iter()
            .filter(|a| a.kind == AlarmKind::CertificateExpiring && !keep.contains(&a.source))
            .map(|a| a.source)
            .collect();
        for source in &stale {
            store.clear_alarm(AlarmKind::CertificateExpiring, source)?;
        }
        Ok::<_, crate::store::StoreError>(stale)
    })
    .await;
    match cleared {
        Ok(Ok(sources)) => {
            for source in sources {
                tracing::info!(%source, "certificate expiry alarm cleared");
            }
        }
        Ok(Err(e)) => tracing::error!("clearing certificate expiry alarms failed: {e}"),
        Err(e) => tracing::error!("certificate expiry check task failed: {e}"),
    }
}

/// Runs until `stop` changes: renews the generated server certificate when due and checks
/// expiry at start, daily and after every reload.
pub async fn watch(
    certs: Arc<LiveCerts>,
    store: Store,
    recorder: Recorder,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let renew = certs.clone();
        match tokio::task::spawn_blocking(move || renew.renew_if_due()).await {
            Ok(Ok(true)) => tracing::info!("renewed the generated server certificate"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!("renewing the generated server certificate failed: {e}"),
            Err(e) => tracing::error!("server certificate renewal task failed: {e}"),
        }
        check(&certs, &store, &recorder).await;
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(DAY) => {}
            _ = certs.reloaded() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertInfo, RootInfo, RootOrigin, ServerCert};

    fn cert(days_left: i64, sha256: &str) -> CertInfo {
        CertInfo {
            subject: format!("CN={sha256}"),
            issuer: String::new(),
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            days_left,
            sha256: sha256.to_string(),
            names: Vec::new(),
            is_ca: false,
        }
    }

    #[test]
    fn alarms_name_each_certificate_within_ninety_days() {
        let overview = CertOverview {
            ca: cert(3000, "ca"),
            server: ServerCert {
                cert: cert(89, "srv"),
                source: ServerSource::Installed,
                chain_len: 2,
            },
            admin: cert(700, "adm"),
            roots: vec![
                RootInfo {
                    cert: cert(-2, "r1"),
                    origin: RootOrigin::Api,
                    path: None,
                },
                RootInfo {
                    cert: cert(90, "r2"),
                    origin: RootOrigin::Api,
                    path: None,
                },
            ],
        };
        let due = expiring(&overview);
        let sources: Vec<&str> = due.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, ["server", "root:r1"]);
        assert!(due[0].message.contains("installed") && due[0].message.contains("89 days"));
        assert_eq!(due[0].severity, Severity::Major);
        assert!(due[1].message.contains("EXPIRED (2 days ago)"));
        assert_eq!(due[1].severity, Severity::Critical);
    }
}
