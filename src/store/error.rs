use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The file is locked by another open of it: at start-up another process's; when opening
    /// it again after a failed write, a transaction begun on the failed handle that has not
    /// ended yet (redb keeps the file, and its lock, until the last one ends).
    #[error("cannot open database {path}: it is still open (locked) elsewhere")]
    AlreadyOpen { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: database schema version {found} is newer than this edgeprov knows ({}): a \
         newer edgeprov wrote it. The file is left as it is: install that version again, or \
         restore a backup this version took (`edgeprov restore FILE`)",
        super::SCHEMA_VERSION
    )]
    Schema { path: PathBuf, found: u64 },
    /// The file fails its checksums, is cut short or empty: refused, and left as it is.
    #[error(
        "the database {path} is damaged: {why}. edgeprov leaves it as it is and does not start \
         on it: stop edgeprov, keep a copy of the file, and restore the last backup \
         (`edgeprov restore FILE`); or move the file aside to start with an empty store"
    )]
    Damaged { path: PathBuf, why: String },
    #[error(
        "asked to stop while upgrading the database: {done} of {total} check-ins indexed by \
         device; the next start goes on from there"
    )]
    UpgradeStopped { done: u64, total: u64 },
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A renewal's signer certificate was revoked between the check that let the renewal
    /// through and the recording of the certificate it was granted.
    #[error("certificate {serial} of {mac}, which signed the renewal, has been revoked")]
    SignerRevoked {
        serial: String,
        mac: crate::model::Mac,
    },
    /// All of a device's certificates were revoked between the issuing of one and its
    /// recording: it is revoked by its date, so it is not recorded.
    #[error(
        "certificate {serial} of {mac} was issued before all of the device's certificates were \
         revoked, so it is not recorded"
    )]
    RevokedMeanwhile {
        serial: String,
        mac: crate::model::Mac,
    },
    /// A write failed on I/O (a full disk), and opening the file again has failed so far.
    #[error(
        "the database {path} cannot be used since a write to it failed, and opening it again \
         failed: {message}"
    )]
    Unwritable {
        path: PathBuf,
        message: String,
        /// The open failed for want of space.
        disk_full: bool,
        /// The open failed because a transaction of the failed handle still holds the file:
        /// it passes when that transaction ends.
        held: bool,
    },
    #[error("stored record {table}/{key} cannot be read: {message}")]
    Corrupt {
        table: &'static str,
        key: String,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    /// Refused because something still depends on the record.
    #[error("{0}")]
    InUse(String),
    /// Refused because the write was prepared under what has since been replaced: a page
    /// pulled from the cloud the box was registered with before it registered again.
    #[error("{0}")]
    Superseded(String),
    /// A new model layer's name differs from a stored one's only by case, which 1600 and early
    /// 9600 phones do not tell apart when they compare `$MODEL4`.
    #[error(
        "{new}: differs only by case from the existing layer {existing}, and 1600 and early 9600 \
         phones compare $MODEL4 without regard to case, so both would reach one section of \
         46xxsettings.txt; set the parameters in {existing}"
    )]
    CaseClash { new: String, existing: String },
    /// A new model layer names a model a stored layer names already, spelled another way
    /// (`SIP-T54W` beside `T54W`): one model, as for firmware, so a device of either spelling
    /// would get both layers.
    #[error(
        "{new}: is the same model as the existing layer {existing} (models compare without case, \
         and a Yealink model with or without SIP-, as for firmware); set the parameters in \
         {existing}"
    )]
    SameModel { new: String, existing: String },
    /// A firmware policy pins a version no release in the catalogue serves for the model.
    #[error("{model}: no release of version {version} for this model in the catalogue")]
    NoPinnedRelease { model: String, version: String },
    /// A site no record and no device names, given where only an existing site may be.
    #[error(
        "{field}: there is no site {site:?}{}; create it first (`edgeprov site create {site}`, \
         or POST /api/v1/sites), or name an existing one",
        closest.as_ref().map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default()
    )]
    UnknownSite {
        field: String,
        site: String,
        /// The existing site it most likely meant.
        closest: Option<String>,
    },
}

impl StoreError {
    /// Whether the store failed for want of space on its file system (ENOSPC, or EDQUOT: over
    /// the user's quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(redb::Error::Io(e)) | StoreError::Io { source: e, .. } => {
                is_disk_full(e)
            }
            StoreError::Unwritable { disk_full, .. } => *disk_full,
            _ => false,
        }
    }

    /// Whether the store cannot serve this request only for the moment, because its handle is
    /// being replaced after a write failed on I/O: a use of the failed handle that began before
    /// (redb's "Previous I/O error occurred", or "Database closed" once the handle was closed
    /// under a read still running on it), or an open again that found the file still held by
    /// such a use. Asking again in a second succeeds, unless the disk is still full.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Db(redb::Error::PreviousIo | redb::Error::DatabaseClosed)
                | StoreError::Unwritable { held: true, .. }
        )
    }
}

/// ENOSPC or EDQUOT.
pub(super) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// redb has one error type per operation; they all fold into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
