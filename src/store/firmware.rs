//! Firmware releases added through the admin API or merged from the config, and firmware
//! policies per scope (`global`, `site:NAME`).

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::devices::site_exists;
use super::sync::{CLOUD_DATA, CLOUD_FIRMWARE, CLOUD_POLICY, CLOUD_REFUSED, CLOUD_UNREAD};
use super::{DEVICES, Store, StoreError, decode, encode};
use crate::firmware::catalogue::stored_policies;
use crate::firmware::cloud::Refused;
use crate::firmware::{Catalogue, IgnoredPolicy, Pin, PinProblem, Release, ScopePolicies};
use crate::model::Device;
use crate::sync::protocol::{FirmwarePolicy, FirmwareRelease};

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
    /// A config release the config no longer lists, kept because a pin needs it. A flag
    /// rather than a third origin so that an older edgeprov of the same schema still reads
    /// the record (as a config release, which it drops at its start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    kept: bool,
}

/// Every release, by key.
fn read_releases(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, StoredRelease)>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let s: StoredRelease = decode("firmware_releases", k.value(), v.value())?;
        out.push((k.value().to_string(), s));
    }
    Ok(out)
}

/// Every scope's policies as they are followed, and the stored ones that are not (see
/// [`stored_policies`]): every check reads them as resolution does, so a policy that is not
/// followed neither protects a release nor keeps one.
fn read_policies(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<(BTreeMap<String, ScopePolicies>, Vec<IgnoredPolicy>), StoreError> {
    let mut followed = BTreeMap::new();
    let mut ignored = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let stored: ScopePolicies = decode("firmware_policies", k.value(), v.value())?;
        let (p, mut left_out) = stored_policies(k.value(), stored);
        followed.insert(k.value().to_string(), p);
        ignored.append(&mut left_out);
    }
    Ok((followed, ignored))
}

fn catalogue_of(
    releases: impl IntoIterator<Item = StoredRelease>,
    (policies, ignored): (BTreeMap<String, ScopePolicies>, Vec<IgnoredPolicy>),
) -> Catalogue {
    let mut out = Catalogue {
        policies,
        ignored,
        ..Catalogue::default()
    };
    for s in releases {
        if s.kept {
            out.kept.insert(s.release.file.to_ascii_lowercase());
        }
        out.releases.push(s.release);
    }
    out
}

/// The releases once `config` replaces the stored config releases: the operator's, then the
/// config's (which win a shared file name), then each release an earlier config listed and
/// this one does not that a pin needs (no other release serves the pin), marked kept. The
/// config cannot refuse the change as the admin API refuses deleting a pinned release (the
/// daemon must start), so it keeps what phones under the pin were served instead of leaving
/// the pin to nothing; the alarm says so.
fn merge_config(
    stored: Vec<(String, StoredRelease)>,
    config: &[Release],
    policies: &BTreeMap<String, ScopePolicies>,
    cloud: &Cloud,
) -> BTreeMap<String, StoredRelease> {
    let mut out = BTreeMap::new();
    let mut dropped = Vec::new();
    for (key, s) in stored {
        match s.origin {
            ReleaseOrigin::Api => {
                out.insert(key, s);
            }
            ReleaseOrigin::Config => dropped.push((key, s)),
        }
    }
    for r in config {
        let s = StoredRelease {
            origin: ReleaseOrigin::Config,
            release: r.clone(),
            kept: false,
        };
        out.insert(r.file.to_ascii_lowercase(), s);
    }
    // The cloud's pins are pins, and a release of the cloud's serves a pin as a local one
    // does (a local pin may name a version only the cloud has).
    let now = |out: &BTreeMap<String, StoredRelease>| {
        served(out.values().cloned(), (policies.clone(), Vec::new()), cloud)
    };
    let before = now(&out);
    let known: Vec<Release> = before
        .releases
        .iter()
        .chain(dropped.iter().map(|(_, s)| &s.release))
        .cloned()
        .collect();
    let pins: Vec<Pin> = Pin::all(&before.policies)
        .iter()
        .flat_map(|p| p.per_model(&known))
        .filter(|p| !before.overridden(p))
        .collect();
    for pin in pins {
        if now(&out).releases.iter().any(|r| pin.served_by(r)) {
            continue;
        }
        for (key, s) in &dropped {
            if pin.served_by(&s.release) && !out.contains_key(key) {
                let kept = StoredRelease {
                    kept: true,
                    ..s.clone()
                };
                out.insert(key.clone(), kept);
            }
        }
    }
    out
}

