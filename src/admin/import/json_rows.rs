//! JSON rows: the array's elements, read one at a time from their own text. Reading each
//! element from its text (not from a parsed `Value`, where the last of two equal keys silently
//! wins) refuses a key given twice as `POST /devices` does, and the text's place in the body
//! gives the line an error is on.
//!
//! An element is a device as `POST /devices` takes it, or as an export shows it: the view's
//! read-only fields (`cloud_params`, `http_username`, `checkin`, `created`, `updated`) are
//! accepted and ignored, and `secrets` given as a list of names (all an export shows) keeps the
//! device's secrets. Any other field is refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Each, Gives, Row, RowError};
use crate::admin::ApiError;
use crate::admin::devices::NewDevice;
use crate::model::{DeviceState, HttpCredential, Mac};

/// One element. Each field but `mac` is `None` when absent, so that a device that exists keeps
/// it; a `null` is refused where `POST /devices` refuses one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "Device")]
struct Element {
    mac: Mac,
    #[serde(default, deserialize_with = "given")]
    model: Option<String>,
    #[serde(default, deserialize_with = "given")]
    serial: Option<String>,
    #[serde(default, deserialize_with = "given")]
    site: Option<String>,
    #[serde(default, deserialize_with = "given")]
    group: Option<String>,
    #[serde(default, deserialize_with = "given")]
    label: Option<String>,
    #[serde(default, deserialize_with = "given")]
    params: Option<BTreeMap<String, String>>,
    #[serde(default)]
    secrets: Secrets,
    #[serde(default, deserialize_with = "given")]
    state: Option<DeviceState>,
    #[serde(default, deserialize_with = "given")]
    allow_http_auth: Option<bool>,
    /// `null` removes the credential.
    #[serde(default, deserialize_with = "given")]
    http_credential: Option<Option<HttpCredential>>,
    #[serde(default, rename = "cloud_params")]
    _cloud_params: IgnoredAny,
    #[serde(default, rename = "http_username")]
    _http_username: IgnoredAny,
    #[serde(default, rename = "checkin")]
    _checkin: IgnoredAny,
    #[serde(default, rename = "created")]
    _created: IgnoredAny,
    #[serde(default, rename = "updated")]
    _updated: IgnoredAny,
}

/// A field that is there (absent is `None` by `#[serde(default)]`).
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `secrets`: values to set (`{"NAME": "value"}`), or the names an export lists
/// (`["NAME"]`), which set nothing: an export carries no secret values, so importing it keeps
/// the secrets the device has. The names are kept for the report to count.
#[derive(Default)]
struct Secrets {
    values: BTreeMap<String, String>,
    names: Vec<String>,
}

