//! Firmware releases and the policies that choose one per site and model. Pure: the store
//! and the config supply the data, this file only decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Severity;

/// One firmware image a phone can be told to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Models (`J179`) or family prefixes ending in `*` (`J1*`) the image is for.
    pub models: Vec<String>,
    pub version: String,
    /// The name phones ask for; unique in the catalogue.
    pub file: String,
    /// Where to fetch the image, tried in order.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Lower-case hex SHA-256 of the image: the cache key and the integrity check.
    pub sha256: String,
    /// Expected size in bytes, when known (checked before the hash, so a wrong-sized download
    /// stops early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Release {
    pub fn is_for(&self, model: &str) -> bool {
        self.models.iter().any(|m| match m.strip_suffix('*') {
            Some(prefix) => model
                .to_ascii_uppercase()
                .starts_with(&prefix.to_ascii_uppercase()),
            None => m.eq_ignore_ascii_case(model),
        })
    }

    /// Checks the fields a phone or the cache depends on; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.models.is_empty() || self.models.iter().any(|m| m.trim().is_empty()) {
            return Err(("models", "at least one non-empty model is needed".into()));
        }
        if self.version.trim().is_empty() {
            return Err(("version", "must not be empty".into()));
        }
        if !is_plain_name(&self.file) {
            return Err((
                "file",
                format!(
                    "{:?} must be a plain file name (letters, digits, . _ -)",
                    self.file
                ),
            ));
        }
        if !is_sha256_hex(&self.sha256) {
            return Err(("sha256", "must be 64 lower-case hex digits".into()));
        }
        if let Some(u) = self
            .urls
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(("urls", format!("{u:?} is not an http:// or https:// URL")));
        }
        Ok(())
    }
}

pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a site (or the whole box) wants a model to run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Whatever the next scope up says (site → global; global → the account default, `latest`).
    Inherit,
    /// The highest version in the catalogue for the model.
    Latest,
    /// Do not tell phones to change firmware.
    Off,
    /// Exactly this version.
    Pinned(String),
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, String> {
        let t = s.trim();
        Ok(match t.to_ascii_lowercase().as_str() {
            "" => return Err("a policy must not be empty".into()),
            "inherit" => Policy::Inherit,
            "latest" => Policy::Latest,
            "off" => Policy::Off,
            _ if t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) =>
            {
                Policy::Pinned(t.to_string())
            }
            _ => return Err(format!("{t:?} is not inherit, latest, off or a version")),
        })
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Inherit => f.write_str("inherit"),
            Policy::Latest => f.write_str("latest"),
            Policy::Off => f.write_str("off"),
            Policy::Pinned(v) => f.write_str(v),
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let s = String::deserialize(d)?;
        Policy::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Policies of one scope, by model; the model `*` applies to models not named.
pub type ScopePolicies = BTreeMap<String, Policy>;

/// Everything resolution needs: the releases and the policies of every scope
/// (`global`, `site:NAME`).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub releases: Vec<Release>,
    pub policies: BTreeMap<String, ScopePolicies>,
    /// File names (lower case) of releases the config no longer lists, kept only because a
    /// pin needs them (see [`Catalogue::pin_problems`]). They serve phones like any release.
    pub kept: BTreeSet<String>,
}

/// One scope's policy naming exactly one version for a model (or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub scope: String,
    pub model: String,
    pub version: String,
}

impl Pin {
    /// Every pin of every scope.
    pub fn all(policies: &BTreeMap<String, ScopePolicies>) -> Vec<Pin> {
        policies
            .iter()
            .flat_map(|(scope, set)| {
                set.iter().filter_map(move |(model, policy)| match policy {
                    Policy::Pinned(version) => Some(Pin {
                        scope: scope.clone(),
                        model: model.clone(),
                        version: version.clone(),
                    }),
                    _ => None,
                })
            })
            .collect()
    }

