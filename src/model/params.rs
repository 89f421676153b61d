//! Parameter layers. A device's effective parameters are the layers applied in order
//! global → site → group → model → device, a later layer replacing a name set earlier.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest site, group or model name. Each of them names a parameter layer (`site:NAME`), so
/// every path that writes one (devices, import, bulk jobs, sites, layers, the cloud's pull) takes
/// this one limit: whatever a device can carry can also be given parameters.
pub const MAX_NAME: usize = 128;

/// Longest free text that names no layer: a site's label (the admin API's device serial and
/// label take the same limit).
pub const MAX_TEXT: usize = 256;

/// Why a text field of a device (model, serial, site, group, label) or a layer's name is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("at most {0} bytes")]
    TooLong(usize),
    #[error("no control characters")]
    Control,
    #[error("no spaces at the start or end")]
    OuterSpace,
    #[error("no '|' (it separates the parts of stored keys)")]
    Separator,
}

/// Checks a device's text field or a layer's name. Outer spaces are refused rather than
/// trimmed: `"J179 "` is a different model (another `model:` layer) than `"J179"`, and a write
/// that quietly changed it would not give back what it was given, while a refusal names the
/// field. Refused at every write path (API, import, bulk jobs, layers, the cloud's pull), so an
/// export holds none and imports again unchanged.
pub fn check_field(value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        Err(FieldError::TooLong(max))
    } else if value.chars().any(char::is_control) {
        Err(FieldError::Control)
    } else if value.trim() != value {
        Err(FieldError::OuterSpace)
    } else {
        Ok(())
    }
}

/// Checks a site, group or model name: a device's field that names a parameter layer, or a
/// layer's name. [`check_field`] with [`MAX_NAME`], and no `|`: the store joins names with it
/// in keys (a site's static file is `SITE|FILE`, the cloud's policy `policy|SITE|MODEL`), so a
/// name holding one would read back as another site's or be cut. One rule at every path a
/// name enters by (devices, import, bulk jobs, layers, sites, the cloud's pull), so whatever
/// one of them takes, the others take too.
pub fn check_name(value: &str) -> Result<(), FieldError> {
    check_field(value, MAX_NAME)?;
    if value.contains('|') {
        return Err(FieldError::Separator);
    }
    Ok(())
}

/// One level of the hierarchy, addressed in the store and the API as `global`, `site:NAME`,
/// `group:NAME`, `model:NAME` (device parameters live in the device record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Global,
    Site(String),
    Group(String),
    Model(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a parameter layer: {0:?} (expected global, site:NAME, group:NAME or model:NAME){hint}",
    hint = device_hint(.0)
)]
pub struct LayerError(pub String);

/// Where a device's own parameters are set, for a layer named `device:…`: the device layer is
/// the device record, which `param` does not address, and an installer tried it first.
fn device_hint(text: &str) -> &'static str {
    match text.starts_with("device:") {
        true => {
            "; a device's own parameters are set with `edgeprov device set MAC --param \
             NAME=VALUE` (PATCH /api/v1/devices/{mac})"
        }
        false => "",
    }
}

impl Layer {
    pub fn parse(text: &str) -> Result<Layer, LayerError> {
        let layer = Layer::parse_stored(text)?;
        match layer.name().map(check_name) {
            Some(Err(_)) => Err(LayerError(text.to_string())),
            _ => Ok(layer),
        }
    }

    /// [`Layer::parse`], also taking a name with `|` that an edgeprov from before names were
    /// checked may have stored (`site:a|b`): such a layer still applies to the devices that
    /// name it, so it must stay readable and clearable, though nothing may be set in it.
    pub fn parse_stored(text: &str) -> Result<Layer, LayerError> {
        let err = || LayerError(text.to_string());
        if text == "global" {
            return Ok(Layer::Global);
        }
        let (kind, name) = text.split_once(':').ok_or_else(err)?;
        // Exactly as free as a device's site, group and model fields: a layer must be nameable
        // for every value they may hold, now or before names were checked.
        if name.is_empty() || check_field(name, MAX_NAME).is_err() {
            return Err(err());
        }
        match kind {
            "site" => Ok(Layer::Site(name.into())),
            "group" => Ok(Layer::Group(name.into())),
            "model" => Ok(Layer::Model(name.into())),
            _ => Err(err()),
        }
    }

    /// The site, group or model name; none for the global layer.
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::Global => None,
            Layer::Site(n) | Layer::Group(n) | Layer::Model(n) => Some(n),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Global => f.write_str("global"),
            Layer::Site(n) => write!(f, "site:{n}"),
            Layer::Group(n) => write!(f, "group:{n}"),
            Layer::Model(n) => write!(f, "model:{n}"),
        }
    }
}

