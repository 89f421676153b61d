//! `/api/v1/jobs`: bulk operations over a selection of devices, run by the job runner with a
//! result per device (docs/jobs.md). Creating, pausing, resuming, stopping and deleting are
//! audited with the job's state before and after.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::audit::with_change;
use super::devices::check_device_param;
use super::devices::check_field;
use super::{AdminState, ApiError, Principal, blocking, parse_json};
use crate::jobs::{
    Action, DeviceResult, Job, JobError, JobId, JobKind, JobState, JobsHandle, Selection, Sites,
};
use crate::model::{DeviceFilter, DeviceState, Mac, now_unix};

/// Most devices a selection may list by MAC.
const MAX_MACS: usize = 100_000;

/// Highest accepted `rate` (devices per second).
const MAX_RATE: f64 = 10_000.0;

/// A job with its per-device results (`GET /jobs/{id}`).
#[derive(Debug, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub results: Vec<DeviceResult>,
}

/// A JSON object read field by field, so that every error names its field (serde's own
/// messages do not for a value of the wrong type).
struct Fields {
    obj: Map<String, Value>,
    prefix: &'static str,
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

impl Fields {
    fn new(value: Value, prefix: &'static str) -> Result<Fields, ApiError> {
        match value {
            Value::Object(obj) => Ok(Fields { obj, prefix }),
            _ if prefix.is_empty() => Err(bad("request body: must be a JSON object".into())),
            _ => Err(bad(format!(
                "{}: must be a JSON object",
                prefix.trim_end_matches('.')
            ))),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// The field's value, `None` when absent (a `null` is returned as such).
    fn raw(&mut self, field: &str) -> Option<Value> {
        self.obj.remove(field)
    }

    /// The field parsed, `None` when absent or `null`.
    fn take<T: serde::de::DeserializeOwned>(&mut self, field: &str) -> Result<Option<T>, ApiError> {
        match self.obj.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| bad(format!("{}: {e}", self.name(field)))),
        }
    }

    /// Refuses any field not taken.
    fn finish(self, context: &str) -> Result<(), ApiError> {
        match self.obj.keys().next() {
            Some(k) => Err(bad(format!("{}: unknown field{context}", self.name(k)))),
            None => Ok(()),
        }
    }
}

/// A validated `POST /jobs` body.
struct NewJob {
    kind: JobKind,
    selection: Selection,
    at: Option<i64>,
    rate: Option<f64>,
}

const KINDS: &str = "activate, deactivate, move, set_param, delete, firmware_prefetch";

fn parse_kind(f: &mut Fields) -> Result<JobKind, ApiError> {
    let name: String = f
        .take("kind")?
        .ok_or_else(|| bad(format!("kind: required, one of {KINDS}")))?;
    Ok(match name.as_str() {
        "activate" => JobKind::Activate,
        "deactivate" => JobKind::Deactivate,
        "delete" => JobKind::Delete,
        "firmware_prefetch" => JobKind::FirmwarePrefetch,
        "move" => {
            let site: Option<String> = f.take("site")?;
            let group: Option<String> = f.take("group")?;
            if site.is_none() && group.is_none() {
                return Err(bad("site: a move needs a site, a group or both".into()));
            }
            for (field, v) in [("site", &site), ("group", &group)] {
                if let Some(v) = v {
                    check_field(field, v)?;
                }
            }
            JobKind::Move { site, group }
        }
        "set_param" => {
            let name: String = f
                .take("name")?
                .ok_or_else(|| bad("name: required for set_param".into()))?;
            let value = match f.raw("value") {
                None => {
                    return Err(bad(
                        "value: required for set_param (null removes the parameter)".into(),
                    ));
                }
                Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(bad("value: must be a string, or null to remove".into())),
            };
            let secret: bool = f.take("secret")?.unwrap_or(false);
            crate::model::validate_param(&name, "").map_err(|e| bad(format!("name: {e}")))?;
            check_device_param("value", &name, value.as_deref())?;
            JobKind::SetParam {
                name,
                value,
                secret,
            }
        }
        other => return Err(bad(format!("kind: {other:?} is not one of {KINDS}"))),
    })
}

fn parse_selection(value: Value) -> Result<Selection, ApiError> {
    let mut f = Fields::new(value, "selection.")?;
    let macs: Vec<Mac> = f.take("macs")?.unwrap_or_default();
    if macs.len() > MAX_MACS {
        return Err(bad(format!("selection.macs: at most {MAX_MACS}")));
    }
    let all: bool = f.take("all")?.unwrap_or(false);
    let filter = DeviceFilter {
        site: f.take("site")?,
        group: f.take("group")?,
        model: f.take("model")?,
        state: f.take::<DeviceState>("state")?,
        seen_before: f.take("seen_before")?,
        seen_after: f.take("seen_after")?,
        q: f.take("q")?,
    };
    f.finish("")?;
    let selection = Selection { macs, all, filter };
    if selection.is_empty() {
        return Err(bad(
            "selection: name devices with macs, a filter (site, group, model, \
             state, seen_before, seen_after, q) or \"all\": true"
                .into(),
        ));
    }
    Ok(selection)
}

fn parse_new_job(body: &[u8]) -> Result<NewJob, ApiError> {
    let mut f = Fields::new(parse_json(body)?, "")?;
    let kind = parse_kind(&mut f)?;
    let selection = parse_selection(
        f.raw("selection")
            .ok_or_else(|| bad("selection: required (macs and/or device filters)".into()))?,
    )?;
    let at: Option<i64> = f.take("at")?;
    if at.is_some_and(|t| t < 0) {
        return Err(bad("at: must be a Unix time in seconds".into()));
    }
    let rate: Option<f64> = f.take("rate")?;
    if rate.is_some_and(|r| !(r > 0.0 && r <= MAX_RATE)) {
        return Err(bad(format!(
            "rate: devices per second, more than 0 and at most {MAX_RATE}"
        )));
    }
    f.finish(&format!(" for a {} job", kind.name()))?;
    Ok(NewJob {
        kind,
        selection,
        at,
        rate,
    })
}

fn parse_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|_| bad(format!("id: {text:?} is not a job number")))
}

