//! Inventory import and export: CSV (`mac,model,serial,site,group,label`, then one column per
//! parameter, `secret:NAME` for secret ones) or JSON (an array of devices as `POST /devices`
//! takes them). An import is checked whole first: every bad row is reported with its line and
//! reason, and nothing is written unless every row is good.
//!
//! A row for a MAC that exists changes only what the row gives: the CSV header's columns (an
//! empty parameter cell removes that parameter, an empty `secret:` cell keeps the secret) or the
//! JSON element's keys (`params` and `secrets` set the names they hold). So an export, edited
//! and imported again, keeps what an export does not carry: secret values, the cloud's
//! parameters, the lifecycle state, the HTTP credential and the last check-in.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::devices::{DevicePatch, NewDevice};
use super::{AdminState, ApiError, Principal, blocking};
use crate::model::Mac;

const FIXED: [&str; 6] = ["mac", "model", "serial", "site", "group", "label"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line (CSV, counting the header) or array position + 1 (JSON; for a text that
    /// is not an array of devices, the line where it stops being one).
    pub line: usize,
    pub error: String,
}

/// One row of an import, ready for either case.
#[derive(Debug)]
pub struct Row {
    /// 1-based line (CSV, counting the header) or array position + 1 (JSON).
    pub line: usize,
    /// The device the row makes when its MAC is new.
    pub new: NewDevice,
    /// What the row changes on a device that exists: only what it gives.
    pub update: DevicePatch,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub errors: Vec<RowError>,
    /// False for a dry run, and whenever any row was bad.
    pub applied: bool,
}

/// Reads CSV rows into devices; rows that cannot be read are errors with their line.
pub fn parse_csv(bytes: &[u8]) -> (Vec<Row>, Vec<RowError>) {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (
                Vec::new(),
                vec![RowError {
                    line: 1,
                    error: format!("header: {e}"),
                }],
            );
        }
    };
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    if names.first().map(String::as_str) != Some("mac") {
        return (
            Vec::new(),
            vec![RowError {
                line: 1,
                error: "header: the first column must be `mac`".into(),
            }],
        );
    }
    let mut seen = BTreeSet::new();
    for n in &names {
        if !seen.insert(n.clone()) {
            return (
                Vec::new(),
                vec![RowError {
                    line: 1,
                    error: format!("header: column {n:?} appears twice"),
                }],
            );
        }
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                errors.push(RowError {
                    line,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let mut fixed: BTreeMap<&str, String> = BTreeMap::new();
        let (mut params, mut secrets) = (BTreeMap::new(), BTreeMap::new());
        let mut param_changes = BTreeMap::new();
        for (name, value) in names.iter().zip(record.iter()) {
            if FIXED.contains(&name.as_str()) {
                fixed.insert(name.as_str(), value.trim().to_string());
            } else if let Some(secret) = name.strip_prefix("secret:") {
                // An empty cell keeps the secret: an export never carries secret values.
                if !value.is_empty() {
                    secrets.insert(secret.to_string(), value.to_string());
                }
            } else if value.is_empty() {
                // An empty cell: the device does not set that parameter (any more).
                param_changes.insert(name.clone(), None);
            } else {
                params.insert(name.clone(), value.to_string());
                param_changes.insert(name.clone(), Some(value.to_string()));
            }
        }
        let given = |k: &str| fixed.get(k).cloned();
        let update = DevicePatch {
            model: given("model"),
            serial: given("serial"),
            site: given("site"),
            group: given("group"),
            label: given("label"),
            params: param_changes,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            ..DevicePatch::default()
        };
        let mut take = |k: &str| fixed.remove(k).unwrap_or_default();
        let mac = match Mac::parse(&take("mac")) {
            Ok(m) => m,
            Err(e) => {
                errors.push(RowError {
                    line,
                    error: format!("mac: {e}"),
                });
                continue;
            }
        };
        rows.push(Row {
            line,
            new: NewDevice {
                mac,
                model: take("model"),
                serial: take("serial"),
                site: take("site"),
                group: take("group"),
                label: take("label"),
                params,
                secrets,
                state: Default::default(),
                allow_http_auth: false,
                http_credential: None,
            },
            update,
        });
    }
    (rows, errors)
}

/// Reads a JSON array of devices; each element is checked on its own.
pub fn parse_json(bytes: &[u8]) -> (Vec<Row>, Vec<RowError>) {
    let items: Vec<serde_json::Value> = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return (
                Vec::new(),
                vec![RowError {
                    // serde_json's own line: where the text stops being an array of devices.
                    line: e.line(),
                    error: format!("not a JSON array of devices: {e}"),
                }],
            );
        }
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let keys: BTreeSet<String> = item
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        match serde_path_to_error::deserialize::<_, NewDevice>(item) {
            Ok(new) => rows.push(Row {
                line: i + 1,
                update: json_update(&new, &keys),
                new,
            }),
            Err(e) => errors.push(RowError {
                line: i + 1,
                // Named by the field's path (`params.SIP_DOMAIN`) unless the element itself
                // is wrong.
                error: match e.path().to_string().as_str() {
                    "." => e.inner().to_string(),
                    path => format!("{path}: {}", e.inner()),
                },
            }),
        }
    }
    (rows, errors)
}

