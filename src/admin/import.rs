//! Inventory import and export: CSV (`mac,model,serial,site,group,label`, then one column per
//! parameter, `secret:NAME` for secret ones) or JSON (an array of devices as `POST /devices`
//! takes them). An import is checked whole first: every bad row is reported with its line and
//! reason, and nothing is written unless every row is good.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::devices::NewDevice;
use super::{AdminState, ApiError, Principal, blocking};
use crate::model::{Device, Mac};

const FIXED: [&str; 6] = ["mac", "model", "serial", "site", "group", "label"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line (CSV, counting the header) or array position + 1 (JSON).
    pub line: usize,
    pub error: String,
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
pub fn parse_csv(bytes: &[u8]) -> (Vec<(usize, NewDevice)>, Vec<RowError>) {
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
        for (name, value) in names.iter().zip(record.iter()) {
            if FIXED.contains(&name.as_str()) {
                fixed.insert(name.as_str(), value.trim().to_string());
            } else if value.is_empty() {
                // An empty cell: this device does not set that parameter.
            } else if let Some(secret) = name.strip_prefix("secret:") {
                secrets.insert(secret.to_string(), value.to_string());
            } else {
                params.insert(name.clone(), value.to_string());
            }
        }
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
        rows.push((
            line,
            NewDevice {
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
        ));
    }
    (rows, errors)
}

/// Reads a JSON array of devices; each element is checked on its own.
pub fn parse_json(bytes: &[u8]) -> (Vec<(usize, NewDevice)>, Vec<RowError>) {
    let items: Vec<serde_json::Value> = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return (
                Vec::new(),
                vec![RowError {
                    line: 0,
                    error: format!("not a JSON array of devices: {e}"),
                }],
            );
        }
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match serde_path_to_error::deserialize::<_, NewDevice>(item) {
            Ok(d) => rows.push((i + 1, d)),
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

/// Validates every row and finds MACs given twice.
pub fn check_rows(rows: &[(usize, NewDevice)], errors: &mut Vec<RowError>) {
    let mut first_line: BTreeMap<Mac, usize> = BTreeMap::new();
    for (line, d) in rows {
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
    let devices: Vec<Device> = rows.into_iter().map(|(_, d)| d.into_device()).collect();
    let store = st.store.clone();
    let apply = errors.is_empty() && !q.dry_run;
    let (created, updated) = blocking(move || store.import_devices(devices, apply)).await?;
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

/// An operator's import may only touch its sites: every row's site, and the site of every
/// device a row would change. One row outside refuses the whole import (403, naming the line).
async fn within_sites(
    st: &AdminState,
    who: &Principal,
    rows: &[(usize, NewDevice)],
) -> Result<(), ApiError> {
    if let Some((line, d)) = rows.iter().find(|(_, d)| !who.allows(&d.site)) {
        return Err(ApiError::Forbidden(format!(
            "line {line}: site {:?} is not assigned to {}",
            d.site, who.user
        )));
    }
    let store = st.store.clone();
    let wanted: Vec<(usize, Mac)> = rows.iter().map(|(line, d)| (*line, d.mac)).collect();
    let existing = blocking(move || {
        wanted
            .into_iter()
            .map(|(line, mac)| Ok(store.get_device(mac)?.map(|d| (line, d.site))))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, crate::store::StoreError>>()
    })
    .await?;
    match existing.into_iter().find(|(_, site)| !who.allows(site)) {
        Some((line, site)) => Err(ApiError::Forbidden(format!(
            "line {line}: the device belongs to site {site:?}, which is not assigned to {}",
            who.user
        ))),
        None => Ok(()),
    }
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
        assert_eq!(rows[0].1.params["SIPDOMAIN"], "example.com");
        assert_eq!(rows[0].1.secrets["SIP_PASSWORD"], "pw1");
        assert_eq!(rows[1].1.secrets["SIP_PASSWORD"], "pw, with comma");
        assert!(rows[1].1.params.is_empty(), "empty cells set nothing");
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
