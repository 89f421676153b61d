//! Devices and sites.

use std::collections::BTreeSet;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::site_names::{site_names, unknown_site};
use super::{DEVICES, LAYERS, SITES, Store, StoreError, decode, encode, read_all};
use crate::firmware::ScopePolicies;
use crate::model::{ApiToken, Device, Mac, Site, now_unix};

/// What deleting a site removed with it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedSite {
    pub site: Site,
    /// Its firmware policies as stored; empty when it had none.
    pub firmware_policies: ScopePolicies,
    /// The names of its static files; empty when it had none.
    pub static_files: Vec<String>,
    /// The tokens that held it, as they are now without it; empty when none did.
    pub tokens: Vec<ApiToken>,
}

/// A device of the site, if any, read inside `tx`.
fn device_of_site(tx: &WriteTransaction, site: &str) -> Result<Option<Mac>, StoreError> {
    for row in tx.open_table(DEVICES)?.iter()? {
        let (k, v) = row?;
        let d: Device = decode("devices", k.value(), v.value())?;
        if d.site == site {
            return Ok(Some(d.mac));
        }
    }
    Ok(None)
}

/// Forgets, in `tx`, everything kept for device `mac` (display form) besides its inventory
/// record: what the cloud kept here about it, the SCEP request held for its approval, and what
/// it uploaded. Both ways a device is deleted (one by one, and by a bulk job) call this one
/// helper, so that neither leaves a part behind (a held request left behind would still be
/// listed for approval, and would answer the polls of the MAC once added back).
pub(super) fn forget_device_data(tx: &WriteTransaction, mac: &str) -> Result<(), StoreError> {
    super::sync::forget_cloud_device(tx, mac)?;
    tx.open_table(super::pending_enrolments::PENDING_ENROLMENTS)?
        .remove(mac)?;
    super::uploads::forget_device_uploads(tx, mac)
}

/// Whether the site exists, read inside `tx`: it has a record, or a device names it (as the
/// sites API lists it).
pub(super) fn site_exists(tx: &WriteTransaction, site: &str) -> Result<bool, StoreError> {
    Ok(tx.open_table(SITES)?.get(site)?.is_some() || device_of_site(tx, site)?.is_some())
}

/// Refuses a device's `site` that does not exist, read inside `tx`; no site at all is allowed.
fn require_site(tx: &WriteTransaction, site: &str) -> Result<(), StoreError> {
    if site.is_empty() || tx.open_table(SITES)?.get(site)?.is_some() {
        return Ok(());
    }
    let names = site_names(&tx.open_table(SITES)?, &tx.open_table(DEVICES)?)?;
    match names.contains(site) {
        true => Ok(()),
        false => Err(unknown_site("site", site, &names)),
    }
}

