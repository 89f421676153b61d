//! `/api/v1/firmware/...`: the catalogue with cache state, uploads, deletes, scrub, prefetch
//! jobs and policies. A catalogue or policy change is written durably, then the firmware
//! snapshot the phones are served from is reloaded, then the API answers.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::audit::{with_change, with_changes};
use super::{AdminState, ApiError, blocking, parse_json};
use crate::firmware::{
    CachedImage, FetchError, Job, Release, RemoveImageError, ScopePolicies, UploadError,
    UploadOutcome, policy_model, scope_policies,
};
use crate::store::StoreError;

#[derive(Debug, Serialize)]
pub struct ReleaseView {
    /// With the passwords of its URLs masked ([`Release::masked`]), as everywhere the API and
    /// the audit log show a release.
    #[serde(flatten)]
    pub release: Release,
    /// `cached`, `fetching`, `partial` (bytes so far in `partial_bytes`) or `missing`.
    pub cache: String,
    pub partial_bytes: u64,
    /// `local` (the config's or an operator's) or `cloud` (pulled; managed in the cloud).
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct FirmwareView {
    pub releases: Vec<ReleaseView>,
    pub cache: CacheSummary,
    pub policies: BTreeMap<String, ScopePolicies>,
}

#[derive(Debug, Serialize)]
pub struct CacheSummary {
    pub total_bytes: u64,
    pub max_bytes: u64,
    pub images: Vec<CachedImage>,
}

/// The catalogue, each release's cache state, the cache's use and the policies.
pub async fn list(State(st): State<AdminState>) -> Result<Json<FirmwareView>, ApiError> {
    let fw = st.firmware.clone();
    let view = tokio::task::spawn_blocking(move || {
        let catalogue = fw.catalogue();
        let cached: BTreeMap<String, u64> = fw
            .cache
            .list()
            .into_iter()
            .map(|i| (i.sha256, i.size))
            .collect();
        let releases = catalogue
            .releases
            .iter()
            .map(|r| {
                let partial = std::fs::metadata(fw.cache.part_path(&r.sha256))
                    .map(|m| m.len())
                    .unwrap_or(0);
                let cache = if cached.contains_key(&r.sha256) {
                    "cached"
                } else if fw.fetching(&r.sha256) {
                    "fetching"
                } else if partial > 0 {
                    "partial"
                } else {
                    "missing"
                };
                ReleaseView {
                    release: r.masked(),
                    cache: cache.into(),
                    partial_bytes: partial,
                    source: catalogue.source(r),
                }
            })
            .collect();
        FirmwareView {
            releases,
            cache: CacheSummary {
                total_bytes: fw.cache.total(),
                max_bytes: fw.cache.max_bytes(),
                images: fw.cache.list(),
            },
            policies: catalogue.policies.clone(),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(view))
}

/// Adds a release to the catalogue.
pub async fn add(State(st): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let mut release: Release = parse_json(&body)?;
    release.sha256 = release.sha256.to_ascii_lowercase();
    release
        .validate()
        .map_err(|(field, msg)| ApiError::BadRequest(format!("{field}: {msg}")))?;
    let fw = st.firmware.clone();
    let r = release.clone();
    blocking(move || {
        fw.store().add_firmware_release(&r)?;
        fw.reload()
    })
    .await?;
    let summary = format!("firmware release {} added", release.file);
    let shown = release.masked();
    let resp = (StatusCode::CREATED, Json(&shown)).into_response();
    Ok(with_change(resp, summary, serde_json::Value::Null, &shown))
}

/// Removes a release from the catalogue and its image from the cache (a config release comes
/// back at the next start: remove it from the config too). The cloud's releases are refused.
pub async fn delete(
    State(st): State<AdminState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let fw = st.firmware.clone();
    let removed = blocking(move || {
        // A local write never changes the cloud's copy: the next pull would bring it back.
        let catalogue = fw.catalogue();
        if let Some(r) = catalogue
            .by_file(&file)
            .filter(|r| catalogue.source(r) == "cloud")
        {
            return Err(StoreError::InUse(format!(
                "firmware file {}: the release is the cloud's; withdraw it in the cloud, or \
                 set a local policy (off, or another version) for its model",
                r.file
            )));
        }
        let removed = fw.store().delete_firmware_release(&file)?;
        fw.reload()?;
        Ok(removed)
    })
    .await?;
    // Once no release names the image: a transfer of it is stopped first, so that nothing it
    // still writes outlives the release.
    if !st
        .firmware
        .catalogue()
        .releases
        .iter()
        .any(|r| r.sha256 == removed.sha256)
    {
        st.firmware
            .discard_image(&removed.sha256)
            .await
            .map_err(|source| StoreError::Io {
                path: st.firmware.cache.image_path(&removed.sha256),
                source,
            })?;
    }
    let summary = format!("firmware release {} removed", removed.file);
    let resp = StatusCode::NO_CONTENT.into_response();
    Ok(with_change(
        resp,
        summary,
        removed.masked(),
        serde_json::Value::Null,
    ))
}

/// Removes only the cached image (and any partial download); the release stays.
pub async fn delete_image(
    State(st): State<AdminState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let release = release_of(&st, &file)?;
    let fw = st.firmware.clone();
    let sha = release.sha256.clone();
    let file = release.file.clone();
    let had = blocking(move || match fw.remove_image(&sha) {
        Ok(had) => Ok(had),
        Err(e @ RemoveImageError::Busy) => {
            Err(StoreError::InUse(format!("firmware file {file}: {e}")))
        }
        Err(RemoveImageError::Io(source)) => Err(StoreError::Io {
            path: fw.cache.image_path(&sha),
            source,
        }),
    })
    .await?;
    let summary = match had {
        true => format!("cached image of firmware {} removed", release.file),
        false => format!("firmware {} had no cached image", release.file),
    };
    let facts = serde_json::json!({"removed": had, "release": facts(&release)});
    Ok(with_changes(
        StatusCode::NO_CONTENT.into_response(),
        summary,
        facts,
    ))
}

/// What an audit entry says of the release an action was about: enough to tell which image,
/// without its URLs.
fn facts(release: &Release) -> serde_json::Value {
    serde_json::json!({
        "file": release.file,
        "models": release.models,
        "version": release.version,
        "sha256": release.sha256,
        "size": release.size,
    })
}

fn release_of(st: &AdminState, file: &str) -> Result<Release, ApiError> {
    st.firmware
        .catalogue()
        .by_file(file)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("firmware file {file} is not in the catalogue")))
}

/// Unknown fields are refused, as on every query of the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    #[serde(default)]
    offset: u64,
}

