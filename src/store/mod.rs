//! The redb database: the only module that opens it. Records are JSON in byte-valued tables so a
//! field can be added without migrating; a schema-version key guards incompatible changes.
//!
//! redb transactions are synchronous: async callers run these methods under `spawn_blocking`.
//! Every write commits with redb's default immediate durability, so a call that returned `Ok`
//! survives `kill -9` and power loss.

mod alarms;
mod audit;
mod dead_letters;
mod device_certs;
mod devices;
mod dns_records;
mod error;
mod files;
mod firmware;
mod handle;
mod history;
mod jobs;
mod layers;
mod leases;
mod open;
mod pending_enrolments;
mod prefs;
mod recorder;
mod schema;
mod site_names;
mod sync;
mod tokens;
mod uploads;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

pub use audit::AuditEntry;
pub use dead_letters::{DeadLetter, DeadLetters};
pub use device_certs::RevokeWhich;
pub use devices::{DeletedSite, ImportTx};
pub use dns_records::DnsRecordEntry;
pub use error::StoreError;
pub use files::{MAX_STATIC_FILE, StaticFile, StaticIndex};
pub use firmware::ReleaseOrigin;
pub use history::{CheckinRecord, Pruning};
pub use layers::{CommonLayers, DeviceContext};
pub use recorder::{Recorder, RecorderEvent};
pub use schema::UpgradeProgress;
pub(crate) use sync::{CLOUD_FIRMWARE, CLOUD_REFUSED, CLOUD_UNREAD};
pub use sync::{OutboxDepth, Pending, PullUpdate, Registration};
pub use uploads::{NotStored, Stored, Upload};

/// Bumped when a stored shape changes incompatibly; a newer file is refused, not misread.
/// 2: check-ins are indexed by device (`checkins_by_mac`). A schema-1 file is indexed when
/// opened, in chunks that survive a restart (`schema.rs`); an edgeprov that knows only 1
/// refuses a schema-2 file, since it would add check-ins without their index rows and later
/// answers from the index would miss them.
pub const SCHEMA_VERSION: u64 = 2;

/// redb's page cache (its default is 1 GiB). Pages stay cached once read or written, so with
/// the default a boot storm's check-ins (every device record rewritten, a history row per
/// file) grew the daemon by tens of MB; past this, pages come from the OS page cache.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Outbox bound until the configuration says otherwise.
const DEFAULT_OUTBOX_MAX: u64 = 10_000;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
pub(crate) const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
pub(crate) const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
pub(crate) const ALARMS: TableDefinition<&str, &[u8]> = TableDefinition::new("alarms");
/// Key: sequence number; value: an [`AuditEntry`].
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Key `SITE|name` (SITE empty for box-wide files), value the file's bytes.
pub(crate) const STATIC_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("static_files");
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

/// A cheap, cloneable handle; the database closes when the last one is dropped.
#[derive(Clone)]
pub struct Store {
    /// The open file, opened again after a write failed on I/O (`handle.rs`).
    db: Arc<handle::DbHandle>,
    /// The database file, for consistent snapshots (backups).
    path: Arc<std::path::PathBuf>,
    outbox: Arc<OutboxSettings>,
    /// Counts committed changes; see [`Store::generation`].
    generation: Arc<AtomicU64>,
    devices: Arc<DeviceCache>,
    /// See [`Store::cloud_catalogue_changes`].
    cloud_catalogue: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The decoded inventory for listings. Decoding 100,000 JSON records takes about 200 ms, too
/// slow for an API list; so the decoded list is kept until the devices table changes. Every
/// write to that table commits through [`Store::commit_devices`], which moves the generation
/// on, or [`Store::commit_checkins`], which also updates the copy; a listing whose generation
/// is behind reads afresh. The copy costs about 1 KB per device
/// while it is kept; it is dropped once unused for a while ([`Store::release_idle_caches`]).
#[derive(Default)]
struct DeviceCache {
    generation: AtomicU64,
    cached: std::sync::Mutex<Option<CachedDevices>>,
}

struct CachedDevices {
    generation: u64,
    devices: Arc<[crate::model::Device]>,
    used: std::time::Instant,
}

/// Whether events are kept for the cloud (only once the box is registered: a box without a
/// cloud must not fill an outbox nobody drains) and how many.
struct OutboxSettings {
    enabled: AtomicBool,
    max: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the database file and checks its schema version; a file of an
    /// older schema is moved to this one first.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_reporting(path, |_| ControlFlow::Continue(()))
    }

