//! What the phone requests of one store generation share, so a boot storm reads the layers and
//! renders each common file once instead of on every request.
//!
//! Everything here belongs to one [`Store::generation`] and one firmware catalogue: a request
//! that finds either changed starts a new [`Published`], so a change made through the admin
//! API (which commits, and so raises the generation, before it answers) is served to the very
//! next request. Per-device files are never kept: they carry the device's own data and secrets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use http::HeaderValue;

use crate::firmware::{Catalogue, policy_model};
use crate::settings::render::{Common, FileName};
use crate::store::{StaticFile, StaticIndex, Store, StoreError};

/// The operator's additions to the generated Avaya settings.
pub(super) const SPECIALS: &str = "46xxspecials.txt";

/// Bounds on what one generation keeps. Rendered files are keyed partly by what requests say
/// (the Host a phone used, its model and firmware version), so they are bounded; past a bound,
/// files are rendered per request. `MAX_FILE_BYTES` counts the keys with the files: a
/// User-Agent may name a model and version of kilobytes each, and a few bytes of file under a
/// 16 KB key took 16 MB that no bound counted.
const MAX_COMMONS: usize = 256;
const MAX_FILES: usize = 1_024;
const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Bound on the (site, model) pairs whose firmware one generation remembers: models come from
/// requests' User-Agents too. Past it, the catalogue (in memory) is asked per request.
const MAX_MODELS: usize = 1_024;

/// A file ready to send: its bytes and their ETag.
#[derive(Clone)]
pub struct Ready {
    pub bytes: Bytes,
    pub etag: HeaderValue,
}

impl Ready {
    pub fn new(bytes: Bytes) -> Ready {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let etag = format!("\"{}\"", super::credentials::hex(&d.as_ref()[..16]));
        Ready {
            bytes,
            etag: HeaderValue::from_str(&etag).expect("hex digits in quotes are a header value"),
        }
    }
}

/// A rendered common file's identity within a generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub site: Option<String>,
    /// The file the asked name resolved to, not the name as asked: names match in any letter
    /// case, and keyed by spelling, `46XXSETTINGS.TXT` and `46xxsettings.txt` were rendered and
    /// kept twice, and a stream of case variants filled the bound with copies of one file.
    pub file: FileName,
    pub firmware_base: String,
    /// [`crate::settings::render::requester_part`].
    pub requester: String,
}

impl FileKey {
    /// The bytes its text takes.
    fn text_len(&self) -> usize {
        self.site.as_ref().map_or(0, String::len) + self.firmware_base.len() + self.requester.len()
    }
}

#[derive(Default)]
struct Files {
    map: HashMap<FileKey, Ready>,
    bytes: usize,
}

/// A site (`None` for no site) and a model in stored form ([`policy_model`]).
type SiteModel = (Option<String>, String);

/// The shared state of one generation.
pub struct Published {
    generation: u64,
    catalogue: Arc<Catalogue>,
    /// The site this box serves per its cloud registration.
    pub home_site: Option<String>,
    statics: StaticIndex,
    /// Site → the common data of its phones (without a firmware base: see [`Published::common`]).
    commons: Mutex<HashMap<Option<String>, Arc<Common>>>,
    files: Mutex<Files>,
    /// (Site, model) → the file the policies choose for a model [`Published::common`] leaves
    /// out: one only a family release (`J1*`) covers. See [`Published::own_firmware`].
    models: Mutex<HashMap<SiteModel, Option<String>>>,
    /// Whether any release names a family: without one, [`Published::common`] names every
    /// model a release is for, and a request costs no look-up.
    family_releases: bool,
}

impl Published {
    /// Reads what a generation shares. Read the generation first: the data read after it is at
    /// least as new.
    pub fn read(
        store: &Store,
        catalogue: Arc<Catalogue>,
        generation: u64,
    ) -> Result<Published, StoreError> {
        Ok(Published {
            generation,
            home_site: store.home_site()?,
            statics: store.static_index()?,
            commons: Mutex::default(),
            files: Mutex::default(),
            models: Mutex::default(),
            family_releases: catalogue
                .releases
                .iter()
                .any(|r| r.models.iter().any(|m| m.ends_with('*'))),
            catalogue,
        })
    }

    /// The model (in stored form) and the file the policies choose for it at `site`, when
    /// `common` (that site's) does not name the model: its firmware list holds the models
    /// releases and policies name, and a model only a family release (`J1*`) covers is known
    /// only from the request (the User-Agent, or the device the file is about). Resolved once
    /// per generation and site; no store read.
    pub fn own_firmware(
        &self,
        common: &Common,
        site: Option<&str>,
        model: &str,
    ) -> Option<(String, String)> {
        if !self.family_releases {
            return None;
        }
        let model = policy_model(model).ok().filter(|m| m != "*")?;
        if common.firmware.contains_key(&model) {
            return None;
        }
        let key = (site.map(str::to_string), model);
        let remembered = lock(&self.models).get(&key).cloned();
        let file = match remembered {
            Some(file) => file,
            None => {
                let file = self.catalogue.resolve(site, &key.1).map(|r| r.file.clone());
                let mut models = lock(&self.models);
                if models.len() < MAX_MODELS {
                    models.insert(key.clone(), file.clone());
                }
                file
            }
        };
        Some((key.1, file?))
    }

