//! A plain parameter whose name makes it a secret (`SIP_PASSWORD`, `admin.password` set without
//! `--secret`, docs/parameters.md) is shown as a secret is, by name only. The device view, the
//! layer view and the audit entries of their changes all go through these two functions, so
//! no view shows a value another one hides.

use std::collections::{BTreeMap, BTreeSet};

use crate::settings::vocab::is_secret;

/// `params` without the secret-named ones, and the sorted names of `secrets` and of those.
pub fn split(
    params: BTreeMap<String, String>,
    secrets: impl IntoIterator<Item = String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let (named, plain): (BTreeMap<_, _>, BTreeMap<_, _>) =
        params.into_iter().partition(|(name, _)| is_secret(name));
    let names: BTreeSet<String> = secrets.into_iter().chain(named.into_keys()).collect();
    (plain, names.into_iter().collect())
}

/// The secret-named parameters of `params` with their values, for the audit to say which of
/// them changed (masked).
pub fn values(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(name, _)| is_secret(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}
