//! Firmware releases and the policies that choose one per site and model. Pure: the store
//! and the config supply the data, this file only decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Severity;
pub use crate::model::model_key;

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
    /// Whether the release is for `model`, spelled any way [`model_key`] takes as one: a
    /// family (`T5*`) covers `SIP-T54W` as it covers `T54W`, and `SIP-T5*` covers both too.
    pub fn is_for(&self, model: &str) -> bool {
        let key = model_key(model);
        self.models.iter().any(|m| match m.strip_suffix('*') {
            Some(prefix) => {
                key.starts_with(&model_key(prefix))
                    || model
                        .to_ascii_uppercase()
                        .starts_with(&prefix.to_ascii_uppercase())
            }
            None => model_key(m) == key,
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
        if self.size == Some(0) {
            // A download is refused once it passes `size`: no image could ever be cached.
            return Err((
                "size",
                "must be greater than zero (leave it out when unknown)".into(),
            ));
        }
        if let Some(u) = self
            .urls
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            let u = super::masked_url(u);
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

/// Policies of one scope, by model in the form [`policy_model`] gives it; the model `*`
/// applies to models not named.
pub type ScopePolicies = BTreeMap<String, Policy>;

/// Longest model name a policy may give: far above any phone's (`CP-8851-3PCC`), low enough
/// that an error can quote it whole.
pub const MAX_MODEL_LEN: usize = 64;

/// Why a scope's policies cannot be taken as given. Each names the model as it was spelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("model \"\": a policy names a model, or * for every model not named")]
    Empty,
    /// Releases may name families (`J1*`), policies may not: see [`policy_model`].
    #[error(
        "model {0:?}: family patterns are not supported in policies; name each model (J179), \
         or use * for every model not named"
    )]
    Pattern(String),
    /// Holds the first [`MAX_MODEL_LEN`] characters only.
    #[error("model {0:?}…: longer than {MAX_MODEL_LEN} characters")]
    TooLong(String),
    #[error("model {0:?}: a model name is letters, digits, '-', '_' and '.'")]
    NotAModel(String),
    #[error("model {0:?} is given more than one policy")]
    Twice(String),
    #[error(
        "models {0:?} and {1:?} are the same model (model names are not case-sensitive, nor \
         is a Yealink model's SIP- prefix): give it one policy"
    )]
    SameModel(String, String),
    #[error("{model}: {message}")]
    Policy { model: String, message: String },
}

/// The form a policy's model is stored and looked up in: `*`, or a model name (letters,
/// digits, `-`, `_`, `.`) as [`model_key`] gives it (upper case, a Yealink model without
/// `SIP-`), as phones, inventories and releases spell one model either way. Family patterns (`J1*`), which releases accept, are refused: within a scope, a
/// pattern next to a model it covers, another pattern or `*` would need a precedence of its
/// own, and a pinned pattern would pin whichever models its releases of the moment name, so
/// what the delete and config checks protect would change with the catalogue. Naming each
/// model, or `*`, says the same without either, and refusing now leaves patterns open to be
/// added later without any stored policy changing meaning.
pub fn policy_model(model: &str) -> Result<String, PolicyError> {
    if model == "*" {
        return Ok(model.to_string());
    }
    if model.is_empty() {
        return Err(PolicyError::Empty);
    }
    // The length first: every other refusal quotes the model whole.
    if model.chars().count() > MAX_MODEL_LEN {
        return Err(PolicyError::TooLong(
            model.chars().take(MAX_MODEL_LEN).collect(),
        ));
    }
    if model.contains('*') {
        return Err(PolicyError::Pattern(model.to_string()));
    }
    if !model
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(PolicyError::NotAModel(model.to_string()));
    }
    Ok(model_key(model))
}

/// A request's policies (model → policy text, in the order given and with any model given
/// twice kept twice, so that it can be refused) as a scope's. Two spellings of one model are
/// refused rather than one chosen: which of them the request meant cannot be known.
pub fn scope_policies<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ScopePolicies, PolicyError> {
    let mut out = ScopePolicies::new();
    let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
    for (model, text) in entries {
        let key = policy_model(model)?;
        if let Some(first) = spelled.insert(key.clone(), model) {
            return Err(if first == model {
                PolicyError::Twice(model.to_string())
            } else {
                PolicyError::SameModel(first.to_string(), model.to_string())
            });
        }
        let policy = Policy::parse(text).map_err(|message| PolicyError::Policy {
            model: model.to_string(),
            message,
        })?;
        out.insert(key, policy);
    }
    Ok(out)
}

