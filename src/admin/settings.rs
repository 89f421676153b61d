//! Parameter layers, static files, and "what does this phone get": any file as a device gets
//! it, and its evaluated settings with where each came from, secret values masked in both.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, Principal, audit, blocking, parse_json, parse_mac};
use crate::model::{Layer, Mac, Vendor, validate_param};
use crate::phone::identify::macs_in_name;
use crate::phone::{preview, preview_firmware_base, preview_https_port};
use crate::settings::layered::effective;
use crate::settings::{EvalOptions, Outcome, Vars, evaluate_with};
use crate::settings::{served, vocab};
use crate::store::MAX_STATIC_FILE;

/// Checks a parameter for the store (expressible in every file) and for the vocabulary.
pub fn check_param(field: &str, name: &str, value: Option<&str>) -> Result<(), ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("{field}: {e}"));
    validate_param(name, value.unwrap_or("")).map_err(|e| bad(&e))?;
    // Removing a parameter sets no value, so the vocabulary has nothing to check: a VLAN id's
    // range must not stop `vlan.id` from being unset.
    match value {
        Some(value) => vocab::validate(name, value).map_err(|e| bad(&e)),
        None => Ok(()),
    }
}

/// Parses a layer name and checks the caller may use it: an operator only its sites' layers.
/// A name with `|` from before names were checked is taken ([`Layer::parse_stored`]), so that
/// its layer can be read and cleared; [`patch_layer`] refuses to set anything in it.
fn layer(text: &str, who: &Principal) -> Result<Layer, ApiError> {
    let l = Layer::parse_stored(text).map_err(|e| ApiError::BadRequest(format!("layer: {e}")))?;
    match &l {
        Layer::Site(site) => who.require_site(site)?,
        _ => who.require_admin()?,
    }
    Ok(l)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LayerView {
    pub layer: String,
    pub params: BTreeMap<String, String>,
    /// Names only: secret values are write-only.
    pub secrets: Vec<String>,
    /// In a `PATCH`'s answer only: the names it asked to remove (`null`) that the layer did not
    /// hold, so a misspelt name (`sip.sever`) or the wrong layer is said, not taken as done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_set: Vec<String>,
}

pub async fn get_layer(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<LayerView>, ApiError> {
    let l = layer(&name, &who)?;
    let store = st.store.clone();
    let key = l.clone();
    let set = blocking(move || store.get_layer(&key)).await?;
    Ok(Json(LayerView::of(&l, set)))
}

impl LayerView {
    /// A layer as the API shows it. A parameter whose name makes it a secret (`SIP_PASSWORD`,
    /// `admin.password` set as a plain parameter, docs/parameters.md) is listed by name with
    /// the secrets, as the device view lists it: its value would otherwise be shown to anyone
    /// who may read the layer and kept in the audit entry of every change to it.
    fn of(layer: &Layer, set: crate::model::ParamSet) -> LayerView {
        let (params, secrets) = super::secret_named::split(set.params, set.secrets.into_keys());
        LayerView {
            layer: layer.to_string(),
            params,
            secrets,
            not_set: Vec::new(),
        }
    }
}

/// The names a patch removes (`null` in `params` or `secrets`) that were not held: for each,
/// no map it was removed from (`params`, `secrets`, or both, as `param unset` and `device set
/// --unset` send it) had it. A layer's and a device's patch both answer them (`not_set`).
pub(super) fn not_set(
    params: &BTreeMap<String, Option<String>>,
    secrets: &BTreeMap<String, Option<String>>,
    held_params: &BTreeMap<String, String>,
    held_secrets: &BTreeMap<String, String>,
) -> Vec<String> {
    let removes = |map: &BTreeMap<String, Option<String>>, name: &String| {
        map.get(name).is_some_and(Option::is_none)
    };
    let names: std::collections::BTreeSet<&String> = params
        .iter()
        .chain(secrets)
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    names
        .into_iter()
        .filter(|name| {
            let held = (removes(params, name) && held_params.contains_key(*name))
                || (removes(secrets, name) && held_secrets.contains_key(*name));
            !held
        })
        .cloned()
        .collect()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LayerPatch {
    #[serde(default)]
    pub params: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<String>>,
}

/// Sets (or with `null` removes) parameters of one layer, all or nothing.
pub async fn patch_layer(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let l = layer(&name, &who)?;
    let patch: LayerPatch = parse_json(&body)?;
    for (field, map) in [("params", &patch.params), ("secrets", &patch.secrets)] {
        for (k, v) in map {
            check_param(field, k, v.as_deref())?;
        }
    }
    let sets = patch
        .params
        .values()
        .chain(patch.secrets.values())
        .any(Option::is_some);
    if sets && let Some(Err(e)) = l.name().map(crate::model::check_name) {
        return Err(ApiError::BadRequest(format!(
            "layer: {l}: {e}; stored before names were checked, it can be read and its \
             parameters removed (null), but nothing can be set in it"
        )));
    }
    let store = st.store.clone();
    let key = l.clone();
    let asked = (patch.params.clone(), patch.secrets.clone());
    let (before, set) = blocking(move || {
        store.update_layer(&key, |set| {
            for (map, changes) in [
                (&mut set.params, patch.params),
                (&mut set.secrets, patch.secrets),
            ] {
                for (k, v) in changes {
                    match v {
                        Some(v) => map.insert(k, v),
                        None => map.remove(&k),
                    };
                }
            }
        })
    })
    .await?;
    let not_set = not_set(&asked.0, &asked.1, &before.params, &before.secrets);
    let (named_before, named_after) = (
        super::secret_named::values(&before.params),
        super::secret_named::values(&set.params),
    );
    let secrets: Vec<(String, bool)> =
        audit::secret_values("secrets", &before.secrets, &set.secrets)
            .chain(audit::secret_values("params", &named_before, &named_after))
            .collect();
    let (before, after) = (LayerView::of(&l, before), LayerView::of(&l, set));
    let changes = audit::with_secret_changes(
        audit::changes(
            serde_json::to_value(&before).unwrap_or_default(),
            serde_json::to_value(&after).unwrap_or_default(),
        ),
        secrets,
    );
    let unchanged = changes.as_object().is_some_and(serde_json::Map::is_empty);
    let summary = match (unchanged, not_set.is_empty()) {
        (false, _) => format!("parameters of {l} changed"),
        (true, true) => format!("parameters of {l} unchanged"),
        (true, false) => format!(
            "parameters of {l} unchanged: not set there: {}",
            not_set.join(", ")
        ),
    };
    if !unchanged {
        tracing::info!(layer = %l, "parameters changed");
    }
    let resp = Json(LayerView { not_set, ..after }).into_response();
    Ok(audit::with_changes(resp, summary, changes))
}

/// Unknown fields are refused: a misspelt `site` would put a file for every site.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SiteQuery {
    pub site: Option<String>,
}

fn file_name(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ApiError::BadRequest(format!(
            "file name {name:?}: 1-128 characters of letters, digits, '.', '-', '_'"
        )))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StaticFileView {
    pub site: String,
    pub name: String,
    pub size: usize,
    /// Served only to a device that proves who it is: the name holds a MAC (that device's own
    /// file), or a line gives a password or PIN a value (see `secrets`).
    #[serde(default)]
    pub protected: bool,
    /// The lines that give a secret-looking name a value: `line 59: FORCE_SIP_PASSWORD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// In an upload's answer only: what in the file is stored but probably not meant, such as
    /// an Avaya `SET HTTPSRVR` naming another server (`line 3: SET HTTPSRVR names …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StaticFileView {
    fn new(site: String, name: String, size: usize, secrets: Vec<String>) -> StaticFileView {
        let protected = !secrets.is_empty() || !macs_in_name(&name).is_empty();
        StaticFileView {
            site,
            name,
            size,
            protected,
            secrets,
            warnings: Vec::new(),
        }
    }
}

/// The secret assignments of a static file, as [`StaticFileView::secrets`] lists them: the
/// line and the setting's name, and for a login in a URL, that it is the URL's login and not
/// the setting itself that is secret (`line 3: device.prov.serverName (login in its URL)`).
fn secrets_of(bytes: &[u8]) -> Vec<String> {
    crate::settings::secrets::secret_lines(bytes)
        .into_iter()
        .map(|s| match s.in_url {
            true => format!("line {}: {} (login in its URL)", s.line, s.name),
            false => format!("line {}: {}", s.line, s.name),
        })
        .collect()
}

/// What an upload is warned about ([`StaticFileView::warnings`]): in an Avaya settings file,
/// a `SET HTTPSRVR`/`TLSSRVR` naming a server that is not one of `server_names` (the box's
/// `pki.server_names`), which would move the phones that read it away from this box.
fn warnings_of(name: &str, bytes: &[u8], server_names: &[String]) -> Vec<String> {
    use crate::settings::{FileKind, foreign_servers};
    if FileKind::of(name, bytes) != Some(FileKind::Avaya) {
        return Vec::new();
    }
    foreign_servers(name, bytes, server_names)
        .into_iter()
        .map(|f| format!("line {}: {}", f.line, f.message))
        .collect()
}

pub async fn list_files(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<SiteQuery>,
) -> Result<Json<Vec<StaticFileView>>, ApiError> {
    if let Some(site) = &q.site {
        who.require_site(site)?;
    }
    let store = st.store.clone();
    let files = blocking(move || store.list_static_files(secrets_of)).await?;
    Ok(Json(
        files
            .into_iter()
            .filter(|(site, ..)| who.allows(site) && q.site.as_ref().is_none_or(|s| s == site))
            .map(|(site, name, size, secrets)| StaticFileView::new(site, name, size, secrets))
            .collect(),
    ))
}

pub async fn put_file(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<SiteQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = file_name(&name)?;
    who.require_site(q.site.as_deref().unwrap_or(""))?;
    if body.len() > MAX_STATIC_FILE {
        return Err(ApiError::BadRequest(format!(
            "{name}: {} bytes is over the {MAX_STATIC_FILE}-byte limit for static files",
            body.len()
        )));
    }
    let store = st.store.clone();
    let (n, site, size) = (name.clone(), q.site.clone(), body.len());
    let server_names = st.config.get().pki.server_names.clone();
    let (secrets, warnings, old, changed) = blocking(move || {
        let secrets = secrets_of(&body);
        let warnings = warnings_of(&n, &body, &server_names);
        let reading = crate::settings::secrets::READING;
        let old =
            store.put_static_file(site.as_deref(), &n, &body, !secrets.is_empty(), reading)?;
        let changed = old.as_deref().is_some_and(|o| o != body.as_ref());
        Ok((secrets, warnings, old, changed))
    })
    .await?;
    tracing::info!(file = %name, site = ?q.site, size, secrets = secrets.len(), "static file stored");
    let site = q.site.unwrap_or_default();
    let before =
        old.map(|o| StaticFileView::new(site.clone(), name.clone(), o.len(), secrets_of(&o)));
    let after = StaticFileView::new(site, name, size, secrets);
    let summary = format!("static file {} {} stored", after.name, of_site(&after.site));
    let changes = file_changes(before.as_ref(), Some(&after), changed);
    let answer = StaticFileView { warnings, ..after };
    let resp = (StatusCode::CREATED, Json(&answer)).into_response();
    Ok(audit::with_changes(resp, summary, changes))
}

/// Where a static file belongs, as an audit summary says it.
fn of_site(site: &str) -> String {
    if site.is_empty() {
        "box-wide".into()
    } else {
        format!("of site {site}")
    }
}

/// What an audit entry says changed on a static file: its view (site, name, size, the lines
/// holding secrets) and, masked, whether its content changed (bytes may hold a secret). The
/// request path alone said neither which site's file it was nor what it held.
fn file_changes(
    before: Option<&StaticFileView>,
    after: Option<&StaticFileView>,
    content_changed: bool,
) -> serde_json::Value {
    let view = |v: Option<&StaticFileView>| serde_json::to_value(v).unwrap_or_default();
    audit::with_secret_changes(
        audit::changes(view(before), view(after)),
        [("content".to_string(), content_changed)],
    )
}

/// A static file's bytes as stored. One that carries secrets (a line gives a password or PIN a
/// value, or it is a device's own file: [`StaticFileView::protected`]) is the administrator's
/// to download, and that download is audited as an override's is: the site's operator lists,
/// replaces and deletes it, but reading it would give out the secrets that secret values'
/// being write-only keeps from it. No masked copy is served instead: edited and uploaded
/// again, it would put the mask in place of the secrets.
pub async fn get_file(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<SiteQuery>,
) -> Result<Response, ApiError> {
    let name = file_name(&name)?;
    who.require_site(q.site.as_deref().unwrap_or(""))?;
    let store = st.store.clone();
    let n = name.clone();
    let box_wide = who.allows("");
    let (site, bytes, secrets) = blocking(move || {
        let own = store.own_static_file(q.site.as_deref(), &n)?;
        let found = match own {
            // A site without a file of its own: its phones get the box-wide one, which is given
            // only to those who may read files of no site (an operator read its passwords so).
            None if q.site.is_some() && box_wide => {
                store.own_static_file(None, &n)?.map(|b| (None, b))
            }
            found => found.map(|b| (q.site, b)),
        };
        Ok(found.map(|(site, b)| {
            let secrets = secrets_of(&b);
            (site.unwrap_or_default(), b, secrets)
        }))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("static file {name} not found")))?;
    let size = bytes.len();
    let resp = (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response();
    // Protected as [`StaticFileView::new`] judges it, saying why.
    let why = match (secrets.as_slice(), macs_in_name(&name).first()) {
        ([], None) => return Ok(resp),
        ([], Some(mac)) => format!(
            "it is device {mac}'s own file, served only to that device and taken as carrying \
             its secrets"
        ),
        (lines, _) => format!("it carries secrets ({})", first_lines(lines)),
    };
    let file = format!("static file {name} {}", of_site(&site));
    if !who.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "only an administrator may download {file}: {why}; {} may list, replace or delete it",
            who.user
        )));
    }
    let summary = format!("{file} downloaded ({size} bytes): {why}");
    Ok(audit::with_changes(resp, summary, serde_json::Value::Null))
}

