//! Inventory import and export: CSV (`mac,model,serial,site,group,label,state`, then one column
//! per parameter, `secret:NAME` for secret ones) or JSON (an array of devices as `POST /devices`
//! takes them, or as an export gives them). docs/import-export.md says it for operators.
//!
//! An import is all or nothing: every bad row is reported with its line and reason, and nothing
//! is written unless every row is good. A row for a MAC that exists changes only what the row
//! gives, so an export, edited and imported again, keeps what an export does not carry: secret
//! values, the cloud's parameters, the HTTP credential and the last check-in.
//!
//! The body is read one row at a time inside the import's write transaction, never collected:
//! what an import holds besides its body is one row, the MACs seen so far, at most
//! [`MAX_ERRORS`] errors and a bounded audit record ([`trail`]). Each row is checked against
//! the device as that transaction sees it, so no other writer can slip in between an
//! operator's site check and the write.

mod csv_rows;
mod export;
mod json_rows;
mod trail;

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::devices::NewDevice;
use super::{AdminState, ApiError, Principal};
use crate::model::{Device, Mac};
use crate::store::ImportTx;

pub use export::export;

/// Most bad rows a report lists; one last entry counts the rest ("…and N more"). A body of
/// nothing but bad rows (16 MiB of `[0,0,…]`) would otherwise make a report, and the memory
/// behind it, many times the size of the body.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line of the text: a CSV row's line (the header is line 1); for JSON, the line
    /// where the element goes wrong, or its first line when it reads but is refused (its
    /// position in the array is at the start of `error`: `element 3: …`).
    pub line: usize,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    /// Rows for a device that exists and that change nothing of it: counted apart from
    /// `updated`, and not written, so importing an export again says it changed nothing and
    /// leaves every device's `updated` time as it was.
    #[serde(default)]
    pub unchanged: usize,
    /// Every bad row, listed in `errors` or not.
    #[serde(default)]
    pub bad_rows: usize,
    /// The first [`MAX_ERRORS`] bad rows, then one entry saying how many more there are.
    pub errors: Vec<RowError>,
    /// False for a dry run, and whenever any row was bad.
    pub applied: bool,
    /// The sites the import created (asked to with `create_sites`), in the order rows named
    /// them; on a dry run, those it would create.
    #[serde(default)]
    pub sites_created: Vec<String>,
    /// Secret parameters the rows named without a value, which were not set (an export never
    /// carries secret values): each device keeps what it had.
    #[serde(default)]
    pub secrets_without_values: usize,
    /// The devices that, after the import, lack secrets their rows named without a value (a
    /// box a file moved to does not have them): the first [`MAX_ERRORS`], with their names.
    #[serde(default)]
    pub secrets_missing: Vec<MissingSecrets>,
    /// How many devices lack such secrets, listed or not.
    #[serde(default)]
    pub devices_missing_secrets: usize,
}

/// A device of an import that lacks secrets its row named without a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSecrets {
    pub line: usize,
    pub mac: Mac,
    pub names: Vec<String>,
}

impl RowError {
    /// An error of the row at `line`, the `element`th of a JSON array.
    fn at(line: usize, element: Option<usize>, error: impl std::fmt::Display) -> RowError {
        RowError {
            line,
            error: match element {
                Some(n) => format!("element {n}: {error}"),
                None => error.to_string(),
            },
        }
    }
}

/// Which of a device's fields an import row gives: a device that exists keeps the others.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gives {
    pub model: bool,
    pub serial: bool,
    pub site: bool,
    pub group: bool,
    pub label: bool,
    pub state: bool,
    pub allow_http_auth: bool,
    pub http_credential: bool,
}

/// One row of an import (a CSV record or a JSON element).
#[derive(Debug)]
pub struct Row<'h> {
    pub line: usize,
    /// The JSON element's 1-based position in its array.
    pub element: Option<usize>,
    /// The device the row makes when its MAC is new. On a device that exists, its `params` and
    /// `secrets` are set and the fields in `gives` replaced.
    pub new: NewDevice,
    pub gives: Gives,
    /// Parameters the row removes from a device that exists (a CSV row's empty cells).
    pub clears: Vec<&'h str>,
    /// Secrets the row names without a value (a CSV cell `(not exported)`, a JSON list of
    /// names): an export's, which never carries values. They set nothing.
    pub unvalued: Vec<String>,
}

impl Row<'_> {
    /// Where the row is, for messages that are not a [`RowError`].
    fn place(&self) -> String {
        match self.element {
            Some(n) => format!("element {n}, line {}", self.line),
            None => format!("line {}", self.line),
        }
    }

    /// An error of this row.
    fn error(&self, error: impl std::fmt::Display) -> RowError {
        RowError::at(self.line, self.element, error)
    }

    /// Changes a device that exists as the row says.
    fn apply(self, d: &mut Device) {
        let (g, new) = (self.gives, self.new);
        for (given, field, value) in [
            (g.model, &mut d.model, new.model),
            (g.serial, &mut d.serial, new.serial),
            (g.site, &mut d.site, new.site),
            (g.group, &mut d.group, new.group),
            (g.label, &mut d.label, new.label),
        ] {
            if given {
                *field = value;
            }
        }
        for name in self.clears {
            d.params.remove(name);
        }
        d.params.extend(new.params);
        d.secrets.extend(new.secrets);
        if g.state {
            d.state = new.state;
        }
        if g.allow_http_auth {
            d.allow_http_auth = new.allow_http_auth;
        }
        if g.http_credential {
            d.http_credential = new.http_credential;
        }
    }
}

