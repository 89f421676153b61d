//! Small file-system helpers shared by the modules that own files (PKI, admin token, listener
//! file, data directory): every file edgeprov writes is written atomically, and every
//! directory it makes for its data is its user's alone.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` with mode 0700 when it does not exist (its missing parents as the umask
/// says: they are not edgeprov's). The data directory holds the database, whose pages carry
/// every secret in clear: made under a umask of 022, as `edgeprov serve` run by hand is, it was
/// open to every local user. A directory that exists is left as it is (the packaged unit's
/// `StateDirectoryMode` makes /var/lib/edgeprov 0750 on purpose).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Writes a file atomically (temporary file, fsync, rename, fsync of the directory) with the
/// given mode, so a crash leaves either the old file or the complete new one.
///
/// The temporary file is always a new one of this process: a `.tmp` left in the directory (a
/// crash, or planted by another user of a shared `--out` directory) is removed first, and the
/// new one is created exclusively. Opening a leftover would write a private key through a
/// symlink to wherever it points, or into a file another user owns and may still hold open,
/// where the mode set here does not keep them out.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // A bare file name's parent is the empty path: its directory is the current one.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_private_dir_is_made_for_its_user_alone_and_one_that_exists_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/edgeprov-data");
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o750);
        let file = root.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(
            create_private_dir(&file).is_err(),
            "a file is not a directory"
        );
    }

    #[test]
    fn a_leftover_symlink_does_not_receive_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o666)).unwrap();
        let path = dir.path().join("device.key");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("device.key.tmp")).unwrap();

        write_atomic(&path, KEY, 0o600).unwrap();

        assert_eq!(
            std::fs::read(&elsewhere).unwrap(),
            b"",
            "written through the symlink"
        );
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "the key is a symlink");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), KEY);
    }

    #[test]
    fn a_leftover_file_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let tmp = dir.path().join("device.key.tmp");
        std::fs::write(&tmp, b"stale").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        // Whoever made it (its owner, who may be another user) can keep it open meanwhile.
        let leftover = std::fs::File::open(&tmp).unwrap();

        write_atomic(&path, KEY, 0o600).unwrap();

        let meta = std::fs::metadata(&path).unwrap();
        assert_ne!(
            meta.ino(),
            leftover.metadata().unwrap().ino(),
            "the leftover was reused"
        );
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), KEY);
        let mut seen = Vec::new();
        std::io::Read::read_to_end(&mut &leftover, &mut seen).unwrap();
        assert_eq!(seen, b"stale", "the key reached the leftover's open file");
    }
}
