//! The zone being served and how it changes: built from config, store and listener addresses at
//! start, rebuilt whole when the admin API changes a record, swapped behind a lock that readers
//! hold only to clone an `Arc`. The UDP loop checks a generation counter per packet and takes a
//! new snapshot only when it moved.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use hickory_proto::rr::{Name, Record};

use super::DnsConfig;
use super::fast::FastPath;
use super::record::{RecordError, RecordSpec};
use super::zone::{Provisioning, Zone};
use crate::store::{DnsRecordEntry, Store, StoreError};

/// Why [`DnsZone::add`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("{0}")]
    Invalid(RecordError),
    /// Valid alone, but not next to what is at its name (a CNAME beside other data).
    #[error("{0}")]
    Conflict(RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One immutable snapshot: the zone and its pre-encoded hot answers.
pub struct Served {
    pub zone: Zone,
    pub fast: FastPath,
}

struct Inner {
    provisioning: Provisioning,
    config_records: Vec<Record>,
    ttl: u32,
    negative_ttl: u32,
    recursion: bool,
    store: Store,
    current: RwLock<Arc<Served>>,
    generation: AtomicU64,
    serial: AtomicU32,
    /// Held from listing the records to swapping the zone: two admin writes reloading at once
    /// must not swap the older listing in last and leave an acknowledged record unserved.
    reloading: Mutex<()>,
}

/// A cheap, cloneable handle shared by the responder and the admin API.
#[derive(Clone)]
pub struct DnsZone {
    inner: Arc<Inner>,
}

impl DnsZone {
    /// Builds the first snapshot (reads the store: call from a blocking context). `dns` has been
    /// validated, so its records parse.
    pub fn load(
        store: Store,
        dns: &DnsConfig,
        provisioning: Provisioning,
    ) -> Result<DnsZone, StoreError> {
        let config_records = dns
            .record
            .iter()
            .filter_map(|r| r.to_record(&provisioning.origin).ok())
            .collect();
        let placeholder = Served {
            zone: Zone::build(provisioning.clone(), &[], dns.ttl, dns.negative_ttl, 0),
            fast: FastPath::default(),
        };
        let zone = DnsZone {
            inner: Arc::new(Inner {
                provisioning,
                config_records,
                ttl: dns.ttl,
                negative_ttl: dns.negative_ttl,
                recursion: !dns.upstream.is_empty(),
                store,
                current: RwLock::new(Arc::new(placeholder)),
                generation: AtomicU64::new(0),
                serial: AtomicU32::new(0),
                reloading: Mutex::new(()),
            }),
        };
        zone.reload()?;
        Ok(zone)
    }

    /// Stores `spec` (valid, inside the zone) and serves it, unless it would put a CNAME next
    /// to other data at its name; then nothing is stored. Checked and stored under the reload
    /// lock, so two writes at once cannot each pass the check against a zone without the other.
    pub fn add(&self, spec: &RecordSpec, now: i64) -> Result<DnsRecordEntry, AddError> {
        let record = spec.to_record(self.origin()).map_err(AddError::Invalid)?;
        let _one_at_a_time = self.lock();
        if let Some(message) = self.current().zone.conflict(&record) {
            return Err(AddError::Conflict(RecordError {
                field: "name",
                message,
            }));
        }
        let entry = self.inner.store.add_dns_record(spec, now)?;
        self.rebuild()?;
        Ok(entry)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner
            .reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Rebuilds from the store (blocking). Stored records that no longer fit the zone (the
    /// domain was changed in the config) are skipped with a warning, not fatal.
    pub fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.lock();
        self.rebuild()
    }

    /// `reload` with the lock held.
    fn rebuild(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut records = inner.config_records.clone();
        for entry in inner.store.list_dns_records()? {
            match entry.spec().to_record(&inner.provisioning.origin) {
                Ok(r) => records.push(r),
                Err(e) => tracing::warn!(id = entry.id, error = %e, "stored DNS record skipped"),
            }
        }
        let now = u32::try_from(crate::model::now_unix()).unwrap_or(u32::MAX);
        let serial = inner
            .serial
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |prev| {
                Some(now.max(prev.wrapping_add(1)))
            })
            .map_or(now, |prev| now.max(prev.wrapping_add(1)));
        let zone = Zone::build(
            inner.provisioning.clone(),
            &records,
            inner.ttl,
            inner.negative_ttl,
            serial,
        );
        for (record, why) in &zone.skipped {
            tracing::warn!(name = %record.name, kind = %record.record_type(), "DNS record not served: {why}");
        }
        let fast = FastPath::build(&zone, inner.recursion);
        let served = Arc::new(Served { zone, fast });
        *inner.current.write().unwrap_or_else(|p| p.into_inner()) = served;
        inner.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub fn current(&self) -> Arc<Served> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Moves on every reload.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub fn origin(&self) -> &Name {
        &self.inner.provisioning.origin
    }

    pub fn recursion(&self) -> bool {
        self.inner.recursion
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{LowerName, RecordType};

    /// Admin writes that reload at the same moment end with every acknowledged record served.
    #[test]
    fn concurrent_reloads_serve_every_acknowledged_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let dns = DnsConfig::default();
        let names = ["prov.prov.example.lan".to_string()];
        let https = "127.0.0.1:8443".parse().unwrap();
        let provisioning = Provisioning::derive(&dns, &names, https, None).unwrap();
        let zone = DnsZone::load(store.clone(), &dns, provisioning).unwrap();
        for round in 0..60 {
            let added: Vec<String> = std::thread::scope(|s| {
                let writers: Vec<_> = (0..3)
                    .map(|t| {
                        let (zone, store) = (&zone, &store);
                        s.spawn(move || {
                            let name = format!("r{round}-{t}.prov.example.lan");
                            let spec = RecordSpec {
                                name: name.clone(),
                                rtype: "A".into(),
                                value: "10.0.0.7".into(),
                                ttl: 60,
                            };
                            store.add_dns_record(&spec, 0).unwrap();
                            zone.reload().unwrap();
                            name
                        })
                    })
                    .collect();
                writers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            let served = zone.current();
            for name in added {
                let owner = LowerName::from(Name::from_ascii(format!("{name}.")).unwrap());
                assert!(
                    served.zone.keys().any(|k| k == (&owner, RecordType::A)),
                    "round {round}: {name} was acknowledged but is not served"
                );
            }
        }
    }
}
