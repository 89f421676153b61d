//! Bulk jobs as plain data: what a job does, which devices it selects, its life cycle and
//! what it did to each device. No I/O here: the store persists these types and the runner
//! drives them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{ApiToken, BOX_ADMIN, Device, DeviceFilter, DeviceState, Mac, Role};

pub type JobId = u64;

/// Shown instead of a secret parameter's value.
pub const HIDDEN: &str = "********";

/// What a job does to each selected device. Serialized flat into the job: `"kind": "move",
/// "site": "branch"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// A locally managed device becomes `active` (may receive its secret files again).
    Activate,
    /// A locally managed device becomes `inactive` (keeps its record, gets no secrets).
    Deactivate,
    /// Sets the site and/or the group.
    Move {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Sets a device parameter (a secret one with `secret`); `value: null` removes it.
    SetParam {
        name: String,
        value: Option<String>,
        #[serde(default)]
        secret: bool,
    },
    /// Removes the devices from the inventory.
    Delete,
    /// Fetches into the cache the firmware image each device's policy points at.
    FirmwarePrefetch,
}

/// What a job does to one device, decided inside the store transaction that records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Write the changed device.
    Put(Box<Device>, String),
    /// Remove the device.
    Remove(String),
    /// Nothing to write; the device is already as asked (or the job changes no device).
    Unchanged(String),
    /// The device was refused; nothing is written.
    Failed(String),
    /// The job may not change the device (see [`Job::refusal`]); nothing is written.
    Skipped(String),
}

/// Whether a `set_param` job's value is kept from view: it is set as a secret, or its name or
/// value makes it one (docs/parameters.md), as the device view judges it.
fn hides_value(name: &str, value: &str, secret: bool) -> bool {
    secret || crate::settings::vocab::is_secret_param(name, value)
}

impl JobKind {
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Activate => "activate",
            JobKind::Deactivate => "deactivate",
            JobKind::Move { .. } => "move",
            JobKind::SetParam { .. } => "set_param",
            JobKind::Delete => "delete",
            JobKind::FirmwarePrefetch => "firmware_prefetch",
        }
    }

    /// The kind as the API shows it: a secret value is replaced by [`HIDDEN`], and so is the
    /// value of a parameter whose name makes it a secret (`SIP_PASSWORD`, `admin.password`,
    /// docs/parameters.md) set without `secret: true`: the device view hides it too.
    pub fn redacted(&self) -> JobKind {
        match self {
            JobKind::SetParam {
                name,
                value: Some(value),
                secret,
            } if hides_value(name, value, *secret) => JobKind::SetParam {
                name: name.clone(),
                value: Some(HIDDEN.into()),
                secret: *secret,
            },
            other => other.clone(),
        }
    }

    /// What this job does to `device` (`None`: not in the inventory). Activation only touches
    /// locally managed devices: the cloud owns the lifecycle state of the others, and sync
    /// would undo a local change, so they are refused. A firmware prefetch changes no device
    /// (the runner fetches the image and records its own outcome).
    pub fn apply(&self, device: Option<Device>) -> Outcome {
        let Some(mut d) = device else {
            return Outcome::Failed("not in the inventory".into());
        };
        let set_state = |mut d: Device, to: DeviceState| {
            if d.state == to {
                Outcome::Unchanged(format!("already {}", state_name(to)))
            } else if d.state.is_cloud() {
                Outcome::Failed(format!(
                    "state {} is managed by the cloud enrollment service; change it there",
                    state_name(d.state)
                ))
            } else {
                let detail = format!("{} → {}", state_name(d.state), state_name(to));
                d.state = to;
                Outcome::Put(Box::new(d), detail)
            }
        };
        match self {
            JobKind::Activate => set_state(d, DeviceState::Active),
            JobKind::Deactivate => set_state(d, DeviceState::Inactive),
            JobKind::Move { site, group } => {
                let mut changes = Vec::new();
                for (what, target, want) in
                    [("site", &mut d.site, site), ("group", &mut d.group, group)]
                {
                    if let Some(want) = want
                        && target != want
                    {
                        changes.push(format!("{what} {target:?} → {want:?}"));
                        *target = want.clone();
                    }
                }
                if changes.is_empty() {
                    Outcome::Unchanged("already there".into())
                } else {
                    Outcome::Put(Box::new(d), changes.join(", "))
                }
            }
            JobKind::SetParam {
                name,
                value,
                secret,
            } => {
                let map = if *secret {
                    &mut d.secrets
                } else {
                    &mut d.params
                };
                match value {
                    Some(v) if map.get(name) == Some(v) => Outcome::Unchanged("already set".into()),
                    Some(v) => {
                        map.insert(name.clone(), v.clone());
                        Outcome::Put(Box::new(d), format!("{name} set"))
                    }
                    None if map.remove(name).is_some() => {
                        Outcome::Put(Box::new(d), format!("{name} removed"))
                    }
                    None => Outcome::Unchanged(format!("{name} was not set")),
                }
            }
            JobKind::Delete => Outcome::Remove("removed".into()),
            JobKind::FirmwarePrefetch => Outcome::Unchanged(String::new()),
        }
    }
}

