//! The zone being served and how it changes: built from config, store and listener addresses at
//! start, rebuilt whole when the admin API changes a record, swapped behind a lock that readers
//! hold only to clone an `Arc`. The UDP loop checks a generation counter per packet and takes a
//! new snapshot only when it moved.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use hickory_proto::rr::{Name, Record};

use super::DnsConfig;
use super::fast::FastPath;
use super::zone::{Provisioning, Zone};
use crate::store::{Store, StoreError};

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
            }),
        };
        zone.reload()?;
        Ok(zone)
    }

    /// Rebuilds from the store (blocking). Stored records that no longer fit the zone (the
    /// domain was changed in the config) are skipped with a warning, not fatal.
    pub fn reload(&self) -> Result<(), StoreError> {
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
