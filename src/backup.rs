//! Backup and restore: one file holding a consistent copy of the database, the PKI, the admin
//! token and the configuration, optionally sealed with a passphrase (PBKDF2-HMAC-SHA256 and
//! AES-256-GCM). A restore checks the whole archive (it decrypts, the database opens at a known
//! schema, the PKI loads, the token is there) before it touches the data directory, and then
//! swaps directories, keeping the replaced one beside it.
//!
//! The archive's last entry, `SHA256SUMS`, lists every other entry's SHA-256, so a damaged
//! unencrypted backup is refused too, naming the damaged file (an encrypted one is already
//! authenticated by AES-GCM). A backup made before it existed is restored without it, so the
//! archive must also end as tar archives do (two zero blocks after its last entry): a file cut
//! short at an entry's boundary would otherwise read as a whole, smaller archive.
//!
//! A backup is made by the running daemon, as the service user, which may write only inside
//! its data directory (the packaged unit has `ProtectSystem=strict` and a `StateDirectory=`),
//! so the database snapshot is staged there. A restore runs with the daemon stopped (it is
//! refused, right before the swap, while a daemon holds the directory's `daemon.lock`) and swaps
//! the data directory itself, so it needs to write beside it: as root on a packaged install
//! (systemd gives the files back to the service user at the next start).

use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::pbkdf2;

use crate::config::Config;
use crate::pki::{self, Pki};
use crate::store::{AuditEntry, Store};

const PLAIN: &[u8] = b"EDGEPROV-BACKUP-1\n";
const SEALED: &[u8] = b"EDGEPROV-BACKUP-1-AES256GCM\n";
const ITERATIONS: u32 = 600_000;
const DB: &str = "edgeprov.redb";
const TOKEN: &str = "admin.token";
const CONFIG: &str = "edgeprov.toml";
/// Lines of `<sha256 hex>  <entry name>`, as `sha256sum` writes them.
const SUMS: &str = "SHA256SUMS";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not an edgeprov backup (unknown header)")]
    NotABackup,
    #[error("this backup is encrypted: give its passphrase")]
    NeedsPassphrase,
    #[error("wrong passphrase, or the backup is damaged")]
    Decrypt,
    #[error("backup archive: {0}")]
    Archive(String),
    #[error(
        "an edgeprov daemon is running on {} (it holds daemon.lock there): stop it first \
         (systemctl stop edgeprov); nothing was changed",
        .0.display()
    )]
    Running(PathBuf),
    #[error(
        "{MAX_ASIDE_PER_SECOND} replaced data directories are already kept as {}…: remove some \
         first; nothing was changed",
        .0.display()
    )]
    AsideTaken(PathBuf),
    #[error("backup lacks {0}")]
    Missing(&'static str),
    #[error("backup entry admin.token is empty or not text: the daemon would refuse it")]
    Token,
    #[error("backup entry {0} is damaged: its SHA-256 is not the one SHA256SUMS lists for it")]
    Damaged(String),
    #[error("backup entry SHA256SUMS line {line}: {reason}")]
    Sums { line: usize, reason: String },
    #[error(
        "this backup was made by a newer edgeprov (database schema {found}; this one knows \
         {known}): restore it with that version or a later one; nothing was changed"
    )]
    Newer { found: u64, known: u64 },
    #[error("the database in the backup is not usable: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the PKI in the backup is not usable: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn key(passphrase: &str, salt: &[u8]) -> LessSafeKey {
    let mut k = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        passphrase.as_bytes(),
        &mut k,
    );
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte AES key"))
}

/// Wraps an archive: as is, or encrypted under a passphrase.
pub fn seal(archive: Vec<u8>, passphrase: Option<&str>) -> Vec<u8> {
    let Some(pass) = passphrase else {
        return [PLAIN, &archive].concat();
    };
    let salt: [u8; 16] = pki::random_bytes();
    let nonce: [u8; 12] = pki::random_bytes();
    let mut data = archive;
    key(pass, &salt)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(SEALED),
            &mut data,
        )
        .expect("AES-GCM sealing of an in-memory buffer");
    [SEALED, &salt, &nonce, &data].concat()
}

