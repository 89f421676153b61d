//! `edgeprov firmware upload FILE --from PATH`: the local file is checked against the release
//! before anything is sent, then sent in resumable chunks.
//!
//! The catalogue gives the release's size and SHA-256, so a file that is not the image (the
//! wrong download, a truncated copy, an HTML error page saved as `.bin`) is refused here,
//! naming both values, with nothing sent and nothing left on the box: sent, its bytes used to
//! stay as a partial upload that the next upload of the right file resumed after, and failed.
//! Once the file is known to be the image, a resumed upload that does not verify can only have
//! built on stored bytes that were wrong: it is sent again whole, once, saying so.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::Output;
use super::client::{ApiClient, encode};
use super::progress::Progress;
use crate::firmware::cache::sha256_file;

/// Bytes per upload request: each is one resumable step, and memory stays at one chunk.
const UPLOAD_CHUNK: usize = 16 * 1024 * 1024;

/// How a pass over the file ended without an error.
enum Sent {
    /// The daemon verified and cached the image (or had it cached already): its answer.
    Done(Value),
    /// Every byte of the file was sent and the daemon still holds a partial image, not
    /// verified: what it stored before the pass was not the start of this file (a release of
    /// unknown size keeps such bytes, since more could follow).
    NotVerified { stored: u64 },
}

pub async fn upload(api: &ApiClient, file: &str, from: &Path, out: Output) -> Result<()> {
    let release = release_state(api, file).await?;
    let (mut f, total) = open(from)?;
    check_is_the_image(&release, file, from, total).await?;
    let sha = release["sha256"].as_str().unwrap_or_default().to_string();
    if release["cache"] == "cached" {
        let v = json!({"file": file, "complete": true, "already_cached": true, "size": total});
        return done(&v, file, from, &sha, total, out);
    }
    let mut offset = release["partial_bytes"].as_u64().unwrap_or(0);
    if offset > total {
        eprintln!(
            "the {offset} bytes stored of {file} are more than {} holds ({total}): they are \
             not its start, so it is sent from the start",
            from.display()
        );
        offset = 0;
    }
    let resumed = offset > 0;
    let failed_resume = |why: &str| {
        eprintln!(
            "the {offset} bytes stored of {file} before this upload were not the start of {}, \
             which is the image: they were discarded and the whole file is sent again ({why})",
            from.display()
        )
    };
    let first = send(api, file, &mut f, from, offset, total).await;
    let v = match first {
        Ok(Sent::Done(v)) => v,
        Ok(Sent::NotVerified { .. }) if resumed => {
            failed_resume("the daemon did not verify the whole");
            finish(send(api, file, &mut f, from, 0, total).await?, file, total)?
        }
        Ok(sent) => finish(sent, file, total)?,
        // A resumed upload that did not verify is answered 400 with the partial file dropped;
        // the file being the image, the stored bytes were what was wrong. Any other failure
        // (the daemon stopped, the upload stalled) leaves the partial file as it was.
        Err(e) if resumed && discarded(api, file).await => {
            failed_resume(&format!("{e:#}"));
            finish(send(api, file, &mut f, from, 0, total).await?, file, total)?
        }
        Err(e) => return Err(e),
    };
    done(&v, file, from, &sha, total, out)
}

/// The release as `GET /firmware` lists it (its size, SHA-256 and cache state).
async fn release_state(api: &ApiClient, file: &str) -> Result<Value> {
    let list = api.get("/firmware").await?;
    list["releases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["file"]
                .as_str()
                .is_some_and(|f| f.eq_ignore_ascii_case(file))
        })
        .cloned()
        .with_context(|| format!("{file} is not in the catalogue (add it first)"))
}

/// Whether the daemon holds neither the image nor a partial file of it any more: it dropped
/// what a refused upload built on.
async fn discarded(api: &ApiClient, file: &str) -> bool {
    release_state(api, file)
        .await
        .is_ok_and(|r| r["cache"] != "cached" && r["partial_bytes"].as_u64() == Some(0))
}

fn open(from: &Path) -> Result<(File, u64)> {
    let cannot_read = || format!("cannot read {}", from.display());
    let f = File::open(from).with_context(cannot_read)?;
    let meta = f.metadata().with_context(cannot_read)?;
    if !meta.is_file() {
        bail!("cannot read {}: not a file", from.display());
    }
    Ok((f, meta.len()))
}

/// Refuses a local file that is not the release's image: its size (when the catalogue has
/// one), then its SHA-256, both named with the catalogue's.
async fn check_is_the_image(release: &Value, file: &str, from: &Path, total: u64) -> Result<()> {
    if let Some(size) = release["size"].as_u64()
        && size != total
    {
        bail!(
            "{} is {total} bytes, but the image of release {file} is {size} bytes: it is not \
             that image; nothing was sent",
            from.display()
        );
    }
    let expected = release["sha256"]
        .as_str()
        .context("the catalogue lists no SHA-256 for the release")?;
    let path = from.to_path_buf();
    let got = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await?
        .with_context(|| format!("cannot read {}", from.display()))?;
    if !got.eq_ignore_ascii_case(expected) {
        bail!(
            "{} has SHA-256 {got}, but the image of release {file} has SHA-256 {expected}: it \
             is not that image; nothing was sent",
            from.display()
        );
    }
    Ok(())
}

/// Sends the file from `offset` in chunks until the daemon says the image is complete, or
/// every byte was sent without it.
async fn send(
    api: &ApiClient,
    file: &str,
    f: &mut File,
    from: &Path,
    mut offset: u64,
    total: u64,
) -> Result<Sent> {
    let cannot_read = || format!("cannot read {}", from.display());
    let progress = Progress::new(&format!("uploading {file}"), total);
    progress.set(offset);
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        f.seek(SeekFrom::Start(offset)).with_context(cannot_read)?;
        let mut n = 0;
        while n < buf.len() {
            let r = f.read(&mut buf[n..]).with_context(cannot_read)?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let v = api
            .put_bytes(
                &format!("/firmware/images/{}?offset={offset}", encode(file)),
                buf[..n].to_vec(),
            )
            .await?;
        if v["complete"].as_bool() == Some(true) {
            progress.set(total);
            progress.finish();
            return Ok(Sent::Done(v));
        }
        offset = v["offset"].as_u64().unwrap_or(offset + n as u64);
        progress.set(offset.min(total));
        if offset >= total || n == 0 {
            progress.finish();
            return Ok(Sent::NotVerified { stored: offset });
        }
    }
}

/// The answer of the pass that sent the whole file, or why it is not the image's.
fn finish(sent: Sent, file: &str, total: u64) -> Result<Value> {
    match sent {
        Sent::Done(v) => Ok(v),
        Sent::NotVerified { stored } => bail!(
            "the whole file ({total} bytes) was sent, but the daemon holds {stored} bytes of \
             {file}, not verified: the file changed while it was sent, or another upload of \
             {file} ran at the same time; run the upload again"
        ),
    }
}

fn done(v: &Value, file: &str, from: &Path, sha: &str, total: u64, out: Output) -> Result<()> {
    if out.json {
        return out.print_json(v);
    }
    if v["already_cached"].as_bool() == Some(true) {
        println!(
            "{file} is already cached: {} is its image (SHA-256 {sha}); nothing was sent",
            from.display()
        );
    } else {
        println!("uploaded {file}: {total} bytes, verified");
    }
    Ok(())
}