    /// The operator's static file `name` for phones of `site`, if there is one.
    pub fn static_file(
        &self,
        store: &Store,
        site: Option<&str>,
        name: &str,
    ) -> Result<Option<StaticFile>, StoreError> {
        if self.statics.contains(site, name) {
            store.static_file(site, name)
        } else {
            Ok(None)
        }
    }

    /// The common data for phones of `site`. Its firmware base is empty: the base comes from
    /// each request's Host, and one copy per Host would let requests multiply this memory.
    pub fn common(&self, store: &Store, site: Option<&str>) -> Result<Arc<Common>, StoreError> {
        let key = site.map(str::to_string);
        if let Some(c) = lock(&self.commons).get(&key) {
            return Ok(c.clone());
        }
        let layers = store.common_layers(site)?;
        let mut common = Common::from_layers(&layers, self.statics.contains(site, SPECIALS));
        common.firmware = self.catalogue.files_for_site(site);
        let common = Arc::new(common);
        let mut commons = lock(&self.commons);
        if commons.len() < MAX_COMMONS {
            commons.insert(key, common.clone());
        }
        Ok(common)
    }

    /// A common file rendered earlier in this generation.
    pub fn file(&self, key: &FileKey) -> Option<Ready> {
        lock(&self.files).map.get(key).cloned()
    }

    /// Keeps a rendered common file for the rest of the generation, within the bounds.
    pub fn keep(&self, key: FileKey, ready: &Ready) {
        let mut files = lock(&self.files);
        let size = ready.bytes.len() + key.text_len();
        if files.map.len() < MAX_FILES
            && files.bytes + size <= MAX_FILE_BYTES
            && files.map.insert(key, ready.clone()).is_none()
        {
            files.bytes += size;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The current generation's [`Published`], replaced when the store or the catalogue changes.
#[derive(Default)]
pub struct RenderCache {
    current: RwLock<Option<Arc<Published>>>,
}

impl RenderCache {
    pub fn current(
        &self,
        store: &Store,
        catalogue: &Arc<Catalogue>,
    ) -> Result<Arc<Published>, StoreError> {
        let generation = store.generation();
        let fresh =
            |p: &Arc<Published>| p.generation == generation && Arc::ptr_eq(&p.catalogue, catalogue);
        if let Some(p) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|p| fresh(p))
        {
            return Ok(p.clone());
        }
        let published = Arc::new(Published::read(store, catalogue.clone(), generation)?);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Never replace a newer generation with an older one read concurrently.
        if current.as_ref().is_none_or(|p| p.generation <= generation) {
            *current = Some(published.clone());
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::Release;

    fn release(models: &[&str], file: &str) -> Release {
        Release {
            models: models.iter().map(|m| m.to_string()).collect(),
            version: "1".into(),
            file: file.into(),
            urls: Vec::new(),
            sha256: "a".repeat(64),
            size: None,
        }
    }

    /// What requests put in the keys counts against the bound with the files: a flood of
    /// User-Agents naming long models kept 20 MB of keys under a 16 MB bound.
    #[test]
    fn the_kept_files_and_their_keys_stay_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let published =
            Published::read(&store, Arc::new(Catalogue::default()), store.generation()).unwrap();
        let ready = Ready::new(Bytes::from_static(b"small file"));
        for i in 0..MAX_FILES {
            let key = FileKey {
                site: None,
                file: FileName::YealinkBoot,
                firmware_base: String::new(),
                requester: format!("T{i} {}", "9".repeat(20 * 1024)),
            };
            published.keep(key, &ready);
        }
        let files = lock(&published.files);
        let held: usize = files
            .map
            .iter()
            .map(|(k, f)| k.text_len() + f.bytes.len())
            .sum();
        assert!(held <= MAX_FILE_BYTES, "{held} bytes held");
        assert!(!files.map.is_empty(), "files within the bound are kept");
    }

    /// A model only a family release covers gets that release's file, once resolved; a model
    /// the site's list names, one no release covers, or a name no model has, gets nothing
    /// added; and without family releases nothing is looked up at all.
    #[test]
    fn own_firmware_adds_what_only_a_family_release_covers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let catalogue = Arc::new(Catalogue {
            releases: vec![release(&["J1*"], "j1.bin"), release(&["T46S"], "t.rom")],
            ..Catalogue::default()
        });
        let published = Published::read(&store, catalogue, store.generation()).unwrap();
        let common = published.common(&store, None).unwrap();
        assert_eq!(common.firmware.keys().collect::<Vec<_>>(), ["T46S"]);
        let own = |model: &str| published.own_firmware(&common, None, model);
        for _ in 0..2 {
            assert_eq!(own("j179"), Some(("J179".into(), "j1.bin".into())));
        }
        assert_eq!(own("T46S"), None);
        assert_eq!(own("K175"), None);
        assert_eq!(own("J1 79"), None);
        assert_eq!(own("*"), None);

        let concrete = Arc::new(Catalogue {
            releases: vec![release(&["J179"], "j179.bin")],
            ..Catalogue::default()
        });
        let published = Published::read(&store, concrete, store.generation()).unwrap();
        assert_eq!(
            published.own_firmware(&Common::default(), None, "J179"),
            None
        );
    }
}
