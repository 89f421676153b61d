//! An operator's upload of an image (a site without internet access, a vendor portal behind a
//! login): streamed to the same `.part` file a fetch uses, resumable by offset, published only
//! when size and SHA-256 match. Offset 0 starts afresh: whatever a `.part` file held (an
//! earlier upload of another file, a broken fetch) is dropped, so an uploader that knows its
//! file is the image never has to build on bytes it cannot check.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::Firmware;
use super::cache::sha256_file;
use super::catalogue::Release;
use super::fetch::FetchError;
use super::flight::{Cancel, Flight, live_flight};
use super::stall::Stall;
use crate::model::AlarmKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Verified and cached.
    Complete { size: u64 },
    /// The image was cached already (verified when it was): the body was not read, so nothing
    /// of it was checked or kept. Said apart from [`UploadOutcome::Complete`], which would
    /// claim bytes verified that nobody looked at.
    AlreadyCached { size: u64 },
    /// Stored so far; continue with `?offset=` this value.
    Partial { offset: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "offset {given} does not continue the upload: {expected} bytes are stored; continue \
         with ?offset={expected}, or start again with ?offset=0"
    )]
    Offset { given: u64, expected: u64 },
    #[error("a download of this image is in progress; try again when it ends")]
    Busy,
    #[error("checksum mismatch: {0}; nothing of the upload was kept")]
    Mismatch(String),
    /// A resumed upload whose whole is not the image. What was stored before this request may
    /// be what is wrong (bytes of another file, a tail a power cut left zeroed), and the
    /// uploader cannot tell: the `.part` file is dropped and no alarm is raised yet, as for a
    /// fetch's stale resume; an upload of the whole file from offset 0 that fails raises it.
    #[error(
        "checksum mismatch: {why}, made of the {stored} bytes stored before this request and the \
         {sent} it sent; the stored bytes may be what was wrong, so all were discarded: send \
         the whole file again from ?offset=0"
    )]
    ResumedMismatch { why: String, stored: u64, sent: u64 },
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl Firmware {
    pub async fn upload<B>(
        self: &Arc<Self>,
        rel: &Release,
        offset: u64,
        body: B,
    ) -> Result<UploadOutcome, UploadError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (tx, cancel, mine) = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, size)) = self.cache.lookup(&rel.sha256) {
                return Ok(UploadOutcome::AlreadyCached { size });
            }
            if live_flight(&flights, &rel.sha256).is_some() {
                return Err(UploadError::Busy);
            }
            if !self.named(&rel.sha256) {
                return Err(FetchError::Removed(rel.file.clone()).into());
            }
            // Registered as a flight: phones asking meanwhile wait for it, no fetch writes
            // the same `.part` file, and deleting the release stops it.
            let (flight, tx, cancel) = Flight::new();
            let mine = flight.outcome.clone();
            flights.insert(rel.sha256.clone(), flight);
            (tx, cancel, mine)
        };
        let result = self.receive(rel, offset, body, cancel).await;
        if let Err(UploadError::Fetch(FetchError::NoSpace(_))) = result {
            // Resuming on a full disk only fails again; the space goes back to the store.
            let _ = tokio::fs::remove_file(self.cache.part_path(&rel.sha256)).await;
        }
        {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            if flights.get(&rel.sha256).is_some_and(|f| f.is(&mine)) {
                flights.remove(&rel.sha256);
            }
        }
        let _ = tx.send(Some(match &result {
            Ok(UploadOutcome::Complete { .. } | UploadOutcome::AlreadyCached { .. }) => Ok(()),
            Ok(UploadOutcome::Partial { .. }) => Err(FetchError::Io("upload incomplete".into())),
            Err(UploadError::Fetch(e)) => Err(e.clone()),
            Err(e) => Err(FetchError::Io(e.to_string())),
        }));
        result
    }

    async fn receive<B>(
        self: &Arc<Self>,
        rel: &Release,
        offset: u64,
        mut body: B,
        mut cancel: Cancel,
    ) -> Result<UploadOutcome, UploadError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let part = self.cache.part_path(&rel.sha256);
        let io = |e: std::io::Error| UploadError::Fetch(self.io_error(rel, &e));
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&part)
            .await
            .map_err(io)?;
        let mut have = file.metadata().await.map_err(io)?.len();
        if offset == 0 && have > 0 {
            file.set_len(0).await.map_err(io)?;
            tracing::info!(file = %rel.file, dropped = have,
                "firmware upload from offset 0: the partial file was dropped");
            have = 0;
        }
        if offset != have {
            return Err(UploadError::Offset {
                given: offset,
                expected: have,
            });
        }
        // Refused before the body is read: taking it would fill the disk, then fail.
        if let Some(size) = rel.size {
            self.check_disk(rel, size).await?;
        }
        file.seek(SeekFrom::Start(have)).await.map_err(io)?;
        let mut stall = Stall::new(self.stall);
        loop {
            let next = tokio::select! {
                next = stall.frame(&mut body) => next,
                () = cancel.set() => {
                    file.flush().await.map_err(io)?;
                    return Err(FetchError::Removed(rel.file.clone()).into());
                }
            };
            let frame = match next {
                Ok(None) => break,
                Ok(Some(Ok(f))) => f,
                Ok(Some(Err(e))) => {
                    file.flush().await.map_err(io)?;
                    return Err(UploadError::Body(e.to_string()));
                }
                Err(why) => {
                    file.flush().await.map_err(io)?;
                    return Err(UploadError::Body(format!(
                        "{why}; {have} bytes are stored, continue with ?offset={have}"
                    )));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            have += data.len() as u64;
            // Without a known size, nothing larger than the whole cache can be kept.
            if have > rel.size.unwrap_or(self.cache.max_bytes()) {
                drop(file);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(match rel.size {
                    Some(size) => self.mismatch(
                        rel,
                        format!("more than the {size} bytes expected"),
                        offset,
                        have,
                    ),
                    None => UploadError::Fetch(self.too_large(rel, "the upload")),
                });
            }
            file.write_all(&data).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        // Short of the known size: no need to hash yet (keeps a chunked upload linear).
        if rel.size.is_some_and(|s| have < s) {
            return Ok(UploadOutcome::Partial { offset: have });
        }
        let p = part.clone();
        let got = tokio::task::spawn_blocking(move || sha256_file(&p))
            .await
            .map_err(|e| UploadError::Body(e.to_string()))?
            .map_err(io)?;
        if got != rel.sha256 {
            if rel.size.is_none() {
                return Ok(UploadOutcome::Partial { offset: have });
            }
            let _ = tokio::fs::remove_file(&part).await;
            let why = format!("got SHA-256 {got}, expected {}", rel.sha256);
            return Err(self.mismatch(rel, why, offset, have));
        }
        if cancel.is_set() {
            return Err(FetchError::Removed(rel.file.clone()).into());
        }
        self.make_room(have).await?;
        let (this, sha) = (self.clone(), rel.sha256.clone());
        tokio::task::spawn_blocking(move || this.cache.publish(&sha, &part, have))
            .await
            .map_err(|e| UploadError::Body(e.to_string()))?
            .map_err(io)?;
        self.image_cached(&rel.sha256).await;
        Ok(UploadOutcome::Complete { size: have })
    }

    /// Bytes that are not the image, already discarded: alarmed when the upload started at
    /// offset 0, said as a stale resume otherwise ([`UploadError::ResumedMismatch`]). `have`
    /// counts every byte received, the ones stored before `offset` included.
    fn mismatch(&self, rel: &Release, why: String, offset: u64, have: u64) -> UploadError {
        if offset > 0 {
            return UploadError::ResumedMismatch {
                why,
                stored: offset,
                sent: have - offset,
            };
        }
        self.recorder.alarm(
            AlarmKind::FirmwareChecksumMismatch,
            "admin upload",
            format!("{}: {why}; the upload was discarded", rel.file),
        );
        UploadError::Mismatch(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::FirmwareConfig;
    use crate::store::{Recorder, Store};
    use http_body_util::Full;

    /// A flight whose task ended without answering (a panic, or an upload whose request was
    /// dropped) no longer holds the image: a phone's request starts a fetch of its own instead
    /// of failing on the dead flight, and an upload is taken instead of being refused as busy
    /// until a restart, and it completes.
    #[tokio::test]
    async fn a_flight_whose_task_is_gone_does_not_hold_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (recorder, _thread) = Recorder::start(store.clone()).unwrap();
        let image = Bytes::from_static(b"an image");
        let rel = Release {
            models: vec!["J179".into()],
            version: "4.1".into(),
            file: "j179.bin".into(),
            urls: Vec::new(),
            sha256: super::super::cache::hex(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &image).as_ref(),
            ),
            size: Some(image.len() as u64),
        };
        let config = FirmwareConfig {
            releases: vec![rel.clone()],
            ..FirmwareConfig::default()
        };
        let firmware = Firmware::open(&config, dir.path(), store, recorder).unwrap();
        let dead_flight = || {
            let (flight, gone, _) = Flight::new();
            drop(gone);
            firmware
                .flights
                .lock()
                .unwrap()
                .insert(rel.sha256.clone(), flight);
        };
        dead_flight();
        // No URL to fetch from: the phone's own fetch fails, but not on the dead flight.
        let asked = firmware.ensure(&rel).await.unwrap_err();
        assert!(!asked.to_string().contains("without an answer"), "{asked}");

        dead_flight();
        let outcome = firmware.upload(&rel, 0, Full::new(image.clone())).await;
        assert_eq!(
            outcome.unwrap(),
            UploadOutcome::Complete {
                size: image.len() as u64
            }
        );
    }
}