fn conflict(id: JobId, e: JobError) -> ApiError {
    ApiError::Conflict(format!("job {id}: {e}"))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    pub state: Option<JobState>,
}

/// The site a job is confined to: an operator's jobs must name one of its sites as
/// `selection.site`, and the selection resolves only to that site's devices (listed MACs
/// included), so a job cannot reach outside it when it starts later.
fn job_site(job: &Job) -> &str {
    job.selection.filter.site.as_deref().unwrap_or("")
}

/// Whether the caller may see and act on a job.
fn check_job(who: &Principal, job: &Job) -> Result<(), ApiError> {
    who.require_site(job_site(job))
}

/// A job as `who` may see it, its secret value hidden: of the sites the job may change an
/// operator sees only those it holds (another operator's job listed that operator's other
/// sites, which this one must not learn of).
fn shown(job: &Job, who: &Principal) -> Job {
    let mut job = job.redacted();
    if let Sites::Only(sites) = &mut job.sites {
        sites.retain(|s| who.allows(s));
    }
    job
}

/// Jobs, newest first, without their per-device results (an operator sees its sites' jobs).
pub async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let store = st.store.clone();
    let jobs = blocking(move || store.list_jobs()).await?;
    Ok(Json(
        jobs.iter()
            .rev()
            .filter(|j| who.allows(job_site(j)))
            .filter(|j| q.state.is_none_or(|s| j.state == s))
            .map(|j| shown(j, &who))
            .collect(),
    ))
}

/// Creates a job; `created_by` is the caller's user name and `sites` the caller's sites (an
/// administrator's: all), which bound every device the job changes when it runs. An operator's
/// job must name one of its sites in `selection.site`, and a move may only go to one of its
/// sites. The selection's site and a move's target must exist (400 naming the field and the
/// site the name most likely meant).
pub async fn create(
    State(st): State<AdminState>,
    Extension(runner): Extension<Arc<JobsHandle>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new = parse_new_job(&body)?;
    if !who.is_admin() {
        match new.selection.filter.site.as_deref() {
            Some(site) => who.require_site(site)?,
            None => {
                return Err(ApiError::Forbidden(
                    "selection.site: an operator's job must name one of its sites".into(),
                ));
            }
        }
        if let JobKind::Move {
            site: Some(target), ..
        } = &new.kind
        {
            who.require_site(target)?;
        }
    }
    // A selection naming a site that does not exist selects no device: a typo would end
    // `done` over none, or do nothing at night, as if the site had no phones. A move into a
    // site nobody created would make one. Both must exist, as for a device's own site.
    // An empty `selection.site` selects the devices in no site: no name to check.
    let selected = new.selection.filter.site.clone().filter(|s| !s.is_empty());
    let target = match &new.kind {
        JobKind::Move { site, .. } => site.clone(),
        _ => None,
    };
    let store = st.store.clone();
    blocking(move || {
        store.require_sites("selection.site", &selected)?;
        store.require_sites("site", &target)
    })
    .await?;
    let now = now_unix();
    let sites = if who.is_admin() {
        Sites::All
    } else {
        Sites::Only(who.sites.clone())
    };
    let job = Job::new(
        new.kind,
        new.selection,
        new.at.unwrap_or(now),
        new.rate,
        &who.user,
        sites,
        now,
    );
    let store = st.store.clone();
    let job = blocking(move || store.create_job(job)).await?.redacted();
    runner.wake();
    tracing::info!(
        job = job.id,
        kind = job.kind.name(),
        at = job.at,
        "job created"
    );
    let summary = format!("job {} ({}) created", job.id, job.kind.name());
    let resp = (StatusCode::CREATED, Json(&job)).into_response();
    Ok(with_change(resp, summary, Value::Null, &job))
}