    /// Whether `release` serves this pin: it is of the version and for the model (any model
    /// for `*`). The admin API's checks and the config's replacement use the same test.
    pub fn served_by(&self, release: &Release) -> bool {
        release.version == self.version && (self.model == "*" || release.is_for(&self.model))
    }

    /// The pins this one stands for, one per model: a `*` pin pins each model that one of
    /// `releases` of its version is for, so that whether a release may go is judged model by
    /// model (a release of the version for another model does not serve this one's phones).
    pub fn per_model<'a>(&self, releases: impl IntoIterator<Item = &'a Release>) -> Vec<Pin> {
        if self.model != "*" {
            return vec![self.clone()];
        }
        let models: BTreeSet<String> = releases
            .into_iter()
            .filter(|r| r.version == self.version)
            .flat_map(|r| r.models.iter().map(|m| m.to_ascii_uppercase()))
            .collect();
        if models.is_empty() {
            // No release of the version at all: the pin stands as it is, served by none.
            return vec![self.clone()];
        }
        models
            .into_iter()
            .map(|model| Pin {
                model,
                ..self.clone()
            })
            .collect()
    }
}

/// A pin that no release the config lists or an operator added serves any more: the config
/// dropped its release. Phones must come up whatever the config says, so this is not a start
/// failure but an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinProblem {
    pub pin: Pin,
    /// The releases kept for it although the config no longer lists them; empty when none
    /// could be kept (the config gave its file name to another release, or an older edgeprov
    /// already dropped it), and phones of the model are then told no firmware at all.
    pub kept: Vec<String>,
}

impl PinProblem {
    /// The alarm's source: the scope and the pin as `edgeprov firmware policy` writes it, so
    /// the alarm of a pin that changes version is a different one (and the old one clears).
    pub fn source(&self) -> String {
        format!("{} {}={}", self.pin.scope, self.pin.model, self.pin.version)
    }

    /// A kept release serves phones as before (a warning: the config and the catalogue
    /// disagree); a pin without any release leaves its phones on whatever they run (major).
    pub fn severity(&self) -> Severity {
        if self.kept.is_empty() {
            Severity::Major
        } else {
            Severity::Warning
        }
    }

    pub fn message(&self) -> String {
        let Pin {
            scope,
            model,
            version,
        } = &self.pin;
        if self.kept.is_empty() {
            format!(
                "policy {scope} pins {model} to {version}, and no release of that version for \
                 {model} is in the catalogue: phones of that model are given no firmware file \
                 and keep what they run; configure or add a release of {version}, or change \
                 the policy"
            )
        } else {
            format!(
                "policy {scope} pins {model} to {version}, and the config no longer lists {}, \
                 which serves it: kept for this pin only (sites on latest no longer get \
                 it), so the pinned phones get it as before, until a release of \
                 {version} for {model} is configured or added again or the policy changes \
                 (then it goes)",
                self.kept.join(", ")
            )
        }
    }
}

/// Orders dotted versions numerically where both parts are numbers (`4.1.10` > `4.1.9`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let mut left = a.split(['.', '-', '_']);
    let mut right = b.split(['.', '-', '_']);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if o.is_ne() {
                    return o;
                }
            }
        }
    }
}

pub fn scope_key(site: Option<&str>) -> String {
    match site.filter(|s| !s.is_empty()) {
        Some(s) => format!("site:{s}"),
        None => "global".to_string(),
    }
}