/// What a reader hands each row to: the row, or why it cannot be read. Its error stops the
/// reading (an operator's row outside its sites, the store failing).
type Each<'e> = dyn for<'h> FnMut(Result<Row<'h>, RowError>) -> Result<(), ApiError> + 'e;

/// The bad rows of an import: the first [`MAX_ERRORS`], and how many more.
#[derive(Debug, Default)]
struct Errors {
    listed: Vec<RowError>,
    more: usize,
    /// The line of the first bad row not listed.
    more_from: usize,
}

impl Errors {
    fn push(&mut self, e: RowError) {
        if self.listed.len() < MAX_ERRORS {
            self.listed.push(e);
        } else {
            if self.more == 0 {
                self.more_from = e.line;
            }
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    fn total(&self) -> usize {
        self.listed.len() + self.more
    }

    fn into_list(mut self) -> Vec<RowError> {
        if self.more > 0 {
            self.listed.push(RowError {
                line: self.more_from,
                error: format!(
                    "…and {} more bad rows from this line on, not listed",
                    self.more
                ),
            });
        }
        self.listed
    }
}

/// One import's way through its rows, inside the write transaction.
struct Pass<'a, 't> {
    tx: &'a mut ImportTx<'t>,
    who: &'a Principal,
    dry_run: bool,
    /// Whether a row may name a site that does not exist, creating it.
    create_sites: bool,
    sites_created: Vec<String>,
    secrets_without_values: usize,
    secrets_missing: Vec<MissingSecrets>,
    devices_missing_secrets: usize,
    /// Each good row's MAC and line, to refuse a MAC given twice.
    seen: BTreeMap<Mac, usize>,
    rows: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    errors: Errors,
    trail: trail::Trail,
}

impl Pass<'_, '_> {
    fn take(&mut self, item: Result<Row<'_>, RowError>) -> Result<(), ApiError> {
        self.rows += 1;
        let mut row = match item {
            Ok(row) => row,
            Err(e) => {
                self.errors.push(e);
                return Ok(());
            }
        };
        if let Err(e) = row.new.validate() {
            self.errors.push(row.error(e));
            return Ok(());
        }
        let mac = row.new.mac;
        if let Some(first) = self.seen.get(&mac) {
            self.errors
                .push(row.error(format!("mac {mac} already on line {first}")));
            return Ok(());
        }
        self.seen.insert(mac, row.line);
        let existing = self.tx.get(mac)?;
        if !self.who.is_admin() {
            self.operator_may(&row, existing.as_ref())?;
        }
        let (line, element) = (row.line, row.element);
        let unvalued = std::mem::take(&mut row.unvalued);
        let device = match &existing {
            Some(old) => {
                let mut d = old.clone();
                row.apply(&mut d);
                d
            }
            None => row.new.into_device(),
        };
        let moves = existing.as_ref().is_none_or(|old| old.site != device.site);
        if moves && !self.tx.site_exists(&device.site) {
            if !self.create_sites {
                let e = format!(
                    "{}; or import with create_sites=true (`edgeprov device import \
                     --create-sites`) to create the sites the file names",
                    self.tx.unknown_site(&device.site)
                );
                self.errors.push(RowError::at(line, element, e));
                return Ok(());
            }
            // A site it creates is one `POST /sites` would create.
            if let Err(e) = super::sites::check_name("site", &device.site) {
                self.errors.push(RowError::at(line, element, e));
                return Ok(());
            }
            self.tx.create_site(&device.site)?;
            self.sites_created.push(device.site.clone());
        }
        self.secrets_without_values += unvalued.len();
        // A parameter whose name or value makes it a secret (`admin.password` set as a plain
        // one, a URL with a login) is listed by an export without its value: the device has
        // one.
        let names: Vec<String> = unvalued
            .into_iter()
            .filter(|n| !(device.secrets.contains_key(n) || device.params.contains_key(n)))
            .collect();
        if !names.is_empty() {
            self.devices_missing_secrets += 1;
            if self.secrets_missing.len() < MAX_ERRORS {
                self.secrets_missing
                    .push(MissingSecrets { line, mac, names });
            }
        }
        let changes = existing.as_ref() != Some(&device);
        match (&existing, changes) {
            (None, _) => self.created += 1,
            (Some(_), true) => self.updated += 1,
            (Some(_), false) => self.unchanged += 1,
        }
        // Once a row is bad nothing will be written: the rest are only checked and counted.
        if !self.dry_run && self.errors.is_empty() {
            self.trail.record(existing.as_ref(), &device);
            if changes {
                self.tx.put(device, existing.as_ref())?;
            }
        }
        Ok(())
    }

    /// An operator's import may only touch its sites: the site of a device the row would
    /// change, and the site the row puts its device in; and it gives no device an HTTP
    /// credential (the administrator's, as in `PATCH /devices/{mac}`). One row outside refuses
    /// the whole import (403, naming the row).
    fn operator_may(&self, row: &Row, existing: Option<&Device>) -> Result<(), ApiError> {
        if row.gives.http_credential && row.new.http_credential.is_some() {
            self.who
                .require_admin_for_credential(&format!("{}: http_credential", row.place()))?;
        }
        let user = &self.who.user;
        let target = match existing {
            // The device's site is not named: it may be one the operator must not learn of.
            Some(d) if !self.who.allows(&d.site) => {
                return Err(ApiError::Forbidden(format!(
                    "{}: the device is in a site not assigned to {user}",
                    row.place(),
                )));
            }
            Some(_) => row.gives.site.then_some(&row.new.site),
            None => Some(&row.new.site),
        };
        match target.filter(|t| !self.who.allows(t)) {
            Some(t) => Err(ApiError::Forbidden(format!(
                "{}: site {t:?} is not assigned to {user}",
                row.place()
            ))),
            None => Ok(()),
        }
    }

    /// The report, and the audit record of what was written (when anything was).
    fn finish(self) -> (ImportReport, Option<serde_json::Value>) {
        let applied = !self.dry_run && self.errors.is_empty();
        let report = ImportReport {
            rows: self.rows,
            created: self.created,
            updated: self.updated,
            unchanged: self.unchanged,
            bad_rows: self.errors.total(),
            errors: self.errors.into_list(),
            applied,
            sites_created: self.sites_created,
            secrets_without_values: self.secrets_without_values,
            secrets_missing: self.secrets_missing,
            devices_missing_secrets: self.devices_missing_secrets,
        };
        (report, applied.then(|| self.trail.into_changes()))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    fn parse(text: Option<&str>) -> Result<Format, ApiError> {
        match text.unwrap_or("csv") {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(ApiError::BadRequest(format!(
                "format: {other:?} is not csv or json"
            ))),
        }
    }
}

/// Reads `body` and imports it in one transaction of `store` (nothing is written on a dry run
/// or when any row is bad). Blocking.
pub fn run(
    store: &crate::store::Store,
    who: &Principal,
    format: Format,
    body: &[u8],
    dry_run: bool,
    create_sites: bool,
) -> Result<(ImportReport, Option<serde_json::Value>), ApiError> {
    store.import_devices(|tx| {
        let mut pass = Pass {
            tx,
            who,
            dry_run,
            create_sites,
            sites_created: Vec::new(),
            secrets_without_values: 0,
            secrets_missing: Vec::new(),
            devices_missing_secrets: 0,
            seen: BTreeMap::new(),
            rows: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            errors: Errors::default(),
            trail: trail::Trail::default(),
        };
        let mut each = |item: Result<Row<'_>, RowError>| pass.take(item);
        match format {
            Format::Csv => csv_rows::read(body, &mut each)?,
            Format::Json => json_rows::read(body, &mut each)?,
        }
        let (report, changes) = pass.finish();
        let commit = report.applied;
        Ok(((report, changes), commit))
    })
}

/// Unknown fields are refused: `dryrun=true` taken as no dry run would apply the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `csv` (default) or `json`.
    pub format: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Create the sites rows name that do not exist, instead of refusing those rows.
    #[serde(default)]
    pub create_sites: bool,
}

pub async fn import(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = Format::parse(q.format.as_deref())?;
    let store = st.store.clone();
    let (report, changes) = tokio::task::spawn_blocking(move || {
        run(&store, &who, format, &body, q.dry_run, q.create_sites)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (rows, created, updated, unchanged) = (
        report.rows,
        report.created,
        report.updated,
        report.unchanged,
    );
    let sites_created = report.sites_created.clone();
    // A refused import's audit entry says why, as an error answered by the other routes does:
    // the number of bad rows and the first of them (row errors name columns, not cells).
    let refusal = report.errors.first().map(|first| {
        super::audit::Refusal(
            format!(
                "{} bad row(s), nothing imported; line {}: {}",
                report.bad_rows, first.line, first.error
            )
            .into(),
        )
    });
    let mut resp = (status, Json(report)).into_response();
    if let Some(refusal) = refusal {
        resp.extensions_mut().insert(refusal);
    }
    Ok(match changes {
        Some(changes) => {
            tracing::info!(created, updated, unchanged, "inventory imported");
            let mut summary = format!(
                "inventory imported: {rows} rows, {created} created, {updated} updated, \
                 {unchanged} unchanged"
            );
            if !sites_created.is_empty() {
                summary += &format!("; sites created: {}", sites_created.join(", "));
            }
            super::audit::with_changes(resp, summary, changes)
        }
        None => resp,
    })
}

#[cfg(test)]
mod tests;
