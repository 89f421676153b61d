//! The admin REST API: JSON under `/api/v1`, HTTPS with the server certificate, bearer token.

mod audit;
pub mod auth;
mod certs;
mod device_certs;
mod devices;
mod dhcp;
mod dns;
mod error;
mod firmware;
mod import;
mod jobs;
mod json_errors;
pub mod openapi;
mod paging;
mod preferences;

mod refused_body;
mod scep_pending;
mod secret_named;
mod settings;
mod site_filter;
mod sites;
mod sync;
pub mod token;
mod tokens;
mod uploads;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use crate::failure_limit::FailureLimiter;
pub use audit::Change;
pub use auth::{Guard, Principal};
pub use devices::{DeviceView, ListQuery, select};
pub use dhcp::LeaseView;
pub use error::{ApiError, EXPIRED_CHALLENGE, parse_mac};
pub use firmware::{FirmwareView, ReleaseView};
pub use import::{ImportReport, RowError};
pub use jobs::JobDetail;
pub use scep_pending::{NotApproved, PendingView, SiteApproval};
pub use settings::{EffectiveView, LayerView, StaticFileView};
pub use sites::{GroupView, SiteView};
pub use tokens::{NewTokenView, TokenView};
pub use uploads::UploadView;

use crate::model::Alarm;
use crate::pki::Pki;
use crate::store::{Recorder, Store};

#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub recorder: Recorder,
    pub pki: Arc<Pki>,
    pub guard: Arc<auth::Guard>,
    pub firmware: Arc<crate::firmware::Firmware>,
    pub dhcp: Arc<crate::dhcp::Stats>,
    pub dns: Arc<crate::dns::Stats>,
    pub pnp: Arc<crate::pnp::Stats>,
    /// The running configuration, as last (re)loaded (backups carry it).
    pub config: crate::reload::RunningConfig,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Changes the log level at runtime (absent when logging was set up elsewhere, as in tests
    /// of the library).
    pub log: Option<crate::logging::LogControl>,
}

/// The most a request body may hold: one byte over the largest static file, so that the upload
/// itself can say a file is too large, naming it.
const BODY_MAX: usize = crate::store::MAX_STATIC_FILE + 1;
/// The most an inventory import may hold.
const IMPORT_BODY_MAX: usize = 64 << 20;

pub fn router(state: AdminState) -> Router {
    // A listing's `site` filter names a site that exists ([`site_filter`]).
    let known_site = axum::middleware::from_fn_with_state(state.clone(), site_filter::must_exist);
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/health", get(health))
        .route(
            "/devices",
            get(devices::list)
                .route_layer(known_site.clone())
                .post(devices::create),
        )
        .route(
            "/devices/import",
            post(import::import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_MAX)),
        )
        .route(
            "/devices/export",
            get(import::export).route_layer(known_site.clone()),
        )
        .route(
            "/devices/{mac}",
            get(devices::get)
                .patch(devices::update)
                .delete(devices::delete),
        )
        .route("/devices/{mac}/files/{name}", get(settings::device_file))
        .route("/devices/{mac}/effective", get(settings::device_effective))
        .route("/devices/{mac}/checkins", get(devices::checkins))
        .route("/devices/{mac}/uploads", get(uploads::list))
        .route(
            "/devices/{mac}/uploads/{name}",
            get(uploads::download).delete(uploads::delete),
        )
        .route("/sites", get(sites::list).post(sites::create))
        .route(
            "/sites/{site}",
            get(sites::get).patch(sites::update).delete(sites::delete),
        )
        .route(
            "/groups",
            get(sites::groups).route_layer(known_site.clone()),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route(
            "/preferences",
            get(preferences::get).patch(preferences::update),
        )
        .route(
            "/params/{layer}",
            get(settings::get_layer).patch(settings::patch_layer),
        )
        .route("/files", get(settings::list_files).route_layer(known_site))
        .route(
            "/files/{name}",
            get(settings::get_file)
                .put(settings::put_file)
                .delete(settings::delete_file),
        )
        .route("/backup", get(backup))
        .route("/metrics", get(metrics))
        .route("/alarms", get(alarms))
        .route("/alarms/clear", post(clear_alarm))
        .route("/audit", get(audit::list))
        .route("/dns/records", get(dns::list).post(dns::create))
        .route("/dns/records/{id}", axum::routing::delete(dns::delete))
        .route("/firmware", get(firmware::list))
        .route("/firmware/releases", post(firmware::add))
        .route(
            "/firmware/releases/{file}",
            axum::routing::delete(firmware::delete),
        )
        .route(
            "/firmware/images/{file}",
            axum::routing::put(firmware::upload).delete(firmware::delete_image),
        )
        .route("/firmware/scrub", post(firmware::scrub))
        .route("/firmware/prefetch", post(firmware::prefetch))
        .route("/firmware/jobs/{id}", get(firmware::job))
        .route("/firmware/policies", get(firmware::policies))
        .route(
            "/firmware/policies/{scope}",
            axum::routing::put(firmware::put_policies),
        )
        .route("/sync", get(sync::status))
        .route("/sync/register", post(sync::register))
        .route("/sync/now", post(sync::now))
        .route("/sync/rejected", get(sync::rejected))
        .route("/sync/rejected/requeue", post(sync::requeue))
        .route("/dhcp/leases", get(dhcp::leases))
        .route("/dhcp/stats", get(dhcp::stats))
        .merge(certs::routes())
        .merge(device_certs::routes())
        .merge(scep_pending::routes())
        .route("/jobs", get(jobs::list).post(jobs::create))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/jobs/{id}/pause", post(jobs::pause))
        .route("/jobs/{id}/resume", post(jobs::resume))
        .route("/jobs/{id}/stop", post(jobs::stop));
    let api = guarded(api, &state).layer(axum::extract::DefaultBodyLimit::max(BODY_MAX));
    // Prometheus scrapes `/metrics` by convention: the same handler, behind the same guard.
    let scrape = guarded(Router::new().route("/metrics", get(metrics)), &state);
    Router::new()
        .nest("/api/v1", api)
        .merge(scrape)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn(json_errors::as_json))
        .with_state(state)
}