/// A stored policy that is not followed: an earlier edgeprov stored whatever model a request
/// gave (`J1*`, which never matched a phone; an empty or garbled name), or another stored
/// spelling of its model is followed instead. Phones must come up whatever the database
/// holds, so this is not a start failure but an alarm until the scope's policies are set
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredPolicy {
    pub scope: String,
    /// As stored.
    pub model: String,
    pub policy: Policy,
    pub reason: PolicyError,
}

impl IgnoredPolicy {
    /// The alarm's source: the scope and the model as stored (quoted: it may be empty).
    pub fn source(&self) -> String {
        format!("{} {:?}", self.scope, self.model)
    }

    pub fn message(&self) -> String {
        let scope = &self.scope;
        format!(
            "policy {scope} {:?}={} is ignored: {}; set the policies of {scope} again \
             (edgeprov firmware policy {scope} MODEL=POLICY …) to drop it",
            self.model, self.policy, self.reason
        )
    }
}

/// One scope's stored policies as they are followed, keyed by [`policy_model`], and those
/// that are not. Of two stored spellings of one model, the one already in stored form wins,
/// else the first in key order, so the choice is the same at every start.
pub fn stored_policies(scope: &str, stored: ScopePolicies) -> (ScopePolicies, Vec<IgnoredPolicy>) {
    let mut followed = ScopePolicies::new();
    let mut spelled: BTreeMap<String, String> = BTreeMap::new();
    let mut ignored = Vec::new();
    let (canonical, others): (Vec<_>, Vec<_>) = stored
        .into_iter()
        .partition(|(model, _)| policy_model(model).is_ok_and(|k| &k == model));
    for (model, policy) in canonical.into_iter().chain(others) {
        let key = match policy_model(&model) {
            Ok(key) => key,
            Err(reason) => {
                ignored.push(IgnoredPolicy {
                    scope: scope.to_string(),
                    model,
                    policy,
                    reason,
                });
                continue;
            }
        };
        if let Some(first) = spelled.get(&key) {
            ignored.push(IgnoredPolicy {
                scope: scope.to_string(),
                reason: PolicyError::SameModel(first.clone(), model.clone()),
                model,
                policy,
            });
            continue;
        }
        spelled.insert(key.clone(), model);
        followed.insert(key, policy);
    }
    (followed, ignored)
}