/// The change a JSON element makes to a device that exists: the fields among its `keys`.
fn json_update(new: &NewDevice, keys: &BTreeSet<String>) -> DevicePatch {
    let given = |k: &str| keys.contains(k);
    let text = |k: &str, v: &String| given(k).then(|| v.clone());
    let set = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect()
    };
    DevicePatch {
        model: text("model", &new.model),
        serial: text("serial", &new.serial),
        site: text("site", &new.site),
        group: text("group", &new.group),
        label: text("label", &new.label),
        params: set(&new.params),
        secrets: set(&new.secrets),
        state: given("state").then_some(new.state),
        allow_http_auth: given("allow_http_auth").then_some(new.allow_http_auth),
        http_credential: given("http_credential").then(|| new.http_credential.clone()),
    }
}

/// Validates every row and finds MACs given twice.
pub fn check_rows(rows: &[Row], errors: &mut Vec<RowError>) {
    let mut first_line: BTreeMap<Mac, usize> = BTreeMap::new();
    for Row { line, new: d, .. } in rows {
        if let Err(e) = d.validate() {
            errors.push(RowError {
                line: *line,
                error: e.to_string(),
            });
        }
        if let Some(first) = first_line.insert(d.mac, *line) {
            errors.push(RowError {
                line: *line,
                error: format!("mac {} already on line {first}", d.mac),
            });
            first_line.insert(d.mac, first);
        }
    }
    errors.sort_by_key(|e| e.line);
}

#[derive(Debug, Deserialize, Default)]
pub struct ImportQuery {
    /// `csv` (default) or `json`.
    pub format: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

pub async fn import(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportReport>), ApiError> {
    let (rows, mut errors) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => parse_csv(&body),
        "json" => parse_json(&body),
        other => {
            return Err(ApiError::BadRequest(format!(
                "format: {other:?} is not csv or json"
            )));
        }
    };
    // Each error so far is a row that could not be read at all.
    let total = rows.len() + errors.len();
    check_rows(&rows, &mut errors);
    if !who.is_admin() {
        within_sites(&st, &who, &rows).await?;
    }
    let rows: Vec<(Mac, Row)> = rows.into_iter().map(|r| (r.new.mac, r)).collect();
    let store = st.store.clone();
    let apply = errors.is_empty() && !q.dry_run;
    let (created, updated) = blocking(move || {
        store.import_devices(rows, apply, |row, existing| match existing {
            Some(mut d) => {
                row.update.apply(&mut d);
                d
            }
            None => row.new.into_device(),
        })
    })
    .await?;
    let report = ImportReport {
        rows: total,
        created,
        updated,
        errors,
        applied: apply,
    };
    if apply {
        tracing::info!(created, updated, "inventory imported");
    }
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(report)))
}