impl<'de> Deserialize<'de> for Secrets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secrets, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Secrets;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of secret values or a list of secret names")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Secrets, A::Error> {
                let values = BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Secrets {
                    values,
                    names: Vec::new(),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Secrets, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Secrets {
                    values: BTreeMap::new(),
                    names,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

impl Element {
    fn into_row(self, line: usize, element: usize) -> Row<'static> {
        let gives = Gives {
            model: self.model.is_some(),
            serial: self.serial.is_some(),
            site: self.site.is_some(),
            group: self.group.is_some(),
            label: self.label.is_some(),
            state: self.state.is_some(),
            allow_http_auth: self.allow_http_auth.is_some(),
            http_credential: self.http_credential.is_some(),
        };
        let mut new = NewDevice::with_mac(self.mac);
        new.model = self.model.unwrap_or_default();
        new.serial = self.serial.unwrap_or_default();
        new.site = self.site.unwrap_or_default();
        new.group = self.group.unwrap_or_default();
        new.label = self.label.unwrap_or_default();
        new.params = self.params.unwrap_or_default();
        new.secrets = self.secrets.values;
        new.state = self.state.unwrap_or_default();
        new.allow_http_auth = self.allow_http_auth.unwrap_or_default();
        new.http_credential = self.http_credential.flatten();
        Row {
            line,
            element: Some(element),
            new,
            gives,
            clears: Vec::new(),
            unvalued: self.secrets.names,
        }
    }
}

/// Reads the element `n` (1-based) from its text, which starts on `line` of the body.
fn element(text: &str, line: usize, n: usize) -> Result<Row<'static>, RowError> {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Element>(&mut de) {
        Ok(e) => Ok(e.into_row(line, n)),
        Err(e) => {
            let inner = e.inner();
            // serde_json counts the element's own lines, and places an error where it stopped
            // reading (for a bad value, that can be past it); the value's own line, where the
            // path leads to one, is where the error is. The row's line says it, so the message
            // loses serde_json's "at line 3 column 10".
            let within = value_line(text, e.path()).unwrap_or(inner.line().max(1));
            let message = inner.to_string();
            let suffix = format!(" at line {} column {}", inner.line(), inner.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            // A secret of the wrong type is not quoted back (the report lists every bad row).
            let message = match crate::admin::secret_path(e.path()) {
                true => crate::admin::without_value(message),
                false => message.to_string(),
            };
            Err(RowError {
                line: line + within - 1,
                // Named by the field's path (`params.SIP_DOMAIN`) unless the element itself is
                // wrong.
                error: match e.path().to_string().as_str() {
                    "." => format!("element {n}: {message}"),
                    path => format!("element {n}: {path}: {message}"),
                },
            })
        }
    }
}

/// The 1-based line within `text` (one element) of the value `path` leads to, followed through
/// objects as far as it goes; `None` for the element itself.
fn value_line(text: &str, path: &serde_path_to_error::Path) -> Option<usize> {
    let mut value = text;
    for segment in path.iter() {
        let serde_path_to_error::Segment::Map { key } = segment else {
            break;
        };
        let object: BTreeMap<String, &RawValue> = serde_json::from_str(value).ok()?;
        value = object.get(key)?.get();
    }
    let offset = (value.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let before = text.as_bytes().get(..offset)?;
    (offset > 0).then(|| 1 + before.iter().filter(|b| **b == b'\n').count())
}

/// The line of a place in the body, for places that only move forward.
struct Lines<'b> {
    body: &'b [u8],
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: usize) -> usize {
        let offset = offset.clamp(self.offset, self.body.len());
        let newlines = self.body[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        (self.offset, self.line) = (offset, self.line + newlines);
        self.line
    }
}

/// Walks the array, handing each element to `each`; an error of `each` stops the walk and is
/// kept in `stopped`.
struct Elements<'a, 'e, 'b> {
    lines: Lines<'b>,
    each: &'a mut Each<'e>,
    stopped: &'a mut Option<ApiError>,
}

impl<'de> Visitor<'de> for Elements<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of devices")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            n += 1;
            // The element's text is a slice of the body: where it starts is where it is.
            let offset =
                (raw.get().as_ptr() as usize).saturating_sub(self.lines.body.as_ptr() as usize);
            let line = self.lines.at(offset);
            if let Err(e) = (self.each)(element(raw.get(), line, n)) {
                *self.stopped = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// Reads every element of a JSON body, handing each to `each`. A UTF-8 byte order mark at the
/// start is passed over, as in a CSV file: editors and tools on Windows write one, and JSON
/// text itself may not hold it.
pub fn read(body: &[u8], each: &mut Each) -> Result<(), ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Elements {
        lines: Lines {
            body,
            offset: 0,
            line: 1,
        },
        each,
        stopped: &mut stopped,
    };
    let read = de.deserialize_seq(walk).and_then(|()| de.end());
    if let Some(e) = stopped {
        return Err(e);
    }
    match read {
        Ok(()) => Ok(()),
        Err(e) => each(Err(RowError {
            // serde_json's own line: where the text stops being an array of devices.
            line: e.line(),
            error: format!("not a JSON array of devices: {e}"),
        })),
    }
}