    /// [`Store::open`], telling `report` how far moving an older file to this schema has come:
    /// before it starts and after every chunk of it commits (see `schema.rs`), so that a
    /// caller can show that a long start is progressing. A file already on this schema reports
    /// nothing. `report` answering [`ControlFlow::Break`] stops the move after the chunk just
    /// committed ([`StoreError::UpgradeStopped`]); the next open goes on from there.
    pub fn open_reporting(
        path: &Path,
        report: impl FnMut(UpgradeProgress) -> ControlFlow<()>,
    ) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsutil::create_private_dir(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = open::open(path, false)?;
        let store = Store::of(db, path);
        store.init_schema()?;
        store.upgrade(schema::CHUNK, report)?;
        store.set_outbox_enabled(store.registration()?.is_some());
        Ok(store)
    }

    /// Rises after every committed change except those no rendered file depends on (see
    /// [`Store::begin_uncounted_write`]: the recorder's batches, DHCP leases…). It rises after
    /// the commit, so whoever reads generation `g` and then the database sees every change
    /// counted up to `g`: what was derived from the data after reading `g` may be reused for
    /// as long as the generation is still `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The open database; see [`handle::DbHandle::get`].
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db.get()
    }

    /// A write transaction that counts in [`Store::generation`] when it commits.
    fn begin_write(&self) -> Result<CountedWrite<'_>, StoreError> {
        let db = self.db()?;
        Ok(CountedWrite {
            tx: db.begin_write()?,
            generation: Some(&self.generation),
            handle: &self.db,
            db,
        })
    }

    /// A write transaction that does not count in [`Store::generation`]: only for writes no
    /// rendered file depends on — the recorder's batches (check-ins, alarms, their history and
    /// cloud events), delivering cloud events, DHCP leases, a token's last use, phones' uploads
    /// (which the phone path reads from the store, not through a cache), and pruning the
    /// check-in history and the audit log.
    fn begin_uncounted_write(&self) -> Result<CountedWrite<'_>, StoreError> {
        let db = self.db()?;
        Ok(CountedWrite {
            tx: db.begin_write()?,
            generation: None,
            handle: &self.db,
            db,
        })
    }

    /// Commits a transaction that wrote the devices table, and marks decoded copies stale.
    fn commit_devices(&self, tx: CountedWrite<'_>) -> Result<(), StoreError> {
        tx.commit()?;
        self.devices.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Commits a recorder batch that rewrote devices' latest check-ins, and updates a decoded
    /// copy in place when it is otherwise current and no listing holds it. A boot storm
    /// commits about ten batches a second: marking the copy stale on each would make every
    /// listing during a storm decode the whole inventory again (~200 ms at 100,000 devices).
    fn commit_checkins(
        &self,
        tx: CountedWrite<'_>,
        checkins: &[(crate::model::Mac, crate::model::CheckIn)],
    ) -> Result<(), StoreError> {
        tx.commit()?;
        // Under the lock, so a listing sees either the old generation and the old copy, or
        // the new generation and the patched copy.
        let mut cached = self
            .devices
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let before = self.devices.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(c) = cached.as_mut()
            && c.generation == before
            && let Some(devices) = Arc::get_mut(&mut c.devices)
        {
            // The copy is in key order, which is MAC order.
            for (mac, checkin) in checkins {
                if let Ok(i) = devices.binary_search_by(|d| d.mac.cmp(mac)) {
                    devices[i].checkin = Some(checkin.clone());
                }
            }
            c.generation = before + 1;
        }
        Ok(())
    }

    /// Every device, decoded once per change of the table (see [`DeviceCache`]).
    pub fn devices_snapshot(&self) -> Result<Arc<[crate::model::Device]>, StoreError> {
        // Read before the snapshot: a write that lands meanwhile leaves this entry stale, and
        // the next call reads again.
        let generation = self.devices.generation.load(Ordering::SeqCst);
        let mut cached = self
            .devices
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_mut()
            && c.generation == generation
        {
            c.used = std::time::Instant::now();
            return Ok(c.devices.clone());
        }
        let devices: Arc<[crate::model::Device]> = self.list_devices()?.into();
        *cached = Some(CachedDevices {
            generation,
            devices: devices.clone(),
            used: std::time::Instant::now(),
        });
        Ok(devices)
    }

    /// Drops decoded copies nobody has used for `idle`.
    pub fn release_idle_caches(&self, idle: std::time::Duration) {
        let mut cached = self
            .devices
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_some_and(|c| c.used.elapsed() >= idle) {
            *cached = None;
        }
    }

    /// Bounds the outbox (`cloud.outbox_max`).
    pub fn set_outbox_max(&self, max: u64) {
        self.outbox.max.store(max.max(1), Ordering::Relaxed);
    }

    fn set_outbox_enabled(&self, on: bool) {
        self.outbox.enabled.store(on, Ordering::Relaxed);
    }

    /// The outbox bound when events are being kept, else `None`.
    fn outbox_bound(&self) -> Option<u64> {
        self.outbox
            .enabled
            .load(Ordering::Relaxed)
            .then(|| self.outbox.max.load(Ordering::Relaxed))
    }

    /// Copies the database file as of the last commit. Holding a write transaction keeps every
    /// writer out while the file is copied, so the copy is one consistent commit; the
    /// transaction is then abandoned, changing nothing.
    pub fn snapshot_to(&self, dest: &Path) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        let copied = std::fs::copy(self.path.as_path(), dest).map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            source,
        });
        tx.abort()?;
        copied.map(drop)
    }

    /// Opens an existing database to look at it (`edgeprov doctor`) without moving it to this
    /// version's schema: an older daemon must still be able to start on it. Only reads are
    /// meant (but a file others may read is made its owner's, as every open does:
    /// `open::keep_private`); a schema newer than this edgeprov's is refused, and so is a file any of whose
    /// pages fails its checksum (which the daemon's own start does not read for).
    pub fn inspect(path: &Path) -> Result<Store, StoreError> {
        let db = open::open(path, true)?;
        let store = Store::of(db, path);
        match store.schema_version()? {
            found if found > SCHEMA_VERSION => Err(StoreError::Schema {
                path: path.to_path_buf(),
                found,
            }),
            _ => Ok(store),
        }
    }

    fn of(db: Database, path: &Path) -> Store {
        Store {
            db: Arc::new(handle::DbHandle::new(db, path)),
            path: Arc::new(path.to_path_buf()),
            outbox: Arc::new(OutboxSettings {
                enabled: AtomicBool::new(false),
                max: AtomicU64::new(DEFAULT_OUTBOX_MAX),
            }),
            generation: Arc::new(AtomicU64::new(0)),
            devices: Arc::default(),
            cloud_catalogue: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        let meta = tx.open_table(META)?;
        Ok(meta.get("schema_version")?.map(|v| v.value()).unwrap_or(0))
    }
}

/// A write transaction whose commit raises the store's generation (unless it is the
/// recorder's).
struct CountedWrite<'a> {
    tx: WriteTransaction,
    generation: Option<&'a AtomicU64>,
    /// Told when the commit fails on I/O, so that the next use opens the file again.
    handle: &'a handle::DbHandle,
    db: Arc<Database>,
}

impl CountedWrite<'_> {
    fn commit(self) -> Result<(), redb::CommitError> {
        if let Err(e) = self.tx.commit() {
            if handle::latches(&e) {
                self.handle.failed_on_io(&self.db);
            }
            return Err(e);
        }
        if let Some(g) = self.generation {
            g.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    fn abort(self) -> Result<(), redb::StorageError> {
        self.tx.abort()
    }
}

impl std::ops::Deref for CountedWrite<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.tx
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("model types serialize to JSON without failing")
}

/// Reads every record of a table, in key order.
fn read_all<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push(decode(name, k.value(), v.value())?);
    }
    Ok(out)
}
