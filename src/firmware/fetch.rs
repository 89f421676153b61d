//! Filling the cache: one fetch per image however many phones ask (single flight), resumed
//! with `Range` after a broken download, verified (size, SHA-256) before it is published.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::Firmware;
use super::cache::{CacheFull, hex};
use super::catalogue::Release;
use super::flight::{Cancel, Flight, live_flight};
use super::masked::masked_url;
use super::stall::Stall;
use super::upstream;
use crate::model::AlarmKind;

/// Tries per URL; after a broken transfer the next try resumes where it stopped.
const ATTEMPTS: usize = 3;
/// How long a failed fetch answers phones for its image without asking again. Single flight
/// joins only the phones that ask while a fetch runs; against an upstream that fails fast
/// (down, refusing, a 200 HTML error or login page instead of the image, a catalogue with the
/// wrong hash) or a cache disk that fills up, every phone of a boot storm arriving after it
/// would start a fetch of its own: a request per phone to a vendor site that may well throttle
/// or block the site for it, the alarm raised again per phone, and on a full disk a download
/// per phone that fills it again (and with it the store's disk, by default). Those failures
/// persist until something changes; a transient one (another CDN node, a flipped byte) costs
/// phones one [`FAILED_FOR`] more. An operator's change to the catalogue or the policies, and
/// a prefetch job, ask again at once.
pub(super) const FAILED_FOR: Duration = Duration::from_secs(10);

/// Why an image could not be provided. Cloneable: every waiting phone gets the same answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no upstream URL for {0}")]
    NoUrl(String),
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("checksum mismatch: {0}")]
    Mismatch(String),
    #[error("{0}")]
    DiskFull(String),
    /// The cache's file system is full (ENOSPC): what was written of the image is removed,
    /// since a partial file resumed on a full disk only fails again, and meanwhile it holds
    /// the space the store (by default on the same disk) needs to commit.
    #[error("{0}")]
    NoSpace(String),
    #[error("{0}")]
    Io(String),
    /// The image's last release was deleted while it was being fetched or uploaded: the
    /// transfer stopped and its partial file was removed. Phones are answered 404, as they
    /// are for any file no release names.
    #[error("release {0} was deleted while its image was being fetched")]
    Removed(String),
}

/// How one attempt ended, when it did not produce a verified image.
enum Attempt {
    /// Broken midway: the `.part` file keeps what arrived; the next attempt resumes.
    Broken(String),
    /// Not reachable or refused (HTTP error): try the next URL.
    Unreachable(String),
    /// Bytes that are not the image: the caller deletes the `.part` file; try the next URL.
    Mismatch(String),
    /// Bytes that are not the image, made of a partial file resumed: what was on disk may be
    /// what is wrong (the tail a power cut left zeroed, or bytes of an image the upstream
    /// replaced since), so the caller deletes the `.part` file and downloads the image whole
    /// from the same URL, once, before it counts as a mismatch.
    StaleResume(String),
    /// More bytes than the cache can hold (size unknown): the caller deletes the `.part`
    /// file; try the next URL.
    TooLarge(FetchError),
    Fatal(FetchError),
}

impl Firmware {
    /// The cached image for `rel` (path, size), fetching it first if needed. Concurrent
    /// callers for the same image share one fetch and all see its result; for
    /// [`FAILED_FOR`] after a fetch found the upstream unreachable, callers get its error
    /// without a fetch.
    pub async fn ensure(self: &Arc<Self>, rel: &Release) -> Result<(PathBuf, u64), FetchError> {
        self.ensure_with(rel, true).await
    }

    /// [`Firmware::ensure`] for an operator's prefetch: a recent failure does not stop it
    /// from asking the upstream again.
    pub(super) async fn ensure_now(
        self: &Arc<Self>,
        rel: &Release,
    ) -> Result<(PathBuf, u64), FetchError> {
        self.ensure_with(rel, false).await
    }