impl Catalogue {
    /// The release a phone asks for by file name (phones differ in case).
    pub fn by_file(&self, file: &str) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.file.eq_ignore_ascii_case(file))
    }

    fn policy_in(&self, scope: &str, model: &str) -> Policy {
        let Some(p) = self.policies.get(scope) else {
            return Policy::Inherit;
        };
        p.iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(model))
            .or_else(|| p.get_key_value("*"))
            .map(|(_, p)| p.clone())
            .unwrap_or(Policy::Inherit)
    }

    /// The effective policy for a model at a site: the site's, else the global one, else
    /// `latest` (the account default until cloud sync supplies one).
    pub fn policy(&self, site: Option<&str>, model: &str) -> Policy {
        let mut p = Policy::Inherit;
        if site.is_some_and(|s| !s.is_empty()) {
            p = self.policy_in(&scope_key(site), model);
        }
        if p == Policy::Inherit {
            p = self.policy_in("global", model);
        }
        if p == Policy::Inherit {
            p = Policy::Latest;
        }
        p
    }

    /// Whether the config no longer lists `release` and it stays only for a pin.
    fn is_kept(&self, release: &Release) -> bool {
        self.kept.contains(&release.file.to_ascii_lowercase())
    }

    /// The release a model at a site should run, or `None` (policy off, nothing matching).
    /// A kept release serves only the pins it is kept for: under `latest` it is not a
    /// candidate, since the config dropped it (perhaps because it is bad), and a site that
    /// follows the config must not be moved onto it.
    pub fn resolve(&self, site: Option<&str>, model: &str) -> Option<&Release> {
        let candidates = self.releases.iter().filter(|r| r.is_for(model));
        match self.policy(site, model) {
            Policy::Off | Policy::Inherit => None,
            Policy::Latest => candidates
                .filter(|r| !self.is_kept(r))
                .max_by(|a, b| compare_versions(&a.version, &b.version)),
            Policy::Pinned(v) => candidates
                .filter(|r| r.version == v)
                .max_by(|a, b| a.file.cmp(&b.file)),
        }
    }

    /// Model → file for every model the catalogue knows, as the render layer wants it.
    pub fn files_for_site(&self, site: Option<&str>) -> BTreeMap<String, String> {
        self.models()
            .into_iter()
            .filter_map(|m| {
                let file = self.resolve(site, &m)?.file.clone();
                Some((m, file))
            })
            .collect()
    }

    /// Every concrete model named by a release or a policy (family patterns left out).
    pub fn models(&self) -> BTreeSet<String> {
        self.releases
            .iter()
            .flat_map(|r| r.models.iter())
            .chain(self.policies.values().flat_map(|p| p.keys()))
            .filter(|m| !m.ends_with('*'))
            .map(|m| m.to_ascii_uppercase())
            .collect()
    }

    /// The pins served only by releases the config no longer lists, or by none, in scope
    /// and model order.
    pub fn pin_problems(&self) -> Vec<PinProblem> {
        let listed = |r: &&Release| !self.is_kept(r);
        Pin::all(&self.policies)
            .into_iter()
            .flat_map(|pin| pin.per_model(&self.releases))
            .filter(|pin| {
                !self
                    .releases
                    .iter()
                    .filter(listed)
                    .any(|r| pin.served_by(r))
            })
            .map(|pin| PinProblem {
                kept: self
                    .releases
                    .iter()
                    .filter(|r| !listed(r) && pin.served_by(r))
                    .map(|r| r.file.clone())
                    .collect(),
                pin,
            })
            .collect()
    }

    /// Images some policy currently points at, for any site and any of `models` (the
    /// inventory's models plus the catalogue's): eviction never removes these.
    pub fn pinned(&self, models: &BTreeSet<String>) -> BTreeSet<String> {
        let mut scopes: Vec<Option<&str>> = vec![None];
        scopes.extend(
            self.policies
                .keys()
                .filter_map(|k| k.strip_prefix("site:"))
                .map(Some),
        );
        let all: BTreeSet<String> = models.iter().cloned().chain(self.models()).collect();
        let mut out = BTreeSet::new();
        for site in scopes {
            for m in &all {
                if let Some(r) = self.resolve(site, m) {
                    out.insert(r.sha256.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(models: &[&str], version: &str, file: &str, n: u8) -> Release {
        Release {
            models: models.iter().map(|s| s.to_string()).collect(),
            version: version.into(),
            file: file.into(),
            urls: vec![],
            sha256: format!("{:064x}", n),
            size: None,
        }
    }

    fn cat() -> Catalogue {
        Catalogue {
            releases: vec![
                rel(&["J179", "J169"], "4.1.3.0.6", "a.bin", 1),
                rel(&["J179", "J169"], "4.1.10.0.1", "b.bin", 2),
                rel(&["T4*"], "66.86.0.15", "t.rom", 3),
            ],
            ..Catalogue::default()
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(compare_versions("4.1.10", "4.1.9").is_gt());
        assert!(compare_versions("4.1", "4.1.0").is_lt());
        assert!(compare_versions("4.1.3", "4.1.3").is_eq());
    }

    #[test]
    fn latest_is_the_default() {
        let c = cat();
        assert_eq!(c.resolve(None, "J179").unwrap().file, "b.bin");
        assert_eq!(c.resolve(Some("x"), "j169").unwrap().file, "b.bin");
        assert_eq!(c.resolve(None, "T46S").unwrap().file, "t.rom");
        assert!(c.resolve(None, "K175").is_none());
    }

    #[test]
    fn site_overrides_global_and_inherit_falls_through() {
        let mut c = cat();
        c.policies.insert(
            "global".into(),
            BTreeMap::from([("*".into(), Policy::Pinned("4.1.3.0.6".into()))]),
        );
        c.policies.insert(
            "site:lab".into(),
            BTreeMap::from([
                ("J179".into(), Policy::Latest),
                ("J169".into(), Policy::Inherit),
                ("T46S".into(), Policy::Off),
            ]),
        );
        assert_eq!(c.resolve(None, "J179").unwrap().file, "a.bin");
        assert_eq!(c.resolve(Some("lab"), "J179").unwrap().file, "b.bin");
        assert_eq!(c.resolve(Some("lab"), "J169").unwrap().file, "a.bin");
        assert!(c.resolve(Some("lab"), "T46S").is_none());
        assert!(c.resolve(None, "T46S").is_none(), "pinned version absent");
        let pinned = c.pinned(&BTreeSet::from(["T46S".to_string()]));
        assert_eq!(
            pinned,
            BTreeSet::from([format!("{:064x}", 1), format!("{:064x}", 2)])
        );
    }

    /// The config dropped the newest release, which a pin at one site keeps: that site still
    /// gets it, and every site on `latest` goes by the releases the config lists.
    #[test]
    fn a_kept_release_serves_its_pin_and_not_latest() {
        let mut c = cat();
        c.releases.push(rel(&["J179"], "4.2.0.0.1", "kept.bin", 4));
        c.kept.insert("kept.bin".into());
        c.policies.insert(
            "site:lab".into(),
            BTreeMap::from([("J179".into(), Policy::Pinned("4.2.0.0.1".into()))]),
        );
        assert_eq!(c.resolve(Some("lab"), "J179").unwrap().file, "kept.bin");
        assert_eq!(c.resolve(None, "J179").unwrap().file, "b.bin");
        assert_eq!(c.resolve(Some("hq"), "J179").unwrap().file, "b.bin");
        assert_eq!(c.files_for_site(None)["J179"], "b.bin");
    }

    #[test]
    fn policy_text_round_trips() {
        for s in ["inherit", "latest", "off", "4.1.3.0.6"] {
            assert_eq!(Policy::parse(s).unwrap().to_string(), s);
        }
        assert!(Policy::parse("a b").is_err());
        assert!(Policy::parse("").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rel(&["J179"], "1", "../x", 1);
        assert_eq!(r.validate().unwrap_err().0, "file");
        r.file = "x.bin".into();
        r.sha256 = "ABC".into();
        assert_eq!(r.validate().unwrap_err().0, "sha256");
        r.sha256 = format!("{:064x}", 1);
        r.urls = vec!["ftp://x".into()];
        assert_eq!(r.validate().unwrap_err().0, "urls");
        r.urls = vec!["http://127.0.0.1:9/x".into()];
        assert!(r.validate().is_ok());
    }
}
