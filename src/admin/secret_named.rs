//! A plain parameter whose name makes it a secret (`SIP_PASSWORD`, `admin.password` set without
//! `--secret`, docs/parameters.md), or whose value holds one (a URL with a login), is shown as
//! a secret is. The device view, the layer view and the audit entries of their changes go
//! through these two functions (and `set_param` jobs and the CSV export through the same
//! [`is_secret_param`]), so no view shows a value another one hides, and none shows what the
//! renderer keeps out of the files every phone reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::settings::vocab::is_secret_param;

/// `params` without the secret-named ones, and the sorted names of `secrets` and of those.
pub fn split(
    params: BTreeMap<String, String>,
    secrets: impl IntoIterator<Item = String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let (named, plain): (BTreeMap<_, _>, BTreeMap<_, _>) = params
        .into_iter()
        .partition(|(name, value)| is_secret_param(name, value));
    let names: BTreeSet<String> = secrets.into_iter().chain(named.into_keys()).collect();
    (plain, names.into_iter().collect())
}

/// The secret-named parameters of `params` with their values, for the audit to say which of
/// them changed (masked).
pub fn values(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(name, value)| is_secret_param(name, value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL with a login under a neutral name was shown in clear by the device and layer
    /// views and their audit entries, though the renderer keeps it out of common files.
    #[test]
    fn a_value_with_a_login_is_shown_as_a_secret() {
        let url = "yealink:static.auto_provision.server.url";
        let params = BTreeMap::from([
            (
                url.to_string(),
                "https://prov:Hunter2pw@prov.example/".to_string(),
            ),
            ("sip.domain".to_string(), "pbx.example".to_string()),
            ("admin.password".to_string(), "4711".to_string()),
            (
                "firmware.url".to_string(),
                "https://files.example/fw.bin".to_string(),
            ),
        ]);
        let (plain, names) = split(params.clone(), ["SIP_PASSWORD".to_string()]);
        assert_eq!(
            plain.keys().collect::<Vec<_>>(),
            ["firmware.url", "sip.domain"]
        );
        assert_eq!(names, ["SIP_PASSWORD", "admin.password", url]);
        assert_eq!(
            values(&params).into_keys().collect::<Vec<_>>(),
            ["admin.password", url]
        );
    }
}
