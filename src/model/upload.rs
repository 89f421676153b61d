//! Files phones upload (Poly): their logs, and the settings changed on the phone or its web
//! page ("overrides"), kept per device. Which files exist and how room is made for a new one
//! are decided here, without I/O.

use serde::{Deserialize, Serialize};

use super::Mac;

/// The files a phone may upload; nothing else is writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadFile {
    /// `{mac}-app.log`: the application log.
    AppLog,
    /// `{mac}-boot.log`: the boot log.
    BootLog,
    /// `{mac}-phone.cfg`: settings changed on the phone itself.
    PhoneOverrides,
    /// `{mac}-web.cfg`: settings changed in the phone's web page.
    WebOverrides,
}

/// Logs may be dropped to make room; overrides never are (the phone would lose its user's
/// settings at its next boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    Log,
    Override,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Log => "log",
            UploadKind::Override => "override",
        }
    }
}

impl UploadFile {
    pub const ALL: [UploadFile; 4] = [
        UploadFile::AppLog,
        UploadFile::BootLog,
        UploadFile::PhoneOverrides,
        UploadFile::WebOverrides,
    ];

    pub fn kind(self) -> UploadKind {
        match self {
            UploadFile::AppLog | UploadFile::BootLog => UploadKind::Log,
            UploadFile::PhoneOverrides | UploadFile::WebOverrides => UploadKind::Override,
        }
    }

    /// What follows the MAC in the file's name.
    pub fn suffix(self) -> &'static str {
        match self {
            UploadFile::AppLog => "-app.log",
            UploadFile::BootLog => "-boot.log",
            UploadFile::PhoneOverrides => "-phone.cfg",
            UploadFile::WebOverrides => "-web.cfg",
        }
    }

    /// The directory the master file names for it (`LOG_FILE_DIRECTORY`,
    /// `OVERRIDES_DIRECTORY`).
    pub fn directory(self) -> &'static str {
        match self.kind() {
            UploadKind::Log => LOG_DIRECTORY,
            UploadKind::Override => OVERRIDES_DIRECTORY,
        }
    }

    /// The file's name for device `mac`, as the phone names it (lower-case MAC).
    pub fn name(self, mac: Mac) -> String {
        format!("{mac}{}", self.suffix())
    }

    /// The file and device a name (`{mac}-app.log`, the MAC's twelve hex digits in any letter
    /// case, the rest too) stands for; `None` for any other name.
    pub fn parse(name: &str) -> Option<(UploadFile, Mac)> {
        let (digits, rest) = (name.get(..12)?, name.get(12..)?);
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let file = UploadFile::ALL
            .into_iter()
            .find(|f| rest.eq_ignore_ascii_case(f.suffix()))?;
        Some((file, Mac::parse(digits).ok()?))
    }
}

/// The directory of uploaded logs the master file names.
pub const LOG_DIRECTORY: &str = "logs";
/// The directory of uploaded overrides the master file names: apart from the directory of
/// edgeprov's own `{mac}-phone.cfg`, which holds the device's secrets and which the phone
/// would otherwise read back as its overrides and overwrite with them.
pub const OVERRIDES_DIRECTORY: &str = "overrides";

/// What is kept about an upload besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub file: UploadFile,
    pub size: u64,
    /// When it was received, Unix seconds.
    pub received: i64,
    /// The address it came from.
    pub from: String,
}

/// An upload already held, as the choice of what to drop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub mac: Mac,
    pub file: UploadFile,
    pub size: u64,
    pub received: i64,
}

/// Why an upload cannot be stored even with every log dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{needed} bytes are needed and only {available} can be made free (overrides are never dropped)"
)]
pub struct NoRoom {
    pub needed: u64,
    pub available: u64,
}