pub async fn get(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let (job, results) = blocking(move || Ok((store.get_job(id)?, store.job_results(id)?))).await?;
    let job = job.ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    check_job(&who, &job)?;
    Ok(Json(JobDetail {
        job: shown(&job, &who),
        results,
    }))
}

async fn act(
    st: AdminState,
    who: &Principal,
    runner: &JobsHandle,
    id: &str,
    action: Action,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let store = st.store.clone();
    let before = blocking(move || store.get_job(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    check_job(who, &before)?;
    let store = st.store.clone();
    let after = blocking(move || store.job_action(id, action))
        .await?
        .map_err(|e| conflict(id, e))?;
    runner.wake();
    tracing::info!(job = id, state = %after.state, "job {}", after.state);
    let summary = format!("job {id} {} → {}", before.state, after.state);
    let resp = Json(shown(&after, who)).into_response();
    Ok(with_change(
        resp,
        summary,
        serde_json::json!({ "state": before.state, "counts": before.counts }),
        serde_json::json!({ "state": after.state, "counts": after.counts }),
    ))
}

/// Holds a scheduled or running job; a running one stops before its next device.
pub async fn pause(
    State(st): State<AdminState>,
    Extension(runner): Extension<Arc<JobsHandle>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(st, &who, &runner, &id, Action::Pause).await
}

/// Queues a paused job again; it continues with the first device it had not processed.
pub async fn resume(
    State(st): State<AdminState>,
    Extension(runner): Extension<Arc<JobsHandle>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(st, &who, &runner, &id, Action::Resume).await
}

/// Ends a job for good; devices it had not reached are reported as skipped.
pub async fn stop(
    State(st): State<AdminState>,
    Extension(runner): Extension<Arc<JobsHandle>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(st, &who, &runner, &id, Action::Stop).await
}

/// Removes a job and its results; 409 while it runs.
pub async fn delete(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let job = blocking(move || store.get_job(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    check_job(&who, &job)?;
    let store = st.store.clone();
    let old = blocking(move || store.delete_job(id))
        .await?
        .map_err(|e| conflict(id, e))?;
    tracing::info!(job = id, "job deleted");
    Ok(with_change(
        StatusCode::NO_CONTENT.into_response(),
        format!("job {id} deleted"),
        old.redacted(),
        Value::Null,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_new_job(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{body} accepted"),
        }
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let ok = parse_new_job(
            br#"{"kind": "move", "site": "branch", "selection": {"site": "hq"}, "at": 5, "rate": 2}"#,
        )
        .unwrap();
        assert_eq!(ok.at, Some(5));
        assert!(err(r#"{"selection": {"all": true}}"#).starts_with("kind:"));
        assert!(err(r#"{"kind": "reboot", "selection": {"all": true}}"#).starts_with("kind:"));
        assert!(err(r#"{"kind": "delete"}"#).starts_with("selection:"));
        assert!(err(r#"{"kind": "delete", "selection": {}}"#).starts_with("selection:"));
        assert!(
            err(r#"{"kind": "delete", "selection": {"sitе": "hq"}}"#)
                .starts_with("selection.sitе:")
        );
        assert!(
            err(r#"{"kind": "delete", "selection": {"macs": ["zz"]}}"#)
                .starts_with("selection.macs:")
        );
        assert!(
            err(r#"{"kind": "delete", "selection": {"all": true}, "rate": "fast"}"#)
                .starts_with("rate:")
        );
        assert!(
            err(r#"{"kind": "delete", "selection": {"all": true}, "rate": 0}"#)
                .starts_with("rate:")
        );
        assert!(
            err(r#"{"kind": "delete", "selection": {"all": true}, "at": "soon"}"#)
                .starts_with("at:")
        );
        assert_eq!(
            err(r#"{"kind": "delete", "selection": {"all": true}, "site": "x"}"#),
            "site: unknown field for a delete job"
        );
        assert!(err(r#"{"kind": "move", "selection": {"all": true}}"#).starts_with("site:"));
        assert!(
            err(r#"{"kind": "set_param", "name": "A", "selection": {"all": true}}"#)
                .starts_with("value:")
        );
        assert!(
            err(
                r#"{"kind": "set_param", "name": "A", "value": "x\"y", "selection": {"all": true}}"#
            )
            .starts_with("value:")
        );
        assert_eq!(err("[1]"), "request body: must be a JSON object");
        assert_eq!(
            err(r#"{"kind": "delete", "selection": [1]}"#),
            "selection: must be a JSON object"
        );
    }
}