/// The secret lines a refusal or an audit summary names: the first few, then how many more
/// (a file from the field may hold hundreds; `GET /files` lists them all).
fn first_lines(lines: &[String]) -> String {
    const NAMED: usize = 5;
    match lines.len().checked_sub(NAMED) {
        Some(more) if more > 0 => format!("{} and {more} more", lines[..NAMED].join(", ")),
        _ => lines.join(", "),
    }
}

pub async fn delete_file(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<SiteQuery>,
) -> Result<Response, ApiError> {
    let name = file_name(&name)?;
    who.require_site(q.site.as_deref().unwrap_or(""))?;
    let store = st.store.clone();
    let (n, site) = (name.clone(), q.site.clone());
    let old = blocking(move || store.delete_static_file(site.as_deref(), &n))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("static file {name} not found")))?;
    let site = q.site.unwrap_or_default();
    let summary = format!("static file {name} {} deleted", of_site(&site));
    let before = StaticFileView::new(site, name, old.len(), secrets_of(&old));
    Ok(audit::with_changes(
        StatusCode::NO_CONTENT.into_response(),
        summary,
        file_changes(Some(&before), None, false),
    ))
}

/// The bytes device `mac` would receive for file `name`, its secret values masked.
pub async fn device_file(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path((mac, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    super::devices::scoped(&st, &who, mac).await?;
    let name = file_name(&name)?;
    let store = st.store.clone();
    let catalogue = st.firmware.catalogue();
    let base = preview_firmware_base(&st.config.get());
    let scep = st.config.get().scep.enabled;
    let https_port = preview_https_port(&st.config.get());
    let n = name.clone();
    let rendered =
        blocking(move || preview(&store, &catalogue, mac, &n, (&base, scep, https_port))).await?;
    let r =
        rendered.ok_or_else(|| ApiError::NotFound(format!("device {mac} gets no file {name}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], r.bytes).into_response())
}

/// One effective setting and where it came from.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EffectiveSetting {
    pub name: String,
    pub value: String,
    /// The file and line that gave the value, as the phone reads its files (Avaya: its chain;
    /// Yealink: the boot file's includes, later winning; Poly: the master file's list, first
    /// winning), an operator's static file where one replaces a generated one.
    pub file: String,
    pub line: Option<usize>,
    /// The parameter and layer that produced it (`global`, `site:hq`, …, `device`), when it
    /// was generated; empty for values from an operator's static file.
    pub param: String,
    pub layer: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EffectiveView {
    pub mac: Mac,
    pub vendor: Option<Vendor>,
    /// The files processed, in order.
    pub chain: Vec<String>,
    pub settings: Vec<EffectiveSetting>,
    /// Avaya: how evaluating the chain ended, `completed` or why it stopped (the settings are
    /// then only those before the stop). Yealink and Poly: `completed`, or `completed; not
    /// read: …` naming each file the phone would be told to read but that is not served here,
    /// is ignored by the phone (no version line, not well-formed XML) or comes from elsewhere.
    pub outcome: String,
}

/// The evaluated settings of a device, with their origin.
pub async fn device_effective(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Json<EffectiveView>, ApiError> {
    let mac = parse_mac(&mac)?;
    super::devices::scoped(&st, &who, mac).await?;
    let store = st.store.clone();
    let catalogue = st.firmware.catalogue();
    let base = preview_firmware_base(&st.config.get());
    let scep = st.config.get().scep.enabled;
    let https_port = preview_https_port(&st.config.get());
    let view = blocking(move || {
        let mut ctx = store
            .device_context(mac)?
            .ok_or_else(|| crate::store::StoreError::NotFound(format!("device {mac}")))?;
        // The view shows where each secret goes, not what it is (the files it evaluates come
        // from `preview`, which masks the same way).
        crate::settings::layered::mask_secrets(&mut ctx);
        let vendor = Vendor::from_model(&ctx.device.model);
        // Native name → (value, parameter, layer) as generated, later layers winning. A value
        // is attributed to a parameter only when it is the value that parameter produces: a
        // static file or the operator's specials may set the same name to something else.
        let mut producers: BTreeMap<String, (String, String, String)> = BTreeMap::new();
        if let Some(v) = vendor {
            let eff = effective(&ctx);
            let all: BTreeMap<String, String> = eff
                .iter()
                .map(|(k, e)| (k.clone(), e.value.clone()))
                .collect();
            for (param, e) in crate::settings::layered::in_layer_order(&ctx, &eff) {
                let one = BTreeMap::from([(param.clone(), e.value.clone())]);
                for (native, value) in vocab::to_native(v, &one, &all) {
                    producers.insert(native, (value, param.clone(), e.origin.to_string()));
                }
            }
        }
        let origin_of = |name: &str, value: &str| match producers.get(name) {
            Some((v, param, layer)) if v == value => (param.clone(), layer.clone()),
            _ => (String::new(), String::new()),
        };
        let (chain, settings, outcome) = match vendor {
            Some(Vendor::Avaya) => {
                let entry = match ctx.device.model.to_ascii_uppercase() {
                    m if m.starts_with('K') => "K1xxSupgrade.txt",
                    m if m.starts_with("96") => "96x1Supgrade.txt",
                    _ => "J100Supgrade.txt",
                };
                // As the phone sets them: `MODEL4` is the model's first four characters, so a
                // 9641GS runs the `IF $MODEL4 SEQ 9641` sections.
                let model = &ctx.device.model;
                let vars = Vars::for_phone(model, &ctx.device.group, &mac.to_string());
                let options = EvalOptions::for_model(model);
                let mut load_err = None;
                // A GET of a missing file in a loop is asked again up to the step limit: each
                // miss is looked up once.
                let mut missing = std::collections::HashSet::new();
                let loader = |name: &str| {
                    if missing.contains(name) {
                        return None;
                    }
                    match preview(&store, &catalogue, mac, name, (&base, scep, https_port)) {
                        Ok(Some(r)) => Some(r.bytes),
                        Ok(None) => {
                            missing.insert(name.to_string());
                            None
                        }
                        Err(e) => {
                            load_err = Some(e);
                            None
                        }
                    }
                };
                let eval = evaluate_with(entry, &vars, loader, &options);
                if let Some(e) = load_err {
                    return Err(e);
                }
                let settings = eval
                    .settings
                    .into_iter()
                    .map(|s| {
                        let (param, layer) = origin_of(&s.name, &s.value);
                        EffectiveSetting {
                            name: s.name,
                            value: s.value,
                            file: s.origin.file,
                            line: Some(s.origin.line),
                            param,
                            layer,
                        }
                    })
                    .collect();
                (eval.files, settings, eval.outcome.to_string())
            }
            Some(v @ (Vendor::Yealink | Vendor::Poly)) => {
                // The files the phone reads, as it would get them: an operator's static file
                // where one replaces a generated one (a family or common file, the device's
                // own), secrets masked as in the file preview.
                let mut load_err = None;
                let loader = |name: &str| match preview(
                    &store,
                    &catalogue,
                    mac,
                    name,
                    (&base, scep, https_port),
                ) {
                    Ok(found) => found.map(|r| r.bytes),
                    Err(e) => {
                        load_err = Some(e);
                        None
                    }
                };
                let read = if v == Vendor::Yealink {
                    served::yealink(&mac.to_string(), loader)
                } else {
                    served::poly(&mac.to_string(), loader)
                };
                if let Some(e) = load_err {
                    return Err(e);
                }
                let outcome = read.outcome();
                let settings = read
                    .settings
                    .into_iter()
                    .map(|s| {
                        let (param, layer) = origin_of(&s.name, &s.value);
                        EffectiveSetting {
                            name: s.name,
                            value: s.value,
                            file: s.origin.file,
                            line: Some(s.origin.line),
                            param,
                            layer,
                        }
                    })
                    .collect();
                (read.files, settings, outcome)
            }
            _ => (Vec::new(), Vec::new(), Outcome::Completed.to_string()),
        };
        Ok(EffectiveView {
            mac,
            vendor,
            chain,
            settings,
            outcome,
        })
    })
    .await?;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::first_lines;

    #[test]
    fn a_refusal_names_the_first_secret_lines_and_counts_the_rest() {
        let lines: Vec<String> = (1..=7).map(|n| format!("line {n}: PIN{n}")).collect();
        assert_eq!(first_lines(&lines[..1]), "line 1: PIN1");
        assert_eq!(
            first_lines(&lines[..5]),
            "line 1: PIN1, line 2: PIN2, line 3: PIN3, line 4: PIN4, line 5: PIN5"
        );
        assert_eq!(
            first_lines(&lines),
            "line 1: PIN1, line 2: PIN2, line 3: PIN3, line 4: PIN4, line 5: PIN5 and 2 more"
        );
    }
}