fn state_name(s: DeviceState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Which devices a job acts on: the listed `macs` (when given) that match every filter given,
/// or, without `macs`, every device that matches the filters. An empty selection is refused
/// unless `all` says "every device" explicitly: a forgotten filter must not delete a site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<Mac>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(flatten)]
    pub filter: DeviceFilter,
}

impl Selection {
    /// Whether the selection names any device at all.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty() && self.filter.is_empty() && !self.all
    }

    /// The MACs the job will act on, resolved against the inventory when the job starts.
    /// A listed MAC that is not in the inventory is kept (the job reports it as failed); a
    /// listed device that does not match the filters is left out.
    pub fn resolve(&self, devices: &[Device]) -> Vec<Mac> {
        if self.macs.is_empty() {
            return devices
                .iter()
                .filter(|d| self.filter.matches(d))
                .map(|d| d.mac)
                .collect();
        }
        // Looked up by MAC, not by scanning: 100,000 listed MACs against as many devices would
        // otherwise be 10^10 comparisons when the job starts.
        let by_mac: BTreeMap<Mac, &Device> = devices.iter().map(|d| (d.mac, d)).collect();
        let mut seen = BTreeSet::new();
        self.macs
            .iter()
            .filter(|m| seen.insert(**m))
            .filter(|m| by_mac.get(*m).is_none_or(|d| self.filter.matches(d)))
            .copied()
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its time (`at`), or for the runner to finish the job before it.
    Scheduled,
    Running,
    /// Held by an operator; `resume` queues it again and it continues where it stopped.
    Paused,
    /// Stopped by an operator; the devices not reached are reported as skipped.
    Stopped,
    /// Every device processed, none failed.
    Done,
    /// Every device processed, at least one failed (see the per-device results).
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Stopped => "stopped",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Stopped | JobState::Done | JobState::Failed)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a job: operator actions and the runner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The runner takes a due job.
    Start,
    Pause,
    Resume,
    Stop,
    /// The runner processed the last device; `failed` when any device failed.
    Finish {
        failed: bool,
    },
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Stop => "stop",
            Action::Finish { .. } => "finish",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("cannot {action} a job that is {state} (only a {allowed} job can be)")]
    Transition {
        action: &'static str,
        state: JobState,
        allowed: &'static str,
    },
    #[error("cannot delete a running job: pause or stop it first")]
    DeleteRunning,
}

