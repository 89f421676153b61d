//! What phones uploaded (`/devices/{mac}/uploads`): list, download, delete. Scoped as the
//! device is: an operator sees only its sites' devices' uploads, and downloads an override,
//! which may hold passwords, under the rule of the device's own file
//! (`/devices/{mac}/files/{name}`): the device's site must be the caller's.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, Principal, audit, blocking, parse_mac};
use crate::model::{Mac, UploadFile, UploadInfo, UploadKind};

/// One upload, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadView {
    /// The file's name as the phone sent it (`{mac}-app.log`).
    pub name: String,
    pub kind: UploadKind,
    pub size: u64,
    /// When it was received, Unix seconds.
    pub received: i64,
    /// The address it came from.
    pub from: String,
}

impl UploadView {
    fn new(mac: Mac, info: UploadInfo) -> UploadView {
        UploadView {
            name: info.file.name(mac),
            kind: info.file.kind(),
            size: info.size,
            received: info.received,
            from: info.from,
        }
    }
}

/// The upload `name` names for device `mac`; 404 for another device's name, or a name no
/// upload can have (which says what the names are).
fn upload_of(mac: Mac, name: &str) -> Result<UploadFile, ApiError> {
    match UploadFile::parse(name) {
        Some((file, of)) if of == mac => Ok(file),
        Some(_) => Err(ApiError::NotFound(format!(
            "device {mac} has no upload {name}"
        ))),
        None => Err(ApiError::NotFound(format!(
            "device {mac} has no upload {name:?}: uploads are named {mac}-app.log, \
             {mac}-boot.log, {mac}-phone.cfg and {mac}-web.cfg"
        ))),
    }
}

pub async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Json<Vec<UploadView>>, ApiError> {
    let mac = parse_mac(&mac)?;
    super::devices::scoped(&st, &who, mac).await?;
    let store = st.store.clone();
    let list = blocking(move || store.list_uploads(mac)).await?;
    Ok(Json(
        list.into_iter().map(|i| UploadView::new(mac, i)).collect(),
    ))
}

/// The upload's bytes exactly as the phone sent them. An override is the administrator's to
/// download, and audited: it is the device's own settings file, which may hold the passwords
/// its user typed into the phone, and secret values are write-only for operators (as a static
/// file naming the device is, `GET /files/{name}`). A log is anyone's of the device's sites.
pub async fn download(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path((mac, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    super::devices::scoped(&st, &who, mac).await?;
    let file = upload_of(mac, &name)?;
    if file.kind() == UploadKind::Override && !who.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "only an administrator may download override {name} of device {mac}: it is the \
             device's own settings file and may carry the passwords typed into the phone; {} \
             may list or delete it",
            who.user
        )));
    }
    let store = st.store.clone();
    let upload = blocking(move || store.get_upload(mac, file))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {mac} has no upload {name}")))?;
    let size = upload.bytes.len();
    let resp = (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        upload.bytes,
    )
        .into_response();
    // A read, but an override may give out the passwords its user typed into the phone,
    // unmasked: audited, as a backup is. A log is not.
    Ok(match file.kind() {
        UploadKind::Override => audit::with_changes(
            resp,
            format!("override {name} of device {mac} downloaded ({size} bytes)"),
            serde_json::Value::Null,
        ),
        UploadKind::Log => resp,
    })
}

pub async fn delete(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path((mac, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    super::devices::scoped(&st, &who, mac).await?;
    let file = upload_of(mac, &name)?;
    let store = st.store.clone();
    let removed = blocking(move || store.delete_upload(mac, file))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {mac} has no upload {name}")))?;
    Ok(audit::with_change(
        StatusCode::NO_CONTENT.into_response(),
        format!("upload {name} of device {mac} deleted"),
        UploadView::new(mac, removed),
        serde_json::Value::Null,
    ))
}
