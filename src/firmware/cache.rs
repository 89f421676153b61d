//! The content-addressed image store on disk.
//!
//! `cache_dir/sha256/<hex>` holds only complete, verified images: a download goes to
//! `cache_dir/partial/<hex>.part`, is verified, fsynced and then renamed into place, so after
//! `kill -9` or a power cut a name under `sha256/` is always a whole, correct image and a
//! `.part` file is only ever resumed, never served.
//!
//! Recency is kept in memory (seeded from file modification times at start); eviction removes
//! the least recently used images that no policy points at.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::catalogue::is_sha256_hex;

pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    total: u64,
    clock: u64,
}

struct Entry {
    size: u64,
    used: u64,
}

/// One cached image as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CachedImage {
    pub sha256: String,
    pub size: u64,
    /// Rank in recency: higher is more recently used.
    pub used: u64,
}

/// What a scrub found: how many images it re-hashed, and those removed for not matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scrubbed {
    pub checked: usize,
    pub removed: Vec<String>,
}

/// Not enough room even after evicting everything unpinned.
#[derive(Debug, thiserror::Error)]
#[error(
    "cache is full: {needed} bytes needed, {free} free of {max} after evicting unpinned images"
)]
pub struct CacheFull {
    pub needed: u64,
    pub free: u64,
    pub max: u64,
}

