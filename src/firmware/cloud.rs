//! The cloud's firmware releases and policies (pulled into `cloud_data`) added to the local
//! catalogue. Pure: the store reads the rows, this file decides what of them is served.
//!
//! Local data wins, as a local device parameter overrides the cloud's of the same name: a
//! local release of the same model and version, a local release of the same file name, a
//! local policy of the same site and model. Nothing of the cloud's is dropped silently: what
//! cannot be served is listed in [`Catalogue::refused`] and alarmed.

use super::catalogue::{Catalogue, Pin, Policy, Release, is_plain_name};
use crate::sync::protocol::{FirmwarePolicy, FirmwareRelease};

/// The scope the cloud's policies of `site` are kept under, beside the local `site:NAME`
/// and `global`: listings show them there, and no local write can name it.
pub fn cloud_scope(site: &str) -> String {
    format!("cloud:site:{site}")
}

/// A cloud release or policy that is not served, and why. Stored as JSON for a release the
/// pull refused for its fields (`sync::pull`), which never reaches [`release_of`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refused {
    /// The alarm's source: `cloud firmware MODEL VERSION` or `cloud policy SITE MODEL`.
    pub source: String,
    pub message: String,
}

/// The name phones ask for a cloud release by: the last segment of its URL's path (query
/// and fragment left out), under the rule for a locally added release's file name.
pub fn file_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next().unwrap_or("");
    is_plain_name(name).then_some(name)
}

/// The release a cloud item stands for, or why it cannot be served.
pub fn release_of(f: &FirmwareRelease) -> Result<Release, String> {
    let shown = super::masked_url(&f.url);
    let file = file_name(&f.url).ok_or_else(|| {
        format!(
            "its URL {shown:?} ends in no file name phones can ask for (letters, digits, \
             . _ -, not starting with .)"
        )
    })?;
    let release = Release {
        models: vec![f.model.clone()],
        version: f.version.clone(),
        file: file.to_string(),
        urls: vec![f.url.clone()],
        sha256: f.sha256.to_ascii_lowercase(),
        size: None,
    };
    release
        .validate()
        .map_err(|(field, message)| format!("{field}: {message}"))?;
    Ok(release)
}

fn refused(f: &FirmwareRelease, why: String) -> Refused {
    Refused {
        source: format!("cloud firmware {} {}", f.model, f.version),
        message: format!(
            "the cloud's firmware release {} {} is not served: {why}",
            f.model, f.version
        ),
    }
}

impl Catalogue {
    /// Adds the cloud's releases and policies (as pulled, in key order) to a catalogue of
    /// local ones. A cloud release is left out, and listed in `refused`, when its file name
    /// cannot be derived, or is a local release's or an earlier cloud release's for another
    /// image; the same image under the same name is one release for the models of both. A
    /// local release of the same model and version wins (refused only when its image differs,
    /// so that the operator sees the cloud disagrees). `same_as_account` falls through to the
    /// next level: the protocol defines no account-level policy.
    pub fn add_cloud(&mut self, releases: Vec<FirmwareRelease>, policies: Vec<FirmwarePolicy>) {
        let local = self.releases.len();
        for f in releases {
            let release = match release_of(&f) {
                Ok(r) => r,
                Err(why) => {
                    self.refused.push(refused(&f, why));
                    continue;
                }
            };
            let (locals, clouds) = self.releases.split_at_mut(local);
            if let Some(l) = locals
                .iter()
                .find(|l| l.version == release.version && l.is_for(&f.model))
            {
                if l.sha256 != release.sha256 {
                    let why = format!(
                        "the local release {} of that model and version is served instead \
                         (its image differs: sha256 {} here, {} from the cloud)",
                        l.file, l.sha256, release.sha256
                    );
                    self.refused.push(refused(&f, why));
                }
                continue;
            }
            let same_name = |r: &Release| r.file.eq_ignore_ascii_case(&release.file);
            if let Some(l) = locals.iter().find(|r| same_name(r)) {
                if l.sha256 != release.sha256 {
                    let why = format!(
                        "its file name {} is the local release {} {}'s, a different image",
                        release.file,
                        l.version,
                        l.models.join(",")
                    );
                    self.refused.push(refused(&f, why));
                }
                continue;
            }
            if let Some(c) = clouds.iter_mut().find(|r| same_name(r)) {
                if c.sha256 == release.sha256 && c.version == release.version {
                    if !c.models.contains(&f.model) {
                        c.models.push(f.model.clone());
                    }
                } else {
                    let why = format!(
                        "its file name {} is already the cloud's release {} {}, a different \
                         image",
                        release.file,
                        c.models.join(","),
                        c.version
                    );
                    self.refused.push(refused(&f, why));
                }
                continue;
            }
            self.cloud.insert(release.file.to_ascii_lowercase());
            self.releases.push(release);
        }
        for p in policies {
            let text = p.policy.trim();
            if text.eq_ignore_ascii_case("same_as_account") {
                continue;
            }
            match Policy::parse(text) {
                Ok(policy) => {
                    self.policies
                        .entry(cloud_scope(&p.site))
                        .or_default()
                        .insert(p.model.clone(), policy);
                }
                Err(why) => self.refused.push(Refused {
                    source: format!("cloud policy {} {}", p.site, p.model),
                    message: format!(
                        "the cloud's firmware policy for {} at site {} is not followed: {why}",
                        p.model, p.site
                    ),
                }),
            }
        }
    }