impl Store {
    pub fn get_device(&self, mac: Mac) -> Result<Option<Device>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(DEVICES)?;
        let key = mac.to_string();
        let found = table.get(key.as_str())?;
        found
            .map(|v| decode("devices", &key, v.value()))
            .transpose()
    }

    /// The site of a device in the inventory ("" when it has none), without reading the rest
    /// of its record: what the phone path needs to choose the common files of a requester.
    pub fn device_site(&self, mac: Mac) -> Result<Option<String>, StoreError> {
        #[derive(serde::Deserialize)]
        struct SiteOnly {
            #[serde(default)]
            site: String,
        }
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(DEVICES)?;
        let key = mac.to_string();
        let found = table.get(key.as_str())?;
        found
            .map(|v| decode::<SiteOnly>("devices", &key, v.value()).map(|d| d.site))
            .transpose()
    }

    pub fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_all(&tx.open_table(DEVICES)?, "devices")
    }

    pub fn count_devices(&self) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        Ok(tx.open_table(DEVICES)?.len()?)
    }

    /// Adds a new device; an existing MAC is a conflict, never silently overwritten. Its site
    /// must exist ([`super::site_names`]): a new device does not create one.
    pub fn create_device(&self, mut device: Device) -> Result<Device, StoreError> {
        let tx = self.begin_write()?;
        require_site(&tx, &device.site)?;
        {
            let mut table = tx.open_table(DEVICES)?;
            let key = device.mac.to_string();
            if table.get(key.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!("device {key}")));
            }
            let now = now_unix();
            device.created = now;
            device.updated = now;
            table.insert(key.as_str(), encode(&device).as_slice())?;
        }
        self.commit_devices(tx)?;
        Ok(device)
    }

    /// Changes a device inside one transaction. `change` may refuse (its error is returned and
    /// nothing is written); a change of site must name one that exists.
    pub fn update_device<E>(
        &self,
        mac: Mac,
        change: impl FnOnce(&mut Device) -> Result<(), E>,
    ) -> Result<Result<Device, E>, StoreError> {
        let tx = self.begin_write()?;
        let key = mac.to_string();
        let mut device: Device = match tx.open_table(DEVICES)?.get(key.as_str())? {
            Some(v) => decode("devices", &key, v.value())?,
            None => return Err(StoreError::NotFound(format!("device {key}"))),
        };
        let before = device.clone();
        if let Err(e) = change(&mut device) {
            return Ok(Err(e));
        }
        device.mac = mac;
        // A change that changes nothing (an unset of a name the device lacks) writes nothing:
        // neither `updated` nor the store's generation moves, as an import's unchanged row.
        if device == before {
            return Ok(Ok(device));
        }
        if device.site != before.site {
            require_site(&tx, &device.site)?;
        }
        device.updated = now_unix();
        tx.open_table(DEVICES)?
            .insert(key.as_str(), encode(&device).as_slice())?;
        let updated = device;
        self.commit_devices(tx)?;
        Ok(Ok(updated))
    }

    /// Runs an import in one write transaction, all or nothing: `run` reads and writes devices
    /// through the [`ImportTx`] and says whether to commit (not for a dry run or a bad row); an
    /// error of its own leaves everything as it was, too. Since each row is checked against the
    /// device as this transaction sees it, no other writer can change a device between the
    /// check and the write.
    pub fn import_devices<T, E: From<StoreError>>(
        &self,
        run: impl FnOnce(&mut ImportTx<'_>) -> Result<(T, bool), E>,
    ) -> Result<T, E> {
        let tx = self.begin_write()?;
        let (out, commit) = {
            let table = tx.open_table(DEVICES).map_err(StoreError::from)?;
            let sites = tx.open_table(SITES).map_err(StoreError::from)?;
            let site_names = site_names(&sites, &table)?;
            run(&mut ImportTx {
                table,
                sites,
                site_names,
                now: now_unix(),
            })?
        };
        if commit {
            self.commit_devices(tx)?;
        } else {
            tx.abort().map_err(StoreError::from)?;
        }
        Ok(out)
    }

    /// Removes a device, with everything kept for it (see [`forget_device_data`]); returns
    /// what was removed.
    pub fn delete_device(&self, mac: Mac) -> Result<Option<Device>, StoreError> {
        let tx = self.begin_write()?;
        let key = mac.to_string();
        let removed = {
            let mut table = tx.open_table(DEVICES)?;
            let old = table.remove(key.as_str())?;
            old.map(|v| decode::<Device>("devices", &key, v.value()))
                .transpose()?
        };
        forget_device_data(&tx, &key)?;
        self.commit_devices(tx)?;
        Ok(removed)
    }

    pub fn get_site(&self, name: &str) -> Result<Option<Site>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(SITES)?;
        let found = table.get(name)?;
        found.map(|v| decode("sites", name, v.value())).transpose()
    }

    pub fn list_sites(&self) -> Result<Vec<Site>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_all(&tx.open_table(SITES)?, "sites")
    }

    /// Adds a site record; an existing one is a conflict, never overwritten.
    pub fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut sites = tx.open_table(SITES)?;
            if sites.get(site.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!("site {}", site.name)));
            }
            sites.insert(site.name.as_str(), encode(site).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Changes a site record inside one transaction (starting from an empty record of that
    /// name when there is none), so a change committed meanwhile by the cloud or another
    /// administrator is never written back over. Returns the record before and after.
    pub fn update_site(
        &self,
        name: &str,
        change: impl FnOnce(&mut Site),
    ) -> Result<(Option<Site>, Site), StoreError> {
        let tx = self.begin_write()?;
        let changed = {
            let mut sites = tx.open_table(SITES)?;
            let before: Option<Site> = match sites.get(name)? {
                Some(v) => Some(decode("sites", name, v.value())?),
                None => None,
            };
            let mut site = before.clone().unwrap_or_else(|| Site {
                name: name.to_string(),
                ..Site::default()
            });
            change(&mut site);
            site.name = name.to_string();
            sites.insert(name, encode(&site).as_slice())?;
            (before, site)
        };
        tx.commit()?;
        Ok(changed)
    }

    /// Removes a site record with its parameter layer, its static files and its firmware
    /// policies (and the releases kept only for their pins), in one transaction; refused while
    /// a device still belongs to the site. What belongs to a site goes with it, so a later site of the same
    /// name starts empty instead of silently inheriting the deleted one's settings.
    pub fn delete_site(&self, name: &str) -> Result<Option<DeletedSite>, StoreError> {
        let tx = self.begin_write()?;
        let removed = {
            if let Some(mac) = device_of_site(&tx, name)? {
                return Err(StoreError::InUse(format!(
                    "site {name} still has devices (for example {mac})"
                )));
            }
            let mut sites = tx.open_table(SITES)?;
            let old = sites.remove(name)?;
            // No record: "not found", and the layer and policies (which can be set while
            // devices name the site) stay.
            let Some(site) = old
                .map(|v| decode::<Site>("sites", name, v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            tx.open_table(LAYERS)?.remove(
                crate::model::Layer::Site(name.to_string())
                    .to_string()
                    .as_str(),
            )?;
            let scope = crate::firmware::catalogue::scope_key(Some(name));
            DeletedSite {
                site,
                firmware_policies: Store::remove_firmware_policies(&tx, &scope)?,
                static_files: super::files::remove_site_files(&tx, name)?,
                tokens: super::tokens::remove_site_from_tokens(&tx, name)?,
            }
        };
        tx.commit()?;
        Ok(Some(removed))
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::model::CheckIn;
    use std::sync::Arc;

    /// Writes `devices` in one import transaction, committed or not.
    fn import(store: &Store, devices: Vec<Device>, commit: bool) {
        store
            .import_devices(|tx| {
                for d in devices {
                    let existing = tx.get(d.mac)?;
                    tx.put(d, existing.as_ref())?;
                }
                Ok::<_, StoreError>(((), commit))
            })
            .unwrap();
    }

    fn macs(store: &Store) -> Vec<(String, String)> {
        store
            .devices_snapshot()
            .unwrap()
            .iter()
            .map(|d| (d.mac.to_string(), d.label.clone()))
            .collect()
    }

    #[tokio::test]
    async fn every_write_is_seen_by_the_next_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let a = Mac::from_octets([2, 0, 0, 0, 0, 1]);
        let b = Mac::from_octets([2, 0, 0, 0, 0, 2]);
        assert!(macs(&store).is_empty());
        store.create_device(Device::new(a)).unwrap();
        assert_eq!(macs(&store), [(a.to_string(), String::new())]);
        store
            .update_device(a, |d| {
                d.label = "lobby".into();
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(macs(&store), [(a.to_string(), "lobby".into())]);
        import(&store, vec![Device::new(b)], true);
        assert_eq!(macs(&store).len(), 2);
        import(&store, vec![Device::new(b)], false);
        store.delete_device(b).unwrap();
        assert_eq!(macs(&store).len(), 1);
        let (recorder, _thread) =
            crate::store::Recorder::start(store.clone()).expect("recorder thread");
        recorder.check_in(
            a,
            CheckIn {
                last_seen: 42,
                ..CheckIn::default()
            },
        );
        recorder.flush().await;
        let seen = store.devices_snapshot().unwrap()[0]
            .checkin
            .as_ref()
            .map(|c| c.last_seen);
        assert_eq!(seen, Some(42), "check-ins too");
        // Unchanged: the same decoded copy is handed out again.
        let (x, y) = (
            store.devices_snapshot().unwrap(),
            store.devices_snapshot().unwrap(),
        );
        assert!(Arc::ptr_eq(&x, &y));
        store.release_idle_caches(std::time::Duration::ZERO);
        assert!(!Arc::ptr_eq(&x, &store.devices_snapshot().unwrap()));
    }

    /// A storm's check-ins update the decoded copy in place instead of making the next listing
    /// decode every record again; a copy a listing still holds is left alone and read afresh.
    #[tokio::test]
    async fn check_ins_update_the_decoded_copy_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let macs: Vec<Mac> = (1..=5)
            .map(|i| Mac::from_octets([2, 0, 0, 0, 0, i]))
            .collect();
        import(&store, macs.iter().map(|m| Device::new(*m)).collect(), true);
        let (recorder, _thread) =
            crate::store::Recorder::start(store.clone()).expect("recorder thread");
        let seen = |at: i64| CheckIn {
            last_seen: at,
            ..CheckIn::default()
        };
        let last_seen = |devices: &[Device]| -> Vec<Option<i64>> {
            devices
                .iter()
                .map(|d| d.checkin.as_ref().map(|c| c.last_seen))
                .collect()
        };

        let first = Arc::as_ptr(&store.devices_snapshot().unwrap());
        recorder.check_in(macs[1], seen(7));
        recorder.check_in(macs[3], seen(9));
        recorder.check_in(Mac::from_octets([2, 0, 0, 0, 0, 99]), seen(1));
        recorder.flush().await;
        let after = store.devices_snapshot().unwrap();
        assert_eq!(Arc::as_ptr(&after), first, "the same copy, updated");
        assert_eq!(
            last_seen(&after),
            [None, Some(7), None, Some(9), None],
            "an unknown phone's sighting adds nothing"
        );
        assert_eq!(last_seen(&after), last_seen(&store.list_devices().unwrap()));

        // Held by a listing: not touched; the next listing reads the table.
        recorder.check_in(macs[0], seen(11));
        recorder.flush().await;
        assert_eq!(last_seen(&after)[0], None);
        let fresh = store.devices_snapshot().unwrap();
        assert!(!Arc::ptr_eq(&fresh, &after));
        assert_eq!(last_seen(&fresh)[0], Some(11));

        // Any other write still makes the copy stale.
        drop((after, fresh));
        store
            .update_device(macs[4], |d| {
                d.label = "lobby".into();
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(store.devices_snapshot().unwrap()[4].label, "lobby");
    }
}

#[cfg(test)]
mod site_tests {
    use super::*;
    use crate::model::{Layer, ParamSet};

    fn site(name: &str) -> Site {
        Site {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Deleting a site that has no record answers "not found" and changes nothing: its
    /// parameter layer (set while a device named the site) stays.
    #[test]
    fn deleting_a_site_without_a_record_keeps_its_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mac = Mac::from_octets([2, 0, 0, 0, 0, 9]);
        let mut device = Device::new(mac);
        device.site = "branch".into();
        store.place_device(device);
        let layer = Layer::Site("branch".into());
        let (_, set) = store
            .update_layer(&layer, |set| {
                set.params
                    .insert("SIPDOMAIN".into(), "branch.example".into());
            })
            .unwrap();
        store.delete_device(mac).unwrap();
        let before = store.generation();
        assert!(store.delete_site("branch").unwrap().is_none());
        assert_eq!(store.get_layer(&layer).unwrap(), set);
        assert_eq!(store.generation(), before, "nothing was written");
        // What such a layer holds can be removed, though the site no longer exists.
        store
            .update_layer(&layer, |set| set.params.clear())
            .unwrap();
        assert_eq!(store.get_layer(&layer).unwrap(), ParamSet::default());
    }

    /// A change that changes nothing (`device set --unset` of a name the device lacks) writes
    /// nothing: `updated` and the generation stay, so phones' cached files stay too. It used
    /// to rewrite the record and move both.
    #[test]
    fn a_change_that_changes_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mac = Mac::from_octets([2, 0, 0, 0, 0, 7]);
        store.place_device(Device::new(mac));
        let before = store.get_device(mac).unwrap().unwrap();
        let generation = store.generation();
        let same = store
            .update_device(mac, |d| {
                d.params.remove("NOT_SET");
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(same, before);
        assert_eq!(
            store.get_device(mac).unwrap().unwrap().updated,
            before.updated
        );
        assert_eq!(store.generation(), generation, "nothing was written");
        store
            .update_device(mac, |d| {
                d.label = "desk".into();
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_ne!(store.generation(), generation);
    }

    /// A site's parameters and static files need the site, as its firmware policies do; taking
    /// them away does not. Deleting the site deletes them, and only them.
    #[test]
    fn a_sites_parameters_and_files_need_the_site_and_go_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let layer = Layer::Site("lab".into());
        let set = |set: &mut ParamSet| {
            set.params.insert("SIPDOMAIN".into(), "lab.example".into());
        };
        let e = store.update_layer(&layer, set).unwrap_err();
        assert_eq!(e.to_string(), "site lab not found");
        let e = store
            .put_static_file(Some("lab"), "a.txt", b"x", false, 1)
            .unwrap_err();
        assert_eq!(e.to_string(), "site lab not found");
        assert!(store.list_static_files(|_| ()).unwrap().is_empty());
        assert_eq!(store.get_layer(&layer).unwrap(), ParamSet::default());
        // Removing from a layer that holds nothing is refused as setting is: it would answer
        // as if it had removed something (`param unset --layer site:HQ` for the site `hq`).
        let e = store
            .update_layer(&layer, |set| {
                set.params.remove("SIPDOMAIN");
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "site lab not found");

        for name in ["lab", "lab2"] {
            store.create_site(&site(name)).unwrap();
            store.update_layer(&Layer::Site(name.into()), set).unwrap();
            store
                .put_static_file(Some(name), "a.txt", b"x", false, 1)
                .unwrap();
        }
        store
            .put_static_file(None, "a.txt", b"box", false, 1)
            .unwrap();
        let deleted = store.delete_site("lab").unwrap().unwrap();
        assert_eq!(deleted.static_files, ["a.txt"]);
        assert_eq!(store.get_layer(&layer).unwrap(), ParamSet::default());
        let left: Vec<(String, String)> = store
            .list_static_files(|_| ())
            .unwrap()
            .into_iter()
            .map(|(site, name, ..)| (site, name))
            .collect();
        assert_eq!(
            left,
            [
                ("lab2".to_string(), "a.txt".to_string()),
                (String::new(), "a.txt".into())
            ]
        );
        assert!(
            !store
                .get_layer(&Layer::Site("lab2".into()))
                .unwrap()
                .params
                .is_empty()
        );
    }
}

#[cfg(test)]
impl Store {
    /// Stores `device` whatever its site, as the cloud's sync (or an edgeprov from before sites
    /// had to exist) leaves a device in a site no record names.
    pub(crate) fn place_device(&self, device: Device) {
        self.import_devices(|tx| tx.put(device, None).map(|()| ((), true)))
            .unwrap()
    }
}

/// The devices table inside an import's write transaction (see [`Store::import_devices`]).
pub struct ImportTx<'t> {
    table: redb::Table<'t, &'static str, &'static [u8]>,
    sites: redb::Table<'t, &'static str, &'static [u8]>,
    /// The sites that exist as this transaction sees them, with those the import created.
    site_names: BTreeSet<String>,
    now: i64,
}

impl ImportTx<'_> {
    /// Whether `site` exists (or is none); a site only the import's own rows name does not.
    pub fn site_exists(&self, site: &str) -> bool {
        site.is_empty() || self.site_names.contains(site)
    }

    /// The refusal of `site`, which does not exist, with the existing name it likely meant.
    pub fn unknown_site(&self, site: &str) -> StoreError {
        unknown_site("site", site, &self.site_names)
    }

    /// Creates a record for `site`, which does not exist: an import told to create its sites.
    pub fn create_site(&mut self, site: &str) -> Result<(), StoreError> {
        let record = Site {
            name: site.to_string(),
            ..Site::default()
        };
        self.sites.insert(site, encode(&record).as_slice())?;
        self.site_names.insert(site.to_string());
        Ok(())
    }

    /// The device stored under `mac`, as this transaction sees it.
    pub fn get(&self, mac: Mac) -> Result<Option<Device>, StoreError> {
        let key = mac.to_string();
        let found = self.table.get(key.as_str())?;
        found
            .map(|v| decode("devices", &key, v.value()))
            .transpose()
    }

    /// Writes the device a row made from `existing` (the device stored under its MAC, if any):
    /// whatever the row did, an update keeps the stored check-in and creation time.
    pub fn put(&mut self, mut device: Device, existing: Option<&Device>) -> Result<(), StoreError> {
        match existing {
            Some(old) => {
                device.created = old.created;
                device.checkin = old.checkin.clone();
            }
            None => device.created = self.now,
        }
        device.updated = self.now;
        let key = device.mac.to_string();
        self.table
            .insert(key.as_str(), encode(&device).as_slice())?;
        Ok(())
    }
}
