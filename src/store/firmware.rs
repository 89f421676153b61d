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
                    let serves = |r: &Release| serves_pin(r, model, version);
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

    /// Replaces one scope's policies (an empty map removes the scope), refused when one pins
    /// a version no release serves for its model. The releases are read in the writing
    /// transaction, as deleting a release reads the policies in its own: of a pin and the
    /// deletion of its last release, whichever commits second is refused, so no policy is
    /// left pinned to nothing. Every release the catalogue knows is in this table (config
    /// releases are written to it at start).
    pub fn put_firmware_policies(
        &self,
        scope: &str,
        policies: &ScopePolicies,
    ) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut releases = Vec::new();
            for row in tx.open_table(FIRMWARE_RELEASES)?.iter()? {
                let (k, v) = row?;
                releases.push(
                    decode::<StoredRelease>("firmware_releases", k.value(), v.value())?.release,
                );
            }
            for (model, policy) in policies {
                let Policy::Pinned(version) = policy else {
                    continue;
                };
                if !releases.iter().any(|r| serves_pin(r, model, version)) {
                    return Err(StoreError::NoPinnedRelease {
                        model: model.clone(),
                        version: version.clone(),
                    });
                }
            }
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

/// Whether phones of `model` (`*`: any model) pinned to `version` would be served `release`.
fn serves_pin(release: &Release, model: &str, version: &str) -> bool {
    release.version == version && (model == "*" || release.is_for(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(file: &str) -> Release {
        Release {
            models: vec!["J179".into()],
            version: "9.9".into(),
            file: file.into(),
            urls: Vec::new(),
            sha256: "a".repeat(64),
            size: None,
        }
    }

    fn pin(version: &str) -> ScopePolicies {
        ScopePolicies::from([("J179".to_string(), Policy::Pinned(version.into()))])
    }

    /// The admin API used to check a pin against its snapshot of the catalogue before writing:
    /// a release deleted in between left the policy pinned to nothing. The store checks in
    /// the writing transaction: a pin written after the deletion is refused, and a deletion
    /// after the pin (tested since the delete checks the policies) is refused.
    #[test]
    fn a_pin_and_the_deletion_of_its_release_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.add_firmware_release(&release("j.bin")).unwrap();
        let seen = s.firmware_catalogue().unwrap();
        assert!(seen.releases.iter().any(|r| r.version == "9.9"));

        s.delete_firmware_release("j.bin").unwrap();
        let e = s.put_firmware_policies("site:hq", &pin("9.9")).unwrap_err();
        assert!(
            matches!(&e, StoreError::NoPinnedRelease { model, version }
                if model == "J179" && version == "9.9"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "J179: no release of version 9.9 for this model in the catalogue"
        );
        assert!(s.firmware_catalogue().unwrap().policies.is_empty());

        s.add_firmware_release(&release("j.bin")).unwrap();
        s.put_firmware_policies("site:hq", &pin("9.9")).unwrap();
        let e = s.delete_firmware_release("j.bin").unwrap_err();
        assert!(matches!(e, StoreError::InUse(_)), "{e}");
        assert_eq!(s.firmware_catalogue().unwrap().releases.len(), 1);
    }

    /// Pins and deletions from two threads at once: no committed state has a policy pinned to
    /// a version without a release.
    #[test]
    fn racing_pins_and_deletions_never_leave_a_pin_without_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let deleter = {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    match s.add_firmware_release(&release("j.bin")) {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                    match s.delete_firmware_release("j.bin") {
                        Ok(_) | Err(StoreError::InUse(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        };
        let pinner = {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    match s.put_firmware_policies("global", &pin("9.9")) {
                        Ok(()) | Err(StoreError::NoPinnedRelease { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                    s.put_firmware_policies("global", &ScopePolicies::new())
                        .unwrap();
                }
            })
        };
        let mut checked = 0;
        while !(deleter.is_finished() && pinner.is_finished()) || checked == 0 {
            let c = s.firmware_catalogue().unwrap();
            let pinned = c.policies.values().any(|p| !p.is_empty());
            assert!(
                !pinned || !c.releases.is_empty(),
                "pinned to nothing: {c:?}"
            );
            checked += 1;
        }
        deleter.join().unwrap();
        pinner.join().unwrap();
    }
}
