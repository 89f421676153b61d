//! Plain data types shared by every module: what a device, a site, a parameter layer and an
//! alarm are. Stored as JSON in redb so fields can be added without a migration.

mod alarm;
mod device;
mod device_cert;
mod lease;
mod mac;
mod params;
mod pending_enrolment;
mod preferences;
mod token;
mod upload;
mod vendor;

pub use alarm::{Alarm, AlarmKind, MAX_MESSAGE, Severity};
pub use device::{
    CheckIn, CheckInProof, CloudDevice, Device, DeviceFilter, DeviceState, HttpCredential, Site,
    SiteProfile,
};
pub use device_cert::{IssuedCert, Revocation, RevocationReason, RevokedCerts};
pub use lease::{Lease, LeaseState};
pub use mac::{Mac, MacError};
pub use params::{
    FieldError, Layer, LayerError, MAX_NAME, MAX_TEXT, MAX_VALUE, ParamError, ParamSet,
    check_field, check_name, validate_param,
};
pub use pending_enrolment::{KEY_DIGITS_NAMED, PendingEnrolment, PendingState};
pub use preferences::{Preferences, RETENTION_DAYS};
pub use token::{ApiToken, BOX_ADMIN, Role};
pub use upload::{
    Held, LOG_DIRECTORY, NoRoom, OVERRIDES_DIRECTORY, UploadFile, UploadInfo, UploadKind,
    logs_to_drop,
};
pub use vendor::{Vendor, model_key};

/// `text` cut to at most `max` characters, with `…` to show that it was cut. For messages that
/// quote what a peer sent: a quoted value must not make an alarm, a log line or an event for the
/// cloud as large as the value.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Seconds since the Unix epoch: the one time representation stored.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
