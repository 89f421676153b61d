//! Alarms: something an operator should know about, deduplicated by kind and source so a
//! phone retrying a refused request every minute is one alarm with a count, not thousands.

use serde::{Deserialize, Serialize};

/// Longest alarm message kept (in characters; longer ones are cut, see [`super::clip`]). An
/// alarm's message often quotes what a peer or the cloud sent; it is stored, listed, logged
/// and sent to the cloud, so it is bounded wherever it came from.
pub const MAX_MESSAGE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
}

/// Why an alarm was raised. The wire names are stable: scripts filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// A client certificate proved one device and asked for another device's secret file.
    CertificateMismatch,
    /// A secret file was asked for without any proof of identity (no certificate, plain HTTP).
    SecretWithoutProof,
    /// A secret file was asked for by a device that is not active.
    InactiveDevice,
    /// Wrong per-device HTTP credentials.
    HttpAuthFailed,
    /// Too many wrong HTTP credentials: the device's credentials are locked for a while.
    HttpAuthLockout,
    /// A request tried to leave the served tree (`..`, encoded separators).
    PathTraversal,
    /// Events were dropped because the recorder could not keep up, or could not write them to
    /// the database (a full disk).
    RecorderOverflow,
    /// No upstream URL of a firmware image could be reached (or all answered with errors).
    FirmwareUpstreamUnreachable,
    /// A downloaded or uploaded firmware image did not match its size or SHA-256.
    FirmwareChecksumMismatch,
    /// The firmware cache cannot hold an image (limit reached with everything pinned, or
    /// the disk itself is full).
    FirmwareDiskFull,
    /// Cloud sync has been failing for longer than `cloud.alarm_after_secs`.
    SyncFailed,
    /// A page pulled from the cloud was malformed or hostile and was rejected whole.
    SyncRejected,
    /// The cloud outbox was full: check-ins were dropped (alarms never are).
    OutboxOverflow,
    /// The cloud refused an event for good (HTTP 400, 413 or 422 for that event alone): it was
    /// moved from the outbox to the rejected events (`GET /api/v1/sync/rejected`), kept there
    /// until an operator requeues it, so that it holds back no later event. The message names
    /// the event and quotes the cloud's reason. Local only: the cloud knows what it refused.
    SyncEventRejected,
    /// A certificate (CA, server, admin or a trusted device root) expires within 90 days or
    /// has expired; the source names which. Major, critical within 14 days (the raising code
    /// sets the severity of each occurrence).
    CertificateExpiring,
    /// A phone presented a device certificate the box's CA issued and an operator revoked; the
    /// handshake was refused.
    RevokedCertificate,
    /// A SCEP enrolment was refused (wrong challenge, a MAC not in the inventory, a device
    /// that already has a valid certificate, a weak key, a bad signature…): the source is the
    /// peer and the MAC asked for, the message says why. Nothing was issued.
    ScepRefused,
    /// A SCEP enrolment passed every check and waits for an operator's approval
    /// (`scep.approval = "operator"`): the source is the peer and the MAC asked for. Nothing is
    /// issued until `edgeprov pki approve`; a request not approved within `scep.pending_days`
    /// expires.
    ScepPending,
    /// Device certificates the box's CA issued expire within `pki.device_cert_warn_days` (or
    /// have expired): counted per inventory device by its latest certificate not revoked, so a
    /// device given a new one no longer counts. One alarm for them all (source
    /// `device_certs`) with their number and the first to expire, its MAC and date; warning,
    /// major once that one has expired. Cleared when none does.
    DeviceCertsExpiring,
    /// A firmware policy pins a version whose release the config no longer lists (the source
    /// names the scope, model and version). The release is kept while the pin needs it
    /// (warning: phones get what they got), or, when it cannot be, no release serves the pin
    /// and its phones are given no firmware (major). Cleared when a release serves the pin
    /// again or the policy changes.
    FirmwarePinOrphaned,
    /// A stored firmware policy is not followed: an earlier edgeprov stored a model no policy
    /// may name (a family pattern such as `J1*`, an empty or garbled name), or another
    /// spelling of its model. The source names the scope and the model as stored. Cleared
    /// when the scope's policies are set again.
    FirmwarePolicyIgnored,
    /// A firmware release or policy the cloud sent is not served: the release's URL ends in
    /// no usable file name, its file name is a local release's (or another cloud release's)
    /// for a different image, a local release of the same model and version has another
    /// image, or the policy is not one this box knows. The source names it (`cloud firmware
    /// MODEL VERSION`, `cloud policy SITE MODEL`). Cleared when a pull or a local change
    /// resolves it.
    FirmwareCloudRefused,
    /// A cached firmware image could not be opened to serve a phone (its permissions or owner
    /// changed, a disk error): the source is its path, the message names the release and the
    /// error. The image is fetched again over it; phones get 503 with `Retry-After` until then.
    FirmwareCacheUnreadable,
    /// A static file stored by an earlier edgeprov holds a secret: since this version it goes
    /// only to a proven device, so phones that could fetch it without proof no longer can.
    StaticFileProtected,
    /// A service loop or thread (the source names it) panicked or failed, and the daemon
    /// stopped so that the service manager starts it again; the message says why. Raised on
    /// the way out, so it is read after the restart.
    ServiceFailed,
    /// A DHCP subnet (the source names its network) had no address left for a client: every
    /// address of its ranges is leased, offered, reserved or quarantined, and phones asking
    /// get no answer. Raised at most once a minute per subnet while it lasts.
    DhcpPoolExhausted,
    /// A DHCP client declined the address it was given (the source names the address): another
    /// device answers on it, most often one with a fixed address inside a dynamic range. The
    /// address is kept out of use for `dhcp.decline_seconds` (RFC 2131 4.3.3 asks that the
    /// administrator be told).
    DhcpAddressDeclined,
    /// A device's DHCP reservation (its `dhcp:address` parameter, set here or sent by the
    /// cloud) cannot be honoured: not an IPv4 address, outside every `[[dhcp.subnet]]`, the
    /// router's or this box's address, or another device's reservation. The source is the
    /// device's MAC; the device gets a dynamic address meanwhile. Cleared when the
    /// reservation is fixed or removed.
    DhcpReservationRefused,
    /// A phone's upload could not be kept: the uploads together hold `uploads.max_total_bytes`
    /// and dropping every log would not make room (overrides are never dropped). The source is
    /// the device's MAC, the message names the file; nothing of it was stored. An override
    /// refused so is a user's settings the phone may lose at its next boot.
    UploadStorageFull,
}