    /// Whether `pin` is the cloud's and a local policy of its site decides its model instead
    /// (`site:NAME` names the model or `*`): phones follow the local one, so the cloud's pin
    /// needs no release here, and setting a local policy is what an operator can do about
    /// the cloud's pin.
    pub fn overridden(&self, pin: &Pin) -> bool {
        pin.scope
            .strip_prefix("cloud:")
            .is_some_and(|local| self.policy_in(local, &pin.model) != Policy::Inherit)
    }

    /// Whether `release` is the cloud's (`cloud`) or this box's (`local`: the config's or an
    /// operator's).
    pub fn source(&self, release: &Release) -> &'static str {
        if self.cloud.contains(&release.file.to_ascii_lowercase()) {
            "cloud"
        } else {
            "local"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(model: &str, version: &str, url: &str, n: u8) -> FirmwareRelease {
        FirmwareRelease {
            model: model.into(),
            version: version.into(),
            url: url.into(),
            sha256: format!("{:064X}", n),
            removed: false,
        }
    }

    fn local(file: &str, version: &str, n: u8) -> Release {
        Release {
            models: vec!["J179".into()],
            version: version.into(),
            file: file.into(),
            urls: vec![],
            sha256: format!("{:064x}", n),
            size: None,
        }
    }

    fn policy(site: &str, model: &str, policy: &str) -> FirmwarePolicy {
        FirmwarePolicy {
            site: site.into(),
            model: model.into(),
            policy: policy.into(),
        }
    }

    #[test]
    fn the_file_name_is_the_urls_last_segment() {
        assert_eq!(file_name("https://fw.example/a/j179.bin"), Some("j179.bin"));
        assert_eq!(
            file_name("https://fw.example/j179.bin?sig=x#y"),
            Some("j179.bin")
        );
        for none in [
            "https://fw.example",
            "https://fw.example/",
            "https://fw.example/dir/",
            "https://fw.example/.hidden",
            "https://fw.example/a%20b.bin",
        ] {
            assert_eq!(file_name(none), None, "{none}");
        }
    }

    /// Local data wins; a collision of names between different images is refused naming the
    /// release, never served under the other's name.
    #[test]
    fn cloud_releases_join_the_local_ones_where_nothing_local_says_otherwise() {
        let mut c = Catalogue {
            releases: vec![local("mine.bin", "1", 1), local("same.bin", "2", 2)],
            ..Catalogue::default()
        };
        c.add_cloud(
            vec![
                cloud("J179", "3", "https://fw.example/new.bin", 3),
                cloud("J169", "3", "https://fw.example/new.bin", 3),
                cloud("K175", "3", "https://fw.example/new.bin", 9),
                cloud("J179", "1", "https://fw.example/other.bin", 4),
                cloud("J179", "2", "https://fw.example/x.bin", 2),
                cloud("J139", "5", "https://fw.example/MINE.bin", 5),
                cloud("J139", "6", "https://fw.example/", 6),
            ],
            vec![
                policy("hq", "J179", "4.1"),
                policy("hq", "J169", "same_as_account"),
                policy("lab", "*", "off"),
            ],
        );
        let files: Vec<(&str, &str, Vec<String>)> = c
            .releases
            .iter()
            .map(|r| (r.file.as_str(), c.source(r), r.models.clone()))
            .collect();
        assert_eq!(
            files,
            [
                ("mine.bin", "local", vec!["J179".to_string()]),
                ("same.bin", "local", vec!["J179".to_string()]),
                (
                    "new.bin",
                    "cloud",
                    vec!["J179".to_string(), "J169".to_string()]
                ),
            ]
        );
        assert_eq!(c.releases[2].sha256, format!("{:064x}", 3), "lower case");
        let sources: Vec<&str> = c.refused.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "cloud firmware K175 3",
                "cloud firmware J179 1",
                "cloud firmware J139 5",
                "cloud firmware J139 6",
            ]
        );
        assert!(
            c.refused[2]
                .message
                .contains("MINE.bin is the local release")
        );
        assert_eq!(
            c.policies[&cloud_scope("hq")],
            [("J179".to_string(), Policy::Pinned("4.1".into()))].into()
        );
        assert_eq!(
            c.policies[&cloud_scope("lab")],
            [("*".to_string(), Policy::Off)].into()
        );
    }

    /// Local site policy, else the cloud's for the site, else the local global one, else
    /// `latest`; `same_as_account` falls through.
    #[test]
    fn a_local_policy_overrides_the_clouds_and_the_cloud_overrides_the_global_one() {
        let mut c = Catalogue {
            releases: vec![local("old.bin", "1", 1), local("new.bin", "2", 2)],
            ..Catalogue::default()
        };
        c.policies.insert(
            "global".into(),
            [("*".to_string(), Policy::Pinned("1".into()))].into(),
        );
        c.policies
            .insert("site:hq".into(), [("J179".to_string(), Policy::Off)].into());
        c.add_cloud(
            vec![],
            vec![
                policy("hq", "J179", "latest"),
                policy("lab", "J179", "latest"),
                policy("dev", "J179", "same_as_account"),
            ],
        );
        assert!(c.resolve(Some("hq"), "J179").is_none(), "local off wins");
        assert_eq!(c.resolve(Some("lab"), "J179").unwrap().file, "new.bin");
        assert_eq!(c.resolve(Some("dev"), "J179").unwrap().file, "old.bin");
        assert_eq!(c.resolve(None, "J179").unwrap().file, "old.bin");
    }
}