/// The logs to drop so that `incoming` bytes fit under `max_total`: the oldest first (by
/// time received, then device and file, so the choice is the same on every run), of any
/// device, never an override. `total`: the bytes held now, the upload being replaced
/// included; `replaced`: that upload (its bytes are freed by the write itself, so it is
/// neither counted nor chosen). `held` need not be in any order, nor hold every log: the
/// oldest that cover what is missing are enough (the store reads no more than those).
pub fn logs_to_drop(
    held: &[Held],
    total: u64,
    replaced: Option<(Mac, UploadFile)>,
    incoming: u64,
    max_total: u64,
) -> Result<Vec<(Mac, UploadFile)>, NoRoom> {
    let freed_by_write = replaced
        .and_then(|(m, f)| held.iter().find(|h| h.mac == m && h.file == f))
        .map_or(0, |h| h.size);
    let mut after = total
        .saturating_sub(freed_by_write)
        .saturating_add(incoming);
    if after <= max_total {
        return Ok(Vec::new());
    }
    let mut logs: Vec<&Held> = held
        .iter()
        .filter(|h| h.file.kind() == UploadKind::Log && Some((h.mac, h.file)) != replaced)
        .collect();
    logs.sort_by_key(|h| (h.received, h.mac, h.file));
    let mut dropped = Vec::new();
    for log in logs {
        if after <= max_total {
            break;
        }
        after = after.saturating_sub(log.size);
        dropped.push((log.mac, log.file));
    }
    if after > max_total {
        // Every log is dropped and it still does not fit: what stays is overrides (and the
        // file being replaced is freed), so that much room is all there can be.
        let kept = after.saturating_sub(incoming);
        return Err(NoRoom {
            needed: incoming,
            available: max_total.saturating_sub(kept),
        });
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 1]);
    const B: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 2]);

    #[test]
    fn names_are_read_in_any_letter_case_and_nothing_else_is_an_upload() {
        assert_eq!(
            UploadFile::parse("0004f2000001-app.log"),
            Some((UploadFile::AppLog, A))
        );
        assert_eq!(
            UploadFile::parse("0004F2000001-BOOT.LOG"),
            Some((UploadFile::BootLog, A))
        );
        assert_eq!(
            UploadFile::parse("0004f2000002-Web.cfg"),
            Some((UploadFile::WebOverrides, B))
        );
        for other in [
            "0004f2000001.cfg",
            "0004f2000001-license.cfg",
            "0004f2000001-directory.xml",
            "00:04:f2:00:00:01-app.log",
            "0004f200000-app.log",
            "0004f20000011-app.log",
            "x004f2000001-app.log",
            "0004f2000001-app.log.bak",
            "-app.log",
            "",
            "0004f2000001é-app.log",
        ] {
            assert_eq!(UploadFile::parse(other), None, "{other}");
        }
        for f in UploadFile::ALL {
            assert_eq!(UploadFile::parse(&f.name(A)), Some((f, A)));
        }
    }

    fn held(mac: Mac, file: UploadFile, size: u64, received: i64) -> Held {
        Held {
            mac,
            file,
            size,
            received,
        }
    }

    #[test]
    fn what_fits_drops_nothing() {
        let h = [held(A, UploadFile::AppLog, 40, 1)];
        assert_eq!(logs_to_drop(&h, 40, None, 60, 100), Ok(vec![]));
    }

    /// The oldest logs go first, of any device, until the upload fits; overrides stay,
    /// however old.
    #[test]
    fn the_oldest_logs_of_any_device_go_first_and_overrides_never() {
        let h = [
            held(A, UploadFile::PhoneOverrides, 30, 1),
            held(B, UploadFile::BootLog, 20, 5),
            held(A, UploadFile::AppLog, 20, 3),
            held(B, UploadFile::AppLog, 20, 4),
        ];
        assert_eq!(
            logs_to_drop(&h, 90, None, 30, 100),
            Ok(vec![(A, UploadFile::AppLog)])
        );
        assert_eq!(
            logs_to_drop(&h, 90, None, 50, 100),
            Ok(vec![(A, UploadFile::AppLog), (B, UploadFile::AppLog)])
        );
        assert_eq!(
            logs_to_drop(&h, 90, None, 70, 100),
            Ok(vec![
                (A, UploadFile::AppLog),
                (B, UploadFile::AppLog),
                (B, UploadFile::BootLog)
            ])
        );
        assert_eq!(
            logs_to_drop(&h, 90, None, 71, 100),
            Err(NoRoom {
                needed: 71,
                available: 70
            })
        );
    }

    /// A replaced upload frees its own bytes and is not chosen to make room for itself.
    #[test]
    fn a_replaced_upload_frees_its_bytes_and_is_not_dropped() {
        let h = [
            held(A, UploadFile::AppLog, 50, 1),
            held(B, UploadFile::AppLog, 40, 2),
        ];
        assert_eq!(
            logs_to_drop(&h, 90, Some((A, UploadFile::AppLog)), 60, 100),
            Ok(vec![])
        );
        assert_eq!(
            logs_to_drop(&h, 90, Some((A, UploadFile::AppLog)), 70, 100),
            Ok(vec![(B, UploadFile::AppLog)])
        );
        assert_eq!(
            logs_to_drop(&h, 90, Some((A, UploadFile::AppLog)), 101, 100),
            Err(NoRoom {
                needed: 101,
                available: 100
            })
        );
    }

    /// Equal times are broken by device and file, so the choice does not depend on the order
    /// the store listed them in.
    #[test]
    fn ties_are_broken_the_same_way_every_time() {
        let h = [
            held(B, UploadFile::AppLog, 10, 7),
            held(A, UploadFile::BootLog, 10, 7),
            held(A, UploadFile::AppLog, 10, 7),
        ];
        let mut reversed = h;
        reversed.reverse();
        for order in [&h, &reversed] {
            assert_eq!(
                logs_to_drop(order, 30, None, 10, 30),
                Ok(vec![(A, UploadFile::AppLog)])
            );
        }
    }
}