/// The life cycle:
///
/// ```text
/// scheduled ──start──▶ running ──finish──▶ done | failed
///     │  ▲                │
///   pause└─resume── paused ◀──pause──┘        stop: scheduled | running | paused ──▶ stopped
/// ```
///
/// Resume queues the job (`scheduled`): it runs when due and the runner is free, continuing
/// with the first device it has not processed.
pub fn transition(state: JobState, action: Action) -> Result<JobState, JobError> {
    use JobState::*;
    let refuse = |allowed| {
        Err(JobError::Transition {
            action: action.verb(),
            state,
            allowed,
        })
    };
    match (action, state) {
        (Action::Start, Scheduled) => Ok(Running),
        (Action::Start, _) => refuse("scheduled"),
        (Action::Pause, Scheduled | Running) => Ok(Paused),
        (Action::Pause, _) => refuse("scheduled or running"),
        (Action::Resume, Paused) => Ok(Scheduled),
        (Action::Resume, _) => refuse("paused"),
        (Action::Stop, Scheduled | Running | Paused) => Ok(Stopped),
        (Action::Stop, _) => refuse("scheduled, running or paused"),
        (Action::Finish { failed }, Running) => Ok(if failed { Failed } else { Done }),
        (Action::Finish { .. }, _) => refuse("running"),
    }
}

/// A job may be deleted in any state but `running`.
pub fn check_delete(state: JobState) -> Result<(), JobError> {
    match state {
        JobState::Running => Err(JobError::DeleteRunning),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Pending,
    Ok,
    Failed,
    /// Not reached (the job was stopped first), or out of the job's reach (see
    /// [`Job::refusal`]).
    Skipped,
}

/// What the job did to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceResult {
    pub mac: Mac,
    pub status: ResultStatus,
    /// What changed, or why the device failed or was skipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl DeviceResult {
    pub fn pending(mac: Mac) -> DeviceResult {
        DeviceResult {
            mac,
            status: ResultStatus::Pending,
            detail: String::new(),
        }
    }

    pub fn from_outcome(mac: Mac, outcome: &Outcome) -> DeviceResult {
        let (status, detail) = match outcome {
            Outcome::Put(_, d) | Outcome::Remove(d) | Outcome::Unchanged(d) => {
                (ResultStatus::Ok, d.clone())
            }
            Outcome::Failed(e) => (ResultStatus::Failed, e.clone()),
            Outcome::Skipped(why) => (ResultStatus::Skipped, why.clone()),
        };
        DeviceResult {
            mac,
            status,
            detail,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    pub pending: u64,
}

/// The sites a job may change devices in (`"sites"` in the API: `"all"` or a list of sites).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SitesRepr", into = "SitesRepr")]
pub enum Sites {
    /// Every site, and devices in no site: an administrator's rights.
    All,
    /// These sites only: an operator's.
    Only(BTreeSet<String>),
}

/// How [`Sites`] is written: the word `"all"` or a list, so that a site named "all" is still a
/// list of one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SitesRepr {
    Word(String),
    List(BTreeSet<String>),
}

impl TryFrom<SitesRepr> for Sites {
    type Error = String;

    fn try_from(r: SitesRepr) -> Result<Sites, String> {
        match r {
            SitesRepr::Word(w) if w == "all" => Ok(Sites::All),
            SitesRepr::Word(w) => Err(format!("sites: {w:?} is neither \"all\" nor a list")),
            SitesRepr::List(l) => Ok(Sites::Only(l)),
        }
    }
}

impl From<Sites> for SitesRepr {
    fn from(s: Sites) -> SitesRepr {
        match s {
            Sites::All => SitesRepr::Word("all".into()),
            Sites::Only(l) => SitesRepr::List(l),
        }
    }
}

impl Sites {
    pub fn allows(&self, site: &str) -> bool {
        match self {
            Sites::All => true,
            Sites::Only(sites) => sites.contains(site),
        }
    }

    /// What `user` may change now, by the tokens stored for it: every site if one of them is
    /// an administrator's (or `user` is the box's own administrator, whose token is a file),
    /// else the union of its operator tokens' sites; nothing once every token is revoked or
    /// expired at `now` (an expired token no longer lets its user in, so neither may it let
    /// the user's jobs go on). By user rather than by token, so that replacing a token with
    /// one for fewer sites narrows the user's jobs, and rotating a token with the same sites
    /// does not stop them.
    pub fn held_by(user: &str, tokens: &[ApiToken], now: i64) -> Sites {
        if user == BOX_ADMIN {
            return Sites::All;
        }
        let mut sites = BTreeSet::new();
        for t in tokens.iter().filter(|t| t.user == user && !t.expired(now)) {
            match t.role {
                Role::Administrator => return Sites::All,
                Role::Operator => sites.extend(t.sites.iter().cloned()),
            }
        }
        Sites::Only(sites)
    }

    /// What a job stored before jobs recorded their sites is read with: no bound of its own,
    /// so the creator's rights at each step alone confine it (an administrator's job carries
    /// on; an operator's stays inside the sites the operator has).
    fn unrecorded() -> Sites {
        Sites::All
    }
}

/// A bulk job. Its per-device results are stored beside it, one record per device, so a step
/// writes one small record instead of rewriting the whole list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    #[serde(flatten)]
    pub kind: JobKind,
    pub selection: Selection,
    /// Unix time from which the job may run.
    pub at: i64,
    /// At most this many devices per second; `None`: as fast as the store allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub created_by: String,
    /// The sites the job may change devices in: its creator's when it was created. Each step
    /// also needs the creator to still have the site (see [`Job::refusal`]).
    #[serde(default = "Sites::unrecorded")]
    pub sites: Sites,
    pub created: i64,
    #[serde(default)]
    pub started: Option<i64>,
    #[serde(default)]
    pub finished: Option<i64>,
    pub state: JobState,
    #[serde(default)]
    pub counts: Counts,
    /// Index (in the resolved device list) of the next device to process.
    #[serde(default)]
    pub next: u64,
}