/// Removes the kept releases no pin needs any more: its policy changed, here or in the cloud,
/// or another release of the version serves it, configured, added or pulled from the cloud.
/// Called by every write that can change either (a local release or policy, a site deleted, a
/// pull that changes the cloud's catalogue); a pull used not to, so a release kept for a cloud
/// pin stayed for ever once the cloud changed that pin. Judged as [`merge_config`] judges at
/// start: against the catalogue without any kept release, since a kept release (a local one)
/// wins over the cloud's release of its model and version, and so kept itself needed and the
/// cloud's image from phones.
pub(super) fn drop_unneeded_kept(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let policies = read_policies(&tx.open_table(FIRMWARE_POLICIES)?)?;
    let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
    let mut table = tx.open_table(FIRMWARE_RELEASES)?;
    let (kept, listed): (Vec<_>, Vec<_>) = read_releases(&table)?
        .into_iter()
        .partition(|(_, s)| s.kept);
    if kept.is_empty() {
        return Ok(());
    }
    let without = served(listed.into_iter().map(|(_, s)| s), policies, &cloud);
    let known: Vec<Release> = without
        .releases
        .iter()
        .chain(kept.iter().map(|(_, s)| &s.release))
        .cloned()
        .collect();
    let unserved: Vec<Pin> = Pin::all(&without.policies)
        .iter()
        .flat_map(|p| p.per_model(&known))
        .filter(|p| !without.overridden(p))
        .filter(|p| !without.releases.iter().any(|r| p.served_by(r)))
        .collect();
    for (key, s) in &kept {
        if !unserved.iter().any(|p| p.served_by(&s.release)) {
            table.remove(key.as_str())?;
        }
    }
    Ok(())
}

/// The cloud's rows under `prefix` (`firmware|`, `policy|`, `firmware_refused|`, the one
/// `firmware_unread`), in key order.
fn read_cloud<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in table.range(prefix..)? {
        let (k, v) = row?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push(decode("cloud_data", k.value(), v.value())?);
    }
    Ok(out)
}

/// The cloud's last pulled releases and policies, as stored, and the releases the pull refused.
struct Cloud {
    releases: Vec<FirmwareRelease>,
    policies: Vec<FirmwarePolicy>,
    refused: Vec<Refused>,
}

