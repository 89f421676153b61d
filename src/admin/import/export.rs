//! `GET /devices/export`: the inventory as CSV or JSON, in the shapes an import reads back to
//! the same devices. Secret values are never exported (they are write-only): an export is safe
//! to hand around; the backup carries them.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::csv_rows::{EMPTY_VALUE, FIXED, SECRET_NOT_EXPORTED};
use crate::admin::{AdminState, ApiError, DeviceView, Principal, blocking};
use crate::model::Device;
use crate::settings::vocab;

/// Unknown fields are refused: a misspelt `site` would export every site.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub format: Option<String>,
    /// Only this site's devices.
    pub site: Option<String>,
}

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
            let views: Vec<DeviceView> = devices.into_iter().map(Into::into).collect();
            Ok(Json(views).into_response())
        }
        "csv" => {
            let bytes = csv(&devices).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "text/csv")], bytes).into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format: {other:?} is not csv or json"
        ))),
    }
}

/// The fixed columns, then one per parameter any device sets. A device that does not set a
/// parameter gets an empty cell, one that sets it to `""` gets [`EMPTY_VALUE`]: importing
/// treats the two differently, as the devices do.
///
/// A parameter whose name makes it a secret (`admin.password`, `SIP_PASSWORD` set as a plain
/// parameter) gets no parameter column: its value must not leave. A value that carries a login
/// (`https://prov:pw@host/`) under another name is written [`SECRET_NOT_EXPORTED`] in its
/// column, which an import reads as "keep the device's value".
///
/// Last, a `secret:NAME` column for every secret name a listed device has (its secrets and such
/// parameters). A device's cell is [`SECRET_NOT_EXPORTED`] when it has that secret and empty
/// when it has not, so the file names each device's secrets as a JSON export does: an import
/// on a new box reports exactly the devices left without a secret they had, and not every
/// device of a column.
pub(super) fn csv(devices: &[Device]) -> Result<Vec<u8>, csv::Error> {
    let params: BTreeSet<&String> = devices
        .iter()
        .flat_map(|d| d.params.keys())
        .filter(|name| !vocab::is_secret(name))
        .collect();
    let secrets: BTreeSet<&String> = devices
        .iter()
        .flat_map(|d| {
            d.secrets
                .keys()
                .chain(d.params.keys().filter(|name| vocab::is_secret(name)))
        })
        .collect();
    let secret_columns: Vec<String> = secrets.iter().map(|n| format!("secret:{n}")).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = FIXED
        .iter()
        .copied()
        .chain(params.iter().map(|p| p.as_str()))
        .chain(secret_columns.iter().map(String::as_str));
    w.write_record(header)?;
    for d in devices {
        let mac = d.mac.to_string();
        let fixed = [
            mac.as_str(),
            &d.model,
            &d.serial,
            &d.site,
            &d.group,
            &d.label,
            d.state.as_str(),
        ];
        let cells = params.iter().map(|p| match d.params.get(*p) {
            None => "",
            Some(v) if v.is_empty() => EMPTY_VALUE,
            Some(v) if vocab::is_secret_value(v) => SECRET_NOT_EXPORTED,
            Some(v) => v,
        });
        let withheld = secrets.iter().map(|name| {
            let has = d.secrets.contains_key(*name)
                || (vocab::is_secret(name) && d.params.contains_key(*name));
            if has { SECRET_NOT_EXPORTED } else { "" }
        });
        w.write_record(fixed.into_iter().chain(cells).chain(withheld))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mac;

    #[test]
    fn a_parameter_set_to_empty_is_not_an_empty_cell() {
        let mut d = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x55]));
        d.params.insert("SIPDOMAIN".into(), String::new());
        let other = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x56]));
        let text = String::from_utf8(csv(&[d, other]).unwrap()).unwrap();
        assert_eq!(
            text,
            "mac,model,serial,site,group,label,state,SIPDOMAIN\n\
             001122334455,,,,,,active,\"\"\"\"\"\"\n\
             001122334456,,,,,,active,\n"
        );
    }

    /// A URL with a login under a neutral name went into the export in clear ("an export is
    /// safe to hand around"); its cell is now the mark an import reads as "keep".
    #[test]
    fn a_value_with_a_login_is_not_exported() {
        let mut d = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x55]));
        d.params.insert(
            "yealink:static.auto_provision.server.url".into(),
            "https://prov:Hunter2pw@prov.example/".into(),
        );
        let mut other = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x56]));
        other.params.insert(
            "yealink:static.auto_provision.server.url".into(),
            "https://prov.example/".into(),
        );
        let text = String::from_utf8(csv(&[d, other]).unwrap()).unwrap();
        assert_eq!(
            text,
            "mac,model,serial,site,group,label,state,yealink:static.auto_provision.server.url\n\
             001122334455,,,,,,active,(not exported)\n\
             001122334456,,,,,,active,https://prov.example/\n"
        );
    }

    /// A CSV export had no `secret:` column, so importing it on a new box said nothing of the
    /// secrets its devices had, where the JSON export's import listed them; then its columns
    /// were empty for every device, so the import said every device lacked every one of them.
    #[test]
    fn each_secret_name_gets_a_column_marked_for_the_devices_that_have_it() {
        let mut d = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x55]));
        d.secrets
            .insert("SIP_PASSWORD".into(), "pw-never-exported".into());
        d.params
            .insert("admin.password".into(), "pin-never-exported".into());
        let mut other = Device::new(Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x56]));
        other.secrets.insert("ADMIN_PIN".into(), "1234".into());
        let text = String::from_utf8(csv(&[d, other]).unwrap()).unwrap();
        assert_eq!(
            text,
            "mac,model,serial,site,group,label,state,secret:ADMIN_PIN,secret:SIP_PASSWORD,\
             secret:admin.password\n\
             001122334455,,,,,,active,,(not exported),(not exported)\n\
             001122334456,,,,,,active,(not exported),,\n"
        );
    }
}