/// Everything resolution needs: the releases and the policies of every scope
/// (`global`, `site:NAME`).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub releases: Vec<Release>,
    pub policies: BTreeMap<String, ScopePolicies>,
    /// Stored policies left out of `policies` (see [`stored_policies`]).
    pub ignored: Vec<IgnoredPolicy>,
    /// File names (lower case) of releases the config no longer lists, kept only because a
    /// pin needs them (see [`Catalogue::pin_problems`]). They serve phones like any release.
    pub kept: BTreeSet<String>,
    /// File names (lower case) of the releases that are the cloud's (see
    /// [`Catalogue::add_cloud`]); the cloud's policies are in `policies` under
    /// [`super::cloud::cloud_scope`].
    pub cloud: BTreeSet<String>,
    /// The cloud's releases and policies that are not served, and why.
    pub refused: Vec<super::cloud::Refused>,
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
            .flat_map(|r| r.models.iter().map(|m| model_key(m)))
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

    pub(super) fn policy_in(&self, scope: &str, model: &str) -> Policy {
        let Some(p) = self.policies.get(scope) else {
            return Policy::Inherit;
        };
        p.get(&model_key(model))
            .or_else(|| p.get("*"))
            .cloned()
            .unwrap_or(Policy::Inherit)
    }

    /// The effective policy for a model at a site: the site's set here, else the cloud's for
    /// the site, else the global one, else `latest`. Each level is asked for the model, then
    /// for `*`, before the next: a local policy overrides the cloud's as a local device
    /// parameter overrides the cloud's of the same name, and the cloud, which sets policies
    /// per site, is more specific than this box's global default.
    pub fn policy(&self, site: Option<&str>, model: &str) -> Policy {
        let mut p = Policy::Inherit;
        if let Some(site) = site.filter(|s| !s.is_empty()) {
            p = self.policy_in(&scope_key(Some(site)), model);
            if p == Policy::Inherit {
                p = self.policy_in(&super::cloud::cloud_scope(site), model);
            }
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

    /// Model → file for every model the catalogue knows, as the render layer wants it. A
    /// model only a family release (`J1*`) covers is not among them: the phone path adds it
    /// from the request (`Published::own_firmware`).
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
            .map(|m| model_key(m))
            .collect()
    }

    /// The pins served only by releases the config no longer lists, or by none, in scope
    /// and model order; a cloud pin a local policy overrides is none of them.
    pub fn pin_problems(&self) -> Vec<PinProblem> {
        let listed = |r: &&Release| !self.is_kept(r);
        Pin::all(&self.policies)
            .into_iter()
            .flat_map(|pin| pin.per_model(&self.releases))
            // Phones follow the local policy that overrides it: no problem of theirs.
            .filter(|pin| !self.overridden(pin))
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
                .filter_map(|k| k.strip_prefix("cloud:").unwrap_or(k).strip_prefix("site:"))
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

    /// Yealink models come as `SIP-T54W` (User-Agents, some inventories) and `T54W`: a `T5*`
    /// release used to miss the first, so a phone listed so got no firmware and no prefetch.
    /// Now every spelling is one model, for releases, families and policies alike; the prefix
    /// is dropped before Yealink models only.
    #[test]
    fn a_yealink_model_with_or_without_sip_is_one_model() {
        let mut c = Catalogue {
            releases: vec![
                rel(&["T5*"], "96.86.0.70", "t5.rom", 1),
                rel(&["SIP-T46S"], "66.86.0.15", "t46s.rom", 2),
                rel(&["SIP-T3*"], "124.86.0.40", "t3.rom", 3),
            ],
            ..Catalogue::default()
        };
        for model in ["SIP-T54W", "T54W", "sip-t54w", "t54w"] {
            assert_eq!(c.resolve(None, model).unwrap().file, "t5.rom", "{model}");
        }
        for model in ["SIP-T46S", "T46S"] {
            assert_eq!(c.resolve(None, model).unwrap().file, "t46s.rom", "{model}");
        }
        for model in ["SIP-T33G", "T33G"] {
            assert_eq!(c.resolve(None, model).unwrap().file, "t3.rom", "{model}");
        }
        assert!(c.resolve(None, "SIP-J179").is_none(), "not a Yealink model");
        assert_eq!(model_key("SIP-T54W"), "T54W");
        assert_eq!(model_key("sip-j179"), "SIP-J179");
        assert_eq!(model_key("SIP-"), "SIP-");

        // A policy in either spelling is one model's, and applies to both.
        assert_eq!(policy_model("SIP-T54W").unwrap(), "T54W");
        assert_eq!(
            scope_policies([("SIP-T54W", "off"), ("T54W", "latest")]).unwrap_err(),
            PolicyError::SameModel("SIP-T54W".into(), "T54W".into())
        );
        c.policies.insert(
            "global".into(),
            scope_policies([("SIP-T54W", "off")]).unwrap(),
        );
        assert!(c.resolve(None, "T54W").is_none());
        assert!(c.resolve(None, "SIP-T54W").is_none());
        assert_eq!(c.resolve(None, "T53W").unwrap().file, "t5.rom");
        assert!(c.models().contains("T46S") && !c.models().contains("SIP-T46S"));
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

    /// A policy's model is `*` or one model's name, kept in upper case; anything else is
    /// refused naming it. `J1*` used to be stored and never match a phone.
    #[test]
    fn a_policy_names_one_model_or_every_model() {
        for (given, stored) in [
            ("*", "*"),
            ("J179", "J179"),
            ("j179", "J179"),
            ("CP-7832-3pcc", "CP-7832-3PCC"),
            ("VVX_400", "VVX_400"),
            ("snom710", "SNOM710"),
            ("9611G.1", "9611G.1"),
        ] {
            assert_eq!(policy_model(given).unwrap(), stored, "{given}");
        }
        let longest = "A".repeat(MAX_MODEL_LEN);
        assert_eq!(policy_model(&longest).unwrap(), longest);

        let refused = |model: &str| policy_model(model).unwrap_err();
        assert_eq!(refused(""), PolicyError::Empty);
        assert_eq!(refused("J1*"), PolicyError::Pattern("J1*".into()));
        assert_eq!(
            refused("J1*").to_string(),
            "model \"J1*\": family patterns are not supported in policies; name each model \
             (J179), or use * for every model not named"
        );
        for pattern in ["*79", "**", "J*9"] {
            assert_eq!(refused(pattern), PolicyError::Pattern(pattern.into()));
        }
        for garbage in [
            "J 179", " J179", "J179\n", "../x", "J179|x", "J179=off", "é",
        ] {
            assert_eq!(refused(garbage), PolicyError::NotAModel(garbage.into()));
            assert!(
                refused(garbage)
                    .to_string()
                    .contains(&format!("{garbage:?}")),
                "the error names {garbage:?}"
            );
        }
        let long = format!("{longest}B");
        assert_eq!(refused(&long), PolicyError::TooLong(longest.clone()));
        assert_eq!(
            refused(&format!("{longest}*")),
            PolicyError::TooLong(longest.clone())
        );
        assert!(refused(&long).to_string().contains(&longest));
    }

    /// Two spellings of one model in one request used to be taken, and the policy stored was
    /// whichever spelling sorted last; now they are refused, naming both.
    #[test]
    fn one_model_in_two_spellings_is_refused() {
        let err = scope_policies([("J179", "latest"), ("j179", "off")]).unwrap_err();
        assert_eq!(err, PolicyError::SameModel("J179".into(), "j179".into()));
        assert_eq!(
            err.to_string(),
            "models \"J179\" and \"j179\" are the same model (model names are not \
             case-sensitive, nor is a Yealink model's SIP- prefix): give it one policy"
        );
        assert_eq!(
            scope_policies([("*", "off"), ("J179", "latest"), ("*", "latest")]).unwrap_err(),
            PolicyError::Twice("*".into())
        );
        assert_eq!(
            scope_policies([("j169", "a b")]).unwrap_err().to_string(),
            "j169: \"a b\" is not inherit, latest, off or a version"
        );
        assert_eq!(
            scope_policies([("K175", "off"), ("J1*", "off")]).unwrap_err(),
            PolicyError::Pattern("J1*".into())
        );

        let set = scope_policies([("j179", "4.1.3.0.6"), ("*", "off")]).unwrap();
        assert_eq!(
            set,
            ScopePolicies::from([
                ("*".to_string(), Policy::Off),
                ("J179".to_string(), Policy::Pinned("4.1.3.0.6".into())),
            ])
        );
        let mut c = cat();
        c.policies.insert("global".into(), set);
        assert_eq!(c.resolve(None, "J179").unwrap().file, "a.bin");
        assert_eq!(c.resolve(None, "j179").unwrap().file, "a.bin");
        assert!(c.resolve(None, "J169").is_none());
    }

    /// What an earlier edgeprov stored is read whatever it is: models no policy may name are
    /// left out and reported; of two spellings of one model, the stored form wins.
    #[test]
    fn stored_policies_are_followed_where_they_can_be() {
        let stored = ScopePolicies::from([
            ("J1*".to_string(), Policy::Off),
            ("T46s".to_string(), Policy::Latest),
            ("j179".to_string(), Policy::Off),
            ("J179".to_string(), Policy::Pinned("4.1.3.0.6".into())),
            ("*".to_string(), Policy::Latest),
        ]);
        let (followed, ignored) = stored_policies("site:hq", stored);
        assert_eq!(
            followed,
            ScopePolicies::from([
                ("*".to_string(), Policy::Latest),
                ("J179".to_string(), Policy::Pinned("4.1.3.0.6".into())),
                ("T46S".to_string(), Policy::Latest),
            ])
        );
        let reported: Vec<(String, PolicyError)> = ignored
            .iter()
            .map(|i| (i.source(), i.reason.clone()))
            .collect();
        assert_eq!(
            reported,
            [
                (
                    r#"site:hq "J1*""#.to_string(),
                    PolicyError::Pattern("J1*".into())
                ),
                (
                    r#"site:hq "j179""#.to_string(),
                    PolicyError::SameModel("J179".into(), "j179".into())
                ),
            ]
        );
        let message = ignored[0].message();
        assert!(
            message.starts_with(r#"policy site:hq "J1*"=off is ignored: model "J1*": family"#),
            "{message}"
        );
        assert!(
            message.contains("edgeprov firmware policy site:hq"),
            "{message}"
        );
    }
}