impl AlarmKind {
    /// Alarms that record a refused phone request (reported to the cloud as refusals).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AlarmKind::CertificateMismatch
                | AlarmKind::SecretWithoutProof
                | AlarmKind::InactiveDevice
                | AlarmKind::HttpAuthFailed
                | AlarmKind::HttpAuthLockout
                | AlarmKind::PathTraversal
                | AlarmKind::RevokedCertificate
                | AlarmKind::ScepRefused
        )
    }

    /// Alarms whose source a peer chooses (its address, the MAC it claims or presents): only
    /// these are bounded in number. Every other kind's sources come from the box's own
    /// configuration, files, certificates or catalogue, so they are few, and each must be
    /// kept under its own source, since the code that raises it also clears it by that source.
    pub fn source_from_peers(&self) -> bool {
        self.is_refusal() || *self == AlarmKind::ScepPending
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmKind::CertificateMismatch => "certificate_mismatch",
            AlarmKind::SecretWithoutProof => "secret_without_proof",
            AlarmKind::InactiveDevice => "inactive_device",
            AlarmKind::HttpAuthFailed => "http_auth_failed",
            AlarmKind::HttpAuthLockout => "http_auth_lockout",
            AlarmKind::PathTraversal => "path_traversal",
            AlarmKind::RecorderOverflow => "recorder_overflow",
            AlarmKind::FirmwareUpstreamUnreachable => "firmware_upstream_unreachable",
            AlarmKind::FirmwareChecksumMismatch => "firmware_checksum_mismatch",
            AlarmKind::FirmwareDiskFull => "firmware_disk_full",
            AlarmKind::SyncFailed => "sync_failed",
            AlarmKind::SyncRejected => "sync_rejected",
            AlarmKind::OutboxOverflow => "outbox_overflow",
            AlarmKind::SyncEventRejected => "sync_event_rejected",
            AlarmKind::CertificateExpiring => "certificate_expiring",
            AlarmKind::RevokedCertificate => "revoked_certificate",
            AlarmKind::ScepRefused => "scep_refused",
            AlarmKind::ScepPending => "scep_pending",
            AlarmKind::DeviceCertsExpiring => "device_certs_expiring",
            AlarmKind::FirmwarePinOrphaned => "firmware_pin_orphaned",
            AlarmKind::FirmwarePolicyIgnored => "firmware_policy_ignored",
            AlarmKind::FirmwareCloudRefused => "firmware_cloud_refused",
            AlarmKind::FirmwareCacheUnreadable => "firmware_cache_unreadable",
            AlarmKind::StaticFileProtected => "static_file_protected",
            AlarmKind::ServiceFailed => "service_failed",
            AlarmKind::DhcpPoolExhausted => "dhcp_pool_exhausted",
            AlarmKind::DhcpAddressDeclined => "dhcp_address_declined",
            AlarmKind::DhcpReservationRefused => "dhcp_reservation_refused",
            AlarmKind::UploadStorageFull => "upload_storage_full",
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            AlarmKind::CertificateMismatch | AlarmKind::HttpAuthLockout => Severity::Major,
            AlarmKind::RecorderOverflow => Severity::Major,
            AlarmKind::FirmwareChecksumMismatch | AlarmKind::FirmwareDiskFull => Severity::Major,
            AlarmKind::FirmwareUpstreamUnreachable => Severity::Minor,
            // The worse of its two cases; a kept release is raised as a warning.
            AlarmKind::FirmwarePinOrphaned => Severity::Major,
            // What such a policy named never matched a phone's model (at most a model
            // imported with characters phones never send), so phones keep what they got.
            AlarmKind::FirmwarePolicyIgnored => Severity::Minor,
            // Phones keep what the local catalogue gives them; the cloud's intent is not met.
            AlarmKind::FirmwareCloudRefused => Severity::Minor,
            AlarmKind::FirmwareCacheUnreadable => Severity::Major,
            AlarmKind::StaticFileProtected => Severity::Minor,
            AlarmKind::ServiceFailed => Severity::Critical,
            AlarmKind::DhcpPoolExhausted => Severity::Major,
            AlarmKind::UploadStorageFull => Severity::Major,
            AlarmKind::DhcpAddressDeclined | AlarmKind::DhcpReservationRefused => Severity::Minor,
            AlarmKind::SyncFailed | AlarmKind::SyncRejected | AlarmKind::OutboxOverflow => {
                Severity::Major
            }
            AlarmKind::CertificateExpiring | AlarmKind::RevokedCertificate => Severity::Major,
            // Rare in a working deployment: a wrong challenge in the phones' settings, or
            // someone trying to enrol as a phone.
            AlarmKind::ScepRefused => Severity::Major,
            // Nothing is wrong: a phone waits for the operator, who should hear of it.
            AlarmKind::ScepPending => Severity::Warning,
            AlarmKind::SyncEventRejected => Severity::Major,
            // Major once one has expired (the raising code sets each occurrence's severity).
            AlarmKind::DeviceCertsExpiring => Severity::Warning,
            AlarmKind::SecretWithoutProof
            | AlarmKind::InactiveDevice
            | AlarmKind::HttpAuthFailed
            | AlarmKind::PathTraversal => Severity::Minor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub kind: AlarmKind,
    pub severity: Severity,
    /// Who caused it: a peer address, a device MAC, or both (`10.0.0.7 as 001122aabbcc`).
    pub source: String,
    /// The latest occurrence's detail.
    pub message: String,
    pub count: u64,
    pub first: i64,
    pub last: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/alarms.md lists every kind the code has (read from [`AlarmKind::as_str`], so a
    /// new kind cannot be left out) and no other, each with the severity it is raised with;
    /// its first rows are the refusals, as its text says.
    #[test]
    fn the_alarm_reference_lists_every_kind_with_its_severity() {
        let source = include_str!("alarm.rs");
        let body = &source[source.find("pub fn as_str").unwrap()..];
        let body = &body[..body.find("\n    }\n").unwrap()];
        let in_code: Vec<&str> = body
            .split("=> \"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert!(in_code.len() > 20, "{in_code:?}");

        let doc = include_str!("../../docs/alarms.md");
        let mut documented = Vec::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.split(" | ").collect();
            let [first, severity, ..] = cells.as_slice() else {
                continue;
            };
            let Some(name) = first.strip_prefix("| `").and_then(|k| k.strip_suffix('`')) else {
                continue;
            };
            let kind: AlarmKind = match serde_json::from_value(serde_json::json!(name)) {
                Ok(kind) => kind,
                Err(e) => panic!("docs/alarms.md names `{name}`, which is no alarm kind: {e}"),
            };
            let stated = severity.split_whitespace().next().unwrap_or_default();
            assert_eq!(
                serde_json::json!(stated),
                serde_json::to_value(kind.severity()).unwrap(),
                "{name}: documented severity"
            );
            documented.push(kind);
        }
        let names: Vec<&str> = documented.iter().map(AlarmKind::as_str).collect();
        let mut sorted_doc = names.clone();
        sorted_doc.sort_unstable();
        let mut sorted_code = in_code.clone();
        sorted_code.sort_unstable();
        assert_eq!(
            sorted_doc, sorted_code,
            "docs/alarms.md against the code's kinds"
        );

        let refusals = documented.iter().take_while(|k| k.is_refusal()).count();
        assert_eq!(
            refusals,
            documented.iter().filter(|k| k.is_refusal()).count()
        );
        assert!(doc.contains(&format!(
            "The first {} kinds record refused phone requests",
            [
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight"
            ][refusals]
        )));
    }
}
