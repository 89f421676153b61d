//! Settings an administrator changes at runtime through the API, kept in the database so they
//! survive restarts and travel with backups.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Preferences {
    /// Overrides the configuration's `log_level` while set (a tracing filter such as `debug` or
    /// `info,edgeprov::phone=trace`); `None` follows the configuration.
    pub log_level: Option<String>,
    /// Check-ins older than this are removed from the history (the device keeps its last one).
    pub checkin_retention_days: u32,
    /// Audit entries older than this are removed.
    pub audit_retention_days: u32,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            log_level: None,
            checkin_retention_days: 30,
            audit_retention_days: 365,
        }
    }
}

/// Retention bounds: at least a day, at most ten years.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
