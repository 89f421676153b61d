//! Bulk jobs and their per-device results. A job's step (change one device, record its result,
//! advance the job) is one transaction: after a crash or restart a device is never applied
//! twice nor skipped, and once a pause or stop is committed no further device is changed.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::devices::site_exists;
use super::tokens::TOKENS;
use super::{DEVICES, META, Store, StoreError, decode, encode, read_all};
use crate::jobs::model::{
    Action, DeviceResult, Job, JobError, JobId, JobKind, JobState, Outcome, ResultStatus, Sites,
    check_delete,
};
use crate::model::{ApiToken, Device, Mac, now_unix};

/// Key: job id; value: a [`Job`] (without its results).
pub(crate) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// Key: (job id, index in the resolved device list); value: a [`DeviceResult`].
pub(crate) const JOB_RESULTS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("job_results");

/// The last job id handed out; ids are never reused, even after a delete.
const LAST_JOB_ID: &str = "last_job_id";

fn job_key(id: JobId) -> String {
    format!("job {id}")
}

fn read_job(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: JobId,
) -> Result<Option<Job>, StoreError> {
    table
        .get(id)?
        .map(|v| decode("jobs", &id.to_string(), v.value()))
        .transpose()
}

impl Store {
    /// Stores a new job and gives it the next id.
    pub fn create_job(&self, mut job: Job) -> Result<Job, StoreError> {
        let tx = self.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let id = meta.get(LAST_JOB_ID)?.map_or(0, |v| v.value()) + 1;
            meta.insert(LAST_JOB_ID, id)?;
            job.id = id;
            tx.open_table(JOBS)?.insert(id, encode(&job).as_slice())?;
        }
        tx.commit()?;
        Ok(job)
    }

    pub fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_job(&tx.open_table(JOBS)?, id)
    }

    /// Every job, oldest first.
    pub fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(JOBS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode("jobs", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    /// A job's per-device results in the order it processes them.
    pub fn job_results(&self, id: JobId) -> Result<Vec<DeviceResult>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(JOB_RESULTS)?;
        let mut out = Vec::new();
        for row in table.range((id, 0)..=(id, u64::MAX))? {
            let (k, v) = row?;
            let (job, index) = k.value();
            out.push(decode("job_results", &format!("{job}/{index}"), v.value())?);
        }
        Ok(out)
    }

    /// The device at `index` of a started job's list.
    pub fn job_device(&self, id: JobId, index: u64) -> Result<Option<Mac>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(JOB_RESULTS)?;
        let found = table.get((id, index))?;
        found
            .map(|v| {
                decode::<DeviceResult>("job_results", &format!("{id}/{index}"), v.value())
                    .map(|r| r.mac)
            })
            .transpose()
    }

    /// An operator's or the runner's action on a job. Stopping marks every device not yet
    /// processed as skipped, in the same transaction.
    pub fn job_action(
        &self,
        id: JobId,
        action: Action,
    ) -> Result<Result<Job, JobError>, StoreError> {
        let tx = self.begin_write()?;
        let job = {
            let mut jobs = tx.open_table(JOBS)?;
            let Some(mut job) = read_job(&jobs, id)? else {
                return Err(StoreError::NotFound(job_key(id)));
            };
            let (from, total) = (job.next, job.counts.total);
            if let Err(e) = job.act(action, now_unix()) {
                return Ok(Err(e));
            }
            if action == Action::Stop {
                let mut results = tx.open_table(JOB_RESULTS)?;
                for index in from..total {
                    let key = format!("{id}/{index}");
                    let old = results.get((id, index))?.map(|v| v.value().to_vec());
                    if let Some(bytes) = old {
                        let mut r: DeviceResult = decode("job_results", &key, &bytes)?;
                        r.status = ResultStatus::Skipped;
                        r.detail = "job stopped before this device".into();
                        results.insert((id, index), encode(&r).as_slice())?;
                    }
                }
            }
            jobs.insert(id, encode(&job).as_slice())?;
            job
        };
        tx.commit()?;
        Ok(Ok(job))
    }

    /// Starts a scheduled job: resolves its selection against the inventory as it is now and
    /// records every selected device as pending, in one transaction. `Ok(Err(_))` when the job
    /// is no longer scheduled (paused or stopped meanwhile).
    pub fn start_job(&self, id: JobId) -> Result<Result<Job, JobError>, StoreError> {
        let tx = self.begin_write()?;
        let job = {
            let mut jobs = tx.open_table(JOBS)?;
            let Some(mut job) = read_job(&jobs, id)? else {
                return Err(StoreError::NotFound(job_key(id)));
            };
            let devices: Vec<Device> = super::read_all(&tx.open_table(DEVICES)?, "devices")?;
            let macs = job.selection.resolve(&devices);
            if let Err(e) = job.start(macs.len(), now_unix()) {
                return Ok(Err(e));
            }
            let mut results = tx.open_table(JOB_RESULTS)?;
            for (index, mac) in macs.into_iter().enumerate() {
                let r = DeviceResult::pending(mac);
                results.insert((id, index as u64), encode(&r).as_slice())?;
            }
            jobs.insert(id, encode(&job).as_slice())?;
            job
        };
        tx.commit()?;
        Ok(Ok(job))
    }

    /// Processes device `index` of a running job in one transaction: `decide` sees the device
    /// (`None` when it is not in the inventory) and says what to do; the device change, its
    /// result and the job's progress commit together. Nothing happens unless the job is
    /// running and `index` is its next device (`None`: paused, stopped, deleted or already past
    /// that device). Returns the job as it is after the step.
    ///
    /// First, in the same transaction, the device's current site and the creator's current
    /// tokens are checked ([`Job::refusal`]): a device moved out of the job's sites, or a site
    /// taken from the creator, since the job started is skipped, and `decide` is not asked.
    /// Checked here rather than before, so no move or revocation can slip in between.
    pub fn job_step(
        &self,
        id: JobId,
        index: u64,
        decide: impl FnOnce(Option<Device>) -> Outcome,
    ) -> Result<Option<Job>, StoreError> {
        let tx = self.begin_write()?;
        let job = {
            let mut jobs = tx.open_table(JOBS)?;
            let mut job = match read_job(&jobs, id)? {
                Some(j) if j.state == JobState::Running && j.next == index && !j.complete() => j,
                _ => return Ok(None),
            };
            let mut results = tx.open_table(JOB_RESULTS)?;
            let rkey = format!("{id}/{index}");
            let mac = match results.get((id, index))? {
                Some(v) => decode::<DeviceResult>("job_results", &rkey, v.value())?.mac,
                None => return Err(StoreError::NotFound(format!("result {rkey}"))),
            };
            // A move's target was checked when the job was made; a site deleted since would
            // be made again, unconfigured, by the devices moved into it.
            let gone_target = match &job.kind {
                JobKind::Move {
                    site: Some(target), ..
                } if !target.is_empty() && !site_exists(&tx, target)? => Some(target.clone()),
                _ => None,
            };
            let mut devices = tx.open_table(DEVICES)?;
            let key = mac.to_string();
            let device: Option<Device> = match devices.get(key.as_str())? {
                Some(v) => Some(decode("devices", &key, v.value())?),
                None => None,
            };
            let tokens: Vec<ApiToken> = read_all(&tx.open_table(TOKENS)?, "tokens")?;
            let creator = Sites::held_by(&job.created_by, &tokens, now_unix());
            let outcome = match job.refusal(device.as_ref(), &creator) {
                Some(why) => Outcome::Skipped(why),
                None => match gone_target {
                    Some(target) if device.is_some() => Outcome::Skipped(format!(
                        "the move's target site {target:?} no longer exists"
                    )),
                    _ => decide(device),
                },
            };
            let result = DeviceResult::from_outcome(mac, &outcome);
            match outcome {
                Outcome::Put(mut d, _) => {
                    d.mac = mac;
                    d.updated = now_unix();
                    devices.insert(key.as_str(), encode(&d).as_slice())?;
                }
                Outcome::Remove(_) => {
                    devices.remove(key.as_str())?;
                    super::devices::forget_device_data(&tx, &key)?;
                }
                Outcome::Unchanged(_) | Outcome::Failed(_) | Outcome::Skipped(_) => {}
            }
            results.insert((id, index), encode(&result).as_slice())?;
            job.record(result.status);
            jobs.insert(id, encode(&job).as_slice())?;
            job
        };
        self.commit_devices(tx)?;
        Ok(Some(job))
    }

    /// Deletes every ended job that finished before `cutoff`, with its results, in one
    /// transaction (a job an administrator deletes meanwhile is simply not there); returns how
    /// many.
    pub fn prune_jobs(&self, cutoff: i64) -> Result<u64, StoreError> {
        let tx = self.begin_write()?;
        let removed = {
            let mut jobs = tx.open_table(JOBS)?;
            let mut doomed = Vec::new();
            for row in jobs.iter()? {
                let (k, v) = row?;
                // A record that no longer reads cannot be dated: it is left as it is, and the
                // pass goes on with the others.
                match decode::<Job>("jobs", &k.value().to_string(), v.value()) {
                    Ok(job) if job.state.is_final() && job.finished.is_some_and(|t| t < cutoff) => {
                        doomed.push(k.value());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention passes over a job it cannot read")
                    }
                }
            }
            let mut results = tx.open_table(JOB_RESULTS)?;
            for &id in &doomed {
                jobs.remove(id)?;
                results.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            }
            doomed.len() as u64
        };
        if removed == 0 {
            // Nothing changed: no commit, and the generation stays.
            tx.abort()?;
        } else {
            tx.commit()?;
        }
        Ok(removed)
    }

    /// Deletes a job and its results; refused while it runs.
    pub fn delete_job(&self, id: JobId) -> Result<Result<Job, JobError>, StoreError> {
        let tx = self.begin_write()?;
        let job = {
            let mut jobs = tx.open_table(JOBS)?;
            let Some(job) = read_job(&jobs, id)? else {
                return Err(StoreError::NotFound(job_key(id)));
            };
            if let Err(e) = check_delete(job.state) {
                return Ok(Err(e));
            }
            jobs.remove(id)?;
            let mut results = tx.open_table(JOB_RESULTS)?;
            results.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            job
        };
        tx.commit()?;
        Ok(Ok(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::model::{JobKind, Selection};
    use crate::model::{DeviceFilter, Role};

    fn mac(i: u8) -> Mac {
        Mac::from_octets([2, 0, 0, 0, 0, i])
    }

    fn device(i: u8, site: &str) -> Device {
        let mut d = Device::new(mac(i));
        d.site = site.into();
        d
    }

    fn olivia(store: &Store, sites: &[&str]) -> ApiToken {
        let t = ApiToken {
            id: String::new(),
            user: "olivia".into(),
            role: Role::Operator,
            sites: sites.iter().map(|s| s.to_string()).collect(),
            hash: String::new(),
            created: 0,
            created_by: "admin".into(),
            last_used: 0,
            expires: None,
        };
        store
            .add_token(t, || format!("olivia-{}", sites.join("-")))
            .unwrap()
    }

    /// A job of `kind` by `creator` (bounded to `sites`) over site hq, started over devices 1
    /// and 2, which are placed there.
    fn started_over_hq(store: &Store, kind: JobKind, creator: &str, sites: Sites) -> JobId {
        for i in [1, 2] {
            store.place_device(device(i, "hq"));
        }
        let selection = Selection {
            filter: DeviceFilter {
                site: Some("hq".into()),
                ..DeviceFilter::default()
            },
            ..Selection::default()
        };
        let job = Job::new(kind, selection, 0, None, creator, sites, 0);
        let id = store.create_job(job).unwrap().id;
        store.start_job(id).unwrap().unwrap();
        id
    }

    /// Olivia's (sites hq) delete job over site hq, started over devices 1 and 2.
    fn started_delete(store: &Store) -> JobId {
        let sites = Sites::Only(["hq".to_string()].into());
        started_over_hq(store, JobKind::Delete, "olivia", sites)
    }

    fn step(store: &Store, id: JobId, index: u64) -> Job {
        store
            .job_step(id, index, |d| JobKind::Delete.apply(d))
            .unwrap()
            .unwrap()
    }

    /// An administrator moves the device to a site olivia does not have.
    fn move_to_secret_site(store: &Store, device: Mac) {
        let site = crate::model::Site {
            name: "secret-site".into(),
            ..Default::default()
        };
        if store.get_site(&site.name).unwrap().is_none() {
            store.create_site(&site).unwrap();
        }
        store
            .update_device(device, |d| {
                d.site = "secret-site".into();
                Ok::<_, ()>(())
            })
            .unwrap()
            .unwrap();
    }

    /// A move whose target site was deleted after the job was made moves nothing more: it
    /// would otherwise make the site again, unconfigured, out of the devices it moved there.
    #[test]
    fn a_move_to_a_site_deleted_since_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        for name in ["hq", "branch"] {
            let site = crate::model::Site {
                name: name.into(),
                ..Default::default()
            };
            store.create_site(&site).unwrap();
        }
        let kind = JobKind::Move {
            site: Some("branch".into()),
            group: None,
        };
        let id = started_over_hq(&store, kind.clone(), crate::model::BOX_ADMIN, Sites::All);
        store.delete_site("branch").unwrap();
        for index in [0, 1] {
            store
                .job_step(id, index, |d| kind.apply(d))
                .unwrap()
                .unwrap();
        }
        let job = store.get_job(id).unwrap().unwrap();
        assert_eq!((job.counts.ok, job.counts.skipped), (0, 2));
        assert_eq!(store.get_device(mac(1)).unwrap().unwrap().site, "hq");
        assert!(store.get_site("branch").unwrap().is_none());
        assert_eq!(
            store.job_results(id).unwrap()[0].detail,
            "the move's target site \"branch\" no longer exists"
        );
    }

    #[test]
    fn a_device_moved_out_after_the_start_is_skipped_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        olivia(&store, &["hq"]);
        let id = started_delete(&store);
        move_to_secret_site(&store, mac(2));
        step(&store, id, 0);
        let job = step(&store, id, 1);
        assert_eq!((job.counts.ok, job.counts.skipped), (1, 1));
        assert_eq!(store.get_device(mac(1)).unwrap(), None);
        assert!(store.get_device(mac(2)).unwrap().is_some());
        let results = store.job_results(id).unwrap();
        assert_eq!(
            (results[1].status, results[1].detail.as_str()),
            (ResultStatus::Skipped, "moved out of the job's sites")
        );
    }

    /// A device a delete job removes takes the cloud's lockout for it along, in the same
    /// transaction; a device the job keeps keeps its own.
    #[test]
    fn a_deleted_device_takes_its_cloud_lockout_along() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        olivia(&store, &["hq"]);
        let id = started_delete(&store);
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut data = tx.open_table(super::super::sync::CLOUD_DATA).unwrap();
            for i in [1, 2] {
                let key = format!("lockout|{}", mac(i));
                data.insert(key.as_str(), br#"{"mac":"x","until":1}"#.as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        move_to_secret_site(&store, mac(2));
        step(&store, id, 0);
        step(&store, id, 1);
        assert_eq!(store.get_device(mac(1)).unwrap(), None);
        let left: Vec<String> = store
            .cloud_data("lockout|")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, [format!("lockout|{}", mac(2))]);
    }

    /// A device a delete job removes takes the SCEP request held for its approval along, as
    /// deleting it one by one does; a device the job keeps keeps its own.
    #[test]
    fn a_deleted_device_takes_its_held_enrolment_along() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        olivia(&store, &["hq"]);
        let id = started_delete(&store);
        for i in [1, 2] {
            let request = crate::model::PendingEnrolment {
                mac: mac(i),
                transaction_id: format!("tx-{i}"),
                spki: vec![0x30, 0x00],
                key_sha256: "key".into(),
                key: "RSA 2048".into(),
                signer_key_sha256: "signer".into(),
                source: "10.0.0.7".into(),
                method: "POST".into(),
                requested_at: 100,
                state: crate::model::PendingState::Pending,
            };
            store.hold_enrolment(&request, None).unwrap();
        }
        move_to_secret_site(&store, mac(2));
        step(&store, id, 0);
        step(&store, id, 1);
        assert_eq!(store.get_device(mac(1)).unwrap(), None);
        let left: Vec<Mac> = store
            .pending_enrolments()
            .unwrap()
            .into_iter()
            .map(|p| p.mac)
            .collect();
        assert_eq!(left, [mac(2)]);
    }

    #[test]
    fn a_revoked_creator_changes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let token = olivia(&store, &["hq"]);
        let id = started_delete(&store);
        step(&store, id, 0);
        store.revoke_token(&token.id).unwrap();
        let job = step(&store, id, 1);
        assert_eq!((job.counts.ok, job.counts.skipped), (1, 1));
        assert!(store.get_device(mac(2)).unwrap().is_some());
        assert_eq!(
            store.job_results(id).unwrap()[1].detail,
            "in a site olivia does not have now"
        );
    }

    /// A job stored before jobs recorded their sites is bounded by its creator's rights.
    #[test]
    fn an_older_job_acts_only_where_its_creator_may() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        olivia(&store, &["hq"]);
        let id = started_delete(&store);
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut jobs = tx.open_table(JOBS).unwrap();
            let mut old = serde_json::to_value(read_job(&jobs, id).unwrap().unwrap()).unwrap();
            old.as_object_mut().unwrap().remove("sites");
            jobs.insert(id, serde_json::to_vec(&old).unwrap().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(store.get_job(id).unwrap().unwrap().sites, Sites::All);
        move_to_secret_site(&store, mac(2));
        step(&store, id, 0);
        step(&store, id, 1);
        assert!(store.get_device(mac(2)).unwrap().is_some());
        assert_eq!(
            store.job_results(id).unwrap()[1].detail,
            "in a site olivia does not have now"
        );
    }
}