/// Unwraps a backup file into its archive.
pub fn unseal(bytes: &[u8], passphrase: Option<&str>) -> Result<Vec<u8>, BackupError> {
    if let Some(archive) = bytes.strip_prefix(PLAIN) {
        return Ok(archive.to_vec());
    }
    let rest = bytes.strip_prefix(SEALED).ok_or(BackupError::NotABackup)?;
    let pass = passphrase.ok_or(BackupError::NeedsPassphrase)?;
    if rest.len() < 28 + 16 {
        return Err(BackupError::Decrypt);
    }
    let (salt, rest) = rest.split_at(16);
    let (nonce, sealed) = rest.split_at(12);
    let mut data = sealed.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| BackupError::Decrypt)?;
    let plain = key(pass, salt)
        .open_in_place(nonce, Aad::from(SEALED), &mut data)
        .map_err(|_| BackupError::Decrypt)?;
    Ok(plain.to_vec())
}

/// Builds the archive: database snapshot, PKI files, token, configuration.
pub fn build(store: &Store, config: &Config) -> Result<Vec<u8>, BackupError> {
    let tmp = config.data_dir.join(format!(
        ".backup-{}",
        crate::phone::credentials::hex(&pki::random_bytes::<6>())
    ));
    crate::fsutil::create_private_dir(&tmp).map_err(io(&tmp))?;
    let db_copy = tmp.join(DB);
    let result = (|| {
        store.snapshot_to(&db_copy)?;
        let mut tar = tar::Builder::new(Vec::new());
        let mut sums = String::new();
        let mut add = |name: &str, bytes: &[u8], mode: u32| {
            sums.push_str(&format!("{}  {name}\n", sha256(bytes)));
            append(&mut tar, name, bytes, mode)
        };
        add(DB, &std::fs::read(&db_copy).map_err(io(&db_copy))?, 0o600)?;
        for (name, bytes) in pki::files_for_backup(&config.pki_dir())? {
            add(&format!("pki/{name}"), &bytes, pki::backup_file_mode(&name))?;
        }
        let token = config.token_path();
        add(TOKEN, &std::fs::read(&token).map_err(io(&token))?, 0o600)?;
        let toml = toml::to_string(config).map_err(|e| BackupError::Archive(e.to_string()))?;
        add(CONFIG, toml.as_bytes(), 0o644)?;
        append(&mut tar, SUMS, sums.as_bytes(), 0o644)?;
        tar.into_inner()
            .map_err(|e| BackupError::Archive(e.to_string()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), BackupError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    h.set_mtime(crate::model::now_unix().max(0) as u64);
    h.set_cksum();
    tar.append_data(&mut h, name, bytes)
        .map_err(|e| BackupError::Archive(e.to_string()))
}

fn sha256(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    crate::phone::credentials::hex(digest.as_ref())
}

/// The entries `SHA256SUMS` lists, by name.
fn parse_sums(text: &[u8]) -> Result<std::collections::BTreeMap<String, String>, BackupError> {
    let text = std::str::from_utf8(text).map_err(|_| BackupError::Sums {
        line: 1,
        reason: "not UTF-8 text".into(),
    })?;
    let mut sums = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: &str| BackupError::Sums {
            line: i + 1,
            reason: reason.into(),
        };
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| bad("expected <sha256>  <name>"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("not a SHA-256 in lower-case hex"));
        }
        if sums.insert(name.to_string(), hash.to_string()).is_some() {
            return Err(bad(&format!("{name:?} is listed twice")));
        }
    }
    Ok(sums)
}

/// A new directory beside `parent`, on its file system, so that it can be renamed into place.
fn tempdir_beside(parent: &Path) -> Result<PathBuf, BackupError> {
    let dir = parent.with_file_name(format!(
        ".{}-restore-{}",
        parent
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("edgeprov"),
        crate::phone::credentials::hex(&pki::random_bytes::<6>())
    ));
    crate::fsutil::create_private_dir(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// What a restore put back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub devices: u64,
    /// Jobs that were scheduled or running when the backup was made, paused by the restore:
    /// a restore often undoes a bulk change, and must not quietly make it again at the next
    /// start. `edgeprov job resume ID` runs one on.
    pub paused_jobs: Vec<crate::jobs::JobId>,
    /// Where the replaced data directory was kept.
    pub previous: Option<PathBuf>,
    /// The configuration the backup was taken with (for comparison; `/etc` is not overwritten).
    pub config_copy: PathBuf,
    /// What became of the box's identity towards the cloud.
    pub cloud_identity: CloudIdentity,
}

/// The cloud identity a restore put back. A backup carries it with the registration, so that a
/// box restored on new hardware goes on syncing as the same appliance, as it keeps the CA its
/// phones' certificates chain to. Restoring one backup on a second box while the first is in
/// service makes two appliances of one identity: the restore says to register the second again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudIdentity {
    /// The backup's box was not registered with a cloud.
    NotRegistered,
    /// The registration and the appliance's key and certificate (checked to belong together).
    Restored,
    /// The registration without the identity (a backup made before backups carried it): sync
    /// fails until the box registers again.
    Missing,
}

/// Restores `archive` into `config.data_dir`, telling `progress` how many bytes of the archive
/// have been unpacked. The daemon must be stopped.
pub fn restore(
    archive: &[u8],
    config: &Config,
    progress: &dyn Fn(u64),
) -> Result<Restored, BackupError> {
    if let Some(parent) = config
        .data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let staging = tempdir_beside(&config.data_dir)?;
    let checked = unpack_and_check(archive, &staging, config, progress);
    let (devices, paused_jobs, cloud_identity) = match checked {
        Ok(found) => found,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // Checked last, right before the swap: a daemon may have started during the check above.
    let refused = match crate::data_dir::in_use(&config.data_dir) {
        Ok(false) => None,
        Ok(true) => Some(BackupError::Running(config.data_dir.clone())),
        Err(e) => Some(io(&config.data_dir)(e)),
    };
    if let Some(e) = refused {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let previous = match swap_in(&staging, &config.data_dir, crate::model::now_unix()) {
        Ok(previous) => previous,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    Ok(Restored {
        devices,
        paused_jobs,
        previous,
        config_copy: config.data_dir.join("restored-edgeprov.toml"),
        cloud_identity,
    })
}

/// Moves the data directory aside (returned) and the checked staging directory into its place.
/// Should the second move fail, the first is undone: a failed restore never leaves the box
/// without a data directory.
fn swap_in(staging: &Path, data_dir: &Path, now: i64) -> Result<Option<PathBuf>, BackupError> {
    if !data_dir.exists() {
        std::fs::rename(staging, data_dir).map_err(io(data_dir))?;
        return Ok(None);
    }
    let aside = aside_name(data_dir, now)?;
    std::fs::rename(data_dir, &aside).map_err(io(data_dir))?;
    if let Err(e) = std::fs::rename(staging, data_dir) {
        std::fs::rename(&aside, data_dir).map_err(io(&aside))?;
        return Err(io(data_dir)(e));
    }
    Ok(Some(aside))
}

/// Most directories set aside in one second that get a name of their own.
const MAX_ASIDE_PER_SECOND: u32 = 1000;

/// A name beside `data_dir` that nothing holds: `NAME.replaced-TIME`, then `-2`, `-3`… A second
/// restore within the same second (a script restoring, checking, restoring another) otherwise
/// met the first one's directory there and failed with "Directory not empty".
fn aside_name(data_dir: &Path, now: i64) -> Result<PathBuf, BackupError> {
    let base = format!(
        "{}.replaced-{now}",
        data_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("edgeprov-data"),
    );
    (1..=MAX_ASIDE_PER_SECOND)
        .map(|n| match n {
            1 => data_dir.with_file_name(&base),
            n => data_dir.with_file_name(format!("{base}-{n}")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| BackupError::AsideTaken(data_dir.with_file_name(base)))
}

fn unpack_and_check(
    archive: &[u8],
    dir: &Path,
    config: &Config,
    progress: &dyn Fn(u64),
) -> Result<(u64, Vec<crate::jobs::JobId>, CloudIdentity), BackupError> {
    let mut tar = tar::Archive::new(archive);
    let entries = tar
        .entries()
        .map_err(|e| BackupError::Archive(e.to_string()))?;
    let mut found = std::collections::BTreeMap::new();
    let mut sums = None;
    // When the backup was made: its database entry's time.
    let mut made_at = None;
    // Where the last entry's data, padded to whole blocks, ends.
    let mut end = 0u64;
    // A file cut inside an entry (a copy stopped part-way) is said to be cut short, as one cut
    // between entries is, rather than in tar's words ("unexpected EOF during skip").
    let len = archive.len() as u64;
    let cut_short = |place: &str| {
        BackupError::Archive(format!(
            "the archive is cut short: it ends inside {place}, not after its last entry as a \
             whole backup does"
        ))
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| match end.saturating_add(512) > len {
            true => cut_short("an entry's header"),
            false => BackupError::Archive(e.to_string()),
        })?;
        if entry.raw_file_position().saturating_add(entry.size()) > len {
            let name = entry.path().map(|p| p.display().to_string());
            return Err(cut_short(&format!(
                "entry {}",
                name.unwrap_or_else(|_| "?".into())
            )));
        }
        end = entry
            .raw_file_position()
            .saturating_add(entry.size().div_ceil(512).saturating_mul(512));
        let name = entry
            .path()
            .map_err(|e| BackupError::Archive(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name == DB {
            made_at = entry.header().mtime().ok();
        }
        let target = match name.as_str() {
            SUMS => None,
            DB | TOKEN => Some(dir.join(&name)),
            CONFIG => Some(dir.join("restored-edgeprov.toml")),
            n if n.strip_prefix("pki/").is_some_and(pki::is_backup_file) => Some(dir.join(n)),
            other => return Err(BackupError::Archive(format!("unexpected entry {other:?}"))),
        };
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = entry
                .read(&mut chunk)
                .map_err(|e| BackupError::Archive(e.to_string()))?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            progress(entry.raw_file_position() + bytes.len() as u64);
        }
        let Some(target) = target else {
            sums = Some(parse_sums(&bytes)?);
            continue;
        };
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        let mode = match name.strip_prefix("pki/") {
            Some(pki_file) => pki::backup_file_mode(pki_file),
            None if name == CONFIG => 0o644,
            None => 0o600,
        };
        crate::fsutil::write_atomic(&target, &bytes, mode).map_err(io(&target))?;
        found.insert(name, sha256(&bytes));
    }
    if !ends_whole(archive, end) {
        return Err(BackupError::Archive(
            "the archive is cut short: it does not end after its last entry as a whole backup \
             does"
                .into(),
        ));
    }
    if let Some(sums) = sums {
        if let Some((name, _)) = found.iter().find(|(n, h)| sums.get(*n) != Some(*h)) {
            return Err(BackupError::Damaged(name.clone()));
        }
        if let Some(name) = sums.keys().find(|n| !found.contains_key(*n)) {
            return Err(BackupError::Archive(format!(
                "{name} is listed in SHA256SUMS but not in the archive"
            )));
        }
    }
    for (what, path) in [
        ("the database", DB),
        ("the admin token", TOKEN),
        ("the CA certificate", "pki/ca.crt"),
        ("the CA key", "pki/ca.key"),
    ] {
        if !dir.join(path).exists() {
            return Err(BackupError::Missing(what));
        }
    }
    let token = dir.join(TOKEN);
    if crate::admin::token::parse(&std::fs::read(&token).map_err(io(&token))?).is_none() {
        return Err(BackupError::Token);
    }
    // Opening an empty file would make a new, empty database and "restore" no devices.
    if std::fs::metadata(dir.join(DB))
        .map_err(io(&dir.join(DB)))?
        .len()
        == 0
    {
        return Err(BackupError::Missing("a database (its entry is empty)"));
    }
    let (devices, paused, registered) = {
        // Said as what it is for a restore: the store's own words name the staging copy,
        // which is removed, as "left as it is", and send the reader to restore a backup.
        let store = Store::open(&dir.join(DB)).map_err(|e| match e {
            crate::store::StoreError::Schema { found, .. } => BackupError::Newer {
                found,
                known: crate::store::SCHEMA_VERSION,
            },
            e => e.into(),
        })?;
        let devices = store.count_devices()?;
        let paused = pause_pending_jobs(&store)?;
        let replacing = config.data_dir.exists();
        store.append_audit(restore_entry(made_at, devices, &paused, replacing))?;
        (devices, paused, store.registration()?.is_some())
    };
    let pki_dir = dir.join("pki");
    Pki::load_or_init(
        &pki_dir,
        &config.pki,
        &config.crl_url(),
        crate::pki::Revocations::none(),
    )?;
    let cloud = match (registered, pki::cloud::has_identity(&pki_dir)) {
        (false, _) => CloudIdentity::NotRegistered,
        (true, true) => {
            // A key that is not the certificate's would fail every sync round after the swap.
            pki::cloud::appliance_identity(&pki_dir)?;
            CloudIdentity::Restored
        }
        (true, false) => CloudIdentity::Missing,
    };
    Ok((devices, paused, cloud))
}

/// The restored database's own record of the restore: it is made with the daemon stopped, so
/// no API request enters it, and the backup's download entry was written after the snapshot
/// it holds; without this the log went on from the backup's time as if nothing had happened.
fn restore_entry(
    made_at: Option<u64>,
    devices: u64,
    paused: &[crate::jobs::JobId],
    replacing: bool,
) -> AuditEntry {
    let uid = nix::unistd::getuid();
    let who = match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    };
    let made = made_at
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "an unknown time".into());
    let paused = match paused {
        [] => String::new(),
        ids => format!(
            "; jobs paused: {}",
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    AuditEntry {
        seq: 0,
        time: crate::model::now_unix(),
        who,
        source: "edgeprov restore".into(),
        method: "RESTORE".into(),
        resource: "data directory".into(),
        status: 200,
        summary: format!(
            "data directory restored from a backup made at {made} ({devices} devices){paused}{}",
            match replacing {
                true => "; the replaced one is kept beside it",
                false => "",
            }
        ),
        changes: serde_json::Value::Null,
    }
}

/// Pauses, in the restored database, every job that would run at the next start.
fn pause_pending_jobs(store: &Store) -> Result<Vec<crate::jobs::JobId>, BackupError> {
    use crate::jobs::{Action, JobState};
    let mut paused = Vec::new();
    for job in store.list_jobs()? {
        if matches!(job.state, JobState::Scheduled | JobState::Running)
            && store.job_action(job.id, Action::Pause)?.is_ok()
        {
            paused.push(job.id);
        }
    }
    Ok(paused)
}

/// Whether the archive goes on, after the last entry's data ending at `end`, with the two zero
/// blocks that end a tar archive.
fn ends_whole(archive: &[u8], end: u64) -> bool {
    usize::try_from(end)
        .ok()
        .and_then(|end| archive.get(end..end.checked_add(1024)?))
        .is_some_and(|marker| marker.iter().all(|&b| b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_refuses_wrong_passphrases() {
        let archive = b"tar bytes".to_vec();
        assert_eq!(unseal(&seal(archive.clone(), None), None).unwrap(), archive);
        let sealed = seal(archive.clone(), Some("correct horse"));
        assert!(!sealed.windows(9).any(|w| w == b"tar bytes"));
        assert_eq!(unseal(&sealed, Some("correct horse")).unwrap(), archive);
        assert!(matches!(
            unseal(&sealed, Some("wrong")),
            Err(BackupError::Decrypt)
        ));
        assert!(matches!(
            unseal(&sealed, None),
            Err(BackupError::NeedsPassphrase)
        ));
        assert!(matches!(
            unseal(b"junk", None),
            Err(BackupError::NotABackup)
        ));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            unseal(&damaged, Some("correct horse")),
            Err(BackupError::Decrypt)
        ));
    }

    const TOKEN_TEXT: &str = "edgeprov-token-0123456789";

    /// A data directory under `dir` (store, PKI, token) and a plain backup of it.
    fn backed_up(dir: &Path) -> (Config, Vec<u8>) {
        let config = Config {
            data_dir: dir.join("data"),
            ..Config::default()
        };
        let store = Store::open(&config.data_dir.join(DB)).unwrap();
        Pki::load_or_init(
            &config.pki_dir(),
            &config.pki,
            &config.crl_url(),
            crate::pki::Revocations::none(),
        )
        .unwrap();
        std::fs::write(config.token_path(), TOKEN_TEXT).unwrap();
        let archive = build(&store, &config).unwrap();
        (config, archive)
    }

    #[test]
    fn a_damaged_plain_backup_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let token = TOKEN_TEXT;
        let at = archive
            .windows(token.len())
            .position(|w| w == token.as_bytes())
            .unwrap();
        let mut damaged = archive.clone();
        damaged[at + token.len() - 1] ^= 1;

        let target = Config {
            data_dir: dir.path().join("restored"),
            ..config.clone()
        };
        std::fs::create_dir_all(&target.data_dir).unwrap();
        std::fs::write(target.data_dir.join("marker"), "still here").unwrap();
        let err = restore(&damaged, &target, &|_| {}).unwrap_err();
        assert!(err.to_string().contains(TOKEN), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "only data and restored: nothing staged or set aside is left"
        );
        assert_eq!(
            std::fs::read_to_string(target.data_dir.join("marker")).unwrap(),
            "still here"
        );
        assert_eq!(restore(&archive, &target, &|_| {}).unwrap().devices, 0);
    }

    /// A restore leaves the files with the modes the daemon gives them: `ca.crt` stays
    /// readable for copying to phones and to the remote CLI's machine, keys and the token do
    /// not. (Every file came back 0600.)
    #[test]
    fn a_restore_keeps_certificates_readable_and_keys_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let target = Config {
            data_dir: dir.path().join("restored"),
            ..config
        };
        restore(&archive, &target, &|_| {}).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let pki = target.pki_dir();
        assert_eq!(mode(&pki.join(pki::CA_CERT)), 0o644);
        assert_eq!(mode(&pki.join(pki::SERVER_CERT)), 0o644);
        assert_eq!(mode(&pki.join(pki::CA_KEY)), 0o600);
        assert_eq!(mode(&pki.join(pki::SERVER_KEY)), 0o600);
        assert_eq!(mode(&target.token_path()), 0o600);
    }

    /// The restored log says that a restore happened, when and from what: it went on from the
    /// backup's time as if nothing had happened (the daemon is stopped, so no request enters
    /// it).
    #[test]
    fn a_restore_is_entered_in_the_restored_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let target = Config {
            data_dir: dir.path().join("restored"),
            ..config
        };
        restore(&archive, &target, &|_| {}).unwrap();
        let store = Store::open(&target.db_path()).unwrap();
        let entries = store.list_audit(10, |e| e.method == "RESTORE").unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let summary = &entries[0].summary;
        assert!(
            summary.starts_with("data directory restored from a backup made at 20"),
            "{summary}"
        );
        assert!(summary.contains("(0 devices)"), "{summary}");
        // Restored where no data directory was (new hardware): nothing was replaced.
        assert!(!summary.contains("replaced"), "{summary}");
        assert!(!entries[0].who.is_empty());
        drop(store);
        restore(&archive, &target, &|_| {}).unwrap();
        let store = Store::open(&target.db_path()).unwrap();
        let entries = store.list_audit(10, |e| e.method == "RESTORE").unwrap();
        assert!(
            entries[0]
                .summary
                .ends_with("; the replaced one is kept beside it"),
            "{entries:?}"
        );
    }

    /// The entries of `archive`, each through `change` (`None` drops it), as a new archive
    /// without `SHA256SUMS`: a backup made before it existed.
    fn rebuilt(archive: &[u8], change: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        for entry in tar::Archive::new(archive).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if name == SUMS {
                continue;
            }
            if let Some(bytes) = change(&name, bytes) {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o600);
                out.append_data(&mut header, &name, bytes.as_slice())
                    .unwrap();
            }
        }
        out.into_inner().unwrap()
    }

    #[test]
    fn a_backup_with_an_empty_database_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let unsummed = rebuilt(&archive, |_, bytes| Some(bytes));
        let empty = rebuilt(&archive, |name, bytes| {
            Some(if name == DB { Vec::new() } else { bytes })
        });

        std::fs::write(config.data_dir.join("marker"), "still here").unwrap();
        let err = restore(&empty, &config, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
        assert_eq!(
            std::fs::read_to_string(config.data_dir.join("marker")).unwrap(),
            "still here"
        );
        assert_eq!(restore(&unsummed, &config, &|_| {}).unwrap().devices, 0);
    }

    /// Cut at an entry's boundary, an archive without `SHA256SUMS` (as before it existed) or
    /// without its later entries still reads as a whole one; the missing end marks it.
    #[test]
    fn a_backup_cut_short_at_an_entry_boundary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let unsummed = rebuilt(&archive, |_, bytes| Some(bytes));
        std::fs::write(config.data_dir.join("marker"), "still here").unwrap();
        for whole in [&archive, &unsummed] {
            let cut_at = tar::Archive::new(whole.as_slice())
                .entries()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.path().unwrap().to_str() == Some(CONFIG))
                .unwrap()
                .raw_header_position() as usize;
            let err = restore(&whole[..cut_at], &config, &|_| {}).unwrap_err();
            assert!(err.to_string().contains("cut short"), "{err}");
            assert_eq!(
                std::fs::read_to_string(config.data_dir.join("marker")).unwrap(),
                "still here"
            );
        }
    }

    /// Cut inside an entry's data or its header (a copy stopped part-way), an archive is
    /// refused as cut short, naming where, and the data directory is left as it was.
    #[test]
    fn a_backup_cut_inside_an_entry_is_refused_as_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        std::fs::write(config.data_dir.join("marker"), "still here").unwrap();
        let db = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some(DB))
            .map(|e| (e.raw_header_position(), e.raw_file_position(), e.size()))
            .unwrap();
        let (header, data, size) = (db.0 as usize, db.1 as usize, db.2 as usize);
        for (cut_at, names) in [
            (data + size / 2, format!("entry {DB}")),
            (header + 100, "an entry's header".to_string()),
        ] {
            let err = restore(&archive[..cut_at], &config, &|_| {}).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("cut short") && text.contains(&names),
                "{cut_at}: {text}"
            );
            assert_eq!(
                std::fs::read_to_string(config.data_dir.join("marker")).unwrap(),
                "still here"
            );
        }
    }

    /// The daemon refuses an empty token file; a backup made before `SHA256SUMS` existed may
    /// carry one, and is refused before anything is replaced.
    #[test]
    fn a_backup_whose_token_the_daemon_would_refuse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let no_token = rebuilt(&archive, |name, bytes| {
            Some(if name == TOKEN {
                b" \n".to_vec()
            } else {
                bytes
            })
        });
        std::fs::write(config.data_dir.join("marker"), "still here").unwrap();
        let err = restore(&no_token, &config, &|_| {}).unwrap_err();
        assert!(err.to_string().contains(TOKEN), "{err}");
        assert_eq!(
            std::fs::read_to_string(config.data_dir.join("marker")).unwrap(),
            "still here"
        );
    }

    #[test]
    fn a_failed_swap_puts_the_data_directory_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("marker"), "still here").unwrap();
        let err = swap_in(&dir.path().join("no-such-staging"), &data, 1).unwrap_err();
        assert!(err.to_string().contains("data"), "{err}");
        assert_eq!(
            std::fs::read_to_string(data.join("marker")).unwrap(),
            "still here"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing set aside"
        );
    }

    /// Two restores within one second each keep the directory they replace, under a name of its
    /// own: the second one failed with "Directory not empty" as it met the first's.
    #[test]
    fn two_swaps_in_one_second_keep_both_replaced_directories() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("marker"), "first").unwrap();
        let mut kept = Vec::new();
        for next in ["second", "third"] {
            let staging = dir.path().join("staging");
            std::fs::create_dir_all(&staging).unwrap();
            std::fs::write(staging.join("marker"), next).unwrap();
            kept.push(swap_in(&staging, &data, 1_800_000_000).unwrap().unwrap());
            assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), next);
        }
        assert_ne!(kept[0], kept[1]);
        let markers: Vec<String> = kept
            .iter()
            .map(|k| std::fs::read_to_string(k.join("marker")).unwrap())
            .collect();
        assert_eq!(markers, ["first", "second"]);
        assert!(
            kept[1]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("data.replaced-1800000000"),
            "{kept:?}"
        );
    }

    /// A backup from a newer edgeprov (a database schema this one does not know) is refused
    /// saying so, and the data directory is left as it was. It was refused in the store's
    /// words, which named the restore's staging copy (removed since) as "left as it is".
    #[test]
    fn a_backup_from_a_newer_version_is_refused_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let (config, archive) = backed_up(dir.path());
        let newer = rebuilt(&archive, |name, bytes| {
            if name != DB {
                return Some(bytes);
            }
            let path = dir.path().join("newer.redb");
            std::fs::write(&path, bytes).unwrap();
            let db = redb::Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(crate::store::META)
                .unwrap()
                .insert("schema_version", crate::store::SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
            drop(db);
            Some(std::fs::read(&path).unwrap())
        });
        std::fs::write(config.data_dir.join("marker"), "still here").unwrap();
        let err = restore(&newer, &config, &|_| {}).unwrap_err().to_string();
        assert!(
            err.contains("newer edgeprov")
                && err.contains(&format!("schema {}", crate::store::SCHEMA_VERSION + 1))
                && !err.contains("-restore-"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(config.data_dir.join("marker")).unwrap(),
            "still here"
        );
    }
}