impl Job {
    pub fn new(
        kind: JobKind,
        selection: Selection,
        at: i64,
        rate: Option<f64>,
        created_by: &str,
        sites: Sites,
        now: i64,
    ) -> Job {
        Job {
            id: 0,
            kind,
            selection,
            at,
            rate,
            created_by: created_by.to_string(),
            sites,
            created: now,
            started: None,
            finished: None,
            state: JobState::Scheduled,
            counts: Counts::default(),
            next: 0,
        }
    }

    /// Applies an action: the new state, its time stamps and counts. A job that will not run
    /// again forgets a secret value it was carrying.
    pub fn act(&mut self, action: Action, now: i64) -> Result<(), JobError> {
        self.state = transition(self.state, action)?;
        match action {
            Action::Start => self.started = Some(now),
            Action::Stop => {
                self.counts.skipped += self.counts.pending;
                self.counts.pending = 0;
            }
            _ => {}
        }
        if self.state.is_final() {
            self.finished = Some(now);
            if let JobKind::SetParam {
                name,
                value: Some(value),
                secret,
            } = &mut self.kind
                && hides_value(name, value, *secret)
            {
                *value = HIDDEN.into();
            }
        }
        Ok(())
    }

    /// Starts the job over the resolved device list.
    pub fn start(&mut self, macs: usize, now: i64) -> Result<(), JobError> {
        self.act(Action::Start, now)?;
        self.counts = Counts {
            total: macs as u64,
            pending: macs as u64,
            ..Counts::default()
        };
        self.next = 0;
        Ok(())
    }

    /// Counts one processed device and moves on to the next.
    pub fn record(&mut self, status: ResultStatus) {
        match status {
            ResultStatus::Ok => self.counts.ok += 1,
            ResultStatus::Failed => self.counts.failed += 1,
            ResultStatus::Skipped => self.counts.skipped += 1,
            ResultStatus::Pending => return,
        }
        self.counts.pending = self.counts.pending.saturating_sub(1);
        self.next += 1;
    }

    /// Whether every device has been processed.
    pub fn complete(&self) -> bool {
        self.next >= self.counts.total
    }