    async fn ensure_with(
        self: &Arc<Self>,
        rel: &Release,
        after_failure_wait: bool,
    ) -> Result<(PathBuf, u64), FetchError> {
        let mut rx = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            // Checked under the flights lock: a fetch publishes before it leaves the map, so
            // a miss here means no finished fetch was missed.
            if let Some(hit) = self.cache.lookup(&rel.sha256) {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit);
            }
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((when, e)) = failed.get(&rel.sha256)
                && after_failure_wait
                && when.elapsed() < FAILED_FOR
                && live_flight(&flights, &rel.sha256).is_none()
            {
                return Err(e.clone());
            }
            drop(failed);
            match live_flight(&flights, &rel.sha256) {
                Some(f) => f.outcome.clone(),
                None => {
                    if !self.named(&rel.sha256) {
                        return Err(FetchError::Removed(rel.file.clone()));
                    }
                    let (flight, tx, cancel) = Flight::new();
                    let rx = flight.outcome.clone();
                    flights.insert(rel.sha256.clone(), flight);
                    let (this, rel, mine) = (self.clone(), rel.clone(), rx.clone());
                    // Spawned, so a phone hanging up does not cancel the fetch for the others.
                    tokio::spawn(async move {
                        this.counters.fetches.fetch_add(1, Ordering::Relaxed);
                        let result = this.fetch(&rel, cancel).await;
                        if result.is_err() {
                            this.counters.fetch_failures.fetch_add(1, Ordering::Relaxed);
                        }
                        {
                            let mut flights =
                                this.flights.lock().unwrap_or_else(|p| p.into_inner());
                            let mut failed = this.failed.lock().unwrap_or_else(|p| p.into_inner());
                            match &result {
                                // No release names the image: nothing is to be answered from it.
                                Err(FetchError::Removed(_)) => None,
                                Err(e) => {
                                    failed.insert(rel.sha256.clone(), (Instant::now(), e.clone()))
                                }
                                Ok(()) => failed.remove(&rel.sha256),
                            };
                            if flights.get(&rel.sha256).is_some_and(|f| f.is(&mine)) {
                                flights.remove(&rel.sha256);
                            }
                        }
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let result = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| FetchError::Io("the fetch task ended without an answer".into()))?
            .clone()
            .unwrap_or_else(|| Err(FetchError::Io("no result".into())));
        result?;
        self.cache
            .lookup(&rel.sha256)
            .ok_or_else(|| FetchError::Io("image evicted right after its fetch".into()))
    }

    /// One image from its URLs, in order, into the cache; alarms name what went wrong.
    async fn fetch(self: &Arc<Self>, rel: &Release, mut cancel: Cancel) -> Result<(), FetchError> {
        if rel.urls.is_empty() {
            return Err(FetchError::NoUrl(rel.file.clone()));
        }
        // Evicting now would lose cached images for a download that may yet fail (404, wrong
        // bytes, a stall): only whether the image could ever fit is checked, and room is made
        // once it is verified, before it is published.
        if let Some(size) = rel.size {
            self.check_room(size).await?;
            self.check_disk(rel, size).await?;
        }
        let part = self.cache.part_path(&rel.sha256);
        let mut last = FetchError::NoUrl(rel.file.clone());
        // Why each URL was given up as unreachable: the alarm names them all, or an operator
        // who fixes the last one's cause learns of the first one's only when it fails again.
        let mut unreachable = Vec::new();
        for url in &rel.urls {
            // What alarms, logs and errors name: never the URL's password.
            let shown = masked_url(url);
            let mut restarted = false;
            for _ in 0..ATTEMPTS {
                if cancel.is_set() {
                    return Err(FetchError::Removed(rel.file.clone()));
                }
                let outcome = match self.attempt(url, rel, &part, &mut cancel).await {
                    Err(Attempt::StaleResume(why)) if !restarted => {
                        restarted = true;
                        let _ = tokio::fs::remove_file(&part).await;
                        tracing::warn!(file = %rel.file, url = %shown,
                            "a resumed download is not the image ({why}); downloading it whole");
                        last = FetchError::Mismatch(why);
                        continue;
                    }
                    outcome => outcome,
                };
                match outcome {
                    Ok(_) if cancel.is_set() => return Err(FetchError::Removed(rel.file.clone())),
                    Ok(size) => {
                        self.make_room(size).await?;
                        let cache = self.clone();
                        let (sha, part2) = (rel.sha256.clone(), part.clone());
                        tokio::task::spawn_blocking(move || {
                            cache.cache.publish(&sha, &part2, size)
                        })
                        .await
                        .map_err(|e| FetchError::Io(e.to_string()))?
                        .map_err(|e| self.io_error(rel, &e))?;
                        tracing::info!(file = %rel.file, url = %shown, size, "firmware image cached");
                        self.image_cached(&rel.sha256).await;
                        return Ok(());
                    }
                    Err(Attempt::Broken(why)) => {
                        tracing::warn!(file = %rel.file, url = %shown, "download broken, resuming: {why}");
                        last = FetchError::Unreachable(why);
                    }
                    Err(Attempt::Unreachable(why)) => {
                        last = FetchError::Unreachable(why);
                        break;
                    }
                    Err(Attempt::Mismatch(why) | Attempt::StaleResume(why)) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        self.recorder.alarm(
                            AlarmKind::FirmwareChecksumMismatch,
                            shown.clone(),
                            format!("{}: {why}; nothing was served", rel.file),
                        );
                        last = FetchError::Mismatch(why);
                        break;
                    }
                    Err(Attempt::TooLarge(e)) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        last = e;
                        break;
                    }
                    Err(Attempt::Fatal(e)) => {
                        if let FetchError::NoSpace(_) = e {
                            let _ = tokio::fs::remove_file(&part).await;
                        }
                        return Err(e);
                    }
                }
            }
            if let FetchError::Unreachable(why) = &last {
                unreachable.push(why.clone());
            }
        }
        if let FetchError::Unreachable(_) = &last {
            let why = unreachable.join("; ");
            self.recorder.alarm(
                AlarmKind::FirmwareUpstreamUnreachable,
                rel.unreachable_alarm_source(),
                format!("{}: {why}", rel.file),
            );
            last = FetchError::Unreachable(why);
        }
        Err(last)
    }