/// Every route passes the guard (token, role, rate limit) inside the audit record, so refusals
/// are audited too; what passes it is entered before it runs (`audit::intent`).
fn guarded(routes: Router<AdminState>, state: &AdminState) -> Router<AdminState> {
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::intent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
}

/// Status, version and the number of devices the caller may see: an administrator's is the
/// box's count (read from the table's length, for monitoring that polls it), an operator's
/// counts its sites' devices only, as its `GET /devices` does, so that it does not learn how
/// many phones other sites have.
async fn health(
    State(st): State<AdminState>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.store.clone();
    let devices = blocking(move || match who.is_admin() {
        true => store.count_devices(),
        false => Ok(store
            .devices_snapshot()?
            .iter()
            .filter(|d| who.allows(&d.site))
            .count() as u64),
    })
    .await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "devices": devices,
    })))
}

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AlarmQuery {
    severity: Option<crate::model::Severity>,
    kind: Option<crate::model::AlarmKind>,
    /// Case-insensitive search in source and message.
    q: Option<String>,
    /// `last` (default), `first`, `count`, `severity` or `source`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
    /// Paging as `/devices` pages ([`paging::window`]).
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// Alarms, filtered and sorted, one page of them; the number that match is in
/// `X-Total-Count`. Alarms with the same sort key are in the order of their kind and source
/// (reversed with the order), so that the pages of an unchanged list cover each alarm once.
async fn alarms(
    State(st): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<AlarmQuery>,
) -> Result<([(&'static str, String); 1], Json<Vec<Alarm>>), ApiError> {
    // Refusals are recorded off the request path; flush so the list reflects them.
    st.recorder.flush().await;
    let store = st.store.clone();
    let all = blocking(move || store.list_alarms()).await?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut found: Vec<Alarm> = all
        .into_iter()
        .filter(|a| q.severity.is_none_or(|s| a.severity == s))
        .filter(|a| q.kind.is_none_or(|k| a.kind == k))
        .filter(|a| {
            needle.as_deref().is_none_or(|n| {
                a.source.to_lowercase().contains(n) || a.message.to_lowercase().contains(n)
            })
        })
        .collect();
    found.sort_by(|a, b| (a.kind.as_str(), &a.source).cmp(&(b.kind.as_str(), &b.source)));
    match q.sort.as_deref().unwrap_or("last") {
        "last" => found.sort_by_key(|a| a.last),
        "first" => found.sort_by_key(|a| a.first),
        "count" => found.sort_by_key(|a| a.count),
        // Most severe is the largest, so that the default descending order puts it first.
        "severity" => found.sort_by_key(|a| std::cmp::Reverse(a.severity)),
        "source" => found.sort_by(|a, b| a.source.cmp(&b.source)),
        other => {
            return Err(ApiError::BadRequest(format!(
                "sort: {other:?} is not last, first, count, severity or source"
            )));
        }
    }
    match q.order.as_deref() {
        None | Some("desc") => found.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order: {other:?} is not asc or desc"
            )));
        }
    }
    let (page, total) = paging::window(found.into_iter(), q.offset, q.limit);
    Ok((paging::total_count(total), Json(page)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearAlarm {
    kind: crate::model::AlarmKind,
    source: String,
}

/// Clears one alarm (audited with what was cleared). It comes back if the cause recurs.
async fn clear_alarm(
    State(st): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: ClearAlarm = parse_json(&body)?;
    let store = st.store.clone();
    let (kind, source) = (req.kind, req.source.clone());
    match blocking(move || store.clear_alarm(kind, &source)).await? {
        Some(old) => {
            let summary = format!("alarm {} from {} cleared", old.kind.as_str(), old.source);
            let resp = axum::http::StatusCode::NO_CONTENT.into_response();
            Ok(audit::with_change(
                resp,
                summary,
                &old,
                serde_json::Value::Null,
            ))
        }
        None => Err(ApiError::NotFound(format!(
            "no {} alarm from {}",
            req.kind.as_str(),
            req.source
        ))),
    }
}

/// Prometheus text: phone requests, TLS handshakes, DHCP, DNS and PnP counters, devices,
/// alarms, sync lag and outbox depth.
async fn metrics(
    State(st): State<AdminState>,
    axum::Extension(sync): axum::Extension<Arc<crate::sync::SyncHandle>>,
) -> Result<Response, ApiError> {
    use crate::metrics::sample;
    let mut out = String::new();
    st.metrics.render(&mut out);
    // Every DHCP counter `GET /dhcp/stats` has: the ones that say something is wrong (a pool
    // exhausted, leases not saved so their ACKs never left, replies not sent) matter most.
    let d = st.dhcp.view();
    for (name, value, help) in [
        ("received", d.received, "DHCP packets received."),
        (
            "malformed",
            d.malformed,
            "DHCP packets that did not decode.",
        ),
        (
            "ignored",
            d.ignored,
            "DHCP packets not for this server or of no use to it.",
        ),
        ("offers", d.offers, "DHCP offers sent."),
        ("acks", d.acks, "DHCP acknowledgements sent."),
        ("naks", d.naks, "DHCP negative acknowledgements sent."),
        ("informs", d.informs, "DHCPINFORM requests answered."),
        (
            "releases",
            d.releases,
            "DHCP leases released by their clients.",
        ),
        (
            "declines",
            d.declines,
            "DHCP addresses declined by clients (in use by someone else).",
        ),
        (
            "exhausted",
            d.exhausted,
            "DHCP requests left unanswered: no free address in the pool.",
        ),
        (
            "dropped",
            d.dropped,
            "DHCP requests dropped: the lease writer was behind or gone.",
        ),
        (
            "commit_errors",
            d.commit_errors,
            "DHCP leases not saved, so their ACKs were not sent.",
        ),
        (
            "send_errors",
            d.send_errors,
            "DHCP replies that could not be sent.",
        ),
    ] {
        sample(
            &mut out,
            &format!("edgeprov_dhcp_{name}_total"),
            "counter",
            help,
            value,
        );
    }
    for (name, value) in st.dns.view() {
        // Every counter but this one counts queries.
        let help = match name {
            "tcp_refused" => "DNS TCP connections closed as soon as accepted (outside \
                              allow_from, or over the connection caps)."
                .to_string(),
            _ => format!("DNS queries: {}.", name.replace('_', " ")),
        };
        sample(
            &mut out,
            &format!("edgeprov_dns_{name}_total"),
            "counter",
            &help,
            value,
        );
    }
    for (name, value) in st.pnp.view() {
        let (metric, label, help) = match name {
            "answered" => (
                "subscribes_answered",
                None,
                "Plug-and-play SUBSCRIBEs answered with a NOTIFY carrying the provisioning URL.",
            ),
            "acknowledged" | "refused" | "unanswered" => (
                "notifies",
                Some(("result", name)),
                "Plug-and-play NOTIFYs by outcome: acknowledged (2xx), refused (an error \
                 answer), unanswered (no answer after every retransmission).",
            ),
            "ignored" => (
                "ignored",
                None,
                "SIP messages left unanswered as not plug-and-play (INVITE, REGISTER, other \
                 events) or not ours.",
            ),
            "send_errors" => (
                "send_errors",
                None,
                "Plug-and-play answers that could not be sent.",
            ),
            "no_dialog" | "out_of_order" => (
                "subscribes_refused",
                Some(("reason", name)),
                "Plug-and-play SUBSCRIBEs sent inside a dialog and refused: no_dialog (481, not a \
                 dialog of ours, the phone starts again), out_of_order (500, a CSeq below the \
                 dialog's last).",
            ),
            _ => (
                "dropped",
                Some(("reason", name)),
                "Plug-and-play datagrams dropped: malformed, rate_limited (over pnp.rate_limit), \
                 busy (too many transactions in hand), source_busy (too many in hand from that \
                 address).",
            ),
        };
        let full = format!("edgeprov_pnp_{metric}_total");
        // The help and type lines once per metric, before its first sample.
        if !out.contains(&format!("# TYPE {full} ")) {
            let _ = std::fmt::Write::write_fmt(
                &mut out,
                format_args!("# HELP {full} {help}\n# TYPE {full} counter\n"),
            );
        }
        let labels = label
            .map(|(k, v)| format!("{{{k}=\"{v}\"}}"))
            .unwrap_or_default();
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{full}{labels} {value}\n"));
    }
    let fw = &st.firmware.counters;
    for (name, help, counter) in [
        ("hits", "Image requests answered from the cache.", &fw.hits),
        (
            "misses",
            "Image requests that waited for a fetch.",
            &fw.misses,
        ),
        ("fetches", "Images fetched from upstream.", &fw.fetches),
        (
            "fetch_failures",
            "Upstream fetches that failed.",
            &fw.fetch_failures,
        ),
    ] {
        sample(
            &mut out,
            &format!("edgeprov_firmware_cache_{name}_total"),
            "counter",
            help,
            counter.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    let store = st.store.clone();
    let (devices, alarms) =
        blocking(move || Ok((store.count_devices()?, store.list_alarms()?.len()))).await?;
    sample(
        &mut out,
        "edgeprov_devices",
        "gauge",
        "Devices in the inventory.",
        devices,
    );
    sample(
        &mut out,
        "edgeprov_alarms",
        "gauge",
        "Alarms not cleared.",
        alarms,
    );
    if let Ok(s) = sync.status().await {
        sample(
            &mut out,
            "edgeprov_sync_lag_seconds",
            "gauge",
            "Age of the oldest event not yet delivered to the cloud.",
            s.lag_secs,
        );
        sample(
            &mut out,
            "edgeprov_sync_outbox_events",
            "gauge",
            "Events waiting for the cloud.",
            s.outbox.events,
        );
        sample(
            &mut out,
            "edgeprov_sync_rejected_events",
            "gauge",
            "Events the cloud refused for good, kept apart (GET /api/v1/sync/rejected).",
            s.rejected,
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}

/// A consistent backup of the database, PKI, token and configuration; sealed with the
/// passphrase given in `X-Backup-Passphrase`, if any. Only for the box's own token.
async fn backup(
    State(st): State<AdminState>,
    axum::Extension(who): axum::Extension<Principal>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    // The backup holds the token file: a revocable API token must not be able to take it.
    who.require_box_token()?;
    let passphrase = headers
        .get("x-backup-passphrase")
        .map(|v| {
            // UTF-8, not ASCII alone: `HeaderValue::to_str` refused `pässwort`, which the CLI
            // reads from its file and `restore` takes as it is.
            String::from_utf8(v.as_bytes().to_vec())
                .map_err(|_| ApiError::BadRequest("X-Backup-Passphrase: must be UTF-8 text".into()))
        })
        .transpose()?;
    // HTTP drops a value's outer spaces, so `   ` arrives empty too. A backup sealed under no
    // passphrase would never restore: `edgeprov restore` refuses an empty one.
    if passphrase.as_deref() == Some("") {
        return Err(ApiError::BadRequest(
            "X-Backup-Passphrase: empty (or only spaces): give a passphrase, or leave the \
             header out for a backup that is not encrypted"
                .into(),
        ));
    }
    let sealed = passphrase.is_some();
    let (store, config) = (st.store.clone(), st.config.get());
    let bytes = tokio::task::spawn_blocking(move || {
        crate::backup::build(&store, &config)
            .map(|archive| crate::backup::seal(archive, passphrase.as_deref()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(bytes = bytes.len(), sealed, "backup taken");
    // A read, but it gives out every secret, the CA key and the box's token: audited.
    let summary = format!(
        "backup taken ({} bytes, {})",
        bytes.len(),
        if sealed { "encrypted" } else { "not encrypted" }
    );
    let resp = (
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response();
    Ok(audit::with_changes(resp, summary, serde_json::Value::Null))
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// Parses a JSON body; serde's message names the field and position that is wrong (and, for
/// a value that may be a secret, not the value: see [`without_value`]).
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = match secret_path(e.path()) {
            true => without_value(&e.inner().to_string()),
            false => e.inner().to_string(),
        };
        let message = json_errors::without_position(message, body);
        match e.path().to_string().as_str() {
            "." => ApiError::BadRequest(format!("request body: {message}")),
            path => ApiError::BadRequest(format!("request body: {path}: {message}")),
        }
    })?;
    de.end().map_err(|e| {
        let message = json_errors::without_position(e.to_string(), body);
        ApiError::BadRequest(format!("request body: {message}"))
    })?;
    Ok(value)
}

/// Whether a value at `path` may be a secret: under `secrets` or `http_credential`, a cloud
/// enrollment `token`, a server identity (`pem`, `pkcs12`), a URL (`url`, `urls`: a vendor
/// portal's login or a signed link's token), or under a name that says it is one (a password,
/// a PIN).
fn secret_path(path: &serde_path_to_error::Path) -> bool {
    path.iter().any(|segment| match segment {
        serde_path_to_error::Segment::Map { key } => {
            [
                "secrets",
                "http_credential",
                "token",
                "pem",
                "pkcs12",
                "url",
                "urls",
            ]
            .contains(&key.as_str())
                || crate::settings::vocab::is_secret(key)
        }
        _ => false,
    })
}

/// serde's `invalid type: integer `4711`, expected a string at line 1 column 21` without the
/// value it quotes: a secret given with the wrong type (a PIN as a number) came back in the
/// error, where whatever shows or keeps errors would have it.
fn without_value(message: &str) -> String {
    let Some((head, _)) = message.split_once(['"', '`']) else {
        return message.to_string();
    };
    match message.rfind(", expected ") {
        Some(at) if at >= head.len() => format!("{}{}", head.trim_end(), &message[at..]),
        _ => format!("{} (the value is not repeated)", head.trim_end()),
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    /// A secret of the wrong type came back in the error: `invalid type: integer `4711``.
    #[test]
    fn an_error_about_a_secret_does_not_repeat_it() {
        for body in [
            r#"{"mac": "020000000001", "secrets": {"PIN": 4711}}"#,
            r#"{"mac": "020000000001", "http_credential": "4711"}"#,
            r#"{"mac": "020000000001", "http_credential": {"username": "u", "password": 4711}}"#,
            r#"{"mac": "020000000001", "params": {"voicemail.pin": 4711}}"#,
        ] {
            let err = parse_json::<devices::NewDevice>(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body} accepted"))
                .to_string();
            assert!(!err.contains("4711"), "{err}");
            assert!(
                err.contains("invalid type: ") && err.contains(", expected "),
                "{err}"
            );
        }
        let err = parse_json::<sync::RegisterBody>(br#"{"url": "https://x", "token": 4711}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("token: invalid type: integer, expected"),
            "{err}"
        );
        let err = parse_json::<devices::NewDevice>(br#"{"mac": "020000000001", "label": 4711}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("label: invalid type: integer `4711`"), "{err}");
    }

    /// A release's URL given as a string where a list goes was quoted whole, a vendor portal's
    /// login or a signed link's token with it, and the refusal is kept in the audit log.
    #[test]
    fn an_error_about_a_url_does_not_repeat_it() {
        let body = br#"{"file": "a.bin", "models": ["J179"], "version": "1", "sha256": "00",
            "urls": "https://user:pw@portal/fw.rom?token=abc"}"#;
        let err = parse_json::<crate::firmware::catalogue::Release>(body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("urls: invalid type: string, expected"),
            "{err}"
        );
        assert!(!err.contains("pw") && !err.contains("abc"), "{err}");
    }
}