impl Cache {
    /// Creates the directories and indexes what is already cached. Blocking.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Cache> {
        std::fs::create_dir_all(dir.join("sha256"))?;
        std::fs::create_dir_all(dir.join("partial"))?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir.join("sha256"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata()?;
            if !is_sha256_hex(&name) || !meta.is_file() {
                continue;
            }
            found.push((meta.modified().ok(), name, meta.len()));
        }
        found.sort();
        let mut state = State::default();
        for (_, name, size) in found {
            state.clock += 1;
            state.total += size;
            state.entries.insert(
                name,
                Entry {
                    size,
                    used: state.clock,
                },
            );
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn image_path(&self, sha: &str) -> PathBuf {
        self.dir.join("sha256").join(sha)
    }

    pub fn part_path(&self, sha: &str) -> PathBuf {
        self.dir.join("partial").join(format!("{sha}.part"))
    }

    /// The image's path and size if cached, marking it recently used.
    pub fn lookup(&self, sha: &str) -> Option<(PathBuf, u64)> {
        let mut st = self.lock();
        st.clock += 1;
        let clock = st.clock;
        let e = st.entries.get_mut(sha)?;
        e.used = clock;
        let size = e.size;
        Some((self.image_path(sha), size))
    }

    /// Drops an entry whose file disappeared behind our back.
    pub fn forget(&self, sha: &str) {
        let mut st = self.lock();
        if let Some(e) = st.entries.remove(sha) {
            st.total -= e.size;
        }
    }

    /// Moves a complete, verified and fsynced `.part` file into place. Blocking.
    pub fn publish(&self, sha: &str, part: &Path, size: u64) -> io::Result<PathBuf> {
        let dest = self.image_path(sha);
        std::fs::rename(part, &dest)?;
        std::fs::File::open(self.dir.join("sha256"))?.sync_all()?;
        let mut st = self.lock();
        st.clock += 1;
        let used = st.clock;
        if let Some(old) = st.entries.insert(sha.to_string(), Entry { size, used }) {
            st.total -= old.size;
        }
        st.total += size;
        Ok(dest)
    }

    /// Bytes free to an unprivileged writer on the file system that holds the downloads.
    /// Blocking.
    pub fn disk_free(&self) -> io::Result<u64> {
        let st = rustix::fs::statvfs(self.dir.join("partial"))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Whether `needed` more bytes could fit once every unpinned image is evicted; evicts
    /// nothing. A download of known size asks this before it starts, so that an image that
    /// can never fit fails at once, and evicts only once it is verified ([`Cache::make_room`]).
    pub fn room_for(&self, needed: u64, pinned: &BTreeSet<String>) -> Result<(), CacheFull> {
        self.check_room(&self.lock(), needed, pinned)
    }

    fn check_room(
        &self,
        st: &State,
        needed: u64,
        pinned: &BTreeSet<String>,
    ) -> Result<(), CacheFull> {
        let evictable: u64 = st
            .entries
            .iter()
            .filter(|(sha, _)| !pinned.contains(*sha))
            .map(|(_, e)| e.size)
            .sum();
        let kept = st.total.saturating_sub(evictable);
        if kept.saturating_add(needed) > self.max_bytes {
            return Err(CacheFull {
                needed,
                free: self.max_bytes.saturating_sub(kept),
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Evicts least recently used, unpinned images until `needed` more bytes fit. Called for
    /// an image already verified, right before it is published: a fetch that fails costs no
    /// cached image. Blocking.
    pub fn make_room(
        &self,
        needed: u64,
        pinned: &BTreeSet<String>,
    ) -> Result<Vec<String>, CacheFull> {
        let mut st = self.lock();
        // What stays whatever is evicted: when even that leaves no room, evict nothing (an
        // image that cannot fit must not empty the cache on its way to failing).
        self.check_room(&st, needed, pinned)?;
        let mut evicted = Vec::new();
        while st.total.saturating_add(needed) > self.max_bytes {
            let victim = st
                .entries
                .iter()
                .filter(|(sha, _)| !pinned.contains(*sha))
                .min_by_key(|(_, e)| e.used)
                .map(|(sha, _)| sha.clone());
            let Some(sha) = victim else {
                return Err(CacheFull {
                    needed,
                    free: self.max_bytes.saturating_sub(st.total),
                    max: self.max_bytes,
                });
            };
            if let Some(e) = st.entries.remove(&sha) {
                st.total -= e.size;
            }
            // An open download keeps reading the unlinked file; new requests refetch.
            if let Err(e) = std::fs::remove_file(self.image_path(&sha)) {
                tracing::warn!(%sha, error = %e, "cannot remove evicted image");
            }
            evicted.push(sha);
        }
        Ok(evicted)
    }

    /// Removes every file under `partial/` but the `.part` files of `wanted` images, and returns
    /// their names. Run at start, before any fetch or upload: a download stopped by a crash, a
    /// failure or a restart is resumed only while a release still names its image, and one no
    /// release names (dropped from the config meanwhile) would otherwise stay on the disk for
    /// ever, outside `max_cache_bytes`. Blocking.
    pub fn remove_unwanted_parts(&self, wanted: &BTreeSet<&str>) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for e in std::fs::read_dir(self.dir.join("partial"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let keep = name
                .strip_suffix(".part")
                .is_some_and(|sha| wanted.contains(sha));
            if keep || !e.file_type()?.is_file() {
                continue;
            }
            match std::fs::remove_file(e.path()) {
                Ok(()) => removed.push(name),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Removes an image and any partial download of it. Blocking.
    pub fn remove(&self, sha: &str) -> io::Result<bool> {
        let had = {
            let mut st = self.lock();
            match st.entries.remove(sha) {
                Some(e) => {
                    st.total -= e.size;
                    true
                }
                None => false,
            }
        };
        for p in [self.image_path(sha), self.part_path(sha)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(had)
    }

    pub fn list(&self) -> Vec<CachedImage> {
        let st = self.lock();
        let mut out: Vec<CachedImage> = st
            .entries
            .iter()
            .map(|(sha, e)| CachedImage {
                sha256: sha.clone(),
                size: e.size,
                used: e.used,
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.used));
        out
    }

    pub fn total(&self) -> u64 {
        self.lock().total
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Re-hashes every cached image and removes those that no longer match their name (bit
    /// rot, an operator's edit) or cannot be read (gone, permissions, a disk error): none of
    /// them can be served, and each is fetched again on demand. One that cannot be read used
    /// to fail the whole scrub, leaving every image after it unchecked. Blocking.
    pub fn scrub(&self) -> io::Result<Scrubbed> {
        let shas: Vec<String> = self.lock().entries.keys().cloned().collect();
        let checked = shas.len();
        let mut bad = Vec::new();
        for sha in shas {
            let ok = match sha256_file(&self.image_path(&sha)) {
                Ok(h) => h == sha,
                Err(e) => {
                    tracing::warn!(%sha, error = %e, "cannot read cached image; removing it");
                    false
                }
            };
            if !ok {
                if let Err(e) = self.remove(&sha) {
                    // Forgotten all the same: it is not served, and publishing a new copy
                    // replaces it.
                    tracing::warn!(%sha, error = %e, "cannot remove cached image");
                }
                bad.push(sha);
            }
        }
        Ok(Scrubbed {
            checked,
            removed: bad,
        })
    }
}

/// Hex SHA-256 of a file's content. Blocking.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

pub fn hex(bytes: &[u8]) -> String {
    crate::phone::credentials::hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &Cache, sha: &str, size: usize) {
        let part = cache.part_path(sha);
        std::fs::write(&part, vec![0u8; size]).unwrap();
        cache.publish(sha, &part, size as u64).unwrap();
    }

    #[test]
    fn lru_eviction_keeps_pinned_and_recent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 300).unwrap();
        let (a, b, c) = (
            format!("{:064x}", 1),
            format!("{:064x}", 2),
            format!("{:064x}", 3),
        );
        put(&cache, &a, 100);
        put(&cache, &b, 100);
        put(&cache, &c, 100);
        cache.lookup(&a);
        // b is least recently used, but pinned: c goes.
        let evicted = cache.make_room(100, &BTreeSet::from([b.clone()])).unwrap();
        assert_eq!(evicted, vec![c.clone()]);
        assert!(!cache.image_path(&c).exists());
        assert_eq!(cache.total(), 200);
        let full = cache.make_room(250, &BTreeSet::from([a.clone(), b.clone()]));
        assert!(full.is_err());
        // Reopening finds what is on disk.
        let again = Cache::open(dir.path(), 300).unwrap();
        assert_eq!(again.total(), 200);
    }

    #[test]
    fn an_image_that_cannot_fit_evicts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 300).unwrap();
        let (a, b) = (format!("{:064x}", 1), format!("{:064x}", 2));
        put(&cache, &a, 100);
        put(&cache, &b, 100);
        let full = cache
            .make_room(250, &BTreeSet::from([a.clone()]))
            .unwrap_err();
        assert_eq!((full.needed, full.free, full.max), (250, 200, 300));
        assert!(cache.lookup(&b).is_some(), "the unpinned image is kept");
        assert!(cache.image_path(&b).exists());
        assert_eq!(cache.total(), 200);
        assert!(cache.make_room(u64::MAX, &BTreeSet::new()).is_err());
        assert_eq!(cache.total(), 200, "nothing evicted for an absurd size");
    }

    #[test]
    fn scrub_removes_corrupted_images() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let good = b"good image";
        let sha = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, good).as_ref());
        let part = cache.part_path(&sha);
        std::fs::write(&part, good).unwrap();
        cache.publish(&sha, &part, good.len() as u64).unwrap();
        put(&cache, &format!("{:064x}", 9), 10);
        let bad = cache.scrub().unwrap();
        assert_eq!(
            bad,
            Scrubbed {
                checked: 2,
                removed: vec![format!("{:064x}", 9)]
            }
        );
        assert!(cache.lookup(&sha).is_some());
    }

    /// An image that cannot be read (a symlink loop here, ELOOP: tests may run as root, whom
    /// permissions do not stop) used to fail the whole scrub; it is removed like a corrupted
    /// one, and the others are still checked.
    #[test]
    fn scrub_removes_unreadable_images_and_checks_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let good = b"good image";
        let sha = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, good).as_ref());
        let part = cache.part_path(&sha);
        std::fs::write(&part, good).unwrap();
        cache.publish(&sha, &part, good.len() as u64).unwrap();
        let loop_sha = format!("{:064x}", 7);
        put(&cache, &loop_sha, 10);
        let path = cache.image_path(&loop_sha);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&loop_sha, &path).unwrap();

        let scrubbed = cache.scrub().unwrap();
        assert_eq!(
            scrubbed,
            Scrubbed {
                checked: 2,
                removed: vec![loop_sha.clone()]
            }
        );
        assert!(cache.lookup(&loop_sha).is_none());
        assert!(cache.lookup(&sha).is_some());
        assert_eq!(cache.total(), good.len() as u64);
    }
}