/// `PUT /firmware/images/{file}?offset=N`: streams the body into the cache (offset 0 starts
/// afresh, dropping any partial file). 201 when the image is complete and verified, 202 with
/// the offset to continue from otherwise; 200 with `already_cached` when the image was cached
/// before: the body is not read then, and neither the answer nor the audit entry says it was
/// uploaded or verified. The audit entry names the release, where the upload started and what
/// it left.
pub async fn upload(
    State(st): State<AdminState>,
    Path(file): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let release = release_of(&st, &file)?;
    let audited = |status: StatusCode, answer: serde_json::Value, summary: String| {
        let mut facts = facts(&release);
        facts["offset"] = q.offset.into();
        facts["outcome"] = answer.clone();
        with_changes((status, Json(answer)).into_response(), summary, facts)
    };
    match st.firmware.upload(&release, q.offset, body).await {
        Ok(UploadOutcome::Complete { size }) => Ok(audited(
            StatusCode::CREATED,
            serde_json::json!({"file": release.file, "complete": true, "size": size}),
            format!(
                "firmware image {} uploaded: {size} bytes, SHA-256 {} verified and cached",
                release.file, release.sha256
            ),
        )),
        Ok(UploadOutcome::AlreadyCached { size }) => Ok(audited(
            StatusCode::OK,
            serde_json::json!({"file": release.file, "complete": true, "already_cached": true,
                "size": size}),
            format!(
                "firmware image {} was already cached ({size} bytes, SHA-256 {} verified when \
                 it was cached): the upload's body was not read",
                release.file, release.sha256
            ),
        )),
        Ok(UploadOutcome::Partial { offset }) => Ok(audited(
            StatusCode::ACCEPTED,
            serde_json::json!({"file": release.file, "complete": false, "offset": offset}),
            format!(
                "firmware image {} upload stored up to byte {offset}, not complete",
                release.file
            ),
        )),
        Err(e @ (UploadError::Offset { .. } | UploadError::Busy)) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(
            e @ (UploadError::Mismatch(_)
            | UploadError::ResumedMismatch { .. }
            | UploadError::Body(_)),
        ) => Err(ApiError::BadRequest(e.to_string())),
        Err(e @ UploadError::Fetch(FetchError::Removed(_))) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(e @ UploadError::Fetch(FetchError::DiskFull(_) | FetchError::NoSpace(_))) => {
            Err(ApiError::TooLarge(e.to_string()))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Re-verifies every cached image; corrupted ones are removed (and fetched again on demand).
/// The audit entry says how many were checked and which were removed (with the releases that
/// name them).
pub async fn scrub(State(st): State<AdminState>) -> Result<Response, ApiError> {
    let fw = st.firmware.clone();
    let scrubbed = tokio::task::spawn_blocking(move || fw.cache.scrub())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("scrub: {e}")))?;
    for sha in &scrubbed.removed {
        st.recorder.alarm(
            crate::model::AlarmKind::FirmwareChecksumMismatch,
            "firmware scrub",
            format!("cached image {sha} no longer matches its hash or cannot be read; removed"),
        );
    }
    let catalogue = st.firmware.catalogue();
    let removed: Vec<serde_json::Value> = scrubbed
        .removed
        .iter()
        .map(|sha| {
            let files: Vec<&str> = catalogue
                .releases
                .iter()
                .filter(|r| &r.sha256 == sha)
                .map(|r| r.file.as_str())
                .collect();
            serde_json::json!({"sha256": sha, "files": files})
        })
        .collect();
    let summary = format!(
        "firmware cache scrubbed: {} image(s) checked, {} corrupted removed",
        scrubbed.checked,
        scrubbed.removed.len()
    );
    let resp = Json(serde_json::json!({
        "checked": scrubbed.checked,
        "removed": scrubbed.removed,
    }))
    .into_response();
    Ok(with_changes(
        resp,
        summary,
        serde_json::json!({"checked": scrubbed.checked, "removed": removed}),
    ))
}

/// Starts a job fetching every image the inventory's phones would be told to load. The audit
/// entry names the job and its images.
pub async fn prefetch(State(st): State<AdminState>) -> Result<Response, ApiError> {
    let fw = st.firmware.clone();
    let wanted = blocking(move || fw.wanted()).await?;
    let images: Vec<serde_json::Value> = wanted.iter().map(facts).collect();
    let id = st.firmware.start_prefetch(wanted);
    let job = job_view(&st, id).await?;
    let summary = format!(
        "firmware prefetch job {id} started: {} image(s)",
        images.len()
    );
    Ok(with_changes(
        (StatusCode::ACCEPTED, job).into_response(),
        summary,
        serde_json::json!({"job": id, "images": images}),
    ))
}

pub async fn job(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("id: {id:?} is not a job number")))?;
    job_view(&st, id).await
}

