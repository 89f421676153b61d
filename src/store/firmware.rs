//! Firmware releases added through the admin API or merged from the config, and firmware
//! policies per scope (`global`, `site:NAME`).

use std::collections::BTreeSet;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{DEVICES, Store, StoreError, decode, encode};
use crate::firmware::{Catalogue, Policy, Release, ScopePolicies};
use crate::model::Device;

/// Key: the release's file name in lower case.
pub(crate) const FIRMWARE_RELEASES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("firmware_releases");
/// Key: `global` or `site:NAME`; value: model → policy.
pub(crate) const FIRMWARE_POLICIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("firmware_policies");

/// Where a release came from: config releases are replaced at every start, the others stay
/// until deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseOrigin {
    Config,
    Api,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRelease {
    origin: ReleaseOrigin,
    release: Release,
}

impl Store {
    /// Every release and every scope's policies, in one snapshot.
    pub fn firmware_catalogue(&self) -> Result<Catalogue, StoreError> {
        let tx = self.db.begin_read()?;
        let mut out = Catalogue::default();
        for row in tx.open_table(FIRMWARE_RELEASES)?.iter()? {
            let (k, v) = row?;
            let s: StoredRelease = decode("firmware_releases", k.value(), v.value())?;
            out.releases.push(s.release);
        }
        for row in tx.open_table(FIRMWARE_POLICIES)?.iter()? {
            let (k, v) = row?;
            let p: ScopePolicies = decode("firmware_policies", k.value(), v.value())?;
            out.policies.insert(k.value().to_string(), p);
        }
        Ok(out)
    }

    /// Replaces the config's releases with `releases` (a release removed from the config
    /// disappears; one added through the API with the same file name is overridden).
    pub fn replace_config_releases(&self, releases: &[Release]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(FIRMWARE_RELEASES)?;
            let mut stale = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let s: StoredRelease = decode("firmware_releases", k.value(), v.value())?;
                if s.origin == ReleaseOrigin::Config {
                    stale.push(k.value().to_string());
                }
            }
            for k in stale {
                table.remove(k.as_str())?;
            }
            for r in releases {
                let s = StoredRelease {
                    origin: ReleaseOrigin::Config,
                    release: r.clone(),
                };
                table.insert(r.file.to_ascii_lowercase().as_str(), encode(&s).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds an operator's release; a file name already in the catalogue is a conflict.
    pub fn add_firmware_release(&self, release: &Release) -> Result<(), StoreError> {
        let key = release.file.to_ascii_lowercase();
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(FIRMWARE_RELEASES)?;
            if table.get(key.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "firmware file {}",
                    release.file
                )));
            }
            let s = StoredRelease {
                origin: ReleaseOrigin::Api,
                release: release.clone(),
            };
            table.insert(key.as_str(), encode(&s).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes a release, refused while a policy pins its version for one of its models and
    /// no other release of that version is left for it: phones would be pinned to nothing.
    pub fn delete_firmware_release(&self, file: &str) -> Result<Release, StoreError> {
        let key = file.to_ascii_lowercase();
        let tx = self.begin_write()?;
        let removed = {
            let mut table = tx.open_table(FIRMWARE_RELEASES)?;
            let removed = match table.remove(key.as_str())? {
                Some(v) => decode::<StoredRelease>("firmware_releases", &key, v.value())?.release,
                None => return Err(StoreError::NotFound(format!("firmware file {file}"))),
            };
            let mut left = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                left.push(
                    decode::<StoredRelease>("firmware_releases", k.value(), v.value())?.release,
                );
            }
            let policies = tx.open_table(FIRMWARE_POLICIES)?;
            for row in policies.iter()? {
                let (scope, v) = row?;
                let set: ScopePolicies = decode("firmware_policies", scope.value(), v.value())?;
                for (model, policy) in &set {
                    let Policy::Pinned(version) = policy else {
                        continue;
                    };
                    let serves =
                        |r: &Release| &r.version == version && (model == "*" || r.is_for(model));
                    if serves(&removed) && !left.iter().any(serves) {
                        return Err(StoreError::InUse(format!(
                            "firmware file {file}: policy {} pins {model} to version {version}; \
                             change that policy first",
                            scope.value()
                        )));
                    }
                }
            }
            removed
        };
        tx.commit()?;
        Ok(removed)
    }

    /// Replaces one scope's policies (an empty map removes the scope).
    pub fn put_firmware_policies(
        &self,
        scope: &str,
        policies: &ScopePolicies,
    ) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(FIRMWARE_POLICIES)?;
            if policies.is_empty() {
                table.remove(scope)?;
            } else {
                table.insert(scope, encode(policies).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The distinct (site, model) pairs in the inventory, models upper case.
    pub fn device_site_models(&self) -> Result<BTreeSet<(String, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEVICES)?;
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let d: Device = decode("devices", k.value(), v.value())?;
            if !d.model.is_empty() {
                out.insert((d.site, d.model.to_ascii_uppercase()));
            }
        }
        Ok(out)
    }
}
