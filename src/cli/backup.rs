//! `edgeprov backup` (through the running daemon) and `edgeprov restore` (with it stopped).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::Output;
use super::client::ApiClient;
use super::progress::Progress;
use crate::backup::CloudIdentity;
use crate::config::Config;

/// Reads a passphrase from a file (first line), so it never appears in `ps` or shell history.
///
/// Spaces and tabs at the line's ends are no part of it, for `backup` and `restore` alike: the
/// backup's passphrase travels in an HTTP header, whose value loses them on the way, so a
/// restore that kept them would try another passphrase than the one the backup was sealed with
/// (and every backup made so far was sealed without them).
pub fn passphrase(file: Option<&Path>) -> Result<Option<String>> {
    let Some(f) = file else { return Ok(None) };
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("cannot read the passphrase file {}", f.display()))?;
    let pass = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t'])
        .to_string();
    if pass.is_empty() {
        bail!("{}: the passphrase is empty", f.display());
    }
    Ok(Some(pass))
}

/// Refuses an `--out` that cannot be written before anything is downloaded: a directory, or a
/// file in a directory that is missing, read-only or not the user's to write. A typo in the
/// path used to show only after the whole backup had come over (minutes, for a large store),
/// with the audit log recording a backup that no file holds.
fn check_writable(file: &Path) -> Result<()> {
    if file.is_dir() {
        bail!(
            "cannot write {}: it is a directory; name the backup file in it",
            file.display()
        );
    }
    // A bare file name's parent is the empty path: its directory is the current one.
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|e| {
        anyhow::anyhow!(
            "cannot write {}: directory {}: {}; nothing was downloaded",
            file.display(),
            dir.display(),
            std::io::Error::from(e)
        )
    })
}

pub async fn backup(api: &ApiClient, out: Output, file: &Path, pass: Option<String>) -> Result<()> {
    check_writable(file)?;
    let progress = std::sync::Arc::new(Progress::new("downloading the backup", 0));
    let bytes = api
        .get_bytes_progress(
            "/backup",
            pass.as_deref().map(|p| ("x-backup-passphrase", p)),
            progress,
        )
        .await?;
    crate::fsutil::write_atomic(file, &bytes, 0o600)
        .with_context(|| format!("cannot write {}", file.display()))?;
    if out.json {
        return out.print_json(
            &serde_json::json!({"file": file, "bytes": bytes.len(), "encrypted": pass.is_some()}),
        );
    }
    println!(
        "wrote {} ({} bytes{})",
        file.display(),
        bytes.len(),
        if pass.is_some() { ", encrypted" } else { "" }
    );
    Ok(())
}

pub fn restore(
    config: &Config,
    out: Output,
    file: &PathBuf,
    pass: Option<String>,
    confirm: super::confirm::Confirm,
) -> Result<()> {
    if super::running::listeners(config).is_some() {
        bail!(
            "the daemon is running on {}: stop it first (systemctl stop edgeprov)",
            config.data_dir.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !out.json {
        eprintln!("checking {}…", file.display());
    }
    let archive = crate::backup::unseal(&bytes, pass.as_deref()).map_err(|e| match e {
        crate::backup::BackupError::NeedsPassphrase => anyhow::anyhow!(
            "{} is encrypted: give its passphrase with --passphrase-file FILE (a file whose \
             first line is the passphrase the backup was made with)",
            file.display()
        ),
        e => anyhow::Error::new(e).context(format!("{}", file.display())),
    })?;
    // Asked once the backup is known to open, so a wrong file or passphrase never gets as far.
    confirm.ask(&format!(
        "replace the data directory {} with the backup {} (the current one is kept beside it)",
        config.data_dir.display(),
        file.display()
    ))?;
    let progress = Progress::new("restoring", archive.len() as u64);
    let restored = crate::backup::restore(&archive, config, &|done| progress.set(done))?;
    progress.finish();
    if out.json {
        return out.print_json(&serde_json::to_value(&restored)?);
    }
    println!(
        "restored {} devices into {}",
        restored.devices,
        config.data_dir.display()
    );
    if !restored.paused_jobs.is_empty() {
        let ids: Vec<String> = restored.paused_jobs.iter().map(u64::to_string).collect();
        println!(
            "jobs {} were pending in the backup and are paused: `edgeprov job resume ID` runs one on",
            ids.join(", ")
        );
    }
    match restored.cloud_identity {
        CloudIdentity::NotRegistered => {}
        CloudIdentity::Restored => println!(
            "the cloud registration and the appliance's identity (pki/cloud/appliance.*) are \
             restored: this box is the same appliance to the cloud. If the box this backup came \
             from is still in service, register this one again (`edgeprov cloud register --url \
             URL --token TOKEN`) so that the two do not share one identity"
        ),
        CloudIdentity::Missing => println!(
            "the backup holds the cloud registration but not the appliance's identity (it was \
             made by an edgeprov that did not back it up): cloud sync fails until this box \
             registers again: `edgeprov cloud register --url URL --token TOKEN`"
        ),
    }
    if let Some(prev) = restored.previous {
        println!("the replaced data is kept in {}", prev.display());
    }
    println!(
        "the backup's configuration is in {} for comparison",
        restored.config_copy.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreadable passphrase file is named as what it is: "cannot read nosuch" left the
    /// administrator to guess which of the command's files was meant.
    #[test]
    fn an_unreadable_passphrase_file_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nosuch");
        let err = format!("{:#}", passphrase(Some(&missing)).unwrap_err());
        assert!(
            err.starts_with(&format!(
                "cannot read the passphrase file {}",
                missing.display()
            )),
            "{err}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let err = passphrase(Some(&empty)).unwrap_err().to_string();
        assert_eq!(err, format!("{}: the passphrase is empty", empty.display()));
        let given = dir.path().join("given");
        std::fs::write(&given, "\tcorrect horse \nsecond line\n").unwrap();
        assert_eq!(
            passphrase(Some(&given)).unwrap().as_deref(),
            Some("correct horse")
        );
    }
}
