//! Which sites exist, and the refusal of a site that does not. A site exists when it has a
//! record (`POST /sites`, an import told to create its sites, the cloud's sync) or a device
//! names it (a device the cloud placed there, or one stored before this rule): the sites
//! `GET /sites` lists. An operator's write may name only such a site, so a typo (`lodnon`)
//! is refused instead of becoming a site nobody configured.

use std::collections::BTreeSet;

use redb::{ReadableDatabase, ReadableTable};

use super::{SITES, Store, StoreError, decode};
use crate::model::Device;

/// Every site's name, as `sites` and `devices` hold them.
pub(super) fn site_names(
    sites: &impl ReadableTable<&'static str, &'static [u8]>,
    devices: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut names = record_names(sites)?;
    for row in devices.iter()? {
        let (k, v) = row?;
        let d: Device = decode("devices", k.value(), v.value())?;
        if !d.site.is_empty() {
            names.insert(d.site);
        }
    }
    Ok(names)
}

/// The names of the sites that have a record.
fn record_names(
    sites: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut names = BTreeSet::new();
    for row in sites.iter()? {
        names.insert(row?.0.value().to_string());
    }
    Ok(names)
}

/// The refusal of `site`, which is not among `names`, for the request's `field`.
pub(super) fn unknown_site(field: &str, site: &str, names: &BTreeSet<String>) -> StoreError {
    StoreError::UnknownSite {
        field: field.to_string(),
        site: site.to_string(),
        closest: closest(site, names).map(str::to_string),
    }
}

/// The name among `names` a typo of `site` most likely meant: the nearest by edits (case
/// ignored), when at most 2 edits and fewer than half the name's letters away.
fn closest<'n>(site: &str, names: &'n BTreeSet<String>) -> Option<&'n str> {
    let lower = site.to_ascii_lowercase();
    names
        .iter()
        .map(|n| (edits(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(d, n)| *d <= 2 && *d * 2 < site.len().max(n.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.as_str())
}

/// Edits (insert, delete, replace, swap of neighbours) from `a` to `b`: a swap is one edit, as
/// `lodnon` for `london` is one slip of the fingers.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

impl Store {
    /// Refuses any of `sites` that does not exist, naming `field`: for what a request names
    /// without writing a device (a token's sites, a job's selection and a move's target, a
    /// listing's filter). A site with a record is found by its key, one only devices name in
    /// the cached device list ([`Store::devices_snapshot`]), which also gives the names a
    /// refusal suggests: no device is read from the table again for a listing.
    pub fn require_sites<'s>(
        &self,
        field: &str,
        sites: impl IntoIterator<Item = &'s String>,
    ) -> Result<(), StoreError> {
        let tx = self.db()?.begin_read()?;
        let records = tx.open_table(SITES)?;
        let mut devices = None;
        for site in sites {
            if records.get(site.as_str())?.is_some() {
                continue;
            }
            let devices = match &mut devices {
                Some(d) => d,
                None => devices.insert(self.devices_snapshot()?),
            };
            if site.is_empty() || !devices.iter().any(|d| &d.site == site) {
                let mut names = record_names(&records)?;
                names.extend(
                    devices
                        .iter()
                        .filter(|d| !d.site.is_empty())
                        .map(|d| d.site.clone()),
                );
                return Err(unknown_site(field, site, &names));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mac, Site};

    /// A site exists with a record or with a device in it; any other name, and the empty one,
    /// is refused with the field and the existing site it likely meant, whichever of the two
    /// ways that site exists.
    #[test]
    fn a_site_exists_by_its_record_or_its_devices() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let london = Site {
            name: "london".into(),
            ..Site::default()
        };
        store.create_site(&london).unwrap();
        let mut placed = Device::new(Mac::from_octets([2, 0, 0, 0, 0, 1]));
        placed.site = "paris".into();
        store.place_device(placed);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        store
            .require_sites("site", &names(&["london", "paris"]))
            .unwrap();
        for (typo, meant) in [
            ("lodnon", Some("london")),
            ("parsi", Some("paris")),
            ("", None),
        ] {
            let refused = store.require_sites("selection.site", &names(&["london", typo]));
            let Err(StoreError::UnknownSite {
                field,
                site,
                closest,
            }) = refused
            else {
                panic!("{typo:?}: {refused:?}");
            };
            assert_eq!(field, "selection.site");
            assert_eq!((site.as_str(), closest.as_deref()), (typo, meant));
        }
    }

    #[test]
    fn a_typo_is_matched_to_the_site_it_meant_and_a_new_name_to_none() {
        let names: BTreeSet<String> = ["london", "paris", "hq"].map(String::from).into();
        assert_eq!(closest("lodnon", &names), Some("london"));
        assert_eq!(closest("London", &names), Some("london"));
        assert_eq!(closest("pari", &names), Some("paris"));
        assert_eq!(closest("branch", &names), None);
        // Two letters off a two-letter name is another name, not a typo.
        assert_eq!(closest("ab", &names), None);
    }
}