    /// Why this job may not change `device` now (`None`: it may), given the sites its creator
    /// holds now (`creator`). The device's list was fixed when the job started, so the device
    /// may since have been moved to, or (listed by MAC) created in, a site the creator never
    /// had; and the creator's own sites may have been cut or its tokens revoked. The job acts
    /// only where its creator could act by hand at this moment and could when creating it: the
    /// device's current site, and a move's target site, must be in both. A device not in the
    /// inventory has no site to check; it fails as "not in the inventory".
    pub fn refusal(&self, device: Option<&Device>, creator: &Sites) -> Option<String> {
        let device = device?;
        // The device's site is never named: it may be one the operator must not learn of.
        if !self.sites.allows(&device.site) {
            return Some("moved out of the job's sites".into());
        }
        if !creator.allows(&device.site) {
            return Some(format!("in a site {} does not have now", self.created_by));
        }
        match &self.kind {
            JobKind::Move {
                site: Some(target), ..
            } if !(self.sites.allows(target) && creator.allows(target)) => Some(format!(
                "the move's target site {target:?} is not one {} has now",
                self.created_by
            )),
            _ => None,
        }
    }

    /// The job as the API shows it (secret value hidden).
    pub fn redacted(&self) -> Job {
        Job {
            kind: self.kind.redacted(),
            ..self.clone()
        }
    }
}

/// What the runner should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Run (or continue) this job now.
    Run(JobId),
    /// Nothing due; the earliest scheduled job is due at this Unix time.
    WaitUntil(i64),
    Idle,
}