fn read_cloud_rows(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Cloud, StoreError> {
    Ok(Cloud {
        releases: read_cloud(table, CLOUD_FIRMWARE)?,
        policies: read_cloud(table, CLOUD_POLICY)?,
        refused: read_cloud(table, CLOUD_REFUSED)?
            .into_iter()
            .chain(
                read_cloud::<Vec<Refused>>(table, CLOUD_UNREAD)?
                    .into_iter()
                    .flatten(),
            )
            .collect(),
    })
}

/// The catalogue phones are served from these local releases and policies, with the cloud's
/// added as [`Catalogue::add_cloud`] adds them (local data winning). Every check of a release
/// or a pin asks this rather than the local table alone: a pin the cloud's release serves is
/// served, the cloud's pins are pins, and a cloud release that is not served (its name is a
/// local release's) serves nothing.
fn served(
    releases: impl IntoIterator<Item = StoredRelease>,
    policies: (BTreeMap<String, ScopePolicies>, Vec<IgnoredPolicy>),
    cloud: &Cloud,
) -> Catalogue {
    let mut catalogue = catalogue_of(releases, policies);
    catalogue.add_cloud(cloud.releases.clone(), cloud.policies.clone());
    catalogue.refused.extend(cloud.refused.iter().cloned());
    catalogue
}

/// A local release to delete, or one the config drops, that `pin` needs: the refusal names
/// the policy, and for the cloud's what can be done here.
fn pinned_by(file: &str, pin: &Pin) -> StoreError {
    let Pin {
        scope,
        model,
        version,
    } = pin;
    StoreError::InUse(match scope.strip_prefix("cloud:site:") {
        Some(site) => format!(
            "firmware file {file}: the cloud's policy for site {site} pins {model} to version \
             {version}, and no other release serves it; set a local policy for site:{site} \
             (off, or another version) first, or change the policy in the cloud"
        ),
        None => format!(
            "firmware file {file}: policy {scope} pins {model} to version {version}; change \
             that policy first"
        ),
    })
}

impl Store {
    /// Every release and every scope's policies, local and the cloud's last pulled ones
    /// ([`Catalogue::add_cloud`]), in one snapshot.
    pub fn firmware_catalogue(&self) -> Result<Catalogue, StoreError> {
        let tx = self.db()?.begin_read()?;
        let releases = read_releases(&tx.open_table(FIRMWARE_RELEASES)?)?;
        let policies = read_policies(&tx.open_table(FIRMWARE_POLICIES)?)?;
        let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
        Ok(served(
            releases.into_iter().map(|(_, s)| s),
            policies,
            &cloud,
        ))
    }

    /// Replaces the config's releases with `releases` (a release removed from the config
    /// disappears, unless a pin needs it: see [`merge_config`]; one added through the API with
    /// the same file name is overridden). The pins are read in the writing transaction, as
    /// the admin API's deletion does.
    pub fn replace_config_releases(&self, releases: &[Release]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let policies = read_policies(&tx.open_table(FIRMWARE_POLICIES)?)?.0;
            let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
            let mut table = tx.open_table(FIRMWARE_RELEASES)?;
            let stored = read_releases(&table)?;
            let keys: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
            let merged = merge_config(stored, releases, &policies, &cloud);
            for k in keys.iter().filter(|k| !merged.contains_key(*k)) {
                table.remove(k.as_str())?;
            }
            for (k, s) in &merged {
                table.insert(k.as_str(), encode(s).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// What [`Store::replace_config_releases`] would leave pinned to a kept release or to
    /// nothing, without writing: `edgeprov doctor` checks an edited config before a start.
    pub fn config_release_problems(
        &self,
        releases: &[Release],
    ) -> Result<Vec<PinProblem>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let stored = read_releases(&tx.open_table(FIRMWARE_RELEASES)?)?;
        let policies = read_policies(&tx.open_table(FIRMWARE_POLICIES)?)?;
        let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
        let merged = merge_config(stored, releases, &policies.0, &cloud);
        Ok(served(merged.into_values(), policies, &cloud).pin_problems())
    }

    /// Adds an operator's release; a file name already in the catalogue is a conflict. A kept
    /// release the new one makes unneeded goes.
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
                kept: false,
            };
            table.insert(key.as_str(), encode(&s).as_slice())?;
        }
        drop_unneeded_kept(&tx)?;
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
            let left = read_releases(&table)?;
            let policies = read_policies(&tx.open_table(FIRMWARE_POLICIES)?)?;
            let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
            // What phones would be served once it is gone: the cloud's pins count, and so do
            // the cloud's releases (one of the same model and version is served once the
            // local one no longer wins over it).
            let after = served(left.into_iter().map(|(_, s)| s), policies, &cloud);
            let per_model = Pin::all(&after.policies)
                .iter()
                .flat_map(|p| p.per_model([&removed]))
                .filter(|p| !after.overridden(p))
                .collect::<Vec<_>>();
            for pin in per_model {
                if pin.served_by(&removed) && !after.releases.iter().any(|r| pin.served_by(r)) {
                    return Err(pinned_by(file, &pin));
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
    /// releases are written to it at start). A kept release no pin needs any more goes.
    ///
    /// `policies` are keyed as [`crate::firmware::policy_model`] gives them. A site's are
    /// refused while the site does not exist (no record, no device naming it): checked here,
    /// so a site deleted meanwhile cannot be left policies that a later site of its name would
    /// silently inherit. Removing them is allowed whatever the site. Returns the scope's
    /// policies as they were stored, ignored ones included, for the audit.
    pub fn put_firmware_policies(
        &self,
        scope: &str,
        policies: &ScopePolicies,
    ) -> Result<ScopePolicies, StoreError> {
        let tx = self.begin_write()?;
        let before = {
            if let Some(site) = scope.strip_prefix("site:")
                && !policies.is_empty()
                && !site_exists(&tx, site)?
            {
                return Err(StoreError::NotFound(format!("site {site}")));
            }
            let releases = read_releases(&tx.open_table(FIRMWARE_RELEASES)?)?;
            let cloud = read_cloud_rows(&tx.open_table(CLOUD_DATA)?)?;
            // A local pin may name a version only the cloud's releases have, but only one the
            // catalogue serves: not a cloud release whose file name is a local release's.
            let catalogue = served(
                releases.into_iter().map(|(_, s)| s),
                Default::default(),
                &cloud,
            );
            let scoped = BTreeMap::from([(scope.to_string(), policies.clone())]);
            for pin in Pin::all(&scoped) {
                if !catalogue.releases.iter().any(|r| pin.served_by(r)) {
                    return Err(StoreError::NoPinnedRelease {
                        model: pin.model,
                        version: pin.version,
                    });
                }
            }
            let mut table = tx.open_table(FIRMWARE_POLICIES)?;
            let old = if policies.is_empty() {
                table.remove(scope)?
            } else {
                table.insert(scope, encode(policies).as_slice())?
            };
            old.map(|v| decode::<ScopePolicies>("firmware_policies", scope, v.value()))
                .transpose()?
                .unwrap_or_default()
        };
        drop_unneeded_kept(&tx)?;
        tx.commit()?;
        Ok(before)
    }

    /// Removes a scope's policies inside `tx` (a site's, with the site), with the kept
    /// releases only they needed; returns them as stored.
    pub(super) fn remove_firmware_policies(
        tx: &redb::WriteTransaction,
        scope: &str,
    ) -> Result<ScopePolicies, StoreError> {
        let removed = tx
            .open_table(FIRMWARE_POLICIES)?
            .remove(scope)?
            .map(|v| decode::<ScopePolicies>("firmware_policies", scope, v.value()))
            .transpose()?
            .unwrap_or_default();
        if !removed.is_empty() {
            drop_unneeded_kept(tx)?;
        }
        Ok(removed)
    }

    /// The distinct (site, model) pairs in the inventory, models upper case.
    pub fn device_site_models(&self) -> Result<BTreeSet<(String, String)>, StoreError> {
        let tx = self.db()?.begin_read()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::Policy;

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

    fn release_of(file: &str, version: &str) -> Release {
        Release {
            version: version.into(),
            ..release(file)
        }
    }

    /// A store with the site `hq`, whose policies the tests set (a site's need the site).
    fn store_with_hq(dir: &std::path::Path) -> Store {
        let s = Store::open(&dir.join("db")).unwrap();
        s.create_site(&crate::model::Site {
            name: "hq".into(),
            ..Default::default()
        })
        .unwrap();
        s
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
        let s = store_with_hq(dir.path());
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
                        Ok(_) | Err(StoreError::NoPinnedRelease { .. }) => {}
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

    /// A config that drops the only release a policy pins used to remove it at start, leaving
    /// the pin to nothing (phones of the model silently given no firmware). The release is
    /// kept, still served, reported as a problem of the pin (also before the start, for
    /// `edgeprov doctor`), and goes once the policy no longer needs it.
    #[test]
    fn a_config_that_drops_a_pinned_release_keeps_it_while_the_pin_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with_hq(dir.path());
        let (old, new) = (release_of("a.bin", "9.9"), release_of("b.bin", "10.0"));
        s.replace_config_releases(&[old.clone(), new.clone()])
            .unwrap();
        s.put_firmware_policies("site:hq", &pin("9.9")).unwrap();
        assert!(
            s.config_release_problems(&[old, new.clone()])
                .unwrap()
                .is_empty()
        );

        let dry = s
            .config_release_problems(std::slice::from_ref(&new))
            .unwrap();
        for _start in 0..2 {
            s.replace_config_releases(std::slice::from_ref(&new))
                .unwrap();
            let c = s.firmware_catalogue().unwrap();
            assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "a.bin");
            assert_eq!(c.kept, BTreeSet::from(["a.bin".to_string()]));
            let problems = c.pin_problems();
            assert_eq!(problems, dry, "doctor foresees what the start does");
            let [p] = problems.as_slice() else {
                panic!("{problems:?}")
            };
            assert_eq!(p.source(), "site:hq J179=9.9");
            assert_eq!(p.kept, ["a.bin"]);
            assert_eq!(p.severity(), crate::model::Severity::Warning);
            assert!(
                p.message().contains("no longer lists a.bin"),
                "{}",
                p.message()
            );
        }

        // Deleting it is refused like any pinned release's; changing the pin lets it go.
        assert!(matches!(
            s.delete_firmware_release("a.bin"),
            Err(StoreError::InUse(_))
        ));
        let latest = ScopePolicies::from([("J179".to_string(), Policy::Latest)]);
        s.put_firmware_policies("site:hq", &latest).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.releases, [new]);
        assert!(c.kept.is_empty() && c.pin_problems().is_empty());
    }

    /// A `*` pin pins each model on its own: a release of the version for another model does
    /// not serve J179's phones, neither when the config drops J179's release nor when one for
    /// a third model is added.
    #[test]
    fn a_pin_of_every_model_is_judged_model_by_model() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let for_model = |file: &str, model: &str| Release {
            models: vec![model.into()],
            ..release_of(file, "9.9")
        };
        let (j179, j169) = (for_model("a.bin", "J179"), for_model("b.bin", "J169"));
        s.replace_config_releases(&[j179.clone(), j169.clone()])
            .unwrap();
        let every = ScopePolicies::from([("*".to_string(), Policy::Pinned("9.9".into()))]);
        s.put_firmware_policies("global", &every).unwrap();
        // Deleting J179's only release is refused although J169 has one of the version.
        s.add_firmware_release(&for_model("c.bin", "K175")).unwrap();
        assert!(matches!(
            s.delete_firmware_release("c.bin"),
            Err(StoreError::InUse(_))
        ));

        s.replace_config_releases(std::slice::from_ref(&j169))
            .unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.resolve(None, "J179").unwrap().file, "a.bin");
        assert!(c.kept.contains("a.bin"));
        let problems = c.pin_problems();
        assert_eq!(
            problems.iter().map(|p| p.source()).collect::<Vec<_>>(),
            ["global J179=9.9"]
        );

        // Another model's release of the version does not make J179's unneeded.
        s.add_firmware_release(&for_model("d.bin", "K165")).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.resolve(None, "J179").unwrap().file, "a.bin");
    }

    /// A release of the pinned version added through the API serves the pin: the kept one is
    /// no longer needed and goes. A config that gives the pinned release's file name to
    /// another version cannot keep it (names are unique): the pin is left without a release,
    /// which phones see as no firmware, and that is a major problem.
    #[test]
    fn a_kept_release_goes_when_another_serves_the_pin_and_a_reused_name_cannot_be_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.replace_config_releases(&[release_of("a.bin", "9.9")])
            .unwrap();
        s.put_firmware_policies("global", &pin("9.9")).unwrap();
        s.replace_config_releases(&[]).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.resolve(None, "J179").unwrap().file, "a.bin");
        assert_eq!(c.pin_problems().len(), 1);
        s.add_firmware_release(&release_of("c.bin", "9.9")).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.releases, [release_of("c.bin", "9.9")]);
        assert!(c.pin_problems().is_empty());
        s.delete_firmware_release("c.bin").unwrap_err();

        s.put_firmware_policies("global", &ScopePolicies::new())
            .unwrap();
        s.delete_firmware_release("c.bin").unwrap();
        s.replace_config_releases(&[release_of("a.bin", "9.9")])
            .unwrap();
        s.put_firmware_policies("global", &pin("9.9")).unwrap();
        s.replace_config_releases(&[release_of("A.bin", "10.0")])
            .unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert!(c.resolve(None, "J179").is_none());
        let [p] = c.pin_problems().try_into().unwrap();
        assert_eq!(
            (p.source().as_str(), p.kept.len(), p.severity()),
            ("global J179=9.9", 0, crate::model::Severity::Major)
        );
        assert!(
            p.message().contains("no release of that version"),
            "{}",
            p.message()
        );
    }

    /// A site's policies used to be stored for any name: a typo (`site:HQ` for `hq`) pinned
    /// nothing, and a later site of the name silently inherited them. They need the site to
    /// exist, as the sites API says: a record, or a device naming it. Removing them does not.
    #[test]
    fn a_sites_policies_need_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.add_firmware_release(&release("j.bin")).unwrap();
        let e = s
            .put_firmware_policies("site:lab", &pin("9.9"))
            .unwrap_err();
        assert_eq!(e.to_string(), "site lab not found");
        assert!(s.firmware_catalogue().unwrap().policies.is_empty());
        s.put_firmware_policies("site:lab", &ScopePolicies::new())
            .unwrap();

        let mut phone = Device::new(crate::model::Mac::from_octets([2, 0, 0, 0, 0, 1]));
        phone.site = "lab".into();
        s.place_device(phone);
        s.put_firmware_policies("site:lab", &pin("9.9")).unwrap();
        let e = s
            .put_firmware_policies("site:LAB", &pin("9.9"))
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "names are exact: {e}");
        s.put_firmware_policies("global", &pin("9.9")).unwrap();
    }

    /// Deleting a site used to leave its policies behind: a site created later under the same
    /// name was pinned by them, and the release the config dropped stayed kept for them. They
    /// go with the site, in its transaction, and so does the release kept only for them.
    #[test]
    fn deleting_a_site_removes_its_policies_and_what_was_kept_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with_hq(dir.path());
        let (old, new) = (release_of("a.bin", "9.9"), release_of("b.bin", "10.0"));
        s.replace_config_releases(&[old, new.clone()]).unwrap();
        s.put_firmware_policies("site:hq", &pin("9.9")).unwrap();
        s.replace_config_releases(std::slice::from_ref(&new))
            .unwrap();
        assert_eq!(s.firmware_catalogue().unwrap().releases.len(), 2, "kept");

        let deleted = s.delete_site("hq").unwrap().unwrap();
        assert_eq!(deleted.site.name, "hq");
        assert_eq!(deleted.firmware_policies, pin("9.9"));
        let c = s.firmware_catalogue().unwrap();
        assert!(c.policies.is_empty(), "{:?}", c.policies);
        assert_eq!(c.releases, [new], "the kept release went with its pin");
        assert!(c.pin_problems().is_empty());

        s.create_site(&crate::model::Site {
            name: "hq".into(),
            ..Default::default()
        })
        .unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert!(c.policies.is_empty(), "nothing inherited");
        assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "b.bin");
        let deleted = s.delete_site("hq").unwrap().unwrap();
        assert!(deleted.firmware_policies.is_empty());
    }

    /// Policies an earlier edgeprov stored with models no policy may name are not followed,
    /// do not stop the catalogue from loading, are reported, and protect no release.
    #[test]
    fn stored_policies_with_models_no_policy_may_name_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let family = Release {
            models: vec!["J1*".into()],
            ..release("fam.bin")
        };
        s.add_firmware_release(&family).unwrap();
        // Written as the old admin API wrote any request: upper case, unchecked.
        let stored = ScopePolicies::from([
            ("J1*".to_string(), Policy::Pinned("9.9".into())),
            (String::new(), Policy::Off),
            ("K175".to_string(), Policy::Off),
        ]);
        s.put_firmware_policies("global", &stored).unwrap();

        let c = s.firmware_catalogue().unwrap();
        assert_eq!(
            c.policies["global"],
            ScopePolicies::from([("K175".to_string(), Policy::Off)])
        );
        let sources: Vec<String> = c.ignored.iter().map(|i| i.source()).collect();
        assert_eq!(sources, [r#"global """#, r#"global "J1*""#]);
        assert_eq!(c.resolve(None, "J179").unwrap().file, "fam.bin");
        assert!(c.pin_problems().is_empty());
        s.delete_firmware_release("fam.bin").unwrap();
    }

    /// Writes a row of the cloud's catalogue as a pull stores it.
    fn put_cloud<T: Serialize>(s: &Store, key: &str, value: &T) {
        let tx = s.begin_write().unwrap();
        tx.open_table(CLOUD_DATA)
            .unwrap()
            .insert(key, encode(value).as_slice())
            .unwrap();
        tx.commit().unwrap();
    }

    fn cloud_release(model: &str, version: &str, file: &str, sha: &str) -> FirmwareRelease {
        FirmwareRelease {
            model: model.into(),
            version: version.into(),
            url: format!("https://fw.example/{file}"),
            sha256: sha.into(),
            removed: false,
        }
    }

    /// Applies a pulled page that sets (or, `None`, withdraws) rows of the cloud's catalogue.
    fn pull(s: &Store, from: &str, to: &str, rows: Vec<(&str, Option<Vec<u8>>)>) {
        s.apply_pull(&crate::store::PullUpdate {
            from_cursor: from.into(),
            next_cursor: to.into(),
            cloud_data: rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        })
        .unwrap();
    }

    fn cloud_pin(version: &str) -> Option<Vec<u8>> {
        let p = FirmwarePolicy {
            site: "hq".into(),
            model: "J179".into(),
            policy: version.into(),
        };
        Some(serde_json::to_vec(&p).unwrap())
    }

    /// A store whose config dropped `k.bin` (7.0), kept for the cloud's pin of hq's J179 to 7.0.
    fn kept_for_a_cloud_pin(dir: &std::path::Path) -> Store {
        let s = store_with_hq(dir);
        s.replace_config_releases(&[release_of("k.bin", "7.0")])
            .unwrap();
        pull(&s, "", "1", vec![("policy|hq|J179", cloud_pin("7.0"))]);
        s.replace_config_releases(&[]).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.kept, BTreeSet::from(["k.bin".to_string()]));
        assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "k.bin");
        s
    }

    /// A release kept for a cloud pin was checked again only by local writes: a pull that
    /// changed the cloud's pin left it in the catalogue for ever, and a pull that brought the
    /// cloud's own release of the pinned version left the kept one served instead of it (a
    /// local release wins over the cloud's of its model and version), its pin alarm standing.
    /// A pull that changes the cloud's catalogue now drops what it makes unneeded.
    #[test]
    fn a_pull_drops_the_kept_releases_it_makes_unneeded() {
        let dir = tempfile::tempdir().unwrap();
        let s = kept_for_a_cloud_pin(dir.path());
        let cloud = cloud_release("J179", "7.0", "cloud.bin", &"b".repeat(64));
        let row = Some(serde_json::to_vec(&cloud).unwrap());
        pull(&s, "1", "2", vec![("firmware|J179|7.0", row)]);
        let c = s.firmware_catalogue().unwrap();
        let files: Vec<&str> = c.releases.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(files, ["cloud.bin"]);
        assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "cloud.bin");
        assert!(c.kept.is_empty() && c.refused.is_empty(), "{c:?}");
        assert!(c.pin_problems().is_empty());

        let dir = tempfile::tempdir().unwrap();
        let s = kept_for_a_cloud_pin(dir.path());
        // A pull that changes nothing of the catalogue keeps it.
        pull(&s, "1", "2", vec![("policy|hq|J179", cloud_pin("7.0"))]);
        assert!(s.firmware_catalogue().unwrap().kept.contains("k.bin"));
        pull(&s, "2", "3", vec![("policy|hq|J179", cloud_pin("latest"))]);
        let c = s.firmware_catalogue().unwrap();
        assert!(c.releases.is_empty() && c.kept.is_empty(), "{c:?}");
        assert!(c.pin_problems().is_empty());
    }

    /// Every check of a release or a pin used to read the local releases and policies only,
    /// while phones are served the cloud's too. A local release whose pin a cloud release of
    /// the version serves was refused deletion; one the cloud's pin needs was deleted, leaving
    /// the cloud's pin to nothing; a local pin was accepted on a cloud release that is not
    /// served (its file name is a local release's); `edgeprov doctor` reported a pin the
    /// cloud's release serves as served by none; and a config dropping a release only the
    /// cloud's pin needs dropped it at start. Each now asks the catalogue phones are served.
    #[test]
    fn release_and_pin_checks_count_the_clouds_releases_and_pins() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with_hq(dir.path());
        let b = "b".repeat(64);

        // A local pin the cloud's release serves lets the local release of the version go.
        s.add_firmware_release(&release("local.bin")).unwrap();
        s.put_firmware_policies("global", &pin("9.9")).unwrap();
        put_cloud(
            &s,
            "firmware|J179|9.9",
            &cloud_release("J179", "9.9", "cloud.bin", &b),
        );
        s.delete_firmware_release("local.bin").unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.resolve(None, "J179").unwrap().file, "cloud.bin");
        assert!(c.pin_problems().is_empty());
        // Nor does doctor see a problem in a config without a release of the version.
        assert_eq!(s.config_release_problems(&[]).unwrap(), []);

        // The cloud's pin protects the one local release that serves it.
        s.put_firmware_policies("global", &ScopePolicies::new())
            .unwrap();
        s.add_firmware_release(&release_of("k.bin", "7.0")).unwrap();
        let policy = FirmwarePolicy {
            site: "hq".into(),
            model: "J179".into(),
            policy: "7.0".into(),
        };
        put_cloud(&s, "policy|hq|J179", &policy);
        let e = s.delete_firmware_release("k.bin").unwrap_err();
        assert!(matches!(e, StoreError::InUse(_)), "{e}");
        assert!(
            e.to_string()
                .contains("the cloud's policy for site hq pins J179 to version 7.0"),
            "{e}"
        );
        assert!(
            e.to_string().contains("set a local policy for site:hq"),
            "{e}"
        );

        // A config that drops a release the cloud's pin needs keeps it, as for a local pin.
        s.replace_config_releases(&[release_of("cfg.bin", "8.0")])
            .unwrap();
        s.delete_firmware_release("k.bin").unwrap_err();
        s.put_firmware_policies("site:hq", &pin("8.0")).unwrap();
        s.delete_firmware_release("k.bin").unwrap();
        // Nor is the overridden cloud pin, left without a release, alarmed.
        let problems = s.firmware_catalogue().unwrap().pin_problems();
        assert!(
            problems.iter().all(|p| p.pin.scope != "cloud:site:hq"),
            "{problems:?}"
        );
        put_cloud(
            &s,
            "policy|hq|J179",
            &FirmwarePolicy {
                policy: "8.0".into(),
                ..policy
            },
        );
        s.put_firmware_policies("site:hq", &ScopePolicies::new())
            .unwrap();
        s.replace_config_releases(&[]).unwrap();
        let c = s.firmware_catalogue().unwrap();
        assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "cfg.bin");
        assert!(c.kept.contains("cfg.bin"), "kept for the cloud's pin");

        // A cloud release not served (its name is a local release's, another image) serves
        // no local pin.
        put_cloud(
            &s,
            "firmware|J179|6.0",
            &cloud_release("J179", "6.0", "taken.bin", &b),
        );
        s.add_firmware_release(&Release {
            sha256: "c".repeat(64),
            ..release_of("taken.bin", "5.0")
        })
        .unwrap();
        let e = s.put_firmware_policies("global", &pin("6.0")).unwrap_err();
        assert!(matches!(e, StoreError::NoPinnedRelease { .. }), "{e}");
    }
}