async fn job_view(st: &AdminState, id: u64) -> Result<Json<Job>, ApiError> {
    let fw = st.firmware.clone();
    tokio::task::spawn_blocking(move || fw.job(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

pub async fn policies(
    State(st): State<AdminState>,
) -> Result<Json<BTreeMap<String, ScopePolicies>>, ApiError> {
    Ok(Json(st.firmware.catalogue().policies.clone()))
}

/// A policies request's entries in the order given, a model given twice kept twice (a map
/// would keep only the last), so that [`scope_policies`] can refuse it.
struct PolicyEntries(Vec<(String, String)>);

impl<'de> Deserialize<'de> for PolicyEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = PolicyEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of MODEL: POLICY")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PolicyEntries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(PolicyEntries(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// `PUT /firmware/policies/{scope}` (`global` or `site:NAME`) with `{"MODEL": "latest"|"off"|
/// "inherit"|"VERSION"}` (`*` for every model not named): replaces the scope's policies.
/// Models are checked and stored as [`scope_policies`] says (a family pattern, a garbled name
/// or two spellings of one model are 400, naming them). A site's policies need the site to
/// exist (404), and a pinned version must exist in the catalogue for the model (400): the
/// store checks both in the writing transaction, so a site or release deleted meanwhile
/// cannot leave policies for nothing.
pub async fn put_policies(
    State(st): State<AdminState>,
    Path(scope): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if scope != "global"
        && !scope
            .strip_prefix("site:")
            .is_some_and(|s| !s.is_empty() && !s.contains('|'))
    {
        return Err(ApiError::BadRequest(format!(
            "scope: {scope:?} is neither global nor site:NAME"
        )));
    }
    let PolicyEntries(entries) = parse_json(&body)?;
    let policies = scope_policies(entries.iter().map(|(m, p)| (m.as_str(), p.as_str())))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Stored model → the request's spelling, which a refused pin names.
    let mut spelled: BTreeMap<String, String> = entries
        .into_iter()
        .filter_map(|(model, _)| Some((policy_model(&model).ok()?, model)))
        .collect();
    let fw = st.firmware.clone();
    let (p, key) = (policies.clone(), scope.clone());
    let before = blocking(move || {
        let before = fw
            .store()
            .put_firmware_policies(&key, &p)
            .map_err(|e| match e {
                StoreError::NoPinnedRelease { model, version } => StoreError::NoPinnedRelease {
                    model: spelled.remove(&model).unwrap_or(model),
                    version,
                },
                e => e,
            })?;
        fw.reload()?;
        Ok(before)
    })
    .await?;
    let resp = Json(&policies).into_response();
    Ok(with_change(
        resp,
        format!("firmware policies of {scope} set"),
        &before,
        &policies,
    ))
}