/// A job left `running` (by a restart) continues first; then the scheduled job due earliest
/// (ties by id, i.e. creation order).
pub fn pick(jobs: &[Job], now: i64) -> Pick {
    if let Some(j) = jobs.iter().find(|j| j.state == JobState::Running) {
        return Pick::Run(j.id);
    }
    match jobs
        .iter()
        .filter(|j| j.state == JobState::Scheduled)
        .min_by_key(|j| (j.at, j.id))
    {
        Some(j) if j.at <= now => Pick::Run(j.id),
        Some(j) => Pick::WaitUntil(j.at),
        None => Pick::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    fn device(i: u8, site: &str, state: DeviceState) -> Device {
        let mut d = Device::new(Mac::from_octets([2, 0, 0, 0, 0, i]));
        d.site = site.into();
        d.state = state;
        d
    }

    #[test]
    fn transitions() {
        assert_eq!(transition(Scheduled, Action::Start), Ok(Running));
        assert_eq!(transition(Running, Action::Pause), Ok(Paused));
        assert_eq!(transition(Scheduled, Action::Pause), Ok(Paused));
        assert_eq!(transition(Paused, Action::Resume), Ok(Scheduled));
        for s in [Scheduled, Running, Paused] {
            assert_eq!(transition(s, Action::Stop), Ok(Stopped));
        }
        assert_eq!(
            transition(Running, Action::Finish { failed: false }),
            Ok(Done)
        );
        assert_eq!(
            transition(Running, Action::Finish { failed: true }),
            Ok(Failed)
        );
        for s in [Stopped, Done, Failed] {
            for a in [Action::Start, Action::Pause, Action::Resume, Action::Stop] {
                assert!(transition(s, a).is_err(), "{a:?} from {s}");
            }
        }
        assert!(transition(Running, Action::Resume).is_err());
        assert!(transition(Paused, Action::Pause).is_err());
        assert!(transition(Paused, Action::Start).is_err());
        assert_eq!(
            transition(Done, Action::Pause).unwrap_err().to_string(),
            "cannot pause a job that is done (only a scheduled or running job can be)"
        );
        assert_eq!(check_delete(Running), Err(JobError::DeleteRunning));
        for s in [Scheduled, Paused, Stopped, Done, Failed] {
            assert_eq!(check_delete(s), Ok(()));
        }
    }

    #[test]
    fn stop_skips_what_is_pending_and_forgets_a_secret() {
        let kind = JobKind::SetParam {
            name: "SIP_PASSWORD".into(),
            value: Some("pw".into()),
            secret: true,
        };
        let mut job = Job::new(kind, Selection::default(), 0, None, "admin", Sites::All, 0);
        job.start(3, 10).unwrap();
        job.record(ResultStatus::Ok);
        job.act(Action::Stop, 20).unwrap();
        assert_eq!(
            job.counts,
            Counts {
                total: 3,
                ok: 1,
                skipped: 2,
                ..Counts::default()
            }
        );
        assert_eq!((job.started, job.finished), (Some(10), Some(20)));
        assert!(matches!(job.kind, JobKind::SetParam { value: Some(v), .. } if v == HIDDEN));
    }

    /// A parameter named as a secret, set without `secret: true`, showed its value in the job
    /// list and the audit entry of the job's creation, while the device view hides it.
    #[test]
    fn a_value_of_a_parameter_named_as_a_secret_is_hidden() {
        let kind = |name: &str| JobKind::SetParam {
            name: name.into(),
            value: Some("s3cret".into()),
            secret: false,
        };
        for name in [
            "SIP_PASSWORD",
            "admin.password",
            "yealink:account.1.password",
        ] {
            let job = Job::new(
                kind(name),
                Selection::default(),
                0,
                None,
                "a",
                Sites::All,
                0,
            );
            let shown = serde_json::to_string(&job.redacted()).unwrap();
            assert!(!shown.contains("s3cret"), "{name}: {shown}");
            let mut done = job.clone();
            done.start(1, 10).unwrap();
            done.act(Action::Stop, 20).unwrap();
            assert!(
                matches!(&done.kind, JobKind::SetParam { value: Some(v), .. } if v == HIDDEN),
                "{name}: a finished job forgets it"
            );
        }
        let plain = Job::new(
            kind("sip.domain"),
            Selection::default(),
            0,
            None,
            "a",
            Sites::All,
            0,
        );
        assert!(
            matches!(plain.redacted().kind, JobKind::SetParam { value: Some(v), .. } if v == "s3cret")
        );
        // A URL with a login is a secret whatever its name, as the renderer and the device
        // view take it.
        let login = Job::new(
            JobKind::SetParam {
                name: "yealink:static.auto_provision.server.url".into(),
                value: Some("https://prov:Hunter2pw@prov.example/".into()),
                secret: false,
            },
            Selection::default(),
            0,
            None,
            "a",
            Sites::All,
            0,
        );
        let shown = serde_json::to_string(&login.redacted()).unwrap();
        assert!(!shown.contains("Hunter2pw"), "{shown}");
    }

    #[test]
    fn selection_resolves_filters_and_listed_macs() {
        let devices = vec![
            device(1, "hq", DeviceState::Active),
            device(2, "branch", DeviceState::Active),
            device(3, "hq", DeviceState::Inactive),
        ];
        let mac = |i| Mac::from_octets([2, 0, 0, 0, 0, i]);
        let by_site = Selection {
            filter: DeviceFilter {
                site: Some("hq".into()),
                ..DeviceFilter::default()
            },
            ..Selection::default()
        };
        assert_eq!(by_site.resolve(&devices), vec![mac(1), mac(3)]);
        let listed = Selection {
            macs: vec![mac(2), mac(9), mac(3), mac(2)],
            ..by_site.clone()
        };
        // 2 is not in hq; 9 is unknown and kept to be reported; duplicates go.
        assert_eq!(listed.resolve(&devices), vec![mac(9), mac(3)]);
        assert!(Selection::default().is_empty());
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        assert_eq!(all.resolve(&devices).len(), 3);
    }

    #[test]
    fn kinds_change_devices() {
        let active = device(1, "hq", DeviceState::Active);
        let Outcome::Put(d, _) = JobKind::Deactivate.apply(Some(active.clone())) else {
            panic!("deactivate changes an active device")
        };
        assert_eq!(d.state, DeviceState::Inactive);
        assert!(matches!(
            JobKind::Activate.apply(Some(active.clone())),
            Outcome::Unchanged(_)
        ));
        assert!(matches!(
            JobKind::Deactivate.apply(Some(device(2, "hq", DeviceState::Activated))),
            Outcome::Failed(e) if e.contains("cloud")
        ));
        assert!(matches!(JobKind::Delete.apply(None), Outcome::Failed(_)));
        let moved = JobKind::Move {
            site: Some("branch".into()),
            group: None,
        };
        let Outcome::Put(d, detail) = moved.apply(Some(active.clone())) else {
            panic!("move changes the site")
        };
        assert_eq!(
            (d.site.as_str(), detail.as_str()),
            ("branch", "site \"hq\" → \"branch\"")
        );
        let set = JobKind::SetParam {
            name: "SIPDOMAIN".into(),
            value: Some("example.com".into()),
            secret: false,
        };
        let Outcome::Put(d, _) = set.apply(Some(active)) else {
            panic!("set_param sets")
        };
        assert_eq!(d.params["SIPDOMAIN"], "example.com");
        let unset = JobKind::SetParam {
            name: "SIPDOMAIN".into(),
            value: None,
            secret: false,
        };
        let Outcome::Put(d, _) = unset.apply(Some(*d)) else {
            panic!("set_param null removes")
        };
        assert!(d.params.is_empty());
    }

    fn sites(names: &[&str]) -> Sites {
        Sites::Only(names.iter().map(|s| s.to_string()).collect())
    }

    fn token(user: &str, role: Role, sites: &[&str]) -> ApiToken {
        ApiToken {
            id: format!("{user}-{}", sites.join("-")),
            user: user.into(),
            role,
            sites: sites.iter().map(|s| s.to_string()).collect(),
            hash: String::new(),
            created: 0,
            created_by: "admin".into(),
            last_used: 0,
            expires: None,
        }
    }

    fn olivias(kind: JobKind, job_sites: Sites) -> Job {
        Job::new(kind, Selection::default(), 0, None, "olivia", job_sites, 0)
    }

    #[test]
    fn a_job_changes_only_devices_in_its_sites_that_its_creator_still_has() {
        let job = olivias(JobKind::Delete, sites(&["hq"]));
        let in_hq = device(2, "hq", DeviceState::Active);
        let moved = device(2, "secret-site", DeviceState::Active);
        let now = sites(&["hq"]);
        assert_eq!(job.refusal(Some(&in_hq), &now), None);
        // Moved (or, listed by MAC, created) elsewhere after the job started; the other
        // site is not named to the operator.
        assert_eq!(
            job.refusal(Some(&moved), &now).as_deref(),
            Some("moved out of the job's sites")
        );
        // Even when the creator has been given that site since: never beyond creation.
        assert_eq!(
            job.refusal(Some(&moved), &sites(&["hq", "secret-site"]))
                .as_deref(),
            Some("moved out of the job's sites")
        );
        // The creator lost the site, or every token.
        for now in [sites(&["branch"]), sites(&[])] {
            assert_eq!(
                job.refusal(Some(&in_hq), &now).as_deref(),
                Some("in a site olivia does not have now")
            );
        }
        // Nothing to check for a device that is not there: the kind fails it.
        assert_eq!(job.refusal(None, &sites(&[])), None);
        let no_site = device(3, "", DeviceState::Active);
        assert_eq!(
            job.refusal(Some(&no_site), &now).as_deref(),
            Some("moved out of the job's sites")
        );
        // An administrator's job reaches every site, devices in none included.
        let admins = Job::new(
            JobKind::Delete,
            Selection::default(),
            0,
            None,
            "admin",
            Sites::All,
            0,
        );
        for d in [&in_hq, &moved, &no_site] {
            assert_eq!(admins.refusal(Some(d), &Sites::All), None);
        }
    }

    #[test]
    fn a_move_needs_its_target_site_at_each_step() {
        let to_branch = JobKind::Move {
            site: Some("branch".into()),
            group: None,
        };
        let job = olivias(to_branch, sites(&["hq", "branch"]));
        let in_hq = device(1, "hq", DeviceState::Active);
        assert_eq!(job.refusal(Some(&in_hq), &sites(&["hq", "branch"])), None);
        assert_eq!(
            job.refusal(Some(&in_hq), &sites(&["hq"])).as_deref(),
            Some("the move's target site \"branch\" is not one olivia has now")
        );
        let outside = olivias(
            JobKind::Move {
                site: Some("branch".into()),
                group: None,
            },
            sites(&["hq"]),
        );
        assert_eq!(
            outside.refusal(Some(&in_hq), &Sites::All).as_deref(),
            Some("the move's target site \"branch\" is not one olivia has now")
        );
        // A move within the site (group only) needs no target site.
        let regroup = olivias(
            JobKind::Move {
                site: None,
                group: Some("2".into()),
            },
            sites(&["hq"]),
        );
        assert_eq!(regroup.refusal(Some(&in_hq), &sites(&["hq"])), None);
    }

    #[test]
    fn a_users_sites_are_those_of_its_tokens_now() {
        let tokens = [
            token("olivia", Role::Operator, &["hq"]),
            token("olivia", Role::Operator, &["branch"]),
            token("oscar", Role::Operator, &["secret-site"]),
            token("alice", Role::Administrator, &[]),
        ];
        assert_eq!(
            Sites::held_by("olivia", &tokens, 0),
            sites(&["hq", "branch"])
        );
        assert_eq!(Sites::held_by("alice", &tokens, 0), Sites::All);
        assert_eq!(Sites::held_by("nobody", &tokens, 0), sites(&[]));
        assert_eq!(Sites::held_by(BOX_ADMIN, &[], 0), Sites::All);
        let promoted = [
            token("olivia", Role::Operator, &["hq"]),
            token("olivia", Role::Administrator, &[]),
        ];
        assert_eq!(Sites::held_by("olivia", &promoted, 0), Sites::All);
        let mut lapsing = promoted.clone();
        lapsing[1].expires = Some(100);
        assert_eq!(Sites::held_by("olivia", &lapsing, 99), Sites::All);
        assert_eq!(
            Sites::held_by("olivia", &lapsing, 100),
            sites(&["hq"]),
            "an expired token's rights are gone"
        );
    }

    #[test]
    fn sites_are_stored_as_all_or_a_list_and_older_jobs_read_as_all() {
        let job = olivias(JobKind::Delete, sites(&["all", "hq"]));
        let stored = serde_json::to_value(&job).unwrap();
        assert_eq!(stored["sites"], serde_json::json!(["all", "hq"]));
        assert_eq!(serde_json::from_value::<Job>(stored).unwrap(), job);
        let admins = Job {
            sites: Sites::All,
            ..job.clone()
        };
        let mut stored = serde_json::to_value(&admins).unwrap();
        assert_eq!(stored["sites"], "all");
        // A job stored before jobs recorded their sites: only its creator's rights bound it.
        stored.as_object_mut().unwrap().remove("sites");
        assert_eq!(
            serde_json::from_value::<Job>(stored.clone()).unwrap(),
            admins
        );
        stored["sites"] = "some".into();
        assert!(serde_json::from_value::<Job>(stored).is_err());
    }

    #[test]
    fn a_skipped_outcome_is_a_skipped_result() {
        let mac = Mac::from_octets([2, 0, 0, 0, 0, 2]);
        let r = DeviceResult::from_outcome(mac, &Outcome::Skipped("why".into()));
        assert_eq!(
            (r.status, r.detail.as_str()),
            (ResultStatus::Skipped, "why")
        );
        let mut job = olivias(JobKind::Delete, sites(&["hq"]));
        job.start(1, 0).unwrap();
        job.record(r.status);
        assert!(job.complete());
        assert_eq!((job.counts.skipped, job.counts.pending), (1, 0));
    }

    #[test]
    fn running_first_then_earliest_due() {
        let job = |id, at, state| Job {
            id,
            state,
            ..Job::new(
                JobKind::Delete,
                Selection::default(),
                at,
                None,
                "a",
                Sites::All,
                0,
            )
        };
        assert_eq!(pick(&[], 100), Pick::Idle);
        let jobs = [
            job(1, 200, Scheduled),
            job(2, 50, Scheduled),
            job(3, 10, Paused),
        ];
        assert_eq!(pick(&jobs, 100), Pick::Run(2));
        assert_eq!(pick(&jobs[..1], 100), Pick::WaitUntil(200));
        let with_running = [job(1, 0, Scheduled), job(4, 500, Running)];
        assert_eq!(pick(&with_running, 100), Pick::Run(4));
    }
}