/// An operator's import may only touch its sites: the site of every device a row would change,
/// and the site every row puts its device in. One row outside refuses the whole import (403,
/// naming the line).
async fn within_sites(st: &AdminState, who: &Principal, rows: &[Row]) -> Result<(), ApiError> {
    let store = st.store.clone();
    let macs: Vec<Mac> = rows.iter().map(|r| r.new.mac).collect();
    let existing = blocking(move || {
        macs.into_iter()
            .map(|mac| Ok(store.get_device(mac)?.map(|d| d.site)))
            .collect::<Result<Vec<_>, crate::store::StoreError>>()
    })
    .await?;
    for (row, site) in rows.iter().zip(existing) {
        let line = row.line;
        let target = match &site {
            Some(site) if !who.allows(site) => {
                return Err(ApiError::Forbidden(format!(
                    "line {line}: the device belongs to site {site:?}, which is not assigned to {}",
                    who.user
                )));
            }
            Some(_) => row.update.site.as_ref(),
            None => Some(&row.new.site),
        };
        if let Some(target) = target.filter(|t| !who.allows(t)) {
            return Err(ApiError::Forbidden(format!(
                "line {line}: site {target:?} is not assigned to {}",
                who.user
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
pub struct ExportQuery {
    pub format: Option<String>,
    /// Only this site's devices.
    pub site: Option<String>,
}

/// The inventory as CSV or JSON. Secret values are never exported (they are write-only): an
/// export is safe to hand around; the backup carries them.
pub async fn export(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    if let Some(site) = &q.site {
        who.require_site(site)?;
    }
    let store = st.store.clone();
    let mut devices = blocking(move || store.list_devices()).await?;
    devices.retain(|d| who.allows(&d.site) && q.site.as_ref().is_none_or(|s| &d.site == s));
    match q.format.as_deref().unwrap_or("csv") {
        "json" => {
            let views: Vec<super::DeviceView> = devices.into_iter().map(Into::into).collect();
            Ok(Json(views).into_response())
        }
        "csv" => {
            let params: BTreeSet<&String> = devices.iter().flat_map(|d| d.params.keys()).collect();
            let mut w = csv::Writer::from_writer(Vec::new());
            let header: Vec<&str> = FIXED
                .iter()
                .copied()
                .chain(params.iter().map(|p| p.as_str()))
                .collect();
            let err = |e: csv::Error| ApiError::Internal(e.to_string());
            w.write_record(&header).map_err(err)?;
            for d in &devices {
                let mac = d.mac.to_string();
                let mut row: Vec<&str> =
                    vec![&mac, &d.model, &d.serial, &d.site, &d.group, &d.label];
                row.extend(
                    params
                        .iter()
                        .map(|p| d.params.get(*p).map(String::as_str).unwrap_or("")),
                );
                w.write_record(&row).map_err(err)?;
            }
            let bytes = w
                .into_inner()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "text/csv")], bytes).into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format: {other:?} is not csv or json"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_and_errors_with_lines() {
        let csv = b"mac,model,site,SIPDOMAIN,secret:SIP_PASSWORD\n\
            00:11:22:33:44:55,J179,hq,example.com,pw1\n\
            not-a-mac,J179,hq,,\n\
            001122334456,T46S,hq,,\"pw, with comma\"\n\
            00-11-22-33-44-55,J169,hq,,\n";
        let (rows, mut errors) = parse_csv(csv);
        check_rows(&rows, &mut errors);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].new.params["SIPDOMAIN"], "example.com");
        assert_eq!(rows[0].new.secrets["SIP_PASSWORD"], "pw1");
        assert_eq!(rows[1].new.secrets["SIP_PASSWORD"], "pw, with comma");
        assert!(rows[1].new.params.is_empty(), "empty cells set nothing");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5], "{errors:?}");
        assert!(errors[1].error.contains("already on line 2"));
    }

    #[test]
    fn bad_headers_and_values() {
        let (_, e) = parse_csv(b"model,mac\nJ179,001122334455\n");
        assert_eq!(e[0].line, 1);
        let (_, e) = parse_csv(b"mac,site,site\n001122334455,a,b\n");
        assert!(e[0].error.contains("twice"));
        let (rows, mut e) = parse_csv(b"mac,BAD NAME\n001122334455,x\n");
        check_rows(&rows, &mut e);
        assert_eq!(e[0].line, 2);
        assert!(e[0].error.contains("parameter name"), "{e:?}");
        let (rows, e) = parse_json(
            br#"[{"mac":"001122334455"},{"mac":"x"},{"mac":"001122334456","colour":1}]"#,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3]);
    }

    /// Applies each row's update to a device that has what no export carries.
    fn updated(rows: Vec<Row>) -> Vec<crate::model::Device> {
        rows.into_iter()
            .map(|row| {
                let mut d = crate::model::Device::new(row.new.mac);
                d.model = "J179".into();
                d.site = "hq".into();
                d.label = "desk".into();
                d.params.insert("SIPDOMAIN".into(), "old.example".into());
                d.params.insert("VLAN".into(), "20".into());
                d.cloud_params
                    .insert("SIPPROXY".into(), "cloud.example".into());
                d.secrets.insert("SIP_PASSWORD".into(), "kept".into());
                d.state = crate::model::DeviceState::Deactivated;
                row.update.apply(&mut d);
                d
            })
            .collect()
    }

    #[test]
    fn a_csv_row_changes_only_its_columns_of_a_device_that_exists() {
        let (rows, errors) = parse_csv(
            b"mac,label,SIPDOMAIN,VLAN,secret:SIP_PASSWORD,secret:ADMIN_PIN
              001122334455,lobby,new.example,,,1234
",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let d = &updated(rows)[0];
        assert_eq!((d.label.as_str(), d.model.as_str()), ("lobby", "J179"));
        assert_eq!(d.site, "hq", "no site column: the site is kept");
        assert_eq!(d.params.get("SIPDOMAIN").unwrap(), "new.example");
        assert!(!d.params.contains_key("VLAN"), "an empty cell removes");
        assert_eq!(
            d.secrets["SIP_PASSWORD"], "kept",
            "an empty secret cell keeps"
        );
        assert_eq!(d.secrets["ADMIN_PIN"], "1234");
        assert_eq!(d.cloud_params["SIPPROXY"], "cloud.example");
        assert_eq!(d.state, crate::model::DeviceState::Deactivated);
    }

    #[test]
    fn a_json_element_changes_only_its_keys_of_a_device_that_exists() {
        let (rows, errors) = parse_json(
            br#"[{"mac":"001122334455","site":"branch","params":{"VLAN":"30"}},
                 {"mac":"001122334456","state":"active","secrets":{"ADMIN_PIN":"9"}}]"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let d = updated(rows);
        assert_eq!(
            (d[0].site.as_str(), d[0].label.as_str()),
            ("branch", "desk")
        );
        assert_eq!(d[0].params["VLAN"], "30");
        assert_eq!(d[0].params["SIPDOMAIN"], "old.example", "names merge");
        assert_eq!(d[0].state, crate::model::DeviceState::Deactivated);
        assert_eq!(d[0].secrets["SIP_PASSWORD"], "kept");
        assert_eq!(d[1].state, crate::model::DeviceState::Active, "given");
        assert_eq!(d[1].secrets.len(), 2);
    }

    #[test]
    fn a_json_document_that_is_not_an_array_names_its_line() {
        let (rows, e) = parse_json(b"\n\n{\"mac\": \"001122334455\"}");
        assert!(rows.is_empty());
        assert_eq!(e[0].line, 3, "{e:?}");
        assert!(e[0].error.starts_with("not a JSON array"), "{e:?}");
    }

    #[test]
    fn json_errors_name_the_field() {
        let (rows, e) = parse_json(
            br#"[{"mac":"001122334455","params":{"SIP_DOMAIN":1}},{"mac":"nope"},
                 {"mac":"001122334456","state":"sideways"},"a string"]"#,
        );
        assert!(rows.is_empty());
        let lines: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.error.as_str())).collect();
        assert!(lines[0].1.starts_with("params.SIP_DOMAIN: "), "{lines:?}");
        assert!(lines[1].1.starts_with("mac: "), "{lines:?}");
        assert!(lines[2].1.starts_with("state: "), "{lines:?}");
        assert!(lines[3].1.starts_with("invalid type"), "{lines:?}");
        assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }
}