    /// Evicts what `size` more bytes need (an image verified and about to be published).
    pub(super) async fn make_room(self: &Arc<Self>, size: u64) -> Result<(), FetchError> {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let pinned = this.pinned();
            this.cache.make_room(size, &pinned)
        })
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?;
        for sha in result.map_err(|full| self.cache_full(&full))? {
            tracing::info!(%sha, "evicted firmware image");
        }
        Ok(())
    }

    /// Fails when `size` more bytes could not fit even after evicting every unpinned image;
    /// evicts nothing.
    async fn check_room(self: &Arc<Self>, size: u64) -> Result<(), FetchError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.cache.room_for(size, &this.pinned()))
            .await
            .map_err(|e| FetchError::Io(e.to_string()))?
            .map_err(|full| self.cache_full(&full))
    }

    /// Fails when the cache disk has less room than what is left to download of an image of
    /// known `size`, before any byte is asked for (or, for an upload, taken). `max_cache_bytes` (20 GB by default) is
    /// often more than the disk holds: such a download only ends in ENOSPC, after filling the
    /// disk the store shares and fetching from the vendor what is then deleted. Evicts nothing
    /// (the download may still fail); a disk that cannot be measured lets the download try.
    pub(super) async fn check_disk(
        self: &Arc<Self>,
        rel: &Release,
        size: u64,
    ) -> Result<(), FetchError> {
        let this = self.clone();
        let part = self.cache.part_path(&rel.sha256);
        let measured = tokio::task::spawn_blocking(move || {
            let have = std::fs::metadata(&part).map_or(0, |m| m.len());
            let needed = if have > size { size } else { size - have };
            this.cache.disk_free().map(|free| (needed, free))
        })
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?;
        let (needed, free) = match measured {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(file = %rel.file, error = %e, "cannot measure the cache disk's free space");
                return Ok(());
            }
        };
        if needed <= free {
            return Ok(());
        }
        let why = format!(
            "{}: no space left on the cache disk for it: {needed} more bytes needed, {free} \
             free; nothing was written (free space on the disk, or lower \
             firmware.max_cache_bytes to what it holds so that eviction makes room)",
            rel.file
        );
        self.recorder
            .alarm(AlarmKind::FirmwareDiskFull, "firmware cache", why.clone());
        Err(FetchError::NoSpace(why))
    }

    fn cache_full(&self, full: &CacheFull) -> FetchError {
        self.recorder.alarm(
            AlarmKind::FirmwareDiskFull,
            "firmware cache",
            full.to_string(),
        );
        FetchError::DiskFull(full.to_string())
    }

    /// An image of unknown size that outgrew the whole cache (`what`: where the bytes came
    /// from): raises the disk-full alarm.
    pub(super) fn too_large(&self, rel: &Release, what: &str) -> FetchError {
        let why = format!(
            "{}: {what} holds more than firmware.max_cache_bytes ({} bytes); nothing was kept",
            rel.file,
            self.cache.max_bytes()
        );
        self.recorder
            .alarm(AlarmKind::FirmwareDiskFull, "firmware cache", why.clone());
        FetchError::DiskFull(why)
    }

    pub(super) fn io_error(&self, rel: &Release, e: &std::io::Error) -> FetchError {
        if e.raw_os_error() == Some(28) {
            self.recorder.alarm(
                AlarmKind::FirmwareDiskFull,
                "firmware cache",
                format!(
                    "{}: no space left on the cache disk; the partial file was removed",
                    rel.file
                ),
            );
            FetchError::NoSpace(format!(
                "{}: no space left on the cache disk; the partial file was removed",
                rel.file
            ))
        } else {
            FetchError::Io(format!("{}: {e}", rel.file))
        }
    }

    /// One GET into the `.part` file, resuming from what it already holds. Returns the
    /// image's size once the whole file is there and hashes right (fsynced).
    /// Errors name the URL masked ([`masked_url`]).
    async fn attempt(
        &self,
        url: &str,
        rel: &Release,
        part: &Path,
        cancel: &mut Cancel,
    ) -> Result<u64, Attempt> {
        let removed = || Attempt::Fatal(FetchError::Removed(rel.file.clone()));
        let (fetch_url, url) = (url, masked_url(url));
        let io = |e: std::io::Error| Attempt::Fatal(self.io_error(rel, &e));
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(part)
            .await
            .map_err(io)?;
        // Without a known size, nothing larger than the whole cache can be kept: an upstream
        // that never ends its body must not fill the disk.
        let limit = rel.size.unwrap_or(self.cache.max_bytes());
        let mut have = file.metadata().await.map_err(io)?.len();
        if have > limit {
            have = 0;
        }
        // Re-hash what is on disk: after a crash that is the only truth.
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        file.set_len(have).await.map_err(io)?;
        file.seek(SeekFrom::Start(0)).await.map_err(io)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut hashed = 0;
        while hashed < have {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            hashed += n as u64;
        }
        drop(buf);
        let stale = |e| match e {
            Attempt::Mismatch(why) => Attempt::StaleResume(why),
            e => e,
        };
        if rel.size == Some(have) && have > 0 {
            return self.finish(rel, file, ctx, have).await.map_err(stale);
        }
        let resp = tokio::select! {
            resp = upstream::get(fetch_url, have, &self.upstream_ca_file) => resp,
            () = cancel.set() => return Err(removed()),
        }
        .map_err(|e| Attempt::Unreachable(e.to_string()))?;
        let status = resp.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
            // Everything may already be here (size unknown, stopped before verification).
            if hex(ctx.clone().finish().as_ref()) == rel.sha256 {
                return self.finish(rel, file, ctx, have).await;
            }
            file.set_len(0).await.map_err(io)?;
            return Err(Attempt::Broken(format!(
                "{url} refused to resume; restarting"
            )));
        }
        let resumed = status == StatusCode::PARTIAL_CONTENT
            && have > 0
            && content_range_start(&resp) == Some(have);
        // Whether bytes from before this attempt make part of the image.
        let reused = resumed;
        if !resumed {
            if status != StatusCode::OK {
                return Err(Attempt::Unreachable(format!("{url} answered {status}")));
            }
            have = 0;
            ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            file.set_len(0).await.map_err(io)?;
        }
        file.seek(SeekFrom::Start(have)).await.map_err(io)?;
        let page = is_html(&resp);
        let announced = content_length(&resp).map(|len| u128::from(have) + u128::from(len));
        if let (Some(size), Some(total)) = (rel.size, announced)
            && total != u128::from(size)
        {
            return Err(from_page(
                page,
                Attempt::Mismatch(format!(
                    "upstream announces {total} bytes, the catalogue says {size}"
                )),
            ));
        }
        if announced.is_some_and(|total| total > u128::from(limit)) {
            return Err(Attempt::TooLarge(self.too_large(rel, &url)));
        }
        let mut body = resp.into_body();
        // Buffered: one blocking-pool write per 256 KiB instead of one per network frame.
        let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut stall = Stall::new(self.stall);
        loop {
            let next = tokio::select! {
                next = stall.frame(&mut body) => next,
                () = cancel.set() => {
                    file.flush().await.map_err(io)?;
                    return Err(removed());
                }
            };
            let frame = match next {
                Err(why) => {
                    file.flush().await.map_err(io)?;
                    return Err(Attempt::Broken(format!("{url}: {why}")));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    file.flush().await.map_err(io)?;
                    return Err(Attempt::Broken(format!("{url}: {e}")));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            have += data.len() as u64;
            if have > limit {
                return Err(match rel.size {
                    Some(size) => from_page(
                        page,
                        Attempt::Mismatch(format!(
                            "upstream sent more than the {size} bytes the catalogue says"
                        )),
                    ),
                    None => Attempt::TooLarge(self.too_large(rel, &url)),
                });
            }
            ctx.update(&data);
            file.write_all(&data).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        self.finish(rel, file.into_inner(), ctx, have)
            .await
            .map_err(|e| if reused { stale(e) } else { from_page(page, e) })
    }

    /// Checks size and hash of a complete download and makes it durable.
    async fn finish(
        &self,
        rel: &Release,
        mut file: tokio::fs::File,
        ctx: aws_lc_rs::digest::Context,
        have: u64,
    ) -> Result<u64, Attempt> {
        if let Some(size) = rel.size
            && have != size
        {
            return Err(Attempt::Broken(format!(
                "transfer ended at {have} of {size} bytes"
            )));
        }
        let got = hex(ctx.finish().as_ref());
        if got != rel.sha256 {
            return Err(Attempt::Mismatch(format!(
                "got SHA-256 {got}, the catalogue says {}",
                rel.sha256
            )));
        }
        let io = |e: std::io::Error| Attempt::Fatal(self.io_error(rel, &e));
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        Ok(have)
    }
}

/// Whether the upstream answered with an HTML page: no firmware image is one, but a vendor
/// portal's login page, an expired download link or a proxy's error page is, answered 200.
fn is_html<B>(resp: &http::Response<B>) -> bool {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim()
                .get(..9)
                .is_some_and(|m| m.eq_ignore_ascii_case("text/html"))
        })
}

/// A mismatch of bytes that came as an HTML page says so: "wrong SHA-256" alone sends the
/// operator after the catalogue's hash, when the download link is what needs looking at.
fn from_page(page: bool, e: Attempt) -> Attempt {
    match e {
        Attempt::Mismatch(why) if page => Attempt::Mismatch(format!(
            "{why}; the upstream answered with an HTML page (text/html), an error or login \
             page rather than the image: check the download link"
        )),
        e => e,
    }
}

fn content_length<B>(resp: &http::Response<B>) -> Option<u64> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The first byte of a `Content-Range: bytes a-b/n` answer.
fn content_range_start<B>(resp: &http::Response<B>) -> Option<u64> {
    let v = resp
        .headers()
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let range = v.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}