/// The parameters set at one layer; `secrets` are values only the device itself may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ParamSet {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `param set --layer device:MAC` was refused without saying where a device's parameters
    /// are set.
    #[test]
    fn a_device_layer_is_refused_naming_device_set() {
        let e = Layer::parse("device:001122aabbcc").unwrap_err().to_string();
        assert!(
            e.starts_with("not a parameter layer: \"device:001122aabbcc\"")
                && e.contains("edgeprov device set MAC --param NAME=VALUE"),
            "{e}"
        );
        let e = Layer::parse("dev:x").unwrap_err().to_string();
        assert!(!e.contains("device set"), "{e}");
    }

    #[test]
    fn a_name_holds_no_separator() {
        assert_eq!(check_name("hq"), Ok(()));
        assert_eq!(check_name("a|b"), Err(FieldError::Separator));
        assert_eq!(check_name(" hq"), Err(FieldError::OuterSpace));
        assert!(Layer::parse("site:a|b").is_err());
        assert!(Layer::parse("model:T46S|x").is_err());
    }

    /// A layer an earlier edgeprov stored under a name with `|` can still be addressed, and
    /// nothing else the strict reading refuses can.
    #[test]
    fn a_stored_name_with_a_separator_can_be_addressed() {
        assert_eq!(
            Layer::parse_stored("site:a|b"),
            Ok(Layer::Site("a|b".into()))
        );
        assert_eq!(
            Layer::parse_stored("model:T46S|x").unwrap().name(),
            Some("T46S|x")
        );
        for bad in [
            "site:",
            "site: a|b",
            "group:a|\u{7}",
            "device:a|b",
            "global|",
        ] {
            assert!(Layer::parse_stored(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layer_names_round_trip() {
        for text in ["global", "site:hq", "group:2", "model:J179"] {
            assert_eq!(Layer::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "site:",
            "device:x",
            "Global",
            "site",
            "site:a\nb",
            "group:\u{7}",
            "site: hq",
            "model:J179 ",
        ] {
            assert!(Layer::parse(bad).is_err(), "{bad}");
        }
        let longest = format!("site:{}", "s".repeat(MAX_NAME));
        assert!(Layer::parse(&longest).is_ok());
        assert!(Layer::parse(&format!("{longest}s")).is_err());
    }
}

/// Longest parameter value accepted; phones truncate or refuse longer ones anyway.
pub const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "parameter name {0:?} must be 1-128 characters of letters, digits, '_', '.', '-' with an optional 'vendor:' prefix"
    )]
    Name(String),
    #[error(
        "parameter {name}: value must not contain double quotes, line breaks, control characters or U+FFFE/U+FFFF"
    )]
    Value { name: String },
    #[error("parameter {name}: value is longer than {MAX_VALUE} bytes")]
    TooLong { name: String },
    #[error(
        "parameter name {0:?}: the prefix 'secret:' is reserved (a CSV import reads a column of that name as a secret)"
    )]
    Reserved(String),
}

/// Checked when a parameter is written, so every file rendered later can express it: the 46xx
/// language has no escape for `"` and a line break would inject another statement.
pub fn validate_param(name: &str, value: &str) -> Result<(), ParamError> {
    let (prefix, bare) = match name.split_once(':') {
        Some((p, b)) => (Some(p), b),
        None => (None, name),
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    if name.len() > 128 || !word(bare) || prefix.is_some_and(|p| !word(p)) {
        return Err(ParamError::Name(name.chars().take(140).collect()));
    }
    // A parameter of that name would come back from an export as a secret of the bare name.
    if prefix == Some("secret") {
        return Err(ParamError::Reserved(name.into()));
    }
    if value.len() > MAX_VALUE {
        return Err(ParamError::TooLong { name: name.into() });
    }
    // U+FFFE and U+FFFF are no characters of XML: one in a Poly file makes it unreadable.
    if value.contains(['"', '\u{FFFE}', '\u{FFFF}']) || value.chars().any(char::is_control) {
        return Err(ParamError::Value { name: name.into() });
    }
    Ok(())
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert!(validate_param("SIP_PASSWORD", "a b c").is_ok());
        assert!(validate_param("yealink:account.1.label", "Front desk").is_ok());
        assert!(validate_param("", "x").is_err());
        assert!(validate_param("A B", "x").is_err());
        assert!(validate_param("a:b:c", "x").is_err());
        assert!(validate_param("X", "say \"hi\"").is_err());
        assert!(validate_param("X", "line\nSET ADMIN_PASSWORD 0").is_err());
        assert!(validate_param("poly:reg.1.label", "a\u{FFFF}").is_err());
        assert!(validate_param("poly:reg.1.label", "\u{FFFE}").is_err());
        assert!(validate_param("poly:reg.1.label", "\u{FFFD}\u{10FFFF}").is_ok());
        assert!(validate_param("X", &"a".repeat(MAX_VALUE + 1)).is_err());
        assert_eq!(
            validate_param("secret:ADMIN_PIN", "1"),
            Err(ParamError::Reserved("secret:ADMIN_PIN".into()))
        );
        assert!(
            validate_param("Secret:ADMIN_PIN", "1").is_ok(),
            "the CSV prefix is exact"
        );
    }
}
